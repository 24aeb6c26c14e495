// vision/kernels/cascade_avx512.hpp - AVX-512 evaluation of a row of windows for Haar cascades
// made of stumps (the reference is CascadeClassifier::run_window, compared in the tests).
//
// 16 neighbouring windows are evaluated at once with contiguous loads: at a stride of 1 the
// integral tables are read as they are; at a stride of 2 the caller passes tables split into
// even and odd columns, so window j's corner is again element j of a row. Every operation
// rounds as the scalar code does (float feature values, double stage sums), so the windows
// accepted are exactly the scalar ones. OpenCV's "skip the next window after a stage-0
// rejection" rule is applied after stage 0, lane by lane, carrying across blocks of 16.
#pragma once
#include <cstdint>
#include <vector>

namespace vision {
namespace kernels {

// One Haar tree node with every offset resolved for a layer (CascadeClassifier::OptHaar).
struct HaarNode {
  int o[12];     // 3 rects x 4 corners, relative to the window's top-left in the table block
  float w[3];    // rect weights
  float thr;     // node threshold
  float lv, rv;  // leaf values when the children are leaves
  int l, r;      // children (<= 0: leaf index)
};

// One LBP tree node with its 4x4 grid of integral points resolved (CascadeClassifier::OptLbp).
struct LbpNode {
  int o[16];
  int32_t subset[8];  // 256-bit category subset: code c goes left when bit c is set
  float lv, rv;
  int l, r;
};

struct RowHit {
  int j;       // window index in the row
  double sum;  // last stage sum
};

}  // namespace kernels
}  // namespace vision

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(VISION_NO_SIMD)
#define VISION_HAVE_AVX512_KERNEL 1
#include <immintrin.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace vision {
namespace kernels {

#define VISION_AVX512_TARGET __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))

// Sum of a box for 16 neighbouring windows: p[a] - p[b] - p[c] + p[d] (wrapping int32).
// (A helper with the target attribute, not a lambda: lambdas do not inherit it.)
VISION_AVX512_TARGET inline __m512i box16(const int32_t* p, int a, int b, int c, int d) {
  const __m512i va = _mm512_loadu_si512(p + a), vb = _mm512_loadu_si512(p + b), vc = _mm512_loadu_si512(p + c),
                vd = _mm512_loadu_si512(p + d);
  return _mm512_add_epi32(_mm512_sub_epi32(_mm512_sub_epi32(va, vb), vc), vd);
}

// w * float(box); explicit-rounding intrinsics so that no compiler fuses them into an FMA
// (the scalar reference rounds after each multiply and add).
VISION_AVX512_TARGET inline __m512 mulw16(float w, __m512i box) {
  return _mm512_mul_round_ps(_mm512_set1_ps(w), _mm512_cvtepi32_ps(box), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// Variance normalization of 16 windows, exact in double (products of integers below 2^53):
// returns the lanes that are in range and not too flat (area * norm < 0.1), their factors in *vnorm.
VISION_AVX512_TARGET inline __mmask16 window_norm16(const int32_t* p, const int nofs[4], int sqofs, double area,
                                                    __mmask16 inrange, __m512* vnorm) {
  const __m512d varea = _mm512_set1_pd(area), vzero = _mm512_setzero_pd(), vone = _mm512_set1_pd(1.0),
                vtenth = _mm512_set1_pd(1e-1);
  const __m512i vs = box16(p, nofs[0], nofs[1], nofs[2], nofs[3]);
  const __m512i vq = box16(p, sqofs + nofs[0], sqofs + nofs[1], sqofs + nofs[2], sqofs + nofs[3]);
  const __m512d vs_lo = _mm512_cvtepi32_pd(_mm512_castsi512_si256(vs));
  const __m512d vs_hi = _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(vs, 1));
  const __m512d vq_lo = _mm512_cvtepu32_pd(_mm512_castsi512_si256(vq));
  const __m512d vq_hi = _mm512_cvtepu32_pd(_mm512_extracti64x4_epi64(vq, 1));
  __m512d nf_lo = _mm512_sub_pd(_mm512_mul_pd(varea, vq_lo), _mm512_mul_pd(vs_lo, vs_lo));
  __m512d nf_hi = _mm512_sub_pd(_mm512_mul_pd(varea, vq_hi), _mm512_mul_pd(vs_hi, vs_hi));
  const __mmask8 pos_lo = _mm512_cmp_pd_mask(nf_lo, vzero, _CMP_GT_OQ), pos_hi = _mm512_cmp_pd_mask(nf_hi, vzero, _CMP_GT_OQ);
  nf_lo = _mm512_mask_blend_pd(pos_lo, vone, nf_lo);
  nf_hi = _mm512_mask_blend_pd(pos_hi, vone, nf_hi);
  const __m256 n_lo = _mm512_cvtpd_ps(_mm512_div_pd(vone, _mm512_sqrt_pd(nf_lo)));
  const __m256 n_hi = _mm512_cvtpd_ps(_mm512_div_pd(vone, _mm512_sqrt_pd(nf_hi)));
  const __mmask8 ok_lo = pos_lo & _mm512_cmp_pd_mask(_mm512_mul_pd(varea, _mm512_cvtps_pd(n_lo)), vtenth, _CMP_LT_OQ);
  const __mmask8 ok_hi = pos_hi & _mm512_cmp_pd_mask(_mm512_mul_pd(varea, _mm512_cvtps_pd(n_hi)), vtenth, _CMP_LT_OQ);
  *vnorm = _mm512_insertf32x8(_mm512_castps256_ps512(n_lo), n_hi, 1);
  return __mmask16((unsigned(ok_hi) << 8) | ok_lo) & inrange;
}

inline bool cpu_has_avx512() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return ok;
}

// row: pointer to window 0's top-left in the (possibly column-split) table block; tables are
// addressed by the node offsets (which already include the table's block offset);
// nofs: the 4 corners of the normalization rect in the sum table, sqofs: offset of the squared
// table relative to the sum table. stages: ntrees per stage and threshold (float, as in run_window).
VISION_AVX512_TARGET inline void haar_stump_row_avx512(const uint32_t* row, int nwin, const int nofs[4], int sqofs, double area,
                                  const HaarNode* nodes, const int* ntrees, const float* sthr, int nstages,
                                  std::vector<RowHit>& hits) {
  const __m512d vzero = _mm512_setzero_pd();
  bool skip = false;  // the next window is skipped (previous evaluated one rejected by stage 0)
  for (int j0 = 0; j0 < nwin; j0 += 16) {
    const int nl = nwin - j0 < 16 ? nwin - j0 : 16;
    const __mmask16 inrange = __mmask16(nl == 16 ? 0xFFFF : ((1u << nl) - 1));
    const int32_t* p = reinterpret_cast<const int32_t*>(row) + j0;
    __m512 vnorm;
    const __mmask16 valid = window_norm16(p, nofs, sqofs, area, inrange, &vnorm);

    __mmask16 alive = valid;
    const HaarNode* nd = nodes;
    __m512d acc_lo = vzero, acc_hi = vzero;
    for (int si = 0; si < nstages; ++si) {
      acc_lo = vzero;
      acc_hi = vzero;
      if (alive) {
        for (int i = 0; i < ntrees[si]; ++i) {
          const HaarNode& h = nd[i];
          constexpr int R = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
          __m512 v = _mm512_add_round_ps(mulw16(h.w[0], box16(p, h.o[0], h.o[1], h.o[2], h.o[3])),
                                         mulw16(h.w[1], box16(p, h.o[4], h.o[5], h.o[6], h.o[7])), R);
          if (h.w[2] != 0.f) v = _mm512_add_round_ps(v, mulw16(h.w[2], box16(p, h.o[8], h.o[9], h.o[10], h.o[11])), R);
          v = _mm512_mul_round_ps(v, vnorm, R);
          const __mmask16 lt = _mm512_cmp_ps_mask(v, _mm512_set1_ps(h.thr), _CMP_LT_OQ);
          const __m512 leaf = _mm512_mask_blend_ps(lt, _mm512_set1_ps(h.rv), _mm512_set1_ps(h.lv));
          acc_lo = _mm512_add_pd(acc_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(leaf)));
          acc_hi = _mm512_add_pd(acc_hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(leaf, 1)));
        }
        const __m512d t = _mm512_set1_pd(double(sthr[si]));
        const __mmask16 fail = __mmask16((unsigned(_mm512_cmp_pd_mask(acc_hi, t, _CMP_LT_OQ)) << 8) |
                                         _mm512_cmp_pd_mask(acc_lo, t, _CMP_LT_OQ));
        alive &= __mmask16(~fail);
      }
      if (si == 0) {
        // OpenCV's skip rule over this block, in window order
        __mmask16 evaluated_alive = 0;
        for (int l = 0; l < nl; ++l) {
          if (skip) { skip = false; continue; }
          const bool v = (valid >> l) & 1;
          if (v && !((alive >> l) & 1)) skip = true;
          if ((alive >> l) & 1) evaluated_alive |= __mmask16(1u << l);
        }
        alive = evaluated_alive;
      }
      nd += ntrees[si];
      if (!alive) break;
    }
    if (alive) {
      alignas(64) double lo[8], hi[8];
      _mm512_store_pd(lo, acc_lo);
      _mm512_store_pd(hi, acc_hi);
      for (int l = 0; l < nl; ++l)
        if ((alive >> l) & 1) hits.push_back(RowHit{j0 + l, l < 8 ? lo[l] : hi[l - 8]});
    }
  }
}

// Haar cascades of small trees (alt2, eye_tree_eyeglasses): each lane walks its own path; nodes
// are visited in order (children always follow their parent) and only evaluated when some lane
// stands on them. tree_nodes: node count of every tree, in cascade order.
VISION_AVX512_TARGET inline void haar_tree_row_avx512(const uint32_t* row, int nwin, const int nofs[4], int sqofs,
                                                      double area, const HaarNode* nodes, const int* ntrees,
                                                      const int* tree_nodes, const float* sthr, int nstages,
                                                      std::vector<RowHit>& hits) {
  const __m512d vzero = _mm512_setzero_pd();
  constexpr int R = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  bool skip = false;
  for (int j0 = 0; j0 < nwin; j0 += 16) {
    const int nl = nwin - j0 < 16 ? nwin - j0 : 16;
    const __mmask16 inrange = __mmask16(nl == 16 ? 0xFFFF : ((1u << nl) - 1));
    const int32_t* p = reinterpret_cast<const int32_t*>(row) + j0;
    __m512 vnorm;
    const __mmask16 valid = window_norm16(p, nofs, sqofs, area, inrange, &vnorm);
    __mmask16 alive = valid;
    const HaarNode* nd = nodes;
    const int* tn = tree_nodes;
    __m512d acc_lo = vzero, acc_hi = vzero;
    for (int si = 0; si < nstages; ++si) {
      acc_lo = vzero;
      acc_hi = vzero;
      const HaarNode* snd = nd;
      if (alive) {
        for (int i = 0; i < ntrees[si]; ++i) {
          const int nn = tn[i];
          __m512i cur = _mm512_setzero_si512();
          __m512 leaf = _mm512_setzero_ps();
          __mmask16 todo = alive;
          for (int k = 0; k < nn && todo; ++k) {
            const __mmask16 at = _mm512_mask_cmpeq_epi32_mask(todo, cur, _mm512_set1_epi32(k));
            if (!at) continue;
            const HaarNode& h = snd[k];
            __m512 v = _mm512_add_round_ps(mulw16(h.w[0], box16(p, h.o[0], h.o[1], h.o[2], h.o[3])),
                                           mulw16(h.w[1], box16(p, h.o[4], h.o[5], h.o[6], h.o[7])), R);
            if (h.w[2] != 0.f) v = _mm512_add_round_ps(v, mulw16(h.w[2], box16(p, h.o[8], h.o[9], h.o[10], h.o[11])), R);
            v = _mm512_mul_round_ps(v, vnorm, R);
            const __mmask16 lt = _mm512_mask_cmp_ps_mask(at, v, _mm512_set1_ps(h.thr), _CMP_LT_OQ);
            const __mmask16 ge = at & __mmask16(~lt);
            if (h.l <= 0) { leaf = _mm512_mask_mov_ps(leaf, lt, _mm512_set1_ps(h.lv)); todo &= __mmask16(~lt); }
            else cur = _mm512_mask_mov_epi32(cur, lt, _mm512_set1_epi32(h.l));
            if (h.r <= 0) { leaf = _mm512_mask_mov_ps(leaf, ge, _mm512_set1_ps(h.rv)); todo &= __mmask16(~ge); }
            else cur = _mm512_mask_mov_epi32(cur, ge, _mm512_set1_epi32(h.r));
          }
          acc_lo = _mm512_add_pd(acc_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(leaf)));
          acc_hi = _mm512_add_pd(acc_hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(leaf, 1)));
          snd += nn;
        }
        const __m512d t = _mm512_set1_pd(double(sthr[si]));
        const __mmask16 fail = __mmask16((unsigned(_mm512_cmp_pd_mask(acc_hi, t, _CMP_LT_OQ)) << 8) |
                                         _mm512_cmp_pd_mask(acc_lo, t, _CMP_LT_OQ));
        alive &= __mmask16(~fail);
      }
      if (si == 0) {
        __mmask16 evaluated_alive = 0;
        for (int l = 0; l < nl; ++l) {
          if (skip) { skip = false; continue; }
          if (((valid >> l) & 1) && !((alive >> l) & 1)) skip = true;
          if ((alive >> l) & 1) evaluated_alive |= __mmask16(1u << l);
        }
        alive = evaluated_alive;
      }
      for (int i = 0; i < ntrees[si]; ++i) nd += tn[i];
      tn += ntrees[si];
      if (!alive) break;
    }
    if (alive) {
      alignas(64) double lo[8], hi[8];
      _mm512_store_pd(lo, acc_lo);
      _mm512_store_pd(hi, acc_hi);
      for (int l = 0; l < nl; ++l)
        if ((alive >> l) & 1) hits.push_back(RowHit{j0 + l, l < 8 ? lo[l] : hi[l - 8]});
    }
  }
}

// LBP stump cascades: the 8-bit code of 16 windows from 9 block sums, the subset bit looked up
// with a lane permute of the node's 8 subset words (no gather).
VISION_AVX512_TARGET inline __m512i lbp_block16(const int32_t* p, const int* o, int r, int c) {
  return box16(p, o[r * 4 + c], o[r * 4 + c + 1], o[(r + 1) * 4 + c], o[(r + 1) * 4 + c + 1]);
}

VISION_AVX512_TARGET inline void lbp_stump_row_avx512(const uint32_t* row, int nwin, const LbpNode* nodes,
                                                      const int* ntrees, const float* sthr, int nstages,
                                                      std::vector<RowHit>& hits) {
  const __m512d vzero = _mm512_setzero_pd();
  const __m512i v31 = _mm512_set1_epi32(31), vone = _mm512_set1_epi32(1);
  static const int bit[8][3] = {{0, 0, 128}, {0, 1, 64}, {0, 2, 32}, {1, 2, 16}, {2, 2, 8}, {2, 1, 4}, {2, 0, 2}, {1, 0, 1}};
  bool skip = false;
  for (int j0 = 0; j0 < nwin; j0 += 16) {
    const int nl = nwin - j0 < 16 ? nwin - j0 : 16;
    const __mmask16 valid = __mmask16(nl == 16 ? 0xFFFF : ((1u << nl) - 1));
    const int32_t* p = reinterpret_cast<const int32_t*>(row) + j0;
    __mmask16 alive = valid;
    const LbpNode* nd = nodes;
    __m512d acc_lo = vzero, acc_hi = vzero;
    for (int si = 0; si < nstages; ++si) {
      acc_lo = vzero;
      acc_hi = vzero;
      if (alive) {
        for (int i = 0; i < ntrees[si]; ++i) {
          const LbpNode& n = nd[i];
          const __m512i ctr = lbp_block16(p, n.o, 1, 1);
          __m512i code = _mm512_setzero_si512();
          for (int b = 0; b < 8; ++b)
            code = _mm512_mask_or_epi32(code, _mm512_cmpge_epi32_mask(lbp_block16(p, n.o, bit[b][0], bit[b][1]), ctr), code,
                                        _mm512_set1_epi32(bit[b][2]));
          const __m512i table = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(n.subset)));
          const __m512i word = _mm512_permutexvar_epi32(_mm512_srli_epi32(code, 5), table);
          const __mmask16 left = _mm512_test_epi32_mask(_mm512_srlv_epi32(word, _mm512_and_si512(code, v31)), vone);
          const __m512 leaf = _mm512_mask_blend_ps(left, _mm512_set1_ps(n.rv), _mm512_set1_ps(n.lv));
          acc_lo = _mm512_add_pd(acc_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(leaf)));
          acc_hi = _mm512_add_pd(acc_hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(leaf, 1)));
        }
        const __m512d t = _mm512_set1_pd(double(sthr[si]));
        const __mmask16 fail = __mmask16((unsigned(_mm512_cmp_pd_mask(acc_hi, t, _CMP_LT_OQ)) << 8) |
                                         _mm512_cmp_pd_mask(acc_lo, t, _CMP_LT_OQ));
        alive &= __mmask16(~fail);
      }
      if (si == 0) {
        __mmask16 evaluated_alive = 0;
        for (int l = 0; l < nl; ++l) {
          if (skip) { skip = false; continue; }
          if (((valid >> l) & 1) && !((alive >> l) & 1)) skip = true;
          if ((alive >> l) & 1) evaluated_alive |= __mmask16(1u << l);
        }
        alive = evaluated_alive;
      }
      nd += ntrees[si];
      if (!alive) break;
    }
    if (alive) {
      alignas(64) double lo[8], hi[8];
      _mm512_store_pd(lo, acc_lo);
      _mm512_store_pd(hi, acc_hi);
      for (int l = 0; l < nl; ++l)
        if ((alive >> l) & 1) hits.push_back(RowHit{j0 + l, l < 8 ? lo[l] : hi[l - 8]});
    }
  }
}

}  // namespace kernels
}  // namespace vision
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#undef VISION_AVX512_TARGET
#endif
