#!/usr/bin/env python3
"""Our CUDA backend against PyTorch/cuDNN on the same GPU, model by model, batch by batch.

For each model, batch and precision this one process times PyTorch (cuDNN) itself and runs
`cnn-infer --device cuda --bench N` for ours, back to back in alternating order, then prints a
Markdown table (ours / PyTorch per row) and writes it, with the raw figures, to --out and --json.

    python3 bench/compare_cuda.py --cnn-infer build-cuda/bin/cnn-infer
    python3 bench/compare_cuda.py --cnn-infer build-cuda/bin/cnn-infer --models resnet50 --batches 64 \\
        --precisions tf32 --runs 30

Both engines: torchvision's architecture with random weights (speed does not depend on them), NCHW
float input already on the GPU, GPU time of each forward from a pair of CUDA events, median of
--runs after --warmup untimed runs.

PyTorch's precisions (what the same words mean in PyTorch):
  fp32  torch.backends.cudnn.allow_tf32 = False, torch.backends.cuda.matmul.allow_tf32 = False
  tf32  both True (cuDNN's and cuBLAS's TF32 tensor-core paths)
  bf16  the model and the input cast to torch.bfloat16 (cuDNN's BF16 kernels; its activations are
        bf16 too, ours stay FP32 between layers)
torch.backends.cudnn.benchmark = True in every case: cuDNN picks its fastest algorithm per shape.
Needs: python3 with torch + torchvision and a CUDA GPU; cnn-infer built with -DFACECNN_CUDA=ON.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def torch_time(arch, batch, precision, runs, warmup, size):
    import torch
    import torchvision

    torch.backends.cudnn.benchmark = True
    tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(weights=None).eval().cuda()
    x = torch.randn(batch, 3, size, size, device="cuda")
    if precision == "bf16":
        model = model.to(torch.bfloat16)
        x = x.to(torch.bfloat16)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        torch.cuda.synchronize()
        for _ in range(runs):
            start.record()
            model(x)
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
    del model, x
    torch.cuda.empty_cache()
    return {"median_ms": statistics.median(times), "min_ms": min(times),
            "version": f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}"}


def ours_time(cnn_infer, arch, batch, precision, runs, size, split_k=True):
    cmd = [cnn_infer, "--arch", arch, "--random-weights", "--input-shape", f"{batch},3,{size},{size}",
           "--device", "cuda", "--precision", precision, "--bench", str(runs)]
    env = dict(os.environ)
    if not split_k:
        env["CNN_CUDA_SPLITK"] = "0"
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()[-400:]}")
    return json.loads(lines[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cnn-infer", default="build-cuda/bin/cnn-infer")
    ap.add_argument("--models", default="vgg16,resnet50")
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--precisions", default="fp32,tf32,bf16")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", default="build-cuda/cuda_peers.md")
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-split-k-too", action="store_true",
                    help="also time ours with CNN_CUDA_SPLITK=0 (split-K off), as one more column")
    a = ap.parse_args()
    if a.runs < 1 or a.warmup < 0:
        ap.error("--runs must be >= 1 and --warmup >= 0")
    import torch

    if not torch.cuda.is_available():
        print("compare_cuda: PyTorch sees no CUDA device", file=sys.stderr)
        return 1
    gpu = torch.cuda.get_device_name(0)
    rows, order = [], 0
    for arch in a.models.split(","):
        for batch in [int(b) for b in a.batches.split(",")]:
            for precision in a.precisions.split(","):
                row = {"arch": arch, "batch": batch, "precision": precision}
                engines = ["ours", "pytorch"] if order % 2 == 0 else ["pytorch", "ours"]
                order += 1
                for e in engines:
                    try:
                        if e == "ours":
                            row["ours"] = ours_time(a.cnn_infer, arch, batch, precision, a.runs, a.size)
                            if a.no_split_k_too:
                                row["ours_no_split_k"] = ours_time(a.cnn_infer, arch, batch, precision, a.runs,
                                                                   a.size, split_k=False)
                        else:
                            row["pytorch"] = torch_time(arch, batch, precision, a.runs, a.warmup, a.size)
                    except Exception as ex:  # noqa: BLE001 - recorded in the table
                        row[e] = {"error": str(ex)}
                rows.append(row)
                ours, peer = row["ours"].get("median_ms"), row["pytorch"].get("median_ms")
                print(f"{arch} batch {batch} {precision}: ours {ours} ms, PyTorch {peer} ms", file=sys.stderr, flush=True)

    def cell(d):
        return f"{d['median_ms']:.3f}" if "median_ms" in d else "failed"

    md = [f"## Our CUDA backend vs PyTorch/cuDNN, {a.size}x{a.size}, GPU time per forward (median ms)", "",
          f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", f"- GPU: {gpu}",
          f"- PyTorch: {next((r['pytorch']['version'] for r in rows if 'version' in r['pytorch']), '?')}",
          f"- runs: {a.runs} after {a.warmup} warm-ups (ours: 3)", "",
          "| model | batch | precision | ours ms | PyTorch ms | ours / PyTorch |"
          + (" ours, split-K off ms |" if a.no_split_k_too else ""),
          "|---|---:|---|---:|---:|---:|" + ("---:|" if a.no_split_k_too else "")]
    for r in rows:
        o, p = r["ours"], r["pytorch"]
        ratio = f"{o['median_ms'] / p['median_ms']:.2f}" if "median_ms" in o and "median_ms" in p else "—"
        extra = f" {cell(r['ours_no_split_k'])} |" if "ours_no_split_k" in r else ""
        md.append(f"| {r['arch']} | {r['batch']} | {r['precision']} | {cell(o)} | {cell(p)} | {ratio} |{extra}")
    errors = [f"- {r['arch']} batch {r['batch']} {r['precision']} {e}: {r[e]['error']}" for r in rows
              for e in ("ours", "pytorch", "ours_no_split_k") if "error" in r.get(e, {})]
    if errors:
        md += ["", "Failures:"] + errors
    text = "\n".join(md) + "\n"
    print(text)
    with open(a.out, "w") as f:
        f.write(text)
    with open(a.json or a.out.rsplit(".", 1)[0] + ".json", "w") as f:
        json.dump({"gpu": gpu, "rows": rows}, f, indent=1)
    return 0 if not errors else 2


if __name__ == "__main__":
    sys.exit(main())
