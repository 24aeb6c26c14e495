#!/usr/bin/env python3
"""Writes the engine's committed golden fixtures from real PyTorch runs.

  /usr/bin/python3 tools/make_golden.py [--out tests/golden] [--models NAME ...]

layers.safetensors: for every case C, tensors C.x (input), C.y (PyTorch's output), C.w / C.b
(parameters, when the op has them; C.x2 for a second input) and metadata C = JSON describing the op
with PyTorch's own argument names. Shapes are deliberately awkward: odd sizes, padding, ceil_mode,
stride 2 on odd inputs, groups, dilation, batch > 1.

models/NAME.safetensors (+ NAME.input.npy, NAME.<output>.npy): small width-scaled VGG / ResNet /
MobileNet V2 models with random weights and BatchNorm statistics, exported exactly as
export_safetensors does, plus metadata num_params (PyTorch's parameters() count of that model) and,
for MobileNet V2, torchvision_num_params (torchvision's full-size 1000-class mobilenet_v2).
--models NAME... writes only those model cases (no layers.safetensors, no bad/ files).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_safetensors  # noqa: E402
import safetensors_io  # noqa: E402
import torch_models  # noqa: E402

G = torch.Generator().manual_seed(1234)


def rand(*shape):
    return torch.randn(*shape, generator=G)


def layer_cases():
    cases = []  # (name, meta, tensors)

    def conv(name, n, cin, h, w, cout, k, stride=1, padding=0, dilation=1, groups=1, bias=True):
        kh, kw = (k, k) if isinstance(k, int) else k
        x = rand(n, cin, h, w)
        wt = rand(cout, cin // groups, kh, kw) * 0.3
        b = rand(cout) if bias else None
        y = F.conv2d(x, wt, b, stride, padding, dilation, groups)
        pair = lambda v: list(v) if isinstance(v, (tuple, list)) else [v, v]
        meta = dict(op="conv2d", in_channels=cin, out_channels=cout, kernel_size=[kh, kw], stride=pair(stride),
                    padding=pair(padding), dilation=pair(dilation), groups=groups, bias=bias)
        t = {"x": x, "y": y, "w": wt}
        if bias:
            t["b"] = b
        cases.append((name, meta, t))

    conv("conv_k3_s1_p1", 1, 3, 9, 11, 8, 3, padding=1)
    conv("conv_k3_s2_p1_odd", 2, 5, 13, 7, 6, 3, stride=2, padding=1)
    conv("conv_k7_s2_p3", 1, 3, 23, 19, 4, 7, stride=2, padding=3, bias=False)
    conv("conv_k5_s3_p0", 1, 4, 17, 16, 5, 5, stride=3)
    conv("conv_k3_d2_p2", 1, 4, 12, 10, 6, 3, padding=2, dilation=2)
    conv("conv_k1_s1", 2, 16, 5, 6, 7, 1)
    conv("conv_k1_s2_odd", 1, 6, 9, 7, 12, 1, stride=2, bias=False)
    conv("conv_groups2", 1, 6, 8, 9, 4, 3, padding=1, groups=2)
    conv("conv_depthwise_s2", 2, 8, 11, 10, 8, 3, stride=2, padding=1, groups=8)
    conv("conv_depthwise_mult2", 1, 4, 7, 7, 8, 3, padding=1, groups=4)
    conv("conv_k3x1_pad10", 1, 3, 6, 8, 5, (3, 1), stride=(2, 1), padding=(1, 0))
    conv("conv_wide_k", 1, 40, 6, 5, 300, 3, padding=1)

    def pool(name, kind, n, c, h, w, k, stride=None, padding=0, ceil_mode=False, dilation=1, count_include_pad=True):
        x = rand(n, c, h, w)
        if kind == "max":
            y = F.max_pool2d(x, k, stride, padding, dilation, ceil_mode)
        else:
            y = F.avg_pool2d(x, k, stride, padding, ceil_mode, count_include_pad)
        meta = dict(op=kind + "pool2d", kernel_size=k, stride=stride if stride else k, padding=padding,
                    ceil_mode=ceil_mode, dilation=dilation, count_include_pad=count_include_pad)
        cases.append((name, meta, {"x": x, "y": y}))

    pool("maxpool_k3_s2_p1", "max", 1, 3, 11, 12, 3, 2, 1)
    pool("maxpool_k2_s2_ceil_odd", "max", 2, 2, 7, 9, 2, 2, 0, True)
    pool("maxpool_k3_s2_p1_ceil", "max", 1, 2, 8, 10, 3, 2, 1, True)
    pool("maxpool_k3_s1_d2", "max", 1, 2, 9, 9, 3, 1, 1, False, 2)
    pool("maxpool_k3_s3_ceil_edge", "max", 1, 1, 10, 7, 3, 3, 1, True)
    pool("avgpool_k3_s2_p1_incl", "avg", 1, 3, 9, 10, 3, 2, 1, False)
    pool("avgpool_k3_s2_p1_excl_ceil", "avg", 2, 2, 10, 11, 3, 2, 1, True, 1, False)
    pool("avgpool_k2_ceil_odd_incl", "avg", 1, 2, 7, 5, 2, 2, 0, True)
    pool("avgpool_k3_s2_p1_ceil_incl", "avg", 1, 2, 8, 8, 3, 2, 1, True)

    for name, (h, w), (oh, ow) in [("adaptive_up_5to7", (5, 5), (7, 7)), ("adaptive_10x7_to_3x3", (10, 7), (3, 3)),
                                    ("adaptive_global", (6, 9), (1, 1)), ("adaptive_2x2_to_7x7", (2, 2), (7, 7))]:
        x = rand(2, 3, h, w)
        cases.append((name, dict(op="adaptiveavgpool2d", output_size=[oh, ow]),
                      {"x": x, "y": F.adaptive_avg_pool2d(x, (oh, ow))}))

    x = rand(3, 4, 2, 3)
    wt, b = rand(5, 24) * 0.2, rand(5)
    cases.append(("linear_flatten", dict(op="linear", in_features=24, out_features=5),
                  {"x": x, "w": wt, "b": b, "y": F.linear(torch.flatten(x, 1), wt, b)}))
    x = rand(2, 6, 5, 7) * 2
    mean, var, g, bb = rand(6) * 0.5, torch.rand(6, generator=G) + 0.3, rand(6), rand(6)
    cases.append(("batchnorm", dict(op="batchnorm2d", num_features=6, eps=1e-5),
                  {"x": x, "w": g, "b": bb, "mean": mean, "var": var,
                   "y": F.batch_norm(x, mean, var, g, bb, False, 0.0, 1e-5)}))
    x = rand(2, 3, 4, 5) * 3
    cases.append(("relu", dict(op="relu"), {"x": x, "y": F.relu(x)}))
    cases.append(("leaky_relu", dict(op="leakyrelu", negative_slope=0.2), {"x": x, "y": F.leaky_relu(x, 0.2)}))
    cases.append(("sigmoid", dict(op="sigmoid"), {"x": x, "y": torch.sigmoid(x)}))
    cases.append(("softmax_channels", dict(op="softmax"), {"x": x, "y": torch.softmax(x, 1)}))
    x2 = rand(2, 3, 4, 5)
    cases.append(("add", dict(op="add"), {"x": x, "x2": x2, "y": x + x2}))
    return cases


MODEL_CASES = [
    # name, config, input size, batch
    ("vgg16_w0125", dict(arch="vgg16", width=0.125, vgg_hidden=64, vgg_pool=2, num_classes=10), 40, 2),
    ("vgg16_bn_w0125", dict(arch="vgg16_bn", width=0.125, vgg_hidden=48, vgg_pool=3, num_classes=7), 33, 1),
    ("resnet18_w025", dict(arch="resnet18", width=0.25, num_classes=10), 57, 2),
    ("resnet50_w0125", dict(arch="resnet50", width=0.125, num_classes=12), 64, 1),
    ("resnet18_heads", dict(arch="resnet18", width=0.125,
                            heads=[{"name": "gender", "outputs": 2}, {"name": "age_group", "outputs": 8},
                                   {"name": "age", "outputs": 1}]), 48, 2),
    # an age head that is a distribution over 0..100 years (vision::AgeGenderClassifier reads its mean)
    ("resnet18_agedist", dict(arch="resnet18", width=0.125,
                              heads=[{"name": "gender", "outputs": 2}, {"name": "age_group", "outputs": 8},
                                     {"name": "age", "outputs": 101}]), 32, 2),
    # width 0.35: torchvision's rounding to multiples of 8 (its 10% rule: 32 -> 16, 16 -> 8), an odd size
    ("mobilenet_v2_w035", dict(arch="mobilenet_v2", width=0.35, num_classes=10), 75, 2),
]


def num_params(model):
    return sum(p.numel() for p in model.parameters())


def write_models(out, cases):
    for name, cfg_kw, size, batch in cases:
        torch.manual_seed(7)
        cfg = torch_models.default_config(**cfg_kw)
        model = torch_models.build(cfg).eval()
        torch_models.randomize_batchnorm(model, torch.Generator().manual_seed(7))
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(8))
        with torch.no_grad():
            y = model(x)
        base = os.path.join(out, "models", name)
        extra = {"num_params": str(num_params(model))}
        if cfg["arch"] == "mobilenet_v2":
            extra["torchvision_num_params"] = str(num_params(torchvision.models.mobilenet_v2()))
        export_safetensors.export(model, cfg, base + ".safetensors", input_size=f"3,{size},{size}", extra=extra)
        np.save(base + ".input.npy", x.numpy())
        outs = y if isinstance(y, dict) else {"logits": y}
        for k, v in outs.items():
            np.save(f"{base}.{k}.npy", v.numpy())
        print(f"models/{name}: {os.path.getsize(base + '.safetensors') // 1024} KiB, outputs {list(outs)}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "golden"))
    ap.add_argument("--models", nargs="+", help="write only these model cases")
    a = ap.parse_args()
    os.makedirs(os.path.join(a.out, "models"), exist_ok=True)
    torch.set_num_threads(1)
    if a.models:
        unknown = set(a.models) - {c[0] for c in MODEL_CASES}
        if unknown:
            ap.error(f"unknown model cases {sorted(unknown)}")
        write_models(a.out, [c for c in MODEL_CASES if c[0] in a.models])
        return
    tensors, meta = {}, {}
    for name, m, t in layer_cases():
        meta[name] = json.dumps(m)
        for k, v in t.items():
            tensors[f"{name}.{k}"] = v.numpy().astype(np.float32)
    safetensors_io.save(os.path.join(a.out, "layers.safetensors"), tensors, meta)
    print(f"layers.safetensors: {len(meta)} cases")

    write_models(a.out, MODEL_CASES)

    # Broken inputs for the command-line error tests.
    bad = os.path.join(a.out, "bad")
    os.makedirs(bad, exist_ok=True)
    np.save(os.path.join(bad, "grey.npy"), np.zeros((1, 1, 32, 32), np.float32))
    np.save(os.path.join(bad, "float64.npy"), np.zeros((1, 3, 8, 8), np.float64))
    np.save(os.path.join(bad, "matrix.npy"), np.zeros((3, 8), np.float32))
    np.save(os.path.join(bad, "truncated.npy"), np.zeros((1, 3, 16, 16), np.float32))
    with open(os.path.join(bad, "truncated.npy"), "r+b") as f:
        f.truncate(f.seek(0, 2) - 100)
    with open(os.path.join(a.out, "models", "resnet18_heads.safetensors"), "rb") as f:
        data = f.read()
    with open(os.path.join(bad, "truncated.safetensors"), "wb") as f:
        f.write(data[:len(data) * 3 // 5])


if __name__ == "__main__":
    main()
