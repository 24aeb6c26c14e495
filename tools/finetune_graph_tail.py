#!/usr/bin/python3
"""Fine-tunes the last layers of an age/gender graph model (a graph file with gender, age_group and
age outputs, such as weights/agegender-faceapi.safetensors: face-api's recognition ResNet with
heads from tools/train_descriptor_heads.py) together with its heads, on the CPU.

  /usr/bin/python3 tools/finetune_graph_tail.py --model weights/agegender-faceapi.safetensors \\
        --from conv256_1.conv1 --crops /tmp/utkapp --data ../shared/data --out runs/faceapi-ft \\
        [--views 6] [--epochs 12] [--lr 3e-4]

Everything before the node --from stays frozen, so its output (the one value the trainable tail
reads) is computed once per training view and cached in F16 beside --out (`features_<node>.npz`):
view 0 is the app-aligned crop, view 1 its mirror image, the others random scale/shift/roll
(tools/train_agegender.py's augment, rolls up to --rotation degrees) with the photo degradations of
its wild() at probability --wild-aug (delete the cache to change these). Training then runs the tail alone (a few percent of the
network's work), so an epoch over 17,814 faces x 6 views takes minutes on two cores. The loss is
the heads' recipe (gender x2 with label smoothing 0.1, age group, age distribution towards a
Gaussian of 2 years plus 0.1 x L1 of its mean); the tail's own layers learn at --lr x
--backbone-lr-scale. Each epoch is scored on UTKFace val.txt (app-aligned crops) and written as
OUT/epoch_NN.safetensors (the graph and metadata of --model, F16, the tail's tensors replaced,
outputs other than the heads that the tail computes dropped); OUT/best.safetensors is the epoch with the best gender + exact + 1-off - MAE/5.
Choose among the epochs on a wild set through the app (docs/agegender.md), not on val alone.
"""
import argparse
import csv
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import graph_torch  # noqa: E402
import safetensors_io  # noqa: E402
import train_agegender as T  # noqa: E402
import train_descriptor_heads as H  # noqa: E402


def split_graph(graph, first):
    """(frozen nodes, tail nodes, the one value the tail reads from the frozen part)."""
    names = [n["name"] for n in graph["nodes"]]
    if first not in names:
        sys.exit(f"--from {first}: no such node (nodes: {', '.join(names)})")
    k = names.index(first)
    frozen = set(names[:k]) | {graph["inputs"][0]["name"]}
    reads, prev = set(), names[k - 1] if k else graph["inputs"][0]["name"]
    for n in graph["nodes"][k:]:
        reads |= {v for v in n.get("inputs", [prev]) if v in frozen}
        prev = n["name"]
    if len(reads) != 1:
        sys.exit(f"--from {first}: the tail reads {len(reads)} values of the frozen part ({sorted(reads)}); "
                 "start it where the network has one value (after a block's ReLU)")
    return graph["nodes"][:k], graph["nodes"][k:], reads.pop()


def partial_graph(graph, nodes, input_name, outputs):
    return {"inputs": [{"name": input_name}], "nodes": nodes, "outputs": outputs}


def features(graph, frozen, boundary, weights, images, views, rotation, wild_aug, mean, std, seed=0):
    """[views, N, C, H, W] F16: the frozen part's output for each view of each crop."""
    g = partial_graph(graph, frozen, graph["inputs"][0]["name"], [["f", boundary]])
    m, s = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]
    gen = torch.Generator().manual_seed(seed)
    out = []
    t0 = time.time()
    for v in range(views):
        parts = []
        with torch.no_grad():
            for i in range(0, len(images), 128):
                x = torch.from_numpy(images[i:i + 128]).permute(0, 3, 1, 2).float() / 255
                if v == 1:
                    x = x.flip(3)
                elif v >= 2:
                    x = T.augment(x, x.shape[-1], gen, rotation=rotation)
                    if wild_aug > 0:
                        x = T.wild(x, gen, wild_aug)
                parts.append(graph_torch.run_graph(g, weights, (x - m) / s)["f"].half())
        out.append(torch.cat(parts))
        print(f"  view {v + 1}/{views}: {len(images)} crops, {time.time() - t0:.0f} s", flush=True)
    return torch.stack(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="age/gender graph file to start from")
    ap.add_argument("--from", dest="first", required=True, help="first trainable node")
    ap.add_argument("--crops", required=True, help="UTKFace as the app aligns it (train_descriptor_heads.py)")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    ap.add_argument("--cache", default=H.T_CACHE, help="unpacked UTKFace (tools/train_agegender.py's cache)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--views", type=int, default=6)
    ap.add_argument("--rotation", type=float, default=15)
    ap.add_argument("--wild-aug", type=float, default=0.15)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--backbone-lr-scale", type=float, default=0.3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--gender-weight", type=float, default=2.0)
    ap.add_argument("--keep-gender", type=float, default=0.0,
                    help="share of the gender loss that is the starting model's own gender answer on the same "
                         "view (KL divergence): keeps what it knew of faces beyond UTKFace's")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    H.T_CACHE = a.cache
    torch.set_num_threads(a.threads or os.cpu_count())
    torch.manual_seed(0)
    os.makedirs(a.out, exist_ok=True)

    tensors, meta = safetensors_io.load(a.model)
    if "graph" not in meta:
        sys.exit(f"{a.model}: no graph in the metadata (not a graph file)")
    graph = json.loads(meta["graph"])
    outs = {o[0]: o[1] for o in graph["outputs"]}
    for h in ("gender", "age_group", "age"):
        if h not in outs:
            sys.exit(f"{a.model}: no '{h}' output (an age/gender model file is needed)")
    side = int(meta["input_size"].split(",")[1])
    mean = np.array([float(v) for v in meta["mean"].split(",")], np.float32)
    std = np.array([float(v) for v in meta["std"].split(",")], np.float32)
    frozen, tail, boundary = split_graph(graph, a.first)

    cache = os.path.join(a.out, f"features_{a.first}.npz")
    if os.path.exists(cache):
        z = np.load(cache)
        ft, at, gt, fv, av, gv = (torch.from_numpy(z[k]) for k in ("ft", "at", "gt", "fv", "av", "gv"))
        if ft.shape[0] != a.views:
            sys.exit(f"{cache} holds {ft.shape[0]} views, not --views {a.views}: delete it to make it again")
    else:
        it, at, gt = H.load_crops(a.data, a.crops, "train", side)
        iv, av, gv = H.load_crops(a.data, a.crops, "val", side)
        print(f"caching {boundary} for {a.views} views of {len(it)} train crops and {len(iv)} val crops", flush=True)
        ft = features(graph, frozen, boundary, tensors, it, a.views, a.rotation, a.wild_aug, mean, std)
        fv = features(graph, frozen, boundary, tensors, iv, 1, 0, 0, mean, std)[0]
        np.savez(cache, ft=ft.numpy(), at=at, gt=gt, fv=fv.numpy(), av=av, gv=gv)
        ft, at, gt, fv, av, gv = ft, torch.from_numpy(at), torch.from_numpy(gt), fv, torch.from_numpy(av), torch.from_numpy(gv)

    tail_graph = partial_graph(graph, tail, boundary, [[h, outs[h]] for h in ("gender", "age_group", "age")])
    trainable = [k for k in tensors if any(k.startswith(n["name"] + ".") for n in tail)]
    params = {k: torch.nn.Parameter(torch.from_numpy(np.array(tensors[k], np.float32))) for k in trainable}
    heads = [p for k, p in params.items() if k.startswith("head.")]
    body = [p for k, p in params.items() if not k.startswith("head.")]
    print(f"tail from {a.first} reads {boundary} {tuple(ft.shape[2:])}: {len(tail)} nodes, "
          f"{sum(p.numel() for p in body)} backbone and {sum(p.numel() for p in heads)} head parameters", flush=True)
    opt = torch.optim.AdamW([{"params": body, "lr": a.lr * a.backbone_lr_scale},
                             {"params": heads, "lr": a.lr}], weight_decay=a.weight_decay)
    views, n = ft.shape[0], ft.shape[1]
    steps_per_epoch = (n + a.batch - 1) // a.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[a.lr * a.backbone_lr_scale, a.lr],
                                                total_steps=a.epochs * steps_per_epoch, pct_start=0.1)
    groups = torch.tensor([T.age_group(float(v)) for v in at])
    teacher = None
    if a.keep_gender > 0:  # the starting model's gender probabilities on every view, computed once
        start = {k: torch.from_numpy(np.array(tensors[k], np.float32)) for k in trainable}
        with torch.no_grad():
            teacher = torch.stack([torch.cat([graph_torch.run_graph(tail_graph, start, ft[v, i:i + 512].float())["gender"]
                                              .softmax(1) for i in range(0, n, 512)]) for v in range(views)])
        print(f"starting model's gender answers on {views} x {n} views kept (--keep-gender {a.keep_gender})", flush=True)
    gen = torch.Generator().manual_seed(1)

    def run(x):
        return graph_torch.run_graph(tail_graph, params, x.float())

    def score():
        with torch.no_grad():
            parts = [run(fv[i:i + 256]) for i in range(0, len(fv), 256)]
        o = {h: torch.cat([p[h] for p in parts]) for h in ("gender", "age_group", "age")}
        vg = torch.tensor([T.age_group(float(v)) for v in av])
        pg = o["age_group"].argmax(1)
        return ((o["gender"].argmax(1) == gv).float().mean().item() * 100, (pg == vg).float().mean().item() * 100,
                ((pg - vg).abs() <= 1).float().mean().item() * 100, (T.age_years(o["age"]) - av).abs().mean().item())

    # Other outputs the tail computes (face-api's descriptor) are no longer the starting model's: dropped.
    tail_names = {nd["name"] for nd in tail}
    export_graph = dict(graph, outputs=[o for o in graph["outputs"]
                                        if o[0] in ("gender", "age_group", "age") or o[1] not in tail_names])
    log = open(os.path.join(a.out, "log.csv"), "w", newline="")
    w = csv.writer(log)
    w.writerow(["epoch", "loss", "val_gender", "val_exact", "val_1off", "val_mae", "seconds"])
    s = score()
    print("start: val gender %.2f%% exact %.2f%% 1-off %.2f%% MAE %.2f" % s, flush=True)
    best, t0 = -1e9, time.time()
    for ep in range(a.epochs):
        perm = torch.randperm(n, generator=gen)
        view = torch.randint(0, views, (n,), generator=gen)  # one view of each face per epoch
        total = 0.0
        for i in range(0, n, a.batch):
            idx = perm[i:i + a.batch]
            o = run(ft[view[idx], idx])
            loss = H.heads_loss(o, gt[idx], groups[idx], at[idx], a.gender_weight, a.keep_gender,
                                None if teacher is None else teacher[view[idx], idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        s = score()
        w.writerow([ep + 1, round(total / n, 4), *(round(v, 3) for v in s), round(time.time() - t0)])
        log.flush()
        print("epoch %d: loss %.4f, val gender %.2f%% exact %.2f%% 1-off %.2f%% MAE %.2f (%.0f s)"
              % (ep + 1, total / n, *s, time.time() - t0), flush=True)
        out = dict(tensors)
        out.update({k: p.detach().numpy() for k, p in params.items()})
        m = dict(meta)
        m["graph"] = json.dumps(export_graph, separators=(",", ":"))
        m["outputs"] = ",".join(o[0] for o in export_graph["outputs"])
        if "backbone" in m:
            m["backbone"] = m["backbone"].replace("(frozen)", f"(fine-tuned from {a.first} on)")
        m["training"] = (meta.get("training", "") + f"; then fine-tuned from node {a.first} on with its heads: "
                         f"tools/finetune_graph_tail.py --from {a.first} --views {a.views} --epochs {a.epochs} "
                         f"--lr {a.lr} --keep-gender {a.keep_gender} (epoch {ep + 1})")
        m["val"] = "gender %.2f%%, exact %.2f%%, 1-off %.2f%%, MAE %.2f (PyTorch, UTKFace val.txt, app-aligned crops)" % s
        m.pop("quantization", None)  # an int8 form of the old weights would not fit the new ones
        path = os.path.join(a.out, f"epoch_{ep + 1:02d}.safetensors")
        safetensors_io.save(path, out, m, dtype="F16")
        key = s[0] + s[1] + s[2] - s[3] / 5
        if key > best:
            best = key
            safetensors_io.save(os.path.join(a.out, "best.safetensors"), out, m, dtype="F16")
    print("wrote", os.path.join(a.out, "best.safetensors"))


if __name__ == "__main__":
    main()
