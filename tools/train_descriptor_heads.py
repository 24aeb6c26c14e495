#!/usr/bin/python3
"""Age/gender heads on a frozen face descriptor network (a graph file such as
weights/faceapi-recognition.safetensors, face-api's conversion of dlib's face-recognition ResNet),
exported as one age/gender model file the app loads like the others (`agegender --weights OUT`).

  /usr/bin/python3 tools/train_descriptor_heads.py --backbone weights/faceapi-recognition.safetensors \\
        --crops /tmp/utkapp --data ../shared/data --out runs/faceapi-heads [--epochs 80] [--hidden 256]

--crops: UTKFace's images as the app aligns them (`agegender DIR --crops CROPS` over the unpacked
UTKFace folder writes CROPS/<name minus .jpg>_face0.png; an image the detector missed is used as
it is). The descriptors of every train crop and its mirror image, and of every val crop, are
computed once in PyTorch (tools/graph_torch.py) and cached beside --out; the heads are a
128 -> hidden -> ReLU MLP with three outputs: gender (2), age group (8) and an age distribution
over 0..100 years (trained towards a Gaussian of 2 years around the true age, plus 0.1 x the L1
error of its mean, as tools/train_agegender.py --age-dist). The epoch kept is the best on val by
gender accuracy + group accuracy - MAE/10; the export is the backbone's graph with the heads
appended (the descriptor's standardisation folded into the first layer), F16, with the metadata
vision::AgeGenderClassifier reads.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import graph_torch  # noqa: E402
import safetensors_io  # noqa: E402
import train_agegender as T  # noqa: E402


def read_backbone(path):
    tensors, meta = safetensors_io.load(path)
    if "graph" not in meta:
        sys.exit(f"{path}: no graph in the metadata (not a converted graph file)")
    graph = json.loads(meta["graph"])
    size = [int(v) for v in meta["input_size"].split(",")]
    mean = np.array([float(v) for v in meta["mean"].split(",")], np.float32)
    std = np.array([float(v) for v in meta["std"].split(",")], np.float32)
    return tensors, meta, graph, size[1], mean, std


def load_crops(data, crops, split, side):
    """uint8 [N, side, side, 3] RGB of a split's app-aligned crops (INTER_AREA from 200x200), labels."""
    import cv2
    names = [n.strip() for n in open(os.path.join(data, "utkface", f"{split}.txt")) if n.strip()]
    images, ages, genders, fallback = [], [], [], 0
    for n in names:
        lab = T.parse_name(n)
        if lab is None:
            continue
        path = os.path.join(crops, n[:-len(".jpg")] + "_face0.png")
        bgr = cv2.imread(path, cv2.IMREAD_COLOR) if os.path.exists(path) else None
        if bgr is None:
            fallback += 1
            bgr = cv2.imread(os.path.join(T_CACHE, "utkface", n), cv2.IMREAD_COLOR)
            if bgr is None:
                continue
        images.append(cv2.cvtColor(cv2.resize(bgr, (side, side), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
        ages.append(lab[0])
        genders.append(lab[1])
    print(f"{split}: {len(images)} crops ({fallback} not found by the detector: the image as it is)", flush=True)
    return np.stack(images), np.array(ages, np.float32), np.array(genders, np.int64)


def descriptors(graph, weights, images, mean, std, batch=64):
    out = []
    m, s = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = (torch.from_numpy(images[i:i + batch]).permute(0, 3, 1, 2).float() / 255 - m) / s
            out.append(graph_torch.run_graph(graph, weights, x)["descriptor"])
            if i % (batch * 40) == 0:
                print(f"  descriptors {i}/{len(images)}", flush=True)
    return torch.cat(out).numpy()


class Heads(nn.Module):
    def __init__(self, d, hidden, mu, sd):
        super().__init__()
        self.register_buffer("mu", torch.tensor(mu))
        self.register_buffer("sd", torch.tensor(sd))
        self.fc1 = nn.Linear(d, hidden)
        self.drop = nn.Dropout(0.3)
        self.gender = nn.Linear(hidden, 2)
        self.age_group = nn.Linear(hidden, 8)
        self.age = nn.Linear(hidden, T.AGE_BINS)

    def forward(self, x):
        h = self.drop(F.relu(self.fc1((x - self.mu) / self.sd)))
        return {"gender": self.gender(h), "age_group": self.age_group(h), "age": self.age(h)}


def heads_loss(o, genders, groups, ages, gender_weight, keep=0.0, kept=None):
    """The heads' recipe: gender (x gender_weight, label smoothing 0.1; a share `keep` of it is the
    KL divergence to the probabilities `kept` instead), age group (label smoothing 0.1), the age
    distribution towards a Gaussian of 2 years around the age, plus 0.1 x the L1 error of its mean."""
    g = F.cross_entropy(o["gender"], genders, label_smoothing=0.1)
    if keep > 0:
        g = (1 - keep) * g + keep * F.kl_div(o["gender"].log_softmax(1), kept, reduction="batchmean")
    return (gender_weight * g + F.cross_entropy(o["age_group"], groups, label_smoothing=0.1)
            + F.kl_div(o["age"].log_softmax(1), T.age_dist_targets(ages, 2.0), reduction="batchmean")
            + 0.1 * F.l1_loss(T.age_years(o["age"]), ages))


def scores(model, x, ages, genders):
    model.eval()
    with torch.no_grad():
        o = model(torch.from_numpy(x))
    g = (o["gender"].argmax(1).numpy() == genders).mean() * 100
    groups = np.array([T.age_group(a) for a in ages])
    pg = o["age_group"].argmax(1).numpy()
    years = T.age_years(o["age"]).numpy()
    return g, (pg == groups).mean() * 100, (np.abs(pg - groups) <= 1).mean() * 100, np.abs(years - ages).mean()


def export(path, model, tensors, meta, graph, figures, args):
    """The backbone's graph + the heads; the descriptor's standardisation folded into fc1."""
    w1 = model.fc1.weight.detach().numpy() / model.sd.numpy()[None, :]
    b1 = model.fc1.bias.detach().numpy() - w1 @ model.mu.numpy()
    g = json.loads(json.dumps(graph))
    src = g["outputs"][0][1]
    g["nodes"] += [
        {"name": "head.fc1", "op": "Linear", "inputs": [src], "in_features": int(w1.shape[1]), "out_features": int(w1.shape[0])},
        {"name": "head.relu", "op": "ReLU"},
    ]
    out = dict(tensors)
    out["head.fc1.weight"], out["head.fc1.bias"] = w1, b1
    for h in ("gender", "age_group", "age"):
        lin = getattr(model, h)
        g["nodes"].append({"name": "head." + h, "op": "Linear", "inputs": ["head.relu"],
                           "in_features": lin.in_features, "out_features": lin.out_features})
        out[f"head.{h}.weight"] = lin.weight.detach().numpy()
        out[f"head.{h}.bias"] = lin.bias.detach().numpy()
    # The backbone's descriptor stays an output: tests/vision/test_faceapi.cpp checks it against face-api.
    g["outputs"] = [["gender", "head.gender"], ["age_group", "head.age_group"], ["age", "head.age"], ["descriptor", src]]
    m = {k: v for k, v in meta.items() if k in ("format", "arch", "input_size", "channels", "mean", "std", "weights_dtype")}
    m.update({
        "graph": json.dumps(g, separators=(",", ":")),
        "task": "age_gender",
        "outputs": "gender,age_group,age,descriptor",
        "gender_labels": "m,f",
        "age_groups": ";".join(T.AGE_GROUPS),
        "backbone": os.path.basename(args.backbone) + " (frozen): " + meta.get("source", ""),
        "training": f"heads only: tools/train_descriptor_heads.py --hidden {args.hidden} --epochs {args.epochs}; "
                    "UTKFace train.txt as the app aligns it, mirrored too",
        "license": "Heads trained on UTKFace (non-commercial research only). Backbone: " + meta.get("license", ""),
        "val": "gender %.2f%%, exact %.2f%%, 1-off %.2f%%, MAE %.2f (PyTorch, UTKFace val.txt, app-aligned crops)" % figures,
    })
    safetensors_io.save(path, out, m, dtype="F16")


T_CACHE = "/tmp/facecnn-utk"


def main():
    global T_CACHE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", required=True)
    ap.add_argument("--crops", required=True)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    ap.add_argument("--cache", default=T_CACHE, help="unpacked UTKFace (tools/train_agegender.py's cache)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--gender-weight", type=float, default=2.0)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    T_CACHE = a.cache
    torch.set_num_threads(a.threads or os.cpu_count())
    torch.manual_seed(0)
    os.makedirs(a.out, exist_ok=True)
    tensors, meta, graph, side, mean, std = read_backbone(a.backbone)
    cache = os.path.join(a.out, "descriptors.npz")
    if os.path.exists(cache):
        z = np.load(cache)
        xt, at, gt, xv, av, gv = (z[k] for k in ("xt", "at", "gt", "xv", "av", "gv"))
    else:
        it, at, gt = load_crops(a.data, a.crops, "train", side)
        iv, av, gv = load_crops(a.data, a.crops, "val", side)
        xt = np.concatenate([descriptors(graph, tensors, it, mean, std),
                             descriptors(graph, tensors, np.ascontiguousarray(it[:, :, ::-1]), mean, std)])
        at, gt = np.concatenate([at, at]), np.concatenate([gt, gt])
        xv = descriptors(graph, tensors, iv, mean, std)
        np.savez(cache, xt=xt, at=at, gt=gt, xv=xv, av=av, gv=gv)
    model = Heads(xt.shape[1], a.hidden, xt.mean(0), xt.std(0) + 1e-6)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.05)
    steps = a.epochs * ((len(xt) + 255) // 256)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=steps, pct_start=0.15)
    X, A, G = torch.from_numpy(xt), torch.from_numpy(at), torch.from_numpy(gt)
    groups = torch.tensor([T.age_group(v) for v in at])
    best, best_state = -1e9, None
    for ep in range(a.epochs):
        model.train()
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 256):
            idx = perm[i:i + 256]
            o = model(X[idx])
            loss = heads_loss(o, G[idx], groups[idx], A[idx], a.gender_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        s = scores(model, xv, av, gv)
        key = s[0] + s[1] - s[3] / 10
        if key > best:
            best, best_state, best_s = key, {k: v.clone() for k, v in model.state_dict().items()}, s
        if ep % 10 == 9 or ep == a.epochs - 1:
            print("epoch %d: val gender %.2f%% exact %.2f%% 1-off %.2f%% MAE %.2f" % (ep + 1, *s), flush=True)
    model.load_state_dict(best_state)
    print("kept: val gender %.2f%% exact %.2f%% 1-off %.2f%% MAE %.2f" % best_s)
    export(os.path.join(a.out, "best.safetensors"), model, tensors, meta, graph, best_s, a)
    print("wrote", os.path.join(a.out, "best.safetensors"))


if __name__ == "__main__":
    main()
