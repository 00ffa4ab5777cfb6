#!/usr/bin/env bash
# Sets up everything onnx-ac needs on a fresh machine: a project-local Python venv (.venv)
# with the pinned ONNX Runtime wheel (its libonnxruntime.so is what the binary loads), the
# onnx checker and numpy; Debian's chromium (headless, for the HTML report tests); then
# builds the release binary. Idempotent.
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
# Headless Chromium renders the HTML reports in tests/html_report.rs (issue #16): Debian's
# `chromium` package, as Debian ships it, with the DejaVu fonts the charts name (the layout
# checks measure text). Installed when missing; a failed install stops here.
if ! command -v chromium >/dev/null 2>&1; then
  echo "setup: installing chromium (Debian package, for tests/html_report.rs)" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
  $SUDO apt-get update -q >&2 || { echo "setup: apt-get update failed; install chromium by hand" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >&2 \
    || { echo "setup: installing chromium failed; install Debian's chromium by hand" >&2; exit 1; }
  command -v chromium >/dev/null 2>&1 || { echo "setup: chromium is still missing after apt-get install" >&2; exit 1; }
fi
echo "setup: building onnx-ac (release)" >&2
cargo build --release --locked -q
echo "setup: done; ONNX Runtime: $(ls .venv/lib/python*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n1)" >&2
