// cnn/kernels/int8.hpp — quantized convolution: u8 activations x s8 weights, s32 sums, on
// channels-last (NHWC) images.
//
// Why channels-last: a pixel's channels lie side by side, so four of them are one 32-bit word
// that AVX-512 VNNI's vpdpbusd multiplies with four weights of 16 output channels at once
// (broadcast the activations, vector the output channels). A convolution of any kernel size is
// then an implicit GEMM with no unfolding and no repacking of the image: for every kernel tap the
// kernel reads each output pixel's input pixel where it lies, or a row of zero points where the
// tap falls in the padding. The output channels sit in vector lanes, so the per-channel
// requantization is vector arithmetic and one store writes 16 channels of a pixel.
//
// Arithmetic (one definition, `requantize`, used by every path):
//   acc  = sum over taps and input channels of q_in * q_w                (exact, int32)
//   v    = fma(float(acc - in_zero * sum(q_w[o])), in_scale * w_scale[o], bias[o])
//   v    = fma(float(q_res - res_zero), res_scale, v)                  (fused residual, if any)
//   v    = activation(v)                                                (ReLU, ReLU6 or none)
//   q    = round_half_even(clamp(fma(v, 1 / out_scale, out_zero), 0, 255))
// Every step is an IEEE operation with one rounding (explicit fused multiply-adds, no
// contraction left to the compiler), so the vector kernels equal the reference bit for bit.
//
// Weights are packed once: output channels padded to blocks of 64 (four vectors), input channels
// to groups of 4, as [block16][tap][group][16 channels][4] bytes. Activations are read 4 bytes at a
// time, so buffers keep kSlack readable bytes after their end.
//
// Paths: AVX-512 VNNI (vpdpbusd), AVX2 (vpmaddwd on s16 pairs), portable. conv_reference() is the
// definition; tests/test_int8.cpp compares every path with it, bit for bit.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../parallel.hpp"
#include "cpu.hpp"
#include "gemm.hpp"

CNN_KERNELS_BEGIN
namespace cnn::kernels::int8 {

constexpr int64_t kSlack = 64;  // bytes every u8 activation buffer keeps readable past its end

// Whether this CPU runs AVX-512 VNNI (vpdpbusd), checked once; the int8 kernels use it when the
// active ISA is AVX-512.
inline bool cpu_has_vnni() {
#ifdef CNN_X86
  static const bool vnni = [] {
    unsigned a, b, c, d;
    if (detect_isa() != Isa::AVX512 || !__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
    return (c & (1u << 11)) != 0;
  }();
  return vnni;
#else
  return false;
#endif
}
inline bool use_vnni() { return active_isa() == Isa::AVX512 && cpu_has_vnni(); }

// One convolution's shape: NHWC u8 in, NHWC u8 out (channel stride = the channel count).
struct Geometry {
  int64_t h = 0, w = 0, c = 0;     // input
  int64_t oh = 0, ow = 0, oc = 0;  // output
  int kh = 1, kw = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  int64_t taps() const { return int64_t(kh) * kw; }
  int64_t groups() const { return (c + 3) / 4; }             // input channels in 4s
  int64_t padded_oc() const { return (oc + 63) / 64 * 64; }  // output channels in 64s
};

// s8 weights in the kernels' order, with each output channel's sum (the zero-point correction).
struct PackedWeights {
  AlignedVector store;        // 64-byte aligned: every 16-channel group is one aligned load
  std::vector<int32_t> sums;  // [padded_oc]
  int8_t* data() { return reinterpret_cast<int8_t*>(store.data()); }  // [padded_oc / 16][taps][groups][16][4]
  const int8_t* data() const { return reinterpret_cast<const int8_t*>(store.data()); }
  // The AVX2 path's form, made from the above on its first use: s16 pairs of input channels,
  // [padded_oc / 16][taps][groups * 2][16][2].
  mutable AlignedVector pairs16;
};

// weights: [oc][c][kh][kw] s8 (PyTorch's order).
inline PackedWeights pack_weights(const int8_t* weights, const Geometry& g) {
  const int64_t T = g.taps(), G = g.groups(), P = g.padded_oc();
  PackedWeights pw;
  pw.store = AlignedVector(std::size_t(P * T * G));  // 4 bytes a float
  std::memset(pw.store.data(), 0, std::size_t(P * T * G) * 4);
  pw.sums.assign(std::size_t(P), 0);
  for (int64_t o = 0; o < g.oc; ++o)
    for (int64_t ci = 0; ci < g.c; ++ci)
      for (int64_t t = 0; t < T; ++t) {
        const int8_t v = weights[(o * g.c + ci) * T + t];
        pw.data()[std::size_t((((o / 16) * T + t) * G + ci / 4) * 64 + (o % 16) * 4 + ci % 4)] = v;
        pw.sums[std::size_t(o)] += v;
      }
  return pw;
}

// How an output channel's int32 sum becomes a u8 (the formula at the top); arrays of padded_oc.
struct Requant {
  const float* scale = nullptr;   // in_scale * w_scale[o]
  const float* bias = nullptr;    // float bias (zeros when the layer has none)
  const int32_t* comp = nullptr;  // in_zero * sum(q_w[o])
  Activation act = Activation::None;  // None, ReLU or ReLU6
  float out_inv_scale = 1.f, out_zero = 0.f;
  const uint8_t* residual = nullptr;  // NHWC u8 like the output, or nullptr
  float res_scale = 0.f;
  int32_t res_zero = 0;
  float* out_float = nullptr;  // write v itself here (NHWC float) instead of a u8 output
};

// max and min as the vector instructions compute them (a > b ? a : b): a NaN in `a` gives b.
inline float max_as_vector(float a, float b) { return a > b ? a : b; }
inline float min_as_vector(float a, float b) { return a < b ? a : b; }

// The output value before it is quantized again (all but the last line of the formula).
inline float dequantized(int32_t acc, int64_t o, const Requant& r, const uint8_t* res) {
  float v = std::fma(float(acc - r.comp[o]), r.scale[o], r.bias[o]);
  if (r.residual) v = std::fma(float(int32_t(*res) - r.res_zero), r.res_scale, v);
  if (r.act == Activation::ReLU || r.act == Activation::ReLU6) v = max_as_vector(v, 0.f);
  if (r.act == Activation::ReLU6) v = min_as_vector(v, 6.f);
  return v;
}
// fma(v, 1 / scale, zero) clamped to 0..255 (a NaN to 0) and rounded to nearest, ties to even.
inline uint8_t quantize_value(float v, float inv_scale, float zero) {
  const float t = min_as_vector(max_as_vector(std::fma(v, inv_scale, zero), 0.f), 255.f);
  return uint8_t(std::nearbyint(t));  // the default rounding mode
}
inline uint8_t requantize(int32_t acc, int64_t o, const Requant& r, const uint8_t* res) {
  return quantize_value(dequantized(acc, o, r, res), r.out_inv_scale, r.out_zero);
}

// Output element `at` (channel o) from its sum: u8 into y, or float into r.out_float.
inline void store(int32_t acc, int64_t o, const Requant& r, int64_t at, uint8_t* y) {
  const uint8_t* res = r.residual ? r.residual + at : nullptr;
  if (r.out_float) r.out_float[at] = dequantized(acc, o, r, res);
  else y[at] = requantize(acc, o, r, res);
}

// The definition: plain loops over unpacked weights [oc][c][kh][kw]; padding reads in_zero.
inline void conv_reference(const uint8_t* x, const int8_t* weights, const Geometry& g, int32_t in_zero,
                           const Requant& r, uint8_t* y) {
  for (int64_t oy = 0; oy < g.oh; ++oy)
    for (int64_t ox = 0; ox < g.ow; ++ox)
      for (int64_t o = 0; o < g.oc; ++o) {
        int32_t acc = 0;
        for (int ky = 0; ky < g.kh; ++ky)
          for (int kx = 0; kx < g.kw; ++kx) {
            const int64_t iy = oy * g.stride_h - g.pad_h + ky, ix = ox * g.stride_w - g.pad_w + kx;
            const bool inside = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
            for (int64_t ci = 0; ci < g.c; ++ci) {
              const int32_t a = inside ? x[(iy * g.w + ix) * g.c + ci] : in_zero;
              acc += a * weights[((o * g.c + ci) * g.kh + ky) * g.kw + kx];
            }
          }
        const int64_t at = (oy * g.ow + ox) * g.oc + o;
        store(acc, o, r, at, y);
      }
}

// Output pixels are numbered row by row; a work item is a run of kPixelsPerItem of them and one
// block of 64 output channels. Items depend only on the shape, so results never depend on threads.
constexpr int kPixels = 6;                       // pixels per register tile (x 4 vectors = 24 sums)
constexpr int64_t kPixelsPerItem = 4 * kPixels;  // pixels per work item

// Calls tile(np, q0, b) for every register tile: np pixels from pixel q0 (np a compile-time
// std::integral_constant, kPixels but at the end of a run) and channel block b of `blocks` blocks
// of `block_oc` output channels. Work items are runs of kPixelsPerItem pixels x one block.
template <class Tile>
void for_tiles(const Geometry& g, int64_t blocks, int64_t block_oc, Tile&& tile) {
  const int64_t Q = g.oh * g.ow, runs = (Q + kPixelsPerItem - 1) / kPixelsPerItem;
  parallel_for(runs * blocks, kPixelsPerItem * block_oc * g.taps() * g.c, [&](int64_t item) {
    const int64_t b = item % blocks, q_end = std::min(Q, (item / blocks + 1) * kPixelsPerItem);
    int64_t q = item / blocks * kPixelsPerItem;
    for (; q + kPixels <= q_end; q += kPixels) tile(std::integral_constant<int, kPixels>{}, q, b);
    switch (q_end - q) {
      case 5: tile(std::integral_constant<int, 5>{}, q, b); break;
      case 4: tile(std::integral_constant<int, 4>{}, q, b); break;
      case 3: tile(std::integral_constant<int, 3>{}, q, b); break;
      case 2: tile(std::integral_constant<int, 2>{}, q, b); break;
      case 1: tile(std::integral_constant<int, 1>{}, q, b); break;
      default: break;
    }
  });
}

// Where output pixel q's window starts in the input (top-left tap; may lie in the padding).
struct Origin {
  int64_t y, x;
};
inline Origin origin(const Geometry& g, int64_t q) {
  const int64_t oy = q / g.ow, ox = q - oy * g.ow;
  return {oy * g.stride_h - g.pad_h, ox * g.stride_w - g.pad_w};
}
// The input pixel under a window at `at` for tap (ky, kx), or the zero-point row.
inline const uint8_t* source(const uint8_t* x, const Geometry& g, Origin at, int ky, int kx, const uint8_t* zeros) {
  const int64_t iy = at.y + ky, ix = at.x + kx;
  if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) return zeros;
  return x + (iy * g.w + ix) * g.c;
}

// The portable path: the packed layout walked with scalar sums (any CPU).
inline void conv_generic(const uint8_t* x, const PackedWeights& pw, const Geometry& g, const uint8_t* zeros,
                         const Requant& r, uint8_t* y) {
  const int64_t T = g.taps(), G = g.groups(), Q = g.oh * g.ow;
  parallel_for(Q, g.oc * T * g.c, [&](int64_t q) {
    std::vector<int32_t> acc(std::size_t(g.padded_oc()), 0);
    const Origin at = origin(g, q);
    for (int64_t t = 0; t < T; ++t) {
      const uint8_t* s = source(x, g, at, int(t / g.kw), int(t % g.kw), zeros);
      for (int64_t o = 0; o < g.oc; ++o) {
        const int8_t* w = pw.data() + (((o / 16) * T + t) * G) * 64 + (o % 16) * 4;
        int32_t sum = 0;
        for (int64_t ci = 0; ci < g.c; ++ci) sum += int32_t(s[ci]) * w[(ci / 4) * 64 + ci % 4];
        acc[std::size_t(o)] += sum;
      }
    }
    for (int64_t o = 0; o < g.oc; ++o) store(acc[std::size_t(o)], o, r, q * g.oc + o, y);
  });
}

#ifdef CNN_X86
#define CNN_TARGET_VNNI __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx512vnni,avx2,fma")))

// The requantization formula on vectors: 16 output channels' constants, loaded once for a tile.
struct Requant16 {
  __m512i comp;
  __m512 scale, bias, res_scale, inv, zero;
  __m512i res_zero;
};
CNN_TARGET_VNNI inline Requant16 requant16(const Requant& r, int64_t o) {
  return {_mm512_loadu_si512(r.comp + o), _mm512_loadu_ps(r.scale + o),     _mm512_loadu_ps(r.bias + o),
          _mm512_set1_ps(r.res_scale),    _mm512_set1_ps(r.out_inv_scale), _mm512_set1_ps(r.out_zero),
          _mm512_set1_epi32(r.res_zero)};
}
// 16 output channels of one pixel (output offset `at`), stored under mask m.
CNN_TARGET_VNNI inline void store16(__m512i acc, const Requant16& c, const Requant& r, int64_t at, __mmask16 m,
                                    uint8_t* y) {
  __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc, c.comp)), c.scale, c.bias);
  if (r.residual) {
    const __m512i q = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, r.residual + at));
    v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(q, c.res_zero)), c.res_scale, v);
  }
  // With a zero point of 0 (every ReLU output's), the clamp at 0 below does ReLU's work.
  const bool clamp_is_relu = !r.out_float && r.out_zero == 0.f;
  if ((r.act == Activation::ReLU || r.act == Activation::ReLU6) && !clamp_is_relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
  if (r.act == Activation::ReLU6) v = _mm512_min_ps(v, _mm512_set1_ps(6.f));
  if (r.out_float) return _mm512_mask_storeu_ps(r.out_float + at, m, v);
  // No clamp at 255: after the clamp at 0 the unsigned saturating store gives 255 for anything
  // that would round above it, as rounding the clamped value does.
  const __m512 t = _mm512_max_ps(_mm512_fmadd_ps(v, c.inv, c.zero), _mm512_setzero_ps());
  const __m512i q = _mm512_cvtps_epi32(t);  // MXCSR's rounding: to nearest, ties to even
  _mm512_mask_cvtusepi32_storeu_epi8(y + at, m, q);
}

// NP pixels (starting at q0) x 64 output channels (block b of 64) over every tap and channel group.
template <int NP>
CNN_TARGET_VNNI void tile_vnni(const uint8_t* x, const PackedWeights& pw, const Geometry& g, const uint8_t* zeros,
                               const Requant& r, int64_t q0, int64_t b, uint8_t* y) {
  const int64_t T = g.taps(), G = g.groups();
  __m512i acc[NP][4];  // kept in registers: the loops over p unroll fully
#pragma GCC unroll 8
  for (int p = 0; p < NP; ++p)
    for (int j = 0; j < 4; ++j) acc[p][j] = _mm512_setzero_si512();
  const int8_t* wb = pw.data() + (4 * b) * T * G * 64;  // block16 4b, tap 0
  const int64_t block_stride = T * G * 64;                    // bytes from one block16 to the next
  Origin at[NP];
#pragma GCC unroll 8
  for (int p = 0; p < NP; ++p) at[p] = origin(g, q0 + p);
  for (int64_t t = 0; t < T; ++t) {
    const int ky = int(t / g.kw), kx = int(t - int64_t(ky) * g.kw);
    const uint8_t* s[NP];
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p) s[p] = source(x, g, at[p], ky, kx, zeros);
    const int8_t* w = wb + t * G * 64;
    for (int64_t k = 0; k < G; ++k, w += 64) {
      const __m512i w0 = _mm512_load_si512(w), w1 = _mm512_load_si512(w + block_stride),
                    w2 = _mm512_load_si512(w + 2 * block_stride), w3 = _mm512_load_si512(w + 3 * block_stride);
#pragma GCC unroll 8
      for (int p = 0; p < NP; ++p) {
        int32_t word;
        std::memcpy(&word, s[p] + 4 * k, 4);
        const __m512i a = _mm512_set1_epi32(word);
        acc[p][0] = _mm512_dpbusd_epi32(acc[p][0], a, w0);
        acc[p][1] = _mm512_dpbusd_epi32(acc[p][1], a, w1);
        acc[p][2] = _mm512_dpbusd_epi32(acc[p][2], a, w2);
        acc[p][3] = _mm512_dpbusd_epi32(acc[p][3], a, w3);
      }
    }
  }
  for (int j = 0; j < 4; ++j) {
    const int64_t o = 64 * b + 16 * j;
    if (o >= g.oc) break;
    const __mmask16 m = g.oc - o >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (g.oc - o)) - 1u);
    const Requant16 c = requant16(r, o);
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p) store16(acc[p][j], c, r, (q0 + p) * g.oc + o, m, y);
  }
}

CNN_TARGET_VNNI inline void conv_vnni(const uint8_t* x, const PackedWeights& pw, const Geometry& g,
                                      const uint8_t* zeros, const Requant& r, uint8_t* y) {
  for_tiles(g, g.padded_oc() / 64, 64, [&](auto np, int64_t q, int64_t b) {
    tile_vnni<decltype(np)::value>(x, pw, g, zeros, r, q, b, y);
  });
}
#endif

// First layers (an RGB image: few channels, a wide kernel) would spend more time finding each
// tap's pixel than multiplying. Their kernel columns are folded into channels instead: the image is
// unfolded once into rows of output columns, each holding the kw pixels its window spans
// ([h][ow][kw * c]), and the convolution becomes kh x 1 with stride (stride_h, 1) and no column
// padding (7x7/2 stem: 49 taps of one channel group become 7 taps of 6). Same sums, same results.
inline bool folds_columns(const Geometry& g) { return g.kw > 1 && g.c < 16 && g.c * g.kw <= 64; }
inline Geometry columns_folded(const Geometry& g) {
  Geometry u = g;
  u.w = g.ow, u.c = g.c * g.kw, u.kw = 1, u.stride_w = 1, u.pad_w = 0;
  return u;
}
// [oc][c][kh][kw] -> [oc][kw * c][kh][1]
inline std::vector<int8_t> fold_weight_columns(const int8_t* w, const Geometry& g) {
  std::vector<int8_t> out(std::size_t(g.oc * g.c * g.taps()));
  for (int64_t o = 0; o < g.oc; ++o)
    for (int64_t ci = 0; ci < g.c; ++ci)
      for (int ky = 0; ky < g.kh; ++ky)
        for (int kx = 0; kx < g.kw; ++kx)
          out[std::size_t((o * g.c * g.kw + kx * g.c + ci) * g.kh + ky)] = w[((o * g.c + ci) * g.kh + ky) * g.kw + kx];
  return out;
}
// x [h][w][c] -> out [h][ow][kw * c], the zero point where a window leaves the image.
inline void fold_image_columns(const uint8_t* x, const Geometry& g, uint8_t zero, uint8_t* out) {
  const int64_t C = g.c * g.kw;
  parallel_for(g.h, g.ow * C, [&](int64_t iy) {
    for (int64_t ox = 0; ox < g.ow; ++ox) {
      uint8_t* d = out + (iy * g.ow + ox) * C;
      const int64_t ix0 = ox * g.stride_w - g.pad_w;
      if (ix0 >= 0 && ix0 + g.kw <= g.w) {  // inside the image: the window's pixels lie side by side
        std::memcpy(d, x + (iy * g.w + ix0) * g.c, std::size_t(C));
        continue;
      }
      for (int kx = 0; kx < g.kw; ++kx) {
        const int64_t ix = ox * g.stride_w - g.pad_w + kx;
        if (ix >= 0 && ix < g.w) std::memcpy(d + kx * g.c, x + (iy * g.w + ix) * g.c, std::size_t(g.c));
        else std::memset(d + kx * g.c, zero, std::size_t(g.c));
      }
    }
  });
}

// AVX2 without VNNI: vpmaddwd multiplies s16 pairs exactly (vpmaddubsw, the u8 x s8 one, would
// saturate at 255 x 127 x 2), so the weights are widened to s16 pairs of input channels and two
// channels of a pixel are broadcast per step: 6 pixels x 16 output channels, 12 accumulators.
// About half the multiply-adds per instruction of VNNI: int8 there saves memory, not time.
inline void widen_pairs(const PackedWeights& pw, const Geometry& g) {
  const int64_t T = g.taps(), G = g.groups(), blocks = g.padded_oc() / 16;
  if (pw.pairs16.size() * 2 >= std::size_t(blocks * T * G * 64)) return;
  pw.pairs16 = AlignedVector(std::size_t(blocks * T * G * 32));  // 2 bytes a weight, 2 per float
  auto* out = reinterpret_cast<int16_t*>(pw.pairs16.data());
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t k = 0; k < G; ++k) {
        const int8_t* src = pw.data() + ((b * T + t) * G + k) * 64;
        int16_t* dst = out + ((b * T + t) * G + k) * 64;  // pairs 2k and 2k + 1, 32 values each
        for (int j = 0; j < 16; ++j)
          for (int q = 0; q < 4; ++q) dst[(q / 2) * 32 + j * 2 + q % 2] = src[j * 4 + q];
      }
}

#ifdef CNN_X86
// 8 output channels of one pixel (output offset `at`), the formula on vectors; `n` of them stored.
CNN_TARGET_AVX2 inline void store8(__m256i acc, int64_t o, const Requant& r, int64_t at, int n, uint8_t* y) {
  __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(acc, _mm256_loadu_si256((const __m256i*)(r.comp + o)))),
                             _mm256_loadu_ps(r.scale + o), _mm256_loadu_ps(r.bias + o));
  if (r.residual) {
    uint8_t res[8] = {};
    std::memcpy(res, r.residual + at, std::size_t(n));
    const __m256i q = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(res)));
    v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(q, _mm256_set1_epi32(r.res_zero))), _mm256_set1_ps(r.res_scale), v);
  }
  if (r.act == Activation::ReLU || r.act == Activation::ReLU6) v = _mm256_max_ps(v, _mm256_setzero_ps());
  if (r.act == Activation::ReLU6) v = _mm256_min_ps(v, _mm256_set1_ps(6.f));
  if (r.out_float) {
    float f[8];
    _mm256_storeu_ps(f, v);
    std::memcpy(r.out_float + at, f, std::size_t(n) * 4);
    return;
  }
  __m256 t = _mm256_fmadd_ps(v, _mm256_set1_ps(r.out_inv_scale), _mm256_set1_ps(r.out_zero));
  t = _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), _mm256_set1_ps(255.f));
  const __m256i q = _mm256_cvtps_epi32(t);  // to nearest, ties to even; 0..255 already
  const __m128i w16 = _mm_packus_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
  uint8_t bytes[16];
  _mm_storeu_si128(reinterpret_cast<__m128i*>(bytes), _mm_packus_epi16(w16, w16));
  std::memcpy(y + at, bytes, std::size_t(n));
}

// NP pixels (from q0) x 16 output channels (block16 b16).
template <int NP>
CNN_TARGET_AVX2 void tile_avx2(const uint8_t* x, const PackedWeights& pw, const Geometry& g, const uint8_t* zeros,
                               const Requant& r, int64_t q0, int64_t b16, uint8_t* y) {
  const int64_t T = g.taps(), G = g.groups();
  __m256i acc[NP][2];
#pragma GCC unroll 8
  for (int p = 0; p < NP; ++p) acc[p][0] = acc[p][1] = _mm256_setzero_si256();
  const int16_t* wb = reinterpret_cast<const int16_t*>(pw.pairs16.data()) + b16 * T * G * 64;
  Origin at[NP];
#pragma GCC unroll 8
  for (int p = 0; p < NP; ++p) at[p] = origin(g, q0 + p);
  for (int64_t t = 0; t < T; ++t) {
    const int ky = int(t / g.kw), kx = int(t - int64_t(ky) * g.kw);
    const uint8_t* s[NP];
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p) s[p] = source(x, g, at[p], ky, kx, zeros);
    const int16_t* w = wb + t * G * 64;
    for (int64_t pair = 0; pair < 2 * G; ++pair, w += 32) {
      const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w)),
                    w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 16));
#pragma GCC unroll 8
      for (int p = 0; p < NP; ++p) {
        uint16_t two;
        std::memcpy(&two, s[p] + 2 * pair, 2);
        const __m256i a = _mm256_set1_epi32(int32_t((two & 0xFFu) | (uint32_t(two & 0xFF00u) << 8)));
        acc[p][0] = _mm256_add_epi32(acc[p][0], _mm256_madd_epi16(a, w0));
        acc[p][1] = _mm256_add_epi32(acc[p][1], _mm256_madd_epi16(a, w1));
      }
    }
  }
  for (int j = 0; j < 2; ++j) {
    const int64_t o = 16 * b16 + 8 * j;
    if (o >= g.oc) break;
    const int n = int(std::min<int64_t>(8, g.oc - o));
#pragma GCC unroll 8
    for (int p = 0; p < NP; ++p) store8(acc[p][j], o, r, (q0 + p) * g.oc + o, n, y);
  }
}

CNN_TARGET_AVX2 inline void conv_avx2(const uint8_t* x, const PackedWeights& pw, const Geometry& g,
                                      const uint8_t* zeros, const Requant& r, uint8_t* y) {
  widen_pairs(pw, g);
  for_tiles(g, (g.oc + 15) / 16, 16, [&](auto np, int64_t q, int64_t b) {
    tile_avx2<decltype(np)::value>(x, pw, g, zeros, r, q, b, y);
  });
}
#endif

// One image: x NHWC u8 (kSlack readable bytes past its end), y NHWC u8. `zeros`: groups() * 4
// bytes of the input's zero point. Picks the fastest path this CPU has.
inline void conv(const uint8_t* x, const PackedWeights& pw, const Geometry& g, const uint8_t* zeros, const Requant& r,
                 uint8_t* y) {
#ifdef CNN_X86
  if (use_vnni()) return conv_vnni(x, pw, g, zeros, r, y);
  if (active_isa() >= Isa::AVX2) return conv_avx2(x, pw, g, zeros, r, y);
#endif
  conv_generic(x, pw, g, zeros, r, y);
}

}  // namespace cnn::kernels::int8
CNN_KERNELS_END
