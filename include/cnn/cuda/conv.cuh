// cnn/cuda/conv.cuh — convolution as an implicit GEMM on the GPU (compiled by nvcc only).
//
// One block computes a kTileM x kTileN tile of one group's C (see conv_geometry.hpp) with 256
// threads, walking K in steps of kTileK. Each step, every thread first fetches its share of the
// next A and B tiles into registers, then the block multiplies the tiles in shared memory, then
// the registers go to shared memory: the global loads of one step overlap the arithmetic of the
// previous one.
//
//   A tile: 32 k-rows x 128 contiguous floats of the packed weights; 4 float4 loads per thread.
//   B tile: 32 k-rows x 128 columns, 16 loads per thread, each from the input through the k table
//           (0 in the padding); a thread keeps one column, decoded once per block.
//
// Three ways to multiply the tiles, one kernel template each:
//   conv_fp32 — exact FP32 on the CUDA cores: each thread an 8x8 block of C (rows ty*4..+3 and
//               64+ty*4..+3, columns tx*4..+3 and 64+tx*4..+3: conflict-free float4 reads).
//   conv_mma<Tf32> / conv_mma<Bf16> — tensor cores through wmma: 8 warps in 2 x 4, each 64 x 32 of C
//               as 4 x 2 fragments of 16 x 16. TF32 keeps fp32 tiles and rounds the fragments;
//               BF16 rounds while storing the tiles (half the shared memory). Sums stay fp32.
// The epilogue (bias, residual, activation, scatter to NCHW) reads each C element from registers
// (fp32) or from a per-warp 16 x 16 staging tile (wmma).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include "launch.hpp"

namespace cnn::cuda {


namespace detail {

constexpr int kConvThreads = 256;

// The registers that carry one step's tiles from global to shared memory.
struct TileFetch {
  float4 a[4];
  float b[16];

  // A rows k = tid/32 + 8i, floats (tid%32)*4..+3; B rows k = tid/128 + 2i, column tid%128.
  __device__ void load(const ConvArgs& p, const float* A, int m0, int kt, const Column& col, int tid) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int k = kt + tid / 32 + 8 * i;
      a[i] = __ldg(reinterpret_cast<const float4*>(A + int64_t(k) * p.g.m_padded + m0 + (tid % 32) * 4));
    }
#pragma unroll
    for (int i = 0; i < 16; ++i) {
      const int4 e = __ldg(reinterpret_cast<const int4*>(p.table + kt + tid / kTileN + 2 * i));
      const KEntry entry{e.x, e.y, e.z, 0};
      b[i] = inside(p.g, col, entry) ? __ldg(p.x + col.base + entry.offset) : 0.f;
    }
  }
};

// Four consecutive elements of a shared tile, in one store.
__device__ inline void store4(float* to, float4 v) { *reinterpret_cast<float4*>(to) = v; }
__device__ inline void store4(__nv_bfloat16* to, float4 v) {
  const __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
  uint2 u;
  u.x = *reinterpret_cast<const unsigned*>(&lo);
  u.y = *reinterpret_cast<const unsigned*>(&hi);
  *reinterpret_cast<uint2*>(to) = u;
}
__device__ inline void store1(float* to, float v) { *to = v; }
__device__ inline void store1(__nv_bfloat16* to, float v) { *to = __float2bfloat16_rn(v); }

// Shared tiles [kTileK][kTileM + skew] and [kTileK][kTileN + skew] of element type T.
template <class T, int kSkew>
struct Tiles {
  static constexpr int kLdA = kTileM + kSkew, kLdB = kTileN + kSkew;
  __align__(32) T a[kTileK][kLdA];
  __align__(32) T b[kTileK][kLdB];

  __device__ void store(const TileFetch& f, int tid) {
#pragma unroll
    for (int i = 0; i < 4; ++i) store4(&a[tid / 32 + 8 * i][(tid % 32) * 4], f.a[i]);
#pragma unroll
    for (int i = 0; i < 16; ++i) store1(&b[tid / kTileN + 2 * i][tid % kTileN], f.b[i]);
  }
};

__device__ inline void store_output(const ConvArgs& p, int group, int m, int64_t j, float v) {
  if (m >= p.g.cout_g || j >= p.g.columns()) return;
  const int64_t at = output_index(p.g, j, group, m);
  v += p.bias[group * p.g.cout_g + m];
  if (p.residual) v += p.residual[at];
  p.y[at] = activate(v, p.act, p.slope);
}

}  // namespace detail

// Grid: (ceil(columns / kTileN), m_padded / kTileM, groups); kConvThreads threads.
__global__ void __launch_bounds__(detail::kConvThreads) conv_fp32(ConvArgs p) {
  __shared__ detail::Tiles<float, 0> s;
  const int tid = threadIdx.x, group = blockIdx.z, m0 = blockIdx.y * kTileM;
  const int64_t j0 = int64_t(blockIdx.x) * kTileN;
  const float* A = p.weights + int64_t(group) * p.g.k_padded * p.g.m_padded;
  const Column col = decode_column(p.g, j0 + tid % kTileN, group);
  const int tx = tid % 16, ty = tid / 16;

  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

  detail::TileFetch f;
  f.load(p, A, m0, 0, col, tid);
  for (int kt = 0; kt < p.g.k_padded; kt += kTileK) {
    s.store(f, tid);
    __syncthreads();
    if (kt + kTileK < p.g.k_padded) f.load(p, A, m0, kt + kTileK, col, tid);
#pragma unroll
    for (int k = 0; k < kTileK; ++k) {
      const float4 a0 = *reinterpret_cast<const float4*>(&s.a[k][ty * 4]);
      const float4 a1 = *reinterpret_cast<const float4*>(&s.a[k][64 + ty * 4]);
      const float4 b0 = *reinterpret_cast<const float4*>(&s.b[k][tx * 4]);
      const float4 b1 = *reinterpret_cast<const float4*>(&s.b[k][64 + tx * 4]);
      const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int m = m0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4);
#pragma unroll
    for (int j = 0; j < 8; ++j)
      detail::store_output(p, group, m, j0 + (j < 4 ? tx * 4 + j : 64 + tx * 4 + j - 4), acc[i][j]);
  }
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
struct Bf16 {
  using Element = __nv_bfloat16;            // rounded once, when the tiles are stored
  using FragmentType = __nv_bfloat16;
  static constexpr int kK = 16, kSkew = 8;  // ldm: a multiple of 8 halves
  template <class Fragment>
  __device__ static void round(Fragment&) {}
};

template <class P>
__global__ void __launch_bounds__(detail::kConvThreads) conv_mma(ConvArgs p) {
  namespace wmma = nvcuda::wmma;
  __shared__ detail::Tiles<typename P::Element, P::kSkew> s;
  __shared__ __align__(32) float staging[detail::kConvThreads / 32][16 * 16];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, group = blockIdx.z, m0 = blockIdx.y * kTileM;
  const int64_t j0 = int64_t(blockIdx.x) * kTileN;
  const int wm = (warp % 2) * 64, wn = (warp / 2) * 32;  // this warp's 64 x 32 of the tile
  const float* A = p.weights + int64_t(group) * p.g.k_padded * p.g.m_padded;
  const Column col = decode_column(p.g, j0 + tid % kTileN, group);

  wmma::fragment<wmma::accumulator, 16, 16, P::kK, float> acc[4][2];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  detail::TileFetch f;
  f.load(p, A, m0, 0, col, tid);
  for (int kt = 0; kt < p.g.k_padded; kt += kTileK) {
    s.store(f, tid);
    __syncthreads();
    if (kt + kTileK < p.g.k_padded) f.load(p, A, m0, kt + kTileK, col, tid);
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
#pragma unroll
      for (int t = 0; t < 8; ++t) {  // lanes 0-15 one row, 16-31 the next: 16 contiguous outputs each
        const int e = lane + 32 * t, r = e / 16, c = e % 16;
        detail::store_output(p, group, m0 + wm + 16 * i + r, j0 + wn + 16 * j + c, stage[e]);
      }
      __syncwarp();
    }
}

}  // namespace cnn::cuda
