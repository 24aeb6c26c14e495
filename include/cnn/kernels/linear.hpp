// cnn/kernels/linear.hpp — y = act(x W^T + b) for fully connected layers.
//
// At inference the batch is small, so this is a matrix-vector product bound by reading W (VGG16's
// first classifier layer alone is 411 MB of fp32). The kernel streams each weight row once per
// block of up to 4 samples and 4 output rows, in the natural W layout, so no repacking is needed.
// The definition it is tested against is gemm_reference(); linear_forward_bf16 (weights and inputs
// in bf16, half the bytes to stream; AVX512_BF16) against gemm_bf16_reference().
#pragma once
#include "gemm.hpp"
#include "gemm_bf16.hpp"

CNN_KERNELS_BEGIN

namespace cnn::kernels {

// One block: outputs [o0, o0+no) x samples [b0, b0+nb), no, nb <= 4.
using LinearBlockFn = void (*)(int64_t K, const float* W, const float* x, int64_t o0, int64_t no, int64_t b0,
                               int64_t nb, float* acc /*[4][4]: acc[o][b]*/);

inline void linear_block_generic(int64_t K, const float* W, const float* x, int64_t o0, int64_t no, int64_t b0,
                                 int64_t nb, float* acc) {
  for (int64_t o = 0; o < no; ++o)
    for (int64_t b = 0; b < nb; ++b) {
      const float* w = W + (o0 + o) * K;
      const float* v = x + (b0 + b) * K;
      float lanes[16] = {};
      int64_t k = 0;
      for (; k + 16 <= K; k += 16)
        for (int l = 0; l < 16; ++l) lanes[l] += w[k + l] * v[k + l];
      float s = 0.f;
      for (int l = 0; l < 16; ++l) s += lanes[l];
      for (; k < K; ++k) s += w[k] * v[k];
      acc[o * 4 + b] = s;
    }
}

#ifdef CNN_X86
CNN_TARGET_AVX512 inline void linear_block_avx512(int64_t K, const float* W, const float* x, int64_t o0, int64_t no,
                                                  int64_t b0, int64_t nb, float* acc) {
  __m512 s[4][4];
  for (int o = 0; o < 4; ++o)
    for (int b = 0; b < 4; ++b) s[o][b] = _mm512_setzero_ps();
  const float* w[4];
  const float* v[4];
  for (int o = 0; o < 4; ++o) w[o] = W + (o0 + std::min<int64_t>(o, no - 1)) * K;
  for (int b = 0; b < 4; ++b) v[b] = x + (b0 + std::min<int64_t>(b, nb - 1)) * K;
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = K - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (K - k)) - 1);
    __m512 xv[4];
#pragma GCC unroll 4
    for (int b = 0; b < 4; ++b) xv[b] = _mm512_maskz_loadu_ps(m, v[b] + k);
#pragma GCC unroll 4
    for (int o = 0; o < 4; ++o) {
      _mm_prefetch(reinterpret_cast<const char*>(w[o] + k + 512), _MM_HINT_T0);  // 2 KiB ahead: +10% bandwidth
      const __m512 wv = _mm512_maskz_loadu_ps(m, w[o] + k);
#pragma GCC unroll 4
      for (int b = 0; b < 4; ++b) s[o][b] = _mm512_fmadd_ps(wv, xv[b], s[o][b]);
    }
  }
  for (int o = 0; o < no; ++o)
    for (int b = 0; b < nb; ++b) acc[o * 4 + b] = _mm512_reduce_add_ps(s[o][b]);
}

CNN_TARGET_AVX2 inline void linear_block_avx2(int64_t K, const float* W, const float* x, int64_t o0, int64_t no,
                                              int64_t b0, int64_t nb, float* acc) {
  // 4 outputs x 2 samples at a time (8 of the 16 YMM registers accumulate).
  for (int64_t bb = 0; bb < nb; bb += 2) {
    const int64_t nb2 = std::min<int64_t>(2, nb - bb);
    __m256 s[4][2];
    for (int o = 0; o < 4; ++o) s[o][0] = s[o][1] = _mm256_setzero_ps();
    const float* w[4];
    const float* v[2];
    for (int o = 0; o < 4; ++o) w[o] = W + (o0 + std::min<int64_t>(o, no - 1)) * K;
    for (int b = 0; b < 2; ++b) v[b] = x + (b0 + bb + std::min<int64_t>(b, nb2 - 1)) * K;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
      const __m256 x0 = _mm256_loadu_ps(v[0] + k), x1 = _mm256_loadu_ps(v[1] + k);
#pragma GCC unroll 4
      for (int o = 0; o < 4; ++o) {
        const __m256 wv = _mm256_loadu_ps(w[o] + k);
        s[o][0] = _mm256_fmadd_ps(wv, x0, s[o][0]);
        s[o][1] = _mm256_fmadd_ps(wv, x1, s[o][1]);
      }
    }
    for (int o = 0; o < no; ++o)
      for (int b = 0; b < nb2; ++b) {
        alignas(32) float l[8];
        _mm256_store_ps(l, s[o][b]);
        float t = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
        for (int64_t kk = k; kk < K; ++kk) t += w[o][kk] * v[b][kk];
        acc[o * 4 + bb + b] = t;
      }
  }
}
#endif

inline LinearBlockFn linear_block_for(Isa isa) {
#ifdef CNN_X86
  if (isa == Isa::AVX512) return linear_block_avx512;
  if (isa == Isa::AVX2) return linear_block_avx2;
#endif
  (void)isa;
  return linear_block_generic;
}

// The blocks of 4 outputs x 4 samples shared out to the threads; block(o0, no, b0, nb, acc) sums one.
template <class Block>
inline void linear_blocks(int64_t M, int64_t N, int64_t K, float* y, const Epilogue& ep, const Block& block) {
  const int64_t oblocks = (M + 3) / 4;
  parallel_for(oblocks, 4 * K * N, [&](int64_t ob) {
    const int64_t o0 = ob * 4, no = std::min<int64_t>(4, M - o0);
    float acc[16];
    for (int64_t b0 = 0; b0 < N; b0 += 4) {
      const int64_t nb = std::min<int64_t>(4, N - b0);
      block(o0, no, b0, nb, acc);
      for (int64_t o = 0; o < no; ++o)
        for (int64_t b = 0; b < nb; ++b) y[(b0 + b) * M + o0 + o] = ep.apply(acc[o * 4 + b], o0 + o);
    }
  });
}

// y[b * M + o] = ep(sum_k W[o * K + k] * x[b * K + k]) for o < M outputs and b < N samples.
inline void linear_forward(int64_t M, int64_t N, int64_t K, const float* W, const float* x, float* y,
                           const Epilogue& ep) {
  const LinearBlockFn block = linear_block_for(active_isa());
  linear_blocks(M, N, K, y, ep, [&](int64_t o0, int64_t no, int64_t b0, int64_t nb, float* acc) {
    block(K, W, x, o0, no, b0, nb, acc);
  });
}

// W (M x K, row-major) in bf16 with each row padded to an even length: k pairs lie side by side,
// as vdpbf16ps reads them.
struct LinearBf16Weights {
  int64_t M = 0, K = 0, row = 0;  // row = K rounded up to even
  std::vector<uint16_t> values;
};
inline LinearBf16Weights pack_linear_bf16(int64_t M, int64_t K, const float* W) {
  LinearBf16Weights w;
  w.M = M, w.K = K, w.row = (K + 1) / 2 * 2;
  w.values.assign(std::size_t(M * w.row), 0);
  for (int64_t o = 0; o < M; ++o)
    for (int64_t k = 0; k < K; ++k) w.values[std::size_t(o * w.row + k)] = to_bf16(W[o * K + k]);
  return w;
}

#ifdef CNN_X86
// linear_block_avx512 with bf16 operands: 16 k pairs of 4 outputs x 4 samples per step.
CNN_TARGET_AVX512_BF16 inline void linear_block_bf16(int64_t row, const uint16_t* W, const uint16_t* x, int64_t o0,
                                                     int64_t no, int64_t b0, int64_t nb, float* acc) {
  __m512 s[4][4];
  for (int o = 0; o < 4; ++o)
    for (int b = 0; b < 4; ++b) s[o][b] = _mm512_setzero_ps();
  const uint16_t* w[4];
  const uint16_t* v[4];
  for (int o = 0; o < 4; ++o) w[o] = W + (o0 + std::min<int64_t>(o, no - 1)) * row;
  for (int b = 0; b < 4; ++b) v[b] = x + (b0 + std::min<int64_t>(b, nb - 1)) * row;
  for (int64_t k = 0; k < row; k += 32) {
    const int64_t pairs = (row - k) / 2;
    const __mmask16 m = pairs >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << pairs) - 1);
    __m512bh xv[4];
#pragma GCC unroll 4
    for (int b = 0; b < 4; ++b) xv[b] = (__m512bh)_mm512_maskz_loadu_epi32(m, v[b] + k);
#pragma GCC unroll 4
    for (int o = 0; o < 4; ++o) {
      _mm_prefetch(reinterpret_cast<const char*>(w[o] + k + 1024), _MM_HINT_T0);  // 2 KiB ahead, as fp32
      const __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi32(m, w[o] + k);
#pragma GCC unroll 4
      for (int b = 0; b < 4; ++b) s[o][b] = _mm512_dpbf16_ps(s[o][b], wv, xv[b]);
    }
  }
  for (int o = 0; o < no; ++o)
    for (int b = 0; b < nb; ++b) acc[o * 4 + b] = _mm512_reduce_add_ps(s[o][b]);
}
#endif

// linear_forward with W and x rounded to bf16, sums in fp32 (needs bf16_available()).
inline void linear_forward_bf16(int64_t N, const LinearBf16Weights& W, const float* x, float* y, const Epilogue& ep) {
  if (!bf16_available()) fail("linear_bf16: this CPU has no AVX512_BF16 (or the active ISA is not AVX-512)");
#ifdef CNN_X86
  const int64_t M = W.M, K = W.K, row = W.row;
  thread_local std::vector<uint16_t> xb;
  xb.assign(std::size_t(N * row), 0);
  for (int64_t b = 0; b < N; ++b)
    for (int64_t k = 0; k < K; ++k) xb[std::size_t(b * row + k)] = to_bf16(x[b * K + k]);
  const uint16_t* xs = xb.data();
  linear_blocks(M, N, K, y, ep, [&](int64_t o0, int64_t no, int64_t b0, int64_t nb, float* acc) {
    linear_block_bf16(row, W.values.data(), xs, o0, no, b0, nb, acc);
  });
#else
  (void)N, (void)x, (void)y, (void)ep;
#endif
}

}  // namespace cnn::kernels

CNN_KERNELS_END
