#!/usr/bin/env bash
# Installs what the comparison needs, builds attn's benchmarks in Release and runs
# benchmarks/compare.py (attn against PyTorch and ONNX Runtime) with the arguments given
# (default: GPT-2 small, forward, 2 threads). It writes its table and chart under build/compare/;
# `--output benchmarks/results` updates the committed results instead.
#
#   scripts/compare.sh --repeats 5                      # forward: PyTorch, ORT, attn
#   scripts/compare.sh --mode training --repeats 3      # forward + backward: PyTorch, attn
#   scripts/compare.sh --config small --repeats 2 --no-long-context
#
# Needs: Debian's python3-torch, python3-matplotlib, python3-onnx (ORT's graphs), OpenBLAS as the
# system BLAS (PyTorch's), node and npm, and onnxruntime-node in build/ort/node_modules (its CPU
# library ships inside the npm package; its install script only fetches GPU providers, so it is
# skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
missing=()
for package in python3-torch python3-matplotlib python3-onnx libopenblas0-pthread; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
# node and npm may come from elsewhere than Debian's packages (a nodejs that bundles npm).
command -v node > /dev/null || missing+=(nodejs)
command -v npm > /dev/null || missing+=(npm)
if ((${#missing[@]} > 0)); then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [[ ! -d build/ort/node_modules/onnxruntime-node ]]; then
  npm install --ignore-scripts --no-audit --no-fund --prefix build/ort onnxruntime-node@1.30.0
fi
# attn runs on its default products (Eigen's GEMM), not on a CBLAS: undo an ATTN_CBLAS=ON cache.
if grep -qs '^ATTN_CBLAS:BOOL=ON' build/release/CMakeCache.txt; then
  cmake --preset release -DATTN_CBLAS=OFF > /dev/null
else
  cmake --preset release > /dev/null
fi
cmake --build --preset release --target bench_attention bench_training attn_mha_forward_tool
exec /usr/bin/python3 benchmarks/compare.py "$@"
