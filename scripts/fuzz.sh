#!/usr/bin/env bash
# The fuzz campaign of issue #12 (docs/security.md, "Fuzzing"). Needs the nightly toolchain
# and cargo-fuzz (`cargo install cargo-fuzz --locked --version 0.13.2`).
#
#   bash scripts/fuzz.sh TARGET [SECONDS]   # TARGET: load or pipeline; default 600 s
#
# Seeds fuzz/corpus/TARGET with the fixtures (fixtures/models/*.onnx and the regular files
# of fixtures/fail), then runs the target in one process (no -jobs/-workers: one core) with AddressSanitizer.
# Crashes, timeouts and out-of-memory inputs land in fuzz/artifacts/TARGET; replay one with
# `cargo +nightly fuzz run TARGET FILE`. CARGO_TARGET_DIR, when set, is used for the build.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: fuzz.sh load|pipeline [SECONDS]}
seconds=${2:-600}
corpus=fuzz/corpus/$target
mkdir -p "$corpus"
for f in fixtures/models/*.onnx fixtures/fail/*; do
  if [ -f "$f" ] && [ ! -L "$f" ]; then
    cp "$f" "$corpus/seed-$(basename "$f")"
  fi
done
dir_args=()
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  dir_args=(--target-dir "$CARGO_TARGET_DIR/fuzz")
fi
# Inputs up to MAX_LEN bytes (default 256 KiB: the MLP, CNN and fail fixtures whole, the
# 1.4-2.4 MB transformer fixtures truncated, at ~30 runs/s instead of ~3 under ASan), 120 s
# per input (a 1 s gpt2_deep run takes ~40 s under ASan), 4 GiB of memory.
cargo +nightly fuzz run "${dir_args[@]}" --release -s address -j 1 "$target" "$corpus" -- \
  -max_total_time="$seconds" -max_len="${MAX_LEN:-262144}" -timeout=120 -rss_limit_mb=4096 \
  -print_final_stats=1
