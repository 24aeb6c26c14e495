#!/usr/bin/python3
"""tools/convert_faceapi.py on made-up face-api packages (random tensors in face-api's manifest layout,
uint8-quantised but for the conv64 filters, float32 as in face-api's; no npm package needed): a whole one converts, twice to the same bytes, with the
dequantisation tfjs does; a truncated .bin, a manifest missing a tensor, a tensor of the wrong shape
and a stray tensor are refused, naming the file and the tensor.   Exit 77 (skipped) without numpy.

  /usr/bin/python3 tests/test_convert_faceapi.py
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:
    print("SKIPPED: numpy not available")
    sys.exit(77)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "convert_faceapi.py")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import convert_faceapi  # noqa: E402
import safetensors_io  # noqa: E402

FAILURES = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        FAILURES.append(what)


def specs():
    """face-api's tensors in its manifest order: (name, shape)."""
    out = []

    def layer(prefix, k, cin, cout):
        out.extend([(f"{prefix}/conv/filters", [k, k, cin, cout]), (f"{prefix}/conv/bias", [cout]),
                    (f"{prefix}/scale/weights", [cout]), (f"{prefix}/scale/biases", [cout])])
    layer("conv32_down", 7, 3, 32)
    for unit, cin, cout, _ in convert_faceapi.UNITS:
        layer(f"{unit}/conv1", 3, cin, cout)
        layer(f"{unit}/conv2", 3, cout, cout)
    out.append(("fc", [256, 128]))
    return out


def make_package(d, drop=None, reshape=None, extra=False, truncate=0):
    model = os.path.join(d, "model")
    os.makedirs(model)
    rng = np.random.default_rng(7)
    weights, chunks = [], []
    items = specs() + ([("stray/tensor", [4])] if extra else [])
    for name, shape in items:
        if name == drop:
            continue
        if name == reshape:
            shape = shape[:-1] + [shape[-1] + 1]
        if name.endswith("/conv/filters") and name.startswith("conv64_"):  # as in face-api's: not quantised
            weights.append({"name": name, "shape": shape, "dtype": "float32"})
            chunks.append(rng.normal(0, 0.05, int(np.prod(shape))).astype("<f4").tobytes())
            continue
        q = rng.integers(0, 256, int(np.prod(shape)), dtype=np.uint8)
        scale, mn = float(rng.uniform(1e-4, 1e-2)), float(rng.uniform(-0.5, 0))
        weights.append({"name": name, "shape": shape, "dtype": "float32",
                        "quantization": {"dtype": "uint8", "scale": scale, "min": mn}})
        chunks.append(q.tobytes())
    data = b"".join(chunks)
    if truncate:
        data = data[:-truncate]
    with open(os.path.join(model, "face_recognition_model.bin"), "wb") as f:
        f.write(data)
    with open(os.path.join(model, convert_faceapi.MANIFEST), "w") as f:
        json.dump([{"paths": ["face_recognition_model.bin"], "weights": weights}], f)
    with open(os.path.join(d, "package.json"), "w") as f:
        json.dump({"name": "@vladmandic/face-api", "version": "0.0.0-test"}, f)
    return d, weights, chunks


def convert(pkg, out, dtype="F16"):
    return subprocess.run([sys.executable, TOOL, "--package", pkg, "--out", out, "--dtype", dtype],
                          capture_output=True, text=True)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        pkg, weights, chunks = make_package(os.path.join(tmp, "good"))
        out1, out2 = os.path.join(tmp, "a.safetensors"), os.path.join(tmp, "b.safetensors")
        r1, r2 = convert(pkg, out1, "F32"), convert(pkg, out2, "F32")
        check(r1.returncode == 0 and r2.returncode == 0, f"a whole package converts ({r1.stderr.strip()})")
        check(open(out1, "rb").read() == open(out2, "rb").read(), "two runs give the same bytes")
        tensors, meta = safetensors_io.load(out1)
        graph = json.loads(meta["graph"])
        check(graph["outputs"] == [["descriptor", "fc"]], "one output, 'descriptor'")
        check(meta["input_size"] == "3,150,150" and meta["std"] == "1,1,1", "input size and std")
        # fc has no scale layer to fold: fc.weight = (q * scale + min).T in float32, exactly
        w = next(w for w in weights if w["name"] == "fc")
        q = np.frombuffer(chunks[-1], np.uint8).astype(np.float64)
        fc = (q * w["quantization"]["scale"] + w["quantization"]["min"]).astype(np.float32).reshape(256, 128)
        check(np.array_equal(tensors["fc.weight"], fc.T), "dequantised as tfjs does (fc, exact)")
        ops = {n["op"] for n in graph["nodes"]}
        check(ops <= {"Conv2d", "ReLU", "MaxPool2d", "AvgPool2d", "Add", "AdaptiveAvgPool2d", "Flatten", "Linear"},
              f"only existing graph ops ({sorted(ops)})")
        pads = [n["name"] for n in graph["nodes"] if n["name"].endswith(".pad")]
        check(pads == ["conv64_down.shortcut.pad", "conv128_down.shortcut.pad", "conv256_down.pad",
                       "conv256_down.shortcut.pad", "conv256_down_out.pad"], f"zero-padding nodes where face-api pads ({pads})")

        cases = [
            ("truncated .bin", dict(truncate=1000), ["face_recognition_model.bin", "'fc'", "truncated"]),
            ("manifest missing a tensor", dict(drop="conv128_1/conv2/scale/biases"),
             [convert_faceapi.MANIFEST, "'conv128_1/conv2/scale/biases'", "missing"]),
            ("a tensor of the wrong shape", dict(reshape="conv64_2/conv1/conv/filters"),
             [convert_faceapi.MANIFEST, "'conv64_2/conv1/conv/filters'", "[3, 3, 64, 65]"]),
            ("a tensor the network does not use", dict(extra=True), [convert_faceapi.MANIFEST, "stray/tensor"]),
        ]
        for i, (what, kw, words) in enumerate(cases):
            pkg, _, _ = make_package(os.path.join(tmp, f"bad{i}"), **kw)
            out = os.path.join(tmp, f"bad{i}.safetensors")
            r = convert(pkg, out)
            msg = r.stderr.strip()
            check(r.returncode != 0 and all(wd in msg for wd in words) and not os.path.exists(out),
                  f"{what} is refused: {msg}")
        r = convert(os.path.join(tmp, "nowhere"), os.path.join(tmp, "x.safetensors"))
        check(r.returncode != 0 and convert_faceapi.MANIFEST in r.stderr, f"no package: {r.stderr.strip()}")
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed")
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
