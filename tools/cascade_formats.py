#!/usr/bin/python3
"""Small cascade fixtures for the loader tests: the first stages of a bundled cascade written in
OpenCV's new format and again in the old haartraining format (same trees, same features), plus
OpenCV's raw detections (minNeighbors=0) with the new-format file on a synthetic image.

  /usr/bin/python3 tools/cascade_formats.py      -> tests/vision/golden/cascade_*.xml, cascade_raw.txt
"""
import os
import xml.etree.ElementTree as ET

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLD = os.path.join(ROOT, "tests", "vision", "golden")
HEADER = "<!-- Derived from OpenCV's %s (opencv-data, Intel License Agreement; see weights/%s for the full licence text). First %d stages only, for tests. -->\n"


def load(path):
    root = ET.parse(path).getroot()
    c = root[0]
    w, h = int(c.find("width").text), int(c.find("height").text)
    feats = []
    for f in c.find("features"):
        rects = [list(map(float, r.text.split())) for r in f.find("rects")]
        t = f.find("tilted")
        feats.append((rects, int(t.text) if t is not None else 0))
    stages = []
    for s in c.find("stages"):
        trees = []
        for wc in s.find("weakClassifiers"):
            inn = wc.find("internalNodes").text.split()
            leaves = wc.find("leafValues").text.split()
            nodes = [(int(inn[i]), int(inn[i + 1]), int(inn[i + 2]), inn[i + 3]) for i in range(0, len(inn), 4)]
            trees.append((nodes, leaves))
        stages.append((s.find("stageThreshold").text, trees))
    return w, h, feats, stages


def fmt_rect(r):
    return "%d %d %d %d %s" % (int(r[0]), int(r[1]), int(r[2]), int(r[3]), repr(r[4]))


def write_new(path, name, w, h, feats, stages, n):
    used, remap = [], {}
    for _, trees in stages[:n]:
        for nodes, _ in trees:
            for nd in nodes:
                if nd[2] not in remap:
                    remap[nd[2]] = len(used)
                    used.append(nd[2])
    out = ['<?xml version="1.0"?>\n', HEADER % (name, name, n), "<opencv_storage>\n<cascade>\n",
           "  <stageType>BOOST</stageType>\n  <featureType>HAAR</featureType>\n",
           f"  <height>{h}</height>\n  <width>{w}</width>\n",
           "  <stageParams>\n    <maxWeakCount>100</maxWeakCount></stageParams>\n",
           "  <featureParams>\n    <maxCatCount>0</maxCatCount></featureParams>\n",
           f"  <stageNum>{n}</stageNum>\n  <stages>\n"]
    for thr, trees in stages[:n]:
        out.append(f"    <_>\n      <maxWeakCount>{len(trees)}</maxWeakCount>\n      <stageThreshold>{thr}</stageThreshold>\n      <weakClassifiers>\n")
        for nodes, leaves in trees:
            inn = " ".join(f"{l} {r} {remap[f]} {t}" for (l, r, f, t) in nodes)
            out.append(f"        <_>\n          <internalNodes>\n            {inn}</internalNodes>\n          <leafValues>\n            {' '.join(leaves)}</leafValues></_>\n")
        out.append("      </weakClassifiers></_>\n")
    out.append("  </stages>\n  <features>\n")
    for fi in used:
        rects, tilted = feats[fi]
        rs = "".join(f"\n        <_>\n          {fmt_rect(r)}</_>" for r in rects)
        out.append(f"    <_>\n      <rects>{rs}</rects>\n      <tilted>{tilted}</tilted></_>\n")
    out.append("  </features>\n</cascade>\n</opencv_storage>\n")
    open(path, "w").write("".join(out))


def write_old(path, name, w, h, feats, stages, n):
    out = ['<?xml version="1.0"?>\n', HEADER % (name, name, n),
           '<opencv_storage>\n<cascade_old type_id="opencv-haar-classifier">\n', f"  <size>{w} {h}</size>\n  <stages>\n"]
    for si, (thr, trees) in enumerate(stages[:n]):
        out.append(f"    <_>\n      <!-- stage {si} -->\n      <trees>\n")
        for nodes, leaves in trees:
            out.append("        <_>\n")
            for (l, r, f, t) in nodes:
                rects, tilted = feats[f]
                rs = "".join(f"<_>{fmt_rect(x)}</_>" for x in rects)
                lt = f"<left_node>{l}</left_node>" if l > 0 else f"<left_val>{leaves[-l]}</left_val>"
                rt = f"<right_node>{r}</right_node>" if r > 0 else f"<right_val>{leaves[-r]}</right_val>"
                out.append(f"          <_>\n            <feature>\n              <rects>{rs}</rects>\n"
                           f"              <tilted>{tilted}</tilted></feature>\n            <threshold>{t}</threshold>\n"
                           f"            {lt}\n            {rt}</_>\n")
            out.append("        </_>\n")
        out.append(f"      </trees>\n      <stage_threshold>{thr}</stage_threshold>\n      <parent>{si - 1}</parent>\n      <next>-1</next></_>\n")
    out.append("  </stages>\n</cascade_old>\n</opencv_storage>\n")
    open(path, "w").write("".join(out))


def synthetic():
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, size=(30, 40), dtype=np.uint8)
    img = cv2.resize(img, (160, 120), interpolation=cv2.INTER_CUBIC)
    return cv2.GaussianBlur(img, (5, 5), 0)


def main():
    os.makedirs(GOLD, exist_ok=True)
    img = synthetic()
    cv2.imwrite(os.path.join(GOLD, "synthetic.png"), img)
    lines = []
    for name, n, tag in (("haarcascade_frontalface_default.xml", 7, "default7"),
                         ("haarcascade_eye_tree_eyeglasses.xml", 6, "eyetree6")):
        w, h, feats, stages = load(os.path.join(ROOT, "weights", name))
        pn = os.path.join(GOLD, f"cascade_{tag}_new.xml")
        po = os.path.join(GOLD, f"cascade_{tag}_old.xml")
        write_new(pn, name, w, h, feats, stages, n)
        write_old(po, name, w, h, feats, stages, n)
        for path, fmt in ((pn, "new"), (po, "old")):
            cc = cv2.CascadeClassifier(path)
            if cc.empty():
                print(f"OpenCV {cv2.__version__} cannot load {os.path.basename(path)}")
                continue
            r = cc.detectMultiScale(img, scaleFactor=1.1, minNeighbors=0, minSize=(0, 0))
            boxes = sorted(map(tuple, r.tolist())) if len(r) else []
            lines.append(f"{tag} {fmt} {len(boxes)} " + " ".join("%d,%d,%d,%d" % b for b in boxes))
            print(f"{os.path.basename(path)}: {len(boxes)} raw windows")
    open(os.path.join(GOLD, "cascade_raw.txt"), "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
