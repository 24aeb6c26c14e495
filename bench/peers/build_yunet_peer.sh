#!/bin/sh
# Builds bench/peers/yunet_peer: libfacedetection (YuNet, 3-clause BSD) compiled from the read-only
# copy in ../shared/third_party/libfacedetection (never copied into this repository) together with
# the driver bench/peers/yunet_peer.cpp, which decodes images with this repository's loader.
#
#   bench/peers/build_yunet_peer.sh [OUTDIR] [--shared DIR] [--simd avx512|avx2|none]
#                                                   (OUTDIR default: build-peers)
#
# The shared folder is --shared DIR, else $FACECNN_SHARED, else ../shared beside the repository.
# Flags: -O3 -march=native -fopenmp and -D_ENABLE_AVX512 when the CPU has AVX-512F, else
# -D_ENABLE_AVX2 when it has AVX2 (libfacedetection's own kernels), else its scalar code; --simd
# forces one of them.
# Needs g++ with OpenMP, Debian's libstb, libjpeg-turbo and libpng (libstb-dev libjpeg62-turbo-dev
# libpng-dev). Compiles at most 2 files at a time.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=""
simd_req=""
shared="${FACECNN_SHARED:-$root/../shared}"
while [ $# -gt 0 ]; do
  case "$1" in
    --shared) [ $# -ge 2 ] || { echo "build_yunet_peer.sh: --shared needs a directory" >&2; exit 2; }
              shared="$2"; shift 2 ;;
    --shared=*) shared="${1#--shared=}"; shift ;;
    --simd) [ $# -ge 2 ] || { echo "build_yunet_peer.sh: --simd needs avx512, avx2 or none" >&2; exit 2; }
            simd_req="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "build_yunet_peer.sh: unknown flag $1" >&2; exit 2 ;;
    *) [ -z "$out" ] || { echo "build_yunet_peer.sh: one OUTDIR only" >&2; exit 2; }
       out="$1"; shift ;;
  esac
done
[ -n "$out" ] || out="$root/build-peers"
src="$shared/third_party/libfacedetection/src"
if [ ! -f "$src/facedetectcnn.h" ]; then
  echo "build_yunet_peer.sh: $src/facedetectcnn.h not found (use --shared DIR or FACECNN_SHARED)" >&2
  exit 1
fi
CXX="${CXX:-g++}"
stb=""
for d in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib; do
  if [ -e "$d/libstb.so" ] || [ -e "$d/libstb.a" ]; then stb="-L$d -lstb -ljpeg -lpng"; break; fi
done
[ -n "$stb" ] || { echo "build_yunet_peer.sh: libstb not found (apt-get install libstb-dev)" >&2; exit 1; }

case "$simd_req" in
  avx512) simd=-D_ENABLE_AVX512 ;;
  avx2) simd=-D_ENABLE_AVX2 ;;
  none) simd="" ;;
  "") if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then simd=-D_ENABLE_AVX512
      elif grep -qw avx2 /proc/cpuinfo 2>/dev/null; then simd=-D_ENABLE_AVX2
      else simd=""; fi ;;
  *) echo "build_yunet_peer.sh: --simd $simd_req: expected avx512, avx2 or none" >&2; exit 2 ;;
esac
flags="-O3 -march=native $simd -fopenmp"

mkdir -p "$out/yunet_obj"
obj="$out/yunet_obj"
# libfacedetection's export header, generated (its CMake build would make it).
printf '#pragma once\n#define FACEDETECTION_EXPORT\n' > "$obj/facedetection_export.h"
echo "yunet_peer: $CXX $flags (libfacedetection from $src)"

# Compile the four translation units two at a time (facedetectcnn-data.cpp is the slow one).
compile() {  # compile SRC OBJ EXTRA...
  s="$1"; o="$2"; shift 2
  $CXX -std=c++17 $flags -I"$obj" -I"$src" "$@" -c "$s" -o "$o"
}
waitboth() {  # waitboth PID PID: fails if either compile failed
  rc=0; wait "$1" || rc=1; wait "$2" || rc=1
  [ $rc -eq 0 ] || { echo "build_yunet_peer.sh: compilation failed" >&2; exit 1; }
}
compile "$src/facedetectcnn-data.cpp" "$obj/data.o" -w & p1=$!
compile "$src/facedetectcnn.cpp" "$obj/cnn.o" -w & p2=$!
waitboth $p1 $p2
compile "$src/facedetectcnn-model.cpp" "$obj/model.o" -w & p1=$!
compile "$here/yunet_peer.cpp" "$obj/driver.o" -Wall -Wextra -I"$root/include" & p2=$!
waitboth $p1 $p2
$CXX -fopenmp "$obj/data.o" "$obj/cnn.o" "$obj/model.o" "$obj/driver.o" $stb -o "$out/yunet_peer.part"
mv "$out/yunet_peer.part" "$out/yunet_peer"
echo "built $out/yunet_peer"
