// cnn/cuda/conv_tiles.hpp — what each thread of the convolution kernels does, as plain functions.
//
// The kernels in conv.cuh are loops and barriers around these functions: fetch a step's tiles
// into registers (TileFetch), store them to shared memory (Tiles::store), multiply
// (Fp32Thread::step, or wmma), write the outputs (Fp32Thread::finish, store_fragment). The host
// compiler builds them too, so that tests/cuda_sim.hpp can run a kernel's blocks thread by thread
// on the CPU with the very code the GPU runs (only wmma's multiply is emulated there). The
// functions take the thread index; nothing here synchronises.
#pragma once
#include <cstdint>
#include <cstring>

#include "conv_geometry.hpp"

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#endif

namespace cnn::cuda {

// Vector types: CUDA's where nvcc compiles, the same layout for the host compiler.
#if defined(__CUDACC__)
using Float4 = float4;
using Bf16 = __nv_bfloat16;
#else
struct alignas(16) Float4 {
  float x, y, z, w;
};
struct Bf16 {
  uint16_t bits;
};
#endif

// Full unrolling of the loops over register arrays (the GPU keeps them in registers only so).
#if defined(__CUDA_ARCH__)
#define CNN_UNROLL _Pragma("unroll")
#else
#define CNN_UNROLL
#endif

// Loads and stores of four floats (one vector instruction on the GPU; memcpy on the host, which
// keeps the simulation free of type punning), and of data that no thread writes during the kernel
// (through the GPU's read-only cache).
CNN_HOST_DEVICE inline Float4 load4(const float* p) {
#if defined(__CUDA_ARCH__)
  return *reinterpret_cast<const Float4*>(p);
#else
  Float4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
#endif
}
CNN_HOST_DEVICE inline Float4 read_only4(const float* p) {
#if defined(__CUDA_ARCH__)
  return __ldg(reinterpret_cast<const Float4*>(p));
#else
  return load4(p);
#endif
}
CNN_HOST_DEVICE inline float read_only(const float* p) {
#if defined(__CUDA_ARCH__)
  return __ldg(p);
#else
  return *p;
#endif
}
CNN_HOST_DEVICE inline KEntry read_only(const KEntry* p) {
#if defined(__CUDA_ARCH__)
  const int4 e = __ldg(reinterpret_cast<const int4*>(p));
  return KEntry{e.x, e.y, e.z, e.w};
#else
  return *p;
#endif
}

// Rounding to BF16, to nearest even (what __float2bfloat16_rn does).
CNN_HOST_DEVICE inline Bf16 to_bf16(float v) {
#if defined(__CUDACC__)
  return __float2bfloat16_rn(v);
#else
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u += 0x7fffu + ((u >> 16) & 1u);  // NaN and inf stay as they are
  else if (u & 0x007fffffu) u |= 0x00400000u;                            // a NaN stays a (quiet) NaN
  return Bf16{uint16_t(u >> 16)};
#endif
}
inline float bf16_value(Bf16 b) {
#if defined(__CUDACC__)
  return __bfloat162float(b);
#else
  const uint32_t u = uint32_t(b.bits) << 16;
  float v;
  std::memcpy(&v, &u, 4);
  return v;
#endif
}

// How the convolutions multiply: FP32 on the CUDA cores (the reference's arithmetic, to rounding);
// TF32 or BF16 on the tensor cores (inputs rounded to 10 or 7 mantissa bits, sums in FP32).
enum class Precision { FP32, TF32, BF16 };

inline const char* precision_name(Precision p) {
  switch (p) {
    case Precision::FP32: return "fp32";
    case Precision::TF32: return "tf32";
    case Precision::BF16: return "bf16";
  }
  return "?";
}

struct ConvArgs {
  const float* x;         // input, NCHW
  const float* weights;   // pack_weights(): [groups][k_padded][m_padded]
  const KEntry* table;    // make_k_table(): [k_padded]
  const float* bias;      // [cout] (zeros when the layer has none)
  const float* residual;  // NCHW like y, or nullptr; may be y itself (each thread reads before it writes)
  float* y;
  ConvGeometry g;
  int act;
  float slope;
  // Split-K (layers with too few tiles to fill the GPU): blockIdx.z = group * splits + split, split
  // s sums K steps [s * steps_per_split, (s + 1) * steps_per_split) into partial[s] (NCHW like y,
  // no epilogue), and split_sum_element() adds the splits up and applies the epilogue.
  int splits = 1;
  int steps_per_split = 0;  // of kTileK; every split has at least one
  float* partial = nullptr;
};

CNN_HOST_DEVICE inline int64_t output_numel(const ConvGeometry& g) { return g.columns() * g.cout; }

constexpr int kConvThreads = 256;

// A thread's share of its block's tile fetches: the block (blockIdx x, y, z) computes columns
// j0..j0+kTileN-1 and rows m0..m0+kTileM-1 of group z's C; registers carry one step's tiles from
// global to shared memory. Thread tid fetches
//   A: rows k = tid/32 + 8i (i < 4), floats (tid%32)*4..+3 of the packed weights: 512 contiguous
//      bytes per warp;
//   B: rows k = tid/128 + 2i (i < 16) of column tid%128: consecutive threads, consecutive pixels.
struct TileFetch {
  int group, split, m0;
  int64_t j0;
  int k_begin, k_end;  // this block's share of K (all of it, unless split)
  const float* A;      // the group's packed weights
  Column col;          // this thread's column of B
  Float4 a[4];
  float b[16];

  // Fetches the first step's tiles.
  CNN_HOST_DEVICE TileFetch(const ConvArgs& p, int block_x, int block_y, int block_z, int tid)
      : group(block_z / p.splits), split(block_z % p.splits), m0(block_y * kTileM), j0(int64_t(block_x) * kTileN),
        k_begin(p.splits > 1 ? split * p.steps_per_split * kTileK : 0),
        k_end(p.splits > 1 && k_begin + p.steps_per_split * kTileK < p.g.k_padded ? k_begin + p.steps_per_split * kTileK
                                                                                 : p.g.k_padded),
        A(p.weights + int64_t(group) * p.g.k_padded * p.g.m_padded),
        col(decode_column(p.g, j0 + tid % kTileN, group)) {
    load(p, k_begin, tid);
  }
  // After step kt's tiles are in shared memory: fetch step kt + 1's, if this block has one.
  CNN_HOST_DEVICE void fetch_next(const ConvArgs& p, int kt, int tid) {
    if (kt + kTileK < k_end) load(p, kt + kTileK, tid);
  }

 private:
  CNN_HOST_DEVICE void load(const ConvArgs& p, int kt, int tid) {
    CNN_UNROLL
    for (int i = 0; i < 4; ++i) {
      const int k = kt + tid / 32 + 8 * i;
      a[i] = read_only4(A + int64_t(k) * p.g.m_padded + m0 + (tid % 32) * 4);
    }
    CNN_UNROLL
    for (int i = 0; i < 16; ++i) {
      const KEntry entry = read_only(p.table + kt + tid / kTileN + 2 * i);
      b[i] = inside(p.g, col, entry) ? read_only(p.x + col.base + entry.offset) : 0.f;
    }
  }
};

// Four consecutive elements of a shared tile (one vector store on the GPU), and one.
CNN_HOST_DEVICE inline void store4(float* to, Float4 v) {
#if defined(__CUDA_ARCH__)
  *reinterpret_cast<Float4*>(to) = v;
#else
  std::memcpy(to, &v, sizeof v);
#endif
}
CNN_HOST_DEVICE inline void store4(Bf16* to, Float4 v) {
#if defined(__CUDA_ARCH__)
  const __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
  uint2 u;
  u.x = *reinterpret_cast<const unsigned*>(&lo);
  u.y = *reinterpret_cast<const unsigned*>(&hi);
  *reinterpret_cast<uint2*>(to) = u;
#else
  to[0] = to_bf16(v.x), to[1] = to_bf16(v.y), to[2] = to_bf16(v.z), to[3] = to_bf16(v.w);
#endif
}
CNN_HOST_DEVICE inline void store1(float* to, float v) { *to = v; }
CNN_HOST_DEVICE inline void store1(Bf16* to, float v) { *to = to_bf16(v); }

// The shared tiles, [kTileK][kTileM + skew] of A (k-major, as packed) and [kTileK][kTileN + skew]
// of B, of element type T (float, or Bf16 rounded when stored). The skew keeps wmma's ldm a
// multiple of 16 bytes; 32-byte alignment keeps every fragment's first element aligned as wmma
// requires.
template <class T, int kSkew>
struct Tiles {
  static constexpr int kLdA = kTileM + kSkew, kLdB = kTileN + kSkew;
  alignas(32) T a[kTileK][kLdA];
  alignas(32) T b[kTileK][kLdB];

  CNN_HOST_DEVICE void store(const TileFetch& f, int tid) {
    CNN_UNROLL
    for (int i = 0; i < 4; ++i) store4(&a[tid / 32 + 8 * i][(tid % 32) * 4], f.a[i]);
    CNN_UNROLL
    for (int i = 0; i < 16; ++i) store1(&b[tid / kTileN + 2 * i][tid % kTileN], f.b[i]);
  }
};

// C[m][j] of the block's group: bias, residual, activation, into the NCHW output; or, split, the
// raw sum into the block's partial output.
CNN_HOST_DEVICE inline void store_output(const ConvArgs& p, const TileFetch& block, int m, int64_t j, float v) {
  if (m >= p.g.cout_g || j >= p.g.columns()) return;
  const int64_t at = output_index(p.g, j, block.group, m);
  if (p.splits > 1) {
    p.partial[block.split * output_numel(p.g) + at] = v;
    return;
  }
  v += p.bias[block.group * p.g.cout_g + m];
  if (p.residual) v += p.residual[at];
  p.y[at] = activate(v, p.act, p.slope);
}

// Output element i of a split convolution: the splits' sums in split order, then the epilogue.
CNN_HOST_DEVICE inline void split_sum_element(const ConvArgs& p, int64_t i) {
  const int64_t numel = output_numel(p.g);
  float v = 0.f;
  for (int s = 0; s < p.splits; ++s) v += p.partial[s * numel + i];
  v += p.bias[(i / p.g.plane()) % p.g.cout];
  if (p.residual) v += p.residual[i];
  p.y[i] = activate(v, p.act, p.slope);
}

// The FP32 kernel's thread: an 8 x 8 block of the tile's C, rows ty*4..+3 and 64+ty*4..+3,
// columns tx*4..+3 and 64+tx*4..+3 (tx = tid%16, ty = tid/16), so that a warp's float4 reads of a
// shared row are conflict-free.
struct Fp32Thread {
  float acc[8][8];

  CNN_HOST_DEVICE static int row(int tid, int i) { return i < 4 ? (tid / 16) * 4 + i : 64 + (tid / 16) * 4 + i - 4; }
  CNN_HOST_DEVICE static int column(int tid, int j) { return j < 4 ? (tid % 16) * 4 + j : 64 + (tid % 16) * 4 + j - 4; }

  CNN_HOST_DEVICE void zero() {
    CNN_UNROLL
    for (int i = 0; i < 8; ++i)
      CNN_UNROLL
      for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;
  }
  CNN_HOST_DEVICE void step(const Tiles<float, 0>& s, int tid) {
    const int tx = tid % 16, ty = tid / 16;
    CNN_UNROLL
    for (int k = 0; k < kTileK; ++k) {
      const Float4 a0 = load4(&s.a[k][ty * 4]);
      const Float4 a1 = load4(&s.a[k][64 + ty * 4]);
      const Float4 b0 = load4(&s.b[k][tx * 4]);
      const Float4 b1 = load4(&s.b[k][64 + tx * 4]);
      const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
      CNN_UNROLL
      for (int i = 0; i < 8; ++i)
        CNN_UNROLL
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
  }
  CNN_HOST_DEVICE void finish(const ConvArgs& p, const TileFetch& block, int tid) const {
    CNN_UNROLL
    for (int i = 0; i < 8; ++i)
      CNN_UNROLL
      for (int j = 0; j < 8; ++j)
        store_output(p, block, block.m0 + row(tid, i), block.j0 + column(tid, j), acc[i][j]);
  }
};

// The tensor-core kernels' warps: warp w computes rows warp_m(w)..+63 and columns warp_n(w)..+31
// of the tile, as 4 x 2 fragments of 16 x 16.
CNN_HOST_DEVICE inline int warp_m(int warp) { return (warp % 2) * 64; }
CNN_HOST_DEVICE inline int warp_n(int warp) { return (warp / 2) * 32; }

// One accumulator fragment, staged row-major (16 x 16 floats), written out by its warp: lane l
// takes elements l + 32t (t < 8), so lanes 0-15 write 16 contiguous outputs of one row and 16-31
// of the next.
CNN_HOST_DEVICE inline void store_fragment(const ConvArgs& p, const TileFetch& block, int m, int64_t j, const float* stage,
                                           int lane) {
  CNN_UNROLL
  for (int t = 0; t < 8; ++t) {
    const int e = lane + 32 * t;
    store_output(p, block, m + e / 16, j + e % 16, stage[e]);
  }
}

}  // namespace cnn::cuda
