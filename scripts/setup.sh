#!/usr/bin/env bash
# Sets up everything onnx-ac needs on a fresh machine: a project-local Python venv (.venv)
# with the pinned ONNX Runtime wheel (its libonnxruntime.so is what the binary loads), the
# onnx checker and numpy; then builds the release binary. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c 'import onnxruntime, onnx, numpy, sys; sys.exit(0 if onnxruntime.__version__ == "1.31.1" else 1)' 2>/dev/null; then
  echo "setup: installing pinned Python packages (scripts/requirements.txt)" >&2
  .venv/bin/pip install --disable-pip-version-check -q -r scripts/requirements.txt
fi
echo "setup: building onnx-ac (release)" >&2
cargo build --release --locked -q
echo "setup: done; ONNX Runtime: $(ls .venv/lib/python*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n1)" >&2
