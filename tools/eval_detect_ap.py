#!/usr/bin/python3
"""Detection AP@0.5 on ../shared/data/wider-dev for the bundled face cascades: ours (apps/detect
--json) beside OpenCV 4.6 with the same cascade and parameters (scaleFactor 1.1, minNeighbors 3,
minSize 24). Boxes are ranked by their neighbour count. Ground truth: WIDER's non-invalid boxes;
"all" uses every face, ">=40" only faces at least 40 px tall (smaller faces and detections whose
matched face is smaller are ignored, neither hits nor misses - WIDER's "ignore" convention).
  /usr/bin/python3 tools/eval_detect_ap.py --detect BUILD/apps/detect/detect [--shared ../shared]
        [--cascades a.xml,b.xml] [--every N]
Prints a Markdown table (used in docs/vision.md).
"""
import argparse
import json
import os
import subprocess

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_gt(path):
    gt, lines, i = {}, open(path).read().split("\n"), 0
    while i < len(lines):
        name = lines[i].strip()
        if not name:
            i += 1
            continue
        n = int(lines[i + 1])
        boxes = []
        for k in range(n):
            v = list(map(int, lines[i + 2 + k].split()[:5]))
            boxes.append(v)
        gt[name] = boxes
        i += 2 + max(n, 1 if n == 0 and i + 2 < len(lines) and lines[i + 2].strip() == "0 0 0 0 0" else 0)
    return gt


def iou(a, b):
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


def ap(dets, gt, min_h):
    """dets: list of (image, score, box); gt: image -> list of [x y w h invalid]."""
    npos = 0
    cares = {}
    for im, boxes in gt.items():
        good = [b for b in boxes if not b[4] and b[2] > 0 and b[3] > 0]
        care = [b[3] >= min_h for b in good]
        cares[im] = (good, care, [False] * len(good))
        npos += sum(care)
    tp, fp = [], []
    for im, score, box in sorted(dets, key=lambda d: -d[1]):
        good, care, used = cares[im]
        best, bi = 0.5, -1
        for k, g in enumerate(good):
            v = iou(box, g)
            if v >= best:
                best, bi = v, k
        if bi >= 0 and not care[bi]:
            continue  # matched a face we do not score: ignored
        if bi < 0 and box[3] < min_h:
            continue  # small unmatched detection when scoring large faces: ignored
        if bi >= 0 and not used[bi]:
            used[bi] = True
            tp.append(1)
            fp.append(0)
        else:
            tp.append(0)
            fp.append(1)
    if not tp or npos == 0:
        return 0.0
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec, prec = tp / npos, tp / np.maximum(tp + fp, 1e-9)
    mrec = np.concatenate([[0], rec, [1]])
    mpre = np.concatenate([[0], prec, [0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--detect", required=True)
    p.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    p.add_argument("--cascades", default="haarcascade_frontalface_default.xml,haarcascade_frontalface_alt2.xml,"
                                          "lbpcascade_frontalface_improved.xml")
    p.add_argument("--every", type=int, default=1, help="use every N-th image")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    wd = os.path.join(a.shared, "data", "wider-dev")
    gt = read_gt(os.path.join(wd, "gt.txt"))
    names = sorted(gt)[:: a.every]
    gt = {n: gt[n] for n in names}
    cv2.setNumThreads(a.threads)
    print(f"| cascade | ours AP all | OpenCV AP all | ours AP >=40px | OpenCV AP >=40px | images |")
    print(f"|---|---|---|---|---|---|")
    for casc in a.cascades.split(","):
        cpath = os.path.join(ROOT, "weights", casc)
        out = subprocess.run([a.detect, "--cascade", cpath, "--json", "--threads", str(a.threads)] +
                             [os.path.join(wd, "images", n) for n in names], capture_output=True, text=True, check=True)
        ours = []
        for line, n in zip(out.stdout.strip().split("\n"), names):
            j = json.loads(line)
            ours += [(n, f["neighbors"], [f["x"], f["y"], f["w"], f["h"]]) for f in j["faces"]]
        cc = cv2.CascadeClassifier(cpath)
        theirs = []
        for n in names:
            g = cv2.cvtColor(cv2.imread(os.path.join(wd, "images", n)), cv2.COLOR_BGR2GRAY)
            r, nb = cc.detectMultiScale2(g, scaleFactor=1.1, minNeighbors=3, minSize=(24, 24))
            theirs += [(n, int(k), list(map(int, b))) for b, k in zip(r if len(r) else [], nb if len(nb) else [])]
        print(f"| {casc} | {ap(ours, gt, 0):.3f} | {ap(theirs, gt, 0):.3f} | {ap(ours, gt, 40):.3f} | "
              f"{ap(theirs, gt, 40):.3f} | {len(names)} |", flush=True)


if __name__ == "__main__":
    main()
