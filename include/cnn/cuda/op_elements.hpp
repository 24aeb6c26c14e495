// cnn/cuda/op_elements.hpp — what one GPU thread computes for the ops other than convolution.
//
// Each function is one output element (or one lane's share of one) of its CPU layer's definition
// (cnn/ops/*.hpp), in the CPU's order of operations where that order is fixed (pooling windows,
// softmax sums), so FP32 results match to rounding. The kernels in ops.cuh call them once per
// thread; tests/cuda_sim.hpp calls them in a loop on the CPU. All tensors are NCHW float.
#pragma once
#include <cmath>
#include <cstdint>

#include "conv_tiles.hpp"  // Float4, load4(), read_only()

namespace cnn::cuda {

// Max lets NaN through as PyTorch does (kernels::nan_max): v wins when v > m or v is NaN.
CNN_HOST_DEVICE inline float nan_max(float m, float v) { return (v > m || v != v) ? v : m; }
CNN_HOST_DEVICE inline int min_int(int a, int b) { return a < b ? a : b; }
CNN_HOST_DEVICE inline int max_int(int a, int b) { return a > b ? a : b; }

struct PoolArgs {
  const float* x;
  float* y;
  int64_t planes;  // n * c
  int h, w, oh, ow;
  int kh, kw, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
  bool max, count_include_pad;
};

// Output element i of Pool2d::forward_direct(): the window's pixels in row order.
CNN_HOST_DEVICE inline void pool_element(const PoolArgs& a, int64_t i) {
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
    int y1 = min_int(y0 + a.kh, a.h + a.pad_h), x1 = min_int(x0 + a.kw, a.w + a.pad_w);
    const int padded_area = (y1 - y0) * (x1 - x0);
    const int ys = max_int(y0, 0), xs = max_int(x0, 0);
    y1 = min_int(y1, a.h);
    x1 = min_int(x1, a.w);
    float s = 0.f;
    for (int iy = ys; iy < y1; ++iy)
      for (int ix = xs; ix < x1; ++ix) s += src[iy * a.w + ix];
    const int div = a.count_include_pad ? padded_area : (y1 - ys) * (x1 - xs);
    r = div > 0 ? s / float(div) : 0.f;
  }
  a.y[i] = r;
}

// Output element i of AdaptiveAvgPool2d: cell (oy, ox) averages rows [oy*H/OH, ceil((oy+1)*H/OH)),
// columns likewise.
CNN_HOST_DEVICE inline void adaptive_avg_element(const float* x, float* y, int h, int w, int oh, int ow, int64_t i) {
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

// Softmax over the channels of pixel i (of n * plane), like Softmax::forward(): the maximum, then
// exp and a double sum, then the scaling. y may be x.
CNN_HOST_DEVICE inline void softmax_pixel(const float* x, float* y, int c, int64_t plane, int64_t i) {
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

// Linear: a warp per output feature o, up to kLinearBatch samples per pass over its weight row.
// Lane `lane` sums its share of the row (every 32nd float, or every 32nd float4 when `vec`: every
// row and sample 16-byte aligned); the warp then adds the 32 partial sums.
constexpr int kLinearBatch = 8, kLinearWarps = 8;

struct LinearArgs {
  const float* x;     // [batch][in]
  const float* w;     // [out][in]
  const float* bias;  // [out] or nullptr
  float* y;           // [batch][out]
  int batch, in, out, act;
  float slope;
};

CNN_HOST_DEVICE inline void linear_lane_sums(const LinearArgs& a, int o, int n0, int nb, int lane, bool vec,
                                             float s[kLinearBatch]) {
  const float* row = a.w + int64_t(o) * a.in;
  CNN_UNROLL
  for (int q = 0; q < kLinearBatch; ++q) s[q] = 0.f;
  if (vec) {
    for (int k = lane * 4; k < a.in; k += 128) {
      const Float4 wv = read_only4(row + k);
      CNN_UNROLL
      for (int q = 0; q < kLinearBatch; ++q)
        if (q < nb) {
          const Float4 xv = load4(a.x + int64_t(n0 + q) * a.in + k);
          s[q] += wv.x * xv.x + wv.y * xv.y + wv.z * xv.z + wv.w * xv.w;
        }
    }
  } else {
    for (int k = lane; k < a.in; k += 32) {
      const float wv = read_only(row + k);
      CNN_UNROLL
      for (int q = 0; q < kLinearBatch; ++q)
        if (q < nb) s[q] += wv * a.x[int64_t(n0 + q) * a.in + k];
    }
  }
}

// The warp's total for sample n0 + q, written by lane q.
CNN_HOST_DEVICE inline void linear_store(const LinearArgs& a, int o, int n, float sum) {
  a.y[int64_t(n) * a.out + o] = activate(sum + (a.bias ? a.bias[o] : 0.f), a.act, a.slope);
}

}  // namespace cnn::cuda
