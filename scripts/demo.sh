#!/usr/bin/env bash
# Sets up onnx-ac on a fresh machine (scripts/setup.sh) and runs the main job on a bundled
# fixture: the GPT-2 model (2 layers, width 128) at batch 8 × 64 tokens, planned to keep 80% of
# its activation memory (--budget 80%act), verified in ONNX Runtime. Outputs go to out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
./target/release/onnx-ac fixtures/models/gpt2_dynamic.ts17.onnx \
  --dim batch=8 --dim seq=64 \
  --budget "${BUDGET:-80%act}" \
  -o out/gpt2.ac.onnx \
  --decisions out/gpt2.decisions.csv \
  --save-plan out/gpt2.plan.json \
  --verify
echo "demo: wrote out/gpt2.ac.onnx, out/gpt2.decisions.csv, out/gpt2.plan.json" >&2
