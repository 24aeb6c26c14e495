#!/usr/bin/python3
"""Turns the cascade's neighbour count into a probability of being a face, as
vision::CascadeFaceDetector::probability() does: P(face | n) = 1 / (1 + exp(-(a + b ln n))), fitted
by maximum likelihood on wider-pool photos (never wider-dev, which the figures are reported on).
A box is a face when it overlaps a WIDER ground-truth box (any size, invalid ones included) at
IoU >= 0.5.

  /usr/bin/python3 tools/calibrate_cascade.py --detect build/bin/detect
        [--cascade weights/haarcascade_frontalface_alt2.xml] [--shared ../shared] [--every 1]

Prints the share of faces per neighbour count, the fitted a and b, and the fit's probabilities.
"""
import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wider_eval import iou, read_gt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--detect", required=True)
    p.add_argument("--cascade", default=os.path.join(ROOT, "weights", "haarcascade_frontalface_alt2.xml"))
    p.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    p.add_argument("--every", type=int, default=1)
    a = p.parse_args()
    base = os.path.join(a.shared, "data", "wider-pool")
    gt = read_gt(os.path.join(base, "gt.txt"))
    names = sorted(gt)[:: a.every]
    out = subprocess.run([a.detect, "--detector", "haar", "--cascade", a.cascade, "--json", "--min-score", "0",
                          "--threads", "2"] + [os.path.join(base, "images", n) for n in names],
                         capture_output=True, text=True, check=True)
    n_of, face = [], []
    for line, name in zip(out.stdout.strip().split("\n"), names):
        boxes = [g for g in gt[name] if g[2] > 0 and g[3] > 0]
        for f in json.loads(line)["faces"]:
            b = [f["x"], f["y"], f["w"], f["h"]]
            n_of.append(f["neighbors"])
            face.append(any(iou(b, g) >= 0.5 for g in boxes))
    n_of, face = np.array(n_of, float), np.array(face, float)
    x = np.log(np.maximum(n_of, 1))
    # Logistic regression in one variable by Newton's method.
    w = np.zeros(2)
    X = np.stack([np.ones_like(x), x], 1)
    for _ in range(50):
        pr = 1 / (1 + np.exp(-X @ w))
        g = X.T @ (face - pr)
        H = X.T @ (X * (pr * (1 - pr))[:, None])
        w += np.linalg.solve(H, g)
    print(f"{len(face)} boxes on {len(names)} wider-pool photos, {int(face.sum())} faces")
    print("| neighbours | boxes | faces | share | fitted |")
    print("|---|---|---|---|---|")
    for lo, hi in ((3, 3), (4, 5), (6, 9), (10, 19), (20, 39), (40, 10 ** 9)):
        m = (n_of >= lo) & (n_of <= hi)
        if m.sum():
            fit = np.mean(1 / (1 + np.exp(-(w[0] + w[1] * x[m]))))
            label = f"{lo}" if lo == hi else (f"{lo}-{hi}" if hi < 10 ** 9 else f">= {lo}")
            print(f"| {label} | {int(m.sum())} | {int(face[m].sum())} | {face[m].mean():.3f} | {fit:.3f} |")
    print(f"a = {w[0]:.4f}, b = {w[1]:.4f}  (P(n=3) = {1 / (1 + math.exp(-(w[0] + w[1] * math.log(3)))):.3f})")


if __name__ == "__main__":
    main()
