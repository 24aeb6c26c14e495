// cnn/cuda/ops.cuh — the GPU kernels of every op but the convolution (compiled by nvcc only).
//
// Each follows its CPU layer's definition (cnn/ops/*.hpp) element by element, in the same order
// of operations where the CPU's order is fixed (pooling windows, softmax sums), so that FP32 results
// match to rounding. All tensors are NCHW float; one thread per output element unless said.
#pragma once
#include <cuda_runtime.h>

#include "launch.hpp"

namespace cnn::cuda {

constexpr int kOpThreads = 256;
inline unsigned blocks_for(int64_t n, int per_block = kOpThreads) {
  return unsigned((n + per_block - 1) / per_block);
}

// Max lets NaN through as PyTorch does (kernels::nan_max): v wins when v > m or v is NaN.
__device__ inline float nan_max(float m, float v) { return (v > m || v != v) ? v : m; }


// Pool2d::forward_direct(): the window's pixels in row order.
__global__ void pool2d(PoolArgs a) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= a.planes * a.oh * a.ow) return;
  const int64_t plane = i / (int64_t(a.oh) * a.ow);
  const int p = int(i - plane * a.oh * a.ow), oy = p / a.ow, ox = p - oy * a.ow;
  const float* src = a.x + plane * a.h * a.w;
  const int y0 = oy * a.stride_h - a.pad_h, x0 = ox * a.stride_w - a.pad_w;
  float r;
  if (a.max) {
    r = -INFINITY;
    for (int ky = 0; ky < a.kh; ++ky) {
      const int iy = y0 + ky * a.dilation_h;
      if (iy < 0 || iy >= a.h) continue;
      for (int kx = 0; kx < a.kw; ++kx) {
        const int ix = x0 + kx * a.dilation_w;
        if (ix >= 0 && ix < a.w) r = nan_max(r, src[iy * a.w + ix]);
      }
    }
  } else {
    int y1 = min(y0 + a.kh, a.h + a.pad_h), x1 = min(x0 + a.kw, a.w + a.pad_w);
    const int padded_area = (y1 - y0) * (x1 - x0);
    const int ys = max(y0, 0), xs = max(x0, 0);
    y1 = min(y1, a.h);
    x1 = min(x1, a.w);
    float s = 0.f;
    for (int iy = ys; iy < y1; ++iy)
      for (int ix = xs; ix < x1; ++ix) s += src[iy * a.w + ix];
    const int div = a.count_include_pad ? padded_area : (y1 - ys) * (x1 - xs);
    r = div > 0 ? s / float(div) : 0.f;
  }
  a.y[i] = r;
}

// AdaptiveAvgPool2d: output cell (oy, ox) averages rows [oy*H/OH, ceil((oy+1)*H/OH)), same for x.
__global__ void adaptive_avg_pool2d(const float* x, float* y, int64_t planes, int h, int w, int oh, int ow) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= planes * oh * ow) return;
  const int64_t plane = i / (int64_t(oh) * ow);
  const int p = int(i - plane * oh * ow), oy = p / ow, ox = p - oy * ow;
  const float* src = x + plane * h * w;
  const int y0 = oy * h / oh, y1 = ((oy + 1) * h + oh - 1) / oh;
  const int x0 = ox * w / ow, x1 = ((ox + 1) * w + ow - 1) / ow;
  float s = 0.f;
  for (int iy = y0; iy < y1; ++iy)
    for (int ix = x0; ix < x1; ++ix) s += src[iy * w + ix];
  y[i] = s / float((y1 - y0) * (x1 - x0));
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

// Softmax over the channels of each pixel: one thread per (n, pixel), like Softmax::forward()
// (the maximum, then exp and a double sum, then the scaling). y may be x.
__global__ void softmax_channels(const float* x, float* y, int n, int c, int64_t plane) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= int64_t(n) * plane) return;
  const int64_t s = i / plane, p = i - s * plane;
  const float* in = x + s * c * plane + p;
  float* out = y + s * c * plane + p;
  float m = -INFINITY;
  for (int k = 0; k < c; ++k) m = fmaxf(m, in[k * plane]);
  double sum = 0;
  for (int k = 0; k < c; ++k) {
    const float e = expf(in[k * plane] - m);
    out[k * plane] = e;
    sum += e;
  }
  const float inv = float(1.0 / sum);
  for (int k = 0; k < c; ++k) out[k * plane] *= inv;
}

// Linear: y[n][o] = act(bias[o] + sum_k w[o][k] x[n][k]). A warp per output feature reads its
// weight row once (coalesced) for up to kLinearBatch samples, then the next samples: the layer is
// bound by reading the weights, which the GEMM tiles would read once per 128 features but with few
// blocks for a VGG classifier at small batch.
constexpr int kLinearBatch = 8, kLinearWarps = 8;

__global__ void __launch_bounds__(kLinearWarps * 32)
    linear_rows(const float* x, const float* w, const float* bias, float* y, int batch, int in, int out, int act,
                float slope) {
  const int lane = threadIdx.x % 32, o = blockIdx.x * kLinearWarps + threadIdx.x / 32;
  if (o >= out) return;
  const float* row = w + int64_t(o) * in;
  // float4 loads where every row and sample starts 16-byte aligned.
  const bool vec = in % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0;
  for (int n0 = 0; n0 < batch; n0 += kLinearBatch) {
    const int nb = min(kLinearBatch, batch - n0);
    float s[kLinearBatch];
#pragma unroll
    for (int q = 0; q < kLinearBatch; ++q) s[q] = 0.f;
    if (vec) {
      for (int k = lane * 4; k < in; k += 128) {
        const float4 wv = __ldg(reinterpret_cast<const float4*>(row + k));
#pragma unroll
        for (int q = 0; q < kLinearBatch; ++q)
          if (q < nb) {
            const float4 xv = *reinterpret_cast<const float4*>(x + int64_t(n0 + q) * in + k);
            s[q] += wv.x * xv.x + wv.y * xv.y + wv.z * xv.z + wv.w * xv.w;
          }
      }
    } else {
      for (int k = lane; k < in; k += 32) {
        const float wv = __ldg(row + k);
#pragma unroll
        for (int q = 0; q < kLinearBatch; ++q)
          if (q < nb) s[q] += wv * x[int64_t(n0 + q) * in + k];
      }
    }
#pragma unroll
    for (int q = 0; q < kLinearBatch; ++q)
#pragma unroll
      for (int d = 16; d > 0; d /= 2) s[q] += __shfl_xor_sync(0xffffffffu, s[q], d);
    if (lane < nb) {
      float v = s[0];
#pragma unroll
      for (int q = 1; q < kLinearBatch; ++q)
        if (lane == q) v = s[q];
      y[int64_t(n0 + lane) * out + o] = activate(v + (bias ? bias[o] : 0.f), act, slope);
    }
  }
}

}  // namespace cnn::cuda
