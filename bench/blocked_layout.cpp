// bench_blocked_layout — the engine's channel-blocked kernels (kernels/blocked.hpp, NCHW16c) against
// its NCHW ones at the layer shapes of ResNet-50 (and some of VGG16), the runs alternating: what
// the blocked layout buys layer by layer, the evidence behind Conv2d::runs_blocked()'s rules.
//
//   build/bench/bench_blocked_layout [--threads T] [--runs N] [--cold]
//
// --cold reads 1 GiB before every run, so weights and input come from memory as in a model.
// 1x1 convolutions + bias + ReLU (blocked::pointwise against the GEMM with B packed per call) and
// 3x3 convolutions by Winograd F(4x4, 3x3) + bias (blocked::winograd_f4 against winograd::conv3x3,
// the same transformed weights), whatever Conv2d would choose at that shape. Each blocked output is
// compared with the NCHW one before anything is timed; a mismatch above 1e-4 of the output's
// largest value exits 1. (Before the blocked stages existed this program timed stand-alone
// prototypes of the same kernels.) Findings: docs/performance.md, "Channel-blocked stages" and "Weights from memory".
#include <cnn/cnn.hpp>

#include "cache_flush.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

using namespace cnn;

#ifdef CNN_X86
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Largest difference between an NCHW and a blocked tensor, relative to the NCHW one's largest value.
double relative_difference(const float* nchw, const float* blocked, int64_t C, int64_t P) {
  double worst = 0, largest = 1e-30;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t p = 0; p < P; ++p) {
      const double a = nchw[c * P + p], b = blocked[((c / 16) * P + p) * 16 + c % 16];
      worst = std::max(worst, std::fabs(a - b)), largest = std::max(largest, std::fabs(a));
    }
  return worst / largest;
}

// With --cold: the caches flushed before every run (1 GiB read), so that weights and input come from
// memory, as they do for a model's wider layers at batch 1.
std::unique_ptr<bench::CacheFlush> flush_caches;

// Four copies of each side's input and output, used in turn, so that a run reads its input from
// beyond L2 as a layer in a model does; the two sides alternate in pairs of runs.
struct Comparison {
  double engine_ms, blocked_ms;
};
Comparison compare(int runs, const std::function<void(int)>& engine, const std::function<void(int)>& blocked) {
  std::vector<double> t_engine, t_blocked;
  for (int i = 0; i < 2 * runs; ++i) {
    const bool b = (i / 2) % 2 == 1;
    if (flush_caches) (*flush_caches)();
    const auto t0 = std::chrono::steady_clock::now();
    b ? blocked(i % 4) : engine(i % 4);
    (b ? t_blocked : t_engine).push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return {median(t_engine), median(t_blocked)};
}

struct Tensors {  // four NCHW inputs with their blocked copies, and outputs for both sides
  std::vector<AlignedVector> x, xb, y, yb;
  Tensors(int64_t cin, int64_t cout, int64_t P, std::mt19937& rng) {
    std::normal_distribution<float> normal;
    for (int i = 0; i < 4; ++i) {
      x.emplace_back(std::size_t(cin * P)), xb.emplace_back(std::size_t(cin * P));
      y.emplace_back(std::size_t(cout * P)), yb.emplace_back(std::size_t(cout * P));
      for (int64_t q = 0; q < cin * P; ++q) x[i].data()[q] = normal(rng);
      kernels::blocked::to_blocked(x[i].data(), cin, P, xb[i].data());
    }
  }
};

int fail_mismatch(const char* what, double diff) {
  std::fprintf(stderr, "bench_blocked_layout: %s: the blocked kernel differs from the NCHW one by %g of the largest output\n",
               what, diff);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0, runs = 200;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--threads" || a == "--runs") && i + 1 < argc) {
      const int v = std::atoi(argv[++i]);
      if (v <= 0) {
        std::fprintf(stderr, "bench_blocked_layout: %s needs a positive number\n", a.c_str());
        return 2;
      }
      (a == "--threads" ? threads : runs) = v;
    } else if (a == "--cold") {
      flush_caches = std::make_unique<bench::CacheFlush>(1024);
    } else {
      std::fprintf(stderr, "usage: bench_blocked_layout [--threads T] [--runs N] [--cold]\n");
      return 2;
    }
  }
  if (detect_isa() != Isa::AVX512) {
    std::fprintf(stderr, "bench_blocked_layout: the blocked kernels need AVX-512\n");
    return 2;
  }
  set_num_threads(threads);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::printf("ResNet-50's layers on the engine's NCHW and NCHW16c kernels, %d thread(s), medians of %d "
              "alternating runs each%s\n\n",
              num_threads(), runs, flush_caches ? ", caches flushed before each (--cold)" : "");
  std::printf("| layer | shape | NCHW | NCHW16c | ratio |\n|---|---|---:|---:|---:|\n");

  struct Pointwise {
    int64_t M, K, P;
    const char* layer;
  };
  for (const Pointwise& s : {Pointwise{64, 256, 3136, "layer1 1x1 256->64"}, Pointwise{256, 64, 3136, "layer1 1x1 64->256"},
                             Pointwise{128, 512, 784, "layer2 1x1 512->128"}, Pointwise{512, 128, 784, "layer2 1x1 128->512"},
                             Pointwise{256, 1024, 196, "layer3 1x1 1024->256"},
                             Pointwise{1024, 256, 196, "layer3 1x1 256->1024"}}) {
    Tensors t(s.K, s.M, s.P, rng);
    std::vector<float> w(std::size_t(s.M * s.K)), bias(std::size_t(s.M));
    for (float& v : w) v = normal(rng);
    for (float& v : bias) v = normal(rng);
    const kernels::PackedA packed = kernels::pack_a(s.M, s.K, ConstMat{w.data(), s.K, 1});
    const AlignedVector panels = kernels::blocked::pack_panels(s.M, s.K, w.data());
    Epilogue ep;
    ep.bias = bias.data();
    ep.act = Activation::ReLU;
    auto engine = [&](int c) {
      const ConstMat B{t.x[c].data(), s.P, 1};
      kernels::gemm_packed(s.M, s.P, s.K, packed, kernels::matrix_source(B), Mat{t.y[c].data(), s.P, 1}, ep);
    };
    const int64_t side = int64_t(std::lround(std::sqrt(double(s.P))));
    const kernels::blocked::PointwiseGeometry geo{s.K, s.M, side, side, 1, side, side};
    auto blocked = [&](int c) { kernels::blocked::pointwise(panels, t.xb[c].data(), geo, t.yb[c].data(), ep); };
    engine(0), blocked(0);
    const double diff = relative_difference(t.y[0].data(), t.yb[0].data(), s.M, s.P);
    if (!(diff <= 1e-4)) return fail_mismatch(s.layer, diff);
    const Comparison r = compare(runs, engine, blocked);
    std::printf("| %s | %lld x %lld x %lld px | %.3f ms | %.3f ms | %.2f |\n", s.layer, (long long)s.M, (long long)s.K,
                (long long)s.P, r.engine_ms, r.blocked_ms, r.blocked_ms / r.engine_ms);
  }

  struct Conv3x3 {
    int64_t C, H;
    const char* layer;
  };
  // ResNet-50's stride-1 3x3 layers, then wider ones of VGG16's (where U no longer fits L2, and the
  // blocked kernel, which streams all of U for every 14 tiles, has no blocking for it).
  for (const Conv3x3& s : {Conv3x3{64, 56, "layer1 3x3 64->64"}, Conv3x3{128, 28, "layer2 3x3 128->128"},
                           Conv3x3{256, 14, "layer3 3x3 256->256"}, Conv3x3{64, 224, "VGG16 conv1_2 64->64"},
                           Conv3x3{128, 112, "VGG16 conv2_2 128->128"}, Conv3x3{256, 56, "VGG16 conv3_2 256->256"}}) {
    const int64_t P = s.H * s.H;
    Tensors t(s.C, s.C, P, rng);
    std::vector<float> w(std::size_t(s.C * s.C * 9)), bias(std::size_t(s.C));
    for (float& v : w) v = 0.1f * normal(rng);
    for (float& v : bias) v = normal(rng);
    const kernels::winograd::Weights U = kernels::winograd::transform_weights(w.data(), s.C, s.C, 4);
    const kernels::blocked::WinogradWeights U_blocked = kernels::blocked::transform_weights(w.data(), s.C, s.C);
    const kernels::winograd::Geometry geo(4, s.C, s.H, s.H, 1, 1, s.C, s.H, s.H);
    Epilogue ep;
    ep.bias = bias.data();
    auto engine = [&](int c) { kernels::winograd::conv3x3(U, t.x[c].data(), geo, t.y[c].data(), ep); };
    auto blocked = [&](int c) { kernels::blocked::winograd_f4(U_blocked, t.xb[c].data(), {s.C, s.C, s.H, s.H}, t.yb[c].data(), ep); };
    engine(0), blocked(0);
    const double diff = relative_difference(t.y[0].data(), t.yb[0].data(), s.C, P);
    if (!(diff <= 1e-4)) return fail_mismatch(s.layer, diff);
    const Comparison r = compare(runs, engine, blocked);
    std::printf("| %s | %lldx%lld, F(4x4) | %.3f ms | %.3f ms | %.2f |\n", s.layer, (long long)s.H, (long long)s.H,
                r.engine_ms, r.blocked_ms, r.blocked_ms / r.engine_ms);
  }
  return flush_caches && flush_caches->sink() == 12345.f ? 3 : 0;  // keeps the flush reads
}
#else
int main() {
  std::fprintf(stderr, "bench_blocked_layout: the blocked kernels need an x86 CPU with AVX-512\n");
  return 2;
}
#endif
