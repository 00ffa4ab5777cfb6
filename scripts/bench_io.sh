#!/usr/bin/env bash
# Peak RSS and time of onnx-ac on a model with 512 MB of EXTERNAL weights (50 × 10.24 MB
# f32 tensors in <model>.onnx.data): a load + save round trip (examples/roundtrip_io.rs),
# `onnx-ac inspect` and `onnx-ac train-graph`, each under /usr/bin/time -v. The point:
# for external-data models the peak RSS stays near the size of the graph structure, not
# the weights. Exits non-zero if a run's peak RSS reaches half the weights' size. For scale,
# the same runs on a 50k-node model with small inline weights (the cost of the structure).
#
# usage: scripts/bench_io.sh [WORKDIR] [LAYERS] [DIM]   (defaults: a temp dir, 50, 1600)
# Results and their reading: docs/benchmarks-io.md.
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$(mktemp -d)}"
layers="${2:-50}"
dim="${3:-1600}"
mkdir -p "$work"
if [[ ! -x /usr/bin/time ]]; then
  echo "bench_io: /usr/bin/time is missing (apt-get install time)" >&2
  exit 2
fi
cargo build --release --locked --bin onnx-ac --example roundtrip_io >&2
target="${CARGO_TARGET_DIR:-target}/release"
bin="$target/onnx-ac"
rt="$target/examples/roundtrip_io"

"$rt" gen "$work" "$layers" "$dim"
weights=$(stat -c %s "$work/ext.onnx.data")
graph=$(stat -c %s "$work/ext.onnx")

# Runs "$@" under /usr/bin/time -v; prints wall time and peak RSS; checks the limit.
fail=0
measure() {
  local label="$1" limit="$2"
  shift 2
  local log="$work/time.$label.log"
  /usr/bin/time -v "$@" >"$work/out.$label.log" 2>"$log" || {
    echo "bench_io: $label failed:" >&2
    cat "$log" >&2
    exit 1
  }
  local rss_kb wall
  rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")
  awk -v l="$label" -v w="$wall" -v k="$rss_kb" 'BEGIN { printf "%-22s wall %-9s  max RSS %7.1f MiB\n", l, w, k / 1024 }'
  if (( limit > 0 && rss_kb * 1024 * 2 >= limit )); then
    echo "bench_io: $label: peak RSS ${rss_kb} KiB is not small against ${weights} bytes of weights" >&2
    fail=1
  fi
}

awk -v f="$work/ext.onnx" -v g="$graph" -v w="$weights" \
  'BEGIN { printf "model: %s (%d bytes of graph), external data %.1f MB\n", f, g, w / 1e6 }'
measure roundtrip "$weights" "$rt" roundtrip "$work/ext.onnx" "$work/rt.onnx"
measure inspect "$weights" "$bin" inspect "$work/ext.onnx" --loss cross-entropy --logits logits
measure train-graph "$weights" "$bin" train-graph "$work/ext.onnx" --loss cross-entropy \
  --logits logits -o "$work/train.onnx"
cat "$work/out.roundtrip.log"
cmp -s "$work/ext.onnx.data" "$work/rt.onnx.data" && echo "roundtrip: side file identical"

# For scale: what the graph structure alone costs, on a 50k-node model (inline weights).
"$rt" gen-wide "$work" 50000
measure wide50k-roundtrip 0 "$rt" roundtrip "$work/wide.onnx" "$work/wide.rt.onnx"
measure wide50k-train-graph 0 "$bin" train-graph "$work/wide.onnx" --loss cross-entropy \
  --logits logits -o "$work/wide.train.onnx"
cat "$work/out.wide50k-roundtrip.log"
exit "$fail"
