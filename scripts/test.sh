#!/usr/bin/env bash
# Builds and runs the whole test suite (unit tests, CLI checks, PyTorch/OpenCV comparisons).
# Needs what `scripts/setup.sh tests` installs (the demo needs less: `scripts/setup.sh demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
ctest --test-dir build --output-on-failure -j2 "$@"
