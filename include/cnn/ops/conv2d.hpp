// cnn/ops/conv2d.hpp — 2-D convolution with PyTorch's semantics (stride, padding, dilation,
// groups, optional bias), plus what the graph fuses into it: a folded BatchNorm and an activation.
//
// conv2d_reference() is the definition (a direct 7-deep loop). Conv2d::forward() runs
//   - 3x3 stride-1 convolutions by Winograd F(4x4,3x3) where that is cheaper (kernels/winograd.hpp),
//   - depthwise convolutions (one input and one output channel per group) along output rows
//     (kernels/depthwise.hpp),
//   - stride-2 convolutions, with AVX-512, directly on the image (kernels/direct_conv.hpp),
//   - 1x1 stride-1 unpadded convolutions as one GEMM on the input itself,
//   - everything else as GEMM per group on the image unfolded on the fly (implicit im2col); with
//     set_bf16(true) and AVX512_BF16 these GEMMs multiply in bf16 (kernels/gemm_bf16.hpp),
// with weights transformed and packed once at load (prepare()). Where a graph hands it channel-
// blocked views (runs_blocked() and the writes_*() hooks below), the 1x1, Winograd and direct
// kernels run on that layout instead (kernels/blocked.hpp).
#pragma once
#include <algorithm>
#include <cmath>
#include <memory>
#include <mutex>
#include <random>
#include <vector>

#include "../kernels/blocked.hpp"
#include "../kernels/depthwise.hpp"
#include "../kernels/direct_conv.hpp"
#include "../kernels/gemm_bf16.hpp"
#include "../kernels/linear.hpp"
#include "../kernels/rowconv.hpp"
#include "../kernels/winograd.hpp"
#include "layer.hpp"

namespace cnn {

struct Conv2dOptions {
  int64_t in_channels = 0, out_channels = 0;
  int kh = 1, kw = 1;
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;
  int dilation_h = 1, dilation_w = 1;
  int groups = 1;
  bool bias = true;

  Conv2dOptions& kernel(int k) { kh = kw = k; return *this; }
  Conv2dOptions& stride(int s) { stride_h = stride_w = s; return *this; }
  Conv2dOptions& padding(int p) { pad_h = pad_w = p; return *this; }
  Conv2dOptions& dilation(int d) { dilation_h = dilation_w = d; return *this; }
  Conv2dOptions& group(int g) { groups = g; return *this; }
  Conv2dOptions& with_bias(bool b) { bias = b; return *this; }

  int64_t out_h(int64_t h) const { return (h + 2 * pad_h - dilation_h * (kh - 1) - 1) / stride_h + 1; }
  int64_t out_w(int64_t w) const { return (w + 2 * pad_w - dilation_w * (kw - 1) - 1) / stride_w + 1; }
};

// The definition. weight: [out, in/groups, kh, kw]; bias: [out] or nullptr.
inline void conv2d_reference(ConstTensorView x, const float* weight, const float* bias, const Conv2dOptions& o,
                             TensorView y, const Epilogue& post = {}) {
  const int64_t cin_g = o.in_channels / o.groups, cout_g = o.out_channels / o.groups;
  for (int64_t n = 0; n < y.shape.n; ++n)
    for (int64_t oc = 0; oc < o.out_channels; ++oc) {
      const int64_t g = oc / cout_g;
      for (int64_t oy = 0; oy < y.shape.h; ++oy)
        for (int64_t ox = 0; ox < y.shape.w; ++ox) {
          float s = bias ? bias[oc] : 0.f;
          for (int64_t ic = 0; ic < cin_g; ++ic)
            for (int ky = 0; ky < o.kh; ++ky)
              for (int kx = 0; kx < o.kw; ++kx) {
                const int64_t iy = oy * o.stride_h - o.pad_h + ky * o.dilation_h;
                const int64_t ix = ox * o.stride_w - o.pad_w + kx * o.dilation_w;
                if (iy < 0 || iy >= x.shape.h || ix < 0 || ix >= x.shape.w) continue;
                s += x.at(n, g * cin_g + ic, iy, ix) * weight[((oc * cin_g + ic) * o.kh + ky) * o.kw + kx];
              }
          y.at(n, oc, oy, ox) = post.apply(s, oc, &y.at(n, oc, oy, ox));
        }
    }
}

// Implicit im2col: packs rows (ic, ky, kx) x columns (oy, ox) of the unfolded image straight
// into GEMM panels, without materialising the unfolded matrix.
struct Im2colSource {
  const float* x;  // first channel of the group
  int64_t h, w, oh, ow;
  Conv2dOptions o;

  static void pack(const void* ctx, int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t nr, float* out) {
    const Im2colSource& s = *static_cast<const Im2colSource*>(ctx);
    const Conv2dOptions& o = s.o;
    const int64_t taps = int64_t(o.kh) * o.kw, sw = o.stride_w;
    // The columns cut into runs along one output row within one panel; they are the same for
    // every row k of the block, so found once (index arithmetic per k and run cost more than
    // the copies at stride 2).
    struct Run {
      int64_t dst, oy, ox, len;  // dst: offset in the panel's row
    };
    thread_local std::vector<Run> runs;
    runs.clear();
    for (int64_t p = 0; p < nc; p += nr) {
      const int64_t cols = std::min(nr, nc - p);
      int64_t oy = (j0 + p) / s.ow, ox = (j0 + p) % s.ow;
      for (int64_t c = 0; c < cols; ox = 0, ++oy) {
        const int64_t len = std::min(cols - c, s.ow - ox);
        runs.push_back({p * kc + c, oy, ox, len});
        c += len;
      }
    }
    // ceil(v / sw) for v >= 0, without a division at the usual strides.
    auto ceil_div = [sw](int64_t v) { return sw == 1 ? v : sw == 2 ? (v + 1) >> 1 : (v + sw - 1) / sw; };
    for (int64_t k = 0; k < kc; ++k) {
      const int64_t r = k0 + k, ic = r / taps, ky = (r / o.kw) % o.kh, kx = r % o.kw;
      const float* src = s.x + ic * s.h * s.w;
      const int64_t dy = ky * o.dilation_h - o.pad_h, dx = kx * o.dilation_w - o.pad_w;
      for (int64_t p = 0; p < nc; p += nr) {  // panel padding
        const int64_t cols = std::min(nr, nc - p);
        std::fill(out + p * kc + k * nr + cols, out + p * kc + k * nr + nr, 0.f);
      }
      for (const Run& run : runs) {
        float* d = out + run.dst + k * nr;
        const int64_t iy = run.oy * o.stride_h + dy;
        if (iy < 0 || iy >= s.h) {
          std::fill(d, d + run.len, 0.f);
          continue;
        }
        // Elements t in [lo, hi) read input columns x0 + t * sw inside the row; the rest is padding.
        const int64_t x0 = run.ox * sw + dx;
        const int64_t lo = std::min(x0 >= 0 ? 0 : ceil_div(-x0), run.len);
        const int64_t hi = std::clamp<int64_t>(s.w - x0 <= 0 ? 0 : ceil_div(s.w - x0), lo, run.len);
        const float* row = src + iy * s.w;
        std::fill(d, d + lo, 0.f);
        if (sw == 1)
          kernels::copy_row(row + x0 + lo, d + lo, hi - lo);
        else if (sw == 2)  // scalar, this loop took 25-40% of a stride-2 convolution's time
          kernels::copy_row_stride2(row + x0 + 2 * lo, d + lo, hi - lo);
        else
          for (int64_t t = lo; t < hi; ++t) d[t] = row[x0 + t * sw];
        std::fill(d + hi, d + run.len, 0.f);
      }
    }
  }
};

class Conv2d : public Layer {
 public:
  Conv2d(std::string name, Conv2dOptions o) : Layer(std::move(name)), o_(o) {
    if (o.in_channels <= 0 || o.out_channels <= 0) layer_error("channel counts must be positive");
    if (o.groups <= 0 || o.in_channels % o.groups || o.out_channels % o.groups)
      layer_error("groups must divide in_channels and out_channels");
    if (o.kh <= 0 || o.kw <= 0 || o.stride_h <= 0 || o.stride_w <= 0 || o.dilation_h <= 0 || o.dilation_w <= 0 ||
        o.pad_h < 0 || o.pad_w < 0)
      layer_error("kernel, stride and dilation must be positive and padding non-negative");
    weight_.dims = {o.out_channels, o.in_channels / o.groups, o.kh, o.kw};
    if (o.bias) bias_.dims = {o.out_channels};
  }

  std::string type() const override { return "Conv2d"; }
  std::string describe() const override {
    std::string s = std::to_string(o_.kh) + "x" + std::to_string(o_.kw);
    if (o_.stride_h != 1 || o_.stride_w != 1) s += " s" + std::to_string(o_.stride_h);
    if (o_.pad_h || o_.pad_w) s += " p" + std::to_string(o_.pad_h);
    if (o_.dilation_h != 1) s += " d" + std::to_string(o_.dilation_h);
    if (o_.groups != 1) s += " g" + std::to_string(o_.groups);
    if (residual_) s += " +residual";
    if (act_ != Activation::None) s += std::string(" +") + activation_name(act_);
    return s;
  }
  const Conv2dOptions& options() const { return o_; }
  // With a fused residual (a ResNet shortcut folded in by Graph::fuse()), input 1 is added to the
  // output before the activation.
  int num_inputs() const override { return residual_ ? 2 : 1; }
  bool accepts_residual() const { return !residual_ && act_ == Activation::None; }
  // The output may take the residual's buffer: every path reads an element's residual before it
  // writes that element (the GEMM, which writes partial sums, starts from the residual instead).
  // Saves the output's write-allocate reads (ResNet-50 at 2 threads: layer1's 256-channel 56x56
  // layers with a residual 0.54-0.67 -> 0.40-0.52 ms).
  int in_place_input() const override { return residual_ ? 1 : -1; }
  void set_residual() { residual_ = true; }

  Shape output_shape(const std::vector<Shape>& in) const override {
    expect_inputs(in);
    const Shape& s = in[0];
    if (s.c != o_.in_channels)
      layer_error("input has " + std::to_string(s.c) + " channels, expected " + std::to_string(o_.in_channels));
    const int64_t oh = o_.out_h(s.h), ow = o_.out_w(s.w);
    if (oh <= 0 || ow <= 0) layer_error("input " + s.str() + " is smaller than the kernel");
    const Shape out{s.n, o_.out_channels, oh, ow};
    if (residual_ && in[1] != out) layer_error("residual " + in[1].str() + " differs from the output " + out.str());
    return out;
  }

  // Scratch: a zero-padded copy of one image when the GEMM path unfolds a padded input.
  // Or, for a small output map, the unfolded and transposed operands of forward_small_map(). None
  // for the depth-wise and row kernels.
  int64_t workspace_floats(const std::vector<Shape>& in) const override {
    if (is_depthwise()) return 0;
    const int64_t P = o_.out_h(in[0].h) * o_.out_w(in[0].w);
    const int64_t K = o_.in_channels / o_.groups * o_.kh * o_.kw, cout_g = o_.out_channels / o_.groups;
    const int64_t small = small_map(P) ? 2 * K * P + P * cout_g : 0;
    if (is_pointwise() || (o_.pad_h == 0 && o_.pad_w == 0)) return small;
    const Shape out = output_shape_of(in[0]);
    if (use_rowconv(in[0], out)) return 0;  // reads the image as it lies
    if (use_direct(in[0], out) && direct_pads_itself(in[0], out)) return small;  // no padded copy
    return std::max(small, in[0].c * (in[0].h + 2 * o_.pad_h) * (in[0].w + 2 * o_.pad_w));
  }

  std::vector<ParamSlot> params() override {
    std::vector<ParamSlot> p{{"weight", &weight_, weight_.dims}};
    if (o_.bias) p.push_back({"bias", &bias_, bias_.dims});
    return p;
  }
  void prepare() override {
    // Fold a BatchNorm that followed this conv: w' = w * scale[oc], b' = b * scale + shift.
    if (!bn_scale_.empty()) {
      const int64_t per_oc = weight_.numel() / o_.out_channels;
      std::vector<float> b(static_cast<std::size_t>(o_.out_channels), 0.f);
      for (int64_t oc = 0; oc < o_.out_channels; ++oc) {
        const double sc = bn_scale_[oc];
        for (int64_t i = 0; i < per_oc; ++i) weight_.values[oc * per_oc + i] = float(weight_.values[oc * per_oc + i] * sc);
        b[oc] = float((o_.bias ? double(bias_.values[oc]) : 0.0) * sc + bn_shift_[oc]);
      }
      bias_.values = std::move(b);
      bias_.dims = {o_.out_channels};
      bn_scale_.clear();
      bn_shift_.clear();
    }
    // Weights in GEMM panel form, once: one packed matrix (cout/groups x cin/groups*kh*kw) per group.
    packed_.clear();
    for (auto& w : winograd_) w.reset();
    direct_.reset();
    bf16_packed_.clear();
    blocked_panels_ = AlignedVector();
    blocked_winograd_.reset();
    if (!is_depthwise()) {
      const int64_t cout_g = o_.out_channels / o_.groups, K = weight_.numel() / o_.out_channels;
      for (int64_t g = 0; g < o_.groups; ++g)
        packed_.push_back(kernels::pack_a(cout_g, K, ConstMat{weight_.values.data() + g * cout_g * K, K, 1}));
    }
  }

  // Absorb y = x * scale + shift per output channel (a BatchNorm in eval mode). Graph::fuse()
  // calls this before prepare().
  void fold_affine(const std::vector<double>& scale, const std::vector<double>& shift) {
    bn_scale_ = scale;
    bn_shift_ = shift;
  }
  bool accepts_activation() const override { return act_ == Activation::None; }
  void set_activation(Activation a, float slope) override { act_ = a, slope_ = slope; }

  const Param& weight() const { return weight_; }
  const float* bias_data() const { return bias_.values.empty() ? nullptr : bias_.values.data(); }
  Epilogue epilogue() const { return Epilogue{bias_data(), act_, slope_}; }

  bool is_pointwise() const {
    return o_.kh == 1 && o_.kw == 1 && o_.stride_h == 1 && o_.stride_w == 1 && o_.pad_h == 0 && o_.pad_w == 0;
  }
  // One input and one output channel per group (a single-channel convolution counts too).
  bool is_depthwise() const { return o_.groups == o_.in_channels && o_.groups == o_.out_channels; }

  // The channel-blocked paths (kernels/blocked.hpp), where they measured faster in ResNet-50 than
  // the NCHW ones (docs/performance.md, "Channel-blocked stages"): inputs of at least 56x56 pixels
  // with channels in 16s, for 1x1 convolutions (stride 1 or 2; 0.75-0.85x the GEMM's time), the
  // strided direct kernel, and Winograd F(4x4) layers of at most 64 channels in and out, whose
  // transformed weights stay in L2 (0.76x). On smaller maps and wider layers they were no faster.
  bool runs_blocked(const std::vector<Shape>& in) const override {
#ifdef CNN_X86
    if (!blocked_enabled() || active_isa() != Isa::AVX512 || in.empty()) return false;
    if (o_.groups != 1 || o_.dilation_h != 1 || o_.dilation_w != 1) return false;
    if (o_.in_channels % kernels::blocked::kLanes || o_.out_channels % kernels::blocked::kLanes) return false;
    const Shape& s = in[0];
    if (s.h * s.w < 56 * 56 || use_rowconv(s, output_shape_of(s))) return false;
    // In bf16 the 1x1 layers run as bf16 GEMMs on NCHW (1.6-1.8x the fp32 GEMM), not blocked in fp32.
    if (is_blocked_pointwise())
      return !(bf16_enabled() && kernels::bf16_available()) && kernels::blocked::pointwise_supports(pointwise_geometry(s));
    if (use_direct(s, output_shape_of(s))) return true;
    return winograd_shape() && winograd_enabled() && o_.in_channels <= 64 && o_.out_channels <= 64;
#else
    (void)in;
    return false;
#endif
  }
  // Running blocked, the 1x1 and direct kernels can also store NCHW (through 16x16 transposes, or
  // the direct kernel's own gathering store), where the next layers run on NCHW.
  bool writes_nchw_from_blocked(const std::vector<Shape>& in) const override {
    if (!runs_blocked(in)) return false;
    return is_blocked_pointwise() || use_direct(in[0], output_shape_of(in[0]));
  }
  // A strided convolution on the direct kernel (ResNet's stem) stores its channel-lane tiles as
  // they are into a blocked output: no gathering store, and no conversion before the max pool.
  bool writes_blocked_from_nchw(const std::vector<Shape>& in) const override {
#ifdef CNN_X86
    if (!blocked_enabled() || in.empty() || o_.out_channels % kernels::blocked::kLanes || residual_) return false;
    return use_direct(in[0], output_shape_of(in[0]));
#else
    (void)in;
    return false;
#endif
  }
  bool is_blocked_pointwise() const {
    return o_.kh == 1 && o_.kw == 1 && o_.pad_h == 0 && o_.pad_w == 0 && o_.stride_h == o_.stride_w;
  }

  void forward(const std::vector<ConstTensorView>& in, TensorView y, float* workspace) const override {
    const ConstTensorView x = in[0];
    Epilogue ep = epilogue();
    if (residual_) ep.residual = in[1].data, ep.out_base = y.data;
    if (x.blocked || y.blocked) return forward_blocked(x, y, ep, workspace);
    if (is_depthwise()) return forward_depthwise(x, y, ep);
#ifdef CNN_X86
    if (use_rowconv(x.shape, y.shape)) {
      for (int64_t n = 0; n < x.shape.n; ++n)
        kernels::rowconv::run(x.sample(n), weight_.values.data(), rowconv_geometry(x.shape, y.shape), y.sample(n), ep);
      return;
    }
#endif
    if (const int m = winograd_tile(y.shape)) {
      const kernels::winograd::Weights& U = winograd_weights(m);
      const kernels::winograd::Geometry g(m, o_.in_channels, x.shape.h, x.shape.w, o_.pad_h, o_.pad_w,
                                          o_.out_channels, y.shape.h, y.shape.w);
      for (int64_t n = 0; n < x.shape.n; ++n) kernels::winograd::conv3x3(U, x.sample(n), g, y.sample(n), ep);
      return;
    }
    const int64_t cin_g = o_.in_channels / o_.groups, cout_g = o_.out_channels / o_.groups;
    const int64_t K = cin_g * o_.kh * o_.kw, P = y.shape.h * y.shape.w;
    if (small_map(P)) return forward_small_map(x, y, ep, workspace);
    // Unfolding reads a zero-padded copy of the image, so its rows need no bounds checks.
    const bool padded = !is_pointwise() && (o_.pad_h || o_.pad_w);
    const int64_t ph = x.shape.h + 2 * o_.pad_h, pw = x.shape.w + 2 * o_.pad_w;
#ifdef CNN_X86
    if (use_direct(x.shape, y.shape)) return forward_direct(x, y, ep, workspace);
#endif
    Conv2dOptions unpadded = o_;
    unpadded.pad_h = unpadded.pad_w = 0;
    const bool bf16 = bf16_enabled() && kernels::bf16_available();
    for (int64_t n = 0; n < x.shape.n; ++n) {
      const float* image = x.sample(n);
      if (padded) {
        pad_image(image, x.shape.c, x.shape.h, x.shape.w, workspace);
        image = workspace;
      }
      for (int64_t g = 0; g < o_.groups; ++g) {
        const float* xg = image + g * cin_g * (padded ? ph * pw : x.shape.plane());
        const ConstMat plain{xg, P, 1};  // a pointwise conv's input is its GEMM operand as it is
        const Im2colSource unfold = padded ? Im2colSource{xg, ph, pw, y.shape.h, y.shape.w, unpadded}
                                           : Im2colSource{xg, x.shape.h, x.shape.w, y.shape.h, y.shape.w, o_};
        const kernels::BSource src =
            is_pointwise() ? kernels::matrix_source(plain) : kernels::BSource{Im2colSource::pack, &unfold, true};
        Epilogue e = ep;
        if (e.bias) e.bias += g * cout_g;
        const Mat out{y.channel(n, g * cout_g), P, 1};
        if (bf16) kernels::gemm_bf16_packed(cout_g, P, K, bf16_weights()[std::size_t(g)], src, out, e);
        else kernels::gemm_packed(cout_g, P, K, packed_[g], src, out, e);
      }
    }
  }

  // 3x3, stride 1, no dilation, one group: the shape Winograd F(4x4,3x3) handles.
  bool winograd_shape() const {
    return o_.kh == 3 && o_.kw == 3 && o_.stride_h == 1 && o_.stride_w == 1 && o_.dilation_h == 1 &&
           o_.dilation_w == 1 && o_.groups == 1 && o_.in_channels >= 8 && o_.out_channels >= 8;
  }
  // The Winograd tile size (4 or 2) this output size runs with, or 0 for direct GEMM.
  int winograd_tile(const Shape& out) const {
    if (!winograd_enabled() || !winograd_shape()) return 0;
    return kernels::winograd::choose_tile(o_.in_channels, o_.out_channels, out.h, out.w, active_isa());
  }
  bool use_winograd(const Shape& out) const { return winograd_tile(out) != 0; }
  // Whether this input runs on the direct kernel (kernels/direct_conv.hpp): stride 2 with AVX-512,
  // where the GEMM's im2col gathers cost 20-40%. A 1x1 kernel stays on the GEMM (measured faster:
  // the direct tile reads a new channel plane for every multiply-add step).
  bool use_direct(const Shape& in, const Shape& out) const {
    return !use_rowconv(in, out) && direct_enabled() && active_isa() == Isa::AVX512 && o_.groups == 1 && o_.dilation_h == 1 &&
           o_.dilation_w == 1 && o_.stride_h == 2 && o_.stride_w == 2 && o_.kh * o_.kw > 1 &&
           !small_map(out.h * out.w) && kernels::direct::supports(direct_geometry(in, out));
  }
  // Whether this runs on the row kernel (kernels/rowconv.hpp): few input taps (in_channels x kh x kw
  // <= 32 and a kernel larger than 1x1: a first layer on an RGB image), AVX-512, strides 1-2, NCHW.
  // The GEMM spends more on packing than on arithmetic there, and the direct kernel's 32-channel
  // panels are mostly empty (YuNet's 3x3/2 stem: 5.5 ms by GEMM, 7.5 direct, 3.2 here, 1 thread).
  // 1x1 layers with few input channels stayed faster on the GEMM.
  bool use_rowconv(const Shape& in, const Shape& out) const {
#ifdef CNN_X86
    return rowconv_enabled() && active_isa() == Isa::AVX512 && o_.groups == 1 && o_.dilation_h == 1 &&
           o_.dilation_w == 1 && o_.stride_h == o_.stride_w && o_.kh * o_.kw > 1 && !residual_ &&
           kernels::rowconv::supports(rowconv_geometry(in, out));
#else
    (void)in, (void)out;
    return false;
#endif
  }
  // Whether the direct kernel reads this input as it lies, applying the padding itself (ResNet's 3x3/2
  // layers), rather than a zero-padded copy of it (the 7x7/2 stem).
  bool direct_pads_itself(const Shape& in, const Shape& out) const {
    return kernels::direct::pads_itself(in.h, in.w, o_.kh, o_.kw, o_.stride_h, o_.pad_h, o_.pad_w, out.h, out.w);
  }

 private:
  kernels::rowconv::Geometry rowconv_geometry(const Shape& in, const Shape& out) const {
    return {o_.in_channels, in.h, in.w, o_.out_channels, out.h, out.w, o_.kh, o_.kw, o_.stride_h, o_.pad_h, o_.pad_w};
  }
  kernels::direct::Geometry direct_geometry(const Shape& in, const Shape& out) const {
    if (direct_pads_itself(in, out))
      return {o_.in_channels, in.h, in.w, o_.kh, o_.kw, o_.stride_h, out.h, out.w, o_.pad_h, o_.pad_w};
    return {o_.in_channels, in.h + 2 * o_.pad_h, in.w + 2 * o_.pad_w, o_.kh, o_.kw, o_.stride_h, out.h, out.w};
  }
  // The GEMM weights in bf16 k pairs (set_bf16), one packed matrix per group, built on first use.
  const std::vector<kernels::PackedA16>& bf16_weights() const {
    std::lock_guard<std::mutex> lock(lazy_weights_mutex_);
    if (bf16_packed_.empty()) {
      const int64_t cout_g = o_.out_channels / o_.groups, K = weight_.numel() / o_.out_channels;
      for (int64_t g = 0; g < o_.groups; ++g)
        bf16_packed_.push_back(kernels::pack_a_bf16(cout_g, K, ConstMat{weight_.values.data() + g * cout_g * K, K, 1}));
    }
    return bf16_packed_;
  }
  // The direct kernel's weight panels, built on first use (only strided layers need them).
  const kernels::direct::Weights& direct_weights() const {
    std::lock_guard<std::mutex> lock(lazy_weights_mutex_);
    if (!direct_)
      direct_ = std::make_unique<kernels::direct::Weights>(
          kernels::direct::pack_weights(weight_.values.data(), o_.out_channels, weight_.numel() / o_.out_channels));
    return *direct_;
  }

  Shape output_shape_of(const Shape& in) const { return {in.n, o_.out_channels, o_.out_h(in.h), o_.out_w(in.w)}; }
  kernels::blocked::PointwiseGeometry pointwise_geometry(const Shape& in) const {
    return {o_.in_channels, o_.out_channels, in.h, in.w, o_.stride_h, o_.out_h(in.h), o_.out_w(in.w)};
  }

  // The first input channel-blocked (the graph asked runs_blocked() first); the output too, or NCHW
  // for a 1x1 convolution whose readers run on NCHW (writes_nchw_from_blocked()), with any residual
  // in the output's layout. Or an NCHW input and a blocked output (writes_blocked_from_nchw()).
  void forward_blocked(ConstTensorView x, TensorView y, const Epilogue& ep, float* workspace) const {
#ifdef CNN_X86
    if (!x.blocked) {  // NCHW in, blocked out: the direct kernel
      if (!writes_blocked_from_nchw({x.shape})) layer_error("no channel-blocked path for this input and output");
      return forward_direct(x, y, ep, workspace);
    }
    if (!runs_blocked({x.shape})) layer_error("no channel-blocked path for this input");
    if (use_direct(x.shape, y.shape)) return forward_direct(x, y, ep, workspace);
    const bool pointwise = is_blocked_pointwise();
    if (!y.blocked && !pointwise) layer_error("no NCHW output from a channel-blocked input here");
    kernels::blocked::PointwiseGeometry pg = pointwise_geometry(x.shape);
    pg.nchw_out = !y.blocked;
    for (int64_t n = 0; n < x.shape.n; ++n) {
      if (pointwise)
        kernels::blocked::pointwise(blocked_panels(), x.sample(n), pg, y.sample(n), ep);
      else
        kernels::blocked::winograd_f4(blocked_winograd(), x.sample(n),
                                      {o_.in_channels, o_.out_channels, y.shape.h, y.shape.w}, y.sample(n), ep);
    }
#else
    (void)x, (void)y, (void)ep, (void)workspace;
    layer_error("channel-blocked tensors need an x86 CPU with AVX-512");
#endif
  }

#ifdef CNN_X86
  // The direct strided kernel, per image, either layout in and out: on the image as it lies where
  // the tile applies the padding itself, else on a zero-padded copy in the workspace.
  void forward_direct(ConstTensorView x, TensorView y, const Epilogue& ep, float* workspace) const {
    const kernels::direct::Weights& W = direct_weights();
    const kernels::direct::Geometry geo = direct_geometry(x.shape, y.shape);
    for (int64_t n = 0; n < x.shape.n; ++n) {
      const float* image = x.sample(n);
      if ((o_.pad_h || o_.pad_w) && !direct_pads_itself(x.shape, y.shape)) {
        if (x.blocked) pad_image(image, x.shape.c / 16, x.shape.h, x.shape.w, workspace, 16);
        else pad_image(image, x.shape.c, x.shape.h, x.shape.w, workspace);
        image = workspace;
      }
      kernels::direct::run(W, image, geo, y.sample(n), ep, x.blocked, y.blocked);
    }
  }
#endif

  // The blocked paths' weights, built on first use (only layers that run blocked need them).
  const AlignedVector& blocked_panels() const {
    std::lock_guard<std::mutex> lock(lazy_weights_mutex_);
    if (blocked_panels_.size() == 0)
      blocked_panels_ = kernels::blocked::pack_panels(o_.out_channels, o_.in_channels, weight_.values.data());
    return blocked_panels_;
  }
  const kernels::blocked::WinogradWeights& blocked_winograd() const {
    std::lock_guard<std::mutex> lock(lazy_weights_mutex_);
    if (!blocked_winograd_)
      blocked_winograd_ = std::make_unique<kernels::blocked::WinogradWeights>(
          kernels::blocked::transform_weights(weight_.values.data(), o_.out_channels, o_.in_channels));
    return *blocked_winograd_;
  }

  // Winograd weights for tile size m, transformed on first use (only the variants a model's map
  // sizes need are ever built: they take 4x / 1.8x the memory of the plain weights).
  const kernels::winograd::Weights& winograd_weights(int m) const {
    std::lock_guard<std::mutex> lock(lazy_weights_mutex_);
    auto& slot = winograd_[m == 4 ? 0 : 1];
    if (!slot)
      slot = std::make_unique<kernels::winograd::Weights>(
          kernels::winograd::transform_weights(weight_.values.data(), o_.out_channels, o_.in_channels, m));
    return *slot;
  }

  // A zero-padded copy of one image: each of `planes` planes of h x w pixels, `lanes` floats per
  // pixel (NCHW: the channels, 1 lane; channel-blocked: the C/16 blocks, 16 lanes), inside a border
  // of pad_h rows and pad_w columns of zeros.
  void pad_image(const float* x, int64_t planes, int64_t h, int64_t w, float* out, int64_t lanes = 1) const {
    const int64_t ph = h + 2 * o_.pad_h, pw = w + 2 * o_.pad_w, row = w * lanes, prow = pw * lanes;
    parallel_for(planes, ph * prow, [&](int64_t c) {
      float* dst = out + c * ph * prow;
      const float* src = x + c * h * row;
      std::fill(dst, dst + o_.pad_h * prow, 0.f);
      for (int64_t r = 0; r < h; ++r) {
        float* d = dst + (o_.pad_h + r) * prow;
        std::fill(d, d + o_.pad_w * lanes, 0.f);
        std::copy(src + r * row, src + (r + 1) * row, d + o_.pad_w * lanes);
        std::fill(d + o_.pad_w * lanes + row, d + prow, 0.f);
      }
      std::fill(dst + (o_.pad_h + h) * prow, dst + ph * prow, 0.f);
    });
  }

  // Output maps of a few pixels (the last stages of a network on small inputs, e.g. 2x2 or 4x4 for
  // 64x64 faces): the GEMM would pad its column panels from P up to NR (16 or 32) columns, wasting
  // most of its work. Here each weight row is streamed once against the P unfolded pixels by the
  // Linear kernel, and the P x cout result is transposed into place with the epilogue.
  static bool small_map(int64_t P) { return P <= kernels::nr_for(active_isa()) / 4; }  // 16 pixels: GEMM wins

  void forward_small_map(ConstTensorView x, TensorView y, const Epilogue& ep, float* workspace) const {
    const int64_t cin_g = o_.in_channels / o_.groups, cout_g = o_.out_channels / o_.groups;
    const int64_t K = cin_g * o_.kh * o_.kw, P = y.shape.h * y.shape.w;
    float* cols = workspace;     // [K][P]
    float* rows = cols + K * P;  // [P][K]
    float* out = rows + K * P;   // [P][cout_g]
    for (int64_t n = 0; n < x.shape.n; ++n)
      for (int64_t g = 0; g < o_.groups; ++g) {
        const Im2colSource unfold{x.sample(n) + g * cin_g * x.shape.plane(), x.shape.h, x.shape.w, y.shape.h, y.shape.w, o_};
        Im2colSource::pack(&unfold, 0, K, 0, P, P, cols);
        for (int64_t k = 0; k < K; ++k)
          for (int64_t p = 0; p < P; ++p) rows[p * K + k] = cols[k * P + p];
        kernels::linear_forward(cout_g, P, K, weight_.values.data() + g * cout_g * K, rows, out, Epilogue{});
        float* dst = y.channel(n, g * cout_g);
        Epilogue e = ep;
        if (e.bias) e.bias += g * cout_g;
        for (int64_t oc = 0; oc < cout_g; ++oc)
          for (int64_t p = 0; p < P; ++p) dst[oc * P + p] = e.apply(out[p * cout_g + oc], oc, &dst[oc * P + p]);
      }
  }

  // Depth-wise layers (kernels/depthwise.hpp): vectorised along output rows.
  void forward_depthwise(ConstTensorView x, TensorView y, const Epilogue& ep) const {
    const kernels::depthwise::Geometry g{x.shape.h, x.shape.w, y.shape.h,  y.shape.w,  o_.kh,         o_.kw,
                                         o_.stride_h, o_.stride_w, o_.pad_h, o_.pad_w, o_.dilation_h, o_.dilation_w};
    kernels::depthwise::run(x.data, weight_.values.data(), g, x.shape.n * o_.out_channels, o_.out_channels, y.data, ep);
  }

  Conv2dOptions o_;
  Param weight_, bias_;
  std::vector<double> bn_scale_, bn_shift_;
  Activation act_ = Activation::None;
  float slope_ = 0.01f;
  bool residual_ = false;
  std::vector<kernels::PackedA> packed_;
  mutable std::unique_ptr<kernels::winograd::Weights> winograd_[2];  // tile 4, tile 2
  mutable std::unique_ptr<kernels::direct::Weights> direct_;
  mutable std::vector<kernels::PackedA16> bf16_packed_;  // GEMM weights in bf16 (set_bf16)
  mutable AlignedVector blocked_panels_;  // 1x1 weights for the blocked path
  mutable std::unique_ptr<kernels::blocked::WinogradWeights> blocked_winograd_;
  mutable std::mutex lazy_weights_mutex_;  // guards the weights built on first use (Winograd, direct, blocked, bf16)
};

}  // namespace cnn
