// cnn/kernels/gemm.hpp — single-precision matrix multiply, the workhorse of Conv2d and Linear.
//
//   C = act(A * B + bias)      A: M x K, B: K x N, C: M x N
//
// Operands are strided matrices (element (r, c) at data[r * rs + c * cs]). A — the weights — is
// packed once (pack_a, at load time) into 8-row panels. B is packed per call, block by block,
// by a BSource: a plain strided matrix, or an image unfolded on the fly (implicit im2col, see
// conv2d.hpp). The blocked loop (BLIS order: B micro-panel in L1, A block in L2) calls a
// register-tiled micro-kernel for the active ISA (cpu.hpp): 8x32 with AVX-512, 8x16 with AVX2+FMA,
// 8x16 portable C++.
//
// gemm_reference() is the plain definition; tests/test_gemm.cpp checks every ISA's path against it
// on random shapes and strides.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../parallel.hpp"
#include "../tensor.hpp"
#include "cpu.hpp"

CNN_KERNELS_BEGIN

namespace cnn {

enum class Activation { None, ReLU, LeakyReLU, Sigmoid, ReLU6 };  // ReLU6: min(max(x, 0), 6)

inline const char* activation_name(Activation a) {
  switch (a) {
    case Activation::None: return "none";
    case Activation::ReLU: return "ReLU";
    case Activation::LeakyReLU: return "LeakyReLU";
    case Activation::Sigmoid: return "Sigmoid";
    case Activation::ReLU6: return "ReLU6";
  }
  return "?";
}

// What to do with each finished output element: add a bias (per row), add the element of a
// residual tensor laid out like the output (a fused ResNet shortcut), then an activation.
struct Epilogue {
  const float* bias = nullptr;  // length M, or nullptr
  Activation act = Activation::None;
  float slope = 0.01f;  // LeakyReLU negative slope
  const float* residual = nullptr;  // residual[d - out_base] is added to output element *d
  const float* out_base = nullptr;

  float activate(float v) const {
    switch (act) {
      case Activation::None: return v;
      case Activation::ReLU: return v > 0.f ? v : 0.f;
      case Activation::LeakyReLU: return v > 0.f ? v : v * slope;
      case Activation::Sigmoid: return 1.f / (1.f + std::exp(-v));
      case Activation::ReLU6: return v > 0.f ? (v < 6.f ? v : 6.f) : 0.f;
    }
    return v;
  }
  // For outputs without a residual.
  float apply(float v, int64_t row) const { return activate(bias ? v + bias[row] : v); }
  // For the output element at dst.
  float apply(float v, int64_t row, const float* dst) const {
    if (bias) v += bias[row];
    if (residual) v += residual[dst - out_base];
    return activate(v);
  }
};

template <class T>
struct BasicMat {
  T* data;
  int64_t rs, cs;  // row stride, column stride (in elements)
  T& operator()(int64_t r, int64_t c) const { return data[r * rs + c * cs]; }
};
using ConstMat = BasicMat<const float>;
using Mat = BasicMat<float>;

// Aligned float storage that can live in std containers.
class AlignedVector {
 public:
  AlignedVector() = default;
  explicit AlignedVector(std::size_t n) : data_(allocate_floats(n)), size_(n) {}
  AlignedVector(AlignedVector&&) = default;
  AlignedVector& operator=(AlignedVector&&) = default;
  void resize_discard(std::size_t n) {  // grows without keeping the contents
    if (n > size_) data_ = allocate_floats(n), size_ = n;
  }
  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  std::size_t size() const { return size_; }

 private:
  AlignedFloats data_;
  std::size_t size_ = 0;
};

namespace kernels {

constexpr int64_t kMR = 8;  // rows of a packed A panel, for every ISA

inline int64_t nr_for(Isa isa) { return isa == Isa::AVX512 ? 32 : 16; }

// A packed into ceil(M/8) panels; panel p holds A(8p + r, k) at [p][k][r], zero-padded rows.
struct PackedA {
  int64_t M = 0, K = 0;
  AlignedVector values;
  const float* panel(int64_t p, int64_t k0) const { return values.data() + (p * K + k0) * kMR; }
};

// The rows of A (M x K) in panels of `width` rows, element (p * width + r, k) at [p][k][r], the last
// panel zero-padded: the weight layout of every kernel that streams weights down K (GEMM, direct).
inline AlignedVector pack_row_panels(int64_t M, int64_t K, ConstMat A, int64_t width) {
  const int64_t panels = (M + width - 1) / width;
  AlignedVector values(std::size_t(std::max<int64_t>(panels * K * width, 1)));
  float* out = values.data();
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t k = 0; k < K; ++k, out += width)
      for (int64_t r = 0; r < width; ++r) out[r] = p * width + r < M ? A(p * width + r, k) : 0.f;
  return values;
}

inline PackedA pack_a(int64_t M, int64_t K, ConstMat A) {
  PackedA pa;
  pa.M = M, pa.K = K;
  pa.values = pack_row_panels(M, K, A, kMR);
  return pa;
}

// Packs rows [k0, k0+kc) x columns [j0, j0+nc) of B into nr-wide panels [p][k][nr], zero-padded.
// (Reading B in place instead, even for few rows of A, measured 2-3x slower: its rows are far apart.)
struct BSource {
  void (*pack)(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t nr, float* out);
  const void* ctx;
  bool gathers = false;  // packing costs more than a copy (im2col): worth sharing between threads
};

// Copies one panel row: a fixed-size copy the compiler inlines as vector moves (a memcpy call per
// 64-128 bytes cost more than the copy itself).
template <int N>
inline void copy_row(const float* src, float* dst) {
  for (int c = 0; c < N; ++c) dst[c] = src[c];
}
#ifdef CNN_X86
// n <= 32 floats with two masked AVX-512 moves (packing a B panel row is this, many times over).
CNN_TARGET_AVX512 inline void copy_row_avx512(const float* src, float* dst, int64_t n) {
  const __mmask16 m0 = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
  const __mmask16 m1 = n >= 32 ? __mmask16(0xFFFF) : n <= 16 ? __mmask16(0) : __mmask16((1u << (n - 16)) - 1);
  _mm512_mask_storeu_ps(dst, m0, _mm512_maskz_loadu_ps(m0, src));
  if (m1) _mm512_mask_storeu_ps(dst + 16, m1, _mm512_maskz_loadu_ps(m1, src + 16));
}
#endif
inline void copy_row(const float* src, float* dst, int64_t n) {
#ifdef CNN_X86
  static const bool avx512 = detect_isa() == Isa::AVX512;  // any forced ISA copies the same bytes
  if (avx512 && n <= 32) return copy_row_avx512(src, dst, n);
#endif
  if (n == 32) copy_row<32>(src, dst);
  else if (n == 16) copy_row<16>(src, dst);
  else
    for (int64_t c = 0; c < n; ++c) dst[c] = src[c];
}

// dst[t] = src[2 t] for t < n: a stride-2 convolution's row of the unfolded image.
#ifdef CNN_X86
// 16 outputs per step: two masked loads of the 31 inputs they need, the even lanes picked out.
CNN_TARGET_AVX512 inline void copy_row_stride2_avx512(const float* src, float* dst, int64_t n) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  for (int64_t t = 0; t < n; t += 16) {
    const int64_t m = std::min<int64_t>(16, n - t), need = 2 * m - 1;  // inputs 2t .. 2t + need - 1
    const __mmask16 lo = need >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << need) - 1);
    const __mmask16 hi = need > 16 ? __mmask16((1u << (need - 16)) - 1) : __mmask16(0);
    const __m512 z0 = _mm512_maskz_loadu_ps(lo, src + 2 * t), z1 = _mm512_maskz_loadu_ps(hi, src + 2 * t + 16);
    _mm512_mask_storeu_ps(dst + t, __mmask16((1u << m) - 1), _mm512_permutex2var_ps(z0, even, z1));
  }
}
#endif
inline void copy_row_stride2(const float* src, float* dst, int64_t n) {
#ifdef CNN_X86
  static const bool avx512 = detect_isa() == Isa::AVX512;  // any forced ISA copies the same values
  if (avx512) return copy_row_stride2_avx512(src, dst, n);
#endif
  for (int64_t t = 0; t < n; ++t) dst[t] = src[2 * t];
}

#ifdef CNN_X86
// pack_b_matrix (below) for a contiguous B and 32-wide panels, with the copies inlined: a call per
// 128-byte row segment made the packing a quarter of a 64-row 1x1 convolution at 56x56.
CNN_TARGET_AVX512 inline void pack_b_rows32_avx512(const float* b, int64_t rs, int64_t kc, int64_t nc, float* out) {
  for (int64_t k = 0; k < kc; ++k) {
    const float* src = b + k * rs;
    float* dst = out + k * 32;
    int64_t p = 0;
    for (; p + 32 <= nc; p += 32, dst += 32 * kc) {
      _mm512_store_ps(dst, _mm512_loadu_ps(src + p));
      _mm512_store_ps(dst + 16, _mm512_loadu_ps(src + p + 16));
    }
    if (p < nc) {
      const int64_t n = nc - p;
      const __mmask16 m0 = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
      const __mmask16 m1 = n <= 16 ? __mmask16(0) : __mmask16((1u << (n - 16)) - 1);
      _mm512_store_ps(dst, _mm512_maskz_loadu_ps(m0, src + p));
      _mm512_store_ps(dst + 16, _mm512_maskz_loadu_ps(m1, src + p + 16));
    }
  }
}
#endif

inline void pack_b_matrix(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t nr, float* out) {
  const ConstMat& B = *static_cast<const ConstMat*>(ctx);
#ifdef CNN_X86
  static const bool avx512 = detect_isa() == Isa::AVX512;  // any forced ISA packs the same bytes
  if (avx512 && nr == 32 && B.cs == 1) return pack_b_rows32_avx512(&B(k0, j0), B.rs, kc, nc, out);
#endif
  // Row by row: B's rows are read contiguously (rows of a large B are pages apart).
  for (int64_t k = 0; k < kc; ++k) {
    const float* src = &B(k0 + k, j0);
    for (int64_t p = 0; p < nc; p += nr) {
      float* dst = out + p * kc + k * nr;
      const int64_t cols = std::min(nr, nc - p);
      if (B.cs == 1) copy_row(src + p, dst, cols);
      else
        for (int64_t c = 0; c < cols; ++c) dst[c] = src[(p + c) * B.cs];
      for (int64_t c = cols; c < nr; ++c) dst[c] = 0.f;
    }
  }
}
// `B` must outlive the returned source.
inline BSource matrix_source(const ConstMat& B) { return BSource{pack_b_matrix, &B}; }

// The definition: one dot product per output element, k in order.
inline void gemm_reference(int64_t M, int64_t N, int64_t K, ConstMat A, ConstMat B, Mat C,
                           const Epilogue& ep = {}) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float s = 0.f;
      for (int64_t k = 0; k < K; ++k) s += A(i, k) * B(k, j);
      C(i, j) = ep.apply(s, i, &C(i, j));
    }
}

// ---- micro-kernels -------------------------------------------------------------------------
// c[r][j] (+)= sum_k a[k][r] * b[k * ldb + j] for the 8 x NR tile of a packed, zero-padded B panel
// (64-byte aligned rows, ldb >= NR); only `rows` x `cols` are stored to c.
// `first`: overwrite C (else accumulate); `last`: apply the epilogue (bias rows from ep.bias + row0).
// `a_next`: where the next call's A panel is, in floats from `a` (a prefetch hint; 0 if unknown).
using MicroKernel = void (*)(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc,
                             int64_t rows, int64_t cols, bool first, bool last, const Epilogue& ep, int64_t row0, int64_t a_next);

inline void micro_generic(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, int64_t rows,
                          int64_t cols, bool first, bool last, const Epilogue& ep, int64_t row0, int64_t /*a_next*/) {
  constexpr int64_t NR = 16;
  float acc[kMR][NR] = {};
  if (cols == NR) {
    for (int64_t k = 0; k < kc; ++k, a += kMR, b += ldb)
      for (int64_t r = 0; r < kMR; ++r)
        for (int64_t j = 0; j < NR; ++j) acc[r][j] += a[r] * b[j];
  } else {
    for (int64_t k = 0; k < kc; ++k, a += kMR, b += ldb)
      for (int64_t r = 0; r < kMR; ++r)
        for (int64_t j = 0; j < cols; ++j) acc[r][j] += a[r] * b[j];
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      float* d = c + r * ldc + j;
      const float v = first ? acc[r][j] : *d + acc[r][j];
      *d = last ? ep.apply(v, row0 + r, d) : v;
    }
}

#ifdef CNN_X86
// The epilogue's activation on a vector, for every kernel's vector epilogue: ReLU, ReLU6 or LeakyReLU
// (`slope` = the negative slope in every lane); None and Sigmoid leave it (Sigmoid is scalar).
CNN_TARGET_AVX512 inline __m512 activate_avx512(__m512 x, Activation act, __m512 slope) {
  const __m512 zero = _mm512_setzero_ps();
  if (act == Activation::ReLU) return _mm512_max_ps(x, zero);
  if (act == Activation::ReLU6) return _mm512_min_ps(_mm512_max_ps(x, zero), _mm512_set1_ps(6.f));
  if (act == Activation::LeakyReLU) return _mm512_mask_mul_ps(x, _mm512_cmp_ps_mask(x, zero, _CMP_LE_OQ), x, slope);
  return x;
}

// A finished 8 x (16 * NV) tile of sums into C (`rows` x `cols` of it): added to C unless `first`;
// with `last`, the epilogue (bias, residual, activation). Shared by the fp32 and bf16 kernels.
template <int NV>
CNN_TARGET_AVX512 inline void store_tile_avx512(const __m512 (&acc)[kMR][NV], float* c, int64_t ldc, int64_t rows,
                                                int64_t cols, bool first, bool last, const Epilogue& ep, int64_t row0) {
  __mmask16 mask[NV];
  for (int v = 0; v < NV; ++v) {
    const int64_t n = std::clamp<int64_t>(cols - 16 * v, 0, 16);
    mask[v] = __mmask16((1u << n) - 1);
  }
  const bool vector_epilogue = last && ep.act != Activation::Sigmoid;
  const __m512 slope = _mm512_set1_ps(ep.slope);
  for (int64_t r = 0; r < rows; ++r) {
    float* cr = c + r * ldc;
    const __m512 bias = _mm512_set1_ps(ep.bias && vector_epilogue ? ep.bias[row0 + r] : 0.f);
    for (int v = 0; v < NV; ++v) {
      __m512 x = acc[r][v];
      if (!first) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask[v], cr + 16 * v));
      if (vector_epilogue) {
        x = _mm512_add_ps(x, bias);
        if (ep.residual) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(mask[v], ep.residual + (cr + 16 * v - ep.out_base)));
        x = activate_avx512(x, ep.act, slope);
      }
      _mm512_mask_storeu_ps(cr + 16 * v, mask[v], x);
    }
    if (last && !vector_epilogue)
      for (int64_t j = 0; j < cols; ++j) cr[j] = ep.apply(cr[j], row0 + r, cr + j);
  }
}

// 8 rows x (16 * NV) columns; NV = 2 is the main kernel, NV = 1 serves narrow right-hand sides
// (Winograd on small feature maps) with half the padding.
template <int NV>
CNN_TARGET_AVX512 inline void micro_avx512_t(int64_t kc, const float* a, const float* b, int64_t ldb, float* c,
                                             int64_t ldc, int64_t rows, int64_t cols, bool first, bool last,
                                             const Epilogue& ep, int64_t row0, int64_t a_next) {
  __m512 acc[kMR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < kMR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  // The tile's rows of C and of the residual are far apart in memory and beyond L2 for large maps:
  // request them now, they are needed after the k loop (ResNet-50's 64->256 1x1 convolutions at
  // 56x56 with a residual: 0.70-0.77 -> 0.57 ms at 2 threads).
  for (int64_t r = 0; r < rows; ++r) {
    for (int v = 0; v < NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16 * v), _MM_HINT_T0);
    if (last && ep.residual)
      for (int v = 0; v < NV; ++v)
        _mm_prefetch(reinterpret_cast<const char*>(ep.residual + (c + r * ldc + 16 * v - ep.out_base)), _MM_HINT_T0);
  }
  for (int64_t k = 0; k < kc; ++k, a += kMR, b += ldb) {
    // A panels (weights) stream from beyond L2 in Winograd and for deep layers. Into L1: this
    // panel 2 KiB ahead (+20% on 512-channel Winograd layers); into L2: the next call's panel, so
    // a panel read straight from memory arrives while this one is multiplied (small maps, where
    // each panel serves one call: 16 GEMMs of 512x16x512 from memory 8.2 -> 5.3 ms). One cache
    // line of each every other step, the rate the panel is consumed.
    if ((k & 1) == 0) _mm_prefetch(reinterpret_cast<const char*>(a + 512), _MM_HINT_T0);
    else _mm_prefetch(reinterpret_cast<const char*>(a + a_next), _MM_HINT_T1);
    __m512 bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + 16 * v);  // panels: aligned, zero-padded
#pragma GCC unroll 8
    for (int r = 0; r < kMR; ++r) {
      const __m512 ar = _mm512_set1_ps(a[r]);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
    }
  }
  store_tile_avx512<NV>(acc, c, ldc, rows, cols, first, last, ep, row0);
}
inline void micro_avx512(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc, int64_t rows,
                         int64_t cols, bool first, bool last, const Epilogue& ep, int64_t row0, int64_t a_next) {
  micro_avx512_t<2>(kc, a, b, ldb, c, ldc, rows, cols, first, last, ep, row0, a_next);
}
inline void micro_avx512_n16(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t ldc,
                             int64_t rows, int64_t cols, bool first, bool last, const Epilogue& ep, int64_t row0, int64_t a_next) {
  micro_avx512_t<1>(kc, a, b, ldb, c, ldc, rows, cols, first, last, ep, row0, a_next);
}

CNN_TARGET_AVX2 inline void micro_avx2(int64_t kc, const float* a, const float* b, int64_t ldb, float* c,
                                       int64_t ldc, int64_t rows, int64_t cols, bool first, bool last,
                                       const Epilogue& ep, int64_t row0, int64_t /*a_next*/) {
  // 16 YMM registers: two passes of 4 rows x 16 columns (8 accumulators each) over the 8-row panel.
  const bool vector_epilogue = last && ep.act != Activation::Sigmoid;
  alignas(32) int32_t lane[16];
  for (int j = 0; j < 16; ++j) lane[j] = j < cols ? -1 : 0;
  const __m256i m0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(lane));
  const __m256i m1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(lane + 8));
  for (int64_t half = 0; half < 2 && half * 4 < rows; ++half) {
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    const float* ap = a + half * 4;
    const float* bp = b;
    for (int64_t k = 0; k < kc; ++k, ap += kMR, bp += ldb) {
      const __m256 b0 = _mm256_maskload_ps(bp, m0), b1 = _mm256_maskload_ps(bp + 8, m1);
#pragma GCC unroll 4
      for (int r = 0; r < 4; ++r) {
        const __m256 ar = _mm256_broadcast_ss(ap + r);
        acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
      }
    }
    for (int64_t r = 0; r < 4 && half * 4 + r < rows; ++r) {
      const int64_t row = half * 4 + r;
      float* cr = c + row * ldc;
      __m256 v0 = acc[r][0], v1 = acc[r][1];
      if (!first) {
        v0 = _mm256_add_ps(v0, _mm256_maskload_ps(cr, m0));
        v1 = _mm256_add_ps(v1, _mm256_maskload_ps(cr + 8, m1));
      }
      if (vector_epilogue) {
        if (ep.bias) {
          const __m256 bv = _mm256_set1_ps(ep.bias[row0 + row]);
          v0 = _mm256_add_ps(v0, bv), v1 = _mm256_add_ps(v1, bv);
        }
        if (ep.residual) {
          const float* res = ep.residual + (cr - ep.out_base);
          v0 = _mm256_add_ps(v0, _mm256_maskload_ps(res, m0));
          v1 = _mm256_add_ps(v1, _mm256_maskload_ps(res + 8, m1));
        }
        if (ep.act == Activation::ReLU) {
          v0 = _mm256_max_ps(v0, _mm256_setzero_ps()), v1 = _mm256_max_ps(v1, _mm256_setzero_ps());
        } else if (ep.act == Activation::ReLU6) {
          const __m256 z = _mm256_setzero_ps(), six = _mm256_set1_ps(6.f);
          v0 = _mm256_min_ps(_mm256_max_ps(v0, z), six), v1 = _mm256_min_ps(_mm256_max_ps(v1, z), six);
        } else if (ep.act == Activation::LeakyReLU) {
          const __m256 s = _mm256_set1_ps(ep.slope), z = _mm256_setzero_ps();
          v0 = _mm256_blendv_ps(v0, _mm256_mul_ps(v0, s), _mm256_cmp_ps(v0, z, _CMP_LE_OQ));
          v1 = _mm256_blendv_ps(v1, _mm256_mul_ps(v1, s), _mm256_cmp_ps(v1, z, _CMP_LE_OQ));
        }
      }
      _mm256_maskstore_ps(cr, m0, v0);
      _mm256_maskstore_ps(cr + 8, m1, v1);
      if (last && !vector_epilogue)
        for (int64_t j = 0; j < cols; ++j) cr[j] = ep.apply(cr[j], row0 + row, cr + j);
    }
  }
}
#endif

// The micro-kernel for an ISA and panel width (nr_for(isa), or 16 for AVX-512's narrow kernel).
inline MicroKernel micro_kernel_for(Isa isa, int64_t nr = 0) {
#ifdef CNN_X86
  if (isa == Isa::AVX512) return nr == 16 ? micro_avx512_n16 : micro_avx512;
  if (isa == Isa::AVX2) return micro_avx2;
#endif
  (void)isa;
  return micro_generic;
}

namespace detail {
#ifndef CNN_GEMM_KC
#define CNN_GEMM_KC 256
#define CNN_GEMM_NC 768
#endif
constexpr int64_t kKC = CNN_GEMM_KC, kMC = 512, kNC = CNN_GEMM_NC;

// A tile of sums computed aside (`tile`, rows of `ld`) into C at (row, col), for a C whose columns
// are not contiguous: added to C unless `first`; with `last`, the epilogue.
inline void scatter_tile(const float* tile, int64_t ld, Mat C, int64_t row, int64_t col, int64_t rows, int64_t cols,
                         bool first, bool last, const Epilogue& ep) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j) {
      float& dst = C(row + r, col + j);
      const float v = first ? tile[r * ld + j] : dst + tile[r * ld + j];
      dst = last ? ep.apply(v, row + r, &dst) : v;
    }
}

// What every GEMM driver does first: an output written over its residual (Conv2d::in_place_input)
// holds the residual, which the first K block would overwrite with partial sums, so every block
// adds onto C instead (returns true) and `ep` adds no residual; with K = 0, C is the epilogue of
// an empty sum (`done`).
inline bool gemm_prologue(int64_t M, int64_t N, int64_t K, Mat C, const Epilogue& ep_in, Epilogue& ep, bool& done) {
  const bool onto_c = ep_in.residual && ep_in.residual == ep_in.out_base;
  ep = ep_in;
  if (onto_c) ep.residual = nullptr;
  done = K == 0;
  if (done)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C(i, j) = ep_in.apply(0.f, i, &C(i, j));
  return onto_c;
}

// One thread's share: rows [m0, m1) (multiples of kMR) x columns [n0, n1). `packed_b`, if given, is
// all of B packed already (columns [0, n1) in one block, K block pc at packed_b + pc * padded width).
// `onto_c`: add the product to what C holds (else the first K block overwrites it).
inline void gemm_block(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, const PackedA& A, BSource B, Mat C,
                       const Epilogue& ep, Isa isa, int64_t NR, bool onto_c, const float* packed_b = nullptr) {
  const MicroKernel micro = micro_kernel_for(isa, NR);
  // A last panel of at most 16 columns (196 = 6 x 32 + 4 pixels at 14x14) takes AVX-512's
  // 16-column kernel on its left half: about half the work of padding it to 32.
  const MicroKernel narrow = NR == 32 && isa == Isa::AVX512 ? micro_kernel_for(isa, 16) : micro;
  thread_local AlignedVector b_pack, tile;
  b_pack.resize_discard(std::size_t(kKC * (kNC + NR)));
  tile.resize_discard(std::size_t(kMR * 32));
  const bool direct = C.cs == 1;  // else compute each tile aside and scatter it
  for (int64_t jc = n0; jc < n1; jc += kNC) {
    const int64_t nc = std::min(kNC, n1 - jc);
    for (int64_t pc = 0; pc < K; pc += kKC) {
      const int64_t kc = std::min(kKC, K - pc);
      const bool first = pc == 0 && !onto_c, last = pc + kc == K;
      const float* block = packed_b ? packed_b + pc * ((n1 + NR - 1) / NR * NR) : b_pack.data();
      if (!packed_b) B.pack(B.ctx, pc, kc, jc, nc, NR, b_pack.data());
      for (int64_t ic = m0; ic < m1; ic += kMC) {
        const int64_t mc = std::min(kMC, m1 - ic);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const float* bp = block + jr * kc;
          const int64_t ldb = NR;
          const int64_t cols = std::min(NR, nc - jr);
          for (int64_t ir = 0; ir < mc; ir += kMR) {
            const int64_t row = ic + ir, rows = std::min(kMR, A.M - row);
            if (rows <= 0) break;
            const float* ap = A.panel(row / kMR, pc);
            if (direct) {
              // The next tile's C (and residual) rows: the kernel asks for its own only as it starts,
              // too late when they come from memory (ResNet-50's 56x56 1x1 layers with a residual
              // at 2 threads: 0.50-0.56 -> 0.39-0.46 ms).
              for (int64_t r = row + kMR; r < std::min(row + 2 * kMR, A.M); ++r)
                for (int64_t j = 0; j < cols; j += 16) {
                  __builtin_prefetch(&C(r, jc + jr + j));
                  if (last && ep.residual) __builtin_prefetch(ep.residual + (&C(r, jc + jr + j) - ep.out_base));
                }
              (cols <= 16 ? narrow : micro)(kc, ap, bp, ldb, &C(row, jc + jr), C.rs, rows, cols, first, last, ep, row,
                                            A.K * kMR);
            } else {
              micro(kc, ap, bp, ldb, tile.data(), NR, rows, cols, true, false, ep, row, A.K * kMR);
              scatter_tile(tile.data(), NR, C, row, jc + jr, rows, cols, first, last, ep);
            }
          }
        }
      }
    }
  }
}
}  // namespace detail

// C = act(A * B + bias) with A packed. Threads split N (in whole NR panels) or, when N is narrow,
// M (in whole 8-row panels); each output element is summed by one thread in a fixed order, so
// results do not depend on the thread count.
inline void gemm_packed(int64_t M, int64_t N, int64_t K, const PackedA& A, BSource B, Mat C, const Epilogue& ep_in = {}) {
  if (M <= 0 || N <= 0) return;
  if (A.M != M || A.K != K) fail("gemm: packed A is ", A.M, "x", A.K, ", expected ", M, "x", K);
  Epilogue ep;
  bool done;
  const bool onto_c = detail::gemm_prologue(M, N, K, C, ep_in, ep, done);
  if (done) return;
  const Isa isa = active_isa();
  // A narrow B (a small feature map) takes AVX-512's 16-column kernel rather than padding to 32.
  const int64_t NR = isa == Isa::AVX512 && N <= 16 ? 16 : nr_for(isa);
  const int64_t n_units = (N + NR - 1) / NR, m_units = (M + kMR - 1) / kMR;
  const int threads = M * N * K >= 8 * kMinParallelWork ? num_threads() : 1;
  // Split the larger dimension: across N each thread reads all of A and packs its share of B,
  // across M it reads its share of A and packs all of B (ResNet-50's 1x1 convolutions at 14x14,
  // 196 columns x 256-1024 rows: 0.51-0.53 -> 0.39-0.42 ms at 2 threads across M).
  const bool split_n = N >= M ? n_units >= threads || n_units >= m_units : m_units < threads && n_units > m_units;
  const int64_t units = split_n ? n_units : m_units;
  // Column ranges: a few per thread, claimed dynamically, so a thread slowed by other load doesn't
  // hold up the rest (each range packs only its own columns of B). Row ranges: one per thread.
  const int64_t chunks = std::min<int64_t>(split_n ? 3 * threads : threads, units);
  if (chunks <= 1) return detail::gemm_block(0, M, 0, N, K, A, B, C, ep, isa, NR, onto_c);
  if (!split_n && B.gathers && N <= detail::kNC) {
    // Rows split and B gathered: B is packed once, its K blocks shared out, rather than once by
    // every thread (an im2col pack is 20% of a strided 3x3 convolution; ResNet-50's at 7x7 and
    // 14x14: 3-8% faster at 2 threads; a plain copy is faster done by each thread on the fly).
    const int64_t width = n_units * NR, blocks = (K + detail::kKC - 1) / detail::kKC;
    thread_local AlignedVector storage;  // the caller's: workers reach it through `packed`
    storage.resize_discard(std::size_t(K * width));
    float* const packed = storage.data();
    parallel_for(blocks, detail::kKC * width, [&](int64_t b) {
      const int64_t pc = b * detail::kKC;
      B.pack(B.ctx, pc, std::min(detail::kKC, K - pc), 0, N, NR, packed + pc * width);
    });
    parallel_for(chunks, kMinParallelWork, [&](int64_t t) {
      const int64_t u0 = units * t / chunks, u1 = units * (t + 1) / chunks;
      detail::gemm_block(u0 * kMR, std::min(M, u1 * kMR), 0, N, K, A, B, C, ep, isa, NR, onto_c, packed);
    });
    return;
  }
  parallel_for(chunks, kMinParallelWork, [&](int64_t t) {
    const int64_t u0 = units * t / chunks, u1 = units * (t + 1) / chunks;
    if (split_n) detail::gemm_block(0, M, u0 * NR, std::min(N, u1 * NR), K, A, B, C, ep, isa, NR, onto_c);
    else detail::gemm_block(u0 * kMR, std::min(M, u1 * kMR), 0, N, K, A, B, C, ep, isa, NR, onto_c);
  });
}

// Convenience: packs A on the fly (weights should be packed once with pack_a instead).
inline void gemm(int64_t M, int64_t N, int64_t K, ConstMat A, ConstMat B, Mat C, const Epilogue& ep = {}) {
  if (M <= 0 || N <= 0) return;
  const PackedA pa = pack_a(M, K, A);
  gemm_packed(M, N, K, pa, matrix_source(B), C, ep);
}

}  // namespace kernels
}  // namespace cnn

CNN_KERNELS_END
