#!/usr/bin/env python3
"""Trains an age + gender network on UTKFace (shared/data/utkface) with three heads:
gender (2-way), age group (the 8 Adience groups) and age in years (regression, or with --age-dist
a distribution over 0..100 years whose mean is the age; --ema averages the weights; --teachers
distils the averaged answers of earlier runs on the training images into the new model).

The architectures are the engine's (tools/torch_models.py: torchvision names, width multiplier,
named heads), so the result exports with tools/export_safetensors.py and loads in the C++ engine
unchanged. Runs on the CPU (Debian's python3-torch; install libopenblas0-openmp first) or on CUDA.

  /usr/bin/python3 tools/train_agegender.py --arch resnet18 --size 64 --epochs 40 --out runs/r18
  # the shipped ResNet (docs/agegender.md)
  /usr/bin/python3 tools/train_agegender.py --arch resnet18 --width 0.5 --size 64 --epochs 60 --lr 3e-3 \
      --age-dist --gender-weight 2 --out runs/r18w05-dldl-g2
  # distilled from seven earlier ResNet runs (docs/agegender.md)
  /usr/bin/python3 tools/train_agegender.py --arch resnet18 --width 0.5 --size 64 --epochs 60 --lr 3e-3 \
      --age-dist --gender-weight 2 --teachers runs/r18w05-dldl-g2,runs/r18w05-dldl,... --out runs/r18w05-kd7
  /usr/bin/python3 tools/train_agegender.py --arch vgg16_bn --width 0.5 --size 64 --out runs/vgg
  # smoke test: 600 training images, 1 epoch
  /usr/bin/python3 tools/train_agegender.py --limit 600 --epochs 1 --out /tmp/smoke

Every epoch appends to OUT/log.csv and writes OUT/last.pt (resumable with --resume); the best
epoch on val.txt (by gender accuracy + age-group exact accuracy - MAE/10) is kept as OUT/best.pt
and exported as OUT/best.safetensors. Long runs: start with nohup ... & and watch the log.

Licence: UTKFace is for non-commercial research only; so are weights trained on it.
"""
import argparse
import copy
import csv
import json
import math
import os
import struct
import sys
import tarfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_safetensors  # noqa: E402
import torch_models  # noqa: E402

AGE_GROUPS = ["(0, 2)", "(4, 6)", "(8, 12)", "(15, 20)", "(25, 32)", "(38, 43)", "(48, 53)", "(60, 100)"]
GROUP_UPPER = [3, 7, 13, 22, 35, 45, 56]  # shared/data/README.md: 0-3, 4-7, 8-13, 14-22, 23-35, 36-45, 46-56, 57+
MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]


def age_group(age):
    for g, upper in enumerate(GROUP_UPPER):
        if age <= upper:
            return g
    return 7


def parse_name(name):
    """AGE_GENDER_RACE_DATETIME.jpg.chip.jpg -> (age, gender 0=m 1=f, race) or None if malformed."""
    parts = name.split("_")
    try:
        age, gender, race = int(parts[0]), int(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        return None
    if not (0 <= age <= 120 and gender in (0, 1)):
        return None
    return age, gender, race


def load_split(data, split, cache, side, limit, crops=""):
    """Decodes a split once into uint8 [N, side, side, 3] (cached as .npz) plus labels. With
    `crops`, each image is its app-aligned crop (`agegender DIR --crops CROPS` over the unpacked
    UTKFace folder: CROPS/<name minus .jpg>_face0.png), the original where the detector found none."""
    from PIL import Image
    os.makedirs(cache, exist_ok=True)
    npz = os.path.join(cache, f"{split}_{side}{'_app' if crops else ''}.npz")
    if os.path.exists(npz) and not limit:
        z = np.load(npz)
        return z["images"], z["ages"], z["genders"]
    root = os.path.join(cache, "utkface")
    if not os.path.isdir(root):
        print(f"unpacking utkface.tar into {cache} ...", flush=True)
        with tarfile.open(os.path.join(data, "utkface", "utkface.tar")) as t:
            t.extractall(cache)
    names = [n.strip() for n in open(os.path.join(data, "utkface", f"{split}.txt")) if n.strip()]
    if limit:
        names = names[:limit]
    images, ages, genders, skipped = [], [], [], []
    for n in names:
        lab = parse_name(n)
        path = os.path.join(root, n)
        aligned = os.path.join(crops, n[:-len(".jpg")] + "_face0.png") if crops else ""
        if aligned and os.path.exists(aligned):
            path = aligned
        if lab is None or not os.path.exists(path):
            skipped.append(n)
            continue
        img = Image.open(path).convert("RGB").resize((side, side), Image.BILINEAR)
        images.append(np.asarray(img, dtype=np.uint8))
        ages.append(lab[0])
        genders.append(lab[1])
    if skipped:
        print(f"{split}: skipped {len(skipped)} malformed or missing names, e.g. {skipped[:3]}", flush=True)
    images, ages, genders = np.stack(images), np.array(ages, np.float32), np.array(genders, np.int64)
    if not limit:
        np.savez(npz, images=images, ages=ages, genders=genders)
    return images, ages, genders


def load_val_like_app(data, cache, size, limit):
    """val.txt at the network's input size, resized from the 200x200 crops with pixel-area
    averaging (cv2.INTER_AREA) as vision::AgeGenderClassifier::preprocess does, so the epoch
    chosen here is the one that scores best in the app."""
    import cv2
    root = os.path.join(cache, "utkface")
    names = [n.strip() for n in open(os.path.join(data, "utkface", "val.txt")) if n.strip()]
    if limit:
        names = names[:limit]
    images, ages, genders = [], [], []
    for n in names:
        lab = parse_name(n)
        bgr = cv2.imread(os.path.join(root, n), cv2.IMREAD_COLOR) if lab else None
        if bgr is None:
            continue
        images.append(cv2.cvtColor(cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
        ages.append(lab[0])
        genders.append(lab[1])
    return np.stack(images), np.array(ages, np.float32), np.array(genders, np.int64)


def degrade(x, gen, p, size):
    """Photos in the wild: with probability p, down to 16..size px and back up (low resolution)."""
    b = x.shape[0]
    pick = torch.rand(b, generator=gen) < p
    for i in torch.nonzero(pick)[:, 0].tolist():
        s = int(torch.randint(16, size + 1, (1,), generator=gen))
        small = F.interpolate(x[i:i + 1], size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        x[i:i + 1] = F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return x


def wild(x, gen, p):
    """What photos do to faces, each with probability p (on a float batch [B,3,S,S] in [0,1]): down
    to 20..48 px and back (one size per batch), JPEG at quality 20..70, sensor noise, gamma
    0.6..1.6, a colour cast of +-15% per channel, a grey or noise patch over 10..30% of the face."""
    import cv2
    b, _, h, w = x.shape
    pick = lambda: torch.nonzero(torch.rand(b, generator=gen) < p)[:, 0]  # noqa: E731
    u = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    i = pick()
    if len(i):
        s = int(20 + 29 * u(1))
        small = F.interpolate(x[i], size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        x[i] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    for k in pick().tolist():
        u8 = (x[k].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
        _, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, int(20 + 51 * u(1))])
        x[k] = torch.from_numpy(cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)).permute(2, 0, 1).float() / 255
    i = pick()
    x[i] += torch.randn(len(i), 3, h, w, generator=gen) * 0.04 * u(len(i), 1, 1, 1)
    i = pick()
    x[i] = x[i].clamp(0, 1) ** (0.6 + u(len(i), 1, 1, 1))
    i = pick()
    x[i] *= 1 + (u(len(i), 3, 1, 1) - 0.5) * 0.3
    for k in pick().tolist():
        area = 0.1 + 0.2 * float(u(1))
        ph = max(1, min(h, int(h * math.sqrt(area) * (0.7 + 0.6 * float(u(1))))))
        pw = max(1, min(w, int(h * w * area / ph)))
        y0, x0 = int((h - ph) * float(u(1))), int((w - pw) * float(u(1)))
        x[k, :, y0:y0 + ph, x0:x0 + pw] = float(u(1)) if float(u(1)) < 0.5 else u(3, ph, pw)
    return x.clamp(0, 1)


def read_aligned(paths, side):
    """uint8 [N, side, side, 3] RGB, INTER_AREA from the files (200x200 aligned crops)."""
    import cv2
    out = []
    for pth in paths:
        bgr = cv2.imread(pth, cv2.IMREAD_COLOR)
        if bgr is None:
            sys.exit(f"{pth}: cannot read")
        out.append(cv2.cvtColor(cv2.resize(bgr, (side, side), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    return np.stack(out)


def model_file_targets(path, paths, batch=64):
    """An age/gender model file's answers (a graph file: tools/graph_torch.py) on aligned crops:
    gender [N,2] and group [N,8] probabilities and the age distribution [N,101], each the average
    over the crop and its mirror image."""
    import graph_torch
    import safetensors_io
    tensors, meta = safetensors_io.load(path)
    if "graph" not in meta:
        sys.exit(f"{path}: --teacher-model takes a graph file (tools/train_descriptor_heads.py's export)")
    graph = json.loads(meta["graph"])
    side = int(meta["input_size"].split(",")[1])
    mean = torch.tensor([float(v) for v in meta["mean"].split(",")])[:, None, None]
    std = torch.tensor([float(v) for v in meta["std"].split(",")])[:, None, None]
    parts = [[], [], []]
    with torch.no_grad():
        for i in range(0, len(paths), batch):
            x = torch.from_numpy(read_aligned(paths[i:i + batch], side)).permute(0, 3, 1, 2).float() / 255
            x = (x - mean) / std
            o1, o2 = graph_torch.run_graph(graph, tensors, x), graph_torch.run_graph(graph, tensors, x.flip(3))
            for k, h in enumerate(("gender", "age_group", "age")):
                parts[k].append((o1[h].softmax(1) + o2[h].softmax(1)) / 2)
            if i % (batch * 50) == 0:
                print(f"teacher {os.path.basename(path)}: {i}/{len(paths)}", flush=True)
    return [torch.cat(p) for p in parts]


def augment(x, size, gen, scale_jitter=0.12, shift_jitter=0.08, rotation=12):
    """Random scale/shift/rotation (covering what detection + alignment produce), flip, colour
    and blur, on a float batch [B,3,S,S] in [0,1]; returns [B,3,size,size]."""
    b = x.shape[0]
    ang = (torch.rand(b, generator=gen) - 0.5) * 2 * math.radians(rotation)
    scale = 1 + (torch.rand(b, generator=gen) - 0.5) * 2 * scale_jitter
    shift = (torch.rand(b, 2, generator=gen) - 0.5) * 2 * shift_jitter
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    flip = torch.rand(b, generator=gen) < 0.5
    theta[flip, 0, :2] *= -1
    grid = F.affine_grid(theta, (b, 3, size, size), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    bright = 1 + (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.4
    contrast = 1 + (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.4
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean) * bright
    grey = torch.rand(b, generator=gen) < 0.1
    x[grey] = x[grey].mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    blur = torch.rand(b, generator=gen) < 0.2
    if blur.any():
        k = torch.tensor([1.0, 2.0, 1.0]) / 4
        k2 = (k[:, None] * k[None, :]).expand(3, 1, 3, 3)
        x[blur] = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), k2, groups=3)
    return x.clamp(0, 1)


AGE_BINS = 101  # --age-dist: ages 0..100 years, one bin each (UTKFace's few older faces count as 100)


def age_dist_targets(age, sigma):
    """Label distribution learning: a Gaussian of width sigma years around each true age, [B, AGE_BINS]."""
    years = torch.arange(AGE_BINS, dtype=torch.float32, device=age.device)
    t = torch.exp(-0.5 * ((years[None, :] - age.clamp(max=AGE_BINS - 1)[:, None]) / sigma) ** 2)
    return t / t.sum(1, keepdim=True)


def age_years(out_age):
    """The age head's answer in years: the regression (1 output, years/100) or the distribution's mean."""
    if out_age.shape[1] == 1:
        return out_age[:, 0] * 100
    years = torch.arange(out_age.shape[1], dtype=out_age.dtype, device=out_age.device)
    return (out_age.softmax(1) * years).sum(1)


def group_matrix(bins):
    """[bins, 8]: 1 where a year's bin belongs to an age group."""
    m = torch.zeros(bins, 8)
    for y in range(bins):
        m[y, age_group(y)] = 1
    return m


def to_input(images_u8):
    x = torch.from_numpy(images_u8).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


def evaluate(model, images, ages, genders, size, batch, device):
    model.eval()
    pg, pa, py, pd = [], [], [], []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch]).permute(0, 3, 1, 2).float() / 255
            if x.shape[-1] != size:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            x = ((x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]).to(device)
            out = model(x)
            pg.append(out["gender"].argmax(1).cpu())
            pa.append(out["age_group"].argmax(1).cpu())
            py.append(age_years(out["age"]).cpu())
            if out["age"].shape[1] > 1:  # the group the age distribution puts most mass on
                pd.append((out["age"].softmax(1) @ group_matrix(out["age"].shape[1])).argmax(1).cpu())
    pg, pa, py = torch.cat(pg).numpy(), torch.cat(pa).numpy(), torch.cat(py).numpy()
    groups = np.array([age_group(a) for a in ages])
    extra = {}
    if pd:
        pd = torch.cat(pd).numpy()
        extra = {"group_exact_dist": float((pd == groups).mean()), "group_1off_dist": float((np.abs(pd - groups) <= 1).mean())}
    return {
        "gender_acc": float((pg == genders).mean()),
        "group_exact": float((pa == groups).mean()),
        "group_1off": float((np.abs(pa - groups) <= 1).mean()),
        "age_mae": float(np.abs(py - ages).mean()),
        **extra,
    }


def run_input_side(run):
    """The input side a run folder's model was trained at (its best.safetensors' metadata, "3,S,S")."""
    with open(os.path.join(run, "best.safetensors"), "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    return int(header["__metadata__"]["input_size"].split(",")[-1])


def check_runs(runs, size, what):
    """Exits with a message naming the folder unless every run has best.pt and takes `size` px."""
    for r in runs:
        for f in ("best.pt", "best.safetensors"):
            if not os.path.exists(os.path.join(r, f)):
                sys.exit(f"{what}: {r}: no {f}")
        if run_input_side(r) != size:
            sys.exit(f"{what}: {r} takes {run_input_side(r)} px, not {size}")


def teacher_targets(run_dirs, images, size, sigma, batch=256):
    """The teachers' averaged answers on each training image (whole crop, no augmentation), for
    distillation: gender [N,2] and age-group [N,8] probabilities and an age distribution [N,101]
    (a regression teacher's answer becomes a Gaussian of width sigma around its years)."""
    sums = None
    for d in run_dirs:
        ck = torch.load(os.path.join(d, "best.pt"), map_location="cpu")
        teacher = torch_models.build(ck["config"])
        teacher.load_state_dict(ck["model"])
        teacher.eval()
        parts = [[], [], []]
        with torch.no_grad():
            for i in range(0, len(images), batch):
                x = torch.from_numpy(images[i:i + batch]).permute(0, 3, 1, 2).float() / 255
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
                out = teacher((x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None])
                parts[0].append(out["gender"].softmax(1))
                parts[1].append(out["age_group"].softmax(1))
                parts[2].append(out["age"].softmax(1) if out["age"].shape[1] == AGE_BINS
                                else age_dist_targets(age_years(out["age"]), sigma))
        answers = [torch.cat(p) for p in parts]
        sums = answers if sums is None else [a + b for a, b in zip(sums, answers)]
        print(f"teacher {d}: done", flush=True)
    return [a / len(run_dirs) for a in sums]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    ap.add_argument("--cache", default="/tmp/facecnn-utk", help="where UTKFace is unpacked and decoded")
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--size", type=int, default=64, help="network input side")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--smoothing", type=float, default=0.1)
    ap.add_argument("--wd", type=float, default=0.05, help="AdamW (decoupled) weight decay")
    ap.add_argument("--scale-jitter", type=float, default=0.12, help="random zoom +-, as a fraction")
    ap.add_argument("--shift-jitter", type=float, default=0.08, help="random shift +-, as a fraction of the side")
    ap.add_argument("--degrade", type=float, default=0.0, help="share of images shown at a random lower resolution")
    ap.add_argument("--gender-weight", type=float, default=1.0, help="weight of the gender loss")
    ap.add_argument("--age-dist", action="store_true",
                    help="age head as a distribution over 0..100 years (mean = the age), trained on Gaussian labels")
    ap.add_argument("--age-sigma", type=float, default=2.0, help="width of the --age-dist label, years")
    ap.add_argument("--mixup", type=float, default=0.0, help="mix each batch with a shuffled copy of itself, "
                    "weights drawn from Beta(a, a) with this a (e.g. 0.2; 0 = off), and the losses likewise")
    ap.add_argument("--ema", type=float, default=0.0, help="keep an exponential moving average of the weights "
                    "(decay per step, e.g. 0.999) and evaluate and export that")
    ap.add_argument("--teachers", default="",
                    help="comma-separated run folders (OUT of earlier runs, same input size): distil their "
                         "averaged answers on the training images into this model (kept in "
                         "OUT/teacher_targets.pt, which --resume reuses)")
    ap.add_argument("--kd-alpha", type=float, default=0.5,
                    help="with --teachers: weight of the teachers' answers against the labels")
    ap.add_argument("--crops", default="", help="train on UTKFace as the app aligns it: the folder "
                    "`agegender UTKFACE_DIR --crops CROPS` wrote")
    ap.add_argument("--rotation", type=float, default=12, help="random roll +-, degrees")
    ap.add_argument("--wild-aug", type=float, default=0.0,
                    help="probability of each photo degradation (wild(): low resolution, JPEG, noise, gamma, "
                         "colour cast, occlusion)")
    ap.add_argument("--teacher-model", default="",
                    help="an age/gender graph file (e.g. tools/train_descriptor_heads.py's export): distil its "
                         "answers (crop and mirror averaged) on the training crops and --wild-crops")
    ap.add_argument("--wild-crops", default="",
                    help="a folder of unlabelled aligned face crops (`agegender PHOTOS --crops DIR`), trained "
                         "on the --teacher-model's answers alone")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N training images (smoke tests)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.set_num_threads(a.threads or os.cpu_count())  # Debian's torch defaults to 1 here
    os.makedirs(a.out, exist_ok=True)
    src_side = int(round(a.size * 1.25))  # margin for the geometric jitter
    tr_img, tr_age, tr_gender = load_split(a.data, "train", a.cache, src_side, a.limit, a.crops)
    n_labelled = len(tr_img)
    va_img, va_age, va_gender = load_val_like_app(a.data, a.cache, a.size, a.limit and max(200, a.limit // 4))
    print(f"train {len(tr_img)}, val {len(va_img)}, device {device}, threads {torch.get_num_threads()}", flush=True)

    age_outputs = AGE_BINS if a.age_dist else 1
    heads = [{"name": "gender", "outputs": 2}, {"name": "age_group", "outputs": 8}, {"name": "age", "outputs": age_outputs}]
    cfg = torch_models.default_config(a.arch, width=a.width, heads=heads,
                                      **({"vgg_hidden": max(64, int(512 * a.width)), "vgg_pool": 1}
                                         if a.arch.startswith("vgg") else {}))
    model = torch_models.build(cfg).to(device)
    ema = copy.deepcopy(model) if a.ema > 0 else None
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.wd)
    n_wild = len([f for f in os.listdir(a.wild_crops) if f.endswith(".png")]) if a.wild_crops else 0
    steps_per_epoch = math.ceil((len(tr_img) + n_wild) / a.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.epochs * steps_per_epoch, pct_start=0.15)
    start, best = 0, -1e9
    last = os.path.join(a.out, "last.pt")
    if a.resume and os.path.exists(last):
        ck = torch.load(last, map_location=device)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        start, best = ck["epoch"] + 1, ck["best"]
        if ema is not None and "ema" in ck:
            ema.load_state_dict(ck["ema"])
        print(f"resumed after epoch {ck['epoch']}", flush=True)

    soft = None
    if a.teacher_model:
        if a.teachers or not a.age_dist or a.mixup > 0:
            sys.exit("--teacher-model needs --age-dist, and no --teachers or --mixup")
        names = [n.strip() for n in open(os.path.join(a.data, "utkface", "train.txt")) if n.strip()]
        names = [n for n in names if parse_name(n)][:len(tr_img)]
        paths = []
        for n in names:
            crop = os.path.join(a.crops, n[:-len(".jpg")] + "_face0.png") if a.crops else ""
            paths.append(crop if crop and os.path.exists(crop) else os.path.join(a.cache, "utkface", n))
        wild_paths = sorted(os.path.join(a.wild_crops, f) for f in os.listdir(a.wild_crops)
                            if f.endswith(".png")) if a.wild_crops else []
        cached = os.path.join(a.out, "teacher_targets.pt")
        if os.path.exists(cached) and a.resume:
            soft = torch.load(cached)
        else:
            soft = model_file_targets(a.teacher_model, paths + wild_paths)
            torch.save(soft, cached)
        if wild_paths:  # unlabelled: no label loss (gender -1), the teacher's answers only
            tr_img = np.concatenate([tr_img, read_aligned(wild_paths, src_side)])
            tr_age = np.concatenate([tr_age, np.zeros(len(wild_paths), np.float32)])
            tr_gender = np.concatenate([tr_gender, -np.ones(len(wild_paths), np.int64)])
        print(f"teacher {a.teacher_model}: {n_labelled} labelled crops, {len(wild_paths)} unlabelled", flush=True)
    if a.teachers:
        if not a.age_dist or a.mixup > 0:
            sys.exit("--teachers needs --age-dist and no --mixup")
        check_runs(a.teachers.split(","), a.size, "--teachers")
        cached = os.path.join(a.out, "teacher_targets.pt")
        if os.path.exists(cached) and a.resume:
            soft = torch.load(cached)
        else:
            soft = teacher_targets(a.teachers.split(","), tr_img, a.size, a.age_sigma)
            torch.save(soft, cached)

    log_path = os.path.join(a.out, "log.csv")
    gen = torch.Generator().manual_seed(0)
    tr_groups = torch.tensor([age_group(x) if g >= 0 else -1 for x, g in zip(tr_age, tr_gender)])
    for epoch in range(start, a.epochs):
        model.train()
        t0, total, n = time.time(), 0.0, 0
        order = torch.randperm(len(tr_img), generator=gen)
        for i in range(0, len(order), a.batch):
            idx = order[i:i + a.batch]
            x = torch.from_numpy(tr_img[idx.numpy()]).permute(0, 3, 1, 2).float() / 255
            x = augment(x, a.size, gen, a.scale_jitter, a.shift_jitter, a.rotation)
            if a.degrade > 0:
                x = degrade(x, gen, a.degrade, a.size)
            if a.wild_aug > 0:
                x = wild(x, gen, a.wild_aug)
            x = ((x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]).to(device)
            g = torch.from_numpy(tr_gender[idx.numpy()]).to(device)
            grp = tr_groups[idx].to(device)
            age = torch.from_numpy(tr_age[idx.numpy()]).to(device) / 100
            # Mixup: the batch blended with a shuffled copy; every loss is the same blend of the two
            # labels' losses (lam = 1: the plain batch).
            lam, perm = 1.0, None
            if a.mixup > 0:
                lam = float(torch.distributions.Beta(a.mixup, a.mixup).sample())
                perm = torch.randperm(len(idx), generator=gen).to(device)
                x = lam * x + (1 - lam) * x[perm]
            out = model(x)

            def labels_loss(g, grp, age):
                lab = g >= 0  # unlabelled (--wild-crops) images have none
                if not bool(lab.any()):
                    return out["gender"].sum() * 0
                o = {k: v[lab] for k, v in out.items()}
                g, grp, age = g[lab], grp[lab], age[lab]
                loss = (a.gender_weight * F.cross_entropy(o["gender"], g, label_smoothing=a.smoothing)
                        + F.cross_entropy(o["age_group"], grp, label_smoothing=a.smoothing))
                if a.age_dist:  # DLDL: KL to the label distribution + L1 on its mean (in decades)
                    target = age_dist_targets(age * 100, a.age_sigma)
                    loss = loss + F.kl_div(o["age"].log_softmax(1), target, reduction="batchmean") \
                        + 0.1 * F.l1_loss(age_years(o["age"]), age * 100)
                else:
                    loss = loss + 4 * F.smooth_l1_loss(o["age"][:, 0], age, beta=0.05)
                return loss * (float(lab.sum()) / len(lab))

            loss = labels_loss(g, grp, age)
            if soft is not None:  # distillation: KL from the teachers' answers, each head
                tg, ta, td = (t[idx].to(device) for t in soft)
                kd = (a.gender_weight * F.kl_div(out["gender"].log_softmax(1), tg, reduction="batchmean")
                      + F.kl_div(out["age_group"].log_softmax(1), ta, reduction="batchmean")
                      + F.kl_div(out["age"].log_softmax(1), td, reduction="batchmean"))
                loss = (1 - a.kd_alpha) * loss + a.kd_alpha * kd
            if perm is not None:
                loss = lam * loss + (1 - lam) * labels_loss(g[perm], grp[perm], age[perm])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:  # weights and BatchNorm statistics; a shorter memory while young
                step = epoch * steps_per_epoch + i // a.batch
                d = min(a.ema, (1 + step) / (10 + step))
                with torch.no_grad():
                    for e, v in zip(ema.state_dict().values(), model.state_dict().values()):
                        if e.is_floating_point():
                            e.mul_(d).add_(v, alpha=1 - d)
                        else:  # BatchNorm's batch counter
                            e.copy_(v)
            total += float(loss) * len(idx)
            n += len(idx)
        final = ema if ema is not None else model
        m = evaluate(final, va_img, va_age, va_gender, a.size, 256, device)
        score = m["gender_acc"] + m["group_exact"] - m["age_mae"] / 10
        row = {"epoch": epoch, "loss": total / n, "seconds": round(time.time() - t0, 1), **m}
        print(json.dumps(row), flush=True)
        new = not os.path.exists(log_path)
        with open(log_path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        if score > best:
            best = score
            torch.save({"model": final.state_dict(), "config": cfg, "epoch": epoch, "metrics": m},
                       os.path.join(a.out, "best.pt"))
            export_safetensors.export(
                final.cpu(), cfg, os.path.join(a.out, "best.safetensors"), dtype="F16",
                input_size=f"3,{a.size},{a.size}", mean=",".join(map(str, MEAN)), std=",".join(map(str, STD)),
                labels={"gender": ["m", "f"], "age_group": AGE_GROUPS,
                        "age": [str(y) for y in range(AGE_BINS)] if a.age_dist else ["years/100"]},
                extra={"training_data": "UTKFace train.txt (shared/data/utkface)"
                       + (" as the app aligns it" if a.crops else "")
                       + (f"; distilled from {a.teachers}" if a.teachers else "")
                       + (f"; distilled from {os.path.basename(a.teacher_model)}" if a.teacher_model else "")
                       + (f", with {n_wild} unlabelled wild crops" if n_wild else ""),
                       "licence": "UTKFace: non-commercial research only; these weights inherit that",
                       "val_metrics": json.dumps(m)})
            final.to(device)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "epoch": epoch, "best": best, "config": cfg,
                    **({"ema": ema.state_dict()} if ema is not None else {})}, last)


if __name__ == "__main__":
    main()
