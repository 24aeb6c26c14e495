#!/usr/bin/python3
"""Converts libfacedetection's YuNet face detector (trained parameters as C arrays) into this
engine's .safetensors, with the network described as a graph in the metadata, so the engine builds
it at load time like any other graph file (include/cnn/models/graph_json.hpp).

  /usr/bin/python3 tools/convert_yunet.py [--src ../shared/third_party/libfacedetection/src]
                                          [-o weights/yunet.safetensors]

What the arrays mean follows libfacedetection's own code (facedetectcnn.h/.cpp, -model.cpp):
  - the first layer is a 3x3 stride-2 convolution of the BGR image (pixel values 0..255, not
    normalised), stored in im2col form: filter o, channel (ky*3 + kx)*3 + c (27 used of 32);
  - a point-wise filter o is `channels` weights in a row: W[o*cin + i];
  - a depth-wise 3x3 filter is stored tap-major: W[(ky*3 + kx)*C + c];
  - "DP" units are a 1x1 convolution without ReLU followed by a depth-wise 3x3 (pad 1), ReLU only
    after the depth-wise one, and none in the heads;
  - the image is zero-padded on the right and bottom to a multiple of 32 (so the three pyramid
    levels, strides 8/16/32, line up for the nearest-neighbour upsampling and adds).
Decoding (anchors, boxes, landmarks, NMS) is not part of the graph: it is described in the
metadata key "detector" and done by vision::YuNetDetector.
"""
import argparse
import json
import os
import re
import sys

import numpy as np

import safetensors_io

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ARRAY = re.compile(r"float\s+(\w+)\s*\[([\d*\s]+)\]\s*=\s*\{([^}]*)\}\s*;", re.S)
CONVINFO = re.compile(r"\{\s*(\d+)\s*,\s*(\d+)\s*,\s*(true|false)\s*,\s*(true|false)\s*,\s*(true|false)\s*,\s*(\w+)\s*,\s*(\w+)\s*\}")


def read_arrays(path):
    text = open(path).read()
    arrays = {}
    for name, dims, body in ARRAY.findall(text):
        n = int(np.prod([int(d) for d in dims.replace(" ", "").split("*")]))
        vals = [float(v.strip().rstrip("f")) for v in body.split(",") if v.strip()]
        if len(vals) != n:
            sys.exit(f"{path}: array {name} declares {n} values but holds {len(vals)}")
        arrays[name] = np.array(vals, dtype=np.float32)
    infos = [(int(c), int(f), dw == "true", pw == "true", w, b) for c, f, dw, pw, _, w, b in CONVINFO.findall(text)]
    if not arrays or len(infos) != 53:
        sys.exit(f"{path}: expected libfacedetection's 53 layer descriptions, found {len(infos)}")
    return arrays, infos


def node_name(array_base):
    """backbone__model1_dp2_pw -> backbone.model1.dp2.pw; neck__lateral_convs__0_dw -> neck.lateral_convs.0.dw"""
    name, kind = array_base[:-3], array_base[-2:]
    return name.replace("__", ".").replace("_dp", ".dp") + "." + kind


class Builder:
    def __init__(self, arrays, infos):
        self.arrays, self.infos = arrays, infos
        self.nodes, self.tensors = [], {}

    def node(self, name, op, inputs, **attrs):
        self.nodes.append({"name": name, "op": op, "inputs": inputs, **attrs})
        return name

    def conv(self, name, x, cin, cout, k, stride, pad, groups, weight, bias):
        self.tensors[name + ".weight"] = weight.reshape(cout, cin // groups, k, k)
        self.tensors[name + ".bias"] = bias
        return self.node(name, "Conv2d", [x], in_channels=cin, out_channels=cout, kernel=k, stride=stride,
                         padding=pad, groups=groups, bias=True)

    def layer(self, idx):
        c, f, dw, pw, w, b = self.infos[idx]
        return c, f, dw, pw, self.arrays[w], self.arrays[b], w[: -len("_weight")]

    def pointwise(self, idx, x):
        c, f, dw, pw, w, b, base = self.layer(idx)
        assert pw and not dw, base
        return self.conv(node_name(base), x, c, f, 1, 1, 0, 1, w, b)

    def depthwise(self, idx, x, relu):
        c, f, dw, pw, w, b, base = self.layer(idx)
        assert dw and not pw and c == f, base
        w = w.reshape(9, c).T.copy()  # tap-major -> [C][ky*3+kx]
        y = self.conv(node_name(base), x, c, c, 3, 1, 1, c, w, b)
        return self.node(y + ".relu", "ReLU", [y]) if relu else y

    def dp(self, p, d, x, relu=True):
        return self.depthwise(d, self.pointwise(p, x), relu)

    def unit(self, first, x, relu=True):
        return self.dp(first + 2, first + 3, self.dp(first, first + 1, x), relu)


def build(arrays, infos):
    g = Builder(arrays, infos)
    # Layer 0: 3x3/2 conv on the BGR image, from its im2col form (27 of 32 channels used).
    c, f, _, _, w, b, _ = g.layer(0)
    w = w.reshape(f, c)
    if np.any(w[:, 27:]):
        sys.exit("layer 0 uses im2col channels beyond 27: not the 3x3x3 layout this converter knows")
    w = w[:, :27].reshape(f, 3, 3, 3).transpose(0, 3, 1, 2)  # [o][ky][kx][c] -> [o][c][ky][kx]
    x = g.conv("backbone.model0.conv", "image", 3, f, 3, 2, 1, 1, np.ascontiguousarray(w), b)
    x = g.node("backbone.model0.relu", "ReLU", [x])
    x = g.dp(1, 2, x)
    x = g.node("backbone.pool0", "MaxPool2d", [x], kernel=2, stride=2)
    x = g.unit(3, x)
    x = g.unit(7, x)
    x = g.node("backbone.pool2", "MaxPool2d", [x], kernel=2, stride=2)
    fb1 = g.unit(11, x)
    x = g.node("backbone.pool3", "MaxPool2d", [fb1], kernel=2, stride=2)
    fb2 = g.unit(15, x)
    x = g.node("backbone.pool4", "MaxPool2d", [fb2], kernel=2, stride=2)
    fb3 = g.unit(19, x)

    outputs = []

    def heads(level, feat):
        # cls, bbox, obj, kps heads: libfacedetection's layers 29.., two per head and level.
        for kind, first in (("cls", 29), ("bbox", 35), ("obj", 41), ("kps", 47)):
            p = first + 2 * level
            outputs.append([f"{kind}_{8 << level}", g.dp(p, p + 1, feat, relu=False)])

    f3 = g.dp(27, 28, fb3)
    heads(2, f3)
    up = g.node("neck.upsample2", "Upsample", [f3], scale=2, mode="nearest")
    f2 = g.dp(25, 26, g.node("neck.add1", "Add", [up, fb2]))
    heads(1, f2)
    up = g.node("neck.upsample1", "Upsample", [f2], scale=2, mode="nearest")
    f1 = g.dp(23, 24, g.node("neck.add0", "Add", [up, fb1]))
    heads(0, f1)
    order = {f"{k}_{s}": i for i, (k, s) in enumerate((k, s) for k in ("cls", "bbox", "obj", "kps") for s in (8, 16, 32))}
    outputs.sort(key=lambda o: order[o[0]])
    graph = {"inputs": [{"name": "image", "channels": 3}], "nodes": g.nodes, "outputs": outputs}
    return graph, g.tensors


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", default=os.path.join(ROOT, "..", "shared", "third_party", "libfacedetection", "src"))
    p.add_argument("-o", "--output", default=os.path.join(ROOT, "weights", "yunet.safetensors"))
    a = p.parse_args()
    data = os.path.join(a.src, "facedetectcnn-data.cpp")
    if not os.path.exists(data):
        sys.exit(f"{data}: not found (libfacedetection's source, see ../shared/third_party)")
    arrays, infos = read_arrays(data)
    graph, tensors = build(arrays, infos)
    licence = open(os.path.join(a.src, "..", "LICENSE")).read() if os.path.exists(os.path.join(a.src, "..", "LICENSE")) else ""
    detector = {
        "family": "yunet",
        "input": {"channels": "bgr", "scale": 1.0, "mean": [0, 0, 0], "pad_multiple": 32},
        "strides": [8, 16, 32],
        "score": "sqrt(sigmoid(cls) * sigmoid(obj))",
        "candidate_score": 0.2,
        "nms_iou": 0.45,
        "top_k": 1000,
        "keep_top_k": 512,
        "landmarks": ["right_eye", "left_eye", "nose_tip", "mouth_right", "mouth_left"],
    }
    metadata = {
        "format": "facecnn-graph",
        "arch": "graph",
        "task": "face_detection",
        "graph": json.dumps(graph, separators=(",", ":")),
        "detector": json.dumps(detector, separators=(",", ":")),
        "source": "libfacedetection (github.com/ShiqiYu/libfacedetection, commit acf7b25), "
                  "src/facedetectcnn-data.cpp, converted by tools/convert_yunet.py",
        "license": "BSD-3-Clause (libfacedetection). " + licence.strip(),
    }
    safetensors_io.save(a.output, tensors, metadata)
    n = sum(t.size for t in tensors.values())
    print(f"{a.output}: {len(graph['nodes'])} nodes, {len(tensors)} tensors, {n} parameters, "
          f"{len(graph['outputs'])} outputs")


if __name__ == "__main__":
    main()
