// vision/kernels/cascade_avx2.hpp - AVX2 evaluation of a row of windows for Haar stump cascades:
// the AVX-512 kernel's scheme (cascade_avx512.hpp) on 8 lanes, for CPUs without AVX-512. The
// reference is CascadeClassifier::run_window; the tests compare all three paths.
#pragma once
#include "cascade_avx512.hpp"  // HaarNode, RowHit

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(VISION_NO_SIMD)
#define VISION_HAVE_AVX2_KERNEL 1
#include <immintrin.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

namespace vision {
namespace kernels {

#define VISION_AVX2_TARGET __attribute__((target("avx2")))

inline bool cpu_has_avx2() {
  static const bool ok = __builtin_cpu_supports("avx2");
  return ok;
}

VISION_AVX2_TARGET inline __m256i box8(const int32_t* p, int a, int b, int c, int d) {
  const __m256i va = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + a));
  const __m256i vb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + b));
  const __m256i vc = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + c));
  const __m256i vd = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + d));
  return _mm256_add_epi32(_mm256_sub_epi32(_mm256_sub_epi32(va, vb), vc), vd);
}

// w * float(box), kept as a separately rounded product: the empty asm stops the compiler from
// fusing it with the following add into an FMA when the build enables FMA globally.
VISION_AVX2_TARGET inline __m256 mulw8(float w, __m256i box) {
  __m256 r = _mm256_mul_ps(_mm256_set1_ps(w), _mm256_cvtepi32_ps(box));
  __asm__("" : "+x"(r));
  return r;
}

// uint32 lanes (4 of them, from the low or high half) to double
VISION_AVX2_TARGET inline __m256d u32_to_pd(__m128i v) {
  const __m256d d = _mm256_cvtepi32_pd(v);
  const __m256d neg = _mm256_cmp_pd(d, _mm256_setzero_pd(), _CMP_LT_OQ);
  return _mm256_add_pd(d, _mm256_and_pd(neg, _mm256_set1_pd(4294967296.0)));
}

VISION_AVX2_TARGET inline void haar_stump_row_avx2(const uint32_t* row, int nwin, const int nofs[4], int sqofs, double area,
                                                   const HaarNode* nodes, const int* ntrees, const float* sthr, int nstages,
                                                   std::vector<RowHit>& hits) {
  const __m256d varea = _mm256_set1_pd(area), vzero = _mm256_setzero_pd(), vone = _mm256_set1_pd(1.0),
                vtenth = _mm256_set1_pd(1e-1);
  bool skip = false;
  for (int j0 = 0; j0 < nwin; j0 += 8) {
    const int nl = nwin - j0 < 8 ? nwin - j0 : 8;
    const unsigned inrange = nl == 8 ? 0xFFu : ((1u << nl) - 1);
    const int32_t* p = reinterpret_cast<const int32_t*>(row) + j0;
    const __m256i vs = box8(p, nofs[0], nofs[1], nofs[2], nofs[3]);
    const __m256i vq = box8(p, sqofs + nofs[0], sqofs + nofs[1], sqofs + nofs[2], sqofs + nofs[3]);
    __m256d s_lo = _mm256_cvtepi32_pd(_mm256_castsi256_si128(vs)), s_hi = _mm256_cvtepi32_pd(_mm256_extracti128_si256(vs, 1));
    __m256d q_lo = u32_to_pd(_mm256_castsi256_si128(vq)), q_hi = u32_to_pd(_mm256_extracti128_si256(vq, 1));
    __m256d nf_lo = _mm256_sub_pd(_mm256_mul_pd(varea, q_lo), _mm256_mul_pd(s_lo, s_lo));
    __m256d nf_hi = _mm256_sub_pd(_mm256_mul_pd(varea, q_hi), _mm256_mul_pd(s_hi, s_hi));
    const __m256d pos_lo = _mm256_cmp_pd(nf_lo, vzero, _CMP_GT_OQ), pos_hi = _mm256_cmp_pd(nf_hi, vzero, _CMP_GT_OQ);
    nf_lo = _mm256_blendv_pd(vone, nf_lo, pos_lo);
    nf_hi = _mm256_blendv_pd(vone, nf_hi, pos_hi);
    const __m128 n_lo = _mm256_cvtpd_ps(_mm256_div_pd(vone, _mm256_sqrt_pd(nf_lo)));
    const __m128 n_hi = _mm256_cvtpd_ps(_mm256_div_pd(vone, _mm256_sqrt_pd(nf_hi)));
    const __m256d ok_lo = _mm256_and_pd(pos_lo, _mm256_cmp_pd(_mm256_mul_pd(varea, _mm256_cvtps_pd(n_lo)), vtenth, _CMP_LT_OQ));
    const __m256d ok_hi = _mm256_and_pd(pos_hi, _mm256_cmp_pd(_mm256_mul_pd(varea, _mm256_cvtps_pd(n_hi)), vtenth, _CMP_LT_OQ));
    const unsigned valid = (unsigned(_mm256_movemask_pd(ok_lo)) | (unsigned(_mm256_movemask_pd(ok_hi)) << 4)) & inrange;
    const __m256 vnorm = _mm256_insertf128_ps(_mm256_castps128_ps256(n_lo), n_hi, 1);
    unsigned alive = valid;
    const HaarNode* nd = nodes;
    __m256d acc_lo = vzero, acc_hi = vzero;
    for (int si = 0; si < nstages; ++si) {
      acc_lo = vzero;
      acc_hi = vzero;
      if (alive) {
        for (int i = 0; i < ntrees[si]; ++i) {
          const HaarNode& h = nd[i];
          __m256 v = _mm256_add_ps(mulw8(h.w[0], box8(p, h.o[0], h.o[1], h.o[2], h.o[3])),
                                   mulw8(h.w[1], box8(p, h.o[4], h.o[5], h.o[6], h.o[7])));
          if (h.w[2] != 0.f) v = _mm256_add_ps(v, mulw8(h.w[2], box8(p, h.o[8], h.o[9], h.o[10], h.o[11])));
          v = _mm256_mul_ps(v, vnorm);
          const __m256 lt = _mm256_cmp_ps(v, _mm256_set1_ps(h.thr), _CMP_LT_OQ);
          const __m256 leaf = _mm256_blendv_ps(_mm256_set1_ps(h.rv), _mm256_set1_ps(h.lv), lt);
          acc_lo = _mm256_add_pd(acc_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(leaf)));
          acc_hi = _mm256_add_pd(acc_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(leaf, 1)));
        }
        const __m256d t = _mm256_set1_pd(double(sthr[si]));
        const unsigned fail = unsigned(_mm256_movemask_pd(_mm256_cmp_pd(acc_lo, t, _CMP_LT_OQ))) |
                              (unsigned(_mm256_movemask_pd(_mm256_cmp_pd(acc_hi, t, _CMP_LT_OQ))) << 4);
        alive &= ~fail;
      }
      if (si == 0) {
        unsigned ev_alive = 0;
        for (int l = 0; l < nl; ++l) {
          if (skip) { skip = false; continue; }
          if (((valid >> l) & 1) && !((alive >> l) & 1)) skip = true;
          if ((alive >> l) & 1) ev_alive |= 1u << l;
        }
        alive = ev_alive;
      }
      nd += ntrees[si];
      if (!alive) break;
    }
    if (alive) {
      alignas(32) double lo[4], hi[4];
      _mm256_store_pd(lo, acc_lo);
      _mm256_store_pd(hi, acc_hi);
      for (int l = 0; l < nl; ++l)
        if ((alive >> l) & 1) hits.push_back(RowHit{j0 + l, l < 4 ? lo[l] : hi[l - 4]});
    }
  }
}

#undef VISION_AVX2_TARGET
}  // namespace kernels
}  // namespace vision

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif
