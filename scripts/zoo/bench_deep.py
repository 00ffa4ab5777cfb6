#!/usr/bin/env python3
"""The deep-model table of docs/benchmarks.md (issue #11): for each 8-layer model that
scripts/zoo/export_deep.py exported, each budget (100, 70, 50, 30, 10 %act) and each planner
(ac, mutwo; the presets once, they ignore the budget), run

    onnx-ac MODEL --budget B --planner P --best-effort --verify --json --cost analytic

and report the kept fraction (bytes of forward buffers the rewritten backward keeps, views
resolved, over the plain graph's), the added MatMul-class FLOPs (over the plain step's),
the simulated and the measured peak (ONNX Runtime's allocator peak plus the weights it uses
in place: comparable with the budget), whether it fits, and the measured step-time overhead:
the plain training graph and the rewritten one alternated over --rounds rounds on one thread
each (ONNX Runtime, default session options), median of each, with the spread.

Usage (after `bash scripts/setup.sh`):
    .venv/bin/python scripts/zoo/bench_deep.py [--models DIR] [--rounds 7] [-o OUT.md] [NAME ...]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[2]
# ONNX_AC_BIN: a copy of the binary, so that rebuilding target/release does not disturb a run.
AC = Path(os.environ.get("ONNX_AC_BIN", ROOT / "target" / "release" / "onnx-ac"))
LIB = next((ROOT / ".venv" / "lib").glob("python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1"))
BUDGETS = ["100%act", "70%act", "50%act", "30%act", "10%act"]
PLANNERS = ["ac", "mutwo"]
PRESETS = ["selective", "full"]
# PyTorch's min-cut partitioner with activation_memory_budget on the same configs (issue #11):
# kept fraction -> added MatMul FLOPs (% of the step's), a range over the three models.
PYTORCH = {0.5: "+0.8–5.9%", 0.3: "+9–16%", 0.1: "+20–25%", 0.0: "+33%"}


def run_ac(model: Path, out: Path, budget: str, planner: str) -> dict:
    cmd = [str(AC), str(model), "--budget", budget, "--planner", planner, "--best-effort",
           "--verify", "--json", "--cost", "analytic", "--runs", "1", "-o", str(out)]
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True,
                       env={**os.environ, "ORT_DYLIB_PATH": str(LIB)})
    if p.returncode != 0:
        return {"error": p.stderr.strip().splitlines()[-1] if p.stderr.strip() else f"exit {p.returncode}"}
    s = json.loads(p.stdout)
    s["wall_s"] = time.time() - t
    return s


def feeds(sess: ort.InferenceSession, rng: np.random.Generator) -> dict:
    out = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        if "int64" in i.type:
            out[i.name] = (np.ones(shape, np.int64) if "mask" in i.name
                           else rng.integers(0, 10, size=shape, dtype=np.int64))
        else:
            out[i.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def alternate(plain: Path, rewritten: Path, rounds: int) -> tuple[float, float, float]:
    """Median step times (plain, rewritten) alternated over `rounds`, and the overhead's
    spread (half the interquartile range of the per-round ratios), in %."""
    a, b = session(plain), session(rewritten)
    f = feeds(a, np.random.default_rng(0))
    a.run(None, f)
    b.run(None, f)
    ta, tb = [], []
    for _ in range(rounds):
        for s, acc in ((a, ta), (b, tb)):
            t = time.perf_counter()
            s.run(None, f)
            acc.append(time.perf_counter() - t)
    ratios = sorted(100 * (y / x - 1) for x, y in zip(ta, tb))
    q = len(ratios) // 4
    spread = (ratios[-1 - q] - ratios[q]) / 2
    return statistics.median(ta), statistics.median(tb), spread


def write_table(lines: list[str], output: str | None) -> None:
    """The table to `output`, or to standard output."""
    text = "\n".join(lines) + "\n"
    if output:
        Path(output).write_text(text)
    else:
        sys.stdout.write(text)


def mib(b) -> str:
    return f"{b / 2**20:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.environ.get("ZOO_DIR", "/tmp/zoo_deep") + "/models")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("-o", "--output")
    ap.add_argument("--budgets", default=",".join(BUDGETS),
                    help="comma-separated budgets (default: all of table 1's)")
    ap.add_argument("--presets", default=",".join(PRESETS),
                    help="comma-separated presets to run once per model ('' for none)")
    ap.add_argument("names", nargs="*")
    args = ap.parse_args()
    models = sorted(Path(args.models).glob("*.onnx"))
    if args.names:
        models = [m for m in models if any(m.name.startswith(n) for n in args.names)]
    work = Path("/tmp/bench_deep")
    work.mkdir(exist_ok=True)
    lines = ["| model | budget | planner | kept | added matmul FLOPs | simulated peak (MiB) "
             "| measured peak (MiB) | fits | measured overhead | PyTorch at that kept fraction |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for m in models:
        name = m.name.removesuffix(".onnx")
        plain = work / f"{name}.train.onnx"
        subprocess.run([str(AC), "train-graph", str(m), "-o", str(plain)], check=True,
                       capture_output=True, env={**os.environ, "ORT_DYLIB_PATH": str(LIB)})
        budgets = [b for b in args.budgets.split(",") if b]
        presets = [p for p in args.presets.split(",") if p]
        runs = [(b, p) for b in budgets for p in PLANNERS] + [("100%act", p) for p in presets]
        seen = {}
        for budget, planner in runs:
            out = work / f"{name}.{planner}.{budget.replace('%', '')}.onnx"
            s = run_ac(m, out, budget, planner)
            label = budget if planner in PLANNERS else "—"
            if "error" in s:
                lines.append(f"| {name} | {label} | {planner} | error: {s['error'][:80]} |||||||")
                print(lines[-1], flush=True)
                continue
            kept = s["retained_percent"] / 100
            key = (planner if planner in PRESETS else "plan", round(s["simulated_final_peak_bytes"]),
                   round(s["added_matmul_flops"]))
            if key in seen:
                overhead = seen[key]
            else:
                tp, tr, spread = alternate(plain, out, args.rounds)
                d = 100 * (tr / tp - 1)
                overhead = (f"{d:+.1f}% ± {spread:.1f}" + (" (within noise)" if abs(d) <= spread else "")
                            + f" ({tp * 1e3:.0f} → {tr * 1e3:.0f} ms)")
                seen[key] = overhead
            ref = min(PYTORCH, key=lambda k: abs(k - kept))
            fits = ("yes" if s["within_budget"] else "NO") if planner in PLANNERS else "—"
            verify = s.get("verify") or {}
            if not verify.get("passed", False):
                fits += " (verify FAILED)"
            if s.get("runtime_weights_bytes"):
                fits += " (weights at run time)"
            lines.append(
                f"| {name} | {label} | {planner} | {kept:.2f} | +{s['added_matmul_flops_percent']:.1f}% "
                f"| {mib(s['simulated_final_peak_bytes'])} (from {mib(s['simulated_initial_peak_bytes'])}) "
                f"| {mib(s['final_peak_bytes'])} (from {mib(s['initial_peak_bytes'])}) | {fits} "
                f"| {overhead} | {ref:.1f} → {PYTORCH[ref]} |")
            print(lines[-1], flush=True)
    write_table(lines, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
