// cnn/cuda/launch.hpp — the GPU kernels as host functions: what the host code (model_impl.hpp,
// compiled by the C++ compiler) calls, defined in kernels.cuh (compiled by nvcc).
//
// Each launcher queues its kernel on `stream` and returns cudaGetLastError() (launch errors only;
// errors while running surface at the next synchronisation).
#pragma once
#include <cuda_runtime_api.h>

#include "conv_tiles.hpp"
#include "op_elements.hpp"

namespace cnn::cuda {

cudaError_t launch_conv(Precision precision, const ConvArgs& args, cudaStream_t stream);
// y[n][o] = act(bias[o] + sum_k w[o][k] x[n][k]); bias may be nullptr.
cudaError_t launch_linear(const LinearArgs& args, cudaStream_t stream);
cudaError_t launch_pool(const PoolArgs& args, cudaStream_t stream);
cudaError_t launch_adaptive_avg_pool(const float* x, float* y, int64_t planes, int h, int w, int oh, int ow,
                                     cudaStream_t stream);
cudaError_t launch_add(const float* a, const float* b, float* y, int64_t n, int act, float slope, cudaStream_t stream);
cudaError_t launch_activate(const float* x, float* y, int64_t n, int act, float slope, cudaStream_t stream);
cudaError_t launch_channel_affine(const float* x, float* y, const float* scale, const float* shift, int64_t n,
                                  int channels, int64_t plane, cudaStream_t stream);
cudaError_t launch_softmax(const float* x, float* y, int batch, int channels, int64_t plane, cudaStream_t stream);

}  // namespace cnn::cuda
