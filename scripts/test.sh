#!/usr/bin/env bash
# attn's whole test suite, as CI runs it: installs missing Debian packages, checks formatting,
# then builds everything (tests, examples, benchmarks, header self-check) with g++ and runs ctest
# (unit, example-output, compile-must-fail and packaging tests); builds the tests with clang++
# under AddressSanitizer + UBSan and runs them; runs the threaded tests under ThreadSanitizer;
# and runs each fuzz target for a bounded time (ATTN_FUZZ_SECONDS, default 45). Warnings are
# errors everywhere. (The clang++ build leaves out examples and benchmarks to keep CI under 30
# minutes; the fuzz and TSan builds compile the library's headers with clang++ as well.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

echo "== clang-format"
git ls-files '*.hpp' '*.cpp' | xargs clang-format --dry-run -Werror
echo "formatting OK"

for preset in ci-gcc ci-clang; do
  echo "== $preset"
  cmake --preset "$preset" > /dev/null
  cmake --build --preset "$preset"
  ctest --preset "$preset"
done

echo "== tsan (threaded tests under ThreadSanitizer; LLVM OpenMP made visible to it by Archer)"
cmake --preset tsan > /dev/null
cmake --build --preset tsan
archer="$(ls /usr/lib/llvm-*/lib/libarcher.so 2>/dev/null | head -n 1)"
OMP_TOOL_LIBRARIES="$archer" TSAN_OPTIONS="halt_on_error=1 ignore_noninstrumented_modules=1" \
  OMP_NUM_THREADS=2 build/tsan/tests/attn_threaded_tests --gtest_brief=1

echo "== fuzz"
scripts/fuzz.sh "${ATTN_FUZZ_SECONDS:-45}"
