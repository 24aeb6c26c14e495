// cnn/quantize.hpp — int8 inference of a loaded Graph: post-training static quantization.
//
//   Graph g = load_model("resnet18.safetensors");
//   QuantizedModel q(g, calibration_images);          // a few hundred real inputs, NCHW float
//   std::vector<Tensor> out = q.forward(image);       // same outputs as g.forward(image), in int8
//   q.save("resnet18.int8.safetensors", weights);      // calibrate once; load with QuantizedModel(g, file)
//
// What runs in int8: every convolution (groups 1, no dilation; BatchNorm, bias, residual and
// ReLU/ReLU6 already fused into it by the Graph) whose own int8 error on the calibration inputs is
// small enough (below), and the max pools between such convolutions. Weights are symmetric int8
// per output channel (scale = max |w| / 127); activations are u8 per tensor with a zero point, their
// range taken from the calibration inputs. Between int8 layers tensors stay u8 and channels-last
// (NHWC, kernels/int8.hpp); the rest of the graph (depth-wise convolutions, average pools, linear
// heads, ...) runs as before in fp32 NCHW, with a quantize or dequantize step where the two meet.
//
// The rule for layers that stay fp32: each candidate convolution is run alone in int8 on the
// float graph's own inputs to it (quantized), and its dequantized output compared with the float
// output over the first `sqnr_samples` calibration inputs. Signal-to-quantization-noise ratio
// SQNR = 10 log10(sum y^2 / sum (y - y_int8)^2); a layer under `min_sqnr_db` stays fp32.
#pragma once
#include <cmath>
#include <limits>
#include <map>

#include "graph.hpp"
#include "kernels/int8.hpp"

namespace cnn {

// u8 value q stands for scale * (q - zero).
struct QuantParams {
  float scale = 1.f;
  int32_t zero = 0;
};

enum class CalibrationRange { MinMax, Percentile };

struct QuantizeOptions {
  // How an activation's range is chosen: its minimum and maximum over the calibration inputs, or
  // the `percentile`-th percentile of its values at both ends (clips rare outliers).
  CalibrationRange range = CalibrationRange::Percentile;
  double percentile = 99.99;
  double min_sqnr_db = 20.0;  // the per-layer rule above
  int sqnr_samples = 4;
};

// The u8 range [0, 255] over [lo, hi] widened to hold 0 (so zero padding and ReLU's zero are exact).
inline QuantParams choose_qparams(double lo, double hi) {
  lo = std::min(lo, 0.0), hi = std::max(hi, 0.0);
  if (!(hi - lo > 0) || !std::isfinite(hi - lo)) return {1.f, 0};
  QuantParams q;
  q.scale = float((hi - lo) / 255.0);
  q.zero = int32_t(std::clamp(std::nearbyint(-lo / double(q.scale)), 0.0, 255.0));
  return q;
}

namespace quant {

// Float NCHW sample -> u8 NHWC sample: q = round_half_even(clamp(fma(x, 1/scale, zero), 0, 255)).
inline void quantize_row_generic(const float* x, int64_t n, float inv, float zero, uint8_t* q) {
  for (int64_t i = 0; i < n; ++i) q[i] = uint8_t(std::nearbyint(std::min(std::max(std::fma(x[i], inv, zero), 0.f), 255.f)));
}
#ifdef CNN_X86
CNN_TARGET_AVX512 inline void quantize_row_avx512(const float* x, int64_t n, float inv, float zero, uint8_t* q) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1u);
    __m512 t = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_set1_ps(inv), _mm512_set1_ps(zero));
    t = _mm512_min_ps(_mm512_max_ps(t, _mm512_setzero_ps()), _mm512_set1_ps(255.f));
    _mm512_mask_cvtusepi32_storeu_epi8(q + i, m, _mm512_cvtps_epi32(t));
  }
}
#endif
inline void quantize_nchw(const float* x, const Shape& s, const QuantParams& qp, uint8_t* y) {
  const float inv = 1.f / qp.scale, zero = float(qp.zero);
  auto row = quantize_row_generic;
#ifdef CNN_X86
  if (active_isa() == Isa::AVX512) row = quantize_row_avx512;
#endif
  parallel_for(s.h, s.w * s.c, [&](int64_t r) {
    std::vector<uint8_t> q(std::size_t(s.w));
    for (int64_t c = 0; c < s.c; ++c) {  // a channel's row quantized, then spread to every pixel's slot
      row(x + (c * s.h + r) * s.w, s.w, inv, zero, q.data());
      uint8_t* dst = y + r * s.w * s.c + c;
      for (int64_t i = 0; i < s.w; ++i) dst[i * s.c] = q[std::size_t(i)];
    }
  });
}

// u8 NHWC sample -> float NCHW sample.
inline void dequantize_nhwc(const uint8_t* x, const Shape& s, const QuantParams& qp, float* y) {
  parallel_for(s.h, s.w * s.c, [&](int64_t row) {
    for (int64_t c = 0; c < s.c; ++c) {
      const uint8_t* src = x + row * s.w * s.c + c;
      float* dst = y + (c * s.h + row) * s.w;
      for (int64_t i = 0; i < s.w; ++i) dst[i] = float(int32_t(src[i * s.c]) - qp.zero) * qp.scale;
    }
  });
}

// d[c] = max(d[c], s[c]) over a pixel's channels.
inline void max_bytes_generic(uint8_t* d, const uint8_t* s, int64_t n) {
  for (int64_t c = 0; c < n; ++c) d[c] = std::max(d[c], s[c]);
}
#ifdef CNN_X86
CNN_TARGET_AVX512 inline void max_bytes_avx512(uint8_t* d, const uint8_t* s, int64_t n) {
  for (int64_t c = 0; c < n; c += 64) {
    const __mmask64 m = n - c >= 64 ? ~__mmask64(0) : (__mmask64(1) << (n - c)) - 1;
    _mm512_mask_storeu_epi8(d + c, m, _mm512_max_epu8(_mm512_maskz_loadu_epi8(m, d + c), _mm512_maskz_loadu_epi8(m, s + c)));
  }
}
#endif

// Max pooling on a u8 NHWC sample (monotone in the quantized value, so the scale carries over);
// padding never wins (PyTorch pads with -inf). A window's pixels are whole channel rows, reduced
// with byte-wise maxima.
inline void max_pool_nhwc(const uint8_t* x, const Shape& in, const Pool2dOptions& o, const Shape& out, uint8_t* y) {
  const int64_t C = in.c;
  auto max_bytes = max_bytes_generic;
#ifdef CNN_X86
  if (active_isa() == Isa::AVX512) max_bytes = max_bytes_avx512;
#endif
  parallel_for(out.h, out.w * C * o.kh * o.kw, [&](int64_t oy) {
    for (int64_t ox = 0; ox < out.w; ++ox) {
      uint8_t* d = y + (oy * out.w + ox) * C;
      std::memset(d, 0, std::size_t(C));
      for (int ky = 0; ky < o.kh; ++ky) {
        const int64_t iy = oy * o.sh() - o.pad_h + ky;
        if (iy < 0 || iy >= in.h) continue;
        for (int kx = 0; kx < o.kw; ++kx) {
          const int64_t ix = ox * o.sw() - o.pad_w + kx;
          if (ix >= 0 && ix < in.w) max_bytes(d, x + (iy * in.w + ix) * C, C);
        }
      }
    }
  });
}

// Bytes of storage for a u8 tensor, with the slack the int8 kernels may read past its end.
inline AlignedVector u8_storage(int64_t bytes) {
  return AlignedVector(std::size_t((bytes + kernels::int8::kSlack + 3) / 4));
}
inline uint8_t* bytes_of(AlignedVector& v) { return reinterpret_cast<uint8_t*>(v.data()); }

// One convolution in int8: its weights quantized and packed, its requantization constants.
struct ConvInt8 {
  Conv2dOptions o;
  std::vector<int8_t> weights;   // [oc][c][kh][kw]
  std::vector<float> w_scale;    // per output channel
  kernels::int8::PackedWeights packed;
  std::vector<float> scale, bias;  // padded to 64 output channels
  std::vector<int32_t> comp;
  Activation act = Activation::None;
  bool residual = false;
  QuantParams in, out, res;
  std::vector<uint8_t> zeros;  // a row of the input's zero point
  bool folded = false;         // kernel columns folded into channels (kernels::int8::folds_columns)
  mutable AlignedVector scratch;  // the folded image

  // Quantizes `weight` ([oc][c][kh][kw] float) per output channel, or takes the given scales.
  void set_weights(const std::vector<float>& weight, const std::vector<float>* given_scales = nullptr) {
    const int64_t per = o.in_channels * o.kh * o.kw;
    weights.resize(weight.size());
    w_scale.assign(std::size_t(o.out_channels), 1.f);
    for (int64_t oc = 0; oc < o.out_channels; ++oc) {
      float m = 0.f;
      for (int64_t i = 0; i < per; ++i) m = std::max(m, std::abs(weight[std::size_t(oc * per + i)]));
      float s = given_scales ? (*given_scales)[std::size_t(oc)] : (m > 0.f ? m / 127.f : 1.f);
      w_scale[std::size_t(oc)] = s;
      for (int64_t i = 0; i < per; ++i) {
        const float v = std::nearbyint(weight[std::size_t(oc * per + i)] / s);
        weights[std::size_t(oc * per + i)] = int8_t(std::clamp(v, -127.f, 127.f));
      }
    }
  }

  // Packs the weights and derives the requantization constants for the tensor ranges in, out, res.
  void prepare(const float* float_bias) {
    namespace k8 = kernels::int8;
    k8::Geometry g = geometry(Shape{1, o.in_channels, o.kh, o.kw});  // channels and taps are what count
    folded = k8::folds_columns(g);
    if (folded) {
      const std::vector<int8_t> w = k8::fold_weight_columns(weights.data(), g);
      g = k8::columns_folded(g);
      packed = k8::pack_weights(w.data(), g);
    } else {
      packed = k8::pack_weights(weights.data(), g);
    }
    const int64_t P = g.padded_oc();
    scale.assign(std::size_t(P), 0.f), bias.assign(std::size_t(P), 0.f), comp.assign(std::size_t(P), 0);
    for (int64_t oc = 0; oc < o.out_channels; ++oc) {
      scale[std::size_t(oc)] = in.scale * w_scale[std::size_t(oc)];
      bias[std::size_t(oc)] = float_bias ? float_bias[oc] : 0.f;
      comp[std::size_t(oc)] = in.zero * packed.sums[std::size_t(oc)];
    }
    zeros.assign(std::size_t(g.groups() * 4), uint8_t(in.zero));
  }

  kernels::int8::Geometry geometry(const Shape& x) const {
    kernels::int8::Geometry g;
    g.h = x.h, g.w = x.w, g.c = x.c, g.oc = o.out_channels;
    g.kh = o.kh, g.kw = o.kw, g.stride_h = o.stride_h, g.stride_w = o.stride_w, g.pad_h = o.pad_h, g.pad_w = o.pad_w;
    g.oh = o.out_h(x.h), g.ow = o.out_w(x.w);
    return g;
  }

  // One sample: x u8 NHWC, residual u8 NHWC like y (or nullptr), y u8 NHWC. Not reentrant (scratch).
  void run(const uint8_t* x, const kernels::int8::Geometry& g, const uint8_t* residual, uint8_t* y) const {
    kernels::int8::Requant r;
    r.scale = scale.data(), r.bias = bias.data(), r.comp = comp.data(), r.act = act;
    r.out_inv_scale = 1.f / out.scale, r.out_zero = float(out.zero);
    if (residual) r.residual = residual, r.res_scale = res.scale, r.res_zero = res.zero;
    if (!folded) return kernels::int8::conv(x, packed, g, zeros.data(), r, y);
    const int64_t bytes = g.h * g.ow * g.c * g.kw;
    if (int64_t(scratch.size()) * 4 < bytes + kernels::int8::kSlack) scratch = u8_storage(bytes);
    kernels::int8::fold_image_columns(x, g, uint8_t(in.zero), bytes_of(scratch));
    kernels::int8::conv(bytes_of(scratch), packed, kernels::int8::columns_folded(g), zeros.data(), r, y);
  }
};

// Whether the int8 kernels can run this convolution.
inline bool int8_capable(const Conv2d& conv) {
  const Conv2dOptions& o = conv.options();
  const Activation a = conv.epilogue().act;
  return o.groups == 1 && o.dilation_h == 1 && o.dilation_w == 1 &&
         (a == Activation::None || a == Activation::ReLU || a == Activation::ReLU6);
}

// Running minimum, maximum and (second pass) a histogram of one tensor's values.
struct RangeStats {
  static constexpr int kBins = 2048;
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  std::vector<uint64_t> hist;
  uint64_t count = 0;

  void add_range(const float* v, int64_t n) {
    for (int64_t i = 0; i < n; ++i) lo = std::min(lo, double(v[i])), hi = std::max(hi, double(v[i]));
  }
  void add_hist(const float* v, int64_t n) {
    if (hist.empty()) hist.assign(kBins, 0);
    const double w = hi - lo;
    if (!(w > 0)) return;
    for (int64_t i = 0; i < n; ++i) {
      const int b = int(std::clamp((double(v[i]) - lo) / w * kBins, 0.0, double(kBins - 1)));
      ++hist[std::size_t(b)];
    }
    count += uint64_t(n);
  }
  // The range kept: [lo, hi], or its percentile-th percentile at both ends.
  QuantParams qparams(CalibrationRange how, double percentile) const {
    if (!std::isfinite(lo) || !std::isfinite(hi)) return {1.f, 0};
    if (how == CalibrationRange::MinMax || count == 0) return choose_qparams(lo, hi);
    const double tail = double(count) * (100.0 - percentile) / 100.0, w = (hi - lo) / kBins;
    double a = lo, b = hi, seen = 0;
    for (int i = 0; i < kBins; ++i) {  // lowest bin edge with more than `tail` values below
      seen += double(hist[std::size_t(i)]);
      if (seen > tail) { a = lo + i * w; break; }
    }
    seen = 0;
    for (int i = kBins - 1; i >= 0; --i) {
      seen += double(hist[std::size_t(i)]);
      if (seen > tail) { b = lo + (i + 1) * w; break; }
    }
    return choose_qparams(std::max(a, lo), std::min(b, hi));
  }
};

}  // namespace quant

class QuantizedModel {
 public:
  // Calibrates on `calibration` (NCHW float inputs of the model; any batch sizes) and quantizes.
  // `graph` must hold its weights and outlive this object; it runs its fp32 layers.
  QuantizedModel(Graph& graph, const std::vector<Tensor>& calibration, QuantizeOptions opt = {})
      : g_(&graph), opt_(opt) {
    if (!graph.loaded()) fail("quantize: the model holds no weights yet");
    if (calibration.empty()) fail("quantize: no calibration inputs (int8 needs real inputs to choose its ranges)");
    calibrate(calibration);
  }

  // One tensor per graph output, NCHW float, like Graph::forward. With `layer_ms`, also records
  // each graph node's wall time (index = node), quantize/dequantize steps counted in their reader.
  std::vector<Tensor> forward(ConstTensorView input, std::vector<double>* layer_ms = nullptr) {
    std::lock_guard<std::mutex> one_at_a_time(*mutex_);
    const Plan& p = plan(input.shape);
    if (layer_ms) layer_ms->assign(g_->num_nodes(), 0.0);
    for (const Step& st : p.steps) {
      const auto t0 = std::chrono::steady_clock::now();
      run_step(p, st, input);
      if (layer_ms)
        (*layer_ms)[std::size_t(st.node)] +=
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    std::vector<Tensor> out;
    for (int t : p.outputs) out.push_back(Tensor::from(p.values[std::size_t(t)].shape, float_data(p, t, input)));
    return out;
  }

  // Layer by layer: int8 or fp32, and the measured SQNR of each convolution.
  std::string report() const {
    std::string s;
    char line[256];
    for (int i = 1; i < int(g_->num_nodes()); ++i) {
      const Layer* l = g_->layer(i);
      const auto sq = sqnr_.find(i);
      const char* how = convs_.count(i) || int8_pool(i) ? "int8" : "fp32";
      std::snprintf(line, sizeof line, "%-28s %-12s %s", l->name().c_str(), l->type().c_str(), how);
      s += line;
      if (sq != sqnr_.end()) {
        std::snprintf(line, sizeof line, "  SQNR %.1f dB%s", sq->second,
                      convs_.count(i) ? "" : "  (under the rule's limit: kept fp32)");
        s += line;
      }
      s += "\n";
    }
    return s;
  }
  int int8_convolutions() const { return int(convs_.size()); }
  const std::map<int, double>& sqnr_db() const { return sqnr_; }  // every capable convolution's, by node

 private:
  // A value is a node's output (or the input) in one representation: float NCHW or u8 NHWC.
  struct Value {
    Shape shape;
    bool u8 = false;
    QuantParams qp;
    int tensor = 0;  // the graph node it holds
  };
  enum class Kind { Float, Conv, MaxPool, Quantize, Dequantize };
  struct Step {
    Kind kind;
    int node = 0;
    std::vector<int> ins;  // values
    int out = 0;           // value
  };
  struct Plan {
    Shape input;
    std::vector<Value> values;  // value 0: the input, float
    std::vector<Step> steps;
    std::vector<int> outputs;
    std::vector<AlignedVector> storage;  // per value (value 0: none)
    int64_t workspace_floats = 0;
    AlignedVector workspace;
  };

  bool int8_pool(int node) const { return int8_pools_.count(node) != 0; }

  // Which representation each node produces: u8 for int8 convolutions and pools whose input is u8.
  Plan make_plan(const Shape& input) {
    const int N = int(g_->num_nodes());
    Plan p;
    p.input = input;
    std::vector<Shape> shapes(static_cast<std::size_t>(N));
    shapes[0] = input;
    std::vector<int> as_float(std::size_t(N), -1), as_u8(std::size_t(N), -1);
    p.values.push_back(Value{input, false, {}, 0});
    as_float[0] = 0;
    auto new_value = [&](int t, bool u8) {
      p.values.push_back(Value{shapes[std::size_t(t)], u8, u8 ? qparams_[std::size_t(t)] : QuantParams{}, t});
      return int(p.values.size()) - 1;
    };
    auto float_of = [&](int t) {
      if (as_float[std::size_t(t)] < 0) {
        as_float[std::size_t(t)] = new_value(t, false);
        p.steps.push_back(Step{Kind::Dequantize, t, {as_u8[std::size_t(t)]}, as_float[std::size_t(t)]});
      }
      return as_float[std::size_t(t)];
    };
    auto u8_of = [&](int t) {
      if (as_u8[std::size_t(t)] < 0) {
        as_u8[std::size_t(t)] = new_value(t, true);
        p.steps.push_back(Step{Kind::Quantize, t, {as_float[std::size_t(t)]}, as_u8[std::size_t(t)]});
      }
      return as_u8[std::size_t(t)];
    };
    int8_pools_.clear();
    for (int i = 1; i < N; ++i) {
      const Layer* l = g_->layer(i);
      const std::vector<int>& in = g_->inputs_of(i);
      std::vector<Shape> in_shapes;
      for (int t : in) in_shapes.push_back(shapes[std::size_t(t)]);
      shapes[std::size_t(i)] = l->output_shape(in_shapes);
      const auto* pool = dynamic_cast<const Pool2d*>(l);
      if (convs_.count(i)) {
        Step st{Kind::Conv, i, {}, 0};
        for (int t : in) st.ins.push_back(u8_of(t));
        st.out = as_u8[std::size_t(i)] = new_value(i, true);
        p.steps.push_back(st);
      } else if (pool && pool->kind() == PoolKind::Max && pool->options().dilation_h == 1 &&
                 pool->options().dilation_w == 1 && as_u8[std::size_t(in[0])] >= 0) {
        int8_pools_.insert(i);
        qparams_[std::size_t(i)] = qparams_[std::size_t(in[0])];
        Step st{Kind::MaxPool, i, {as_u8[std::size_t(in[0])]}, 0};
        st.out = as_u8[std::size_t(i)] = new_value(i, true);
        p.steps.push_back(st);
      } else {
        Step st{Kind::Float, i, {}, 0};
        for (int t : in) st.ins.push_back(float_of(t));
        st.out = as_float[std::size_t(i)] = new_value(i, false);
        p.workspace_floats = std::max(p.workspace_floats, l->workspace_floats(in_shapes));
        p.steps.push_back(st);
      }
    }
    for (int t : g_->output_nodes()) p.outputs.push_back(float_of(t));
    p.storage.resize(p.values.size());
    for (std::size_t v = 1; v < p.values.size(); ++v) {
      const Value& val = p.values[v];
      p.storage[v] = val.u8 ? quant::u8_storage(val.shape.numel()) : AlignedVector(std::size_t(val.shape.numel()));
    }
    p.workspace = AlignedVector(std::size_t(std::max<int64_t>(p.workspace_floats, 1)));
    return p;
  }

  const Plan& plan(const Shape& input) {
    if (!plan_ || !(plan_->input == input)) plan_ = std::make_unique<Plan>(make_plan(input));
    return *plan_;
  }

  const float* float_data(const Plan& p, int v, ConstTensorView input) const {
    return v == 0 ? input.data : p.storage[std::size_t(v)].data();
  }
  uint8_t* u8_data(const Plan& p, int v) const {
    return reinterpret_cast<uint8_t*>(const_cast<float*>(p.storage[std::size_t(v)].data()));
  }

  void run_step(const Plan& p, const Step& st, ConstTensorView input) {
    const Value& out = p.values[std::size_t(st.out)];
    const Shape& s = out.shape;
    switch (st.kind) {
      case Kind::Float: {
        std::vector<ConstTensorView> ins;
        for (int v : st.ins) ins.push_back(ConstTensorView{p.values[std::size_t(v)].shape, float_data(p, v, input)});
        g_->layer(st.node)->forward(ins, TensorView{s, const_cast<float*>(float_data(p, st.out, input))},
                                    const_cast<float*>(p.workspace.data()));
        break;
      }
      case Kind::Quantize: {
        const float* x = float_data(p, st.ins[0], input);
        for (int64_t n = 0; n < s.n; ++n)
          quant::quantize_nchw(x + n * s.sample(), s, out.qp, u8_data(p, st.out) + n * s.sample());
        break;
      }
      case Kind::Dequantize: {
        const Value& in = p.values[std::size_t(st.ins[0])];
        for (int64_t n = 0; n < s.n; ++n)
          quant::dequantize_nhwc(u8_data(p, st.ins[0]) + n * s.sample(), s, in.qp,
                                 const_cast<float*>(float_data(p, st.out, input)) + n * s.sample());
        break;
      }
      case Kind::MaxPool: {
        const Shape& in = p.values[std::size_t(st.ins[0])].shape;
        const auto* pool = static_cast<const Pool2d*>(g_->layer(st.node));
        for (int64_t n = 0; n < s.n; ++n)
          quant::max_pool_nhwc(u8_data(p, st.ins[0]) + n * in.sample(), in, pool->options(), s,
                               u8_data(p, st.out) + n * s.sample());
        break;
      }
      case Kind::Conv: {
        const quant::ConvInt8& c = convs_.at(st.node);
        const Shape& in = p.values[std::size_t(st.ins[0])].shape;
        const kernels::int8::Geometry g = c.geometry(in);
        for (int64_t n = 0; n < s.n; ++n)
          c.run(u8_data(p, st.ins[0]) + n * in.sample(), g,
                c.residual ? u8_data(p, st.ins[1]) + n * s.sample() : nullptr, u8_data(p, st.out) + n * s.sample());
        break;
      }
    }
  }

  // Observes the float graph on every calibration input: ranges, then (for percentiles)
  // histograms; then quantizes every capable convolution and measures its SQNR.
  void calibrate(const std::vector<Tensor>& inputs) {
    const int N = int(g_->num_nodes());
    struct BlockedOff {  // NCHW views for the observers (a global kernel setting, restored after)
      bool was = blocked_enabled();
      BlockedOff() { set_blocked(false); }
      ~BlockedOff() { set_blocked(was); }
    } nchw;
    std::vector<quant::RangeStats> stats(static_cast<std::size_t>(N));
    for (const Tensor& x : inputs) {
      check_finite(x);
      stats[0].add_range(x.data(), x.numel());
      Graph::Observer ob = [&](int node, ConstTensorView y) { stats[std::size_t(node)].add_range(y.data, y.shape.numel()); };
      g_->forward(x.view(), nullptr, &ob);
    }
    if (opt_.range == CalibrationRange::Percentile)
      for (const Tensor& x : inputs) {
        stats[0].add_hist(x.data(), x.numel());
        Graph::Observer ob = [&](int node, ConstTensorView y) { stats[std::size_t(node)].add_hist(y.data, y.shape.numel()); };
        g_->forward(x.view(), nullptr, &ob);
      }
    qparams_.assign(std::size_t(N), QuantParams{});
    for (int t = 0; t < N; ++t) qparams_[std::size_t(t)] = stats[std::size_t(t)].qparams(opt_.range, opt_.percentile);

    // Candidates, quantized with these ranges.
    std::map<int, quant::ConvInt8> candidates;
    for (int i = 1; i < N; ++i) {
      const auto* conv = dynamic_cast<const Conv2d*>(g_->layer(i));
      if (!conv || !quant::int8_capable(*conv)) continue;
      quant::ConvInt8 c;
      c.o = conv->options();
      c.act = conv->epilogue().act;
      c.residual = conv->num_inputs() == 2;
      c.in = qparams_[std::size_t(g_->inputs_of(i)[0])];
      c.out = qparams_[std::size_t(i)];
      if (c.residual) c.res = qparams_[std::size_t(g_->inputs_of(i)[1])];
      c.set_weights(conv->weight().values);
      c.prepare(conv->bias_data());
      candidates.emplace(i, std::move(c));
    }
    // Each candidate alone on the float graph's own tensors.
    std::map<int, std::pair<double, double>> signal_noise;
    const int samples = std::clamp<int>(opt_.sqnr_samples, 1, int(inputs.size()));
    for (int k = 0; k < samples; ++k) {
      std::vector<Tensor> seen(static_cast<std::size_t>(N));
      seen[0] = inputs[std::size_t(k)].clone();
      Graph::Observer ob = [&](int node, ConstTensorView y) { seen[std::size_t(node)] = Tensor::from(y.shape, y.data); };
      g_->forward(inputs[std::size_t(k)].view(), nullptr, &ob);
      for (auto& [i, c] : candidates) {
        const std::vector<int>& in = g_->inputs_of(i);
        const Tensor& x = seen[std::size_t(in[0])];
        const Tensor& y = seen[std::size_t(i)];
        const kernels::int8::Geometry geo = c.geometry(x.shape());
        AlignedVector xq = quant::u8_storage(x.shape().sample()), rq = quant::u8_storage(y.shape().sample()),
                      yq = quant::u8_storage(y.shape().sample());
        std::vector<float> yd(static_cast<std::size_t>(y.shape().sample()));
        const Shape one_x{1, x.shape().c, x.shape().h, x.shape().w}, one_y{1, y.shape().c, y.shape().h, y.shape().w};
        auto& [sig, noise] = signal_noise[i];
        for (int64_t n = 0; n < x.shape().n; ++n) {
          quant::quantize_nchw(x.data() + n * x.shape().sample(), one_x, c.in, quant::bytes_of(xq));
          if (c.residual)
            quant::quantize_nchw(seen[std::size_t(in[1])].data() + n * y.shape().sample(), one_y, c.res,
                                 quant::bytes_of(rq));
          c.run(quant::bytes_of(xq), geo, c.residual ? quant::bytes_of(rq) : nullptr, quant::bytes_of(yq));
          quant::dequantize_nhwc(quant::bytes_of(yq), one_y, c.out, yd.data());
          const float* ref = y.data() + n * y.shape().sample();
          for (int64_t e = 0; e < y.shape().sample(); ++e) {
            sig += double(ref[e]) * ref[e];
            noise += (double(ref[e]) - yd[std::size_t(e)]) * (double(ref[e]) - yd[std::size_t(e)]);
          }
        }
      }
    }
    for (auto& [i, c] : candidates) {
      const auto [sig, noise] = signal_noise[i];
      const double db = noise > 0 ? 10 * std::log10(std::max(sig, 1e-30) / noise) : 200.0;
      sqnr_[i] = db;
      if (db < opt_.min_sqnr_db) continue;
      convs_.emplace(i, std::move(c));
    }
    plan_.reset();
  }

  static void check_finite(const Tensor& x) {
    for (int64_t i = 0; i < x.numel(); ++i)
      if (!std::isfinite(x[i])) fail("quantize: a calibration input holds a non-finite value");
  }

  Graph* g_;
  QuantizeOptions opt_;
  std::vector<QuantParams> qparams_;       // per graph node's output (node 0: the input)
  std::map<int, quant::ConvInt8> convs_;   // the convolutions that run in int8, by node
  std::map<int, double> sqnr_;             // every capable convolution's measured SQNR
  std::set<int> int8_pools_;
  std::unique_ptr<Plan> plan_;
  std::unique_ptr<std::mutex> mutex_ = std::make_unique<std::mutex>();
};

}  // namespace cnn
