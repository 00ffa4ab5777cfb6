#!/usr/bin/env bash
# Runs every test of onnx-ac from a fresh machine: sets up the pinned Python side and the
# release build (scripts/setup.sh), then the whole workspace's tests with cargo-nextest
# (cargo test where nextest is absent). Tests run in the release profile so that one build
# serves both. A snapshot that differs fails the test and leaves no `.snap.new` behind
# (INSTA_UPDATE=no); review and accept changes with INSTA_UPDATE=always, then `git diff`.
set -euo pipefail
cd "$(dirname "$0")/.."
export INSTA_UPDATE=no
bash scripts/setup.sh
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --release --locked --no-fail-fast "$@"
else
  cargo test --workspace --release --locked --no-fail-fast "$@"
fi
