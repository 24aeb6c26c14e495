#!/usr/bin/python3
"""Golden values for the vision tests, computed with Debian's python3-opencv (OpenCV 4.6).

Run with /usr/bin/python3 (the Debian interpreter that has cv2 and numpy):

  /usr/bin/python3 tools/opencv_golden.py fixtures            # resize / grey / integral fixtures
  /usr/bin/python3 tools/opencv_golden.py decode              # JPEG decoding fixtures
  /usr/bin/python3 tools/opencv_golden.py detect --detect build/bin/detect \
        [--shared ../shared] [--count 30]                     # golden boxes

`detect` first asks our `detect --dump-grey DIR` for the grey images our loader decodes (so both
detectors see the same pixels: JPEG decoders differ by a grey level here and there), runs OpenCV's
CascadeClassifier on them at several settings, and also records OpenCV's boxes on its own decode
(cv2.imread) for the end-to-end comparison in docs/vision.md. Output: tests/vision/golden/*.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLD = os.path.join(ROOT, "tests", "vision", "golden")

# (cascade file in weights/, settings list) - settings: scaleFactor, minNeighbors, minSize, maxSize
CASCADES = {
    "haarcascade_frontalface_default.xml": [(1.1, 3, 24, 0), (1.2, 5, 30, 0), (1.05, 1, 40, 300)],
    "haarcascade_frontalface_alt2.xml": [(1.1, 3, 24, 0)],
    "lbpcascade_frontalface_improved.xml": [(1.1, 3, 24, 0), (1.2, 2, 30, 0)],
    "haarcascade_eye_tree_eyeglasses.xml": [(1.15, 3, 20, 0)],
}


def fixtures():
    rng = np.random.default_rng(1234)
    d = os.path.join(GOLD, "resize")
    os.makedirs(d, exist_ok=True)
    # smooth-ish random images so that interpolation weights matter
    base = rng.integers(0, 256, size=(47, 61, 3), dtype=np.uint8)
    base = cv2.GaussianBlur(base, (3, 3), 0)
    base[0:5, 0:5] = 255
    base[-3:, -7:] = 0
    cv2.imwrite(os.path.join(d, "src_c3.png"), base)
    grey = cv2.cvtColor(base, cv2.COLOR_BGR2GRAY)
    cv2.imwrite(os.path.join(d, "src_c1.png"), grey)  # also the grey golden of src_c3
    sizes = [(30, 23), (55, 43), (17, 11), (100, 80), (61, 20), (8, 47), (40, 31), (1, 1), (2, 90)]
    manifest = []
    for (w, h) in sizes:
        for cn, img in (("c1", grey), ("c3", base)):
            for name, flag in (("exact", cv2.INTER_LINEAR_EXACT), ("linear", cv2.INTER_LINEAR),
                               ("area", cv2.INTER_AREA)):
                out = cv2.resize(img, (w, h), interpolation=flag)
                fn = f"{name}_{cn}_{w}x{h}.png"
                cv2.imwrite(os.path.join(d, fn), out)
                manifest.append({"file": fn, "mode": name, "src": f"src_{cn}.png", "w": w, "h": h})
    # integral images of a small image (sum, squared sum, tilted) as OpenCV defines them
    small = rng.integers(0, 256, size=(7, 9), dtype=np.uint8)
    s, sq, t = cv2.integral3(small, sdepth=cv2.CV_32S, sqdepth=cv2.CV_64F)
    with open(os.path.join(GOLD, "integral.txt"), "w") as f:
        f.write("%d %d\n" % (small.shape[1], small.shape[0]))
        for a in (small, s, sq.astype(np.int64), t):
            f.write(" ".join(str(int(v)) for v in a.ravel()) + "\n")
    print(f"wrote {len(manifest)} resize fixtures and integral.txt under {GOLD}")


def wider_images(shared, count):
    root = os.path.join(shared, "data", "wider-dev", "images")
    names = []
    for ev in sorted(os.listdir(root)):
        for fn in sorted(os.listdir(os.path.join(root, ev))):
            names.append(os.path.join(ev, fn))
    step = max(1, len(names) // count)
    return root, names[::step][:count]


def detect(args):
    shared = os.path.abspath(args.shared)
    images = []  # (key, absolute path)
    for fn in ("astronaut.png", "camera.png"):
        images.append(("samples/" + fn, os.path.join(shared, "samples", fn)))
    root, names = wider_images(shared, args.count)
    for n in names:
        images.append(("data/wider-dev/images/" + n, os.path.join(root, n)))
    with tempfile.TemporaryDirectory() as tmp:
        # our decoder's grey pixels, one PNG per input in order
        cmd = [args.detect, "--dump-grey", tmp] + [p for _, p in images]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        out = {"opencv": cv2.__version__, "images": [k for k, _ in images], "runs": []}
        for casc, settings in CASCADES.items():
            cc = cv2.CascadeClassifier(os.path.join(ROOT, "weights", casc))
            assert not cc.empty(), casc
            for (sf, mn, mins, maxs) in settings:
                run = {"cascade": casc, "scale_factor": sf, "min_neighbors": mn, "min_size": mins,
                       "max_size": maxs, "boxes": [], "boxes_cv_decode": []}
                for i, (key, path) in enumerate(images):
                    g = cv2.imread(os.path.join(tmp, f"{i:04d}.png"), cv2.IMREAD_GRAYSCALE)
                    r, nb = cc.detectMultiScale2(g, scaleFactor=sf, minNeighbors=mn,
                                                 minSize=(mins, mins), maxSize=(maxs, maxs))
                    boxes = sorted([list(map(int, b)) + [int(n)] for b, n in
                                    zip(r if len(r) else [], nb if len(nb) else [])])
                    run["boxes"].append(boxes)  # x y w h neighbors
                    g2 = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)
                    r2 = cc.detectMultiScale(g2, scaleFactor=sf, minNeighbors=mn, minSize=(mins, mins),
                                             maxSize=(maxs, maxs))
                    run["boxes_cv_decode"].append(sorted([list(map(int, b)) for b in (r2 if len(r2) else [])]))
                out["runs"].append(run)
                nb = sum(len(b) for b in run["boxes"])
                print(f"{casc} sf={sf} mn={mn} min={mins} max={maxs}: {nb} boxes", file=sys.stderr)
    with open(os.path.join(GOLD, "detect.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(f"wrote {os.path.join(GOLD, 'detect.json')}")


def decode():
    """JPEGs and OpenCV's decoding of them (cv2.imread: libjpeg-turbo, ISLOW IDCT, fancy
    upsampling), saved losslessly as PNG: vision::load_image must give the same pixels."""
    d = os.path.join(GOLD, "decode")
    os.makedirs(d, exist_ok=True)
    src = cv2.imread(os.path.join(ROOT, "samples", "astronaut.png"), cv2.IMREAD_COLOR)
    crop = src[101:101 + 97, 203:203 + 131]  # odd sizes: the chroma upsampler's right and bottom edges
    made = {
        "photo_420.jpg": [cv2.IMWRITE_JPEG_QUALITY, 85],
        "photo_q100.jpg": [cv2.IMWRITE_JPEG_QUALITY, 100],
        "photo_progressive.jpg": [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_PROGRESSIVE, 1],
    }
    for name, params in made.items():
        assert cv2.imwrite(os.path.join(d, name), crop, params), name
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    assert cv2.imwrite(os.path.join(d, "photo_grey.jpg"), grey, [cv2.IMWRITE_JPEG_QUALITY, 90])
    for name in sorted(made) + ["photo_grey.jpg"]:
        px = cv2.imread(os.path.join(d, name), cv2.IMREAD_UNCHANGED)
        assert cv2.imwrite(os.path.join(d, name[:-4] + ".opencv.png"), px), name
        print(f"{name}: {px.shape} decoded by OpenCV {cv2.__version__}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("fixtures")
    sub.add_parser("decode")
    d = sub.add_parser("detect")
    d.add_argument("--detect", required=True, help="path to our built detect app")
    d.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    d.add_argument("--count", type=int, default=30, help="number of wider-dev photos")
    a = ap.parse_args()
    if a.cmd == "fixtures":
        fixtures()
    elif a.cmd == "decode":
        decode()
    else:
        detect(a)


if __name__ == "__main__":
    main()
