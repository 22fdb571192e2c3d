#!/usr/bin/env bash
# Builds attn's demo in Release (installing missing Debian packages first) and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset release -DATTN_BUILD_TESTS=OFF -DATTN_BUILD_BENCHMARKS=OFF > /dev/null
cmake --build --preset release --target attn_demo
cd build/release  # the demo writes its heatmaps under the working directory
exec examples/attn_demo "$@"
