#!/usr/bin/python3
"""Single-thread SGEMM against two peer SGEMMs on this CPU, in one run: the engine's packed GEMM
(build/bench/bench_engine's BM_Gemm), OpenBLAS (Debian's, through PyTorch's torch.mm) and ONNX
Runtime's MLAS (a MatMul node, bench/peers/gemm_ort.js), each in GFLOP/s and as a share of the FMA
peak that bench_engine measures in the same round.

  /usr/bin/python3 bench/peers/gemm_peers.py [--build-dir build] [--rounds 3] [--runs 15]
                                             [--shapes 1024x1024x1024,...] [--out build/peers/gemm.md]

Shapes are M x N x K (C[MxN] = A[MxK] * B[KxN]); the default is every one-thread BM_Gemm shape that
bench_engine registers (VGG16 / ResNet-50 layers and two square ones). The engine packs A (the
weights) once and B per call; ONNX Runtime prepacks its constant B once and takes A as it is;
OpenBLAS (torch.mm) packs both operands on every call. Each round runs
the engines back to back per shape, alternating their order; the table gives the median of the rounds.
Peers are optional: a missing one is named in the report with the reason.

Needs: bench_engine built (cmake --build build --target bench_engine), /usr/bin/python3 with torch
(OpenBLAS as libblas.so.3: libopenblas0-openmp), node and bench/peers/node_modules (npm install
--ignore-scripts) for ONNX Runtime.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def fail(msg):
    print(f"gemm_peers.py: {msg}", file=sys.stderr)
    sys.exit(2)


def parse_shapes(text):
    shapes = []
    for item in text.split(","):
        m = re.fullmatch(r"(\d+)x(\d+)x(\d+)", item.strip())
        if not m or min(map(int, m.groups())) <= 0:
            fail(f"--shapes: '{item}' is not MxNxK with positive sizes")
        shapes.append(tuple(map(int, m.groups())))
    return shapes


def engine_shapes(bench):
    out = subprocess.run([bench, "--benchmark_list_tests", "--benchmark_filter=^BM_Gemm/"], capture_output=True,
                         text=True, check=True).stdout
    return [tuple(map(int, m)) for m in re.findall(r"^BM_Gemm/M:(\d+)/N:(\d+)/K:(\d+)/thr:1$", out, re.M)]


def bench_json(bench, flt):
    out = subprocess.run([bench, f"--benchmark_filter={flt}", "--benchmark_format=json",
                          "--benchmark_min_time=0.5"], capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"{bench} failed: {out.stderr.strip()[-300:]}")
    runs = json.loads(out.stdout)["benchmarks"]
    if not runs:
        fail(f"{bench}: no benchmark matches {flt} (register the shape in bench/bench_engine.cpp)")
    return runs[0]


def ours(bench, shape):
    m, n, k = shape
    return bench_json(bench, f"^BM_Gemm/M:{m}/N:{n}/K:{k}/thr:1$")["GFLOP/s"] / 1e9


def peak(bench):
    return bench_json(bench, "^BM_Peak")["GFLOP/s/core"]


def torch_gemm(shape, runs):
    """Runs in a child process so that OpenBLAS and OpenMP start with one thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, __file__, "torch-gemm", "x".join(map(str, shape)), str(runs)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed")
    return json.loads(out.stdout)["median_gflops"]


def torch_child(shape_text, runs):
    import torch
    torch.set_num_threads(1)
    m, n, k = parse_shapes(shape_text)[0]
    a = torch.rand(m, k)
    b = torch.rand(k, n)
    c = torch.empty(m, n)
    from peers import time_runs  # bench/peers/peers.py: warm-up runs, then each run timed (ms)
    times_ms = time_runs(lambda: torch.mm(a, b, out=c), runs, 2)
    print(json.dumps({"engine": "openblas", "median_gflops": 2.0 * m * n * k / statistics.median(times_ms) / 1e6,
                      "torch": torch.__version__}))


def export_matmul(shape, onnx_dir):
    """ONNX file of C = A * B with B a constant (K x N), exported once per shape."""
    m, n, k = shape
    path = os.path.join(onnx_dir, f"gemm_{m}x{n}x{k}.onnx")
    if os.path.exists(path):
        return path
    import torch

    class MatMul(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.b = torch.nn.Parameter(torch.rand(k, n))

        def forward(self, a):
            return a @ self.b

    os.makedirs(onnx_dir, exist_ok=True)
    tmp = path + ".tmp"
    torch.onnx.export(MatMul(), torch.rand(m, k), tmp, input_names=["a"], output_names=["c"], opset_version=13)
    os.replace(tmp, path)
    return path


def ort_gemm(shape, onnx_dir, runs):
    m, n, k = shape
    onnx = export_matmul(shape, onnx_dir)
    out = subprocess.run(["node", os.path.join(HERE, "gemm_ort.js"), "--onnx", onnx, "--m", str(m), "--n", str(n),
                          "--k", str(k), "--runs", str(runs)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed")
    return json.loads(out.stdout)["median_gflops"]


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "torch-gemm":
        return torch_child(sys.argv[2], int(sys.argv[3]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=15, help="timed runs per peer and round")
    ap.add_argument("--shapes", help="comma-separated MxNxK (default: bench_engine's one-thread BM_Gemm shapes)")
    ap.add_argument("--onnx-dir", default="build/peers")
    ap.add_argument("--out", default="build/peers/gemm.md")
    o = ap.parse_args()
    if o.rounds < 1 or o.runs < 3:
        fail("--rounds must be >= 1 and --runs >= 3")
    bench = os.path.join(o.build_dir, "bench", "bench_engine")
    if not os.access(bench, os.X_OK):
        fail(f"{bench} not found: build it with `cmake --build {o.build_dir} --target bench_engine`")
    registered = engine_shapes(bench)
    shapes = parse_shapes(o.shapes) if o.shapes else registered
    missing = [s for s in shapes if s not in registered]
    if missing:
        fail("bench_engine has no one-thread BM_Gemm at " + ", ".join("x".join(map(str, s)) for s in missing) +
             " (registered: " + ", ".join("x".join(map(str, s)) for s in registered) + ")")

    peers = {"openblas": lambda s: torch_gemm(s, o.runs), "onnxruntime": lambda s: ort_gemm(s, o.onnx_dir, o.runs)}
    skipped = {}
    results = {s: {"ours": [], "openblas": [], "onnxruntime": []} for s in shapes}
    peaks = []
    for r in range(o.rounds):
        peaks.append(peak(bench))
        for shape in shapes:
            order = ["ours", "openblas", "onnxruntime"]
            if r % 2:
                order.reverse()
            for engine in order:
                if engine in skipped:
                    continue
                try:
                    value = ours(bench, shape) if engine == "ours" else peers[engine](shape)
                except Exception as e:  # a peer that cannot run is reported, not fatal
                    skipped[engine] = str(e)
                    continue
                results[shape][engine].append(value)
                print(f"round {r + 1} {shape[0]}x{shape[1]}x{shape[2]} {engine}: {value:.1f} GFLOP/s", file=sys.stderr)

    pk = statistics.median(peaks)
    names = {"ours": "ours", "openblas": "OpenBLAS (PyTorch)", "onnxruntime": "ONNX Runtime (MLAS)"}
    lines = [f"Single-thread SGEMM, GFLOP/s (share of the FMA peak, {pk:.1f} GFLOP/s, median of "
             f"{len(peaks)} rounds' peaks); median of {o.rounds} round(s), engines alternating.", "",
             "| M x N x K | " + " | ".join(names.values()) + " | ours / best peer (>1: ours faster) |",
             "|---|" + "---:|" * (len(names) + 1)]
    for shape in shapes:
        med = {e: statistics.median(v) if v else None for e, v in results[shape].items()}
        cells = [f"{med[e]:.1f} ({100 * med[e] / pk:.0f}%)" if med[e] else "—" for e in names]
        best_peer = max([v for e, v in med.items() if e != "ours" and v] or [0])
        ratio = f"{med['ours'] / best_peer:.2f}" if best_peer and med["ours"] else "—"
        lines.append(f"| {shape[0]} x {shape[1]} x {shape[2]} | " + " | ".join(cells) + f" | {ratio} |")
    for engine, why in skipped.items():
        lines.append(f"\n{names[engine]}: not run ({why})")
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.dirname(os.path.abspath(o.out)), exist_ok=True)
    with open(o.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
