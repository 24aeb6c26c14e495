#!/usr/bin/env bash
# Builds the apps and runs the demo on the bundled photo with the bundled weights: age group, age
# and gender of the face (the three models), the detector's boxes and the aligned crop. Outputs in out/.
# Needs only what `scripts/setup.sh demo` installs (scripts/build.sh --apps: no test dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh --apps agegender detect >/dev/null
mkdir -p out/faces
echo "== agegender (default model: face-api network fine-tuned, int8): samples/astronaut.png -> out/astronaut_agegender.png"
build/bin/agegender samples/astronaut.png --annotate out/astronaut_agegender.png --crops out/faces
echo "== agegender (ResNet-18 model, phase II)"
build/bin/agegender samples/astronaut.png --model resnet
echo "== agegender (VGG16-BN model, phase I), JSON"
build/bin/agegender samples/astronaut.png --model vgg16 --json
echo "== detect: boxes only -> out/astronaut_faces.png"
build/bin/detect samples/astronaut.png --annotate out/astronaut_faces.png
