#!/usr/bin/env bash
# The age/gender figures of docs/agegender.md: the bundled models on UTKFace val.txt (aligned
# crops), on wider-dev and wider-pool (whole pipeline on wild photos, labelled faces >= 40 px;
# the age rows there score the perceived-age bands of tools/make_manifests.py), and the same
# faces framed otherwise (tight and loose crops); reports in docs/results/. Needs ../shared/data
# (or DATA=...) and Debian's python3 with python3-opencv for the manifests.
#   scripts/eval_agegender.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${1:-docs/results}
CACHE=${CACHE:-/tmp/facecnn-utk}
scripts/build.sh agegender >/dev/null
mkdir -p out/manifests "$OUT"
/usr/bin/python3 tools/make_manifests.py --data "$DATA" --cache "$CACHE" --out out/manifests
run() {  # model, set name, manifest, root, extra flags
  build/bin/agegender --model "$1" --quiet --manifest "out/manifests/$3" --root "$4" ${5:-} \
    --predictions "out/$1-$2.csv" --report "$OUT/$1-$2.md" >/dev/null
  echo "== $1 on $2 ($OUT/$1-$2.md)"
  grep -A2 "^| TP" "$OUT/$1-$2.md" | tail -1
  grep -A2 "^| exact" "$OUT/$1-$2.md" | tail -1 || true
  grep "^Rows" "$OUT/$1-$2.md"
}
for model in resnet vgg16 faceapi; do
  run "$model" utkface-val utkface-val.csv "$CACHE/utkface" --aligned
  run "$model" wider-dev wider-dev.csv "$DATA/wider-dev"
  run "$model" wider-pool wider-pool.csv "$DATA/wider-pool"   # where models are chosen
  # Framing: the UTKFace crops (tight) through the whole pipeline, and wider-dev faces cut loosely
  # (twice their box) as crops and through the whole pipeline.
  run "$model" utkface-val-pipeline utkface-val.csv "$CACHE/utkface"
  run "$model" wider-loose-aligned wider-dev-loose.csv out/manifests/wider-loose --aligned
  run "$model" wider-loose-pipeline wider-dev-loose.csv out/manifests/wider-loose
done
