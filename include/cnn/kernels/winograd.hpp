// cnn/kernels/winograd.hpp — 3x3 stride-1 convolution by Winograd F(4x4, 3x3) and F(2x2, 3x3).
//
// Each m x m block of outputs (a tile; m = 4 or 2) comes from an a x a input patch d (a = m + 2):
//     Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A
// so the a*a element-wise products become a*a independent GEMMs over channels,
//     M_e (Cout x tiles) = U_e (Cout x Cin) · V_e (Cin x tiles),   e = 0..a*a-1,
// with 36 multiplies per 16 outputs instead of 144 (F(4x4)), or 16 per 4 instead of 36 (F(2x2),
// used on small maps such as 7x7, where 4x4 tiles would mostly cover padding).
//   - U = G g G^T is computed once (in double) and packed as GEMM A panels.
//   - V = B^T d B is computed per call straight into GEMM B panels; M is transformed back,
//     with bias and activation, straight into the NCHW output.
// Work is split into blocks of whole tile rows (so a block's V and M stay in L2) and, for small
// images, into ranges of output channels, so that both threads stay busy even on 7x7 maps.
// The F(4x4) transforms exist twice: plain scalar code (the reference, also used without AVX-512),
// and AVX-512 code that handles 16 tiles per vector; F(2x2) (small maps, few tiles) uses the scalar
// code. tests/test_winograd.cpp compares every variant and ISA with conv2d_reference.
#pragma once
#include <array>

#include "gemm.hpp"

CNN_KERNELS_BEGIN

namespace cnn::kernels::winograd {

#if defined(__GNUC__) || defined(__clang__)
#define CNN_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define CNN_ALWAYS_INLINE inline
#endif

// 1-D transforms, written once for float and for SIMD vectors (GCC/Clang vector types).
// Input: o = B^T d for a 6-vector d.
template <class V>
CNN_ALWAYS_INLINE void input_1d(const V& d0, const V& d1, const V& d2, const V& d3, const V& d4, const V& d5, V* o) {
  const V t1 = d3 + d4 - 4.f * (d1 + d2), t2 = d4 - d3 + 4.f * (d1 - d2);
  const V t3 = d4 - d2 + 2.f * (d3 - d1), t4 = d4 - d2 - 2.f * (d3 - d1);
  o[0] = 4.f * d0 - 5.f * d2 + d4;
  o[1] = t1;
  o[2] = t2;
  o[3] = t3;
  o[4] = t4;
  o[5] = 4.f * d1 - 5.f * d3 + d5;
}
// Output: o = A^T m for a 6-vector m (4 results).
template <class V>
CNN_ALWAYS_INLINE void output_1d(const V& m0, const V& m1, const V& m2, const V& m3, const V& m4, const V& m5, V* o) {
  const V s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
  o[0] = m0 + s12 + s34;
  o[1] = d12 + 2.f * d34;
  o[2] = s12 + 4.f * s34;
  o[3] = d12 + 8.f * d34 + m5;
}

// F(2x2, 3x3): o = B^T d for a 4-vector, and o = A^T m (2 results).
template <class V>
CNN_ALWAYS_INLINE void input_1d_f2(const V& d0, const V& d1, const V& d2, const V& d3, V* o) {
  o[0] = d0 - d2;
  o[1] = d1 + d2;
  o[2] = d2 - d1;
  o[3] = d1 - d3;
}
template <class V>
CNN_ALWAYS_INLINE void output_1d_f2(const V& m0, const V& m1, const V& m2, const V& m3, V* o) {
  o[0] = m0 + m1 + m2;
  o[1] = m1 - m2 - m3;
}

// B^T (rows of a) applied to a row of a values at stride `step`, for either tile size.
inline void input_1d_any(int m, const float* d, int64_t step, float* o) {
  if (m == 4) input_1d(d[0], d[step], d[2 * step], d[3 * step], d[4 * step], d[5 * step], o);
  else input_1d_f2(d[0], d[step], d[2 * step], d[3 * step], o);
}
inline void output_1d_any(int m, const float* v, int64_t step, float* o) {
  if (m == 4) output_1d(v[0], v[step], v[2 * step], v[3 * step], v[4 * step], v[5 * step], o);
  else output_1d_f2(v[0], v[step], v[2 * step], v[3 * step], o);
}

// U = G g G^T for every (oc, ic), packed as a*a GEMM A operands (Cout x Cin each).
struct Weights {
  int m = 4;  // output tile size
  int64_t cout = 0, cin = 0;
  std::vector<PackedA> u;  // (m + 2)^2
};

inline Weights transform_weights(const float* w, int64_t cout, int64_t cin, int m = 4) {
  static const double G4[6][3] = {{1.0 / 4, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                  {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
  static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  if (m != 2 && m != 4) fail("winograd: tile size must be 2 or 4, not ", m);
  const int a = m + 2, E = a * a;
  auto G = [&](int i, int j) { return m == 4 ? G4[i][j] : G2[i][j]; };
  std::vector<float> u(std::size_t(E * cout * cin));  // [e][oc][ic]
  for (int64_t oc = 0; oc < cout; ++oc)
    for (int64_t ic = 0; ic < cin; ++ic) {
      const float* g = w + (oc * cin + ic) * 9;
      double t[6][3];  // G g
      for (int i = 0; i < a; ++i)
        for (int j = 0; j < 3; ++j) t[i][j] = G(i, 0) * g[j] + G(i, 1) * g[3 + j] + G(i, 2) * g[6 + j];
      for (int i = 0; i < a; ++i)
        for (int j = 0; j < a; ++j)
          u[std::size_t(((i * a + j) * cout + oc) * cin + ic)] =
              float(t[i][0] * G(j, 0) + t[i][1] * G(j, 1) + t[i][2] * G(j, 2));
    }
  Weights W;
  W.m = m, W.cout = cout, W.cin = cin;
  for (int e = 0; e < E; ++e) W.u.push_back(pack_a(cout, cin, ConstMat{u.data() + e * cout * cin, cin, 1}));
  return W;
}

// How an image is cut into work.
struct Geometry {
  int m;  // output tile size, 4 or 2; patches are a = m + 2 wide, E = a * a GEMMs
  int64_t cin, h, w, pad_h, pad_w, cout, oh, ow;
  int64_t tiles_h, tiles_w, rows_per_block, nblocks;
  int64_t strip_w;  // padded strip width: room for 16-tile vector loads

  Geometry(int m_, int64_t cin_, int64_t h_, int64_t w_, int64_t ph, int64_t pw, int64_t cout_, int64_t oh_, int64_t ow_)
      : m(m_), cin(cin_), h(h_), w(w_), pad_h(ph), pad_w(pw), cout(cout_), oh(oh_), ow(ow_) {
    tiles_h = (oh + m - 1) / m, tiles_w = (ow + m - 1) / m;
    // Blocks of whole tile rows, up to 64 tiles (V and M stay in L1/L2, and even small maps give
    // every thread blocks of its own: measured best among caps of 48-160 tiles), with the least
    // padding up to whole 32-tile panels.
    rows_per_block = 1;
    double best = 1e30;
    for (int64_t rows = 1; rows <= tiles_h && rows * tiles_w <= std::max<int64_t>(64, tiles_w); ++rows) {
      const int64_t blocks = (tiles_h + rows - 1) / rows;
      const double padded = double(blocks) * double((rows * tiles_w + 31) / 32 * 32);
      const double cost = padded * (rows * tiles_w < 64 ? 1.1 : 1.0);  // small blocks: more overhead
      if (cost < best * 0.999) best = cost, rows_per_block = rows;
    }
    nblocks = (tiles_h + rows_per_block - 1) / rows_per_block;
    strip_w = (tiles_w + 15) / 16 * 16 * m + 16;
  }
  int a() const { return m + 2; }
  int planes() const { return a() * a(); }
  // GEMM panel width: AVX-512's 16-wide kernel when the 32-wide one would mostly multiply padding.
  int64_t panel_width(Isa isa) const {
    const int64_t nr = nr_for(isa);
    if (isa == Isa::AVX512 && tiles_padded(16) * 5 < tiles_padded(32) * 4) return 16;
    return nr;
  }
  int64_t block_tiles(int64_t b) const { return std::min(rows_per_block, tiles_h - b * rows_per_block) * tiles_w; }
  int64_t tiles_padded(int64_t nr) const { return (rows_per_block * tiles_w + nr - 1) / nr * nr; }
};

// Which Winograd variant pays here: 4 (F(4x4,3x3)), 2 (F(2x2,3x3)) or 0 (direct GEMM). Compares GEMM
// columns x multiplies per column, padded tiles and panels included, with direct convolution,
// and prefers the larger tile; small channel counts don't repay the transforms.
inline int choose_tile(int64_t cin, int64_t cout, int64_t oh, int64_t ow, Isa isa) {
  if (cin < 8 || cout < 8) return 0;
  const int64_t nr = nr_for(isa);
  const double direct = double((oh * ow + nr - 1) / nr * nr) * 9;
  for (int m : {4, 2}) {
    const Geometry g(m, cin, oh, ow, 1, 1, cout, oh, ow);
    const double wino = double(g.nblocks * g.tiles_padded(g.panel_width(isa))) * g.planes();
    // F(2x2) only where F(4x4) loses, and only for wide layers (its transforms are vectorised for
    // AVX-512 only; the rule was measured on the ResNets' 7x7 maps).
    if (wino < 0.7 * direct && (m == 4 || cin * cout >= 128 * 128)) return m;
  }
  return 0;
}

namespace detail {

// Distance between the planes of V (or M): their size plus one cache line, so the 36 streams a
// transform writes (or reads) at once don't all fall into the same L1 set when the size is a
// multiple of 4 KiB.
inline int64_t plane_stride(int64_t floats) { return floats + 16; }

// Zero-padded copy of the input rows a block needs for one channel: strip row r is input row
// m*ty0 - pad_h + r, strip column c is input column c - pad_w.
inline void copy_strip(const Geometry& g, const float* xc, int64_t ty0, int64_t rows, float* strip) {
  for (int64_t r = 0; r < rows; ++r) {
    float* dst = strip + r * g.strip_w;
    const int64_t iy = g.m * ty0 - g.pad_h + r;
    std::fill(dst, dst + g.strip_w, 0.f);
    if (iy < 0 || iy >= g.h) continue;
    const int64_t c0 = g.pad_w, n = std::min(g.w, g.strip_w - c0);
    if (n > 0) std::copy(xc + iy * g.w, xc + iy * g.w + n, dst + c0);
  }
}

// Where lane t of V_e (tile t of the block, channel ic) lives in B-panel layout.
inline float* v_slot(float* V, const Geometry& g, int64_t tpad, int64_t nr, int e, int64_t ic, int64_t t) {
  return V + e * plane_stride(g.cin * tpad) + (t / nr) * g.cin * nr + ic * nr + t % nr;
}

inline void input_scalar(const Geometry& g, const float* strip, int64_t block_rows, int64_t ic, float* V, int64_t tpad,
                         int64_t nr) {
  const int m = g.m, a = g.a();
  for (int64_t r = 0; r < block_rows; ++r)
    for (int64_t tx = 0; tx < g.tiles_w; ++tx) {
      float R[6][6], o[6], col[6];
      for (int j = 0; j < a; ++j)  // rows of the patch, transformed along x
        input_1d_any(m, strip + (m * r + j) * g.strip_w + m * tx, 1, R[j]);
      const int64_t t = r * g.tiles_w + tx;
      for (int b = 0; b < a; ++b) {  // then along y
        for (int j = 0; j < a; ++j) col[j] = R[j][b];
        input_1d_any(m, col, 1, o);
        for (int i = 0; i < a; ++i) *v_slot(V, g, tpad, nr, i * a + b, ic, t) = o[i];
      }
    }
}

inline void output_scalar(const Geometry& g, const float* M, int64_t tpad, int64_t rows_in_chunk, int64_t oc0,
                          int64_t ty0, int64_t block_rows, float* y, const Epilogue& ep) {
  const int m = g.m, a = g.a();
  const int64_t stride = plane_stride(rows_in_chunk * tpad);
  for (int64_t k = 0; k < rows_in_chunk; ++k) {
    const int64_t oc = oc0 + k;
    float* yc = y + oc * g.oh * g.ow;
    for (int64_t r = 0; r < block_rows; ++r)
      for (int64_t tx = 0; tx < g.tiles_w; ++tx) {
        const int64_t t = r * g.tiles_w + tx;
        float v[36], Q[4][6], o[4];
        for (int e = 0; e < a * a; ++e) v[e] = M[e * stride + k * tpad + t];
        for (int b = 0; b < a; ++b) {  // along y
          float q[4];
          output_1d_any(m, v + b, a, q);
          for (int i = 0; i < m; ++i) Q[i][b] = q[i];
        }
        for (int i = 0; i < m; ++i) {  // then along x
          const int64_t oy = m * (ty0 + r) + i;
          if (oy >= g.oh) break;
          output_1d_any(m, Q[i], 1, o);
          for (int c = 0; c < m; ++c) {
            const int64_t ox = m * tx + c;
            if (ox < g.ow) yc[oy * g.ow + ox] = ep.apply(o[c], oc, &yc[oy * g.ow + ox]);
          }
        }
      }
  }
}

#ifdef CNN_X86
// 16 tiles at once: lane l of P[i] is strip element 4*l + i of the row segment at s.
CNN_TARGET_AVX512 inline void deinterleave6(const float* s, __m512* P) {
  const __m512 z0 = _mm512_loadu_ps(s), z1 = _mm512_loadu_ps(s + 16), z2 = _mm512_loadu_ps(s + 32),
               z3 = _mm512_loadu_ps(s + 48), z4 = _mm512_loadu_ps(s + 64);
  for (int i = 0; i < 4; ++i) {
    const __m512i idx = _mm512_setr_epi32(i, i + 4, i + 8, i + 12, i + 16, i + 20, i + 24, i + 28, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512 lo = _mm512_permutex2var_ps(z0, idx, z1), hi = _mm512_permutex2var_ps(z2, idx, z3);
    P[i] = _mm512_shuffle_f32x4(lo, hi, 0x44);
  }
  const __m512i z4i = _mm512_castps_si512(z4);
  P[4] = _mm512_castsi512_ps(_mm512_alignr_epi32(z4i, _mm512_castps_si512(P[0]), 1));
  P[5] = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_alignr_epi32(z4i, z4i, 1), _mm512_castps_si512(P[1]), 1));
}

CNN_TARGET_AVX512 inline void input_avx512(const Geometry& g, const float* strip, int64_t block_rows, int64_t ic,
                                           float* V, int64_t tpad, int64_t nr) {
  for (int64_t r = 0; r < block_rows; ++r)
    for (int64_t tx0 = 0; tx0 < g.tiles_w; tx0 += 16) {
      const int64_t count = std::min<int64_t>(16, g.tiles_w - tx0);
      __m512 R[6][6];
      for (int j = 0; j < 6; ++j) {
        __m512 P[6];
        deinterleave6(strip + (4 * r + j) * g.strip_w + 4 * tx0, P);
        input_1d(P[0], P[1], P[2], P[3], P[4], P[5], R[j]);
      }
      // Lanes [0, count) go to tiles t0.. of the block; they may straddle two B panels.
      const int64_t t0 = r * g.tiles_w + tx0, lane0 = t0 % nr, first = std::min<int64_t>(count, nr - lane0);
      const __mmask16 m_first = __mmask16((1u << first) - 1);
      const __mmask16 m_second = __mmask16(((1u << count) - 1) & ~((1u << first) - 1));
      for (int b = 0; b < 6; ++b) {
        __m512 o[6];
        input_1d(R[0][b], R[1][b], R[2][b], R[3][b], R[4][b], R[5][b], o);
        for (int a = 0; a < 6; ++a) {
          float* p = v_slot(V, g, tpad, nr, a * 6 + b, ic, t0);
          _mm512_mask_storeu_ps(p, m_first, o[a]);
          if (m_second) _mm512_mask_storeu_ps(p + g.cin * nr - nr, m_second, o[a]);  // next panel, lane 0
        }
      }
    }
}

// Stores `cols` (<= 16 * N) floats of output row segment w[] at dst: residual, activation, masked tail.
// Bias is in already.
template <int N>
CNN_TARGET_AVX512 inline void store_row(float* dst, __m512 (&w)[N], int64_t cols, const Epilogue& ep, __m512 slope) {
  for (int q = 0; q < N && q * 16 < cols; ++q) {
    const int64_t n = std::min<int64_t>(16, cols - q * 16);
    const __mmask16 mask = __mmask16((1u << n) - 1);
    if (ep.residual) w[q] = _mm512_add_ps(w[q], _mm512_maskz_loadu_ps(mask, ep.residual + (dst + q * 16 - ep.out_base)));
    w[q] = activate_avx512(w[q], ep.act, slope);
    _mm512_mask_storeu_ps(dst + q * 16, mask, w[q]);
  }
  if (ep.act == Activation::Sigmoid)
    for (int64_t c = 0; c < cols; ++c) dst[c] = ep.activate(dst[c]);
}

// F(2x2): 16 tiles at once, as above; patches are 4x4 with stride 2, outputs 2x2.
CNN_TARGET_AVX512 inline void input_f2_avx512(const Geometry& g, const float* strip, int64_t block_rows, int64_t ic,
                                              float* V, int64_t tpad, int64_t nr) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  for (int64_t r = 0; r < block_rows; ++r)
    for (int64_t tx0 = 0; tx0 < g.tiles_w; tx0 += 16) {
      const int64_t count = std::min<int64_t>(16, g.tiles_w - tx0);
      __m512 R[4][4];
      for (int j = 0; j < 4; ++j) {  // lane l of P[i] is strip element 2*l + i of the row segment
        const float* row = strip + (2 * r + j) * g.strip_w + 2 * tx0;
        const __m512 z0 = _mm512_loadu_ps(row), z1 = _mm512_loadu_ps(row + 16), z2 = _mm512_loadu_ps(row + 32);
        const __m512 p0 = _mm512_permutex2var_ps(z0, even, z1), p1 = _mm512_permutex2var_ps(z0, odd, z1);
        const __m512 p2 = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(z2), _mm512_castps_si512(p0), 1));
        const __m512 p3 = _mm512_castsi512_ps(_mm512_alignr_epi32(
            _mm512_alignr_epi32(_mm512_castps_si512(z2), _mm512_castps_si512(z2), 1), _mm512_castps_si512(p1), 1));
        input_1d_f2(p0, p1, p2, p3, R[j]);
      }
      const int64_t t0 = r * g.tiles_w + tx0, lane0 = t0 % nr, first = std::min<int64_t>(count, nr - lane0);
      const __mmask16 m_first = __mmask16((1u << first) - 1);
      const __mmask16 m_second = __mmask16(((1u << count) - 1) & ~((1u << first) - 1));
      for (int b = 0; b < 4; ++b) {
        __m512 o[4];
        input_1d_f2(R[0][b], R[1][b], R[2][b], R[3][b], o);
        for (int a = 0; a < 4; ++a) {
          float* p = v_slot(V, g, tpad, nr, a * 4 + b, ic, t0);
          _mm512_mask_storeu_ps(p, m_first, o[a]);
          if (m_second) _mm512_mask_storeu_ps(p + g.cin * nr - nr, m_second, o[a]);  // next panel, lane 0
        }
      }
    }
}

// A^T along one direction, for tile size m.
template <int m>
CNN_TARGET_AVX512 inline void output_1d_m(const __m512* v, __m512* o) {
  if constexpr (m == 4) output_1d(v[0], v[1], v[2], v[3], v[4], v[5], o);
  else output_1d_f2(v[0], v[1], v[2], v[3], o);
}

// Output transform for tile size m (4 or 2), 16 tiles at once: lane l of every vector is tile tx0 + l.
template <int m>
CNN_TARGET_AVX512 inline void output_avx512(const Geometry& g, const float* M, int64_t tpad, int64_t rows_in_chunk,
                                            int64_t oc0, int64_t ty0, int64_t block_rows, float* y, const Epilogue& ep) {
  constexpr int a = m + 2;
  const __m512i pair_lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i pair_hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const __m512i quad_lo = _mm512_setr_epi32(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
  const __m512i quad_hi = _mm512_setr_epi32(8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
  const int64_t stride = plane_stride(rows_in_chunk * tpad);
  for (int64_t k = 0; k < rows_in_chunk; ++k) {
    const int64_t oc = oc0 + k;
    float* yc = y + oc * g.oh * g.ow;
    const __m512 bias = _mm512_set1_ps(ep.bias ? ep.bias[oc] : 0.f), slope = _mm512_set1_ps(ep.slope);
    for (int64_t r = 0; r < block_rows; ++r)
      for (int64_t tx0 = 0; tx0 < g.tiles_w; tx0 += 16) {
        const int64_t count = std::min<int64_t>(16, g.tiles_w - tx0), t0 = r * g.tiles_w + tx0;
        const __mmask16 lanes = __mmask16((1u << count) - 1);
        __m512 Q[m][a];  // transformed along y
        for (int b = 0; b < a; ++b) {
          __m512 v[a], q[m];
          for (int i = 0; i < a; ++i) v[i] = _mm512_maskz_loadu_ps(lanes, M + (i * a + b) * stride + k * tpad + t0);
          output_1d_m<m>(v, q);
          for (int i = 0; i < m; ++i) Q[i][b] = q[i];
        }
        for (int i = 0; i < m; ++i) {
          const int64_t oy = m * (ty0 + r) + i;
          if (oy >= g.oh) break;
          __m512 o[m], w[m];
          output_1d_m<m>(Q[i], o);  // then along x
          for (int c = 0; c < m; ++c) o[c] = _mm512_add_ps(o[c], bias);
          // Interleave: output column m*l + c is o[c] lane l; 16 tiles -> 16*m contiguous floats.
          if constexpr (m == 4) {
            const __m512 a01l = _mm512_permutex2var_ps(o[0], pair_lo, o[1]), a01h = _mm512_permutex2var_ps(o[0], pair_hi, o[1]);
            const __m512 a23l = _mm512_permutex2var_ps(o[2], pair_lo, o[3]), a23h = _mm512_permutex2var_ps(o[2], pair_hi, o[3]);
            w[0] = _mm512_permutex2var_ps(a01l, quad_lo, a23l), w[1] = _mm512_permutex2var_ps(a01l, quad_hi, a23l);
            w[2] = _mm512_permutex2var_ps(a01h, quad_lo, a23h), w[3] = _mm512_permutex2var_ps(a01h, quad_hi, a23h);
          } else {
            w[0] = _mm512_permutex2var_ps(o[0], pair_lo, o[1]), w[1] = _mm512_permutex2var_ps(o[0], pair_hi, o[1]);
          }
          store_row(yc + oy * g.ow + m * tx0, w, std::min<int64_t>(16 * m, g.ow - m * tx0), ep, slope);
        }
      }
  }
}
#endif

}  // namespace detail

namespace detail {
// The input transform of input channels [ic0, ic1) for block b into V (one strip buffer per thread).
inline void transform_input(const Geometry& g, const float* x, int64_t b, int64_t ic0, int64_t ic1, float* V, int64_t tpad,
                            int64_t nr, bool avx512) {
  const int64_t ty0 = b * g.rows_per_block, block_rows = std::min(g.rows_per_block, g.tiles_h - ty0);
  const int64_t block_tiles = block_rows * g.tiles_w;
  thread_local AlignedVector strip;
  strip.resize_discard(std::size_t((g.m * g.rows_per_block + 2) * g.strip_w));
  for (int64_t ic = ic0; ic < ic1; ++ic) {
    copy_strip(g, x + ic * g.h * g.w, ty0, g.m * block_rows + 2, strip.data());
#ifdef CNN_X86
    if (avx512 && g.m == 4) input_avx512(g, strip.data(), block_rows, ic, V, tpad, nr);
    else if (avx512) input_f2_avx512(g, strip.data(), block_rows, ic, V, tpad, nr);
    else
#endif
      input_scalar(g, strip.data(), block_rows, ic, V, tpad, nr);
    if (block_tiles % nr) {  // padding lanes of the last panel: keep them finite
      const int64_t lane0 = block_tiles % nr;
      for (int e = 0; e < g.planes(); ++e) {
        float* p = v_slot(V, g, tpad, nr, e, ic, block_tiles);
        std::fill(p, p + (nr - lane0), 0.f);
      }
    }
  }
  (void)avx512;
}

// Block b's E GEMMs M_e[rows x tiles] = U_e[oc0.., :] * V_e for output channels [oc0, oc0 + rows),
// then their output transform into y.
inline void multiply_and_output(const Weights& U, const Geometry& g, const float* V, int64_t b, int64_t oc0,
                                int64_t rows, int64_t chunk_rows, float* y, const Epilogue& ep, int64_t tpad,
                                int64_t nr, MicroKernel micro, bool avx512) {
  const int64_t ty0 = b * g.rows_per_block, block_rows = std::min(g.rows_per_block, g.tiles_h - ty0);
  const int64_t block_tiles = block_rows * g.tiles_w;
  thread_local AlignedVector Mbuf;
  Mbuf.resize_discard(std::size_t(g.planes() * plane_stride(chunk_rows * tpad)));
  const Epilogue none;
  for (int e = 0; e < g.planes(); ++e) {
    const float* Ve = V + e * plane_stride(g.cin * tpad);
    float* Me = Mbuf.data() + e * plane_stride(rows * tpad);
    for (int64_t pc = 0; pc < g.cin; pc += kernels::detail::kKC) {
      const int64_t kc = std::min(kernels::detail::kKC, g.cin - pc);
      for (int64_t jr = 0; jr < block_tiles; jr += nr)
        for (int64_t ir = 0; ir < rows; ir += kMR)
          micro(kc, U.u[e].panel((oc0 + ir) / kMR, pc), Ve + jr * g.cin + pc * nr, nr, Me + ir * tpad + jr, tpad,
                std::min(kMR, rows - ir), std::min(nr, block_tiles - jr), pc == 0, false, none, 0, g.cin * kMR);
    }
  }
#ifdef CNN_X86
  if (avx512 && g.m == 4) return output_avx512<4>(g, Mbuf.data(), tpad, rows, oc0, ty0, block_rows, y, ep);
  if (avx512) return output_avx512<2>(g, Mbuf.data(), tpad, rows, oc0, ty0, block_rows, y, ep);
#endif
  output_scalar(g, Mbuf.data(), tpad, rows, oc0, ty0, block_rows, y, ep);
  (void)avx512;
}
}  // namespace detail

// One image: x is [cin][h][w], y is [cout][oh][ow] with oh = h + 2*pad_h - 2 (likewise ow).
inline void conv3x3(const Weights& U, const float* x, const Geometry& g, float* y, const Epilogue& ep) {
  if (U.m != g.m || U.cin != g.cin || U.cout != g.cout) fail("winograd: weights do not match the geometry");
  const Isa isa = active_isa();
  const int64_t nr = g.panel_width(isa);
  const bool avx512 = isa == Isa::AVX512;
  const MicroKernel micro = micro_kernel_for(isa, nr);
  const int E = g.planes();
  const int64_t tpad = g.tiles_padded(nr), m_panels = (g.cout + kMR - 1) / kMR;
  const int64_t v_floats = E * detail::plane_stride(g.cin * tpad);
  const int threads = num_threads();
  // Whole blocks as items, as many as fill every thread equally (each transforms its own input)...
  const int64_t whole = threads > 1 ? g.nblocks - g.nblocks % threads : g.nblocks;
  if (whole > 0) {
    parallel_for(whole, g.cout * g.cin * tpad * E, [&](int64_t b) {
      thread_local AlignedVector V;
      V.resize_discard(std::size_t(v_floats));
      detail::transform_input(g, x, b, 0, g.cin, V.data(), tpad, nr, avx512);
      detail::multiply_and_output(U, g, V.data(), b, 0, g.cout, g.cout, y, ep, tpad, nr, micro, avx512);
    });
  }
  if (whole == g.nblocks) return;
  // ...and the blocks left over (fewer than the threads: all of a 14x14 or 7x7 map, one of the 7
  // blocks of a 56x56 map on 2 threads) split by output channels, each block's input transformed
  // once with its input channels shared out. (Each output-channel chunk transformed the whole
  // block itself before: 10-20% of its work; a left-over block left a thread idle.)
  const int64_t left = g.nblocks - whole;
  const int64_t chunks = std::min<int64_t>(m_panels, (threads + left - 1) / left);
  const int64_t chunk_rows = (m_panels + chunks - 1) / chunks * kMR;
  thread_local AlignedVector shared_v;  // the caller's: workers reach it through `V`
  shared_v.resize_discard(std::size_t(v_floats));
  float* const V = shared_v.data();
  const int64_t ic_parts = std::min<int64_t>(g.cin, 4 * threads);
  for (int64_t b = whole; b < g.nblocks; ++b) {
    parallel_for(ic_parts, g.cin / ic_parts * tpad * E * 8, [&](int64_t part) {
      detail::transform_input(g, x, b, g.cin * part / ic_parts, g.cin * (part + 1) / ic_parts, V, tpad, nr, avx512);
    });
    parallel_for(chunks, g.cout / chunks * g.cin * tpad * E, [&](int64_t c) {
      const int64_t oc0 = c * chunk_rows, rows = std::min(chunk_rows, g.cout - oc0);
      if (rows > 0) detail::multiply_and_output(U, g, V, b, oc0, rows, chunk_rows, y, ep, tpad, nr, micro, avx512);
    });
  }
}

}  // namespace cnn::kernels::winograd

CNN_KERNELS_END
