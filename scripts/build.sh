#!/usr/bin/env bash
# Configures and builds (Release) into build/.
#   scripts/build.sh [TARGET...]          everything, or the targets named; tests included
#                                         (needs what scripts/setup.sh tests installs)
#   scripts/build.sh --apps [TARGET...]   configured without the tests, so that what
#                                         scripts/setup.sh demo installs is enough
set -euo pipefail
cd "$(dirname "$0")/.."
tests=ON
if [ "${1:-}" = --apps ]; then tests=OFF; shift; fi
# Set every time: a tree configured by --apps gets its tests back on the next full build.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DFACECNN_BUILD_TESTS=$tests >/dev/null
cmake --build build -j"$(nproc)" ${1:+--target "$@"}
