"""WIDER FACE ground truth and detection metrics shared by tools/eval_detect_ap.py and
tools/eval_face_detect.py (plain Python + numpy; no OpenCV needed).

Ground truth (../shared/data/wider-*/gt.txt): per image its relative path, the number of faces, then
one line per face `x y w h invalid` (invalid = 1: a box the benchmark ignores).

AP@0.5 (`ap`): detections ranked by score over the whole set; a detection is matched to the
non-invalid face it overlaps most (IoU >= 0.5); a face can be matched once (a second detection on it
is a false positive); with `min_h`, faces shorter than min_h and detections whose matched face is
shorter are ignored (neither hits nor misses, WIDER's "ignore" convention), and so are unmatched
detections shorter than min_h. A detection on an invalid face counts as a false positive. AP is the
area under the precision envelope (VOC's all-points interpolation).
"""
import numpy as np


def read_gt(path):
    """-> {relative image path: [[x, y, w, h, invalid], ...]} in file order."""
    gt, lines, i = {}, open(path).read().split("\n"), 0
    while i < len(lines):
        name = lines[i].strip()
        if not name:
            i += 1
            continue
        n = int(lines[i + 1])
        boxes = []
        for k in range(n):
            v = list(map(int, lines[i + 2 + k].split()[:5]))
            boxes.append(v)
        gt[name] = boxes
        # WIDER writes an all-zero dummy box line after a count of 0.
        dummy = n == 0 and i + 2 < len(lines) and lines[i + 2].split() and all(t == "0" for t in lines[i + 2].split())
        i += 2 + (1 if dummy else n)
    return gt


def iou(a, b):
    """IoU of two [x, y, w, h, ...] boxes (0 when both are empty)."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / float(union) if union > 0 else 0.0


def match(dets, gt, min_h):
    """Greedy matching in score order, as `ap` scores it.
    dets: list of (image, score, box); gt: image -> list of [x y w h invalid].
    Returns (labels, npos): labels = [(score, 1 for a hit / 0 for a false positive)] in ranking order,
    ignored detections left out; npos = the number of faces scored (non-invalid, h >= min_h)."""
    npos = 0
    cares = {}
    for im, boxes in gt.items():
        good = [b for b in boxes if not b[4] and b[2] > 0 and b[3] > 0]
        care = [b[3] >= min_h for b in good]
        cares[im] = (good, care, [False] * len(good))
        npos += sum(care)
    labels = []
    for im, score, box in sorted(dets, key=lambda d: -d[1]):
        good, care, used = cares[im]
        best, bi = 0.5, -1
        for k, g in enumerate(good):
            v = iou(box, g)
            if v >= best:
                best, bi = v, k
        if bi >= 0 and not care[bi]:
            continue  # matched a face we do not score: ignored
        if bi < 0 and box[3] < min_h:
            continue  # small unmatched detection when scoring large faces: ignored
        if bi >= 0 and not used[bi]:
            used[bi] = True
            labels.append((score, 1))
        else:
            labels.append((score, 0))
    return labels, npos


def ap(dets, gt, min_h):
    """AP@0.5 of dets (list of (image, score, box)) against gt (image -> [[x y w h invalid]])."""
    labels, npos = match(dets, gt, min_h)
    if not labels or npos == 0:
        return 0.0
    hit = np.array([h for _, h in labels])
    tp, fp = np.cumsum(hit), np.cumsum(1 - hit)
    rec, prec = tp / npos, tp / np.maximum(tp + fp, 1e-9)
    mrec = np.concatenate([[0], rec, [1]])
    mpre = np.concatenate([[0], prec, [0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def recall(dets, gt, min_h, min_score=None):
    """Share of the non-invalid faces at least min_h tall hit (as in `ap`'s matching) by a detection
    with score >= min_score (None: every detection)."""
    if min_score is not None:
        dets = [d for d in dets if d[1] >= min_score]
    labels, npos = match(dets, gt, min_h)
    return sum(h for _, h in labels) / npos if npos else 0.0


def false_boxes(dets, gt, min_score=None, min_box_h=0):
    """Number of detections (score >= min_score, box height >= min_box_h) that overlap no ground-truth
    box at all (any size, invalid ones included) at IoU >= 0.5. A second box on an already found
    face is not counted here (it matches a ground-truth box)."""
    n = 0
    for im, score, box in dets:
        if min_score is not None and score < min_score:
            continue
        if box[3] < min_box_h:
            continue
        if not any(iou(box, g) >= 0.5 for g in gt[im]):
            n += 1
    return n
