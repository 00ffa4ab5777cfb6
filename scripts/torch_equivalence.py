#!/usr/bin/env python3
"""The demo's training against torch (issue #15): the 6-layer GPT-2 fixture
(fixtures/models/gpt2_deep.ts17.onnx), AdamW at lr 0.003, 50 steps on one batch, run by
`onnx-ac train` from the state `--init-state` wrote, with and without a 30%act plan, and by
torch.optim.AdamW on the transformers model fixtures/export_deep.py exports, loaded from
the same state file, in float64 and float32.

What is the same on both sides:
- Weights: the state file's tensors are the step's parameter inputs, named as the ONNX
  initializers, which are torch's parameter names (`transformer.h.0.attn.c_attn.weight`).
  The export has ONE `transformer.wte.weight`, read by the embedding Gather and by the LM
  head (a Transpose then MatMul); GPT2LMHeadModel ties `lm_head.weight` to it, so torch's
  `named_parameters()` also has one tensor and both gradients add up in it, as in the graph.
- Batch: `input_ids` random in [0, 128), `labels` the next token of each row (the last
  wraps), `attention_mask` ones, one batch [8, 64] fed with `train --data batch.npz`.
- Loss: onnx-ac's cross-entropy (passes/src/autodiff/loss.rs), the mean over all 8 x 64
  positions of -log softmax(logits)[label], no shift inside the loss:
  F.cross_entropy(logits.reshape(-1, 128), labels.reshape(-1)).
- Optimizer: torch.optim.AdamW(lr=0.003, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
  onnx-ac's defaults for adamw (docs/cli.md, Training step). Loss k is the loss before
  update k on both sides.

Tolerance: onnx-ac computes in float32. AdamW moves each weight by about lr per step
whatever its gradient's size, so where a gradient is rounding noise its sign (and the
weight's direction) depends on the summation order. The honest yardstick is torch float32
against torch float64: onnx-ac's distance to torch float64 should be of the same order.
Weight differences are reported relative to the largest weight of each tensor.

    /work/torchenv/bin/python scripts/torch_equivalence.py [--bin target/release/onnx-ac]
        [--work DIR] [--write-ref fixtures/models/gpt2_deep.train.ref.pb]
"""
import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file
from transformers import GPT2Config, GPT2LMHeadModel

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "fixtures" / "models" / "gpt2_deep.ts17.onnx"
STEPS = 50
LR = 0.003
BATCH, SEQ, VOCAB = 8, 64, 128
SEED = 15
# The tensors the committed reference keeps (the tied embedding, a few of each kind).
REF_TENSORS = [
    "transformer.wte.weight",
    "transformer.wpe.weight",
    "transformer.h.0.ln_1.weight",
    "transformer.h.0.attn.c_attn.bias",
    "transformer.h.2.attn.c_proj.weight",
    "transformer.h.5.mlp.c_fc.bias",
    "transformer.ln_f.weight",
    "transformer.ln_f.bias",
]


def batch():
    rng = np.random.default_rng(SEED)
    ids = rng.integers(0, VOCAB, size=(BATCH, SEQ), dtype=np.int64)
    labels = np.roll(ids, -1, axis=1)
    mask = np.ones((BATCH, SEQ), dtype=np.int64)
    return ids, mask, labels


def model(dtype):
    # As fixtures/export_deep.py builds it; the weights come from the state file.
    cfg = GPT2Config(n_layer=6, n_embd=64, n_head=4, vocab_size=VOCAB, n_positions=64,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False)
    cfg._attn_implementation = "eager"
    m = GPT2LMHeadModel(cfg).to(dtype)
    assert m.lm_head.weight is m.transformer.wte.weight, "the LM head is not tied"
    return m


def torch_run(state, dtype, ids, mask, labels):
    m = model(dtype)
    params = dict(m.named_parameters())
    names = {k for k in state if not k.endswith((".exp_avg", ".exp_avg_sq")) and k != "optimizer.step"}
    if names != set(params):
        sys.exit(f"state and torch parameters differ: {sorted(names ^ set(params))}")
    for k in names:
        assert not state[f"{k}.exp_avg"].any() and not state[f"{k}.exp_avg_sq"].any()
    assert float(state["optimizer.step"]) == 0.0
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(torch.from_numpy(state[k].astype(np.float64)))
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.01)
    x, am, y = (torch.from_numpy(a) for a in (ids, mask, labels))
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        logits = m(input_ids=x, attention_mask=am, use_cache=False, return_dict=True).logits
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    weights = {k: p.detach().double().numpy().copy() for k, p in params.items()}
    return np.array(losses), weights


def onnx_ac(binary, work, name, make_args, npz):
    step, init, trained = work / f"{name}.onnx", work / f"{name}.init.safetensors", work / f"{name}.trained.safetensors"
    run([binary, *make_args, "-o", step, "--init-state", init])
    out = run([binary, "train", step, "--state", init, "--data", npz, "--steps", str(STEPS),
               "--save-state", trained])
    losses = {int(k): float(v) for k, v in re.findall(r"^step\s+(\d+)\s+loss\s+(\S+)$", out, re.M)}
    peak = re.search(r"step peak (.*) measured", out)
    return load_file(init), losses, load_file(trained), peak.group(1) if peak else "?"


def run(args):
    args = [str(a) for a in args]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(args)}: exit {p.returncode}\n{p.stderr}")
    return p.stdout


def diff(a, b):
    """Largest difference of each tensor relative to its largest weight (in a), the worst
    tensor, and the largest absolute difference."""
    rel = {k: float(np.abs(a[k] - b[k]).max() / np.abs(a[k]).max()) for k in a}
    worst = max(rel, key=rel.get)
    absd = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    return rel[worst], worst, absd


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(ROOT / "target" / "release" / "onnx-ac"))
    ap.add_argument("--work", type=Path)
    ap.add_argument("--write-ref", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(1)
    work = a.work or Path(tempfile.mkdtemp(prefix="torch_equiv_"))
    work.mkdir(parents=True, exist_ok=True)
    ids, mask, labels = batch()
    npz = work / "batch.npz"
    np.savez(npz, input_ids=ids[None], attention_mask=mask[None], labels=labels[None])

    common = ["--optimizer", "adamw", "--lr", str(LR)]
    runs = {
        "30%act": onnx_ac(a.bin, work, "budget", [MODEL, *common, "--budget", "30%act"], npz),
        "plain": onnx_ac(a.bin, work, "plain", ["train-graph", MODEL, *common], npz),
    }
    init = runs["plain"][0]
    for name, (i, *_rest) in runs.items():
        assert i.keys() == init.keys() and all(np.array_equal(i[k], init[k]) for k in i), \
            f"{name}: a different initial state"

    l64, w64 = torch_run(init, torch.float64, ids, mask, labels)
    l32, w32 = torch_run(init, torch.float32, ids, mask, labels)
    params = list(w64)

    print(f"losses (before update k), {STEPS} AdamW steps, lr {LR}:")
    print(f"{'step':>5} {'torch f64':>12} {'torch f32':>12} " + " ".join(f"{n:>12}" for n in runs))
    shown = sorted(set(runs["plain"][1]))
    for k in shown:
        print(f"{k:>5} {l64[k - 1]:12.6f} {l32[k - 1]:12.6f} "
              + " ".join(f"{r[1][k]:12.6f}" for r in runs.values()))
    floor = diff(w64, w32)
    print("\nfinal weights against torch float64 (max |diff| / max |w| of the tensor, worst tensor; max |diff|):")
    print(f"  torch f32     {floor[0]:.2e} ({floor[1]}); {floor[2]:.2e}")
    print(f"  loss: max |f32 - f64| over printed steps {max(abs(l32[k - 1] - l64[k - 1]) for k in shown):.2e}")
    for name, (_, losses, trained, peak) in runs.items():
        w = {k: trained[k].astype(np.float64) for k in params}
        d = diff(w64, w)
        d32 = diff({k: w32[k] for k in params}, w)
        dl = max(abs(losses[k] - l64[k - 1]) for k in shown)
        print(f"  {name:<13} {d[0]:.2e} ({d[1]}); {d[2]:.2e}   [vs torch f32: {d32[0]:.2e}]  "
              f"loss max |diff| {dl:.2e}; step {int(float(trained['optimizer.step']))}, peak {peak}")
    b, p = runs["30%act"][2], runs["plain"][2]
    d = diff({k: p[k].astype(np.float64) for k in params}, {k: b[k].astype(np.float64) for k in params})
    print(f"  30%act vs plain {d[0]:.2e} ({d[1]}); {d[2]:.2e}")

    if a.write_ref:
        from onnx import helper, numpy_helper
        inits = [numpy_helper.from_array(a_, n) for n, a_ in
                 (("input_ids", ids), ("attention_mask", mask), ("labels", labels))]
        inits.append(numpy_helper.from_array(l64, "losses"))
        inits += [numpy_helper.from_array(w64[k].astype(np.float32), k) for k in REF_TENSORS]
        ref = helper.make_graph([], "train_reference", [], [], initializer=inits, doc_string=(
            f"scripts/torch_equivalence.py: torch {torch.__version__} AdamW lr {LR}, {STEPS} steps, "
            "float64 (weights stored as float32)"))
        a.write_ref.write_bytes(ref.SerializeToString())
        print(f"wrote {a.write_ref} ({a.write_ref.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
