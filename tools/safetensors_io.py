"""Reads and writes the safetensors format with numpy alone (no `safetensors` package needed).

Layout: u64 little-endian header length N, N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then data.
"""
import json
import struct

import numpy as np

_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}


def _to_bf16_bytes(a):
    """float32 -> bfloat16 bytes with round-to-nearest-even (NaN kept NaN)."""
    bits = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")
    nan = np.isnan(a.reshape(-1)).reshape(rounded.shape)
    rounded[nan] = ((bits[nan] >> 16) | 0x40).astype("<u2")
    return rounded.tobytes()


def save(path, tensors, metadata=None, dtype="F32"):
    """Writes {name: array} as safetensors. dtype F32/F16/BF16 applies to float arrays; integer
    arrays keep their own type. Tensors are stored in name order, as the reference writer does."""
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        if a.dtype.kind == "f":
            if dtype == "BF16":
                raw, dt = _to_bf16_bytes(a.astype(np.float32)), "BF16"
            else:
                dt = dtype
                raw = np.ascontiguousarray(a, dtype=_DTYPES[dt]).tobytes()
        else:
            dt = {np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("bool"): "BOOL",
                  np.dtype("uint8"): "U8"}[a.dtype]
            raw = np.ascontiguousarray(a, dtype=_DTYPES[dt]).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = str(path) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)
    import os
    os.replace(tmp, path)


def load(path, int8_form=False):
    """Returns ({name: float32 or native array}, metadata). The int8 form the engine can add to a
    weights file (`<layer>.weight_int8` tensors, include/cnn/quantize.hpp) is left out unless
    int8_form: a PyTorch model has no such parameters."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name.endswith(".weight_int8") and not int8_form:
            continue
        b, end = e["data_offsets"]
        raw = data[base + b:base + end]
        if e["dtype"] == "BF16":
            arr = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view("<f4")
        else:
            arr = np.frombuffer(raw, _DTYPES[e["dtype"]])
        out[name] = arr.reshape(e["shape"])
    return out, meta
