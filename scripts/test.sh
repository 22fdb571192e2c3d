#!/usr/bin/env bash
# attn's whole test suite, as CI runs it: installs missing Debian packages, checks formatting,
# then builds everything (tests, examples, benchmarks) with g++ and with clang++, warnings as
# errors, and runs ctest for each (unit tests, compile-must-fail tests, packaging tests).
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
