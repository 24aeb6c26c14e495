#!/usr/bin/python3
"""Peak memory of the apps on the largest photos their memory budget lets through (docs/robustness.md,
"Memory"). Writes flat test photos (no faces, so the second look for a face runs too) into a
scratch folder, runs each app on each under /usr/bin/time and prints a Markdown table of the peak
resident memory, or of the app's refusal.

  /usr/bin/python3 tools/memory_probe.py [--bin build/bin] [--dir /tmp/facecnn-memory]

The photos: 100 MP RGB (baseline JPEG; the pixel limit binds for the CNN), 59 MP progressive JPEG
(its coefficients count), 100 MP RGBA PNG, and 26 MP progressive JPEG (about the most the cascade's
18 bytes per pixel allow at 512 MiB: the cascade runs get --max-memory 530 and detect --keypoints
--annotate 560, so that it passes).
"""
import argparse
import os
import re
import subprocess

import cv2
import numpy as np

PHOTOS = [  # name, height, width, channels, writer flags
    ("rgb_100mp.jpg", 10000, 10000, 3, [cv2.IMWRITE_JPEG_QUALITY, 50]),
    ("rgb_59mp_progressive.jpg", 7400, 8000, 3, [cv2.IMWRITE_JPEG_QUALITY, 50, cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
    ("rgba_100mp.png", 10000, 10000, 4, []),
    ("rgb_26mp_progressive.jpg", 4400, 6000, 3, [cv2.IMWRITE_JPEG_QUALITY, 50, cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
]

RUNS = [  # app and flags (the photo is appended)
    ["agegender"],
    ["detect"],
    ["agegender", "--annotate", "{dir}/annotated.png"],
    ["detect", "--keypoints", "--annotate", "{dir}/annotated.png", "--max-memory", "560"],
    ["agegender", "--detector", "haar", "--max-memory", "530"],
    ["detect", "--detector", "haar", "--max-memory", "530"],
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="build/bin")
    ap.add_argument("--dir", default="/tmp/facecnn-memory")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    for name, h, w, c, flags in PHOTOS:
        path = os.path.join(a.dir, name)
        if not os.path.exists(path):
            img = np.full((h, w, c), 128, np.uint8)
            img[::50, :, :3] = 30  # stripes: something for the decoders to do
            assert cv2.imwrite(path, img, flags), path
    print("| photo | file size | app and flags | peak RSS | result |")
    print("|---|---:|---|---:|---|")
    for name, *_ in PHOTOS:
        path = os.path.join(a.dir, name)
        for run in RUNS:
            args = [x.format(dir=a.dir) for x in run]
            cmd = ["/usr/bin/time", "-f", "PEAK %M", os.path.join(a.bin, args[0])] + args[1:] + [path]
            p = subprocess.run(cmd, capture_output=True, text=True)
            peak = int(re.search(r"PEAK (\d+)", p.stderr).group(1)) / 1024
            errors = [ln for ln in p.stderr.splitlines() if ": error: " in ln]
            result = "refused: " + errors[0].split(": ", 3)[-1] if p.returncode and errors else f"exit {p.returncode}"
            print(f"| {name} | {os.path.getsize(path) / 1e6:.1f} MB | `{' '.join(run).replace('{dir}/', '')}` "
                  f"| {peak:.0f} MiB | {result} |", flush=True)


if __name__ == "__main__":
    main()
