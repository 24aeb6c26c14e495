#!/usr/bin/env bash
# Builds and runs the whole test suite (unit tests, CLI checks, PyTorch/OpenCV comparisons).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ctest --test-dir build --output-on-failure -j2 "$@"
