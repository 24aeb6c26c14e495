// cnn/cuda/conv.cuh — convolution as an implicit GEMM on the GPU (compiled by nvcc only).
//
// One block computes a kTileM x kTileN tile of one group's C (conv_geometry.hpp) with 256 threads,
// walking K in steps of kTileK. Each step, every thread first fetches its share of the next A and
// B tiles into registers, then the block multiplies the tiles in shared memory, then the registers
// go to shared memory: the global loads of one step overlap the arithmetic of the previous one.
// What each thread does is in conv_tiles.hpp (also run on the CPU by the tests); here are the loops,
// the barriers and the tensor-core multiply.
//
// Three ways to multiply the tiles, one kernel each:
//   conv_fp32 — exact FP32 on the CUDA cores, an 8 x 8 block of C per thread (Fp32Thread).
//   conv_mma<Tf32> / conv_mma<Bf16> — tensor cores through wmma: 8 warps in 2 x 4, each 64 x 32 of C
//               as 4 x 2 fragments of 16 x 16. TF32 keeps fp32 tiles and rounds the fragments;
//               BF16 rounds while storing the tiles (half the shared memory). Sums stay fp32.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include "launch.hpp"

namespace cnn::cuda {

// Grid: (ceil(columns / kTileN), m_padded / kTileM, groups * splits); kConvThreads threads.
__global__ void __launch_bounds__(kConvThreads) conv_fp32(ConvArgs p) {
  __shared__ Tiles<float, 0> s;
  const int tid = threadIdx.x;
  TileFetch f(p, blockIdx.x, blockIdx.y, blockIdx.z, tid);
  Fp32Thread t;
  t.zero();
  for (int kt = f.k_begin; kt < f.k_end; kt += kTileK) {
    s.store(f, tid);
    __syncthreads();
    f.fetch_next(p, kt, tid);
    t.step(s, tid);
    __syncthreads();
  }
  t.finish(p, f, tid);
}

// The tensor-core precisions: the fragment shapes and types of wmma.
struct Tf32 {
  using Element = float;                    // shared tiles stay fp32; fragments are rounded
  using FragmentType = nvcuda::wmma::precision::tf32;
  static constexpr int kK = 8, kSkew = 4;   // ldm: a multiple of 4 floats
  template <class Fragment>
  __device__ static void round(Fragment& f) {
#pragma unroll
    for (int t = 0; t < f.num_elements; ++t) f.x[t] = nvcuda::wmma::__float_to_tf32(f.x[t]);
  }
};
struct Bf16Mma {
  using Element = Bf16;                     // rounded once, when the tiles are stored
  using FragmentType = __nv_bfloat16;
  static constexpr int kK = 16, kSkew = 8;  // ldm: a multiple of 8 halves
  template <class Fragment>
  __device__ static void round(Fragment&) {}
};

template <class P>
__global__ void __launch_bounds__(kConvThreads) conv_mma(ConvArgs p) {
  namespace wmma = nvcuda::wmma;
  __shared__ Tiles<typename P::Element, P::kSkew> s;
  __shared__ __align__(32) float staging[kConvThreads / 32][16 * 16];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int wm = warp_m(warp), wn = warp_n(warp);
  TileFetch f(p, blockIdx.x, blockIdx.y, blockIdx.z, tid);

  wmma::fragment<wmma::accumulator, 16, 16, P::kK, float> acc[4][2];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  for (int kt = f.k_begin; kt < f.k_end; kt += kTileK) {
    s.store(f, tid);
    __syncthreads();
    f.fetch_next(p, kt, tid);
#pragma unroll
    for (int kk = 0; kk < kTileK; kk += P::kK) {
      // A is stored k-major, so its m x k fragment is column-major with ldm = the row length.
      wmma::fragment<wmma::matrix_a, 16, 16, P::kK, typename P::FragmentType, wmma::col_major> fa[4];
      wmma::fragment<wmma::matrix_b, 16, 16, P::kK, typename P::FragmentType, wmma::row_major> fb[2];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        wmma::load_matrix_sync(fa[i], &s.a[kk][wm + 16 * i], s.kLdA);
        P::round(fa[i]);
      }
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        wmma::load_matrix_sync(fb[j], &s.b[kk][wn + 16 * j], s.kLdB);
        P::round(fb[j]);
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
  float* stage = staging[warp];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      wmma::store_matrix_sync(stage, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      store_fragment(p, f, f.m0 + wm + 16 * i, f.j0 + wn + 16 * j, stage, lane);
      __syncwarp();
    }
}

// After a split convolution: one thread per output element.
__global__ void conv_split_sum(ConvArgs p) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < output_numel(p.g)) split_sum_element(p, i);
}

}  // namespace cnn::cuda
