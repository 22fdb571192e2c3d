#!/usr/bin/env bash
# attn's whole test suite, as CI runs it: installs missing Debian packages, checks formatting,
# then builds everything (tests, examples, benchmarks, header self-check) with g++ and runs ctest
# (unit, example-output, compile-must-fail, packaging and architecture tests); builds the tests
# with clang++ under AddressSanitizer + UBSan and runs them; runs the threaded tests under
# ThreadSanitizer; and runs each fuzz target for a bounded time (ATTN_FUZZ_SECONDS, default 30).
# Warnings are errors in every preset. (The clang++ build leaves out examples and benchmarks to
# keep CI short; the fuzz and TSan builds compile the library's headers with clang++ as well.)
#
# Every step runs, even after an earlier one failed, so one run shows every problem; a failed
# configure or build skips only the tests of that same step. A table of the steps (status,
# seconds) ends the output; its last line is "N passed, M failed" (CI reads it), and the script
# exits non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

step_names=()
step_results=()
step_seconds=()
step_note=""  # a step may say which of its stages failed

# run_step <name> <command...>: runs the command as one step, timed, whatever happened before.
run_step() {
  local name=$1
  shift
  echo "== $name"
  step_note=""
  local start=$SECONDS result=passed
  "$@" || result="FAILED${step_note:+ ($step_note)}"
  step_names+=("$name")
  step_results+=("$result")
  step_seconds+=($((SECONDS - start)))
}

summary() {
  local passed=0 failed=0 total=0 i
  echo
  echo "== summary"
  printf '%-14s %-42s %8s\n' step status seconds
  for i in "${!step_names[@]}"; do
    printf '%-14s %-42s %8d\n' "${step_names[$i]}" "${step_results[$i]}" "${step_seconds[$i]}"
    total=$((total + step_seconds[i]))
    if [[ ${step_results[$i]} == passed ]]; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
    fi
  done
  printf '%-14s %-42s %8d\n' total "" "$total"
  echo "$passed passed, $failed failed"
  ((failed == 0))
}

format_check() {
  git ls-files '*.hpp' '*.cpp' | xargs clang-format --dry-run -Werror && echo "formatting OK"
}

# build_and_test <preset> <test command...>: configure, build, then test; a failed configure or
# build skips the test stage of this step only.
build_and_test() {
  local preset=$1
  shift
  if ! cmake --preset "$preset" > /dev/null; then
    step_note="configure; build and test skipped"
    return 1
  fi
  if ! cmake --build --preset "$preset"; then
    step_note="build; test skipped"
    return 1
  fi
  "$@" || { step_note="test"; return 1; }
}

# ctest runs each unit test in its own process on the machine's threads (2 in CI); the whole
# suite then runs once more on one thread, since results must not depend on the thread count.
gcc_tests() {
  ctest --preset ci-gcc && OMP_NUM_THREADS=1 build/ci-gcc/tests/attn_tests --gtest_brief=1
}

tsan_run() {  # LLVM OpenMP made visible to ThreadSanitizer by Archer
  local archer
  archer="$(ls /usr/lib/llvm-*/lib/libarcher.so 2> /dev/null | head -n 1)"
  OMP_TOOL_LIBRARIES="$archer" TSAN_OPTIONS="halt_on_error=1 ignore_noninstrumented_modules=1" \
    OMP_NUM_THREADS=2 build/tsan/tests/attn_threaded_tests --gtest_brief=1
}

main() {
  run_step "install deps" scripts/install-deps.sh --tests
  run_step "clang-format" format_check
  run_step "ci-gcc" build_and_test ci-gcc gcc_tests
  run_step "ci-clang" build_and_test ci-clang ctest --preset ci-clang
  run_step "tsan" build_and_test tsan tsan_run
  run_step "fuzz" scripts/fuzz.sh "${ATTN_FUZZ_SECONDS:-30}"
  summary
}

main
