#!/usr/bin/python3
"""The whole age/gender pipeline on WIDER photos (../shared/data/wider-dev, or --set wider-pool):
how many of the labelled faces it finds and classifies, and how many of its boxes are not faces.

  /usr/bin/python3 tools/eval_pipeline_wider.py --agegender build/bin/agegender
        [--set wider-dev] [--shared ../shared] [--args "--detector haar"] [--every N]
        [--sweep min_score:classify_score,...]

Runs `agegender --json` on every photo that has a labelled face (demographics.csv). Reports:
  found: share of the labelled faces (perceived gender Male/Female, non-invalid box at least 40 px
      tall) that a face the pipeline classified (gave age and gender) overlaps at IoU >= 0.5;
  reported: the same with every face it reported, classified or not;
  false/photo: faces it classified that overlap no ground-truth box at all (any size, invalid ones
      included) at IoU >= 0.5, per photo; "false reported/photo" counts every reported face;
  ms: agegender's own time per photo (detect, align, classify; not decoding), median and mean.
--sweep re-scores one run (made with --min-score 0 --classify-score 0) at several
(min_score, classify_score[, classify_min_height]) settings, to choose the defaults on wider-pool.
"""
import argparse
import csv
import json
import os
import shlex
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wider_eval import iou, read_gt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def labelled_faces(base, gt, min_h):
    """-> {image: [box, ...]} of the Male/Female-labelled, non-invalid faces at least min_h tall."""
    out = {}
    with open(os.path.join(base, "demographics.csv")) as f:
        for row in csv.DictReader(f):
            if row["perceived_gender"] not in ("Male", "Female"):
                continue
            name = row["file"][len("images/"):] if row["file"].startswith("images/") else row["file"]
            boxes = gt.get(name)
            k = int(row["face"])
            if boxes is None or k >= len(boxes):
                continue
            b = boxes[k]
            if b[4] or b[3] < min_h:
                continue
            out.setdefault(name, []).append(b)
    return out


def score(results, gt, labelled, min_score, classify_score, classify_min_h=0):
    found = reported = total = false_cls = false_rep = 0
    for name, faces in results.items():
        rep = [f for f in faces if f["score"] >= min_score]
        cls = [f for f in rep if f["score"] >= classify_score and f["h"] >= classify_min_h and f.get("classified", True)]
        box = lambda f: [f["x"], f["y"], f["w"], f["h"]]  # noqa: E731
        for g in labelled.get(name, []):
            total += 1
            found += any(iou(box(f), g) >= 0.5 for f in cls)
            reported += any(iou(box(f), g) >= 0.5 for f in rep)
        false_cls += sum(not any(iou(box(f), g) >= 0.5 for g in gt[name]) for f in cls)
        false_rep += sum(not any(iou(box(f), g) >= 0.5 for g in gt[name]) for f in rep)
    n = len(results)
    return found / total, reported / total, false_cls / n, false_rep / n, total


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agegender", required=True)
    p.add_argument("--set", default="wider-dev")
    p.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    p.add_argument("--args", default="", help="extra agegender flags, e.g. \"--detector haar\"")
    p.add_argument("--every", type=int, default=1)
    p.add_argument("--min-h", type=int, default=40)
    p.add_argument("--sweep", default="",
                   help="min_score:classify_score[:classify_min_height] settings, comma-separated")
    a = p.parse_args()
    base = os.path.join(a.shared, "data", a.set)
    gt = read_gt(os.path.join(base, "gt.txt"))
    labelled = labelled_faces(base, gt, a.min_h)
    names = sorted(labelled)[:: a.every]
    cmd = [a.agegender, "--json", "--quiet", "--threads", "2"] + shlex.split(a.args)
    if a.sweep:
        cmd += ["--min-score", "0", "--classify-score", "0"]
    out = subprocess.run(cmd + [os.path.join(base, "images", n) for n in names], capture_output=True, text=True)
    if out.returncode not in (0, 1):
        sys.exit(f"agegender failed ({out.returncode}): {out.stderr[-2000:]}")
    results, ms = {}, []
    for line, name in zip(out.stdout.strip().split("\n"), names):
        j = json.loads(line)
        results[name] = j["faces"]
        ms.append(j["ms"])
    print(f"{a.set}: {len(names)} photos with labelled faces; agegender {' '.join(cmd[1:])}")
    print("| min score | classify score | found | reported | false/photo | false reported/photo | labelled faces | ms median | ms mean |")
    print("|---|---|---|---|---|---|---|---|---|")
    pairs = [tuple(map(float, s.split(":"))) for s in a.sweep.split(",")] if a.sweep else [(0.0, 0.0)]
    for pair in pairs:
        ms_, cs, mh = (pair + (0.0,))[:3]
        f, r, fc, fr, total = score(results, gt, {n: labelled[n] for n in names}, ms_, cs, mh)
        label = (f"{ms_:.2f}", f"{cs:.2f}" + (f", h >= {mh:.0f}" if mh else "")) if a.sweep else ("app default", "app default")
        print(f"| {label[0]} | {label[1]} | {f:.3f} | {r:.3f} | {fc:.2f} | {fr:.2f} | {total} | "
              f"{statistics.median(ms):.1f} | {statistics.mean(ms):.1f} |")


if __name__ == "__main__":
    main()
