#!/usr/bin/env bash
# device_check.sh — everything a GPU lease is for, in one run (docs/cuda.md, "On a GPU machine").
#
#   scripts/device_check.sh --prepare       # here, on the CPU machine: copy doctest into .devdeps/
#   scripts/device_check.sh [--quick]       # there: build, test, time; figures into $OUT
#   scripts/device_check.sh --compile-only  # any machine with nvcc (CI): build, and check that the
#                                           # cuda tests skip and cnn-infer --device cuda is refused
#                                           # cleanly where there is no GPU
#
# On the GPU machine (nvcc, CMake, PyTorch; no image libraries, no doctest, nothing to download):
#   1. builds the engine alone with the CUDA backend into build-cuda/ (-DFACECNN_CUDA=ON
#      -DFACECNN_VISION=OFF, doctest from the carried .devdeps/);
#   2. runs the `cuda` tests (every kernel and whole models against the CPU engine);
#   3. times ours against PyTorch/cuDNN (bench/compare_cuda.py): VGG16 and ResNet-50 at batch 1 and
#      64, FP32, TF32 and BF16 (--quick: ResNet-50 only, fewer runs);
#   4. writes $OUT/device_check.json (GPU, driver, test result, figures) beside the logs.
# Every step runs even when one before it fails; the exit code is the first failure's.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == --prepare ]]; then
  [[ -f /usr/include/doctest/doctest.h ]] || { echo "device_check: apt-get install doctest-dev first" >&2; exit 1; }
  rm -rf .devdeps && mkdir -p .devdeps/include .devdeps/lib/cmake
  cp -r /usr/include/doctest .devdeps/include/ && cp -r /usr/lib/cmake/doctest .devdeps/lib/cmake/
  echo "device_check: .devdeps/ ready; carry it: run(command='scripts/device_check.sh', carry=['.devdeps'])"
  exit 0
fi
QUICK=0 COMPILE_ONLY=0
[[ "${1:-}" == --quick ]] && QUICK=1
[[ "${1:-}" == --compile-only ]] && COMPILE_ONLY=1

JOBS=$(nproc)
status=0
step() {  # step NAME LOG COMMAND...: run it, log it, remember the first failure
  local name=$1 log=$2 t0=$SECONDS rc=0
  shift 2
  echo "device_check: $name ..." >&2
  "$@" >"$OUT/$log" 2>&1 || rc=$?
  echo "device_check: $name: exit $rc in $((SECONDS - t0)) s" >&2
  ((rc == 0 || status != 0)) || status=$rc
  eval "RC_${name//-/_}=$rc"
}

if ((COMPILE_ONLY)); then
  set -e
  cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DFACECNN_CUDA=ON -DFACECNN_VISION=OFF \
    -DFACECNN_BUILD_BENCH=OFF >/dev/null
  cmake --build build-cuda --target cuda_tests cnn-infer -j "$JOBS"
  # Without a GPU: `cuda` skips (exit 77); the CLI checks accept cnn-infer's refusal of --device cuda.
  ctest --test-dir build-cuda -R '^(cuda|cli_golden_heads)$' --output-on-failure
  exit 0
fi
OUT=${OUT:-build-cuda/device_check}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv >"$OUT/gpu.csv" 2>&1 || true
cat "$OUT/gpu.csv" >&2
step configure configure.log cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DFACECNN_CUDA=ON \
  -DFACECNN_VISION=OFF -DFACECNN_BUILD_BENCH=OFF -DCMAKE_PREFIX_PATH="$PWD/.devdeps"
step build build.log cmake --build build-cuda --target cuda_tests cnn-infer -j "$JOBS"
step tests tests.log ctest --test-dir build-cuda -L cuda --output-on-failure --timeout 600
tail -n 30 "$OUT/tests.log" >&2
if ((QUICK)); then
  step bench bench.log python3 bench/compare_cuda.py --cnn-infer build-cuda/bin/cnn-infer --models resnet50 \
    --batches 1,64 --runs 10 --out "$OUT/cuda_peers.md" --json "$OUT/cuda_peers.json"
else
  step bench bench.log python3 bench/compare_cuda.py --cnn-infer build-cuda/bin/cnn-infer --models vgg16,resnet50 \
    --batches 1,64 --runs 20 --no-split-k-too --out "$OUT/cuda_peers.md" --json "$OUT/cuda_peers.json"
fi
cat "$OUT/cuda_peers.md" >&2 2>/dev/null

python3 - "$OUT" "$RC_configure" "$RC_build" "$RC_tests" "$RC_bench" <<'EOF'
import json, os, sys
out, rcs = sys.argv[1], dict(zip(["configure", "build", "tests", "bench"], map(int, sys.argv[2:])))
peers = {}
try:
    peers = json.load(open(os.path.join(out, "cuda_peers.json")))
except (OSError, ValueError):
    pass
gpu = open(os.path.join(out, "gpu.csv")).read().strip().splitlines()[-1] if os.path.exists(os.path.join(out, "gpu.csv")) else "?"
tests_log = os.path.join(out, "tests.log")
skipped = os.path.exists(tests_log) and "(Skipped)" in open(tests_log).read()  # no usable GPU
json.dump({"gpu": gpu, "exit_codes": rcs, "cuda_tests_skipped": skipped, "figures": peers.get("rows", [])},
          open(os.path.join(out, "device_check.json"), "w"), indent=1)
EOF
echo "device_check: figures in $OUT/device_check.json; exit $status" >&2
exit "$status"
