#!/usr/bin/env bash
# Installs everything the project builds, tests and benchmarks with (Debian packages only).
# Python/PyTorch are used only by the offline tools in tools/ and the comparison tests.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  g++ cmake make pkg-config \
  libeigen3-dev libstb-dev doctest-dev libbenchmark-dev nlohmann-json3-dev opencv-data \
  python3 python3-numpy python3-torch python3-torchvision python3-opencv libopenblas0-openmp \
  >/dev/null
# Test side, hostile input (docs/robustness.md): clang with libFuzzer and the sanitizer runtimes
# for scripts/fuzz.sh (CI runs it). Skip with FACECNN_NO_FUZZ=1 where no fuzzing is wanted.
if [ "${FACECNN_NO_FUZZ:-0}" != 1 ]; then
  $SUDO apt-get install -y -qq --no-install-recommends clang libclang-rt-dev >/dev/null
fi
echo "setup: packages installed"
