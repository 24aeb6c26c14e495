#!/usr/bin/env bash
# Builds the apps and runs the demo: face detection and alignment on the bundled photo, then the
# CNN engine on the bundled (random-weight) model. Outputs go to out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh cnn-infer detect >/dev/null
mkdir -p out/faces
echo "== detect: faces in samples/astronaut.png (boxes: out/astronaut_faces.png, aligned crops: out/faces/)"
build/apps/detect/detect samples/astronaut.png --json --annotate out/astronaut_faces.png --align out/faces
echo "== cnn-infer: the bundled three-headed model (random weights: a format demo, not a classifier)"
build/apps/cnn-infer --weights weights/demo-resnet18-tiny.safetensors --summary
build/apps/cnn-infer --weights weights/demo-resnet18-tiny.safetensors --bench 20 --threads 2
