#!/usr/bin/env bash
# Builds attn's libFuzzer targets (preset `fuzz`: clang++, ASan + UBSan) and runs each for a
# bounded time, default 60 s, all at once: the differential fuzzer (fused kernel against the
# reference path, forward and backward), the safetensors reader and GPT-2's tokenizer (any
# bytes round-trip). Any mismatch, exception or sanitizer report stops the run and fails; the
# crashing input is left in build/fuzz/artifacts/.
#   scripts/fuzz.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
cmake --preset fuzz > /dev/null
cmake --build --preset fuzz

work="$(mktemp -d)"
trap 'kill $(jobs -p) 2> /dev/null || true; rm -rf "$work"' EXIT
mkdir -p build/fuzz/artifacts
fuzz() {  # name, then seed folders after the fresh corpus folder; output in $work/<name>.log
  local name=$1
  shift
  mkdir -p "$work/$name"
  "build/fuzz/fuzz/fuzz_$name" -max_total_time="$seconds" -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix=build/fuzz/artifacts/ "$work/$name" "$@" \
    > "$work/$name.log" 2>&1
}
report() {  # name, exit status of its fuzz run
  local log="$work/$1.log"
  if [[ $2 -ne 0 ]]; then
    tail -n 40 "$log"
    echo "fuzz_$1: FAILED (input saved under build/fuzz/artifacts/)"
    return 1
  fi
  echo "fuzz_$1: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log"), no failures"
}

# Each target is single-threaded: they run side by side, each for the full time.
fuzz attention_differential &
differential=$!
fuzz safetensors tests/io/malformed tests/fixtures &
safetensors=$!
fuzz gpt2_tokenizer -dict=fuzz/gpt2_tokenizer.dict &
tokenizer=$!
differential_status=0
safetensors_status=0
tokenizer_status=0
wait "$differential" || differential_status=$?
wait "$safetensors" || safetensors_status=$?
wait "$tokenizer" || tokenizer_status=$?
status=0
report attention_differential "$differential_status" || status=1
report safetensors "$safetensors_status" || status=1
report gpt2_tokenizer "$tokenizer_status" || status=1
exit "$status"
