#!/usr/bin/python3
"""Runs a graph file (a .safetensors whose metadata "graph" describes the network, as written by
tools/convert_yunet.py) in PyTorch: the reference the engine's graph loader is checked against.

  /usr/bin/python3 tools/graph_torch.py MODEL.safetensors --input x.npy -o OUT_PREFIX
      writes OUT_PREFIX.<output name>.npy for every graph output
  /usr/bin/python3 tools/graph_torch.py MODEL.safetensors --golden OUT.safetensors [--shape 1,3,64,96]
      a golden for the tests: a seeded input of 0..255 values ("input") and every output, one file

The ops and their attributes are those include/cnn/models/graph_json.hpp reads; each maps to the
torch.nn.functional call of the same meaning.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


def pair(v):
    return tuple(v) if isinstance(v, list) else (v, v)


def run_graph(graph, weights, x):
    """graph: the parsed JSON; weights: {name: np.ndarray or torch tensor (trainable parameters stay
    in the autograd graph)}; x: torch tensor (N,C,H,W)."""
    vals = {graph["inputs"][0]["name"]: x}
    prev = graph["inputs"][0]["name"]
    def W(k):
        w = weights[k]
        return w if isinstance(w, torch.Tensor) else torch.from_numpy(np.array(w, dtype=np.float32))
    for n in graph["nodes"]:
        ins = [vals[i] for i in n.get("inputs", [prev])]
        op, name = n["op"], n["name"]
        if op == "Conv2d":
            y = F.conv2d(ins[0], W(name + ".weight"), W(name + ".bias") if n.get("bias", True) else None,
                         stride=pair(n.get("stride", 1)), padding=pair(n.get("padding", 0)),
                         dilation=pair(n.get("dilation", 1)), groups=n.get("groups", 1))
        elif op == "BatchNorm2d":
            y = F.batch_norm(ins[0], W(name + ".running_mean"), W(name + ".running_var"), W(name + ".weight"),
                             W(name + ".bias"), False, 0.0, n.get("eps", 1e-5))
        elif op == "ReLU":
            y = F.relu(ins[0])
        elif op == "ReLU6":
            y = F.relu6(ins[0])
        elif op == "LeakyReLU":
            y = F.leaky_relu(ins[0], n.get("slope", 0.01))
        elif op == "Sigmoid":
            y = torch.sigmoid(ins[0])
        elif op == "MaxPool2d":
            y = F.max_pool2d(ins[0], pair(n["kernel"]), pair(n.get("stride", n["kernel"])), pair(n.get("padding", 0)),
                             ceil_mode=n.get("ceil_mode", False))
        elif op == "AvgPool2d":
            y = F.avg_pool2d(ins[0], pair(n["kernel"]), pair(n.get("stride", n["kernel"])), pair(n.get("padding", 0)),
                             ceil_mode=n.get("ceil_mode", False), count_include_pad=n.get("count_include_pad", True))
        elif op == "Upsample":
            y = F.interpolate(ins[0], scale_factor=n["scale"], mode="nearest")
        elif op == "AdaptiveAvgPool2d":
            y = F.adaptive_avg_pool2d(ins[0], pair(n.get("output", 1)))
        elif op == "Flatten":
            y = torch.flatten(ins[0], 1)
        elif op == "Linear":
            y = F.linear(ins[0], W(name + ".weight"), W(name + ".bias") if n.get("bias", True) else None)
        elif op == "Add":
            y = ins[0] + ins[1]
        else:
            sys.exit(f"graph_torch: op '{op}' (node '{name}') is not known to this tool")
        vals[name] = y
        prev = name
    return {o[0]: vals[o[1]] for o in graph["outputs"]}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--input")
    p.add_argument("-o", "--output", help="prefix of the output .npy files")
    p.add_argument("--golden", help="write the input and every output into this .safetensors")
    p.add_argument("--shape", default="1,3,64,96")
    a = p.parse_args()
    weights, meta = safetensors_io.load(a.model)
    graph = json.loads(meta["graph"])
    if a.golden:
        shape = tuple(int(v) for v in a.shape.split(","))
        x = torch.from_numpy(np.random.default_rng(17).uniform(0, 255, shape).astype(np.float32))
        with torch.no_grad():
            outs = run_graph(graph, weights, x)
        tensors = {"input": x.numpy(), **{k: v.numpy() for k, v in outs.items()}}
        safetensors_io.save(a.golden, tensors, {"generator": "tools/graph_torch.py " + os.path.basename(a.model) +
                                                " --golden (PyTorch " + torch.__version__ + ")"})
        print(f"{a.golden}: input {shape}, {len(outs)} outputs")
        return
    if not a.input or not a.output:
        p.error("give --input and -o, or --golden")
    x = torch.from_numpy(np.load(a.input).astype(np.float32))
    with torch.no_grad():
        outs = run_graph(graph, weights, x)
    for k, v in outs.items():
        np.save(f"{a.output}.{k}.npy", v.numpy())
    print(" ".join(f"{k}{tuple(v.shape)}" for k, v in outs.items()))


if __name__ == "__main__":
    main()
