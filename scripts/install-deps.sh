#!/usr/bin/env bash
# Installs the Debian packages attn's build, tests, examples and benchmarks need, only those that
# are missing. Uses sudo when not root. Safe to run again.
#   scripts/install-deps.sh [--tests]
# --tests adds what only the test suite uses: Open MPI, for the split-KV example's 2-process run.
set -euo pipefail

packages=(
  cmake ninja-build g++ clang clang-format pkg-config
  libeigen3-dev libgtest-dev libbenchmark-dev nlohmann-json3-dev libomp-dev
  libblas-dev libopenblas0-pthread libcxxopts-dev libclang-rt-14-dev
  libstb-dev fonts-dejavu-core libpcre2-dev
)

if [[ ${1:-} == --tests ]]; then
  packages+=(libopenmpi-dev openmpi-bin)
fi

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  sudo="sudo"
fi
echo "attn: installing missing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
