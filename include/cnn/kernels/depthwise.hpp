// cnn/kernels/depthwise.hpp — depth-wise convolution (one input and one output channel per group:
// MobileNet's and YuNet's 3x3 layers) on NCHW planes, vectorised along output rows.
//
// Each output row is a run of 16 (AVX-512) or 8 (AVX2) pixels per vector; for every kernel tap the
// input values under those pixels are loaded with a lane mask that reads zeros outside the row
// (the zero padding, and a row's ragged end), so borders need no padded copy and no scalar edge
// loop. Stride 2 loads twice the span and keeps the even lanes. Rows of the kernel that fall
// outside the image are skipped. The accumulation order per output element is fixed (bias, then
// taps row by row, left to right), whatever the thread count.
//
// The definition is conv2d_reference() (ops/conv2d.hpp); tests/test_depthwise.cpp compares every
// path with it on random shapes, strides, paddings, epilogues and thread counts.
#pragma once
#include <algorithm>
#include <cstdint>

#include "../parallel.hpp"
#include "cpu.hpp"
#include "gemm.hpp"

CNN_KERNELS_BEGIN
namespace cnn::kernels::depthwise {

struct Geometry {
  int64_t h = 0, w = 0;    // input plane
  int64_t oh = 0, ow = 0;  // output plane
  int kh = 3, kw = 3, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
  // Whether the vector kernels take it: strides 1 or 2 (equal in both directions), no dilation,
  // kernels up to 16 wide; the rest runs the portable loop.
  bool vectorised() const {
    return stride_h == stride_w && (stride_h == 1 || stride_h == 2) && dilation_h == 1 && dilation_w == 1 && kw <= 16;
  }
};

// The epilogues the vector code applies itself; others (Sigmoid) are applied per element after.
inline bool vector_activation(Activation a) {
  return a == Activation::None || a == Activation::ReLU || a == Activation::LeakyReLU || a == Activation::ReLU6;
}

// One plane, the portable way (the same order of operations as the vector kernels).
inline void plane_generic(const float* x, const float* k, float bias, const Geometry& g, float* y,
                          const Epilogue& ep) {
  for (int64_t oy = 0; oy < g.oh; ++oy)
    for (int64_t ox = 0; ox < g.ow; ++ox) {
      float s = bias;
      for (int ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = oy * g.stride_h - g.pad_h + ky * g.dilation_h;
        if (iy < 0 || iy >= g.h) continue;
        for (int kx = 0; kx < g.kw; ++kx) {
          const int64_t ix = ox * g.stride_w - g.pad_w + kx * g.dilation_w;
          if (ix >= 0 && ix < g.w) s += x[iy * g.w + ix] * k[ky * g.kw + kx];
        }
      }
      float* d = y + oy * g.ow + ox;
      Epilogue e = ep;
      e.bias = nullptr;  // already in s
      *d = e.apply(s, 0, d);
    }
}

#ifdef CNN_X86
// Lanes j of a 16-float load at input column `x0` that lie inside [0, w).
CNN_TARGET_AVX512 inline __mmask16 row_mask16(int64_t x0, int64_t w) {
  const int64_t lo = std::clamp<int64_t>(-x0, 0, 16), hi = std::clamp<int64_t>(w - x0, 0, 16);
  if (hi <= lo) return 0;
  return __mmask16(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

CNN_TARGET_AVX512 inline void plane_avx512(const float* x, const float* k, float bias, const Geometry& g, float* y,
                                           const Epilogue& ep) {
  const bool vec_act = vector_activation(ep.act);
  const __m512 slope = _mm512_set1_ps(ep.slope);
  const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  constexpr int kMaxTaps = 16;  // kernel widths beyond this take the portable path
  for (int64_t ox = 0; ox < g.ow; ox += 16) {
    const int64_t n = std::min<int64_t>(16, g.ow - ox);
    const __mmask16 out_mask = __mmask16((1u << n) - 1u);
    // Per kernel column: where its loads start in a row, and which lanes lie inside the row.
    int64_t start[kMaxTaps];
    __mmask16 m0[kMaxTaps], m1[kMaxTaps];
    for (int kx = 0; kx < g.kw; ++kx) {
      start[kx] = ox * g.stride_w - g.pad_w + kx;
      m0[kx] = row_mask16(start[kx], g.w);
      m1[kx] = g.stride_w == 2 ? row_mask16(start[kx] + 16, g.w) : 0;
    }
    for (int64_t oy = 0; oy < g.oh; ++oy) {
      __m512 acc = _mm512_set1_ps(bias);
      for (int ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = oy * g.stride_h - g.pad_h + ky;
        if (iy < 0 || iy >= g.h) continue;
        const float* row = x + iy * g.w;
        for (int kx = 0; kx < g.kw; ++kx) {
          // Masked lanes are neither read nor faulted on, so the pointer may point before the row.
          const float* p = row + start[kx];
          __m512 v = _mm512_maskz_loadu_ps(m0[kx], p);
          if (g.stride_w == 2) v = _mm512_permutex2var_ps(v, evens, _mm512_maskz_loadu_ps(m1[kx], p + 16));
          acc = _mm512_fmadd_ps(v, _mm512_set1_ps(k[ky * g.kw + kx]), acc);
        }
      }
      float* d = y + oy * g.ow + ox;
      if (ep.residual) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(out_mask, ep.residual + (d - ep.out_base)));
      if (vec_act) acc = activate_avx512(acc, ep.act, slope);
      _mm512_mask_storeu_ps(d, out_mask, acc);
      if (!vec_act)
        for (int64_t j = 0; j < n; ++j) d[j] = ep.activate(d[j]);
    }
  }
}

// Lanes of an 8-float load at input column `x0` inside [0, w), as maskload's sign-bit mask.
CNN_TARGET_AVX2 inline __m256i row_mask8(int64_t x0, int64_t w) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i col = _mm256_add_epi32(lane, _mm256_set1_epi32(int(std::clamp<int64_t>(x0, -64, w + 64))));
  const __m256i ge0 = _mm256_cmpgt_epi32(col, _mm256_set1_epi32(-1));
  const __m256i ltw = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(w)), col);
  return _mm256_and_si256(ge0, ltw);
}

CNN_TARGET_AVX2 inline void plane_avx2(const float* x, const float* k, float bias, const Geometry& g, float* y,
                                       const Epilogue& ep) {
  constexpr int kMaxTaps = 16;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t ox = 0; ox < g.ow; ox += 8) {
    const int64_t n = std::min<int64_t>(8, g.ow - ox);
    const __m256i out_mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), lane);
    int64_t start[kMaxTaps];
    __m256i m0[kMaxTaps], m1[kMaxTaps];
    for (int kx = 0; kx < g.kw; ++kx) {
      start[kx] = ox * g.stride_w - g.pad_w + kx;
      m0[kx] = row_mask8(start[kx], g.w);
      m1[kx] = g.stride_w == 2 ? row_mask8(start[kx] + 8, g.w) : _mm256_setzero_si256();
    }
    for (int64_t oy = 0; oy < g.oh; ++oy) {
      __m256 acc = _mm256_set1_ps(bias);
      for (int ky = 0; ky < g.kh; ++ky) {
        const int64_t iy = oy * g.stride_h - g.pad_h + ky;
        if (iy < 0 || iy >= g.h) continue;
        const float* row = x + iy * g.w;
        for (int kx = 0; kx < g.kw; ++kx) {
          const float* p = row + start[kx];
          __m256 v = _mm256_maskload_ps(p, m0[kx]);
          if (g.stride_w == 2) {  // the even lanes of 16 loaded floats, in order
            const __m256 hi = _mm256_maskload_ps(p + 8, m1[kx]);
            v = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(v, hi, 0x88)), 0xD8));
          }
          acc = _mm256_fmadd_ps(v, _mm256_set1_ps(k[ky * g.kw + kx]), acc);
        }
      }
      float* d = y + oy * g.ow + ox;
      if (ep.residual) acc = _mm256_add_ps(acc, _mm256_maskload_ps(ep.residual + (d - ep.out_base), out_mask));
      const __m256 zero = _mm256_setzero_ps();
      switch (ep.act) {
        case Activation::ReLU: acc = _mm256_max_ps(acc, zero); break;
        case Activation::ReLU6: acc = _mm256_min_ps(_mm256_max_ps(acc, zero), _mm256_set1_ps(6.f)); break;
        case Activation::LeakyReLU:
          acc = _mm256_blendv_ps(acc, _mm256_mul_ps(acc, _mm256_set1_ps(ep.slope)), _mm256_cmp_ps(acc, zero, _CMP_LE_OQ));
          break;
        default: break;
      }
      _mm256_maskstore_ps(d, out_mask, acc);
      if (!vector_activation(ep.act))
        for (int64_t j = 0; j < n; ++j) d[j] = ep.activate(d[j]);
    }
  }
}
#endif

// y[n][c] = act(depthwise(x[n][c], weight[c]) + bias[c] (+ residual)) for `planes` = N*C planes of
// NCHW tensors with C channels; weight is [C][kh][kw].
inline void run(const float* x, const float* weight, const Geometry& g, int64_t planes, int64_t channels, float* y,
                const Epilogue& ep) {
  const int64_t in_plane = g.h * g.w, out_plane = g.oh * g.ow, taps = int64_t(g.kh) * g.kw;
  const Isa isa = g.vectorised() ? active_isa() : Isa::Generic;
  parallel_for(planes, out_plane * taps, [&](int64_t nc) {
    const int64_t c = nc % channels;
    const float* k = weight + c * taps;
    const float bias = ep.bias ? ep.bias[c] : 0.f;
    const float* xp = x + nc * in_plane;
    float* yp = y + nc * out_plane;
#ifdef CNN_X86
    if (isa == Isa::AVX512) return plane_avx512(xp, k, bias, g, yp, ep);
    if (isa == Isa::AVX2) return plane_avx2(xp, k, bias, g, yp, ep);
#endif
    (void)isa;
    plane_generic(xp, k, bias, g, yp, ep);
  });
}

}  // namespace cnn::kernels::depthwise
CNN_KERNELS_END
