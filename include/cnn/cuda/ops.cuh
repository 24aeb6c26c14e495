// cnn/cuda/ops.cuh — the GPU kernels of every op but the convolution (compiled by nvcc only): one
// thread per output element of op_elements.hpp's functions, except the linear layer's warps.
#pragma once
#include <cuda_runtime.h>

#include "launch.hpp"

namespace cnn::cuda {

constexpr int kOpThreads = 256;
inline unsigned blocks_for(int64_t n, int per_block = kOpThreads) {
  return unsigned((n + per_block - 1) / per_block);
}

__global__ void pool2d(PoolArgs a) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < a.planes * a.oh * a.ow) pool_element(a, i);
}

__global__ void adaptive_avg_pool2d(const float* x, float* y, int64_t planes, int h, int w, int oh, int ow) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < planes * oh * ow) adaptive_avg_element(x, y, h, w, oh, ow, i);
}

// y = act(a + b); y may be a (in place).
__global__ void add_activate(const float* a, const float* b, float* y, int64_t n, int act, float slope) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = activate(a[i] + b[i], act, slope);
}

// y = act(x); y may be x.
__global__ void activate_all(const float* x, float* y, int64_t n, int act, float slope) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = activate(x[i], act, slope);
}

// A BatchNorm that could not be folded into a convolution: y = x * scale[c] + shift[c].
__global__ void channel_affine(const float* x, float* y, const float* scale, const float* shift, int64_t n, int c,
                               int64_t plane) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int ch = int((i / plane) % c);
  y[i] = x[i] * scale[ch] + shift[ch];
}

__global__ void softmax_channels(const float* x, float* y, int n, int c, int64_t plane) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < int64_t(n) * plane) softmax_pixel(x, y, c, plane, i);
}

// A warp per output feature: it reads the feature's weight row once (coalesced) for up to
// kLinearBatch samples, then the next samples. The layer is bound by reading the weights, which
// GEMM tiles would also read once per 128 features, but in too few blocks for a VGG classifier at
// small batch.
__global__ void __launch_bounds__(kLinearWarps * 32) linear_rows(LinearArgs a) {
  const int lane = threadIdx.x % 32, o = blockIdx.x * kLinearWarps + threadIdx.x / 32;
  if (o >= a.out) return;
  const bool vec = a.in % 4 == 0 && reinterpret_cast<uintptr_t>(a.x) % 16 == 0 && reinterpret_cast<uintptr_t>(a.w) % 16 == 0;
  for (int n0 = 0; n0 < a.batch; n0 += kLinearBatch) {
    const int nb = min(kLinearBatch, a.batch - n0);
    float s[kLinearBatch];
    linear_lane_sums(a, o, n0, nb, lane, vec, s);
#pragma unroll
    for (int q = 0; q < kLinearBatch; ++q)
#pragma unroll
      for (int d = 16; d > 0; d /= 2) s[q] += __shfl_xor_sync(0xffffffffu, s[q], d);
#pragma unroll
    for (int q = 0; q < kLinearBatch; ++q)
      if (lane == q && q < nb) linear_store(a, o, n0 + q, s[q]);
  }
}

}  // namespace cnn::cuda
