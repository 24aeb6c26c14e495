#!/usr/bin/python3
"""Face detectors compared on WIDER FACE photos (../shared/data/wider-dev, or --set wider-pool).

Each engine is a command prefix that takes image paths and prints one JSON line per image,
{"image","width","height","faces":[{"x","y","w","h","score"...}],"ms"} (apps/detect --json,
build-peers/yunet_peer --json). Boxes are ranked by "score", else by "neighbors".

  /usr/bin/python3 tools/eval_face_detect.py \\
      --engine yunet="build-peers/yunet_peer --json --threads 2" \\
      --engine haar="build/bin/detect --json --threads 2" \\
      [--set wider-dev|wider-pool] [--shared ../shared] [--every N] [--chunk 40]
      [--min-score S | --min-score NAME=S ...] [--sweep] [--json OUT.json]

Metrics per engine (one Markdown table):
  AP all / AP >=40: AP@0.5 against the non-invalid faces, all of them / those at least 40 px tall
      (smaller faces, and detections on them, ignored: tools/wider_eval.py);
  recall >=40: share of the non-invalid faces >= 40 px tall found (IoU >= 0.5) by a box scoring at
      least the operating threshold (--min-score; default: every box the engine printed);
  false/photo: boxes at that threshold overlapping no ground-truth box at all (any size, invalid
      ones included) at IoU >= 0.5, per photo; "false >=40/photo" counts only such boxes >= 40 px tall;
  ms median / mean: the engines' own "ms" per photo (detection only, not decoding).
The header line says how many cores other processes kept busy on average while the engines ran
(/proc/stat minus this run's own CPU time): timings are comparable only when that is near 0.
For timing fairness the engines run interleaved: each on images 0..chunk-1, then each on the next
chunk, ..., the order of the engines rotating from one chunk to the next.
--sweep adds, per engine, recall >=40 and false boxes per photo at thresholds 0.30..0.95 step 0.05
(--sweep-range LO:HI:STEP), to choose a threshold (on wider-pool; report on wider-dev).
"""
import argparse
import datetime
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time

from wider_eval import ap, false_boxes, read_gt, recall

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_engine(name, cmd, paths):
    """Runs cmd + paths -> {path: parsed JSON line}. Any failure aborts with the engine's stderr."""
    try:
        r = subprocess.run(cmd + paths, capture_output=True, text=True)
    except OSError as e:
        sys.exit(f"eval_face_detect: engine {name}: cannot run {cmd[0]}: {e}")
    if r.returncode != 0:
        sys.exit(f"eval_face_detect: engine {name} failed (exit {r.returncode}):\n{r.stderr.strip()}")
    out = {}
    for line in r.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        j = json.loads(line)
        out[j["image"]] = j
    missing = [p for p in paths if p not in out]
    if missing:
        sys.exit(f"eval_face_detect: engine {name} printed no result for {missing[0]} "
                 f"({len(missing)} of {len(paths)} missing)\n{r.stderr.strip()}")
    return out


def face_score(f):
    if "score" in f:
        return float(f["score"])
    if "neighbors" in f:
        return float(f["neighbors"])
    return 1.0


def busy_cpu_seconds():
    """CPU seconds the whole machine has spent busy (Linux /proc/stat), None elsewhere."""
    try:
        with open("/proc/stat") as f:
            v = list(map(int, f.readline().split()[1:]))
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    except (OSError, ValueError, IndexError):
        return None


def parse_min_scores(values, names):
    glob, per = None, {}
    for v in values or []:
        if "=" in v:
            n, s = v.split("=", 1)
            if n not in names:
                sys.exit(f"eval_face_detect: --min-score {v}: no engine called {n}")
            per[n] = float(s)
        else:
            glob = float(v)
    return {n: per.get(n, glob) for n in names}


def frange(spec):
    lo, hi, step = map(float, spec.split(":"))
    out, k = [], 0
    while lo + k * step <= hi + 1e-9:
        out.append(round(lo + k * step, 6))
        k += 1
    return out


def fmt_thr(t):
    return "all boxes" if t is None else f"{t:g}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engine", action="append", required=True, metavar="NAME=COMMAND",
                   help="a detector: name and command prefix (repeat for several)")
    p.add_argument("--shared", default=os.environ.get("FACECNN_SHARED", os.path.join(ROOT, "..", "shared")))
    p.add_argument("--set", default="wider-dev", help="folder under SHARED/data (wider-dev, wider-pool)")
    p.add_argument("--every", type=int, default=1, help="use every N-th image (sorted names)")
    p.add_argument("--chunk", type=int, default=40, help="images per engine call (interleaving round)")
    p.add_argument("--min-score", action="append", metavar="S|NAME=S",
                   help="operating threshold for recall and false boxes (default: every box printed)")
    p.add_argument("--min-height", type=int, default=40, help="face height for the '>=40' figures")
    p.add_argument("--sweep", action="store_true", help="recall and false boxes per threshold, per engine")
    p.add_argument("--sweep-range", default="0.3:0.95:0.05", metavar="LO:HI:STEP")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON")
    a = p.parse_args()

    engines = []
    for e in a.engine:
        if "=" not in e:
            sys.exit(f"eval_face_detect: --engine {e!r}: expected NAME=COMMAND")
        n, c = e.split("=", 1)
        if not n or any(n == m for m, _ in engines):
            sys.exit(f"eval_face_detect: --engine {e!r}: empty or repeated name")
        engines.append((n, shlex.split(c)))
    names = [n for n, _ in engines]
    min_scores = parse_min_scores(a.min_score, names)
    if a.every < 1 or a.chunk < 1:
        sys.exit("eval_face_detect: --every and --chunk must be >= 1")

    base = os.path.join(a.shared, "data", a.set)
    gt_all = read_gt(os.path.join(base, "gt.txt"))
    images = sorted(gt_all)[:: a.every]
    gt = {n: gt_all[n] for n in images}
    paths = [os.path.join(base, "images", n) for n in images]
    name_of = dict(zip(paths, images))
    started = datetime.datetime.now(datetime.timezone.utc)
    wall0, busy0 = time.monotonic(), busy_cpu_seconds()

    results = {n: {} for n in names}  # engine -> image -> JSON line
    for r, lo in enumerate(range(0, len(paths), a.chunk)):
        chunk = paths[lo: lo + a.chunk]
        order = engines[r % len(engines):] + engines[: r % len(engines)]
        for n, cmd in order:
            for path, j in run_engine(n, cmd, chunk).items():
                results[n][name_of[path]] = j
        print(f"  images {lo}..{lo + len(chunk) - 1} done", file=sys.stderr, flush=True)

    # Other processes' CPU use while the engines ran: machine busy time minus our children's.
    wall, busy1 = time.monotonic() - wall0, busy_cpu_seconds()
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    others = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0) - (ru.ru_utime + ru.ru_stime)) / wall
    h = a.min_height
    faces_all = sum(1 for b in (x for v in gt.values() for x in v) if not b[4] and b[2] > 0 and b[3] > 0)
    faces_h = sum(1 for b in (x for v in gt.values() for x in v) if not b[4] and b[3] >= h and b[2] > 0)
    report = {"set": a.set, "images": len(images), "every": a.every, "faces": faces_all,
              f"faces_ge{h}": faces_h, "date_utc": started.strftime("%Y-%m-%d %H:%M"), "cpu": cpu_name(),
              "nproc": os.cpu_count(), "wall_s": wall, "other_cores_busy": others, "engines": {}}
    print(f"\n{a.set}: {len(images)} photos, {faces_all} faces ({faces_h} at least {h} px tall); "
          f"{report['date_utc']} UTC, {report['cpu']}, {os.cpu_count()} CPUs; "
          f"{wall:.0f} s, other processes busy {'?' if others is None else f'{others:.2f}'} cores on average\n")
    print(f"| engine | threshold | AP all | AP >={h} px | recall >={h} px | false/photo | false >={h} px/photo "
          f"| boxes/photo | ms median | ms mean |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    sweeps = {}
    for n, cmd in engines:
        dets = [(im, face_score(f), [f["x"], f["y"], f["w"], f["h"]]) for im in images for f in results[n][im]["faces"]]
        t = min_scores[n]
        kept = [d for d in dets if t is None or d[1] >= t]
        ms = [float(results[n][im]["ms"]) for im in images]
        e = {"command": shlex.join(cmd), "min_score": t, "ap_all": ap(dets, gt, 0), f"ap_ge{h}": ap(dets, gt, h),
             f"recall_ge{h}": recall(dets, gt, h, t), "false_per_photo": false_boxes(dets, gt, t) / len(images),
             f"false_ge{h}_per_photo": false_boxes(dets, gt, t, h) / len(images),
             "boxes_per_photo": len(kept) / len(images), "ms_median": statistics.median(ms),
             "ms_mean": statistics.fmean(ms)}
        report["engines"][n] = e
        print(f"| {n} | {fmt_thr(t)} | {e['ap_all']:.3f} | {e[f'ap_ge{h}']:.3f} | {e[f'recall_ge{h}']:.3f} | "
              f"{e['false_per_photo']:.2f} | {e[f'false_ge{h}_per_photo']:.2f} | {e['boxes_per_photo']:.2f} | "
              f"{e['ms_median']:.1f} | {e['ms_mean']:.1f} |")
        if a.sweep:
            sweeps[n] = [{"min_score": s, f"recall_ge{h}": recall(dets, gt, h, s),
                          "false_per_photo": false_boxes(dets, gt, s) / len(images),
                          f"false_ge{h}_per_photo": false_boxes(dets, gt, s, h) / len(images),
                          "boxes_per_photo": sum(1 for d in dets if d[1] >= s) / len(images)}
                         for s in frange(a.sweep_range)]
            e["sweep"] = sweeps[n]
    for n, rows in sweeps.items():
        print(f"\n{n} on {a.set}, by threshold:\n")
        print(f"| min score | recall >={h} px | false/photo | false >={h} px/photo | boxes/photo |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['min_score']:.2f} | {r[f'recall_ge{h}']:.3f} | {r['false_per_photo']:.2f} | "
                  f"{r[f'false_ge{h}_per_photo']:.2f} | {r['boxes_per_photo']:.2f} |")
    if a.json:
        tmp = a.json + ".part"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
        os.replace(tmp, a.json)


if __name__ == "__main__":
    main()
