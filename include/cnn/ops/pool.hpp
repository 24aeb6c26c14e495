// cnn/ops/pool.hpp — MaxPool2d, AvgPool2d and AdaptiveAvgPool2d with PyTorch's exact windows:
// output size floor((H + 2p - d(k-1) - 1) / s) + 1 (ceil with ceil_mode, minus one if the last
// window would start in the padding), AvgPool's divisor counting padding or not, and adaptive
// windows [floor(i*H/oh), ceil((i+1)*H/oh)).
#pragma once
#include <algorithm>
#include <limits>

#include "../kernels/pool.hpp"
#include "layer.hpp"

namespace cnn {

struct Pool2dOptions {
  int kh = 2, kw = 2;
  int stride_h = 0, stride_w = 0;  // 0 = kernel size, as in PyTorch
  int pad_h = 0, pad_w = 0;
  int dilation_h = 1, dilation_w = 1;  // max pooling only
  bool ceil_mode = false;
  bool count_include_pad = true;  // average pooling only

  Pool2dOptions& kernel(int k) { kh = kw = k; return *this; }
  Pool2dOptions& stride(int s) { stride_h = stride_w = s; return *this; }
  Pool2dOptions& padding(int p) { pad_h = pad_w = p; return *this; }
  Pool2dOptions& dilation(int d) { dilation_h = dilation_w = d; return *this; }
  Pool2dOptions& ceil(bool c) { ceil_mode = c; return *this; }
  Pool2dOptions& include_pad(bool c) { count_include_pad = c; return *this; }
  int sh() const { return stride_h ? stride_h : kh; }
  int sw() const { return stride_w ? stride_w : kw; }
};

// PyTorch's pooling output size; the caller ensures the padded input covers one window (span >= 0).
inline int64_t pooled_size(int64_t in, int k, int pad, int stride, int dilation, bool ceil_mode) {
  const int64_t span = in + 2 * pad - dilation * (k - 1) - 1;
  int64_t out = (span + (ceil_mode ? stride - 1 : 0)) / stride + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

enum class PoolKind { Max, Avg };

class Pool2d : public Layer {
 public:
  Pool2d(std::string name, PoolKind kind, Pool2dOptions o) : Layer(std::move(name)), kind_(kind), o_(o) {
    if (o.kh <= 0 || o.kw <= 0 || o.sh() <= 0 || o.sw() <= 0 || o.dilation_h <= 0 || o.dilation_w <= 0 || o.pad_h < 0 ||
        o.pad_w < 0)
      layer_error("kernel, stride and dilation must be positive and padding non-negative");
    if (kind == PoolKind::Avg && (o.dilation_h != 1 || o.dilation_w != 1)) layer_error("AvgPool2d has no dilation");
    // PyTorch: "pad should be at most half of effective kernel size".
    if (o.pad_h > ((o.kh - 1) * o.dilation_h + 1) / 2 || o.pad_w > ((o.kw - 1) * o.dilation_w + 1) / 2)
      layer_error("padding must be at most half of the kernel size");
  }
  std::string type() const override { return kind_ == PoolKind::Max ? "MaxPool2d" : "AvgPool2d"; }
  PoolKind kind() const { return kind_; }
  const Pool2dOptions& options() const { return o_; }
  std::string describe() const override {
    std::string s = std::to_string(o_.kh) + "x" + std::to_string(o_.kw) + " s" + std::to_string(o_.sh());
    if (o_.pad_h || o_.pad_w) s += " p" + std::to_string(o_.pad_h);
    if (o_.ceil_mode) s += " ceil";
    return s;
  }

  Shape output_shape(const std::vector<Shape>& in) const override {
    expect_inputs(in);
    const Shape& s = in[0];
    if (s.h + 2 * o_.pad_h < (o_.kh - 1) * o_.dilation_h + 1 || s.w + 2 * o_.pad_w < (o_.kw - 1) * o_.dilation_w + 1)
      layer_error("input " + s.str() + " is smaller than the pooling window");
    const int64_t oh = pooled_size(s.h, o_.kh, o_.pad_h, o_.sh(), o_.dilation_h, o_.ceil_mode);
    const int64_t ow = pooled_size(s.w, o_.kw, o_.pad_w, o_.sw(), o_.dilation_w, o_.ceil_mode);
    if (oh <= 0 || ow <= 0) layer_error("input " + s.str() + " gives an empty output");
    return {s.n, s.c, oh, ow};
  }

  // Max pooling runs on channel-blocked tensors between blocked layers (ResNet's stem and layer1):
  // a window's 16-channel vectors reduced whole, no conversion on either side.
  bool runs_blocked(const std::vector<Shape>& in) const override {
#ifdef CNN_X86
    return blocked_enabled() && active_isa() == Isa::AVX512 && kind_ == PoolKind::Max && !in.empty() && in[0].c % 16 == 0;
#else
    (void)in;
    return false;
#endif
  }

  void forward(const std::vector<ConstTensorView>& in, TensorView y, float*) const override {
    const ConstTensorView x = in[0];
    if (x.blocked || y.blocked) return forward_blocked(x, y);
    if (kind_ == PoolKind::Max && o_.dilation_w == 1) return forward_max_separable(x, y);
    forward_direct(x, y);
  }

  void forward_blocked(ConstTensorView x, TensorView y) const {
#ifdef CNN_X86
    if (!x.blocked || !y.blocked || !runs_blocked({x.shape})) layer_error("no channel-blocked path for this input");
    const int64_t H = x.shape.h, W = x.shape.w, OH = y.shape.h, OW = y.shape.w, blocks = x.shape.n * x.shape.c / 16;
    parallel_for(blocks, OH * OW * 16 * o_.kh * o_.kw, [&](int64_t b) {
      kernels::max_pool_block_avx512(x.data + b * H * W * 16, H, W, y.data + b * OH * OW * 16, OH, OW, o_.kh, o_.kw,
                                     o_.sh(), o_.sw(), o_.pad_h, o_.pad_w, o_.dilation_h, o_.dilation_w);
    });
#else
    (void)x, (void)y;
    layer_error("channel-blocked tensors need an x86 CPU with AVX-512");
#endif
  }

  // The definition: every window evaluated on its own (also the path for dilated max pooling and
  // for average pooling).
  void forward_direct(ConstTensorView x, TensorView y) const {
    const int64_t H = x.shape.h, W = x.shape.w, OH = y.shape.h, OW = y.shape.w;
    parallel_for(x.shape.n * x.shape.c, OH * OW * o_.kh * o_.kw, [&](int64_t nc) {
      const float* src = x.data + nc * H * W;
      float* dst = y.data + nc * OH * OW;
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          const int64_t y0 = oy * o_.sh() - o_.pad_h, x0 = ox * o_.sw() - o_.pad_w;
          if (kind_ == PoolKind::Max) {
            float m = -std::numeric_limits<float>::infinity();
            for (int ky = 0; ky < o_.kh; ++ky) {
              const int64_t iy = y0 + ky * o_.dilation_h;
              if (iy < 0 || iy >= H) continue;
              for (int kx = 0; kx < o_.kw; ++kx) {
                const int64_t ix = x0 + kx * o_.dilation_w;
                if (ix >= 0 && ix < W) m = kernels::nan_max(m, src[iy * W + ix]);
              }
            }
            dst[oy * OW + ox] = m;
          } else {
            int64_t y1 = std::min<int64_t>(y0 + o_.kh, H + o_.pad_h), x1 = std::min<int64_t>(x0 + o_.kw, W + o_.pad_w);
            const int64_t padded_area = (y1 - y0) * (x1 - x0);
            const int64_t ys = std::max<int64_t>(y0, 0), xs = std::max<int64_t>(x0, 0);
            y1 = std::min(y1, H);
            x1 = std::min(x1, W);
            float s = 0.f;
            for (int64_t iy = ys; iy < y1; ++iy)
              for (int64_t ix = xs; ix < x1; ++ix) s += src[iy * W + ix];
            const int64_t div = o_.count_include_pad ? padded_area : (y1 - ys) * (x1 - xs);
            dst[oy * OW + ox] = div > 0 ? s / float(div) : 0.f;
          }
        }
    });
  }

 private:
  // Max is separable: first the vertical maximum of each column over the window's rows (a
  // contiguous, vectorisable pass), then the horizontal maximum over that one row.
  void forward_max_separable(ConstTensorView x, TensorView y) const {
    const int64_t H = x.shape.h, W = x.shape.w, OH = y.shape.h, OW = y.shape.w;
    parallel_for(x.shape.n * x.shape.c, OH * W * o_.kh, [&](int64_t nc) {
      const float* src = x.data + nc * H * W;
      float* dst = y.data + nc * OH * OW;
      thread_local std::vector<float> col;
      thread_local std::vector<const float*> rows;
      col.resize(static_cast<std::size_t>(W));
      rows.resize(static_cast<std::size_t>(o_.kh));
      for (int64_t oy = 0; oy < OH; ++oy) {
        int n_rows = 0;
        for (int ky = 0; ky < o_.kh; ++ky) {
          const int64_t iy = oy * o_.sh() - o_.pad_h + ky * o_.dilation_h;
          if (iy >= 0 && iy < H) rows[n_rows++] = src + iy * W;
        }
        kernels::max_of_rows(rows.data(), n_rows, col.data(), W);
        // Windows entirely inside the row: the vector loop for the usual 2 and 3 taps at stride 2.
        const int64_t sw = o_.sw(), first = std::min(OW, (o_.pad_w + sw - 1) / sw);
        const int64_t span = W - o_.kw + o_.pad_w;  // last window start (padded coordinates) inside the row
        const int64_t last = span < 0 ? first : std::max(first, std::min(OW, span / sw + 1));
        float* out = dst + oy * OW;
        const float* c = col.data() - o_.pad_w;  // c[ox * sw + kx] is window tap kx of output ox
        if ((o_.kw == 2 || o_.kw == 3) && sw == 2) {
          kernels::max_stride2(c + 2 * first, o_.kw, out + first, last - first);
        } else {
          for (int64_t ox = first; ox < last; ++ox) {
            float m = c[ox * sw];
            for (int kx = 1; kx < o_.kw; ++kx) m = kernels::nan_max(m, c[ox * sw + kx]);
            out[ox] = m;
          }
        }
        for (int64_t ox = 0; ox < OW; ++ox) {  // windows touching the padding or the row's end
          if (ox == first) ox = last;
          if (ox >= OW) break;
          const int64_t x0 = ox * sw - o_.pad_w;
          float m = -std::numeric_limits<float>::infinity();
          for (int kx = 0; kx < o_.kw; ++kx) {
            const int64_t ix = x0 + kx;
            if (ix >= 0 && ix < W) m = kernels::nan_max(m, col[ix]);
          }
          out[ox] = m;
        }
      }
    });
  }

  PoolKind kind_;
  Pool2dOptions o_;
};

// AdaptiveAvgPool2d(oh, ow); (1, 1) is global average pooling.
class AdaptiveAvgPool2d : public Layer {
 public:
  AdaptiveAvgPool2d(std::string name, int64_t oh, int64_t ow) : Layer(std::move(name)), oh_(oh), ow_(ow) {
    if (oh <= 0 || ow <= 0) layer_error("output size must be positive");
  }
  std::string type() const override { return "AdaptiveAvgPool2d"; }
  std::string describe() const override { return std::to_string(oh_) + "x" + std::to_string(ow_); }
  Shape output_shape(const std::vector<Shape>& in) const override {
    expect_inputs(in);
    if (in[0].h <= 0 || in[0].w <= 0) layer_error("empty input " + in[0].str());
    return {in[0].n, in[0].c, oh_, ow_};
  }
  void forward(const std::vector<ConstTensorView>& in, TensorView y, float*) const override {
    const ConstTensorView x = in[0];
    const int64_t H = x.shape.h, W = x.shape.w;
    parallel_for(x.shape.n * x.shape.c, H * W, [&](int64_t nc) {
      const float* src = x.data + nc * H * W;
      float* dst = y.data + nc * oh_ * ow_;
      for (int64_t oy = 0; oy < oh_; ++oy) {
        const int64_t y0 = oy * H / oh_, y1 = ((oy + 1) * H + oh_ - 1) / oh_;
        for (int64_t ox = 0; ox < ow_; ++ox) {
          const int64_t x0 = ox * W / ow_, x1 = ((ox + 1) * W + ow_ - 1) / ow_;
          float s = 0.f;
          for (int64_t iy = y0; iy < y1; ++iy)
            for (int64_t ix = x0; ix < x1; ++ix) s += src[iy * W + ix];
          dst[oy * ow_ + ox] = s / float((y1 - y0) * (x1 - x0));
        }
      }
    });
  }

 private:
  int64_t oh_, ow_;
};

}  // namespace cnn
