// cnn/kernels/pool.hpp — the two vector loops of separable max pooling (ops/pool.hpp): the
// maximum of a window's rows, then the stride-2 maximum along that one row.
//
// Max pooling lets NaN through as PyTorch does: nan_max(m, v) is v when v > m or v is NaN. Both
// paths apply it in the same order, so the AVX-512 loops give the portable loops' bits exactly
// (tests/test_layers.cpp compares them, and both with the direct definition, on random shapes).
// Without -march flags the compiler vectorises the portable loops for SSE2 only; the AVX-512 loops
// made ResNet's 3x3/2 max pool after the stem 2x faster on one core (docs/performance.md).
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>

#include "cpu.hpp"

CNN_KERNELS_BEGIN

namespace cnn::kernels {

inline float nan_max(float m, float v) { return ((v > m) | (v != v)) ? v : m; }  // | not ||: vectorises

// col[i] = nan_max(...nan_max(-inf, rows[0][i])..., rows[n_rows - 1][i]) for i < n.
inline void max_of_rows_generic(const float* const* rows, int n_rows, float* col, int64_t n) {
  std::fill(col, col + n, -std::numeric_limits<float>::infinity());
  for (int r = 0; r < n_rows; ++r)
    for (int64_t i = 0; i < n; ++i) col[i] = nan_max(col[i], rows[r][i]);
}

// out[t] = the maximum of c[2t .. 2t + taps - 1] (taps 2 or 3, left to right) for t < n.
inline void max_stride2_generic(const float* c, int taps, float* out, int64_t n) {
  if (taps == 2)
    for (int64_t t = 0; t < n; ++t) out[t] = nan_max(c[2 * t], c[2 * t + 1]);
  else
    for (int64_t t = 0; t < n; ++t) out[t] = nan_max(nan_max(c[2 * t], c[2 * t + 1]), c[2 * t + 2]);
}

#ifdef CNN_X86
CNN_TARGET_AVX512 inline __m512 nan_max_avx512(__m512 m, __m512 v) {
  const __mmask16 take_v = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  return _mm512_mask_blend_ps(take_v, m, v);
}
inline __mmask16 first_lanes(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}
// p[0 .. min(n, 16)), zeros after.
CNN_TARGET_AVX512 inline __m512 load_first(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(first_lanes(n), p); }

CNN_TARGET_AVX512 inline void max_of_rows_avx512(const float* const* rows, int n_rows, float* col, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = first_lanes(n - i);
    __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (int r = 0; r < n_rows; ++r) m = nan_max_avx512(m, _mm512_maskz_loadu_ps(k, rows[r] + i));
    _mm512_mask_storeu_ps(col + i, k, m);
  }
}

// 16 outputs per step from the 33 inputs they span: the even and odd lanes of two vectors, and
// for three taps the even lanes of the same two vectors read two floats later.
CNN_TARGET_AVX512 inline void max_stride2_avx512(const float* c, int taps, float* out, int64_t n) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  for (int64_t t = 0; t < n; t += 16) {
    const int64_t m = std::min<int64_t>(16, n - t), span = 2 * m + taps - 2;  // inputs this step reads
    const float* s = c + 2 * t;
    const __m512 lo = load_first(s, span), hi = load_first(s + 16, span - 16);
    __m512 r = nan_max_avx512(_mm512_permutex2var_ps(lo, even, hi), _mm512_permutex2var_ps(lo, odd, hi));
    if (taps == 3) r = nan_max_avx512(r, _mm512_permutex2var_ps(load_first(s + 2, span - 2), even, load_first(s + 18, span - 18)));
    _mm512_mask_storeu_ps(out + t, first_lanes(m), r);
  }
}

// Max pooling of one channel block of a channel-blocked image (NCHW16c, [H][W][16]): each output
// vector is the NaN-propagating maximum of its window's input vectors, rows then columns.
CNN_TARGET_AVX512 inline void max_pool_block_avx512(const float* x, int64_t H, int64_t W, float* y, int64_t OH,
                                                    int64_t OW, int kh, int kw, int sh, int sw, int ph, int pw,
                                                    int dh, int dw) {
  for (int64_t oy = 0; oy < OH; ++oy)
    for (int64_t ox = 0; ox < OW; ++ox) {
      __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
      for (int ky = 0; ky < kh; ++ky) {
        const int64_t iy = oy * sh - ph + ky * dh;
        if (iy < 0 || iy >= H) continue;
        for (int kx = 0; kx < kw; ++kx) {
          const int64_t ix = ox * sw - pw + kx * dw;
          if (ix >= 0 && ix < W) m = nan_max_avx512(m, _mm512_load_ps(x + (iy * W + ix) * 16));
        }
      }
      _mm512_store_ps(y + (oy * OW + ox) * 16, m);
    }
}
#endif

inline void max_of_rows(const float* const* rows, int n_rows, float* col, int64_t n) {
#ifdef CNN_X86
  if (active_isa() == Isa::AVX512) return max_of_rows_avx512(rows, n_rows, col, n);
#endif
  max_of_rows_generic(rows, n_rows, col, n);
}
inline void max_stride2(const float* c, int taps, float* out, int64_t n) {
#ifdef CNN_X86
  if (active_isa() == Isa::AVX512) return max_stride2_avx512(c, taps, out, n);
#endif
  max_stride2_generic(c, taps, out, n);
}

}  // namespace cnn::kernels

CNN_KERNELS_END
