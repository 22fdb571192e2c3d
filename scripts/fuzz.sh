#!/usr/bin/env bash
# Builds attn's libFuzzer targets (preset `fuzz`: clang++, ASan + UBSan) and runs each for a
# bounded time, default 60 s: the differential fuzzer (fused kernel against the reference path,
# forward and backward) and the safetensors reader. Any mismatch, exception or sanitizer report
# stops the run and fails; the crashing input is left in build/fuzz/artifacts/.
#   scripts/fuzz.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
cmake --preset fuzz > /dev/null
cmake --build --preset fuzz

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p build/fuzz/artifacts
run() {  # name, then seed folders after the fresh corpus folder
  local name=$1
  shift
  local log="$work/$name.log"
  mkdir -p "$work/$name"
  if ! "build/fuzz/fuzz/fuzz_$name" -max_total_time="$seconds" -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix=build/fuzz/artifacts/ "$work/$name" "$@" > "$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz_$name: FAILED (input saved under build/fuzz/artifacts/)"
    return 1
  fi
  echo "fuzz_$name: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log"), no failures"
}
run attention_differential
run safetensors tests/io/malformed tests/fixtures
