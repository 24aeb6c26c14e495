#!/usr/bin/env bash
# The age/gender figures of docs/agegender.md: both bundled models on UTKFace val.txt (aligned
# crops) and on wider-dev (whole pipeline on wild photos, labelled faces >= 40 px), reports in
# docs/results/. Needs ../shared/data (or DATA=...) and Debian's python3 for the manifests.
#   scripts/eval_agegender.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=${1:-docs/results}
CACHE=${CACHE:-/tmp/facecnn-utk}
scripts/build.sh agegender >/dev/null
mkdir -p out/manifests "$OUT"
/usr/bin/python3 tools/make_manifests.py --data "$DATA" --cache "$CACHE" --out out/manifests
for model in resnet vgg16; do
  build/apps/agegender/agegender --model "$model" --quiet --manifest out/manifests/utkface-val.csv \
    --root "$CACHE/utkface" --aligned --predictions "out/$model-utkface-val.csv" --report "$OUT/$model-utkface-val.md" >/dev/null
  build/apps/agegender/agegender --model "$model" --quiet --manifest out/manifests/wider-dev.csv \
    --root "$DATA/wider-dev" --predictions "out/$model-wider-dev.csv" --report "$OUT/$model-wider-dev.md" >/dev/null
  for set in utkface-val wider-dev; do
    echo "== $model on $set ($OUT/$model-$set.md)"
    grep -A2 "^| TP" "$OUT/$model-$set.md" | tail -1
    grep -A2 "^| exact" "$OUT/$model-$set.md" | tail -1 || true
    grep "^Rows" "$OUT/$model-$set.md"
  done
done
