#!/usr/bin/env python3
"""The seed-style table of docs/benchmarks.md (issue #11, ../shared/seed-digest.md's "summary
per batch size"): the 8-layer GPT-2 of export_deep.py with a symbolic batch (gpt2_8l_dynbatch,
seq 128) at batches 2-64 under one absolute budget, the plain training graph's simulated
peak at batch 8:

    onnx-ac MODEL --dim batch=B --budget <bytes> --best-effort --verify --json --cost analytic

Peaks are measured by ONNX Runtime (allocator peak plus the weights it uses in place);
step times alternate the plain and the rewritten graph on one thread (bench_deep.alternate).

Usage (after `bash scripts/setup.sh`, and export_deep.py gpt2_8l_dynbatch):
    .venv/bin/python scripts/zoo/bench_seed.py [--model PATH] [--rounds 5] [-o OUT.md]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_deep import AC, LIB, alternate, write_table  # noqa: E402

ENV = {**os.environ, "ORT_DYLIB_PATH": str(LIB)}


def ac_json(args: list[str]) -> dict:
    p = subprocess.run([str(AC), *args, "--json"], capture_output=True, text=True, env=ENV)
    if p.returncode != 0:
        raise SystemExit(f"onnx-ac {' '.join(args)}: {p.stderr.strip()}")
    return json.loads(p.stdout)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="/tmp/zoo_seed/models/gpt2_8l_dynbatch.ts17.onnx")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", default="2,4,8,16,32,64")
    ap.add_argument("-o", "--output")
    args = ap.parse_args()
    work = Path("/tmp/bench_seed")
    work.mkdir(exist_ok=True)
    base = ac_json([args.model, "--dim", "batch=8", "--budget", "100%", "--policy", "none",
                    "--cost", "analytic", "-o", str(work / "b8.onnx")])
    budget = base["simulated_initial_peak_bytes"]
    gb = lambda b: f"{b / 1e9:.3f}"  # noqa: E731
    lines = [f"Budget: {budget} B ({gb(budget)} GB), the plain graph's simulated peak at batch 8.",
             "",
             "| batch | initial peak GB | final peak GB | reduction | fits | initial step s "
             "| final step s | overhead | added matmul FLOPs | kept |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for b in [int(x) for x in args.batches.split(",")]:
        out = work / f"b{b}.ac.onnx"
        plain = work / f"b{b}.train.onnx"
        subprocess.run([str(AC), "train-graph", args.model, "--dim", f"batch={b}", "-o", str(plain)],
                       check=True, capture_output=True, env=ENV)
        s = ac_json([args.model, "--dim", f"batch={b}", "--budget", f"{budget}B", "--best-effort",
                     "--verify", "--runs", "1", "--cost", "analytic", "-o", str(out)])
        tp, tr, spread = alternate(plain, out, args.rounds)
        d = 100 * (tr / tp - 1)
        red = 100 * (1 - s["final_peak_bytes"] / s["initial_peak_bytes"])
        lines.append(
            f"| {b} | {gb(s['initial_peak_bytes'])} | {gb(s['final_peak_bytes'])} | {red:.1f}% "
            f"| {'yes' if s['within_budget'] else 'NO'} | {tp:.3f} | {tr:.3f} | {d:+.1f}% ± {spread:.1f} "
            f"| +{s['added_matmul_flops_percent']:.1f}% | {s['retained_percent'] / 100:.2f} |")
        print(lines[-1], flush=True)
    write_table(lines, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
