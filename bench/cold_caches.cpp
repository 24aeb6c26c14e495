// bench_cold_caches — how much of a ResNet-50 layer's time at batch 1 is waiting for its weights:
// each distinct convolution timed alone with everything in cache (hot), alone after the caches were
// flushed by reading a buffer larger than the L3 (cold), and inside the whole model (its node's time
// in Graph::forward's per-layer record), all medians.
//
//   build/bench/bench_cold_caches [--threads T] [--runs N] [--flush-mb MB]
//
// A model streams ~185 MB of weights per image here (Winograd's transformed weights are 4x / 1.8x
// the plain ones), more than the share of the shared L3 it keeps between images; where the
// in-model time sits near the cold one, the layer is waiting for memory, and no change to its
// arithmetic will show in the model. Findings: docs/performance.md, "Weights from memory".
#include <cnn/cnn.hpp>

#include "cache_flush.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

using namespace cnn;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "bench_cold_caches: %s\nusage: bench_cold_caches [--threads T] [--runs N] [--flush-mb MB]\n", why);
  std::exit(2);
}

int64_t int_arg(int argc, char** argv, int& i, int64_t lo, int64_t hi) {
  if (i + 1 >= argc) usage((std::string(argv[i]) + " needs a value").c_str());
  char* end = nullptr;
  const long long v = std::strtoll(argv[++i], &end, 10);
  if (*end || v < lo || v > hi) usage((std::string("bad value for ") + argv[i - 1] + ": " + argv[i]).c_str());
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, runs = 21;
  int64_t flush_mb = 1024;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads") threads = int(int_arg(argc, argv, i, 1, 256));
    else if (a == "--runs") runs = int(int_arg(argc, argv, i, 1, 100000));
    else if (a == "--flush-mb") flush_mb = int_arg(argc, argv, i, 1, 16384);
    else usage(("unknown argument " + a).c_str());
  }
  set_num_threads(threads);

  ModelConfig cfg;
  cfg.arch = "resnet50";
  Graph model = build_model(cfg);
  model.init_random();
  const Shape input{1, 3, 224, 224};
  Tensor x(input);
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = float(i % 255) / 255.f;
  std::vector<std::vector<double>> node_ms(model.num_nodes());
  std::vector<double> ms;
  model.forward(x.view());  // plan, buffers, lazily transformed weights
  for (int r = 0; r < runs; ++r) {
    model.forward(x.view(), &ms);
    for (std::size_t n = 0; n < ms.size(); ++n) node_ms[n].push_back(ms[n]);
  }

  bench::CacheFlush flush(static_cast<std::size_t>(flush_mb));
  const MemoryPlan& plan = model.plan(input);
  std::map<std::string, bool> seen;
  std::printf("ResNet-50 convolutions at batch 1, %d thread(s), medians of %d runs; cold: after reading %lld MB\n\n",
              threads, runs, static_cast<long long>(flush_mb));
  std::printf("| layer | shape | kernel | weights read | hot | cold | in model | (model - hot) / (cold - hot) |\n");
  std::printf("|---|---|---|---:|---:|---:|---:|---:|\n");
  for (std::size_t n = 1; n < model.num_nodes(); ++n) {
    auto* conv = dynamic_cast<Conv2d*>(model.layer(int(n)));
    if (!conv) continue;
    const Conv2dOptions& o = conv->options();
    const Shape in = plan.shapes[model.inputs_of(int(n))[0]], out = plan.shapes[n];
    const std::string key = conv->describe() + " " + std::to_string(o.in_channels) + "->" +
                            std::to_string(o.out_channels) + " @" + std::to_string(in.h);
    // Layers the model runs channel-blocked (ResNet-50's first stage, small weights) would run
    // NCHW alone: left out.
    if (seen[key] || plan.blocked[n]) continue;
    seen[key] = true;

    set_blocked(false);  // alone, every layer here runs NCHW, as in the model
    Graph one;
    one.add_output(one.add<Conv2d>({Graph::kInput}, "conv", o), "y");
    one.init_random();
    Tensor xi(in);
    for (int64_t i = 0; i < xi.numel(); ++i) xi.data()[i] = float(i % 97) / 97.f;
    // The node's own time, as in the model (forward() also copies the output out), with the pool's
    // workers awake as between a model's layers (idle, they sleep after ~50 us).
    std::vector<double> hot, cold, layer_ms;
    const auto wake_workers = [] { parallel_for(64, kMinParallelWork, [](int64_t) {}); };
    one.forward(xi.view());
    for (int r = 0; r < runs; ++r) {
      wake_workers();
      one.forward(xi.view(), &layer_ms);
      hot.push_back(layer_ms[1]);
      flush();
      one.forward(xi.view(), &layer_ms);
      cold.push_back(layer_ms[1]);
    }
    const int tile = conv->winograd_tile(out);
    const double plain_mb = double(o.out_channels) * o.in_channels / o.groups * o.kh * o.kw * 4 / 1e6;
    const double read_mb = tile == 4 ? plain_mb * 36 / 9 : tile == 2 ? plain_mb * 16 / 9 : plain_mb;
    const char* kernel = tile ? (tile == 4 ? "Winograd F(4x4)" : "Winograd F(2x2)")
                         : conv->use_direct(in, out) ? "direct" : "GEMM";
    const double h = median(hot), c = median(cold), m = median(node_ms[n]);
    std::printf("| %s | %s | %s | %.1f MB | %.3f | %.3f | %.3f | %.2f |\n", conv->name().c_str(), key.c_str(), kernel,
                read_mb, h, c, m, c > h ? (m - h) / (c - h) : 0.0);
  }
  return flush.sink() == 12345.f ? 3 : 0;  // keeps the flush reads
}
