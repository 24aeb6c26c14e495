// cnn/kernels/blocked.hpp — convolutions on the channel-blocked activation layout (NCHW16c).
//
// A blocked tensor holds each image as C/16 blocks of [H][W][16]: the 16 channels of a block at one
// pixel are one cache line and one AVX-512 vector. Vectors then run along channels, not pixels, and
// the kernels here need neither packing nor transposing: a product of 32 output channels (2 vectors)
// x 14 columns (pixels, or Winograd tiles) keeps 28 accumulators, broadcasts each input channel's
// value for the 14 columns from the 14 cache lines that hold them (every line fully used over 16
// steps), and stores every result vector as one whole line. On ResNet-50's 56x56 layers that ran
// 0.68-0.74x the time of the NCHW paths (bench_blocked_layout, docs/performance.md): the NCHW 1x1
// GEMM must pack its input per call, and the NCHW Winograd pads 28-tile blocks to 32-wide panels
// and shuffles lanes in its transforms. Which layers run blocked is Conv2d's and Pool2d's choice
// (runs_blocked()); the graph plans the layouts (graph.hpp). kernels/direct_conv.hpp reads and
// writes this layout too, and kernels/pool.hpp max-pools it.
//
//   - to_blocked / to_nchw: one image between the layouts (16x16 transposes in registers);
//   - pointwise(): 1x1 convolution, stride 1, or 2 (ResNet's shortcuts), no padding; its output
//     may also be written NCHW (a transposed store), where the next layers run on NCHW;
//   - winograd_f4(): 3x3, stride 1, padding 1, by Winograd F(4x4, 3x3), for narrow layers (its
//     transformed weights are streamed for every 14 tiles: wide layers stay on the NCHW kernel).
// Both apply the full epilogue (bias, residual in the same layout, activation). AVX-512 only;
// channel counts must be multiples of 16 (Conv2d::runs_blocked() checks). Every output
// element is summed in one fixed order whatever the thread count. tests/test_blocked.cpp compares
// each kernel with conv2d_reference() through the layout conversions, on random shapes.
#pragma once
#include <algorithm>
#include <cstdint>

#include "../parallel.hpp"
#include "gemm.hpp"
#include "winograd.hpp"

CNN_KERNELS_BEGIN

namespace cnn::kernels::blocked {

constexpr int64_t kLanes = 16;   // channels per block
constexpr int64_t kPanel = 32;   // output channels per weight panel (2 vectors)
constexpr int kColumns = 14;     // pixels or tiles per product

// Weights [M][K] as ceil(M/32) panels [K][32], zero-padded (the layout both products read).
inline AlignedVector pack_panels(int64_t M, int64_t K, const float* w) {
  return pack_row_panels(M, K, ConstMat{w, K, 1}, kPanel);
}

// ---- 1x1 convolution -----------------------------------------------------------------------------
struct PointwiseGeometry {
  int64_t cin, cout, h, w, stride, oh, ow;  // no padding: oh = (h - 1) / stride + 1
  bool nchw_out = false;                     // write the output (and read the residual) as NCHW
};

// Whether pointwise() handles this shape: stride 1 with at least one tile of pixels, or stride 2
// with output rows of at least one tile (tiles do not cross rows there).
inline bool pointwise_supports(const PointwiseGeometry& g) {
  if (g.cin % kLanes || g.cout % kLanes) return false;
  if (g.stride == 1) return g.oh * g.ow >= kColumns;
  return g.stride == 2 && g.ow >= kColumns;
}

// ---- 3x3 convolution by Winograd F(4x4, 3x3) -----------------------------------------------------
// Transformed weights: U_e = G g G^T for the 36 positions e, each as pack_panels(cout, cin).
struct WinogradWeights {
  int64_t cin = 0, cout = 0;
  AlignedVector u;  // [36][ceil(cout/32)][cin][32]
  const float* panel(int e, int64_t pn) const {
    return u.data() + (int64_t(e) * ((cout + kPanel - 1) / kPanel) + pn) * cin * kPanel;
  }
};
inline WinogradWeights transform_weights(const float* w, int64_t cout, int64_t cin) {
  // The NCHW kernel's transform (in double), its 8-row panels unpacked into 32-row ones.
  const winograd::Weights nchw = winograd::transform_weights(w, cout, cin, 4);
  WinogradWeights W;
  W.cin = cin, W.cout = cout;
  const int64_t n_panels = (cout + kPanel - 1) / kPanel;
  W.u = AlignedVector(std::size_t(36 * n_panels * cin * kPanel));
  std::fill(W.u.data(), W.u.data() + W.u.size(), 0.f);
  for (int e = 0; e < 36; ++e)
    for (int64_t oc = 0; oc < cout; ++oc)
      for (int64_t ic = 0; ic < cin; ++ic)
        W.u.data()[((e * n_panels + oc / kPanel) * cin + ic) * kPanel + oc % kPanel] =
            nchw.u[std::size_t(e)].values.data()[((oc / kMR) * cin + ic) * kMR + oc % kMR];
  return W;
}

struct WinogradGeometry {
  int64_t cin, cout, h, w;  // output h x w (stride 1, padding 1)
  int64_t tiles_w() const { return (w + 3) / 4; }
  int64_t tiles() const { return tiles_w() * ((h + 3) / 4); }
};

#ifdef CNN_X86
// r[i] (16 rows) becomes column i of the 16x16 matrix they form.
CNN_TARGET_AVX512 inline void transpose16x16(__m512 r[16]) {
  __m512 a[16];
  for (int i = 0; i < 8; ++i) {
    a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; ++g) {  // r[4g+j], 128-bit lane L: element 4L+j of rows 4g..4g+3
    const __m512d a0 = _mm512_castps_pd(a[4 * g]), a1 = _mm512_castps_pd(a[4 * g + 1]);
    const __m512d a2 = _mm512_castps_pd(a[4 * g + 2]), a3 = _mm512_castps_pd(a[4 * g + 3]);
    r[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
    r[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
    r[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
    r[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
  }
  for (int j = 0; j < 4; ++j) {  // a 4x4 transpose of 128-bit lanes for each j
    const __m512 c0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x44), c1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xEE);
    const __m512 c2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x44), c3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xEE);
    a[j] = _mm512_shuffle_f32x4(c0, c2, 0x88);
    a[4 + j] = _mm512_shuffle_f32x4(c0, c2, 0xDD);
    a[8 + j] = _mm512_shuffle_f32x4(c1, c3, 0x88);
    a[12 + j] = _mm512_shuffle_f32x4(c1, c3, 0xDD);
  }
  for (int i = 0; i < 16; ++i) r[i] = a[i];
}

namespace detail {
// 16 channels (block b) x pixels [p0, p0 + 16) of [C][P] into [C/16][P][16], and back.
CNN_TARGET_AVX512 inline void to_blocked_16x16(const float* x, int64_t P, int64_t b, int64_t p0, float* y) {
  const int64_t n = std::min<int64_t>(16, P - p0);
  const __mmask16 m = __mmask16((1u << n) - 1);
  __m512 r[16];
  for (int c = 0; c < 16; ++c) r[c] = _mm512_maskz_loadu_ps(m, x + (b * kLanes + c) * P + p0);
  transpose16x16(r);  // r[p]: pixel p0 + p's 16 channels
  for (int64_t p = 0; p < n; ++p) _mm512_store_ps(y + (b * P + p0 + p) * kLanes, r[p]);
}
CNN_TARGET_AVX512 inline void to_nchw_16x16(const float* x, int64_t P, int64_t b, int64_t p0, float* y) {
  const int64_t n = std::min<int64_t>(16, P - p0);
  const __mmask16 m = __mmask16((1u << n) - 1);
  __m512 r[16];
  for (int64_t p = 0; p < 16; ++p) r[p] = p < n ? _mm512_load_ps(x + (b * P + p0 + p) * kLanes) : _mm512_setzero_ps();
  transpose16x16(r);  // r[c]: channel b*16 + c at pixels p0..
  for (int c = 0; c < 16; ++c) _mm512_mask_storeu_ps(y + (b * kLanes + c) * P + p0, m, r[c]);
}
}  // namespace detail

// One image [C][P] -> [C/16][P][16] (C a multiple of 16).
inline void to_blocked(const float* x, int64_t C, int64_t P, float* y) {
  const int64_t chunks = (P + 15) / 16;
  parallel_for((C / kLanes) * chunks, 256 * 16,
               [&](int64_t item) { detail::to_blocked_16x16(x, P, item / chunks, item % chunks * 16, y); });
}
// One image [C/16][P][16] -> [C][P].
inline void to_nchw(const float* x, int64_t C, int64_t P, float* y) {
  const int64_t chunks = (P + 15) / 16;
  parallel_for((C / kLanes) * chunks, 256 * 16,
               [&](int64_t item) { detail::to_nchw_16x16(x, P, item / chunks, item % chunks * 16, y); });
}

// acc[v][p] = sum over k < K of w[k][16 v + lane] * x(k, column p), where column p's channel block
// cb starts at x + cb * block_stride + p * Step (Step = 16: adjacent pixels or tiles; 32: every other
// pixel, a stride-2 row) and w is a [K][32] panel.
template <int Step>
CNN_TARGET_AVX512 inline void product(const float* x, int64_t block_stride, int64_t K, const float* w,
                                      __m512 (&acc)[2][kColumns]) {
  for (auto& row : acc)
    for (auto& a : row) a = _mm512_setzero_ps();
  for (int64_t cb = 0; cb < K / kLanes; ++cb, x += block_stride)
    for (int c = 0; c < kLanes; ++c, w += kPanel) {
      const __m512 w0 = _mm512_load_ps(w), w1 = _mm512_load_ps(w + 16);
#pragma GCC unroll 14
      for (int p = 0; p < kColumns; ++p) {
        const __m512 b = _mm512_set1_ps(x[p * Step + c]);
        acc[0][p] = _mm512_fmadd_ps(w0, b, acc[0][p]);
        acc[1][p] = _mm512_fmadd_ps(w1, b, acc[1][p]);
      }
    }
}

// Finishes output vector x for channel block `block` at dst: bias, residual, activation, store.
CNN_TARGET_AVX512 inline void finish(__m512 x, int64_t block, float* dst, const Epilogue& ep) {
  if (ep.bias) x = _mm512_add_ps(x, _mm512_loadu_ps(ep.bias + block * kLanes));
  if (ep.residual) x = _mm512_add_ps(x, _mm512_load_ps(ep.residual + (dst - ep.out_base)));
  if (ep.act == Activation::Sigmoid) {
    alignas(64) float v[kLanes];
    _mm512_store_ps(v, x);
    for (float& e : v) e = ep.activate(e);
    x = _mm512_load_ps(v);
  }
  x = activate_avx512(x, ep.act, _mm512_set1_ps(ep.slope));
  _mm512_store_ps(dst, x);
}

// Finishes pixels [skip, 14) of one output channel's row at dst (NCHW): lane p is pixel p.
CNN_TARGET_AVX512 inline void finish_row(__m512 x, int64_t channel, float* dst, int64_t skip, const Epilogue& ep) {
  const __mmask16 m = __mmask16(((1u << kColumns) - 1) & ~((1u << skip) - 1));
  if (ep.act == Activation::Sigmoid) {  // the residual may live where the output goes: read it first
    alignas(64) float v[16];
    _mm512_store_ps(v, x);
    for (int64_t p = skip; p < kColumns; ++p) dst[p] = ep.apply(v[p], channel, dst + p);
    return;
  }
  if (ep.bias) x = _mm512_add_ps(x, _mm512_set1_ps(ep.bias[channel]));
  if (ep.residual) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, ep.residual + (dst - ep.out_base)));
  _mm512_mask_storeu_ps(dst, m, activate_avx512(x, ep.act, _mm512_set1_ps(ep.slope)));
}

namespace detail {
// Tile t of pointwise() below: its 14 pixels, weight panels [pn0, pn1).
CNN_TARGET_AVX512 inline void pointwise_tile(const AlignedVector& panels, const float* x, const PointwiseGeometry& g,
                                             int64_t t, int64_t pn0, int64_t pn1, float* y, const Epilogue& ep) {
  const int64_t P = g.oh * g.ow, in_plane = g.h * g.w;
  const int64_t row_len = g.stride == 1 ? P : g.ow, per_row = (row_len + kColumns - 1) / kColumns;
  const int64_t row = t / per_row, start = t % per_row * kColumns;
  const int64_t first = std::min(start, row_len - kColumns);  // first pixel of the tile in its row
  const int64_t skip = start - first;                          // pixels a previous tile stored
  const int64_t q0 = row * row_len + first;                    // the tile's first output pixel
  // Tiles do not cross rows at stride 2, so the tile's pixels are evenly spaced in the input.
  const int64_t in0 = g.stride == 1 ? q0 : (q0 / g.ow) * g.stride * g.w + (q0 % g.ow) * g.stride;
  const float* x0 = x + in0 * kLanes;
  for (int64_t pn = pn0; pn < pn1; ++pn) {
    __m512 acc[2][kColumns];
    const float* w = panels.data() + pn * g.cin * kPanel;
    if (g.stride == 1) product<kLanes>(x0, in_plane * kLanes, g.cin, w, acc);
    else product<2 * kLanes>(x0, in_plane * kLanes, g.cin, w, acc);
    for (int v = 0; v < 2 && (pn * 2 + v) * kLanes < g.cout; ++v) {
      if (!g.nchw_out) {
        for (int p = int(skip); p < kColumns; ++p) finish(acc[v][p], pn * 2 + v, y + ((pn * 2 + v) * P + q0 + p) * kLanes, ep);
        continue;
      }
      // NCHW output: the 14 pixels x 16 channels transposed to one row of pixels per channel.
      __m512 r[16];
      for (int p = 0; p < 16; ++p) r[p] = p < kColumns ? acc[v][p] : _mm512_setzero_ps();
      transpose16x16(r);
      for (int c = 0; c < 16; ++c) finish_row(r[c], (pn * 2 + v) * kLanes + c, y + ((pn * 2 + v) * kLanes + c) * P + q0, skip, ep);
    }
  }
}
}  // namespace detail

// y = epilogue(W x) for one image; x [cin/16][h][w][16], y [cout/16][oh][ow][16], panels from
// pack_panels(cout, cin, w). Small weights (up to 512 KiB): items are runs of 14-pixel tiles, each
// tile through every panel while its input is in L1. Larger ones: items are runs of panels, each
// panel through every tile, so the weights are streamed once in all (ResNet-50's 512->1024 stride-2
// shortcut at 14x14, 2 MiB of weights, 14 tiles: 1.31 ms as tile runs, 0.92 as panel runs, 0.81
// for the NCHW GEMM, which is why Conv2d keeps such layers on NCHW).
// A last tile steps back to end at its row's end (stride 1: the map's) and stores only the pixels
// no earlier tile stored, so an output written over its residual stays right.
inline void pointwise(const AlignedVector& panels, const float* x, const PointwiseGeometry& g, float* y,
                      const Epilogue& ep) {
  if (!pointwise_supports(g)) fail("blocked 1x1 convolution: unsupported shape");
  const int64_t row_len = g.stride == 1 ? g.oh * g.ow : g.ow, n_panels = (g.cout + kPanel - 1) / kPanel;
  const int64_t tiles = (g.oh * g.ow / row_len) * ((row_len + kColumns - 1) / kColumns);
  const int64_t want = 4 * int64_t(num_threads());
  if (g.cin * g.cout * int64_t(sizeof(float)) <= 512 * 1024) {
    const int64_t runs = std::min(tiles, want);
    parallel_for(runs, kColumns * g.cin * g.cout, [&](int64_t r) {
      for (int64_t t = tiles * r / runs; t < tiles * (r + 1) / runs; ++t)
        detail::pointwise_tile(panels, x, g, t, 0, n_panels, y, ep);
    });
  } else {
    const int64_t runs = std::min(n_panels, want);
    parallel_for(runs, kColumns * g.cin * g.cout, [&](int64_t r) {
      for (int64_t pn = n_panels * r / runs; pn < n_panels * (r + 1) / runs; ++pn)
        for (int64_t t = 0; t < tiles; ++t) detail::pointwise_tile(panels, x, g, t, pn, pn + 1, y, ep);
    });
  }
}

namespace detail {
// V [36][cin/16][14][16]: the input transform of tiles t0.. (row-major over the tile grid).
CNN_TARGET_AVX512 inline void winograd_input(const WinogradGeometry& g, const float* x, int64_t t0, float* V) {
  const __m512 zero = _mm512_setzero_ps();
  const int64_t tw = g.tiles_w(), T = g.tiles();
  for (int p = 0; p < kColumns; ++p) {
    const int64_t t = t0 + p, ty = t / tw, tx = t % tw;
    for (int64_t cb = 0; cb < g.cin / kLanes; ++cb) {
      __m512 d[6][6], r[6][6];
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j) {
          const int64_t iy = 4 * ty - 1 + i, ix = 4 * tx - 1 + j;
          const bool inside = t < T && iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
          d[i][j] = inside ? _mm512_load_ps(x + ((cb * g.h + iy) * g.w + ix) * kLanes) : zero;
        }
      for (int i = 0; i < 6; ++i) winograd::input_1d(d[i][0], d[i][1], d[i][2], d[i][3], d[i][4], d[i][5], r[i]);
      for (int b = 0; b < 6; ++b) {
        __m512 o[6];
        winograd::input_1d(r[0][b], r[1][b], r[2][b], r[3][b], r[4][b], r[5][b], o);
        for (int a = 0; a < 6; ++a) _mm512_store_ps(V + (((a * 6 + b) * (g.cin / kLanes) + cb) * kColumns + p) * kLanes, o[a]);
      }
    }
  }
}

// M [36][cout/16][14][16] = the 36 products U_e V_e.
CNN_TARGET_AVX512 inline void winograd_products(const WinogradWeights& U, const float* V, float* M) {
  const int64_t n_panels = (U.cout + kPanel - 1) / kPanel, blocks = U.cout / kLanes;
  for (int e = 0; e < 36; ++e) {
    const float* Ve = V + int64_t(e) * U.cin * kColumns;
    for (int64_t pn = 0; pn < n_panels; ++pn) {
      __m512 acc[2][kColumns];
      product<kLanes>(Ve, kColumns * kLanes, U.cin, U.panel(e, pn), acc);
      for (int v = 0; v < 2 && pn * 2 + v < blocks; ++v)
        for (int p = 0; p < kColumns; ++p)
          _mm512_store_ps(M + ((e * blocks + pn * 2 + v) * kColumns + p) * kLanes, acc[v][p]);
    }
  }
}

// The output transform of tiles t0.. into y, with the epilogue.
CNN_TARGET_AVX512 inline void winograd_output(const WinogradGeometry& g, const float* M, int64_t t0, float* y,
                                              const Epilogue& ep) {
  const int64_t tw = g.tiles_w(), T = g.tiles(), blocks = g.cout / kLanes;
  for (int p = 0; p < kColumns && t0 + p < T; ++p) {
    const int64_t t = t0 + p, ty = t / tw, tx = t % tw;
    for (int64_t ob = 0; ob < blocks; ++ob) {
      __m512 q[4][6];
      for (int b = 0; b < 6; ++b) {
        __m512 v[6], o[4];
        for (int a = 0; a < 6; ++a) v[a] = _mm512_load_ps(M + (((a * 6 + b) * blocks + ob) * kColumns + p) * kLanes);
        winograd::output_1d(v[0], v[1], v[2], v[3], v[4], v[5], o);  // along y
        for (int i = 0; i < 4; ++i) q[i][b] = o[i];
      }
      for (int i = 0; i < 4 && 4 * ty + i < g.h; ++i) {
        __m512 o[4];
        winograd::output_1d(q[i][0], q[i][1], q[i][2], q[i][3], q[i][4], q[i][5], o);  // along x
        for (int j = 0; j < 4 && 4 * tx + j < g.w; ++j)
          finish(o[j], ob, y + ((ob * g.h + 4 * ty + i) * g.w + 4 * tx + j) * kLanes, ep);
      }
    }
  }
}
}  // namespace detail

// y = epilogue(conv3x3(x)) for one image, both blocked. Items: runs of 14 tiles, each transformed,
// multiplied and transformed back by one thread (V and M stay in L2).
inline void winograd_f4(const WinogradWeights& U, const float* x, const WinogradGeometry& g, float* y,
                        const Epilogue& ep) {
  if (U.cin != g.cin || U.cout != g.cout) fail("blocked winograd: weights do not match the geometry");
  const int64_t items = (g.tiles() + kColumns - 1) / kColumns;
  parallel_for(items, 36 * kColumns * g.cin * g.cout, [&](int64_t item) {
    thread_local AlignedVector V, M;
    V.resize_discard(std::size_t(36 * g.cin * kColumns));
    M.resize_discard(std::size_t(36 * g.cout * kColumns));
    detail::winograd_input(g, x, item * kColumns, V.data());
    detail::winograd_products(U, V.data(), M.data());
    detail::winograd_output(g, M.data(), item * kColumns, y, ep);
  });
}
#endif  // CNN_X86

}  // namespace cnn::kernels::blocked

CNN_KERNELS_END
