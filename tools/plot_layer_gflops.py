#!/usr/bin/env python3
"""GFLOP/s of every convolution layer of VGG16 and ResNet-50, from bench_engine's JSON output.

    build/bench/bench_engine --benchmark_filter='Peak|BM_Conv/.*thr:1' \\
        --benchmark_out=conv.json --benchmark_out_format=json
    /usr/bin/python3 tools/plot_layer_gflops.py conv.json --out docs/results/layer-gflops.png

One bar per layer, coloured by the kernel that ran it (the benchmark's label: winograd, direct,
gemm), with the machine's FMA peak measured in the same process (BM_Peak) as a line. FLOPs are
counted as for direct convolution, so Winograd layers can pass the peak: their bars show the
speed-up over a direct convolution running at that rate.
"""
import argparse
import json
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

COLOURS = {"winograd": "#2b8cbe", "direct": "#e6550d", "gemm": "#756bb1"}


def load(path):
    with open(path) as f:
        data = json.load(f)
    peak, layers = None, []
    for b in data.get("benchmarks", []):
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        name = b["name"]
        if name.startswith("BM_Peak"):
            peak = b.get("GFLOP/s/core")
            continue
        m = re.match(r"BM_Conv/(\S+) (.+?)/thr:(\d+)", name)
        if not m:
            continue
        layers.append({"model": m.group(1), "layer": m.group(2), "threads": int(m.group(3)),
                       "gflops": b["GFLOP/s"] / 1e9, "kernel": b.get("label", "?")})
    return peak, layers


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", help="bench_engine --benchmark_out file (JSON)")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--threads", type=int, default=1, help="which thread count's rows to plot (default 1)")
    args = ap.parse_args()
    try:
        peak, layers = load(args.json)
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"plot_layer_gflops: cannot read {args.json}: {e}")
    layers = [r for r in layers if r["threads"] == args.threads]
    if not layers:
        sys.exit(f"plot_layer_gflops: {args.json} has no BM_Conv rows at {args.threads} thread(s)")

    labels = [f"{r['model']} {r['layer']}" for r in layers]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(layers) + 1.6))
    y = list(range(len(layers)))[::-1]
    ax.barh(y, [r["gflops"] for r in layers], color=[COLOURS.get(r["kernel"], "grey") for r in layers])
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    if peak:
        ax.axvline(peak, color="black", linestyle="--", linewidth=1)
        ax.text(peak, len(layers) - 0.3, f" FMA peak {peak:.0f}", fontsize=7, va="bottom")
    handles = [Patch(color=colour, label=kernel) for kernel, colour in COLOURS.items()
               if any(r["kernel"] == kernel for r in layers)]
    ax.legend(handles=handles, loc="lower right", fontsize=8)
    ax.set_xlabel(f"GFLOP/s, {args.threads} thread(s), counted as direct convolution")
    ax.set_title("Convolution layers, batch 1, fp32 (bench_engine BM_Conv)", fontsize=10)
    fig.tight_layout()
    try:
        fig.savefig(args.out, dpi=110)
    except OSError as e:
        sys.exit(f"plot_layer_gflops: cannot write {args.out}: {e}")
    print(f"plot_layer_gflops: wrote {args.out} ({len(layers)} layers)")


if __name__ == "__main__":
    main()
