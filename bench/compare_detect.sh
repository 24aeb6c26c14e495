#!/bin/sh
# Compare Haar face detection speed with OpenCV 4.6 (Debian python3-opencv) on the same 640x480
# images, at 1 and 2 threads: default frontal-face cascade, scaleFactor 1.1, minNeighbors 3,
# minSize 24. Ours: detect = best kernel (AVX-512 here), detect_avx2 = AVX2 kernel, detect_scalar =
# portable scalar path.
#   bench/compare_detect.sh BUILD_DIR [SHARED_DIR] [N_IMAGES]
# BUILD_DIR must hold bench_detect (bench/ target); SHARED_DIR defaults to ../shared.
set -eu
BUILD=${1:?usage: compare_detect.sh BUILD_DIR [SHARED_DIR] [N_IMAGES]}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${2:-$ROOT/../shared}
N=${3:-8}
BENCH=$(find "$BUILD" -name bench_detect -type f -perm -u+x | head -n 1)
[ -n "$BENCH" ] || { echo "compare_detect: bench_detect not found under $BUILD" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
/usr/bin/python3 - "$SHARED" "$TMP" "$N" "$ROOT" <<'PY'
import os, sys, time
import cv2
shared, tmp, n, root = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
imgroot = os.path.join(shared, "data", "wider-dev", "images")
names = sorted(os.path.join(e, f) for e in os.listdir(imgroot) for f in os.listdir(os.path.join(imgroot, e)))
step = max(1, len(names) // n)
ims = []
for i, name in enumerate(names[::step][:n]):
    g = cv2.cvtColor(cv2.resize(cv2.imread(os.path.join(imgroot, name)), (640, 480), interpolation=cv2.INTER_AREA),
                     cv2.COLOR_BGR2GRAY)
    cv2.imwrite(os.path.join(tmp, "%02d.png" % i), g)
    ims.append(g)
cc = cv2.CascadeClassifier(os.path.join(root, "weights", "haarcascade_frontalface_default.xml"))
for t in (1, 2):
    cv2.setNumThreads(t)
    best = 1e9
    for rep in range(5):
        t0 = time.perf_counter()
        for g in ims:
            cc.detectMultiScale(g, scaleFactor=1.1, minNeighbors=3, minSize=(24, 24))
        best = min(best, (time.perf_counter() - t0) * 1000 / len(ims))
    print("opencv %s  threads=%d  %.1f ms/image (best of 5)" % (cv2.__version__, t, best))
PY
"$BENCH" --images "$TMP" --benchmark_filter='detect' --benchmark_repetitions=5 --benchmark_format=csv 2>/dev/null |
  awk -F, -v n="$N" '/^"?detect[a-z0-9_]*\/threads\/[12]\/real_time"?,/ {
      name=$1; gsub(/"/, "", name); split(name, a, "/"); k=a[1] " threads=" a[3]; v=$3/n
      if (!(k in best) || v < best[k]) best[k]=v }
    END { for (k in best) printf "facecnn vision %s  %.1f ms/image (best of 5)\n", k, best[k] }' | sort
lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); m=$2} /^CPU\(s\)/ {gsub(/^ +/, "", $2); n=$2}
  END {print "CPU: " m ", " n " logical CPUs"}'
grep -q avx512f /proc/cpuinfo && echo "AVX-512: yes (the SIMD kernel is used)" || echo "AVX-512: no (scalar path)"
