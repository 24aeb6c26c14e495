#!/usr/bin/python3
"""Where the CNN face detector's five landmarks sit in the shared UTKFace aligned 200x200 crops:
the framing vision::AlignParams::five_points aligns detected faces to, so that the age/gender
models see faces from photos framed as they were trained.

  /usr/bin/python3 tools/utk_landmarks.py --detect build/bin/detect [--shared ../shared]
                                          [--count 2000] [--work /tmp/utk_landmarks]

Takes every k-th name of UTKFace's train.txt (never val.txt), runs `detect --json` (YuNet) on the
crops, keeps the highest-scoring face of each crop, and prints the median of each landmark as a
fraction of the crop size, with the spread (the 25th-75th percentiles).
"""
import argparse
import json
import os
import subprocess
import tarfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ["eye (image left)", "eye (image right)", "nose tip", "mouth (image left)", "mouth (image right)"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detect", required=True)
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--work", default="/tmp/utk_landmarks")
    a = ap.parse_args()
    utk = os.path.join(a.shared, "data", "utkface")
    names = [n.strip() for n in open(os.path.join(utk, "train.txt")) if n.strip()]
    names = names[:: max(1, len(names) // a.count)][: a.count]
    os.makedirs(a.work, exist_ok=True)
    want = set(names)
    with tarfile.open(os.path.join(utk, "utkface.tar")) as tar:
        for m in tar:
            base = os.path.basename(m.name)
            if base in want and not os.path.exists(os.path.join(a.work, base)):
                with open(os.path.join(a.work, base), "wb") as f:
                    f.write(tar.extractfile(m).read())
    paths = [os.path.join(a.work, n) for n in names if os.path.exists(os.path.join(a.work, n))]
    out = subprocess.run([a.detect, "--json", "--min-score", "0.5", "--threads", "2"] + paths,
                         capture_output=True, text=True)
    pts, sizes = [], []
    for line in out.stdout.splitlines():
        j = json.loads(line)
        if not j["faces"]:
            continue
        f = max(j["faces"], key=lambda f: f["score"])
        pts.append(np.array(f["landmarks"]) / np.array([j["width"], j["height"]]))
        sizes.append(j["width"])
    pts = np.array(pts)
    print(f"{len(pts)} of {len(paths)} crops with a face (crop side {sorted(set(sizes))})")
    med = np.median(pts, axis=0)
    q1, q3 = np.percentile(pts, 25, axis=0), np.percentile(pts, 75, axis=0)
    for k, n in enumerate(NAMES):
        print(f"{n:20s} x {med[k, 0]:.4f} ({q1[k, 0]:.3f}-{q3[k, 0]:.3f})  y {med[k, 1]:.4f} ({q1[k, 1]:.3f}-{q3[k, 1]:.3f})")
    print("five_points = {" + ", ".join(f"{{{x:.4f}f, {y:.4f}f}}" for x, y in med) + "}")


if __name__ == "__main__":
    main()
