#!/usr/bin/python3
"""OpenCV 4.6's ORB on image pairs related by a known rotation/scale (made from ../shared/samples),
for the ORB test: tests/vision/golden/orb_pairs.txt, one line per pair:
    SAMPLE ANGLE SCALE MATCHES CORRECT SHARE
A match (ORB 500 features, brute-force Hamming, ratio test 0.8) is correct when the first
image's keypoint, mapped by the known transform, lies within 3 px of the matched keypoint.
The C++ test builds the same pairs with vision::warp_affine and measures our ORB the same way.
  /usr/bin/python3 tools/orb_compare.py [--shared ../shared]
"""
import argparse
import os

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIRS = [(15, 1.0), (30, 1.0), (45, 1.0), (90, 1.0), (0, 0.8), (0, 1.25), (20, 0.9), (60, 1.1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    a = ap.parse_args()
    lines = []
    tot_c = tot_m = 0
    for sample in ("astronaut.png", "camera.png"):
        g = cv2.cvtColor(cv2.imread(os.path.join(a.shared, "samples", sample)), cv2.COLOR_BGR2GRAY)
        h, w = g.shape
        for ang, sc in PAIRS:
            M = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), ang, sc)
            g2 = cv2.warpAffine(g, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            orb = cv2.ORB_create(nfeatures=500)
            k1, d1 = orb.detectAndCompute(g, None)
            k2, d2 = orb.detectAndCompute(g2, None)
            bf = cv2.BFMatcher(cv2.NORM_HAMMING)
            good = [m for m, n in (p for p in bf.knnMatch(d1, d2, k=2) if len(p) == 2) if m.distance < 0.8 * n.distance]
            ok = 0
            for m in good:
                x, y = k1[m.queryIdx].pt
                px, py = M @ np.array([x, y, 1.0])
                qx, qy = k2[m.trainIdx].pt
                ok += (px - qx) ** 2 + (py - qy) ** 2 <= 9.0
            share = ok / max(len(good), 1)
            tot_c += ok
            tot_m += len(good)
            lines.append(f"{sample} {ang} {sc} {len(good)} {ok} {share:.4f}")
            print(lines[-1])
    print(f"OpenCV overall: {tot_c}/{tot_m} = {tot_c / max(tot_m, 1):.4f}")
    with open(os.path.join(ROOT, "tests", "vision", "golden", "orb_pairs.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
