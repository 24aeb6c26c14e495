#!/usr/bin/env python3
"""Golden values for a shipped age/gender model: PyTorch's output on real face crops, for the C++
test that the engine gives the same (tests/agegender/test_agegender.cpp).

For each aligned face crop (PNG, any size; the app's `--crops` output), the network input is made
the way the C++ classifier makes it: cv2.resize(INTER_AREA) to the model's input size, RGB,
(px/255 - mean)/std with mean/std from the file's metadata. The weights are read from the
.safetensors (F16 -> F32) into tools/torch_models.py's network and run in eval mode; a graph file
(metadata "graph", such as agegender-faceapi.safetensors) runs in tools/graph_torch.py.

  /usr/bin/python3 tools/make_agegender_golden.py --weights weights/agegender-resnet18.safetensors \
      --faces tests/golden/agegender/*.png --out tests/golden/agegender/resnet18

writes OUT.input.npy [N,3,S,S] (faces sorted by file name), OUT.<head>.npy for the heads gender,
age_group and age, and OUT.years.npy: the age in years the app reports (the regression head x 100,
or the mean of the age distribution when the head has one output per year).
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
import torch_models  # noqa: E402
import train_agegender  # noqa: E402  (age_years: how the age head reads in years)


def load_model(path):
    tensors, meta = safetensors_io.load(path)
    if "graph" in meta:  # a graph file (the face-api model): tools/graph_torch.py runs its description
        import graph_torch
        graph = json.loads(meta["graph"])
        return (lambda x: graph_torch.run_graph(graph, tensors, x)), meta
    cfg = torch_models.default_config(**json.loads(meta["config"]))
    model = torch_models.build(cfg).eval()
    state = {k.replace("heads.", "multi.heads.") if k.startswith("heads.") else k: torch.from_numpy(v.astype(np.float32))
             for k, v in tensors.items()}
    model.load_state_dict(state, strict=True)
    return model, meta


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--faces", nargs="+", required=True)
    ap.add_argument("--out", required=True, help="output prefix")
    a = ap.parse_args()
    model, meta = load_model(a.weights)
    _, size, size2 = (int(x) for x in meta["input_size"].split(","))
    mean = np.array([float(x) for x in meta["mean"].split(",")], np.float32)
    std = np.array([float(x) for x in meta["std"].split(",")], np.float32)
    batch = []
    for f in sorted(a.faces, key=os.path.basename):  # a fixed order, whatever the shell's glob gave
        bgr = cv2.imread(f, cv2.IMREAD_COLOR)
        if bgr is None:
            sys.exit(f"{f}: cannot read")
        rgb = cv2.cvtColor(cv2.resize(bgr, (size2, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        batch.append(((rgb.astype(np.float32) / 255 - mean) / std).transpose(2, 0, 1))
    x = np.ascontiguousarray(np.stack(batch), np.float32)
    with torch.no_grad():
        out = model(torch.from_numpy(x))
    np.save(a.out + ".input.npy", x)
    for head in ("gender", "age_group", "age"):
        np.save(f"{a.out}.{head}.npy", out[head].numpy().astype(np.float32))
    years = train_agegender.age_years(out["age"]).numpy().astype(np.float32)
    np.save(f"{a.out}.years.npy", years)
    print(f"{a.out}: {len(batch)} faces, {size}x{size2}; p(male) "
          f"{torch.softmax(out['gender'], 1)[:, 0].numpy().round(3).tolist()}, age {years.round(1).tolist()}")


if __name__ == "__main__":
    main()
