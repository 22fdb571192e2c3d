#!/usr/bin/env bash
# Builds attn's demo in Release (installing missing Debian packages first) and runs it. It builds
# in build/demo, a tree of its own (the release preset's options, tests and benchmarks off), so
# the README's `cmake --preset release` afterwards still configures the whole build/release.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release -B build/demo -DATTN_BUILD_TESTS=OFF -DATTN_BUILD_BENCHMARKS=OFF > /dev/null
cmake --build build/demo --target attn_demo
cd build/demo  # the demo writes its heatmaps under the working directory
exec examples/attn_demo "$@"
