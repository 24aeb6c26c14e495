#!/usr/bin/env bash
# Builds the test suite with sanitizers and runs it (the PyTorch comparisons are left out: they
# exercise the same kernels at full size and take minutes under the sanitizers). Any sanitizer
# report fails the run.
#   scripts/test_asan.sh [ctest args...]            AddressSanitizer + UBSan, in build-asan/
#   scripts/test_asan.sh --thread [ctest args...]   ThreadSanitizer, in build-tsan/ (docs/robustness.md)
#   --skip REGEX (before the ctest args)            leave out these tests too
set -euo pipefail
cd "$(dirname "$0")/.."
mode=address
skip='consumer_project|torch_'
while [ $# -gt 0 ]; do
  case "$1" in
    --thread) mode=thread; shift ;;
    --skip) skip+="|$2"; shift 2 ;;
    *) break ;;
  esac
done
if [ "$mode" = thread ]; then
  dir=build-tsan
  flags="-O1 -g -fsanitize=thread -fno-omit-frame-pointer"
  extra=(-DFACECNN_VISION_TESTS_TIMEOUT=3600)  # ~30 min with the shared photos on 2 busy cores
else
  dir=build-asan
  flags="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
  extra=()
fi
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DFACECNN_BUILD_BENCH=OFF -DCMAKE_CXX_FLAGS="$flags" "${extra[@]}" >/dev/null
# vision_tests and the apps it runs are built only when it is not skipped (--skip, matched as ctest -E
# matches): they are most of the build's time.
targets=(cnn_tests cnn-infer)
[[ vision_tests =~ $skip ]] || targets+=(vision_tests detect agegender)
cmake --build "$dir" -j"$(nproc)" --target "${targets[@]}"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:${TSAN_OPTIONS:-}"
ctest --test-dir "$dir" --output-on-failure -j2 -LE torch -E "$skip" "$@"
