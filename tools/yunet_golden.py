#!/usr/bin/python3
"""Golden faces of the reference YuNet detector (libfacedetection, built by
bench/peers/build_yunet_peer.sh) for the CNN face detector's tests.

  /usr/bin/python3 tools/yunet_golden.py --peer build-peers/yunet_peer [--shared ../shared]
        [-o tests/vision/golden/yunet.json]

Runs the peer with one thread on 12 photos: ../shared/samples/astronaut.png, camera.png (grey) and
10 wider-dev photos chosen by a fixed rule, for variety of scene and face count:
  * the 60 events of wider-dev/images sorted by their number (0--Parade, 1--Handshaking, ...),
    every 6th one: events 0, 6, 12, ..., 54 (as sorted);
  * in the i-th of them (i = 0..9), the photo whose number of non-invalid faces in gt.txt is nearest
    to TARGETS[i] = 1, 2, 3, 4, 6, 8, 10, 13, 16, 20 (ties: the first by sorted name).
Writes {"generator": the command and the peer's build, "images": paths relative to the shared
folder, "results": per image {"width","height","faces"} with the faces exactly as the peer printed
them (score, score100, x, y, w, h, landmarks; its time "ms" is left out)}.
"""
import argparse
import json
import os
import re
import subprocess
import sys

from wider_eval import read_gt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = [1, 2, 3, 4, 6, 8, 10, 13, 16, 20]
EVENT_STEP = 6


def event_number(event):
    m = re.match(r"(\d+)--", event)
    return int(m.group(1)) if m else 10**9


def choose_wider(gt):
    """The 10 wider-dev photos of the rule above (relative to wider-dev/images)."""
    by_event = {}
    for name, boxes in gt.items():
        by_event.setdefault(name.split("/")[0], []).append((name, sum(1 for b in boxes if not b[4])))
    events = sorted(by_event, key=lambda e: (event_number(e), e))
    chosen = []
    for i, target in enumerate(TARGETS):
        ev = events[(i * EVENT_STEP) % len(events)]
        cands = sorted(by_event[ev])
        chosen.append(min(cands, key=lambda c: abs(c[1] - target))[0])  # min keeps the first of ties
    return chosen


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--peer", required=True, help="the yunet_peer executable")
    p.add_argument("--shared", default=os.environ.get("FACECNN_SHARED", os.path.join(ROOT, "..", "shared")))
    p.add_argument("-o", "--output", default=os.path.join(ROOT, "tests", "vision", "golden", "yunet.json"))
    a = p.parse_args()

    gt = read_gt(os.path.join(a.shared, "data", "wider-dev", "gt.txt"))
    rel = ["samples/astronaut.png", "samples/camera.png"] + \
          ["data/wider-dev/images/" + n for n in choose_wider(gt)]
    paths = [os.path.join(a.shared, r) for r in rel]
    version = subprocess.run([a.peer, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    out = subprocess.run([a.peer, "--json", "--threads", "1"] + paths, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"yunet_golden: the peer failed (exit {out.returncode}):\n{out.stderr.strip()}")
    lines = {}
    for line in out.stdout.splitlines():
        j = json.loads(line)
        lines[j["image"]] = j
    results = []
    for r, path in zip(rel, paths):
        if path not in lines:
            sys.exit(f"yunet_golden: no result for {path}")
        j = lines[path]
        results.append({"width": j["width"], "height": j["height"], "faces": j["faces"]})
    doc = {
        "generator": "tools/yunet_golden.py --peer PEER (bench/peers/build_yunet_peer.sh; run as "
                     f"PEER --json --threads 1 IMAGES); {version}; libfacedetection (3-clause BSD, "
                     "github.com/ShiqiYu/libfacedetection acf7b254121927e7dced30e233a2e03119f28ea2) "
                     "on images decoded by vision::load_image",
        "images": rel,
        "results": results,
    }
    tmp = a.output + ".part"
    with open(tmp, "w") as f:
        f.write("{\n")
        f.write(f' "generator": {json.dumps(doc["generator"])},\n')
        f.write(f' "images": {json.dumps(rel, indent=None)},\n')
        f.write(' "results": [\n')
        f.write(",\n".join("  " + json.dumps(r, separators=(",", ":")) for r in results))
        f.write("\n ]\n}\n")
    json.load(open(tmp))  # well-formed
    os.replace(tmp, a.output)
    n = sum(len(r["faces"]) for r in results)
    print(f"wrote {a.output}: {len(rel)} images, {n} faces")
    for r, res in zip(rel, results):
        print(f"  {r}: {res['width']}x{res['height']}, {len(res['faces'])} faces")


if __name__ == "__main__":
    main()
