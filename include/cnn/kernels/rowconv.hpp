// cnn/kernels/rowconv.hpp — convolutions with few input taps (in_channels x kh x kw <= 32: a
// network's first layer on an RGB image, e.g. YuNet's and MobileNet's 3x3/2 stems) along output
// rows, AVX-512.
//
// The GEMM path packs such a layer's unfolded image (27 rows for a 3x3 kernel on 3 channels) for
// only 16-32 output channels: the packing costs more than the arithmetic. Here each input vector
// (16 output pixels of one row, for one tap; stride 2 keeps the even lanes of 32 loaded floats) is
// loaded once and multiplied into the accumulators of 16 output channels, which stay in registers
// for the whole strip. Edges read zeros through masked loads, as kernels/depthwise.hpp does.
// The definition is conv2d_reference(); tests/test_depthwise.cpp compares the two.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "../parallel.hpp"
#include "cpu.hpp"
#include "depthwise.hpp"
#include "gemm.hpp"

CNN_KERNELS_BEGIN
namespace cnn::kernels::rowconv {

constexpr int kMaxTaps = 32;  // in_channels * kh * kw
constexpr int kBlock = 16;    // output channels per pass (one accumulator each)

struct Geometry {
  int64_t cin = 0, h = 0, w = 0;     // input image
  int64_t cout = 0, oh = 0, ow = 0;  // output image
  int kh = 3, kw = 3, stride = 1, pad_h = 0, pad_w = 0;
};

inline bool supports(const Geometry& g) {
  return (g.stride == 1 || g.stride == 2) && g.cin * g.kh * g.kw <= kMaxTaps && g.ow >= 16;
}

#ifdef CNN_X86
// N output channels (from oc0) for one strip of 16 pixels of output row oy.
template <int N, int Stride, bool Interior>
CNN_TARGET_AVX512 inline void strip(const float* const* rows, const Geometry& g, const float* w, int64_t oc0,
                                    const int64_t* start, const __mmask16* m0, const __mmask16* m1, int64_t s,
                                    float* y, int64_t oy, const Epilogue& ep) {
  const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const int taps = int(g.cin) * g.kh * g.kw;
  __m512 acc[N];
#pragma GCC unroll 16
  for (int j = 0; j < N; ++j) acc[j] = _mm512_set1_ps(ep.bias ? ep.bias[oc0 + j] : 0.f);
  for (int c = 0, t = 0; c < g.cin; ++c)
    for (int ky = 0; ky < g.kh; ++ky) {
      const float* row = rows[c * g.kh + ky];
      if (!row) {
        t += g.kw;
        continue;
      }
      for (int kx = 0; kx < g.kw; ++kx, ++t) {
        __m512 v;
        if (Interior) {
          const float* p = row + s * 16 * Stride - g.pad_w + kx;
          v = _mm512_loadu_ps(p);
          if (Stride == 2) v = _mm512_permutex2var_ps(v, evens, _mm512_loadu_ps(p + 16));
        } else {
          const std::size_t i = std::size_t(s * g.kw + kx);
          const float* p = row + start[i];  // masked lanes are neither read nor faulted on
          v = _mm512_maskz_loadu_ps(m0[i], p);
          if (Stride == 2) v = _mm512_permutex2var_ps(v, evens, _mm512_maskz_loadu_ps(m1[i], p + 16));
        }
#pragma GCC unroll 16
        for (int j = 0; j < N; ++j) acc[j] = _mm512_fmadd_ps(v, _mm512_set1_ps(w[(oc0 + j) * taps + t]), acc[j]);
      }
    }
  const int64_t ox = s * 16, n = std::min<int64_t>(16, g.ow - ox);
  const __mmask16 out_mask = __mmask16((1u << n) - 1u);
  const bool vec_act = depthwise::vector_activation(ep.act);
  const __m512 slope = _mm512_set1_ps(ep.slope);
#pragma GCC unroll 16
  for (int j = 0; j < N; ++j) {
    float* d = y + ((oc0 + j) * g.oh + oy) * g.ow + ox;
    __m512 a = acc[j];
    if (ep.residual) a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(out_mask, ep.residual + (d - ep.out_base)));
    if (vec_act) a = activate_avx512(a, ep.act, slope);
    _mm512_mask_storeu_ps(d, out_mask, a);
    if (!vec_act)
      for (int64_t q = 0; q < n; ++q) d[q] = ep.activate(d[q]);
  }
}

template <int N, int Stride>
CNN_TARGET_AVX512 inline void row(const float* const* rows, const Geometry& g, const float* w, int64_t oc0,
                                  const int64_t* start, const __mmask16* m0, const __mmask16* m1, int64_t lo, int64_t hi,
                                  float* y, int64_t oy, const Epilogue& ep) {
  const int64_t strips = (g.ow + 15) / 16;
  for (int64_t s = 0; s < strips; ++s) {
    if (s >= lo && s < hi) strip<N, Stride, true>(rows, g, w, oc0, start, m0, m1, s, y, oy, ep);
    else strip<N, Stride, false>(rows, g, w, oc0, start, m0, m1, s, y, oy, ep);
  }
}

// One image: x [cin][h][w], weight [cout][cin][kh][kw], y [cout][oh][ow].
CNN_TARGET_AVX512 inline void run(const float* x, const float* weight, const Geometry& g, float* y, const Epilogue& ep) {
  // Per 16-pixel strip and kernel column: where its loads start in an input row and which lanes
  // lie inside the row; strips [lo, hi) need no masks.
  const int64_t strips = (g.ow + 15) / 16, span = 16 * g.stride;
  std::vector<int64_t> start(std::size_t(strips * g.kw));
  std::vector<__mmask16> m0(start.size()), m1(start.size());
  for (int64_t s = 0; s < strips; ++s)
    for (int kx = 0; kx < g.kw; ++kx) {
      const std::size_t i = std::size_t(s * g.kw + kx);
      start[i] = s * span - g.pad_w + kx;
      m0[i] = depthwise::row_mask16(start[i], g.w);
      m1[i] = g.stride == 2 ? depthwise::row_mask16(start[i] + 16, g.w) : 0;
    }
  int64_t lo = 0, hi = strips;
  while (lo < strips && lo * span - g.pad_w < 0) ++lo;
  while (hi > lo && ((hi - 1) * span - g.pad_w + g.kw - 1 + span > g.w || hi * 16 > g.ow)) --hi;
  const int64_t blocks = (g.cout + kBlock - 1) / kBlock;
  parallel_for(blocks * g.oh, g.ow * g.cin * g.kh * g.kw * kBlock, [&](int64_t item) {
    const int64_t b = item / g.oh, oy = item % g.oh, oc0 = b * kBlock;
    const float* rows[kMaxTaps];
    for (int c = 0; c < g.cin; ++c)
      for (int ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = oy * g.stride - g.pad_h + ky;
        rows[c * g.kh + ky] = iy < 0 || iy >= g.h ? nullptr : x + (c * g.h + iy) * g.w;
      }
    const int64_t* st = start.data();
    const __mmask16 *k0 = m0.data(), *k1 = m1.data();
    if (oc0 + kBlock <= g.cout) {
      if (g.stride == 1) row<kBlock, 1>(rows, g, weight, oc0, st, k0, k1, lo, hi, y, oy, ep);
      else row<kBlock, 2>(rows, g, weight, oc0, st, k0, k1, lo, hi, y, oy, ep);
    } else {
      for (int64_t oc = oc0; oc < g.cout; ++oc) {  // the last channels one at a time
        if (g.stride == 1) row<1, 1>(rows, g, weight, oc, st, k0, k1, lo, hi, y, oy, ep);
        else row<1, 2>(rows, g, weight, oc, st, k0, k1, lo, hi, y, oy, ep);
      }
    }
  });
}
#endif

}  // namespace cnn::kernels::rowconv
CNN_KERNELS_END
