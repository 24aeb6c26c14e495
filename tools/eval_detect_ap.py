#!/usr/bin/python3
"""Detection AP@0.5 on ../shared/data/wider-dev for the bundled face cascades: ours (apps/detect
--json) beside OpenCV 4.6 with the same cascade and parameters (scaleFactor 1.1, minNeighbors 3,
minSize 24). Boxes are ranked by their neighbour count. Ground truth: WIDER's non-invalid boxes;
"all" uses every face, ">=40" only faces at least 40 px tall (smaller faces and detections whose
matched face is smaller are ignored, neither hits nor misses - WIDER's "ignore" convention).
  /usr/bin/python3 tools/eval_detect_ap.py --detect BUILD/bin/detect [--shared ../shared]
        [--cascades a.xml,b.xml] [--every N]
Prints a Markdown table (used in docs/vision.md). The reader and AP are in tools/wider_eval.py.
"""
import argparse
import json
import os
import subprocess

import cv2

from wider_eval import ap, read_gt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
