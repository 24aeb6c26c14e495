// bench_pointwise_layout — what a channel-blocked activation layout would buy ResNet-50's 1x1
// convolutions: the engine's GEMM on NCHW (B packed per call) against a prototype kernel on NCHW16c
// (16 channels interleaved per pixel, ONNX Runtime's layout), the same shapes, the runs alternating.
//
//   build/bench/bench_pointwise_layout [--threads T] [--runs N]
//
// The prototype is an experiment, not an engine kernel: 1x1, stride 1, bias + ReLU, M a multiple of
// 32, K of 16 and the pixel count of 14 (AVX-512 only). A tile is 32 output channels (2 vectors) x
// 14 pixels, 28 accumulators; each input channel broadcasts 14 pixels' values from the 14 cache lines
// that hold those pixels' 16-channel blocks (every line fully used over 16 steps), and each finished
// vector is one aligned, whole-line store. Its output is checked against the engine's (tested) GEMM
// before anything is timed; a mismatch exits 1. Findings: docs/performance.md, "Sixth session".
#include <cnn/cnn.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace cnn;

#ifdef CNN_X86
CNN_KERNELS_BEGIN
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12's _mm512_undefined_ps, inlined here
#endif
namespace {

constexpr int kTilePixels = 14;

// Output channels [32 panel, +32) x pixels [p0, p0 + 14) of y = ReLU(W x + bias) on NCHW16c:
// x is [K/16][P][16], y is [M/16][P][16], w is the panel's [K][32] weights.
CNN_TARGET_AVX512 void blocked_tile(const float* x, int64_t P, int64_t K, const float* w, int64_t p0, int64_t panel,
                                    const float* bias, float* y) {
  __m512 acc[2][kTilePixels];
  for (auto& row : acc)
    for (auto& a : row) a = _mm512_setzero_ps();
  for (int64_t cb = 0; cb < K / 16; ++cb) {
    const float* xb = x + (cb * P + p0) * 16;
    for (int c = 0; c < 16; ++c, w += 32) {
      const __m512 w0 = _mm512_load_ps(w), w1 = _mm512_load_ps(w + 16);
#pragma GCC unroll 14
      for (int p = 0; p < kTilePixels; ++p) {
        const __m512 b = _mm512_set1_ps(xb[p * 16 + c]);
        acc[0][p] = _mm512_fmadd_ps(w0, b, acc[0][p]);
        acc[1][p] = _mm512_fmadd_ps(w1, b, acc[1][p]);
      }
    }
  }
  for (int v = 0; v < 2; ++v) {
    const int64_t block = panel * 2 + v;
    const __m512 bv = _mm512_loadu_ps(bias + block * 16);
    float* yb = y + (block * P + p0) * 16;
    for (int p = 0; p < kTilePixels; ++p)
      _mm512_store_ps(yb + p * 16, _mm512_max_ps(_mm512_add_ps(acc[v][p], bv), _mm512_setzero_ps()));
  }
}

// Pixel tiles split among the threads, both weight panels of a tile while its input is in L1.
void blocked_conv1x1(const float* x, int64_t P, int64_t K, int64_t M, const float* panels, const float* bias, float* y) {
  const int64_t tiles = P / kTilePixels, n_panels = M / 32;
  const int64_t chunks = std::min<int64_t>(tiles, 4 * num_threads());
  parallel_for(chunks, kMinParallelWork, [&](int64_t ch) {
    for (int64_t t = tiles * ch / chunks; t < tiles * (ch + 1) / chunks; ++t)
      for (int64_t pn = 0; pn < n_panels; ++pn)
        blocked_tile(x, P, K, panels + pn * K * 32, t * kTilePixels, pn, bias, y);
  });
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Shape1x1 {
  int64_t M, K, P;
  const char* layer;
};

}  // namespace
CNN_KERNELS_END

int main(int argc, char** argv) {
  int threads = 0, runs = 200;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--threads" || a == "--runs") && i + 1 < argc) {
      const int v = std::atoi(argv[++i]);
      if (v <= 0) {
        std::fprintf(stderr, "bench_pointwise_layout: %s needs a positive number\n", a.c_str());
        return 2;
      }
      (a == "--threads" ? threads : runs) = v;
    } else {
      std::fprintf(stderr, "usage: bench_pointwise_layout [--threads T] [--runs N]\n");
      return 2;
    }
  }
  if (detect_isa() != Isa::AVX512) {
    std::fprintf(stderr, "bench_pointwise_layout: the prototype kernel needs AVX-512\n");
    return 2;
  }
  set_num_threads(threads);
  const Shape1x1 shapes[] = {{64, 256, 3136, "layer1 256->64"},
                             {256, 64, 3136, "layer1 64->256"},
                             {128, 512, 784, "layer2 512->128"},
                             {512, 128, 784, "layer2 128->512"},
                             {256, 1024, 196, "layer3 1024->256"},
                             {1024, 256, 196, "layer3 256->1024"}};
  std::printf("1x1 convolution + bias + ReLU, %d thread(s), medians of %d alternating runs each\n", num_threads(),
              runs);
  std::printf("| layer | M x K x pixels | GEMM on NCHW | NCHW16c prototype | prototype / GEMM |\n|---|---|---:|---:|---:|\n");
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  for (const Shape1x1& s : shapes) {
    // Four copies of the activations, used in turn, so that each run reads its input from beyond
    // L2 as a layer in a model does.
    constexpr int kCopies = 4;
    std::vector<AlignedVector> x_nchw, x_blocked, y_nchw, y_blocked;
    for (int c = 0; c < kCopies; ++c) {
      x_nchw.emplace_back(std::size_t(s.K * s.P));
      x_blocked.emplace_back(std::size_t(s.K * s.P));
      y_nchw.emplace_back(std::size_t(s.M * s.P));
      y_blocked.emplace_back(std::size_t(s.M * s.P));
      for (int64_t i = 0; i < s.K * s.P; ++i) x_nchw[c].data()[i] = normal(rng);
      for (int64_t ch = 0; ch < s.K; ++ch)
        for (int64_t p = 0; p < s.P; ++p)
          x_blocked[c].data()[((ch / 16) * s.P + p) * 16 + ch % 16] = x_nchw[c].data()[ch * s.P + p];
    }
    std::vector<float> w(std::size_t(s.M * s.K)), bias(std::size_t(s.M));
    for (float& v : w) v = normal(rng);
    for (float& v : bias) v = normal(rng);
    const kernels::PackedA packed = kernels::pack_a(s.M, s.K, ConstMat{w.data(), s.K, 1});
    const AlignedVector panels = kernels::pack_row_panels(s.M, s.K, ConstMat{w.data(), s.K, 1}, 32);
    Epilogue ep;
    ep.bias = bias.data();
    ep.act = Activation::ReLU;
    auto run_gemm = [&](int c) {
      const ConstMat B{x_nchw[c].data(), s.P, 1};
      kernels::gemm_packed(s.M, s.P, s.K, packed, kernels::matrix_source(B), Mat{y_nchw[c].data(), s.P, 1}, ep);
    };
    auto run_blocked = [&](int c) {
      blocked_conv1x1(x_blocked[c].data(), s.P, s.K, s.M, panels.data(), bias.data(), y_blocked[c].data());
    };
    run_gemm(0);
    run_blocked(0);
    double worst = 0, largest = 0;
    for (int64_t m = 0; m < s.M; ++m)
      for (int64_t p = 0; p < s.P; ++p) {
        const float a = y_nchw[0].data()[m * s.P + p], b = y_blocked[0].data()[((m / 16) * s.P + p) * 16 + m % 16];
        worst = std::max(worst, double(std::fabs(a - b))), largest = std::max(largest, double(std::fabs(a)));
      }
    if (!(worst <= 1e-4 * std::max(1.0, largest))) {
      std::fprintf(stderr, "bench_pointwise_layout: %s: prototype differs from the GEMM by %g\n", s.layer, worst);
      return 1;
    }
    std::vector<double> t_gemm, t_blocked;
    for (int i = 0; i < 2 * runs; ++i) {
      const bool blocked = (i / 2) % 2 == 1;  // GEMM, GEMM, prototype, prototype, ...
      const auto t0 = std::chrono::steady_clock::now();
      blocked ? run_blocked(i % kCopies) : run_gemm(i % kCopies);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      (blocked ? t_blocked : t_gemm).push_back(ms);
    }
    const double g = median(t_gemm), b = median(t_blocked);
    std::printf("| %s | %lld x %lld x %lld | %.3f ms | %.3f ms | %.2f |\n", s.layer, (long long)s.M, (long long)s.K,
                (long long)s.P, g, b, b / g);
  }
  return 0;
}
#else
int main() {
  std::fprintf(stderr, "bench_pointwise_layout: the prototype kernel needs an x86 CPU with AVX-512\n");
  return 2;
}
#endif
