#!/usr/bin/python3
"""Converts @vladmandic/face-api's face recognition network (dlib's face-recognition ResNet,
`model/face_recognition_model-weights_manifest.json` + `.bin`, uint8-quantised TF.js tensors) into
this engine's .safetensors, the network described as a graph in the metadata
(include/cnn/models/graph_json.hpp), so `cnn::load_model` runs it with no builder of its own.

  /usr/bin/python3 tools/convert_faceapi.py --package tools/faceapi/node_modules/@vladmandic/face-api \\
                                            --out weights/faceapi-recognition.safetensors [--dtype F16|F32]

Plain Python + numpy; the output is byte-for-byte the same on every run. F16 (the default, 11.3 MB,
the committed file) gives descriptors within 2.5e-4 of face-api's (max |diff| / max |value| 6.5e-4);
F32 (22.6 MB) within 3e-7. What the tensors mean follows face-api's src/faceRecognitionNet/*.ts:
  - dequantisation as tfjs's io.decodeWeights: value = q * scale + min in double, stored as float32;
  - a "conv layer" is conv2d(filters HWIO) + bias, then a per-channel scale layer x * w + b, then
    ReLU unless it is the second conv of a residual unit; the scale is folded into the conv here
    (W * w[o], bias * w[o] + b[o]);
  - convDown: stride 2, 'valid' (no padding); the stride-1 convs: 3x3 'same' (1 pixel each side,
    symmetric for stride 1, so no asymmetric TF padding occurs anywhere in this network);
  - after conv32_down: max-pool 3x3 stride 2 'valid';
  - residualDown: the shortcut is avg-pool 2x2 stride 2 'valid', its channels zero-padded at the
    end when the unit widens (here: a 1x1 Conv2d without bias whose weight is the identity on the
    first channels), and when the strided 3x3 'valid' conv gives a smaller map than the pool (150
    input: 3x3 vs 4x4 at conv256_down, 1x1 vs 2x2 at conv256_down_out) face-api appends a zero row
    at the bottom and a zero column at the right of the residual branch (here: a depth-wise 2x2
    Conv2d, padding 1, weight 1 at tap (1, 1): out[i][j] = in[i][j], zero beyond);
  - then the mean over H and W, and a matrix product with `fc` [256, 128] (no bias) -> 128 values.
The map sizes, hence those zero pads, are those of the 150x150 input face-api always feeds it
(metadata "input_size"). Preprocessing: RGB 0..255, minus [122.782, 117.001, 104.298], / 255;
as metadata mean/std for (px / 255 - mean) / std: mean = that / 255, std = 1.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

MANIFEST = "face_recognition_model-weights_manifest.json"
INPUT = 150
MEAN_RGB = [122.782, 117.001, 104.298]
# (unit, in channels, out channels, down) in forwardInput's order
UNITS = [("conv32_1", 32, 32, False), ("conv32_2", 32, 32, False), ("conv32_3", 32, 32, False),
         ("conv64_down", 32, 64, True), ("conv64_1", 64, 64, False), ("conv64_2", 64, 64, False),
         ("conv64_3", 64, 64, False),
         ("conv128_down", 64, 128, True), ("conv128_1", 128, 128, False), ("conv128_2", 128, 128, False),
         ("conv256_down", 128, 256, True), ("conv256_1", 256, 256, False), ("conv256_2", 256, 256, False),
         ("conv256_down_out", 256, 256, True)]
_DTYPE_BYTES = {"float32": 4, "int32": 4, "uint8": 1, "uint16": 2, "float16": 2}


def fail(msg):
    sys.exit(f"convert_faceapi: {msg}")


def read_weights(model_dir):
    """{name: float32 array} from the manifest and its .bin files, decoded as tfjs does."""
    mpath = os.path.join(model_dir, MANIFEST)
    if not os.path.exists(mpath):
        fail(f"{mpath}: not found (the face-api package's model/ folder; see tools/faceapi/package.json)")
    try:
        groups = json.load(open(mpath))
    except ValueError as e:
        fail(f"{mpath}: not valid JSON: {e}")
    out = {}
    for group in groups:
        paths = [os.path.join(model_dir, p) for p in group["paths"]]
        for p in paths:
            if not os.path.exists(p):
                fail(f"{mpath}: names weight file {p}, which is not there")
        data = b"".join(open(p, "rb").read() for p in paths)
        where = " + ".join(paths)
        off = 0
        for w in group["weights"]:
            name, shape, dtype = w["name"], [int(d) for d in w["shape"]], w["dtype"]
            n = int(np.prod(shape))
            q = w.get("quantization")
            if dtype != "float32":
                fail(f"{mpath}: tensor '{name}' has dtype {dtype}; this converter reads float32 weights only")
            qd = q["dtype"] if q else "float32"
            if qd not in ("uint8", "uint16", "float32"):
                fail(f"{mpath}: tensor '{name}' is quantised as {qd}, which this converter does not read")
            size = n * _DTYPE_BYTES[qd]
            if off + size > len(data):
                fail(f"{where}: {len(data)} bytes, too short for tensor '{name}' (bytes {off}..{off + size} "
                     f"in the manifest's order): truncated or not this manifest's file")
            raw = data[off:off + size]
            off += size
            if qd == "float32":
                v = np.frombuffer(raw, "<f4").astype(np.float32)
            else:  # tfjs: values[i] = v * scale + min, JS doubles stored into a Float32Array
                qa = np.frombuffer(raw, "u1" if qd == "uint8" else "<u2").astype(np.float64)
                v = (qa * float(q["scale"]) + float(q["min"])).astype(np.float32)
            out[name] = v.reshape(shape)
        if off != len(data):
            fail(f"{where}: {len(data)} bytes, the manifest describes {off}: not this manifest's file")
    return out, mpath


class Builder:
    def __init__(self, weights, origin):
        self.w, self.origin = weights, origin
        self.nodes, self.tensors = [], {}

    def get(self, name, shape):
        if name not in self.w:
            fail(f"{self.origin}: tensor '{name}' is missing (face-api's FaceRecognitionNet needs it)")
        a = self.w[name]
        if list(a.shape) != list(shape):
            fail(f"{self.origin}: tensor '{name}' has shape {list(a.shape)}, expected {list(shape)}")
        return a

    def node(self, name, op, inputs, **attrs):
        self.nodes.append({"name": name, "op": op, "inputs": inputs, **attrs})
        return name

    def conv_layer(self, prefix, x, cin, cout, k, stride, pad, relu):
        """face-api's convLayer: conv + bias, scale layer folded in, optional ReLU."""
        f = self.get(f"{prefix}/conv/filters", [k, k, cin, cout]).astype(np.float64)
        b = self.get(f"{prefix}/conv/bias", [cout]).astype(np.float64)
        sw = self.get(f"{prefix}/scale/weights", [cout]).astype(np.float64)
        sb = self.get(f"{prefix}/scale/biases", [cout]).astype(np.float64)
        name = prefix.replace("/", ".")
        w = f.transpose(3, 2, 0, 1) * sw[:, None, None, None]  # HWIO -> OIHW, scaled per output
        self.tensors[name + ".weight"] = np.ascontiguousarray(w.astype(np.float32))
        self.tensors[name + ".bias"] = (b * sw + sb).astype(np.float32)
        y = self.node(name, "Conv2d", [x], in_channels=cin, out_channels=cout, kernel=k, stride=stride,
                      padding=pad, bias=True)
        return self.node(name + ".relu", "ReLU", [y]) if relu else y


def out_size(n, k, s):  # 'valid'
    return (n - k) // s + 1


def build(weights, origin):
    g = Builder(weights, origin)
    x = g.conv_layer("conv32_down", "image", 3, 32, 7, 2, 0, True)
    x = g.node("maxpool", "MaxPool2d", [x], kernel=3, stride=2)
    size = out_size(out_size(INPUT, 7, 2), 3, 2)
    for unit, cin, cout, down in UNITS:
        if not down:
            y = g.conv_layer(f"{unit}/conv1", x, cin, cout, 3, 1, 1, True)
            y = g.conv_layer(f"{unit}/conv2", y, cout, cout, 3, 1, 1, False)
        else:
            y = g.conv_layer(f"{unit}/conv1", x, cin, cout, 3, 2, 0, True)
            y = g.conv_layer(f"{unit}/conv2", y, cout, cout, 3, 1, 1, False)
            branch, pooled = out_size(size, 3, 2), out_size(size, 2, 2)
            if branch != pooled:  # face-api: zero row at the bottom, zero column at the right
                if pooled != branch + 1:
                    fail(f"{unit}: maps of {branch} and {pooled} pixels; face-api pads by one only")
                w = np.zeros((cout, 1, 2, 2), np.float32)
                w[:, 0, 1, 1] = 1
                name = f"{unit}.pad"
                g.tensors[name + ".weight"] = w
                y = g.node(name, "Conv2d", [y], in_channels=cout, out_channels=cout, kernel=2, padding=1,
                           groups=cout, bias=False)
            s = g.node(f"{unit}.shortcut.pool", "AvgPool2d", [x], kernel=2, stride=2)
            if cin != cout:  # zero channels appended
                w = np.zeros((cout, cin, 1, 1), np.float32)
                w[np.arange(cin), np.arange(cin), 0, 0] = 1
                name = f"{unit}.shortcut.pad"
                g.tensors[name + ".weight"] = w
                s = g.node(name, "Conv2d", [s], in_channels=cin, out_channels=cout, kernel=1, bias=False)
            x, size = s, pooled
            y = g.node(f"{unit}.add", "Add", [y, x])
            x = g.node(f"{unit}.relu", "ReLU", [y])
            continue
        y = g.node(f"{unit}.add", "Add", [y, x])
        x = g.node(f"{unit}.relu", "ReLU", [y])
    x = g.node("mean", "AdaptiveAvgPool2d", [x], output=1)
    x = g.node("flatten", "Flatten", [x])
    fc = g.get("fc", [256, 128])
    g.tensors["fc.weight"] = np.ascontiguousarray(fc.T)
    x = g.node("fc", "Linear", [x], in_features=256, out_features=128, bias=False)
    used = {f"{p}/{s}" for p in ["conv32_down"] + [f"{u}/conv{i}" for u, *_ in UNITS for i in (1, 2)]
            for s in ("conv/filters", "conv/bias", "scale/weights", "scale/biases")} | {"fc"}
    extra = sorted(set(weights) - used)
    if extra:
        fail(f"{origin}: tensors this network does not use: {', '.join(extra[:5])}: not face-api's recognition model?")
    graph = {"inputs": [{"name": "image", "channels": 3}], "nodes": g.nodes, "outputs": [["descriptor", x]]}
    return graph, g.tensors


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--package", required=True, help="the unpacked @vladmandic/face-api package")
    p.add_argument("--out", required=True)
    p.add_argument("--dtype", default="F16", choices=["F16", "F32"])
    a = p.parse_args()
    pkg = json.load(open(os.path.join(a.package, "package.json"))) if os.path.exists(
        os.path.join(a.package, "package.json")) else {}
    version = pkg.get("version", "?")
    weights, origin = read_weights(os.path.join(a.package, "model"))
    graph, tensors = build(weights, origin)
    mit = open(os.path.join(a.package, "LICENSE")).read().strip() if os.path.exists(
        os.path.join(a.package, "LICENSE")) else "MIT License, Copyright (c) Vladimir Mandic"
    metadata = {
        "format": "facecnn-graph",
        "arch": "graph",
        "task": "face_recognition",
        "graph": json.dumps(graph, separators=(",", ":")),
        "input_size": f"3,{INPUT},{INPUT}",
        "channels": "rgb",
        "mean": ",".join(repr(m / 255) for m in MEAN_RGB),
        "std": "1,1,1",
        "outputs": "descriptor",
        "weights_dtype": a.dtype,
        "source": f"@vladmandic/face-api {version} (npm), model/face_recognition_model-weights_manifest.json + "
                  "face_recognition_model.bin (uint8-quantised; scale layers folded into the convolutions), "
                  "converted by tools/convert_faceapi.py; the network and weights are dlib's "
                  "dlib_face_recognition_resnet_model_v1 (Davis King, github.com/davisking/dlib-models)",
        "license": "Weights: dlib-models (Davis King): \"anyone can do whatever they want with these model files "
                   "as I've released them into the public domain\". Packaged by @vladmandic/face-api: " + mit,
    }
    safetensors_io.save(a.out, tensors, metadata, dtype=a.dtype)
    n = sum(t.size for t in tensors.values())
    print(f"{a.out}: {len(graph['nodes'])} nodes, {len(tensors)} tensors, {n} parameters ({a.dtype}), "
          f"{os.path.getsize(a.out)} bytes")


if __name__ == "__main__":
    main()
