#!/usr/bin/env bash
# Runs onnx-ac on the architectures scripts/zoo/export_zoo.py exported:
#   bash scripts/zoo/run_zoo.sh [MODEL.onnx ...]   (default: every $ZOO_DIR/models/*.onnx)
# For each model: `train-graph`, then the main command at --budget ${BUDGET:-80%act} with
# --verify. Logs go to $ZOO_DIR/logs (one summary line per model in summary.txt). A file
# $ZOO_DIR/models/NAME.args holds extra arguments for that model (e.g. --dim batch=2).
# Needs the release binary and the pinned ONNX Runtime (.venv from scripts/test.sh).
set -u
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ZOO_DIR="${ZOO_DIR:-/tmp/zoo}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$ROOT/.venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1}"
AC="$ROOT/target/release/onnx-ac"
[ -x "$AC" ] || (cd "$ROOT" && cargo build --release --locked --bin onnx-ac) || exit 1
mkdir -p "$ZOO_DIR/out" "$ZOO_DIR/logs"
files=("$@")
[ ${#files[@]} -eq 0 ] && files=("$ZOO_DIR"/models/*.onnx)
for f in "${files[@]}"; do
  n=$(basename "$f" .onnx)
  extra=()
  [ -f "$ZOO_DIR/models/$n.args" ] && read -ra extra < "$ZOO_DIR/models/$n.args"
  s=$(date +%s.%N)
  timeout 300 "$AC" train-graph "$f" "${extra[@]}" -o "$ZOO_DIR/out/$n.train.onnx" \
    >"$ZOO_DIR/logs/$n.train.out" 2>"$ZOO_DIR/logs/$n.train.err"
  rc1=$?; t1=$(echo "$(date +%s.%N) - $s" | bc)
  s=$(date +%s.%N)
  timeout 300 "$AC" "$f" "${extra[@]}" --budget "${BUDGET:-80%act}" -o "$ZOO_DIR/out/$n.ac.onnx" --verify \
    >"$ZOO_DIR/logs/$n.ac.out" 2>"$ZOO_DIR/logs/$n.ac.err"
  rc2=$?; t2=$(echo "$(date +%s.%N) - $s" | bc)
  echo "$n train rc=$rc1 ${t1}s | ac rc=$rc2 ${t2}s" | tee -a "$ZOO_DIR/logs/summary.txt"
done
