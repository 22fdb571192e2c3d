#!/usr/bin/env bash
# Installs what the PyTorch comparison needs (Debian's python3-torch, python3-matplotlib and
# OpenBLAS as the system BLAS), builds attn's benchmarks in Release and runs
# benchmarks/compare_pytorch.py with the arguments given (default: GPT-2 small, 2 threads). It
# writes its table and chart under build/compare/; `--output benchmarks/results` updates the
# committed results instead.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
missing=()
for package in python3-torch python3-matplotlib libopenblas0-pthread; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if ((${#missing[@]} > 0)); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The comparison runs attn with its products on the system BLAS (OpenBLAS), as PyTorch does.
cmake --preset release -DATTN_CBLAS=ON > /dev/null
cmake --build --preset release --target bench_attention bench_training
exec /usr/bin/python3 benchmarks/compare_pytorch.py "$@"
