#!/usr/bin/env python3
"""Side-by-side figure of the crops the age/gender models train on (UTKFace "aligned & cropped")
and the crops the app makes from photos (`agegender --crops DIR`: detector + eye alignment), to
check that they are framed alike. Offline documentation tool.

  /usr/bin/python3 tools/framing_figure.py --train /tmp/facecnn-utk/utkface --app out/crops \
      --out docs/results/framing.png
"""
import argparse
import os
import random

from PIL import Image, ImageDraw


def grid(paths, n, side, rng):
    paths = sorted(paths)
    rng.shuffle(paths)
    tiles = [Image.open(p).convert("RGB").resize((side, side), Image.BILINEAR) for p in paths[:n]]
    return tiles


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="folder of training crops")
    ap.add_argument("--app", required=True, help="folder of the app's aligned crops")
    ap.add_argument("--n", type=int, default=8, help="crops per row")
    ap.add_argument("--side", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    rows = []
    for title, folder in (("training (UTKFace)", a.train), ("app: detect + align", a.app)):
        files = [os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith((".jpg", ".png"))]
        rows.append((title, grid(files, a.n, a.side, rng)))
    label_h = 18
    img = Image.new("RGB", (a.n * a.side, len(rows) * (a.side + label_h)), "white")
    d = ImageDraw.Draw(img)
    for r, (title, tiles) in enumerate(rows):
        y = r * (a.side + label_h)
        d.text((4, y + 3), title, fill="black")
        for i, t in enumerate(tiles):
            img.paste(t, (i * a.side, y + label_h))
            # the eye line and centre of the framing, to compare at a glance
            d.line([(i * a.side, y + label_h + int(0.2927 * a.side)), ((i + 1) * a.side - 1, y + label_h + int(0.2927 * a.side))], fill=(0, 255, 0))
    img.save(a.out)
    print(a.out)


if __name__ == "__main__":
    main()
