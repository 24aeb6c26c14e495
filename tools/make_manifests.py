#!/usr/bin/env python3
"""Writes the evaluation manifests (CSV `image,age,gender[,x,y,w,h]`, read by `agegender --manifest`)
for the shared data:

  utkface-val.csv   UTKFace val.txt: age in years, gender m/f (race stays in the file name);
                    root: the unpacked UTKFace folder (unpacked into --cache if not there yet)
  wider-dev.csv     wider-dev faces with a Male/Female label whose box is at least --min-face px
                    tall (gt.txt box as x,y,w,h; age: the perceived-age label as a band of years,
                    PERCEIVED_AGE, empty where the label is Not Sure); root: wider-dev/
  wider-pool.csv    the same for wider-pool (model selection); root: wider-pool/
  wider-dev-loose.csv  the same faces as loosely framed crops: a square twice the box's longer
                    side around its centre, cut from the photo (clipped at its edges) and written
                    as OUT/wider-loose/NNNN.png; root: OUT/wider-loose (needs python3-opencv)

  python3 tools/make_manifests.py --data ../shared/data --out out/manifests [--cache /tmp/facecnn-utk]

Prints the root to pass to --root for each manifest.
"""
import argparse
import csv
import os
import tarfile


def write_manifest(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def parse_utk(name):
    parts = name.split("_")
    try:
        age, gender = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None
    return (age, "m" if gender == 0 else "f") if gender in (0, 1) else None


def utkface(data, cache, out):
    root = os.path.join(cache, "utkface")
    if not os.path.isdir(root):
        print(f"unpacking utkface.tar into {cache} ...", flush=True)
        os.makedirs(cache, exist_ok=True)
        with tarfile.open(os.path.join(data, "utkface", "utkface.tar")) as t:
            t.extractall(cache)
    rows, skipped = [], []
    for n in open(os.path.join(data, "utkface", "val.txt")):
        n = n.strip()
        lab = parse_utk(n) if n else None
        if lab is None or not os.path.exists(os.path.join(root, n)):
            if n:
                skipped.append(n)
            continue
        rows.append((n, lab[0], lab[1]))
    path = os.path.join(out, "utkface-val.csv")
    write_manifest(path, ["image", "age", "gender"], rows)
    print(f"{path}: {len(rows)} rows (skipped {len(skipped)}: {skipped[:3]}); --root {root}")


def read_gt(path):
    boxes, lines, i = {}, open(path).read().split("\n"), 0
    while i < len(lines) and lines[i].strip():
        name, n = lines[i].strip(), int(lines[i + 1])
        faces = [tuple(int(x) for x in lines[i + 2 + k].split()[:5]) for k in range(n)]
        boxes[name] = faces
        i += 2 + max(n, 1)  # an image without faces still has one line of zeros
    return boxes


# The perceived-age labels as year bands (the labels name no years; these are the bands the age
# figures on wider-dev are scored on: a predicted age agrees with the label when it falls inside).
PERCEIVED_AGE = {"Young Adult": "18-29", "Adult": "30-44", "Middle age": "45-64", "Senior": "65-100"}


def wider(data, out, min_face, name="wider-dev"):
    base = os.path.join(data, name)
    gt = read_gt(os.path.join(base, "gt.txt"))
    rows = []
    with open(os.path.join(base, "demographics.csv")) as f:
        for r in csv.DictReader(f):
            g = {"Male": "m", "Female": "f"}.get(r["perceived_gender"])
            rel = r["file"][len("images/"):] if r["file"].startswith("images/") else r["file"]
            faces = gt.get(rel)
            if g is None or faces is None or int(r["face"]) >= len(faces):
                continue
            x, y, w, h, invalid = faces[int(r["face"])]
            if invalid or h < min_face:
                continue
            rows.append((r["file"], PERCEIVED_AGE.get(r.get("perceived_age", ""), ""), g, x, y, w, h))
    path = os.path.join(out, name + ".csv")
    write_manifest(path, ["image", "age", "gender", "x", "y", "w", "h"], rows)
    print(f"{path}: {len(rows)} labelled faces >= {min_face} px; --root {base}")
    return rows


def wider_loose(data, out, rows):
    import cv2  # only this manifest needs it

    base, folder = os.path.join(data, "wider-dev"), os.path.join(out, "wider-loose")
    os.makedirs(folder, exist_ok=True)
    loose = []
    for i, (image, age, g, x, y, w, h) in enumerate(rows):
        photo = cv2.imread(os.path.join(base, image))
        if photo is None:
            raise SystemExit(f"make_manifests: cannot read {os.path.join(base, image)}")
        side, cx, cy = 2 * max(w, h), x + w / 2, y + h / 2
        x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
        x1, y1 = min(photo.shape[1], int(cx + side / 2)), min(photo.shape[0], int(cy + side / 2))
        name = f"{i:04d}.png"
        cv2.imwrite(os.path.join(folder, name), photo[y0:y1, x0:x1])
        loose.append((name, age, g))
    path = os.path.join(out, "wider-dev-loose.csv")
    write_manifest(path, ["image", "age", "gender"], loose)
    print(f"{path}: {len(loose)} loosely framed crops; --root {folder}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    ap.add_argument("--cache", default="/tmp/facecnn-utk", help="where UTKFace is (or gets) unpacked")
    ap.add_argument("--min-face", type=int, default=40)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    utkface(a.data, a.cache, a.out)
    wider_loose(a.data, a.out, wider(a.data, a.out, a.min_face))
    if os.path.isdir(os.path.join(a.data, "wider-pool")):
        wider(a.data, a.out, a.min_face, "wider-pool")


if __name__ == "__main__":
    main()
