#!/usr/bin/python3
"""PyTorch int8 CPU inference as a peer for our engine's quantized path.

Measures batch-1 latency of post-training statically quantized (int8) torchvision models, and,
for reference, the fp32 latency of the same model with the same weights, in the same process and
with the same thread count. Weights are random (torchvision's default init, nothing is
downloaded); speed does not depend on their values.

Run with Debian's Python (the pyenv python3 has no torch):

    /usr/bin/python3 bench/peers/torch_int8.py --threads 2
    /usr/bin/python3 bench/peers/torch_int8.py --models resnet18 --runs 3 --json out.json

Notes:
  * Quantized engine: --engine onednn by default. Debian's PyTorch 1.13 is built without fbgemm;
    the script checks torch.backends.quantized.supported_engines and stops if the engine is absent.
  * ResNet-18/50: torchvision.models.quantization (eager mode): fuse_model(), prepare, calibrate,
    convert.
  * VGG16: torchvision has no quantizable VGG, so it goes through FX graph mode
    (prepare_fx / convert_fx).
  * Calibration: --calibration-batches random normal inputs of batch 1, fixed seed.
  * Timing: --warmup untimed runs, then --runs runs (VGG16: max(3, runs // 2)), each timed with
    time.perf_counter() under torch.inference_mode(); median and min in ms.
  * stdout: a Markdown table; diagnostics (including how many convolutions were quantized) go to
    stderr; --json FILE also writes the results as one JSON object.
"""
import argparse
import copy
import json
import os
import statistics
import sys
import time

from peers import time_runs  # the fp32 peers' timing loop (bench/peers/peers.py), same method

MODELS = ("vgg16", "resnet18", "resnet50")


def int_at_least(lo):
    """An argparse type: an integer >= lo."""
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}")
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v
    return parse


positive_int, nonneg_int = int_at_least(1), int_at_least(0)


def model_list(text):
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("no model given")
    bad = [n for n in names if n not in MODELS]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown model(s) {', '.join(bad)}; choose from {', '.join(MODELS)}")
    return list(dict.fromkeys(names))  # drop duplicates, keep order


def parse_args(argv):
    p = argparse.ArgumentParser(description="Time PyTorch int8 (PTQ static) CPU inference.")
    p.add_argument("--models", type=model_list, default=list(MODELS),
                   help="comma-separated subset of " + ",".join(MODELS) + " (default: all)")
    p.add_argument("--threads", type=positive_int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--runs", type=positive_int, default=15,
                   help="timed runs (VGG16: max(3, runs // 2)); default 15")
    p.add_argument("--warmup", type=nonneg_int, default=2, help="untimed warm-up runs (default 2)")
    p.add_argument("--size", type=positive_int, default=224, help="input height and width (default 224)")
    p.add_argument("--calibration-batches", type=positive_int, default=4,
                   help="random batch-1 inputs used for calibration (default 4)")
    p.add_argument("--engine", default="onednn", help="torch.backends.quantized.engine (default onednn)")
    p.add_argument("--json", metavar="FILE", help="also write the results to FILE as one JSON object")
    p.add_argument("--line", action="store_true",
                   help="one model: time int8 only, --runs runs exactly, and print one JSON line "
                        "{median_ms, min_ms, ...} (what bench/compare_peers.sh --precision int8 reads)")
    a = p.parse_args(argv)
    if a.size < 32:
        p.error(f"--size must be >= 32 (five stride-2 stages), got {a.size}")
    if a.line and len(a.models) != 1:
        p.error("--line times one model: give --models with one name")
    return a, p


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def calibration_inputs(torch, n, size):
    g = torch.Generator().manual_seed(1234)
    return [torch.randn(1, 3, size, size, generator=g) for _ in range(n)]


def quantize_resnet(torch, name, engine, calib):
    """Eager-mode PTQ of torchvision's quantizable ResNet. Returns (fp32 model, int8 model)."""
    import torchvision
    from torch.ao import quantization as tq

    torch.manual_seed(0)
    qmodel = getattr(torchvision.models.quantization, name)(weights=None, quantize=False).eval()
    # The fp32 reference is the plain torchvision model carrying the very same weights.
    fp32 = getattr(torchvision.models, name)(weights=None).eval()
    fp32.load_state_dict(qmodel.state_dict(), strict=True)

    qmodel.fuse_model()
    qmodel.qconfig = tq.get_default_qconfig(engine)
    tq.prepare(qmodel, inplace=True)
    with torch.inference_mode():
        for x in calib:
            qmodel(x)
    tq.convert(qmodel, inplace=True)
    return fp32, qmodel


def quantize_vgg16(torch, engine, calib):
    """FX graph-mode PTQ of torchvision's VGG16. Returns (fp32 model, int8 model)."""
    import torchvision
    from torch.ao import quantization as tq
    from torch.ao.quantization import quantize_fx

    torch.manual_seed(0)
    fp32 = torchvision.models.vgg16(weights=None).eval()
    # PyTorch 1.13's prepare_fx wants (model, qconfig_mapping, example_inputs).
    if hasattr(tq, "get_default_qconfig_mapping"):
        qmapping = tq.get_default_qconfig_mapping(engine)
    else:
        qmapping = {"": tq.get_default_qconfig(engine)}
    prepared = quantize_fx.prepare_fx(copy.deepcopy(fp32), qmapping, (calib[0],))
    with torch.inference_mode():
        for x in calib:
            prepared(x)
    return fp32, quantize_fx.convert_fx(prepared)


def census(torch, model):
    """Count quantized vs float conv/linear modules, and quantize/dequantize steps."""
    import torch.nn as nn
    from torch.ao.nn import quantized as nnq

    c = {"quantized_conv": 0, "float_conv": 0, "quantized_linear": 0, "float_linear": 0,
         "quantize_ops": 0, "dequantize_ops": 0}
    kinds = [(nnq.Conv2d, "quantized_conv"), (nn.Conv2d, "float_conv"), (nnq.Linear, "quantized_linear"),
             (nn.Linear, "float_linear"), (nnq.Quantize, "quantize_ops"), (nnq.DeQuantize, "dequantize_ops")]
    for m in model.modules():
        key = next((k for cls, k in kinds if isinstance(m, cls)), None)  # quantized classes first
        if key:
            c[key] += 1
    graph = getattr(model, "graph", None)  # FX GraphModule: the (de)quantize steps are graph nodes
    if graph is not None:
        for node in graph.nodes:
            if node.op == "call_function" and node.target in (torch.quantize_per_tensor,
                                                               torch.quantize_per_channel):
                c["quantize_ops"] += 1
            elif (node.op == "call_method" and node.target == "dequantize") or (
                    node.op == "call_function" and node.target is torch.dequantize):
                c["dequantize_ops"] += 1
    return c


def cosine(torch, a, b):
    a, b = a.flatten().double(), b.flatten().double()
    return float(torch.dot(a, b) / (a.norm() * b.norm() + 1e-30))


def bench_model(torch, name, a, calib, x, threads):
    """Quantize one model, check the result, time int8 and fp32; return the result record."""
    t0 = time.perf_counter()
    if name == "vgg16":
        fp32, int8 = quantize_vgg16(torch, a.engine, calib)
        mode, runs = "fx", max(3, a.runs // 2)
    else:
        fp32, int8 = quantize_resnet(torch, name, a.engine, calib)
        mode, runs = "eager", a.runs
    c = census(torch, int8)
    log(f"{name}: quantized ({mode}) in {time.perf_counter() - t0:.1f} s; "
        f"conv {c['quantized_conv']} int8 / {c['float_conv']} float, "
        f"linear {c['quantized_linear']} int8 / {c['float_linear']} float, "
        f"quantize ops {c['quantize_ops']}, dequantize ops {c['dequantize_ops']}")
    if a.line:
        runs = a.runs
    with torch.inference_mode():
        cos = cosine(torch, int8(x), fp32(x))
        t_int8 = time_runs(lambda: int8(x), runs, a.warmup)
        t_fp32 = [float("nan")] if a.line else time_runs(lambda: fp32(x), runs, a.warmup)
    rec = {
        "model": name,
        "threads": threads,
        "runs": runs,
        "quantization": mode,
        "int8_median_ms": round(statistics.median(t_int8), 3),
        "int8_min_ms": round(min(t_int8), 3),
        "fp32_median_ms": round(statistics.median(t_fp32), 3),
        "fp32_min_ms": round(min(t_fp32), 3),
        "int8_fp32_cosine": round(cos, 6),
    }
    rec.update(c)
    log(f"{name}: int8 median {rec['int8_median_ms']:.1f} ms, fp32 median "
        f"{rec['fp32_median_ms']:.1f} ms, output cosine(int8, fp32) {cos:.4f}")
    return rec


def main(argv=None):
    a, parser = parse_args(argv)
    import torch
    import torchvision

    engines = list(torch.backends.quantized.supported_engines)
    if a.engine == "none" or a.engine not in engines:
        parser.error(f"quantized engine {a.engine!r} is not available in this PyTorch "
                     f"({torch.__version__}); supported: {', '.join(e for e in engines if e != 'none')}")
    torch.backends.quantized.engine = a.engine
    torch.set_num_threads(a.threads)
    threads = torch.get_num_threads()
    log(f"torch {torch.__version__}, torchvision {torchvision.__version__}, engine {a.engine}, "
        f"threads {threads}")

    calib = calibration_inputs(torch, a.calibration_batches, a.size)
    x = torch.randn(1, 3, a.size, a.size, generator=torch.Generator().manual_seed(99))
    results = [bench_model(torch, name, a, calib, x, threads) for name in a.models]
    if a.line:
        r = results[0]
        print(json.dumps({"arch": r["model"], "precision": "int8", "threads": threads, "runs": r["runs"],
                          "median_ms": r["int8_median_ms"], "min_ms": r["int8_min_ms"],
                          "quantized_conv": r["quantized_conv"], "float_conv": r["float_conv"]}))
        return 0

    print("| model | threads | int8 median ms | int8 min ms | fp32 median ms |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['model']} | {r['threads']} | {r['int8_median_ms']:.2f} | {r['int8_min_ms']:.2f} "
              f"| {r['fp32_median_ms']:.2f} |")

    if a.json:
        doc = {
            "peer": "pytorch-int8",
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "engine": a.engine,
            "threads": threads,
            "size": a.size,
            "warmup": a.warmup,
            "calibration_batches": a.calibration_batches,
            "results": results,
        }
        tmp = f"{a.json}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        os.replace(tmp, a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
