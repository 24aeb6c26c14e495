#!/usr/bin/python3
"""Measure the framing of the shared UTKFace aligned crops (the defaults of vision::AlignParams):
eye centres found by OpenCV's eye cascade in the 200x200 crops, and where eyes sit inside a
frontal-face cascade box (the fallback when no eye is found).
  /usr/bin/python3 tools/utk_framing.py [--shared ../shared] [--every 40] [--count 400]
"""
import argparse
import os
import tarfile

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--every", type=int, default=40)
    ap.add_argument("--count", type=int, default=400)
    a = ap.parse_args()
    tar = tarfile.open(os.path.join(a.shared, "data", "utkface", "utkface.tar"))
    members = [m for m in tar.getmembers() if m.name.endswith(".jpg")][a.every - 1:: a.every][: a.count]
    fc = cv2.CascadeClassifier(os.path.join(ROOT, "weights", "haarcascade_frontalface_default.xml"))
    ec = cv2.CascadeClassifier(os.path.join(ROOT, "weights", "haarcascade_eye.xml"))
    L, R, E = [], [], []
    for m in members:
        data = np.frombuffer(tar.extractfile(m).read(), np.uint8)
        g = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
        if g is None:
            continue
        h, w = g.shape
        eyes = ec.detectMultiScale(g[: h // 2 + 20], 1.1, 3, minSize=(15, 15), maxSize=(60, 60))
        le = [(x + ew / 2, y + eh / 2) for x, y, ew, eh in eyes if x + ew / 2 < w / 2]
        re = [(x + ew / 2, y + eh / 2) for x, y, ew, eh in eyes if x + ew / 2 >= w / 2]
        if len(le) != 1 or len(re) != 1:
            continue
        L.append(le[0])
        R.append(re[0])
        faces = fc.detectMultiScale(g, 1.1, 3, minSize=(60, 60))
        if len(faces) == 1:
            x, y, fw, fh = faces[0]
            E.append(((le[0][0] - x) / fw, (le[0][1] - y) / fh, (re[0][0] - x) / fw, (re[0][1] - y) / fh))
    L, R, E = np.array(L), np.array(R), np.array(E)
    print(f"{len(L)} crops with both eyes: left eye {L.mean(0).round(1)} (std {L.std(0).round(1)}), "
          f"right eye {R.mean(0).round(1)} (std {R.std(0).round(1)}) in 200x200")
    print(f"fractions: left_x {L[:, 0].mean() / 200:.4f} right_x {R[:, 0].mean() / 200:.4f} "
          f"eye_y {(L[:, 1].mean() + R[:, 1].mean()) / 400:.4f}")
    print(f"{len(E)} with one face box: eyes in the box at left ({E[:, 0].mean():.3f}, {E[:, 1].mean():.3f}) "
          f"right ({E[:, 2].mean():.3f}, {E[:, 3].mean():.3f})")


if __name__ == "__main__":
    main()
