// cnn/kernels/gemm_bf16.hpp — matrix multiply with bf16 operands and fp32 sums (AVX512_BF16).
//
//   C = act(A * B + bias)      A: M x K, B: K x N, C: M x N (fp32 in and out)
//
// A and B are rounded to bf16 (8-bit mantissa, round to nearest even); products are exact in fp32
// and summed in fp32 by vdpbf16ps, two k at a time. A (the weights) is packed once into 8-row
// panels of k pairs; B is packed per block by the fp32 GEMM's BSource, then converted to k pairs.
// The blocking and the epilogue are the fp32 GEMM's (gemm.hpp); only the micro-kernel differs.
//
// gemm_bf16_reference() is the plain definition (the same rounding, sums in double);
// tests/test_gemm.cpp compares the two on random shapes. bf16_available(): the CPU has AVX512_BF16
// and the active ISA is AVX-512 (set_isa); gemm_bf16_packed fails otherwise.
#pragma once
#include <cstring>

#include "gemm.hpp"

CNN_KERNELS_BEGIN

namespace cnn {
namespace kernels {

// fp32 -> bf16, rounded to nearest even (as vcvtne2ps2bf16); NaN stays a quiet NaN.
inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
inline float from_bf16(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float round_bf16(float f) { return from_bf16(to_bf16(f)); }

// Whether this CPU has AVX512_BF16 (CPUID.(7,1):EAX bit 5), checked once.
inline bool cpu_has_avx512_bf16() {
#ifdef CNN_X86
  static const bool bf16 = [] {
    unsigned a, b, c, d;
    if (detect_isa() != Isa::AVX512 || !__get_cpuid_count(7, 1, &a, &b, &c, &d)) return false;
    return (a & (1u << 5)) != 0;
  }();
  return bf16;
#else
  return false;
#endif
}
inline bool bf16_available() { return active_isa() == Isa::AVX512 && cpu_has_avx512_bf16(); }

// A in ceil(M/8) panels of k pairs: panel p holds, for pair q and row r, one 32-bit word with
// bf16(A(8p + r, 2q)) in its low half and bf16(A(8p + r, 2q + 1)) in its high half (zero past K
// and past M).
struct PackedA16 {
  int64_t M = 0, K = 0, pairs = 0;  // pairs = ceil(K / 2)
  std::vector<uint32_t> words;
  const uint32_t* panel(int64_t p, int64_t q0) const { return words.data() + (p * pairs + q0) * kMR; }
};

inline PackedA16 pack_a_bf16(int64_t M, int64_t K, ConstMat A) {
  PackedA16 pa;
  pa.M = M, pa.K = K, pa.pairs = (K + 1) / 2;
  const int64_t panels = (M + kMR - 1) / kMR;
  pa.words.assign(std::size_t(std::max<int64_t>(panels * pa.pairs * kMR, 1)), 0u);
  uint32_t* out = pa.words.data();
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t q = 0; q < pa.pairs; ++q, out += kMR)
      for (int64_t r = 0; r < kMR; ++r) {
        const int64_t row = p * kMR + r, k = 2 * q;
        if (row >= M) continue;
        const uint32_t lo = to_bf16(A(row, k)), hi = k + 1 < K ? to_bf16(A(row, k + 1)) : 0u;
        out[r] = lo | hi << 16;
      }
  return pa;
}

// The definition: A and B rounded to bf16, each output's products summed in double, then the epilogue.
inline void gemm_bf16_reference(int64_t M, int64_t N, int64_t K, ConstMat A, ConstMat B, Mat C, const Epilogue& ep = {}) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += double(round_bf16(A(i, k))) * double(round_bf16(B(k, j)));
      C(i, j) = ep.apply(float(s), i, &C(i, j));
    }
}

#if defined(CNN_X86)
#define CNN_TARGET_AVX512_BF16 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512bf16,avx2,fma")))

namespace detail {

// A packed B block of kc rows in 32-column panels ([panel][k][32] fp32, gemm.hpp's layout) as k
// pairs: [panel][q][32] 32-bit words, bf16 of row 2q in the low half, of row 2q + 1 (0 past kc) in
// the high half.
CNN_TARGET_AVX512_BF16 inline void b_block_to_pairs(const float* b, int64_t kc, int64_t panels, uint32_t* out) {
  // half 2j of a word pair takes half j (the low row's column j), half 2j + 1 half 16 + j (the high row's)
  alignas(64) static const uint16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                       8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i interleave = _mm512_load_si512(kInterleave);
  const int64_t pairs = (kc + 1) / 2;
  for (int64_t p = 0; p < panels; ++p) {
    const float* bp = b + p * kc * 32;
    uint32_t* op = out + p * pairs * 32;
    for (int64_t q = 0; q < pairs; ++q) {
      const float* lo = bp + 2 * q * 32;
      const bool has_hi = 2 * q + 1 < kc;
      for (int h = 0; h < 2; ++h) {  // columns 16h .. 16h + 15
        const __m512 l = _mm512_load_ps(lo + 16 * h);
        const __m512 u = has_hi ? _mm512_load_ps(lo + 32 + 16 * h) : _mm512_setzero_ps();
        // halves 0-15: bf16(l), 16-31: bf16(u); interleaved into (l_j, u_j) words
        const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(u, l);
        _mm512_store_si512(op + q * 32 + 16 * h, _mm512_permutexvar_epi16(interleave, both));
      }
    }
  }
}

// c (+)= the 8 x 32 tile of sum_q a[q][r] . b[q][j] (bf16 pairs, fp32 sums); as micro_avx512_t.
CNN_TARGET_AVX512_BF16 inline void micro_bf16(int64_t pairs, const uint32_t* a, const uint32_t* b, float* c,
                                              int64_t ldc, int64_t rows, int64_t cols, bool first, bool last,
                                              const Epilogue& ep, int64_t row0) {
  __m512 acc[kMR][2];
#pragma GCC unroll 8
  for (int r = 0; r < kMR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t q = 0; q < pairs; ++q, a += kMR, b += 32) {
    if ((q & 1) == 0) _mm_prefetch(reinterpret_cast<const char*>(a + 256), _MM_HINT_T0);
    const __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
#pragma GCC unroll 8
    for (int r = 0; r < kMR; ++r) {
      const __m512bh ar = (__m512bh)_mm512_set1_epi32(int(a[r]));
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, b1);
    }
  }
  store_tile_avx512<2>(acc, c, ldc, rows, cols, first, last, ep, row0);
}

// One thread's share, rows [m0, m1) x columns [n0, n1), as gemm_block.
inline void gemm_bf16_block(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, const PackedA16& A, BSource B,
                            Mat C, const Epilogue& ep, bool onto_c) {
  constexpr int64_t NR = 32;
  static_assert(kKC % 2 == 0, "K blocks must hold whole k pairs");
  thread_local AlignedVector b_pack, tile, pairs_storage;  // pairs: 32-bit words in float-sized slots
  b_pack.resize_discard(std::size_t(kKC * (kNC + NR)));
  tile.resize_discard(std::size_t(kMR * NR));
  pairs_storage.resize_discard(std::size_t(kKC / 2 * (kNC + NR)));
  uint32_t* const pairs_buf = reinterpret_cast<uint32_t*>(pairs_storage.data());  // read and written by intrinsics only
  const bool direct = C.cs == 1;
  for (int64_t jc = n0; jc < n1; jc += kNC) {
    const int64_t nc = std::min(kNC, n1 - jc), panels = (nc + NR - 1) / NR;
    for (int64_t pc = 0; pc < K; pc += kKC) {
      const int64_t kc = std::min(kKC, K - pc), pairs = (kc + 1) / 2;
      const bool first = pc == 0 && !onto_c, last = pc + kc == K;
      B.pack(B.ctx, pc, kc, jc, nc, NR, b_pack.data());
      b_block_to_pairs(b_pack.data(), kc, panels, pairs_buf);
      for (int64_t jr = 0; jr < nc; jr += NR) {
        const uint32_t* bp = pairs_buf + jr * pairs;
        const int64_t cols = std::min(NR, nc - jr);
        for (int64_t row = m0; row < m1; row += kMR) {
          const int64_t rows = std::min(kMR, A.M - row);
          const uint32_t* ap = A.panel(row / kMR, pc / 2);
          if (direct) {
            micro_bf16(pairs, ap, bp, &C(row, jc + jr), C.rs, rows, cols, first, last, ep, row);
            continue;
          }
          micro_bf16(pairs, ap, bp, tile.data(), NR, rows, cols, true, false, ep, row);
          scatter_tile(tile.data(), NR, C, row, jc + jr, rows, cols, first, last, ep);
        }
      }
    }
  }
}
}  // namespace detail
#endif

// C = act(A * B + bias) in bf16 with fp32 sums, A packed by pack_a_bf16. Threads split N (in
// 32-column panels) or, when N is narrow, M; each output is summed by one thread in a fixed order,
// so results do not depend on the thread count.
inline void gemm_bf16_packed(int64_t M, int64_t N, int64_t K, const PackedA16& A, BSource B, Mat C,
                             const Epilogue& ep_in = {}) {
  if (M <= 0 || N <= 0) return;
  if (A.M != M || A.K != K) fail("gemm_bf16: packed A is ", A.M, "x", A.K, ", expected ", M, "x", K);
  if (!bf16_available()) fail("gemm_bf16: this CPU has no AVX512_BF16 (or the active ISA is not AVX-512)");
#if defined(CNN_X86)
  Epilogue ep;
  bool done;
  const bool onto_c = detail::gemm_prologue(M, N, K, C, ep_in, ep, done);
  if (done) return;
  const int64_t n_units = (N + 31) / 32, m_units = (M + kMR - 1) / kMR;
  const int threads = M * N * K >= 8 * kMinParallelWork ? num_threads() : 1;
  const bool split_n = n_units >= threads || n_units >= m_units;
  const int64_t units = split_n ? n_units : m_units;
  const int64_t chunks = std::min<int64_t>(split_n ? 3 * threads : threads, units);
  parallel_for(std::max<int64_t>(chunks, 1), kMinParallelWork, [&](int64_t t) {
    const int64_t u0 = units * t / chunks, u1 = units * (t + 1) / chunks;
    if (split_n) detail::gemm_bf16_block(0, M, u0 * 32, std::min(N, u1 * 32), K, A, B, C, ep, onto_c);
    else detail::gemm_bf16_block(u0 * kMR, std::min(M, u1 * kMR), 0, N, K, A, B, C, ep, onto_c);
  });
#else
  (void)B, (void)C, (void)ep_in;
#endif
}

// Convenience: packs A on the fly.
inline void gemm_bf16(int64_t M, int64_t N, int64_t K, ConstMat A, ConstMat B, Mat C, const Epilogue& ep = {}) {
  if (M <= 0 || N <= 0) return;
  const PackedA16 pa = pack_a_bf16(M, K, A);
  gemm_bf16_packed(M, N, K, pa, matrix_source(B), C, ep);
}

}  // namespace kernels
}  // namespace cnn

CNN_KERNELS_END
