// cnn/kernels/gemm.hpp — single-precision matrix multiply, the workhorse of Conv2d and Linear.
//
//   C = act(A * B + bias)      A: M x K, B: K x N, C: M x N
//
// Every operand is a strided matrix (element (r, c) at data[r * rs + c * cs]), so one routine
// serves convolution (weights x im2col columns), 1x1 convolution (weights x the input itself) and
// Linear (weights x transposed activations) without copies at the call site.
//
// gemm_reference() is the plain definition; gemm() is the cache-blocked, packed, threaded version.
// tests/test_gemm.cpp checks one against the other on random shapes and strides.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../parallel.hpp"
#include "../tensor.hpp"

namespace cnn {

enum class Activation { None, ReLU, LeakyReLU, Sigmoid };

inline const char* activation_name(Activation a) {
  switch (a) {
    case Activation::None: return "none";
    case Activation::ReLU: return "ReLU";
    case Activation::LeakyReLU: return "LeakyReLU";
    case Activation::Sigmoid: return "Sigmoid";
  }
  return "?";
}

// What to do with each finished output element: add a bias (per row), then an activation.
struct Epilogue {
  const float* bias = nullptr;  // length M, or nullptr
  Activation act = Activation::None;
  float slope = 0.01f;  // LeakyReLU negative slope

  float apply(float v, int64_t row) const {
    if (bias) v += bias[row];
    switch (act) {
      case Activation::None: return v;
      case Activation::ReLU: return v > 0.f ? v : 0.f;
      case Activation::LeakyReLU: return v > 0.f ? v : v * slope;
      case Activation::Sigmoid: return 1.f / (1.f + std::exp(-v));
    }
    return v;
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

namespace kernels {

// The definition: one dot product per output element, k in order.
inline void gemm_reference(int64_t M, int64_t N, int64_t K, ConstMat A, ConstMat B, Mat C,
                           const Epilogue& ep = {}) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float s = 0.f;
      for (int64_t k = 0; k < K; ++k) s += A(i, k) * B(k, j);
      C(i, j) = ep.apply(s, i);
    }
}

namespace detail {

// Register tile and cache blocks of the portable kernel (a later ISA-specific kernel may differ).
constexpr int64_t kMR = 4, kNR = 16;
constexpr int64_t kKC = 256, kMC = 128, kNC = 1024;

// Packs rows [0, mc) x k [0, kc) of A into kMR-row panels: panel p holds A(p*kMR + r, k) at
// [p][k][r], zero-padded past mc.
inline void pack_a(int64_t mc, int64_t kc, ConstMat A, float* out) {
  for (int64_t p = 0; p < mc; p += kMR) {
    int64_t rows = std::min(kMR, mc - p);
    for (int64_t k = 0; k < kc; ++k, out += kMR) {
      for (int64_t r = 0; r < rows; ++r) out[r] = A(p + r, k);
      for (int64_t r = rows; r < kMR; ++r) out[r] = 0.f;
    }
  }
}

// Packs k [0, kc) x columns [0, nc) of B into kNR-column panels, [p][k][c], zero-padded.
inline void pack_b(int64_t kc, int64_t nc, ConstMat B, float* out) {
  for (int64_t p = 0; p < nc; p += kNR) {
    int64_t cols = std::min(kNR, nc - p);
    for (int64_t k = 0; k < kc; ++k, out += kNR) {
      if (B.cs == 1 && cols == kNR) {
        const float* src = &B(k, p);
        for (int64_t c = 0; c < kNR; ++c) out[c] = src[c];
      } else {
        for (int64_t c = 0; c < cols; ++c) out[c] = B(k, p + c);
        for (int64_t c = cols; c < kNR; ++c) out[c] = 0.f;
      }
    }
  }
}

// acc[kMR][kNR] = sum over k of a[k][r] * b[k][c]; then merged into C.
inline void micro_kernel(int64_t kc, const float* a, const float* b, Mat C, int64_t row0, int64_t col0,
                         int64_t rows, int64_t cols, bool first, bool last, const Epilogue& ep) {
  float acc[kMR][kNR] = {};
  for (int64_t k = 0; k < kc; ++k, a += kMR, b += kNR)
    for (int64_t r = 0; r < kMR; ++r) {
      const float av = a[r];
      for (int64_t c = 0; c < kNR; ++c) acc[r][c] += av * b[c];
    }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      float& dst = C(row0 + r, col0 + c);
      float v = first ? acc[r][c] : dst + acc[r][c];
      dst = last ? ep.apply(v, row0 + r) : v;
    }
}

// Single-threaded blocked GEMM over the whole given range.
inline void gemm_serial(int64_t M, int64_t N, int64_t K, ConstMat A, ConstMat B, Mat C, const Epilogue& ep) {
  thread_local std::vector<float> a_pack, b_pack;
  a_pack.resize(static_cast<std::size_t>(kMC * kKC));
  b_pack.resize(static_cast<std::size_t>(kKC * (kNC + kNR)));
  if (K == 0) {  // empty sum: C = act(bias)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C(i, j) = ep.apply(0.f, i);
    return;
  }
  for (int64_t jc = 0; jc < N; jc += kNC) {
    const int64_t nc = std::min(kNC, N - jc);
    for (int64_t pc = 0; pc < K; pc += kKC) {
      const int64_t kc = std::min(kKC, K - pc);
      const bool first = pc == 0, last = pc + kc == K;
      pack_b(kc, nc, ConstMat{&B(pc, jc), B.rs, B.cs}, b_pack.data());
      for (int64_t ic = 0; ic < M; ic += kMC) {
        const int64_t mc = std::min(kMC, M - ic);
        pack_a(mc, kc, ConstMat{&A(ic, pc), A.rs, A.cs}, a_pack.data());
        Epilogue block_ep = ep;
        if (block_ep.bias) block_ep.bias += ic;
        Mat Cb{&C(ic, jc), C.rs, C.cs};
        for (int64_t jr = 0; jr < nc; jr += kNR)
          for (int64_t ir = 0; ir < mc; ir += kMR)
            micro_kernel(kc, a_pack.data() + ir * kc, b_pack.data() + jr * kc, Cb, ir, jr,
                         std::min(kMR, mc - ir), std::min(kNR, nc - jr), first, last, block_ep);
      }
    }
  }
}

}  // namespace detail

// Blocked, packed GEMM. Threads split the larger of M and N into contiguous ranges, so each output
// element is summed by one thread in the same order whatever the thread count.
inline void gemm(int64_t M, int64_t N, int64_t K, ConstMat A, ConstMat B, Mat C, const Epilogue& ep = {}) {
  if (M <= 0 || N <= 0) return;
  const int64_t work = M * N * std::max<int64_t>(K, 1);
  const int threads = work >= 4 * kMinParallelWork ? num_threads() : 1;
  const bool split_n = N >= M;
  const int64_t extent = split_n ? N : M;
  const int64_t unit = split_n ? detail::kNR : detail::kMR;
  const int64_t units = (extent + unit - 1) / unit;
  const int64_t chunks = std::min<int64_t>(threads, units);
  if (chunks <= 1) return detail::gemm_serial(M, N, K, A, B, C, ep);
  parallel_for(chunks, kMinParallelWork, [&](int64_t t) {
    const int64_t begin = units * t / chunks * unit, end = std::min(extent, units * (t + 1) / chunks * unit);
    if (begin >= end) return;
    if (split_n) {
      detail::gemm_serial(M, end - begin, K, A, ConstMat{&B(0, begin), B.rs, B.cs},
                          Mat{&C(0, begin), C.rs, C.cs}, ep);
    } else {
      Epilogue e = ep;
      if (e.bias) e.bias += begin;
      detail::gemm_serial(end - begin, N, K, ConstMat{&A(begin, 0), A.rs, A.cs}, B,
                          Mat{&C(begin, 0), C.rs, C.cs}, e);
    }
  });
}

}  // namespace kernels
}  // namespace cnn
