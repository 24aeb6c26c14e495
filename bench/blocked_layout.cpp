// bench_blocked_layout — what a channel-blocked activation layout would buy ResNet-50 (and VGG16): prototype
// kernels on NCHW16c (16 channels interleaved per pixel, ONNX Runtime's layout) against the engine's
// kernels on NCHW, at the same shapes, the runs alternating.
//
//   build/bench/bench_blocked_layout [--threads T] [--runs N]
//
// The prototypes are experiments, not engine kernels (AVX-512 only; channel counts multiples of 32;
// no remainder handling beyond what the shapes below need). Both rest on one product: 32 output
// channels (2 vectors) x 14 columns, 28 accumulators, where each input channel's value for the 14
// columns is broadcast from the 14 cache lines holding those columns' 16-channel blocks (every
// line fully used over 16 steps) and each finished vector is one whole-line store:
//   - 1x1 convolution + bias + ReLU, columns = pixels, against the GEMM with B packed per call;
//   - 3x3 convolution by Winograd F(4x4, 3x3) + bias, columns = 14 tiles: the input transform on
//     16-channel vectors (no lane shuffles), 36 products, the output transform likewise, against
//     kernels/winograd.hpp (same transformed weights; the engine's choice of F(4x4) at these sizes).
// Each prototype's output is compared with the engine's before anything is timed; a mismatch above
// 1e-4 of the output's largest value exits 1. Findings: docs/performance.md, "Sixth session".
#include <cnn/cnn.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
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

constexpr int kColumns = 14;

// acc[v][p] = sum over k < K of w[k][16 v .. 16 v + 16) * x(k, p): x's channel block b at
// x + b * block_stride holds column p's 16 channels at [p * 16, p * 16 + 16); w is [K][32].
CNN_TARGET_AVX512 inline void product_32x14(const float* x, int64_t block_stride, int64_t K, const float* w,
                                            __m512 (&acc)[2][kColumns]) {
  for (auto& row : acc)
    for (auto& a : row) a = _mm512_setzero_ps();
  for (int64_t cb = 0; cb < K / 16; ++cb, x += block_stride)
    for (int c = 0; c < 16; ++c, w += 32) {
      const __m512 w0 = _mm512_load_ps(w), w1 = _mm512_load_ps(w + 16);
#pragma GCC unroll 14
      for (int p = 0; p < kColumns; ++p) {
        const __m512 b = _mm512_set1_ps(x[p * 16 + c]);
        acc[0][p] = _mm512_fmadd_ps(w0, b, acc[0][p]);
        acc[1][p] = _mm512_fmadd_ps(w1, b, acc[1][p]);
      }
    }
}

// ---- 1x1: x [K/16][P][16] -> y [M/16][P][16] = ReLU(W x + bias); panels: [M/32][K][32] ----------
CNN_TARGET_AVX512 void pointwise_tile(const float* x, int64_t P, int64_t K, const float* panels, int64_t p0,
                                      int64_t panel, const float* bias, float* y) {
  __m512 acc[2][kColumns];
  product_32x14(x + p0 * 16, P * 16, K, panels + panel * K * 32, acc);
  for (int v = 0; v < 2; ++v) {
    const int64_t block = panel * 2 + v;
    const __m512 bv = _mm512_loadu_ps(bias + block * 16);
    float* yb = y + (block * P + p0) * 16;
    for (int p = 0; p < kColumns; ++p)
      _mm512_store_ps(yb + p * 16, _mm512_max_ps(_mm512_add_ps(acc[v][p], bv), _mm512_setzero_ps()));
  }
}

// Pixel tiles split among the threads; both weight panels of a tile while its input is in L1.
void pointwise_blocked(const float* x, int64_t P, int64_t K, int64_t M, const float* panels, const float* bias,
                       float* y) {
  const int64_t tiles = P / kColumns, n_panels = M / 32;
  const int64_t chunks = std::min<int64_t>(tiles, 4 * num_threads());
  parallel_for(chunks, kMinParallelWork, [&](int64_t ch) {
    for (int64_t t = tiles * ch / chunks; t < tiles * (ch + 1) / chunks; ++t)
      for (int64_t pn = 0; pn < n_panels; ++pn) pointwise_tile(x, P, K, panels, t * kColumns, pn, bias, y);
  });
}

// ---- Winograd F(4x4, 3x3), stride 1, padding 1: x [C/16][H][W][16] -> y [C/16][H][W][16] -------
// Work item: 14 consecutive tiles (row-major over the tile grid). V [36][cin/16][14][16] and
// M [36][cout/16][14][16] are the item's transformed input and products; U [36][cout/32][cin][32].
struct WinogradShape {
  int64_t cin, cout, h, w, tiles_w, tiles;
};

CNN_TARGET_AVX512 void winograd_input(const WinogradShape& s, const float* x, int64_t t0, float* V) {
  const __m512 zero = _mm512_setzero_ps();
  for (int p = 0; p < kColumns; ++p) {
    const int64_t t = t0 + p, ty = t / s.tiles_w, tx = t % s.tiles_w;
    for (int64_t cb = 0; cb < s.cin / 16; ++cb) {
      __m512 d[6][6], r[6][6];
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j) {
          const int64_t iy = 4 * ty - 1 + i, ix = 4 * tx - 1 + j;
          const bool inside = t < s.tiles && iy >= 0 && iy < s.h && ix >= 0 && ix < s.w;
          d[i][j] = inside ? _mm512_load_ps(x + ((cb * s.h + iy) * s.w + ix) * 16) : zero;
        }
      for (int i = 0; i < 6; ++i) kernels::winograd::input_1d(d[i][0], d[i][1], d[i][2], d[i][3], d[i][4], d[i][5], r[i]);
      for (int b = 0; b < 6; ++b) {
        __m512 o[6];
        kernels::winograd::input_1d(r[0][b], r[1][b], r[2][b], r[3][b], r[4][b], r[5][b], o);
        for (int a = 0; a < 6; ++a) _mm512_store_ps(V + (((a * 6 + b) * (s.cin / 16) + cb) * kColumns + p) * 16, o[a]);
      }
    }
  }
}

CNN_TARGET_AVX512 void winograd_products(const WinogradShape& s, const float* V, const float* U, float* M) {
  for (int e = 0; e < 36; ++e)
    for (int64_t pn = 0; pn < s.cout / 32; ++pn) {
      __m512 acc[2][kColumns];
      product_32x14(V + e * s.cin * kColumns, kColumns * 16, s.cin, U + (e * (s.cout / 32) + pn) * s.cin * 32, acc);
      for (int v = 0; v < 2; ++v)
        for (int p = 0; p < kColumns; ++p)
          _mm512_store_ps(M + ((e * (s.cout / 16) + pn * 2 + v) * kColumns + p) * 16, acc[v][p]);
    }
}

CNN_TARGET_AVX512 void winograd_output(const WinogradShape& s, const float* M, int64_t t0, const float* bias, float* y) {
  for (int p = 0; p < kColumns && t0 + p < s.tiles; ++p) {
    const int64_t t = t0 + p, ty = t / s.tiles_w, tx = t % s.tiles_w;
    for (int64_t ob = 0; ob < s.cout / 16; ++ob) {
      __m512 q[4][6];
      for (int b = 0; b < 6; ++b) {
        __m512 v[6], o[4];
        for (int a = 0; a < 6; ++a) v[a] = _mm512_load_ps(M + (((a * 6 + b) * (s.cout / 16) + ob) * kColumns + p) * 16);
        kernels::winograd::output_1d(v[0], v[1], v[2], v[3], v[4], v[5], o);
        for (int i = 0; i < 4; ++i) q[i][b] = o[i];
      }
      const __m512 bv = _mm512_loadu_ps(bias + ob * 16);
      for (int i = 0; i < 4 && 4 * ty + i < s.h; ++i) {
        __m512 o[4];
        kernels::winograd::output_1d(q[i][0], q[i][1], q[i][2], q[i][3], q[i][4], q[i][5], o);
        for (int j = 0; j < 4 && 4 * tx + j < s.w; ++j)
          _mm512_store_ps(y + ((ob * s.h + 4 * ty + i) * s.w + 4 * tx + j) * 16, _mm512_add_ps(o[j], bv));
      }
    }
  }
}

void winograd_blocked(const WinogradShape& s, const float* x, const float* U, const float* bias, float* y) {
  const int64_t items = (s.tiles + kColumns - 1) / kColumns;
  parallel_for(items, kMinParallelWork, [&](int64_t item) {
    thread_local AlignedVector V, M;
    V.resize_discard(std::size_t(36 * s.cin * kColumns));
    M.resize_discard(std::size_t(36 * s.cout * kColumns));
    winograd_input(s, x, item * kColumns, V.data());
    winograd_products(s, V.data(), U, M.data());
    winograd_output(s, M.data(), item * kColumns, bias, y);
  });
}

// ---- the comparison ---------------------------------------------------------------------------
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// [C][P] -> [C/16][P][16]
void to_blocked(const float* src, int64_t C, int64_t P, float* dst) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t p = 0; p < P; ++p) dst[((c / 16) * P + p) * 16 + c % 16] = src[c * P + p];
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

// Four copies of each side's input and output, used in turn, so that a run reads its input from
// beyond L2 as a layer in a model does; the two sides alternate in pairs of runs.
struct Comparison {
  double engine_ms, blocked_ms;
};
Comparison compare(int runs, const std::function<void(int)>& engine, const std::function<void(int)>& blocked) {
  std::vector<double> t_engine, t_blocked;
  for (int i = 0; i < 2 * runs; ++i) {
    const bool b = (i / 2) % 2 == 1;
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
      to_blocked(x[i].data(), cin, P, xb[i].data());
    }
  }
};

int fail_mismatch(const char* what, double diff) {
  std::fprintf(stderr, "bench_blocked_layout: %s: the prototype differs from the engine by %g of the largest output\n",
               what, diff);
  return 1;
}

}  // namespace
CNN_KERNELS_END

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
    } else {
      std::fprintf(stderr, "usage: bench_blocked_layout [--threads T] [--runs N]\n");
      return 2;
    }
  }
  if (detect_isa() != Isa::AVX512) {
    std::fprintf(stderr, "bench_blocked_layout: the prototype kernels need AVX-512\n");
    return 2;
  }
  set_num_threads(threads);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::printf("ResNet-50's layers on NCHW (the engine) and NCHW16c (prototypes), %d thread(s), medians of %d "
              "alternating runs each\n\n",
              num_threads(), runs);
  std::printf("| layer | shape | engine, NCHW | prototype, NCHW16c | ratio |\n|---|---|---:|---:|---:|\n");

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
    const AlignedVector panels = kernels::pack_row_panels(s.M, s.K, ConstMat{w.data(), s.K, 1}, 32);
    Epilogue ep;
    ep.bias = bias.data();
    ep.act = Activation::ReLU;
    auto engine = [&](int c) {
      const ConstMat B{t.x[c].data(), s.P, 1};
      kernels::gemm_packed(s.M, s.P, s.K, packed, kernels::matrix_source(B), Mat{t.y[c].data(), s.P, 1}, ep);
    };
    auto blocked = [&](int c) { pointwise_blocked(t.xb[c].data(), s.P, s.K, s.M, panels.data(), bias.data(), t.yb[c].data()); };
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
  // ResNet-50's stride-1 3x3 layers, then wider ones of VGG16's (where U no longer fits L2 and the
  // prototype, which streams all of U for every 14 tiles, has no blocking for it).
  for (const Conv3x3& s : {Conv3x3{64, 56, "layer1 3x3 64->64"}, Conv3x3{128, 28, "layer2 3x3 128->128"},
                           Conv3x3{256, 14, "layer3 3x3 256->256"}, Conv3x3{64, 224, "VGG16 conv1_2 64->64"},
                           Conv3x3{128, 112, "VGG16 conv2_2 128->128"}, Conv3x3{256, 56, "VGG16 conv3_2 256->256"}}) {
    const int64_t P = s.H * s.H;
    Tensors t(s.C, s.C, P, rng);
    std::vector<float> w(std::size_t(s.C * s.C * 9)), bias(std::size_t(s.C));
    for (float& v : w) v = 0.1f * normal(rng);
    for (float& v : bias) v = normal(rng);
    const kernels::winograd::Weights U = kernels::winograd::transform_weights(w.data(), s.C, s.C, 4);
    AlignedVector U_blocked(std::size_t(36 * s.C * s.C));  // [36][cout/32][cin][32] from U's 8-row panels
    for (int e = 0; e < 36; ++e)
      for (int64_t oc = 0; oc < s.C; ++oc)
        for (int64_t ic = 0; ic < s.C; ++ic)
          U_blocked.data()[((e * (s.C / 32) + oc / 32) * s.C + ic) * 32 + oc % 32] =
              U.u[std::size_t(e)].values.data()[((oc / 8) * s.C + ic) * 8 + oc % 8];
    const kernels::winograd::Geometry geo(4, s.C, s.H, s.H, 1, 1, s.C, s.H, s.H);
    const WinogradShape shape{s.C, s.C, s.H, s.H, (s.H + 3) / 4, ((s.H + 3) / 4) * ((s.H + 3) / 4)};
    Epilogue ep;
    ep.bias = bias.data();
    auto engine = [&](int c) { kernels::winograd::conv3x3(U, t.x[c].data(), geo, t.y[c].data(), ep); };
    auto blocked = [&](int c) { winograd_blocked(shape, t.xb[c].data(), U_blocked.data(), bias.data(), t.yb[c].data()); };
    engine(0), blocked(0);
    const double diff = relative_difference(t.y[0].data(), t.yb[0].data(), s.C, P);
    if (!(diff <= 1e-4)) return fail_mismatch(s.layer, diff);
    const Comparison r = compare(runs, engine, blocked);
    std::printf("| %s | %lldx%lld, F(4x4) | %.3f ms | %.3f ms | %.2f |\n", s.layer, (long long)s.H, (long long)s.H,
                r.engine_ms, r.blocked_ms, r.blocked_ms / r.engine_ms);
  }
  return 0;
}
#else
int main() {
  std::fprintf(stderr, "bench_blocked_layout: the prototype kernels need an x86 CPU with AVX-512\n");
  return 2;
}
#endif
