#!/usr/bin/env python3
"""Scores training runs on UTKFace val.txt, each alone and averaged (an ensemble: the mean of their
gender and age-group probabilities and of their ages in years), in PyTorch, with the validation
images prepared as the app prepares its input (train_agegender.load_val_like_app).

What it is for: an upper estimate of what one model of the same family can reach on this data
(docs/agegender.md), and choosing teachers for distillation (train_agegender.py --teachers).

  /usr/bin/python3 tools/ensemble_eval.py --data ../shared/data runs/r18w05-dldl-g2 runs/r18w05-dldl ...

Every run must take --size pixels (its best.safetensors' input_size); a missing run or another
size stops it with a message naming the folder (exit 1).
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402
import train_agegender as T  # noqa: E402


def answers(run, images, batch=256):
    ck = torch.load(os.path.join(run, "best.pt"), map_location="cpu")
    model = torch_models.build(ck["config"])
    model.load_state_dict(ck["model"])
    model.eval()
    g, a, y = [], [], []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            out = model(T.to_input(images[i:i + batch]))
            g.append(out["gender"].softmax(1))
            a.append(out["age_group"].softmax(1))
            y.append(T.age_years(out["age"]))
    return torch.cat(g), torch.cat(a), torch.cat(y)


def scores(gender_p, group_p, years, ages, genders):
    groups = np.array([T.age_group(x) for x in ages])
    pred = group_p.argmax(1).numpy()
    return (100 * (gender_p.argmax(1).numpy() == genders).mean(), 100 * (pred == groups).mean(),
            100 * (np.abs(pred - groups) <= 1).mean(), np.abs(years.numpy() - ages).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    ap.add_argument("--cache", default="/tmp/facecnn-utk", help="where UTKFace is unpacked (train_agegender.py)")
    ap.add_argument("--size", type=int, default=64, help="the runs' input size")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("runs", nargs="+", help="run folders holding best.pt")
    a = ap.parse_args()
    torch.set_num_threads(a.threads or os.cpu_count())
    T.check_runs(a.runs, a.size, "ensemble_eval")
    images, ages, genders = T.load_val_like_app(a.data, a.cache, a.size, 0)
    print(f"| run | gender | group exact | 1-off | MAE (years) |\n|---|---:|---:|---:|---:|")
    total = None
    for r in a.runs:
        ans = answers(r, images)
        print("| %s | %.2f%% | %.2f%% | %.2f%% | %.2f |" % (os.path.basename(r.rstrip("/")), *scores(*ans, ages, genders)))
        total = ans if total is None else [t + x for t, x in zip(total, ans)]
    mean = [t / len(a.runs) for t in total]
    print("| **average of the %d** | %.2f%% | %.2f%% | %.2f%% | %.2f |" % (len(a.runs), *scores(*mean, ages, genders)))


if __name__ == "__main__":
    main()
