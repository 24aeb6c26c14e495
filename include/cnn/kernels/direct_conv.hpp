// cnn/kernels/direct_conv.hpp — strided convolutions computed where the image lies, without unfolding it.
//
// As an implicit-im2col GEMM, a stride-2 convolution spends a large share of its time gathering the
// unfolded image into column panels, and a 7-pixel-wide map pads each row of panels to 32 columns.
// Here vectors run along the output channels instead: a tile is 32 output channels (2 AVX-512
// vectors) x 14 output pixels (one row, or two rows of 7 on a 7-pixel-wide map), and each step
// (input channel, ky, kx) multiplies 2 weight vectors by 14 input values broadcast straight from the
// zero-padded image: 28 accumulators, 31 of the 32 registers. Weights are repacked once into
// 32-channel panels [panel][tap][32]. AVX-512 only: Conv2d keeps the GEMM path on other ISAs, and
// conv2d_reference() (ops/conv2d.hpp) is the definition the tests compare with.
//
// Either side may be channel-blocked (NCHW16c, kernels/blocked.hpp): the tile then broadcasts each
// input value from the pixel's 16-channel line, and stores each sum vector whole (no gathering).
//
// Zero padding of one row and column, as ResNet's 3x3/2 layers have, is applied by the tile itself:
// the image is read as it lies, since only the first row and column of windows reach into the border
// (and, on even maps, no window reaches past the bottom or right edge). Other padding (the 7x7/2
// stem's three) needs a padded copy of the image first (pads_itself()); the copy made each of
// ResNet-50's 3x3/2 layers 0.07-0.09 ms slower at 2 threads (docs/performance.md).
//
// Every output pixel sums its taps in the same order (input channel, ky, kx) whatever the tile or
// thread that computes it, so results do not depend on the thread count.
#pragma once
#include <algorithm>
#include <cstdint>

#include "../parallel.hpp"
#include "blocked.hpp"
#include "gemm.hpp"

CNN_KERNELS_BEGIN

namespace cnn {
namespace kernels {
namespace direct {

constexpr int64_t kPanel = 32;  // output channels per weight panel: 2 AVX-512 vectors
constexpr int kPixels = 14;     // output pixels per tile

// Weights [M][taps] (taps = in_channels * kh * kw, PyTorch's order) as ceil(M/32) panels [tap][32],
// zero-padded beyond M.
struct Weights {
  int64_t M = 0, taps = 0;
  AlignedVector values;
  const float* panel(int64_t p) const { return values.data() + p * taps * kPanel; }
};

inline Weights pack_weights(const float* w, int64_t M, int64_t taps) {
  Weights out;
  out.M = M, out.taps = taps;
  out.values = pack_row_panels(M, taps, ConstMat{w, taps, 1}, kPanel);
  return out;
}

// The convolution's shape on the input as given, h x w pixels: zero-padded already (pad_top =
// pad_left = 0), or not, with the kernel to pad its top row and left column (pads_itself()).
struct Geometry {
  int64_t in_channels, h, w, kh, kw, stride, oh, ow;
  int64_t pad_top = 0, pad_left = 0;
};

// Whether the tile can apply the padding itself: at most one row and column of zeros, and only at
// the top and left (no window reaches past the bottom or right edge). Arguments as Conv2d's, on the
// unpadded input.
inline bool pads_itself(int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t stride, int64_t pad_h, int64_t pad_w,
                        int64_t oh, int64_t ow) {
  return pad_h <= 1 && pad_w <= 1 && (oh - 1) * stride - pad_h + kh <= h && (ow - 1) * stride - pad_w + kw <= w;
}

// Whether run() handles this shape: one group and no dilation (the caller checks), stride 2, and
// rows of at least one tile (14 pixels, or two rows of 7 or more).
inline bool supports(const Geometry& g) { return g.stride == 2 && g.ow >= kPixels / 2 && g.oh >= (g.ow >= kPixels ? 1 : 2); }

#ifdef CNN_X86
// Where a tile's output goes and which of its pixels are new: only rows from first_row and columns
// from first_col are stored (a tile that stepped back to end at the map's edge overlaps pixels that
// another tile stored already).
struct TileTarget {
  float* out;  // the tile's first pixel in channel c0
  int64_t c0;
  int first_row, first_col;
};

// Finishes a tile whose sums are in `sums` (28 vectors: [vector][pixel], 16 channels each): channels
// [c0, c0 + 32) below M, pixel p of the tile at to.out + (p / Q) * ow + p % Q in each channel plane.
// Each output row of a channel is gathered from the sums (in L1) and stored contiguously, with the
// residual read the same way (scattering every vector to 16 channel planes measured slower). Kept
// out of line so that the tile's loop has all 32 registers.
template <int Q>
CNN_TARGET_AVX512 __attribute__((noinline)) void store_tile(const float* sums, const Geometry& g, const TileTarget& to,
                                                             int64_t M, const Epilogue& ep) {
  constexpr int R = kPixels / Q;
  const int64_t oplane = g.oh * g.ow;
  // Pixel j of a row, for channel 0 of vector 0: sums[(j) * 16]; rows start Q pixels apart.
  const __m512i pixel = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(16));
  const __mmask16 cols = __mmask16(((1u << Q) - 1) & ~((1u << to.first_col) - 1));
  const __m512 zero = _mm512_setzero_ps(), slope = _mm512_set1_ps(ep.slope);
  const bool vector_epilogue = ep.act != Activation::Sigmoid;
  const int64_t channels = std::min<int64_t>(kPanel, M - to.c0);
  for (int64_t ch = 0; ch < channels; ++ch) {
    const float* s = sums + (ch / 16) * kPixels * 16 + ch % 16;
    const __m512 bias = _mm512_set1_ps(ep.bias && vector_epilogue ? ep.bias[to.c0 + ch] : 0.f);
    for (int r = to.first_row; r < R; ++r) {
      float* dst = to.out + ch * oplane + r * g.ow;
      __m512 v = _mm512_mask_i32gather_ps(zero, cols, pixel, s + r * Q * 16, 4);
      if (vector_epilogue) {
        v = _mm512_add_ps(v, bias);
        if (ep.residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(cols, ep.residual + (dst - ep.out_base)));
        _mm512_mask_storeu_ps(dst, cols, activate_avx512(v, ep.act, slope));
      } else {  // the residual may live where the output goes: read before anything is written
        alignas(64) float sum[16];
        _mm512_store_ps(sum, v);
        for (int j = to.first_col; j < Q; ++j) dst[j] = ep.apply(sum[j], to.c0 + ch, dst + j);
      }
    }
  }
}

// store_tile() for a channel-blocked output (NCHW16c, kernels/blocked.hpp; M a multiple of 16):
// every sum vector is one output vector, stored whole. `y` is the image's output.
template <int Q>
CNN_TARGET_AVX512 __attribute__((noinline)) void store_tile_blocked(const float* sums, const Geometry& g, float* y,
                                                                     int64_t c0, int64_t oy, int64_t x0, const TileTarget& to,
                                                                     int64_t M, const Epilogue& ep) {
  constexpr int R = kPixels / Q;
  const int64_t plane = g.oh * g.ow;
  for (int v = 0; v < 2 && c0 + 16 * v < M; ++v) {
    const int64_t block = c0 / 16 + v;
    for (int r = to.first_row; r < R; ++r)
      for (int j = to.first_col; j < Q; ++j) {
        const int64_t pixel = (oy + r) * g.ow + x0 + j;
        blocked::finish(_mm512_load_ps(sums + (v * kPixels + r * Q + j) * 16), block, y + (block * plane + pixel) * 16, ep);
      }
  }
}

// One step of a tile: tap (ic, ky, kx), whose weights for the panel's 32 channels are at `w`. The
// tile's first row of windows reads row r0 (pixels p < Q, S * L floats apart), its second row r1;
// each row's first pixel reads first0[0] and first1[0] instead (a zero in the left border).
template <int S, int Q, int L>
CNN_TARGET_AVX512 inline __attribute__((always_inline)) void tile_step(__m512 (&acc)[2][kPixels], const float* w,
                                                                       const float* r0, const float* r1,
                                                                       const float* first0, const float* first1) {
  const __m512 w0 = _mm512_load_ps(w), w1 = _mm512_load_ps(w + 16);
  // Hide that the rows move by one float per step: GCC would otherwise keep the broadcasts the next
  // steps share (at stride 2, kx + 2 reuses 13 of 14) in registers it does not have, and spill.
  asm("" : "+r"(r0), "+r"(r1), "+r"(first0), "+r"(first1));
#pragma GCC unroll 14
  for (int p = 0; p < kPixels; ++p) {
    const __m512 b = _mm512_set1_ps(p == 0   ? first0[0]
                                    : p < Q  ? r0[p * S * L]
                                    : p == Q ? first1[0]
                                             : r1[(p - Q) * S * L]);
    acc[0][p] = _mm512_fmadd_ps(w0, b, acc[0][p]);
    acc[1][p] = _mm512_fmadd_ps(w1, b, acc[1][p]);
  }
}

// One tile over input channels [ic0, ic1): channels [c0, c0 + 32) x output pixels in Q-wide rows
// (Q = 14: one row; Q = 7: two rows). `w`: the panel at channel ic0's first tap; `x`: the first
// pixel's window in channel ic0 (top-left tap). `top`: the first row of windows starts one row above
// the image (its first kernel row reads zeros); `left`: each row's first window starts one column
// left of it (its first kernel column reads a zero); tile() reads nothing outside the image. The
// sums start from `sums` (28 vectors) unless `first`, and are left there. Meanwhile `fetch_lines`
// cache lines from `fetch` on (this tile's share of the next channel block's weights) are requested
// into L2, evenly over the steps: at batch 1 the weights come from memory, and requesting a whole
// block at once in the first tile stalled the loads of the current one.
template <int S, int Q, int L>
CNN_TARGET_AVX512 inline void tile(const float* w, const float* x, const Geometry& g, int64_t ic0, int64_t ic1,
                                   float* sums, bool first, bool top, bool left, const float* fetch,
                                   int64_t fetch_lines) {
  constexpr int R = kPixels / Q;  // rows of output pixels
  // What the windows' rows and pixels in the border read instead of the image.
  alignas(64) static const float zeros[kPixels * S * L] = {};
  __m512 acc[2][kPixels];
  if (first) {
    for (int v = 0; v < 2; ++v)
      for (int p = 0; p < kPixels; ++p) acc[v][p] = _mm512_setzero_ps();
  } else {
    for (int v = 0; v < 2; ++v)
      for (int p = 0; p < kPixels; ++p) acc[v][p] = _mm512_load_ps(sums + (v * kPixels + p) * 16);
  }
  // L = 1: x is NCHW, the next channel a plane on. L = 16: x is channel-blocked, the next channel
  // the next float, or the next block's plane after a block's 16th.
  const int64_t plane = g.h * g.w, next_row = S * g.w * L, steps = (ic1 - ic0) * g.kh * g.kw;
  int64_t due = 0;
  auto fetch_share = [&] {
    for (due += fetch_lines; due >= steps; due -= steps, fetch += 16)
      _mm_prefetch(reinterpret_cast<const char*>(fetch), _MM_HINT_T1);
  };
  for (int64_t ic = ic0; ic < ic1; x += L == 1 ? plane : (ic % 16 == 15 ? plane * 16 - 15 : 1), ++ic)
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      // The border is decided per kernel row, not per step: every scalar instruction in the step
      // competes with the multiply-adds for their ports (a per-step choice cost 5-10%).
      const bool above = top && ky == 0;  // the first row of windows lies above the image: zeros
      const float* row = x + ky * g.w * L;
      const float* r0 = above ? zeros : row;
      const int64_t r0_step = above ? 0 : L;
      const float* r1 = row + (R > 1 ? next_row : 0);  // the second row of windows: in the image
      // kx = 0, where the rows' first windows of a left tile read the border's zero.
      fetch_share();
      tile_step<S, Q, L>(acc, w, r0, r1, left ? zeros : r0, left ? zeros : r1);
      w += kPanel;
      for (int64_t kx = 1; kx < g.kw; ++kx, w += kPanel) {
        fetch_share();
        r0 += r0_step, r1 += L;
        tile_step<S, Q, L>(acc, w, r0, r1, r0, r1);
      }
    }
  for (int v = 0; v < 2; ++v)
    for (int p = 0; p < kPixels; ++p) _mm512_store_ps(sums + (v * kPixels + p) * 16, acc[v][p]);
}

// y[M][oh][ow] = epilogue(conv(x)) for one image; x is in_channels planes of h x w (L = 1), or the
// same channel-blocked (L = 16); y NCHW or, with `blocked_out`, channel-blocked.
template <int S, int Q, int L>
CNN_TARGET_AVX512 inline void run_tiles(const Weights& W, const float* x, const Geometry& g, float* y, const Epilogue& ep,
                                        bool blocked_out) {
  constexpr int R = kPixels / Q;
  const int64_t panels = (W.M + kPanel - 1) / kPanel, plane = g.oh * g.ow, taps = g.kh * g.kw;
  const int64_t row_groups = (g.oh + R - 1) / R, col_tiles = (g.ow + Q - 1) / Q, tiles = row_groups * col_tiles;
  // Input channels in blocks whose weights (32 KiB of the panel) stay in L1 while every tile of the
  // item passes over them: the panel is read from memory once, not once per tile (at batch 1 the
  // weights come from memory; ResNet-50's layer4 3x3/2 ran at a third of its in-cache speed).
  const int64_t block = std::max<int64_t>(1, 256 / taps);
  // Items: a panel and a run of its tiles; enough runs for every thread to have a few items.
  const int64_t runs = std::min(tiles, (4 * int64_t(num_threads()) + panels - 1) / panels);
  parallel_for(panels * runs, kPanel * kPixels * tiles / runs * W.taps, [&](int64_t item) {
    const int64_t p = item / runs, t0 = tiles * (item % runs) / runs, t1 = tiles * (item % runs + 1) / runs;
    thread_local AlignedVector partials;  // each tile's 28 vectors of sums between channel blocks
    partials.resize_discard(std::size_t((t1 - t0) * 2 * kPixels * 16));
    for (int64_t ic0 = 0; ic0 < g.in_channels; ic0 += block) {
      const int64_t ic1 = std::min(g.in_channels, ic0 + block);
      const float* w = W.panel(p) + ic0 * taps * kPanel;
      // The next block (of this panel, or the next panel's first), shared out among the tiles.
      const float* next = w + (ic1 - ic0) * taps * kPanel;
      const int64_t next_channels = ic1 < g.in_channels ? std::min(block, g.in_channels - ic1)
                                    : p + 1 < panels    ? std::min(block, g.in_channels)
                                                        : 0;
      const int64_t next_lines = next_channels * taps * (kPanel / 16);
      const int64_t share = (next_lines + (t1 - t0) - 1) / (t1 - t0);
      for (int64_t t = t0; t < t1; ++t) {
        // A last tile that would run past the row steps back to end at the row's end, and a last
        // row group on an odd number of rows redoes the row before it; neither stores pixels twice.
        const int64_t rg = t / col_tiles, ox = t % col_tiles * Q;
        const int64_t oy = std::min(rg * R, g.oh - R), x0 = std::min(ox, g.ow - Q);
        float* sums = partials.data() + (t - t0) * 2 * kPixels * 16;
        const int64_t from = std::min((t - t0) * share, next_lines);
        // The tile's first window, in channel ic0 (above or left of the image where it starts in the
        // border: tile() reads no pixel there).
        const bool top = oy * S < g.pad_top, left = x0 * S < g.pad_left;
        const int64_t origin = ((oy * S - g.pad_top) * g.w + x0 * S - g.pad_left) * L;
        const float* xt = L == 1 ? x + ic0 * g.h * g.w + origin : x + (ic0 / 16) * g.h * g.w * 16 + origin + ic0 % 16;
        tile<S, Q, L>(w, xt, g, ic0, ic1, sums, ic0 == 0, top, left, next + from * 16, std::min(share, next_lines - from));
        if (ic1 == g.in_channels) {
          const TileTarget to{y + p * kPanel * plane + oy * g.ow + x0, p * kPanel, int(rg * R - oy), int(ox - x0)};
          if (blocked_out) store_tile_blocked<Q>(sums, g, y, p * kPanel, oy, x0, to, W.M, ep);
          else store_tile<Q>(sums, g, to, W.M, ep);
        }
      }
    }
  });
}

// The caller checks supports(g). (The tile loop takes the stride as a template parameter; only
// stride 2 is instantiated: at stride 1 the GEMM paths, Winograd and pointwise, are faster.)
// `blocked_in`: x is channel-blocked (NCHW16c, padded per block; in_channels a multiple of 16).
// `blocked_out`: write y channel-blocked (W.M a multiple of 16), the residual read likewise.
inline void run(const Weights& W, const float* x, const Geometry& g, float* y, const Epilogue& ep,
                bool blocked_in = false, bool blocked_out = false) {
  if (blocked_in) {
    if (g.ow >= kPixels) run_tiles<2, kPixels, 16>(W, x, g, y, ep, blocked_out);
    else run_tiles<2, kPixels / 2, 16>(W, x, g, y, ep, blocked_out);
  } else {
    if (g.ow >= kPixels) run_tiles<2, kPixels, 1>(W, x, g, y, ep, blocked_out);
    else run_tiles<2, kPixels / 2, 1>(W, x, g, y, ep, blocked_out);  // two rows of 7 to 13 pixels per tile
  }
}
#endif

}  // namespace direct
}  // namespace kernels
}  // namespace cnn

CNN_KERNELS_END
