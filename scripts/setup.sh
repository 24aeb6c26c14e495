#!/usr/bin/env bash
# Installs the Debian packages for what is wanted (as root, or through sudo):
#   scripts/setup.sh demo    what the apps build with: compiler, CMake, image I/O libraries.
#                            Enough for scripts/demo.sh and for scripts/build.sh --apps.
#   scripts/setup.sh tests   (the default) the demo set plus what scripts/test.sh, .ci/run, the
#                            benchmarks and the offline tools in tools/ use: doctest, JSON, Google
#                            Benchmark, Python with NumPy/PyTorch/torchvision/OpenCV, clang with
#                            libFuzzer and the sanitizer runtimes.
# The cascades and models the apps and tests read are bundled in weights/: no opencv-data needed.
set -euo pipefail
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }
want="${1:-tests}"
case "$want" in
  demo|tests) ;;
  -h|--help) usage; exit 0 ;;
  *) echo "setup.sh: unknown set '$want' (demo or tests)" >&2; usage >&2; exit 2 ;;
esac

# The apps: C++17 compiler, CMake (with make as its generator), and the image I/O libraries of
# include/vision/image_io.hpp (Debian's stb, libjpeg-turbo, libpng).
DEMO=(g++ cmake make libstb-dev libjpeg62-turbo-dev libpng-dev)
# The tests, on top of the demo set:
#   doctest-dev            tests/ and tests/vision/ (find_package(doctest REQUIRED))
#   nlohmann-json3-dev     tests/vision's golden files (test_detect_golden, test_face_detector)
#   libbenchmark-dev       bench/ (built by scripts/build.sh when found)
#   python3 + numpy/torch/torchvision: the PyTorch comparisons (tests/CMakeLists.txt, label torch)
#                          and the face-api converter test; libopenblas0-openmp is the BLAS that
#                          Debian's PyTorch runs those comparisons (and tools/) with
#   python3-opencv         tools/ that make the golden files (tools/opencv_golden.py, ...)
#   python3-onnx           bench/compare_peers.sh --precision int8: ONNX Runtime's QDQ model
#   clang, libclang-rt-dev libFuzzer and the sanitizer runtimes for scripts/fuzz.sh (.ci/run runs
#                          it; docs/robustness.md). Left out with FACECNN_NO_FUZZ=1.
TESTS=(doctest-dev nlohmann-json3-dev libbenchmark-dev
       python3 python3-numpy python3-torch python3-torchvision libopenblas0-openmp python3-opencv
       python3-onnx)
FUZZ=(clang libclang-rt-dev)

pkgs=("${DEMO[@]}")
if [ "$want" = tests ]; then
  pkgs+=("${TESTS[@]}")
  [ "${FACECNN_NO_FUZZ:-0}" = 1 ] || pkgs+=("${FUZZ[@]}")
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
echo "setup: $want packages installed"
