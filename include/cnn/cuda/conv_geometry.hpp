// cnn/cuda/conv_geometry.hpp — the index arithmetic of the GPU convolution, in plain C++.
//
// The CUDA backend runs every convolution (and nothing else) as an implicit GEMM on NCHW tensors,
// one GEMM per group:
//
//   C[m][j] = sum_k A[m][k] * B[k][j]      m: output channel of the group (M = cout/groups)
//                                          k: (ci, r, s) of the window   (K = cin/groups * kh * kw)
//                                          j: (n, oy, ox) of the output  (columns = N * OH * OW)
//
// A is the weight tensor, repacked once k-major and zero-padded to whole tiles (pack_weights());
// B is never built: a kernel reads B[k][j] straight from the input through a per-layer table of
// what each k adds to a column's window origin (make_k_table()). This header holds that
// arithmetic for the kernels (conv_tiles.hpp, conv.cuh) and for the host code. It includes nothing
// of the engine, so that nvcc compiles the kernels without the CPU code.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#if defined(__CUDACC__)
#define CNN_HOST_DEVICE __host__ __device__
#else
#define CNN_HOST_DEVICE
#endif

namespace cnn::cuda {

// Block tile of the convolution kernels: kTileM output channels x kTileN columns, kTileK deep.
constexpr int kTileM = 128, kTileN = 128, kTileK = 32;

// A convolution layer's settings (Conv2dOptions without the engine's types).
struct ConvParams {
  int in_channels, out_channels, kh, kw, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups;
};

// The epilogue's activations, numbered as cnn::Activation (the host code checks that they agree).
enum ActivationCode { kActNone = 0, kActReLU = 1, kActLeakyReLU = 2, kActSigmoid = 3, kActReLU6 = 4 };

// A row of B that lies outside every image (k >= K, the padding up to a whole tile).
constexpr int kOutsideRow = 1 << 29;

// What element k of the unfolded window adds to a column: `offset` to its input address, and
// (dy, dx) to its window origin (oy*stride - pad, ox*stride - pad), to tell padding from pixels.
struct KEntry {
  int offset;  // ci*H*W + dy*W + dx
  int dy, dx;  // r*dilation_h, s*dilation_w; dy = kOutsideRow for the padding rows
  int unused;  // keeps the entry 16 bytes: one vector load on the GPU
};

struct ConvGeometry {
  int batch, cin, h, w;        // the input
  int cout, oh, ow;            // the output
  int stride_h, stride_w, pad_h, pad_w;
  int groups, cin_g, cout_g;
  int k;                       // cin_g * kh * kw
  int k_padded;                // k rounded up to kTileK
  int m_padded;                // cout_g rounded up to kTileM

  CNN_HOST_DEVICE int64_t columns() const { return int64_t(batch) * oh * ow; }
  CNN_HOST_DEVICE int64_t plane() const { return int64_t(oh) * ow; }
};

inline int round_up(int v, int to) { return (v + to - 1) / to * to; }

inline ConvGeometry make_geometry(const ConvParams& o, int batch, int channels, int h, int w) {
  ConvGeometry g{};
  g.batch = batch, g.cin = channels, g.h = h, g.w = w;
  g.cout = o.out_channels;
  g.oh = (h + 2 * o.pad_h - o.dilation_h * (o.kh - 1) - 1) / o.stride_h + 1;
  g.ow = (w + 2 * o.pad_w - o.dilation_w * (o.kw - 1) - 1) / o.stride_w + 1;
  g.stride_h = o.stride_h, g.stride_w = o.stride_w, g.pad_h = o.pad_h, g.pad_w = o.pad_w;
  g.groups = o.groups;
  g.cin_g = o.in_channels / o.groups, g.cout_g = o.out_channels / o.groups;
  g.k = g.cin_g * o.kh * o.kw;
  g.k_padded = round_up(g.k, kTileK);
  g.m_padded = round_up(g.cout_g, kTileM);
  return g;
}

// k runs over (ci, r, s) in the order of PyTorch's weight layout [cout][cin/groups][kh][kw], so A's
// rows are the weight tensor's rows as they lie.
inline std::vector<KEntry> make_k_table(const ConvParams& o, const ConvGeometry& g) {
  std::vector<KEntry> t(std::size_t(g.k_padded), KEntry{0, kOutsideRow, 0, 0});
  int k = 0;
  for (int ci = 0; ci < g.cin_g; ++ci)
    for (int r = 0; r < o.kh; ++r)
      for (int s = 0; s < o.kw; ++s, ++k) {
        const int dy = r * o.dilation_h, dx = s * o.dilation_w;
        t[std::size_t(k)] = KEntry{ci * g.h * g.w + dy * g.w + dx, dy, dx, 0};
      }
  return t;
}

// Weights [cout][cin/groups][kh][kw] -> per group a k-major [k_padded][m_padded] matrix with zeros
// beyond K and M: a tile of A is then kTileK rows of kTileM contiguous floats, read without bounds
// checks.
inline std::vector<float> pack_weights(const float* w, const ConvGeometry& g) {
  std::vector<float> p(std::size_t(g.groups) * g.k_padded * g.m_padded, 0.f);
  for (int grp = 0; grp < g.groups; ++grp)
    for (int m = 0; m < g.cout_g; ++m)
      for (int k = 0; k < g.k; ++k)
        p[(std::size_t(grp) * g.k_padded + k) * g.m_padded + m] = w[(std::size_t(grp) * g.cout_g + m) * g.k + k];
  return p;
}

// Column j of a group's B: the address of its window origin in the input (which may lie in the
// padding: only base + entry.offset of an inside element is ever read), and that origin.
struct Column {
  int64_t base;    // (n*cin + group*cin_g)*H*W + y0*W + x0
  int y0, x0;
  bool valid;      // j < columns (the last tile runs past the end)
};

CNN_HOST_DEVICE inline Column decode_column(const ConvGeometry& g, int64_t j, int group) {
  Column c{0, 0, 0, j < g.columns()};
  if (!c.valid) return c;
  const int64_t n = j / g.plane();
  const int p = int(j - n * g.plane());
  const int oy = p / g.ow, ox = p - oy * g.ow;
  c.y0 = oy * g.stride_h - g.pad_h;
  c.x0 = ox * g.stride_w - g.pad_w;
  c.base = (n * g.cin + int64_t(group) * g.cin_g) * g.h * g.w + int64_t(c.y0) * g.w + c.x0;
  return c;
}

// B[k][j]: the input element, or 0 in the padding, past the last column or past K.
CNN_HOST_DEVICE inline bool inside(const ConvGeometry& g, const Column& c, const KEntry& e) {
  const int y = c.y0 + e.dy, x = c.x0 + e.dx;
  return c.valid && y >= 0 && y < g.h && x >= 0 && x < g.w;
}

// Where C[m][j] goes in the NCHW output (and where its residual comes from).
CNN_HOST_DEVICE inline int64_t output_index(const ConvGeometry& g, int64_t j, int group, int m) {
  const int64_t n = j / g.plane(), p = j - n * g.plane();
  return (n * g.cout + int64_t(group) * g.cout_g + m) * g.plane() + p;
}

// The activations the kernels apply after bias and residual: the CPU Epilogue's definitions.
CNN_HOST_DEVICE inline float activate(float v, int act, float slope) {
  switch (act) {
    case kActReLU: return v > 0.f ? v : 0.f;
    case kActLeakyReLU: return v > 0.f ? v : v * slope;
    case kActSigmoid: return 1.f / (1.f + expf(-v));
    case kActReLU6: return v > 0.f ? (v < 6.f ? v : 6.f) : 0.f;
    default: return v;
  }
}

}  // namespace cnn::cuda
