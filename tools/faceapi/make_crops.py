#!/usr/bin/python3
"""Makes the 150x150 RGB face crops of tests/golden/faceapi/ (input of tools/faceapi/golden.mjs and
of the engine's test against it). Fixed method: OpenCV 4.6 cv2.resize(INTER_AREA), PNG, 8-bit RGB.

  /usr/bin/python3 tools/faceapi/make_crops.py [--out tests/golden/faceapi]
        [--utkface ../shared/data/utkface/utkface.tar --utk-out /tmp/utk150 --utk-count 4]

Committed crops come from public-domain pictures only (samples/astronaut.png and the aligned crop
of it in tests/vision/golden/agegender/); --utkface writes UTKFace crops (non-commercial research
only, so not committed) elsewhere, for a one-off check.
"""
import argparse
import os
import tarfile

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def area150(bgr):
    return cv2.resize(bgr, (150, 150), interpolation=cv2.INTER_AREA)


def write(path, bgr):
    if not cv2.imwrite(path, bgr):
        raise SystemExit(f"{path}: cannot write")
    print(path)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "faceapi"))
    p.add_argument("--utkface")
    p.add_argument("--utk-out", default="/tmp/utk150")
    p.add_argument("--utk-count", type=int, default=4)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    photo = cv2.imread(os.path.join(ROOT, "samples", "astronaut.png"), cv2.IMREAD_COLOR)
    # YuNet's box of the face: x=178 y=63 w=89 h=112; a 180 px square around its centre
    cx, cy, s = 178 + 89 // 2, 63 + 112 // 2, 180
    write(os.path.join(a.out, "astronaut_box.png"), area150(photo[cy - s // 2:cy + s // 2, cx - s // 2:cx + s // 2]))
    aligned = cv2.imread(os.path.join(ROOT, "tests", "vision", "golden", "agegender", "face_astronaut.png"),
                         cv2.IMREAD_COLOR)
    face = area150(aligned)
    write(os.path.join(a.out, "astronaut_aligned.png"), face)
    write(os.path.join(a.out, "astronaut_aligned_flip.png"), np.ascontiguousarray(face[:, ::-1]))
    grey = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    write(os.path.join(a.out, "astronaut_aligned_grey.png"), cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    rng = np.random.default_rng(150)
    write(os.path.join(a.out, "noise.png"), rng.integers(0, 256, (150, 150, 3), dtype=np.uint8))
    if a.utkface:
        os.makedirs(a.utk_out, exist_ok=True)
        with tarfile.open(a.utkface) as t:
            names = sorted(m.name for m in t.getmembers() if m.name.endswith(".jpg"))
            step = max(1, len(names) // a.utk_count)
            for n in names[::step][:a.utk_count]:
                img = cv2.imdecode(np.frombuffer(t.extractfile(n).read(), np.uint8), cv2.IMREAD_COLOR)
                write(os.path.join(a.utk_out, "utk_" + os.path.basename(n).split(".")[0] + ".png"), area150(img))


if __name__ == "__main__":
    main()
