// cnn/cuda/kernels.cuh — the definitions of the launchers in launch.hpp. Compile it in exactly
// one .cu file (the facecnn::cuda library's is cmake/facecnn_cuda_kernels.cu).
#pragma once
#include "conv.cuh"
#include "ops.cuh"

namespace cnn::cuda {

cudaError_t launch_conv(Precision precision, const ConvArgs& a, cudaStream_t stream) {
  const ConvGeometry& g = a.g;
  const dim3 grid(unsigned((g.columns() + kTileN - 1) / kTileN), unsigned(g.m_padded / kTileM),
                  unsigned(g.groups * a.splits));
  switch (precision) {
    case Precision::FP32: conv_fp32<<<grid, kConvThreads, 0, stream>>>(a); break;
    case Precision::TF32: conv_mma<Tf32><<<grid, kConvThreads, 0, stream>>>(a); break;
    case Precision::BF16: conv_mma<Bf16Mma><<<grid, kConvThreads, 0, stream>>>(a); break;
  }
  if (a.splits > 1) conv_split_sum<<<blocks_for(output_numel(g)), kOpThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t launch_linear(const LinearArgs& a, cudaStream_t stream) {
  const unsigned blocks = unsigned((a.out + kLinearWarps - 1) / kLinearWarps);
  linear_rows<<<blocks, kLinearWarps * 32, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t launch_pool(const PoolArgs& a, cudaStream_t stream) {
  pool2d<<<blocks_for(a.planes * a.oh * a.ow), kOpThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t launch_adaptive_avg_pool(const float* x, float* y, int64_t planes, int h, int w, int oh, int ow,
                                     cudaStream_t stream) {
  adaptive_avg_pool2d<<<blocks_for(planes * oh * ow), kOpThreads, 0, stream>>>(x, y, planes, h, w, oh, ow);
  return cudaGetLastError();
}

cudaError_t launch_add(const float* a, const float* b, float* y, int64_t n, int act, float slope, cudaStream_t stream) {
  add_activate<<<blocks_for(n), kOpThreads, 0, stream>>>(a, b, y, n, act, slope);
  return cudaGetLastError();
}

cudaError_t launch_activate(const float* x, float* y, int64_t n, int act, float slope, cudaStream_t stream) {
  activate_all<<<blocks_for(n), kOpThreads, 0, stream>>>(x, y, n, act, slope);
  return cudaGetLastError();
}

cudaError_t launch_channel_affine(const float* x, float* y, const float* scale, const float* shift, int64_t n,
                                  int channels, int64_t plane, cudaStream_t stream) {
  channel_affine<<<blocks_for(n), kOpThreads, 0, stream>>>(x, y, scale, shift, n, channels, plane);
  return cudaGetLastError();
}

cudaError_t launch_softmax(const float* x, float* y, int batch, int channels, int64_t plane, cudaStream_t stream) {
  softmax_channels<<<blocks_for(int64_t(batch) * plane), kOpThreads, 0, stream>>>(x, y, batch, channels, plane);
  return cudaGetLastError();
}

}  // namespace cnn::cuda
