#!/usr/bin/python3
"""Small awkward-but-valid image fixtures for the bad-input tests (tests/vision/golden/bad/):
16-bit PNG, progressive JPEG, CMYK JPEG and a two-frame GIF (these two need ImageMagick's
`convert`, optional: apt-get install imagemagick), grey+alpha PNG,
palette-free 1x1 PNG. Broken files (empty, truncated, non-image, huge headers) are made by the
tests themselves.   Run: /usr/bin/python3 tools/bad_inputs.py
"""
import os
import shutil
import subprocess

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
D = os.path.join(ROOT, "tests", "vision", "golden", "bad")


def main():
    os.makedirs(D, exist_ok=True)
    y, x = np.mgrid[0:24, 0:32]
    img16 = ((x * 2000 + y * 700) % 65536).astype(np.uint16)
    cv2.imwrite(os.path.join(D, "grey16.png"), img16)
    rgb = np.dstack([(x * 8) % 256, (y * 10) % 256, np.full_like(x, 128)]).astype(np.uint8)
    cv2.imwrite(os.path.join(D, "progressive.jpg"), rgb, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(os.path.join(D, "baseline.jpg"), rgb, [cv2.IMWRITE_JPEG_QUALITY, 95])
    ga = np.dstack([(x * 8) % 256, np.full_like(x, 200)]).astype(np.uint8)
    cv2.imwrite(os.path.join(D, "grey_alpha.png"), np.dstack([ga[..., 0]] * 3 + [ga[..., 1]]))
    cv2.imwrite(os.path.join(D, "one.png"), np.array([[77]], dtype=np.uint8))
    conv = shutil.which("convert")
    if conv:
        r = subprocess.run([conv, os.path.join(D, "baseline.jpg"), "-colorspace", "CMYK", "-quality", "95",
                            os.path.join(D, "cmyk.jpg")])
        print("cmyk.jpg:", "ok" if r.returncode == 0 else "failed")
        # a two-frame GIF: red first frame, blue second
        r = subprocess.run([conv, "-size", "8x6", "xc:red", "xc:blue", os.path.join(D, "two_frames.gif")])
        print("two_frames.gif:", "ok" if r.returncode == 0 else "failed")
    print("wrote fixtures to", D)


if __name__ == "__main__":
    main()
