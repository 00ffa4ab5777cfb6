#!/usr/bin/env bash
# Sets up onnx-ac on a fresh machine (scripts/setup.sh) and runs the main job on a bundled
# fixture: a 6-layer GPT-2 (width 64) at batch 8 × 64 tokens, planned to keep 30% of its
# activation memory (--budget 30%act), verified in ONNX Runtime (same gradients, measured peak
# under the budget), with an HTML report (out/gpt2.report.html: open it in a browser). Outputs
# go to out/; the summary lists them last. Then the same model as a
# whole training step (AdamW) under the same kind of budget, with its initial parameters and
# optimizer state in a safetensors file, trained 50 steps on one random batch from that file:
# the loss falls, the measured step peak stays under the budget, which the step without
# recomputation exceeds, and the final state is written in the same format.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
./target/release/onnx-ac fixtures/models/gpt2_deep.ts17.onnx \
  --budget "${BUDGET:-30%act}" \
  -o out/gpt2.ac.onnx \
  --decisions out/gpt2.decisions.csv \
  --save-plan out/gpt2.plan.json \
  --report out/gpt2.report.html \
  --verify
echo
./target/release/onnx-ac fixtures/models/gpt2_deep.ts17.onnx --optimizer adamw --lr 0.003 \
  --budget "${BUDGET:-30%act}" -o out/gpt2.step.onnx --init-state out/gpt2.state.safetensors \
  --verify
echo
./target/release/onnx-ac train out/gpt2.step.onnx --state out/gpt2.state.safetensors \
  --random --same-batch --steps 50 --save-state out/gpt2.trained.safetensors
