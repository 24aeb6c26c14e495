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
#include <vector>

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
  // kernels of up to kMaxTaps taps; the rest runs the portable loop.
  bool vectorised() const;
};

constexpr int kMaxTaps = 64;  // kernel taps (kh * kw) the vector kernels keep in registers or on the stack
inline bool Geometry::vectorised() const {
  return stride_h == stride_w && (stride_h == 1 || stride_h == 2) && dilation_h == 1 && dilation_w == 1 &&
         kh * kw <= kMaxTaps;
}

// The epilogues the vector code applies itself; others (Sigmoid) are applied per element after.
inline bool vector_activation(Activation a) {
  return a == Activation::None || a == Activation::ReLU || a == Activation::LeakyReLU || a == Activation::ReLU6;
}

// The input rows under output row oy, one per kernel row (nullptr where it falls outside the image).
inline void rows_under(const float* x, const Geometry& g, int64_t oy, const float** rows) {
  for (int ky = 0; ky < g.kh; ++ky) {
    const int64_t iy = oy * g.stride_h - g.pad_h + ky;
    rows[ky] = iy < 0 || iy >= g.h ? nullptr : x + iy * g.w;
  }
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

// N strips of 16 output pixels of one output row, side by side: N independent accumulators keep
// the FMA unit busy (one chain of dependent FMAs per strip would wait on each one's latency).
template <int N, int Stride, bool Interior>
CNN_TARGET_AVX512 inline void strips_avx512(const float* const* rows, const Geometry& g, const __m512* wv, float bias,
                                            const int64_t* start, const __mmask16* m0, const __mmask16* m1, int64_t s0,
                                            float* yrow, const Epilogue& ep, bool vec_act, __m512 slope) {
  const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  __m512 acc[N];  // in registers: the loops over j are unrolled
#pragma GCC unroll 4
  for (int j = 0; j < N; ++j) acc[j] = _mm512_set1_ps(bias);
  for (int ky = 0; ky < g.kh; ++ky) {
    if (!rows[ky]) continue;
    for (int kx = 0; kx < g.kw; ++kx) {
      const __m512 w = wv[ky * g.kw + kx];
#pragma GCC unroll 4
      for (int j = 0; j < N; ++j) {
        __m512 v;
        if (Interior) {  // every lane inside the row: plain loads, no table
          const float* p = rows[ky] + (s0 + j) * 16 * Stride - g.pad_w + kx;
          v = _mm512_loadu_ps(p);
          if (Stride == 2) v = _mm512_permutex2var_ps(v, evens, _mm512_loadu_ps(p + 16));
        } else {
          const std::size_t i = std::size_t((s0 + j) * g.kw + kx);
          // Masked lanes are neither read nor faulted on, so the pointer may point before the row.
          const float* p = rows[ky] + start[i];
          v = _mm512_maskz_loadu_ps(m0[i], p);
          if (Stride == 2) v = _mm512_permutex2var_ps(v, evens, _mm512_maskz_loadu_ps(m1[i], p + 16));
        }
        acc[j] = _mm512_fmadd_ps(v, w, acc[j]);
      }
    }
  }
#pragma GCC unroll 4
  for (int j = 0; j < N; ++j) {
    const int64_t ox = (s0 + j) * 16, n = std::min<int64_t>(16, g.ow - ox);
    const __mmask16 out_mask = __mmask16((1u << n) - 1u);
    float* d = yrow + ox;
    if (ep.residual) acc[j] = _mm512_add_ps(acc[j], _mm512_maskz_loadu_ps(out_mask, ep.residual + (d - ep.out_base)));
    if (vec_act) acc[j] = activate_avx512(acc[j], ep.act, slope);
    _mm512_mask_storeu_ps(d, out_mask, acc[j]);
    if (!vec_act)
      for (int64_t q = 0; q < n; ++q) d[q] = ep.activate(d[q]);
  }
}

// One output row: the edge strips with masked loads, the interior four strips at a time.
template <int Stride>
CNN_TARGET_AVX512 inline void row_avx512(const float* const* rows, const Geometry& g, const __m512* wv, float bias,
                                         const int64_t* st, const __mmask16* k0, const __mmask16* k1, int64_t strips,
                                         int64_t lo, int64_t hi, float* yrow, const Epilogue& ep, bool vec_act,
                                         __m512 slope) {
  for (int64_t s = 0; s < lo; ++s) strips_avx512<1, Stride, false>(rows, g, wv, bias, st, k0, k1, s, yrow, ep, vec_act, slope);
  int64_t s = lo;
  for (; s + 4 <= hi; s += 4) strips_avx512<4, Stride, true>(rows, g, wv, bias, st, k0, k1, s, yrow, ep, vec_act, slope);
  for (; s < hi; ++s) strips_avx512<1, Stride, true>(rows, g, wv, bias, st, k0, k1, s, yrow, ep, vec_act, slope);
  for (s = std::max(hi, lo); s < strips; ++s)
    strips_avx512<1, Stride, false>(rows, g, wv, bias, st, k0, k1, s, yrow, ep, vec_act, slope);
}

CNN_TARGET_AVX512 inline void plane_avx512(const float* x, const float* k, float bias, const Geometry& g, float* y,
                                           const Epilogue& ep) {
  const bool vec_act = vector_activation(ep.act);
  const __m512 slope = _mm512_set1_ps(ep.slope);
  // Per 16-pixel strip of an output row and kernel column: where its loads start in an input row
  // and which lanes lie inside the row (the same for every row).
  const int64_t strips = (g.ow + 15) / 16;
  thread_local std::vector<int64_t> start;
  thread_local std::vector<__mmask16> m0, m1;
  start.resize(std::size_t(strips * g.kw));
  m0.resize(start.size());
  m1.resize(start.size());
  for (int64_t s = 0; s < strips; ++s)
    for (int kx = 0; kx < g.kw; ++kx) {
      const std::size_t i = std::size_t(s * g.kw + kx);
      start[i] = s * 16 * g.stride_w - g.pad_w + kx;
      m0[i] = row_mask16(start[i], g.w);
      m1[i] = g.stride_w == 2 ? row_mask16(start[i] + 16, g.w) : 0;
    }
  // Strips [lo, hi) are whole and read only inside the row: they need no masks.
  const int64_t span = 16 * g.stride_w;
  int64_t lo = 0, hi = strips;
  while (lo < strips && lo * span - g.pad_w < 0) ++lo;
  while (hi > lo && ((hi - 1) * span - g.pad_w + g.kw - 1 + span > g.w || hi * 16 > g.ow)) --hi;
  __m512 wv[kMaxTaps];
  for (int t = 0; t < g.kh * g.kw; ++t) wv[t] = _mm512_set1_ps(k[t]);
  const float* rows[kMaxTaps];
  // Row by row, so that the input rows under an output row stay in L1 across its strips.
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    rows_under(x, g, oy, rows);
    float* yrow = y + oy * g.ow;
    const int64_t* st = start.data();
    const __mmask16 *k0 = m0.data(), *k1 = m1.data();
    if (g.stride_w == 1) row_avx512<1>(rows, g, wv, bias, st, k0, k1, strips, lo, hi, yrow, ep, vec_act, slope);
    else row_avx512<2>(rows, g, wv, bias, st, k0, k1, strips, lo, hi, yrow, ep, vec_act, slope);
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
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const int64_t strips = (g.ow + 7) / 8;
  thread_local std::vector<int64_t> start;
  thread_local std::vector<int32_t> m0, m1;  // 8 lanes per strip and kernel column (maskload's sign bits)
  start.resize(std::size_t(strips * g.kw));
  m0.resize(start.size() * 8);
  m1.resize(start.size() * 8);
  for (int64_t s = 0; s < strips; ++s)
    for (int kx = 0; kx < g.kw; ++kx) {
      const std::size_t i = std::size_t(s * g.kw + kx);
      start[i] = s * 8 * g.stride_w - g.pad_w + kx;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(&m0[8 * i]), row_mask8(start[i], g.w));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(&m1[8 * i]),
                          g.stride_w == 2 ? row_mask8(start[i] + 8, g.w) : _mm256_setzero_si256());
    }
  __m256 wv[kMaxTaps];
  for (int t = 0; t < g.kh * g.kw; ++t) wv[t] = _mm256_set1_ps(k[t]);
  const float* rows[kMaxTaps];
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    rows_under(x, g, oy, rows);
    for (int64_t s = 0; s < strips; ++s) {
      const int64_t ox = s * 8, n = std::min<int64_t>(8, g.ow - ox);
      const std::size_t i0 = std::size_t(s * g.kw);
      __m256 acc = _mm256_set1_ps(bias);
      for (int ky = 0; ky < g.kh; ++ky) {
        if (!rows[ky]) continue;
        for (int kx = 0; kx < g.kw; ++kx) {
          const float* p = rows[ky] + start[i0 + kx];
          __m256 v = _mm256_maskload_ps(p, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&m0[8 * (i0 + kx)])));
          if (g.stride_w == 2) {  // the even lanes of 16 loaded floats, in order
            const __m256 hi = _mm256_maskload_ps(p + 8, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&m1[8 * (i0 + kx)])));
            v = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(v, hi, 0x88)), 0xD8));
          }
          acc = _mm256_fmadd_ps(v, wv[ky * g.kw + kx], acc);
        }
      }
      const __m256i out_mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), lane);
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
