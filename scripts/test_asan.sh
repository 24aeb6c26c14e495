#!/usr/bin/env bash
# Builds the test suite with AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/ and runs
# it (the PyTorch comparisons are left out: they exercise the same kernels at full size and take
# minutes under the sanitizers). Any sanitizer report fails the run.
#   scripts/test_asan.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DFACECNN_BUILD_BENCH=OFF \
  -DCMAKE_CXX_FLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
  >/dev/null
cmake --build build-asan -j"$(nproc)" --target cnn_tests vision_tests cnn-infer detect agegender
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
ctest --test-dir build-asan --output-on-failure -j2 -LE torch -E 'consumer_project|torch_' "$@"
