#!/usr/bin/env python3
"""Checks cnn-infer against PyTorch on one architecture, end to end through files.

Builds the model in PyTorch (torchvision itself for full-size configs) with seeded random weights
and non-trivial BatchNorm statistics, exports it with export_safetensors, runs PyTorch and
`cnn-infer` on the same random input, and compares: max|a-b| / max|b| must be <= --tol.

  /usr/bin/python3 tools/check_against_torch.py --cnn-infer build/bin/cnn-infer --arch vgg16
  (architectures: tools/torch_models.py — VGG, ResNet, mobilenet_v2)
Exit 0: match; 1: mismatch or error; 77: PyTorch is not installed (the test is skipped).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:
    import numpy as np
    import torch
except ImportError as e:  # CTest treats 77 as "skipped"
    print(f"SKIPPED: PyTorch/numpy not available to {sys.executable} ({e})")
    sys.exit(77)

import export_safetensors  # noqa: E402
import torch_models  # noqa: E402


def write_npy(path, a):
    np.save(path, np.ascontiguousarray(a, dtype=np.float32))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cnn-infer", required=True)
    ap.add_argument("--arch", required=True)
    ap.add_argument("--config", default="{}", help="extra ModelConfig fields as JSON")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="F32")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    cfg = torch_models.default_config(a.arch, **json.loads(a.config))
    model = torch_models.build(cfg).eval()
    torch_models.randomize_batchnorm(model, torch.Generator().manual_seed(a.seed))
    x = torch.randn(a.batch, cfg["in_channels"], a.size, a.size, generator=torch.Generator().manual_seed(a.seed + 1))
    with tempfile.TemporaryDirectory() as d:
        w = os.path.join(d, "model.safetensors")
        export_safetensors.export(model, cfg, w, dtype=a.dtype, input_size=f"{cfg['in_channels']},{a.size},{a.size}")
        if a.dtype != "F32":  # compare against the weights as stored
            import safetensors_io
            stored, _ = safetensors_io.load(w)
            sd = {k.replace("heads.", "multi.heads.", 1) if k.startswith("heads.") else k: torch.from_numpy(np.array(v))
                  for k, v in stored.items()}
            model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in sd.items()})
        t0 = time.time()
        with torch.no_grad():
            ref = model(x)
        t_torch = time.time() - t0
        refs = ref if isinstance(ref, dict) else {"": ref}
        write_npy(os.path.join(d, "x.npy"), x.numpy())
        out = os.path.join(d, "y.npy")
        t0 = time.time()
        r = subprocess.run([a.cnn_infer, "--weights", w, "--input", os.path.join(d, "x.npy"), "--output", out,
                            "--threads", str(a.threads)], capture_output=True, text=True)
        t_engine = time.time() - t0
        if r.returncode != 0:
            print(f"FAIL: cnn-infer exited {r.returncode}: {r.stderr.strip()}")
            return 1
        worst = 0.0
        for name, ref_t in refs.items():
            path = out if len(refs) == 1 else out[:-4] + f".{name}.npy"
            got = np.load(path)
            want = ref_t.numpy()
            if got.shape != want.shape:
                print(f"FAIL: {a.arch} {name or 'output'} shape {got.shape} != PyTorch {want.shape}")
                return 1
            rel = float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30))
            worst = max(worst, rel)
            print(f"{a.arch} {cfg['width']}x {a.batch}x{cfg['in_channels']}x{a.size}x{a.size} {name or 'logits'}: "
                  f"max|a-b|/max|b| = {rel:.3g} (tol {a.tol:g}); torch {t_torch:.2f}s, cnn-infer {t_engine:.2f}s")
        return 0 if worst <= a.tol else 1


if __name__ == "__main__":
    sys.exit(main())
