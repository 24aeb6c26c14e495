#!/usr/bin/python3
"""Peer-engine helpers for bench/compare_peers.sh (run with Debian's /usr/bin/python3).

Subcommands (each benchmark prints exactly one JSON line on stdout; diagnostics go to stderr):

  peers.py check torch|opencv
      exit 0 and print the version if the peer can be imported, else exit 1 with the reason.
  peers.py export --arch ARCH --out FILE.onnx [--size 224] [--int8]
      export the torchvision model (random weights, eval mode) to ONNX with torch.onnx.export.
      --int8: a QDQ model (QuantizeLinear/DequantizeLinear pairs) for ONNX Runtime's int8 kernels
      (needs the onnx package: apt-get install python3-onnx); see export_int8().
  peers.py torch --arch ARCH --threads T --runs N [--warmup W] [--size 224]
      PyTorch eager, torch.set_num_threads(T), torch.inference_mode().
  peers.py opencv --onnx FILE --arch ARCH --threads T --runs N [--warmup W] [--size 224]
      OpenCV DNN, cv2.setNumThreads(T), DNN_BACKEND_OPENCV / DNN_TARGET_CPU.
  peers.py report --raw RAW.jsonl --md OUT.md --json OUT.json [--meta META.json]
      turn the raw measurements written by compare_peers.sh into a Markdown table and a JSON file.

Timing: W untimed warm-up runs, then N runs each timed with time.perf_counter(); median and min
are reported in milliseconds, like `cnn-infer --bench N`.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

ARCHS = ("vgg16", "resnet18", "resnet50")
# Bump when the exported models change (weights init, export options): compare_peers.sh re-exports an
# ONNX file whose FILE.version differs.
EXPORT_VERSION = 2


def emit(engine, arch, threads, times_ms, version, **extra):
    rec = {
        "engine": engine,
        "arch": arch,
        "threads": threads,
        "runs": len(times_ms),
        "median_ms": round(statistics.median(times_ms), 3),
        "min_ms": round(min(times_ms), 3),
        "version": version,
    }
    rec.update(extra)
    print(json.dumps(rec), flush=True)


def time_runs(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def torchvision_model(arch):
    import torchvision

    if arch not in ARCHS and not hasattr(torchvision.models, arch):
        raise SystemExit(f"unknown torchvision architecture: {arch}")
    import torch

    torch.manual_seed(0)
    # weights=None: random initialisation, nothing is downloaded.
    model = getattr(torchvision.models, arch)(weights=None).eval()
    # torchvision initialises every bias to 0 and BatchNorm to the identity. torch.onnx.export folds
    # BN into the convolutions and then merges the equal folded tensors into one initializer feeding
    # many Identity nodes, which OpenCV 4.6's ONNX importer rejects ("Identity ... inputs.size()").
    # Random biases and BN statistics avoid that (as trained weights would); speed is unaffected.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) + 0.5)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) + 0.5)
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g) * 0.1)
            if getattr(mod, "bias", None) is not None:
                mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)
    return model


# ---------------------------------------------------------------------------------------------
def cmd_check(a):
    try:
        if a.peer == "torch":
            import torch
            import torchvision

            print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")
        elif a.peer == "opencv":
            import cv2

            if not hasattr(cv2, "dnn"):
                raise ImportError("cv2 has no dnn module")
            print(f"opencv {cv2.__version__}")
        else:
            raise SystemExit(f"unknown peer {a.peer}")
    except Exception as e:  # noqa: BLE001 - the reason is the output
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


def fake_quantized(torch, model, size):
    """The model with int8 fake quantization, calibrated: what ONNX Runtime's QDQ format encodes.

    FX graph mode (prepare_fx, eval mode, so BN is folded into the convolutions) with observers that
    also fake-quantize: u8 activations (per tensor, affine, min/max) and s8 weights (per output
    channel, symmetric), the scheme ONNX Runtime's x86 int8 kernels (U8S8) run. Calibration: 4 seeded
    random inputs, like torch_int8.py. FakeQuantize exports as QuantizeLinear/DequantizeLinear.
    """
    from torch.ao.quantization import (FakeQuantize, MovingAverageMinMaxObserver,
                                       PerChannelMinMaxObserver, QConfig, QConfigMapping,
                                       disable_observer)
    from torch.ao.quantization.quantize_fx import prepare_fx

    act = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                                 dtype=torch.quint8, qscheme=torch.per_tensor_affine)
    weight = FakeQuantize.with_args(observer=PerChannelMinMaxObserver, quant_min=-128, quant_max=127,
                                    dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=0)
    mapping = QConfigMapping().set_global(QConfig(activation=act, weight=weight))
    example = torch.randn(1, 3, size, size)
    prepared = prepare_fx(model, mapping, (example,))
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for _ in range(4):
            prepared(torch.randn(1, 3, size, size, generator=g))
    prepared.apply(disable_observer)  # freeze the scales; fake quantization stays on
    return prepared


def scalar_qparams(path):
    """Make the per-tensor scales and zero points of Q/DQ nodes scalars, in place.

    torch.onnx writes them as 1-element tensors; ONNX Runtime's QDQ fusion then builds QLinearAdd and
    friends that reject them ("Scale and Zero-point must be a scalar").
    """
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    wanted = {i for n in m.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
              for i in n.input[1:]}
    tensors = [i for i in m.graph.initializer if i.name in wanted]
    tensors += [n.attribute[0].t for n in m.graph.node
                if n.op_type == "Constant" and n.output[0] in wanted]
    for t in tensors:
        a = numpy_helper.to_array(t)
        if a.shape == (1,):
            t.CopyFrom(numpy_helper.from_array(a.reshape(()), t.name))
    onnx.save(m, path)


def cmd_export(a):
    import torch

    model = torchvision_model(a.arch)
    x = torch.randn(1, 3, a.size, a.size)
    if a.int8:
        import onnx  # noqa: F401 - fail before the slow part when it is missing
        reference = model(x).detach()
        model = fake_quantized(torch, model, a.size)
        out = model(x).detach()
        # A sanity figure, not a test: int8 noise on random weights, typically a few percent.
        print(f"{a.arch} int8 (fake-quantized) vs fp32: relative difference "
              f"{float((out - reference).norm() / reference.norm()):.3g}", file=sys.stderr)
    tmp = f"{a.out}.tmp{os.getpid()}"
    try:
        with torch.no_grad():
            torch.onnx.export(model, x, tmp, opset_version=a.opset, input_names=["input"],
                              output_names=["output"], do_constant_folding=True)
        if a.int8:
            scalar_qparams(tmp)
        os.replace(tmp, a.out)  # never leave a half-written model behind
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    with open(a.out + ".version", "w") as f:
        f.write(f"{EXPORT_VERSION}\n")
    print(json.dumps({"exported": a.out, "arch": a.arch, "opset": a.opset, "int8": a.int8,
                      "bytes": os.path.getsize(a.out), "torch": torch.__version__}))
    return 0


def cmd_torch(a):
    import torch

    torch.set_num_threads(a.threads)
    model = torchvision_model(a.arch)
    x = torch.randn(1, 3, a.size, a.size)
    with torch.inference_mode():
        times = time_runs(lambda: model(x), a.runs, a.warmup)
    emit("pytorch", a.arch, torch.get_num_threads(), times, torch.__version__)
    return 0


def cmd_opencv(a):
    import cv2
    import numpy as np

    cv2.setNumThreads(a.threads)
    net = cv2.dnn.readNetFromONNX(a.onnx)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    x = np.random.default_rng(0).standard_normal((1, 3, a.size, a.size)).astype(np.float32)

    def once():
        net.setInput(x)
        return net.forward()

    out = once()  # first call builds the network; fail early with OpenCV's message
    if out.size != 1000:
        print(f"warning: OpenCV output has {out.size} values, expected 1000", file=sys.stderr)
    times = time_runs(once, a.runs, max(0, a.warmup - 1))
    emit("opencv", a.arch, cv2.getNumThreads(), times, cv2.__version__)
    return 0


# ---------------------------------------------------------------------------------------------
ENGINES = [("ours", "ours"), ("pytorch", "PyTorch"), ("onnxruntime", "ONNX Runtime"),
           ("opencv", "OpenCV DNN")]
PEERS = [e for e, _ in ENGINES if e != "ours"]
LABEL = dict(ENGINES)


def binomial_tail(n, k):
    """P(X >= k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n


def paired_rounds(ours, peer):
    """Our round medians against a peer's, paired round by round (each round ran the engines back
    to back, in alternating order, so the pair shares the host's speed at that moment).

    Returns the per-round ratios, how many rounds we were faster in, the one-sided sign-test p
    value for "ours is faster" (ties dropped) and a distribution-free confidence interval for the
    median ratio from its order statistics, with its exact coverage (at least 95% when n >= 6)."""
    ratios = [o / p for o, p in zip(ours, peer)]
    n = len(ratios)
    faster = sum(r < 1 for r in ratios)
    slower = sum(r > 1 for r in ratios)
    out = {"round_ratios": [round(r, 3) for r in ratios], "rounds": n, "rounds_faster": faster,
           "sign_test_p": float(f"{binomial_tail(faster + slower, faster):.3g}") if faster + slower else None}
    # The largest k with P(X < k) <= 2.5%: [r_(k), r_(n+1-k)] covers the median with 1 - 2 P(X < k).
    k = 0
    while k + 1 <= n // 2 and 1 - binomial_tail(n, k + 1) <= 0.025:
        k += 1
    if k >= 1:
        srt = sorted(ratios)
        out["median_ratio_ci"] = [round(srt[k - 1], 3), round(srt[n - k], 3)]
        out["ci_coverage"] = round(1 - 2 * (1 - binomial_tail(n, k)), 4)
    return out


def cmd_report(a):
    rows = {}  # (model, threads) -> engine -> list of round records
    errors = {}  # (model, threads) -> engine -> reason
    order = []
    with open(a.raw) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            key = (r["model"], int(r["threads_requested"]))
            if key not in rows:
                rows[key] = {}
                errors[key] = {}
                order.append(key)
            if "error" in r:
                errors[key][r["engine"]] = r["error"]
            else:
                rows[key].setdefault(r["engine"], []).append(r)
    meta = {}
    if a.meta:
        with open(a.meta) as f:
            meta = json.load(f)
    skipped = meta.get("skipped", {})

    results = []
    for key in order:
        model, threads = key
        entry = {"model": model, "threads": threads, "engines": {}, "errors": errors[key]}
        bgs = [r["background_cores"] for recs in rows[key].values() for r in recs if "background_cores" in r]
        # the busiest moment of the row: one busy sample is enough to distort a threaded engine
        entry["background_cores_max"] = max(bgs) if bgs else None
        for eng, recs in rows[key].items():
            meds = [r["median_ms"] for r in recs]
            entry["engines"][eng] = {
                # one round: its median; several rounds: the median of the round medians
                "median_ms": round(statistics.median(meds), 3),
                "min_ms": round(min(r["min_ms"] for r in recs), 3),
                "round_medians_ms": meds,
                "runs_per_round": recs[0].get("runs"),
                "threads_reported": recs[0].get("threads"),
                "background_cores": [r.get("background_cores") for r in recs],
            }
        e = entry["engines"]
        ours = e.get("ours", {}).get("median_ms")
        torch_ms = e.get("pytorch", {}).get("median_ms")
        peers = [(e[p]["median_ms"], p) for p in PEERS if p in e]
        fastest = min(peers) if peers else None
        entry["ours_over_pytorch"] = round(ours / torch_ms, 3) if ours and torch_ms else None
        entry["fastest_peer"] = fastest[1] if fastest else None
        entry["ours_over_fastest_peer"] = round(ours / fastest[0], 3) if ours and fastest else None
        if ours and fastest and len(e["ours"]["round_medians_ms"]) >= 2 and \
                len(e["ours"]["round_medians_ms"]) == len(e[fastest[1]]["round_medians_ms"]):
            entry["rounds_against_fastest_peer"] = paired_rounds(e["ours"]["round_medians_ms"],
                                                                 e[fastest[1]]["round_medians_ms"])
        results.append(entry)

    def ms(entry, eng):
        if eng in entry["engines"]:
            return f"{entry['engines'][eng]['median_ms']:.1f}"
        if eng in entry["errors"]:
            return "failed"
        return "—"

    lines = []
    title = meta.get("title", "CNN engine vs peers")
    lines.append(f"## {title}")
    lines.append("")
    info = [
        ("date", meta.get("date")),
        ("host", meta.get("host")),
        ("CPU", meta.get("cpu")),
        ("load average (start / end)", f"{meta.get('loadavg_start', '?')} / {meta.get('loadavg_end', '?')}"),
        ("settings", meta.get("settings")),
        ("versions", meta.get("versions")),
        ("OPENBLAS_CORETYPE", meta.get("openblas_coretype")),
    ]
    for k, v in info:
        if v:
            lines.append(f"- {k}: {v}")
    lines.append("")
    precision = "int8" if "int8" in title else "fp32"
    lines.append(f"Batch 1, {precision}, 224x224, median ms per image (lower is better); "
                 "ratios < 1 mean our engine is faster. Background: the most cores other processes "
                 "kept busy just before any of the row's engine runs.")
    lines.append("")
    head = ["model", "threads"] + [LABEL[e] + " ms" for e, _ in ENGINES] + \
        ["ours / PyTorch", "ours / fastest peer", "background (cores)"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|")
    for entry in results:
        r1 = entry["ours_over_pytorch"]
        r2 = entry["ours_over_fastest_peer"]
        cells = [entry["model"], str(entry["threads"])] + [ms(entry, eng) for eng, _ in ENGINES] + [
            f"{r1:.2f}" if r1 is not None else "—",
            f"{r2:.2f} ({LABEL[entry['fastest_peer']]})" if r2 is not None else "—",
            f"{entry['background_cores_max']:.2f}" if entry["background_cores_max"] is not None else "?",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    paired = [e for e in results if "rounds_against_fastest_peer" in e]
    if paired:
        lines.append("")
        lines.append("Round by round against the fastest peer (each round ran the engines back to back, "
                     "in alternating order; the sign test asks whether ours is faster more often than "
                     "chance, the interval is distribution-free):")
        lines.append("")
        for e in paired:
            st = e["rounds_against_fastest_peer"]
            ci = st.get("median_ratio_ci")
            ci_text = f", median ratio within {ci[0]:.3f}-{ci[1]:.3f} ({100 * st['ci_coverage']:.0f}% confidence)" if ci else ""
            p = st["sign_test_p"]
            significant = p is not None and p < 0.05
            verdict = ("faster in every round" if st["rounds_faster"] == st["rounds"] and significant else
                       "faster" if significant and ci and ci[1] < 1 else
                       "faster more often than chance" if significant else "not shown faster")
            lines.append(f"- {e['model']}, {e['threads']} thread(s), ours / {LABEL[e['fastest_peer']]}: "
                         f"faster in {st['rounds_faster']} of {st['rounds']} rounds (ratios "
                         f"{min(st['round_ratios']):.3f}-{max(st['round_ratios']):.3f}{ci_text}); sign test "
                         f"p = {p if p is not None else '-'}: {verdict}")
    notes = []
    busy = [e for e in results if a.cores and e["background_cores_max"] is not None
            and e["threads"] + e["background_cores_max"] > a.cores + 0.2]
    if busy:
        notes.append(f"- Busy machine: in {len(busy)} row(s) ("
                     + ", ".join(f"{e['model']}/{e['threads']}" for e in busy)
                     + f") the engine's threads plus the background load exceeded the {a.cores} cores at "
                     "some point; threaded engines wait for descheduled workers there (OpenMP ones "
                     "most), so those times and ratios are unreliable. Rerun when the machine is quiet "
                     "(--wait-quiet S helps).")
    for eng, why in skipped.items():
        notes.append(f"- {LABEL.get(eng, eng)} not run: {why}")
    for entry in results:
        for eng, why in entry["errors"].items():
            notes.append(f"- {LABEL.get(eng, eng)} failed on {entry['model']} at {entry['threads']} "
                         f"thread(s): {why}")
    if notes:
        lines.append("")
        lines.extend(notes)
    md = "\n".join(lines) + "\n"
    with open(a.md, "w") as f:
        f.write(md)
    out = dict(meta)
    out["results"] = results
    with open(a.json, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    sys.stdout.write(md)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("check")
    s.add_argument("peer", choices=["torch", "opencv"])
    s.set_defaults(fn=cmd_check)

    s = sub.add_parser("export")
    s.add_argument("--arch", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--size", type=int, default=224)
    s.add_argument("--opset", type=int, default=13)
    s.add_argument("--int8", action="store_true", help="QDQ int8 model for ONNX Runtime")
    s.set_defaults(fn=cmd_export)

    for name, fn in (("torch", cmd_torch), ("opencv", cmd_opencv)):
        s = sub.add_parser(name)
        s.add_argument("--arch", required=True)
        s.add_argument("--threads", type=int, required=True)
        s.add_argument("--runs", type=int, required=True)
        s.add_argument("--warmup", type=int, default=2)
        s.add_argument("--size", type=int, default=224)
        if name == "opencv":
            s.add_argument("--onnx", required=True)
        s.set_defaults(fn=fn)

    s = sub.add_parser("report")
    s.add_argument("--raw", required=True)
    s.add_argument("--md", required=True)
    s.add_argument("--json", required=True)
    s.add_argument("--meta")
    s.add_argument("--cores", type=int, default=os.cpu_count())
    s.set_defaults(fn=cmd_report)

    a = p.parse_args()
    if getattr(a, "runs", 1) < 1 or getattr(a, "threads", 1) < 1:
        p.error("--runs and --threads must be >= 1")
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
