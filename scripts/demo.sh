#!/usr/bin/env bash
# Builds the apps and runs the demo on the bundled model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh cnn-infer >/dev/null
build/apps/cnn-infer --weights weights/demo-resnet18-tiny.safetensors --summary
build/apps/cnn-infer --weights weights/demo-resnet18-tiny.safetensors --bench 20 --threads 2
