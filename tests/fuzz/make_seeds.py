#!/usr/bin/env python3
"""Writes the fuzz seed corpora under tests/fuzz/corpus/<target>/ from small real files of the
repository (test data, cascades, samples) plus a few tiny hand-made files (a small graph model,
F16/BF16 tensors, manifests). Run from anywhere: python3 tests/fuzz/make_seeds.py"""
import json, os, re, shutil, struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
C = os.path.join(HERE, "corpus")


def out(target, name, data):
    d = os.path.join(C, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def copy(target, rel, name=None):
    with open(os.path.join(ROOT, rel), "rb") as f:
        out(target, name or os.path.basename(rel), f.read())


def safetensors(tensors, meta=None):
    """tensors: name -> (dtype, shape, raw bytes)"""
    h, data = {}, b""
    if meta:
        h["__metadata__"] = meta
    for k, (dt, shape, raw) in sorted(tensors.items()):
        h[k] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    hj = json.dumps(h, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    return struct.pack("<Q", len(hj)) + hj + data


def f32(vals):
    return struct.pack("<%df" % len(vals), *vals)


# --- safetensors ------------------------------------------------------------------------------
shutil.rmtree(C, ignore_errors=True)
out("safetensors", "f32_meta.safetensors",
    safetensors({"a": ("F32", [2, 3], f32([1, 2, 3, 4, 5, 6])), "b": ("F32", [], f32([7]))}, {"k": "v"}))
out("safetensors", "f16_bf16.safetensors",
    safetensors({"h": ("F16", [2], b"\x00\x3c\x00\xc0"), "g": ("BF16", [1, 2], b"\x80\x3f\x00\x40"),
                 "i": ("I64", [1], struct.pack("<q", 5))}))
graph = {"inputs": [{"name": "image", "channels": 3}],
         "nodes": [{"name": "c", "op": "Conv2d", "inputs": ["image"], "in_channels": 3, "out_channels": 4,
                    "kernel": 3, "stride": 2, "padding": 1, "groups": 1, "bias": True},
                   {"name": "r", "op": "ReLU", "inputs": ["c"]},
                   {"name": "p", "op": "AdaptiveAvgPool2d", "inputs": ["r"], "output": 1},
                   {"name": "f", "op": "Flatten", "inputs": ["p"]},
                   {"name": "l", "op": "Linear", "inputs": ["f"], "in_features": 4, "out_features": 2,
                    "bias": True}],
         "outputs": [["out", "l"]]}
out("safetensors", "graph.safetensors",
    safetensors({"c.weight": ("F32", [4, 3, 3, 3], f32([0.01 * i for i in range(108)])),
                 "c.bias": ("F32", [4], f32([0, 1, 2, 3])),
                 "l.weight": ("F32", [2, 4], f32([1, 0, 0, 1, 0.5, 0.5, 0, 0])),
                 "l.bias": ("F32", [2], f32([0, 0]))}, {"graph": json.dumps(graph)}))
# the same graph with an int8 form (include/cnn/quantize.hpp): int8 weights of 'c', ranges, scales
quant = {"format": 1, "range": "percentile", "percentile": 99.99, "min_sqnr_db": 20,
         "activations": {"@input": [0.0078125, 128], "c": [0.03125, 0], "p": [0.03125, 0], "f": [0.03125, 0],
                         "l": [0.0625, 100]},
         "int8": {"c": {"sqnr_db": 30, "weight_scales": [0.01, 0.02, 0.03, 0.04]}},
         "fp32": {"l": {"sqnr_db": 40, "why": "its region's conversions would cost more than int8 saves"}}}
out("safetensors", "graph_int8.safetensors",
    safetensors({"c.weight": ("F32", [4, 3, 3, 3], f32([0.01 * i for i in range(108)])),
                 "c.weight_int8": ("I8", [4, 3, 3, 3], bytes((i * 7) % 256 for i in range(108))),
                 "c.bias": ("F32", [4], f32([0, 1, 2, 3])),
                 "l.weight": ("F32", [2, 4], f32([1, 0, 0, 1, 0.5, 0.5, 0, 0])),
                 "l.bias": ("F32", [2], f32([0, 0]))}, {"graph": json.dumps(graph), "quantization": json.dumps(quant)}))
# a config-described model header (weights absent: the loader must say which are missing)
out("safetensors", "config_only.safetensors",
    safetensors({}, {"format": "facecnn-1", "arch": "resnet18",
                     "config": '{"arch":"resnet18","num_classes":10,"width":0.125,"in_channels":3,'
                               '"heads":[{"name":"gender","outputs":2}]}'}))
# --- npy ---------------------------------------------------------------------------------------
for f in ["float64.npy", "grey.npy", "matrix.npy", "truncated.npy"]:
    copy("npy", "tests/golden/bad/" + f)
for f in ["resnet18.age_group.npy", "resnet18.gender.npy", "resnet18.years.npy"]:
    copy("npy", "tests/vision/golden/agegender/" + f)


def npy(shape, vals, major=1):
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }" % ", ".join(map(str, shape)) + (
        "," if len(shape) == 1 else "")
    hdr += " " * (-(12 + len(hdr) + 1) % 64) + "\n"
    head = b"\x93NUMPY" + bytes([major, 0]) + (struct.pack("<H", len(hdr)) if major == 1 else struct.pack("<I", len(hdr)))
    return head + hdr.encode() + f32(vals)


out("npy", "nchw_1x2x2x2.npy", npy([1, 2, 2, 2], list(range(8))))
out("npy", "v2_1x1x1x3.npy", npy([1, 1, 1, 3], [1, 2, 3], major=2))
# --- cascades ----------------------------------------------------------------------------------
for f in ["cascade_default7_new.xml", "cascade_default7_old.xml", "cascade_eyetree6_new.xml", "cascade_eyetree6_old.xml"]:
    copy("cascade", "tests/vision/golden/" + f)
# the LBP cascade cut to its first 3 stages (its features all kept: node indices refer to them)
lbp = open(os.path.join(ROOT, "weights/lbpcascade_frontalface_improved.xml")).read()
stages = [m.start() for m in re.finditer(r"<!-- stage \d+ -->", lbp)]
end = lbp.index("</stages>")
cut = lbp[:stages[3]] + lbp[end:]
cut = re.sub(r"<stageNum>\d+</stageNum>", "<stageNum>3</stageNum>", cut)
out("cascade", "lbp3_new.xml", cut)
# --- images ------------------------------------------------------------------------------------
for f in os.listdir(os.path.join(ROOT, "tests/vision/golden/bad")):
    copy("image", "tests/vision/golden/bad/" + f)
copy("image", "tests/vision/golden/synthetic.png")
copy("image", "tests/vision/golden/decode/photo_progressive.jpg")
# BMP and TGA (stb's formats besides GIF), 4x3 BGR pixels written by hand
px = bytes((x * 60 + c * 20 + y * 7) % 256 for y in range(3) for x in range(4) for c in range(3))
out("image", "tiny.tga", struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, 4, 3, 24, 0x20) + px)  # top-left origin
bmp_rows = b"".join(px[y * 12:(y + 1) * 12] for y in reversed(range(3)))  # bottom-up, 12 bytes: no padding
out("image", "tiny.bmp", b"BM" + struct.pack("<IHHI", 14 + 40 + len(bmp_rows), 0, 0, 54) +
    struct.pack("<IiiHHIIiiII", 40, 4, 3, 1, 24, 0, len(bmp_rows), 2835, 2835, 0, 0) + bmp_rows)
# --- manifests ---------------------------------------------------------------------------------
out("manifest", "years.csv", "image,age,gender\na.jpg,34,m\nb.jpg,7,f\nc.jpg,,\n\"d,e.jpg\",61,M\n")
out("manifest", "ranges_boxes.csv",
    "image,age,gender,x,y,w,h,extra\np/1.jpg,30-39,f,10,20,50,60,z\np/1.jpg,0-2,m,100.5,-4,30,31,\n"
    "p/2.jpg,60-100,,1,1,1,1,q\n")
out("manifest", "utkface.csv", "\ufeffimage,age,gender\r\n34_0_2_20170116.jpg,34,m\r\n5_1_0_2017.jpg,5,f\r\n")
print("seeds written under", C)
