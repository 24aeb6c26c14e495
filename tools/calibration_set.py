#!/usr/bin/env python3
"""Picks calibration images for an int8 form: a seeded random sample of a split's file names,
linked (or copied) into a folder that `agegender --calibrate DIR` / `detect --calibrate DIR` read.

    python3 tools/calibration_set.py --list ../shared/data/utkface/train.txt \
        --images /tmp/facecnn-utk/utkface --count 512 --out /tmp/calib-utk          # age/gender
    python3 tools/calibration_set.py --images ../shared/data/wider-pool/images \
        --count 64 --out /tmp/calib-wider                                            # detector

Calibration images come from the training split only, never from the split a model is reported on.
"""
import argparse
import os
import random
import shutil
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", help="a text file of image names, one per line (default: every image under --images)")
    ap.add_argument("--images", required=True, help="the folder the names are relative to")
    ap.add_argument("--count", type=int, default=512, help="how many to pick (default 512)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True, help="folder to fill (created; must be empty if it exists)")
    ap.add_argument("--copy", action="store_true", help="copy the files instead of linking them")
    a = ap.parse_args()
    if a.count < 1:
        ap.error("--count must be at least 1")
    if a.list:
        with open(a.list) as f:
            names = [line.strip() for line in f if line.strip()]
    else:
        names = sorted(os.path.relpath(os.path.join(d, n), a.images) for d, _, files in os.walk(a.images)
                       for n in files if n.lower().endswith((".jpg", ".jpeg", ".png", ".bmp")))
    missing = [n for n in names if not os.path.isfile(os.path.join(a.images, n))]
    if missing:
        sys.exit(f"calibration_set.py: {len(missing)} listed images are not in {a.images}, e.g. {missing[0]}")
    if len(names) < a.count:
        sys.exit(f"calibration_set.py: {len(names)} images available, {a.count} asked for")
    if os.path.isdir(a.out) and os.listdir(a.out):
        sys.exit(f"calibration_set.py: {a.out} is not empty")
    os.makedirs(a.out, exist_ok=True)
    for n in sorted(random.Random(a.seed).sample(names, a.count)):
        src, dst = os.path.abspath(os.path.join(a.images, n)), os.path.join(a.out, os.path.basename(n))
        shutil.copyfile(src, dst) if a.copy else os.symlink(src, dst)
    print(f"{a.count} of {len(names)} images in {a.out}")


if __name__ == "__main__":
    main()
