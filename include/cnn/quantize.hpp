// cnn/quantize.hpp — int8 inference of a loaded Graph: post-training static quantization.
//
//   Model m = load_model("resnet18.safetensors");
//   QuantizedModel q(m.graph, calibration_inputs);    // real inputs (a few hundred), NCHW float
//   std::vector<Tensor> out = q.forward(image);       // the graph's outputs, computed in int8
//   q.save("resnet18.int8.safetensors", SafeTensors::open("resnet18.safetensors"));
//   QuantizedModel again(m2.graph, SafeTensors::open("resnet18.int8.safetensors"));  // no calibration
//
// What runs in int8: convolutions (groups 1, no dilation; BatchNorm, bias, residual and ReLU/ReLU6
// already fused into them by the Graph) and linear layers, as the rules below allow, and the max
// pools, Dropout and Flatten between them. Weights are symmetric int8 per output channel
// (scale = max |w| / 127); activations are u8 per tensor with a zero point, their range taken from
// the calibration inputs. Between int8 layers tensors stay u8 and channels-last (NHWC,
// kernels/int8.hpp); the rest of the graph (depth-wise convolutions, average pools, ...) runs as
// before in fp32 NCHW, with a quantize or dequantize step where the two meet. A model output
// computed by an int8 layer is written in float. docs/int8.md has the design and the figures.
//
// The rules for layers that stay fp32, both decided at calibration and saved with the int8 form:
// - accuracy: each candidate is run alone in int8 on the float graph's own inputs to it
//   (quantized), and its dequantized output compared with the float output over the first
//   `sqnr_samples` calibration inputs. Signal-to-quantization-noise ratio
//   SQNR = 10 log10(sum y^2 / sum (y - y_int8)^2); a layer under `min_sqnr_db` stays fp32.
// - speed: int8 layers joined by u8 tensors form a region, quantized on the way in and
//   dequantized on the way out; a region with fewer than kMinMacsPerConverted multiply-adds per
//   converted element stays fp32 (the conversions would cost more than int8 saves).
#pragma once
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <set>

#include "graph.hpp"
#include "io/json.hpp"
#include "io/safetensors.hpp"
#include "kernels/int8.hpp"

CNN_KERNELS_BEGIN
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
  for (int64_t i = 0; i < n; ++i) q[i] = kernels::int8::quantize_value(x[i], inv, zero);
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

// One convolution (or linear layer, as a 1x1 convolution of a one-pixel image) in int8: its
// weights quantized and packed, its requantization constants.
struct ConvInt8 {
  Conv2dOptions o;
  bool float_out = false;  // writes its output in float (a model output of one pixel per sample)
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

  // Quantizes `weight` ([oc][c][kh][kw] float) per output channel: scale = max |w| / 127.
  // `layer` names the layer in the error a non-finite weight gives.
  void set_weights(const std::vector<float>& weight, const std::string& layer) {
    for (float w : weight)
      if (!std::isfinite(w)) fail("quantize: layer '", layer, "' has a non-finite weight");
    const int64_t per = o.in_channels * o.kh * o.kw;
    weights.resize(weight.size());
    w_scale.assign(std::size_t(o.out_channels), 1.f);
    for (int64_t oc = 0; oc < o.out_channels; ++oc) {
      float m = 0.f;
      for (int64_t i = 0; i < per; ++i) m = std::max(m, std::abs(weight[std::size_t(oc * per + i)]));
      const float s = m > 0.f ? m / 127.f : 1.f;
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

  // One sample: x u8 NHWC, residual u8 NHWC like the output (or nullptr), the output u8 NHWC in y
  // or, with float_out, float in y_float. Not reentrant (scratch).
  void run(const uint8_t* x, const kernels::int8::Geometry& g, const uint8_t* residual, uint8_t* y,
           float* y_float = nullptr) const {
    kernels::int8::Requant r;
    r.out_float = y_float;
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

// The int8 form of a convolution or linear layer, if the int8 kernels can run it: groups 1, no
// dilation, an activation of none, ReLU or ReLU6.
inline bool int8_activation(Activation a) {
  return a == Activation::None || a == Activation::ReLU || a == Activation::ReLU6;
}
inline bool int8_candidate(const Layer* l, ConvInt8& c, const float*& bias) {
  if (const auto* conv = dynamic_cast<const Conv2d*>(l)) {
    const Conv2dOptions& o = conv->options();
    if (o.groups != 1 || o.dilation_h != 1 || o.dilation_w != 1 || !int8_activation(conv->epilogue().act)) return false;
    c.o = o, c.act = conv->epilogue().act, c.residual = conv->num_inputs() == 2;
    c.set_weights(conv->weight().values, l->name());
    bias = conv->bias_data();
    return true;
  }
  if (const auto* lin = dynamic_cast<const Linear*>(l)) {
    if (!int8_activation(lin->activation())) return false;
    c.o = Conv2dOptions{};
    c.o.in_channels = lin->in_features(), c.o.out_channels = lin->out_features();
    c.act = lin->activation();
    c.set_weights(lin->weight().values, l->name());
    bias = lin->bias_data();
    return true;
  }
  return false;
}

// Layers that pass a tensor on unchanged in eval mode: its u8 form too (Flatten only of a one-pixel
// image, whose NHWC and NCHW orders agree).
inline bool passes_through(const Layer* l, const Shape& in) {
  return dynamic_cast<const Dropout*>(l) || (dynamic_cast<const Flatten*>(l) && in.h == 1 && in.w == 1);
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
  // `graph` must hold its weights and outlive this object (it may move: its layers run the fp32 steps).
  QuantizedModel(Graph& graph, const std::vector<Tensor>& calibration, QuantizeOptions opt = {}) : opt_(opt) {
    take_structure(graph);
    if (calibration.empty()) fail("quantize: no calibration inputs (int8 needs real inputs to choose its ranges)");
    calibrate(graph, calibration);
  }

  // The int8 form saved by save() in the model's own file (`file`, from which `graph` was loaded):
  // no calibration. Missing, malformed or out-of-range entries are errors naming the file.
  QuantizedModel(Graph& graph, const SafeTensors& file) {
    take_structure(graph);
    load(file);
  }

  // Writes the model file `source` again with the int8 form added: each int8 layer's weights as an
  // I8 tensor `<layer>.weight_int8`, and the rest (activation ranges, weight scales, the rule's
  // measurements) in the metadata entry "quantization". The float tensors stay, so the file still
  // loads as the float model and the layers kept fp32 have their weights.
  void save(const std::string& path, const SafeTensors& source) const { write_file_atomic(path, file_bytes(source)); }
  std::string file_bytes(const SafeTensors& source) const {
    SafeTensorsWriter w;
    for (const std::string& n : source.names()) {
      const auto& e = source.entry(n);
      // An earlier int8 form is replaced; integer tensors are BatchNorm's counters, never read.
      if (e.dtype != "F32" && e.dtype != "F16" && e.dtype != "BF16") continue;
      std::vector<float> v;
      source.read(n, v);
      w.add(n, e.shape, std::move(v), e.dtype);
    }
    w.metadata = source.metadata();
    char num[64];
    auto number = [&](double v) {
      std::snprintf(num, sizeof num, "%.9g", v);
      return std::string(num);
    };
    std::string acts, int8, fp32;
    for (int i = 0; i < int(layers_.size()); ++i) {
      const QuantParams& q = qparams_[std::size_t(i)];
      acts += (acts.empty() ? "" : ",") + json::quote(node_name(i)) + ":[" + number(q.scale) + "," + std::to_string(q.zero) + "]";
    }
    for (const auto& [i, db] : sqnr_) {
      std::string entry = "\"sqnr_db\":" + number(db);
      if (why_fp32_.count(i)) entry += ",\"why\":" + json::quote(why_fp32_.at(i));
      if (convs_.count(i)) {
        const quant::ConvInt8& c = convs_.at(i);
        std::string scales;
        for (float f : c.w_scale) scales += (scales.empty() ? "" : ",") + number(f);
        entry += ",\"weight_scales\":[" + scales + "]";
        std::vector<float> q(c.weights.begin(), c.weights.end());
        w.add(node_name(i) + ".weight_int8", {c.o.out_channels, c.o.in_channels, c.o.kh, c.o.kw}, std::move(q), "I8");
      }
      (convs_.count(i) ? int8 : fp32) += std::string((convs_.count(i) ? int8 : fp32).empty() ? "" : ",") +
                                          json::quote(node_name(i)) + ":{" + entry + "}";
    }
    w.metadata["quantization"] = "{\"format\":1,\"range\":\"" +
                                 std::string(opt_.range == CalibrationRange::MinMax ? "minmax" : "percentile") +
                                 "\",\"percentile\":" + number(opt_.percentile) + ",\"min_sqnr_db\":" +
                                 number(opt_.min_sqnr_db) + ",\"activations\":{" + acts + "},\"int8\":{" + int8 +
                                 "},\"fp32\":{" + fp32 + "}}";
    return w.bytes();
  }

  // One tensor per graph output, NCHW float, like Graph::forward. With `layer_ms`, also records
  // each graph node's wall time (index = node), quantize/dequantize steps counted in their reader.
  std::vector<Tensor> forward(ConstTensorView input, std::vector<double>* layer_ms = nullptr) {
    std::lock_guard<std::mutex> one_at_a_time(*mutex_);
    Plan& p = plan(input.shape);
    p.input = input.data;
    if (layer_ms) layer_ms->assign(layers_.size(), 0.0);
    for (const Step& st : p.steps) {
      const auto t0 = std::chrono::steady_clock::now();
      run_step(p, st);
      if (layer_ms)
        (*layer_ms)[std::size_t(st.node)] +=
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    std::vector<Tensor> out;
    for (std::size_t o = 0; o < p.outputs.size(); ++o)
      out.push_back(Tensor::from(p.output_shapes[o], p.floats(p.outputs[o])));
    return out;
  }

  // Per-layer times as Graph::profile() prints them, "int8" marking the layers that run so.
  std::string profile(ConstTensorView input, int runs = 5) {
    const auto all = Graph::profile_runs(runs, [&](std::vector<double>* ms) { forward(input, ms); });
    return Graph::profile_table(all, [&](std::size_t i) {
      const Layer& l = *layers_[i];
      const bool int8 = convs_.count(int(i)) || int8_pools_.count(int(i));
      return std::array<std::string, 3>{l.name(), l.type() + " " + l.describe(), int8 ? "int8" : "fp32"};
    });
  }

  // Layer by layer: int8 or fp32, and each candidate's measured SQNR.
  std::string report() const {
    std::string s;
    char line[256];
    for (int i = 1; i < int(layers_.size()); ++i) {
      const Layer* l = layers_[std::size_t(i)];
      const auto sq = sqnr_.find(i);
      const bool int8 = convs_.count(i) || int8_pools_.count(i);
      std::snprintf(line, sizeof line, "%-28s %-18s %s", l->name().c_str(), l->type().c_str(), int8 ? "int8" : "fp32");
      s += line;
      if (sq != sqnr_.end()) {
        const auto why = why_fp32_.find(i);
        std::snprintf(line, sizeof line, "  SQNR %5.1f dB%s%s%s", sq->second,
                      int8 && convs_.at(i).float_out ? "  (writes float)" : "", why == why_fp32_.end() ? "" : "  (",
                      why == why_fp32_.end() ? "" : (why->second + ")").c_str());
        s += line;
      }
      s += "\n";
    }
    return s;
  }
  int int8_layers() const { return int(convs_.size()); }
  const std::map<int, double>& sqnr_db() const { return sqnr_; }  // every candidate's, by node

 private:
  // A value is a node's output (or the input) in one form: float NCHW or u8 NHWC.
  struct Value {
    Shape shape;
    bool u8 = false;
    QuantParams qp;
  };
  enum class Kind { Float, Int8, MaxPool, Quantize, Dequantize };
  struct Step {
    Kind kind;
    int node = 0;
    std::vector<int> ins;  // values
    int out = 0;           // value
  };
  struct Plan {
    Shape input_shape;
    std::vector<Value> values;  // value 0: the input, float
    std::vector<Step> steps;
    std::vector<int> outputs;
    std::vector<Shape> output_shapes;
    std::vector<AlignedVector> storage;  // per value (value 0: the caller's input)
    AlignedVector workspace;
    const float* input = nullptr;
    const float* floats(int v) const { return v == 0 ? input : storage[std::size_t(v)].data(); }
    float* out_floats(int v) { return storage[std::size_t(v)].data(); }  // never value 0
    uint8_t* bytes(int v) { return quant::bytes_of(storage[std::size_t(v)]); }
  };

  // Values for every node in its form: u8 where an int8 layer or pool writes it (or a layer that
  // passes it through), float elsewhere; a quantize or dequantize step where a reader needs the
  // other form (one per tensor, shared by its readers).
  Plan make_plan(const Shape& input) {
    const int N = int(layers_.size());
    Plan p;
    p.input_shape = input;
    std::vector<Shape> shapes(static_cast<std::size_t>(N));
    shapes[0] = input;
    std::vector<int> as_float(std::size_t(N), -1), as_u8(std::size_t(N), -1);
    p.values.push_back(Value{input, false, {}});
    as_float[0] = 0;
    auto new_value = [&](int t, bool u8) {
      p.values.push_back(Value{shapes[std::size_t(t)], u8, u8 ? qparams_[std::size_t(t)] : QuantParams{}});
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
    int64_t workspace = 1;
    for (int i = 1; i < N; ++i) {
      const Layer* l = layers_[std::size_t(i)];
      const std::vector<int>& in = inputs_[std::size_t(i)];
      std::vector<Shape> in_shapes;
      for (int t : in) in_shapes.push_back(shapes[std::size_t(t)]);
      shapes[std::size_t(i)] = l->output_shape(in_shapes);
      const int t0 = in[0];
      if (convs_.count(i)) {
        const quant::ConvInt8& c = convs_.at(i);
        Step st{Kind::Int8, i, {}, 0};
        for (int t : in) st.ins.push_back(u8_of(t));
        const bool flt = c.float_out && shapes[std::size_t(i)].plane() == 1;
        st.out = new_value(i, !flt);
        (flt ? as_float : as_u8)[std::size_t(i)] = st.out;
        p.steps.push_back(st);
      } else if (int8_pools_.count(i) && as_u8[std::size_t(t0)] >= 0) {
        Step st{Kind::MaxPool, i, {as_u8[std::size_t(t0)]}, 0};
        st.out = as_u8[std::size_t(i)] = new_value(i, true);
        p.steps.push_back(st);
      } else if (quant::passes_through(l, in_shapes[0])) {
        as_u8[std::size_t(i)] = as_u8[std::size_t(t0)];
        as_float[std::size_t(i)] = as_float[std::size_t(t0)];
      } else {
        Step st{Kind::Float, i, {}, 0};
        for (int t : in) st.ins.push_back(float_of(t));
        st.out = as_float[std::size_t(i)] = new_value(i, false);
        workspace = std::max(workspace, l->workspace_floats(in_shapes));
        p.steps.push_back(st);
      }
    }
    for (int t : outputs_) {
      p.outputs.push_back(float_of(t));
      p.output_shapes.push_back(shapes[std::size_t(t)]);
    }
    p.storage.resize(p.values.size());
    for (std::size_t v = 1; v < p.values.size(); ++v) {
      const Value& val = p.values[v];
      p.storage[v] = val.u8 ? quant::u8_storage(val.shape.numel()) : AlignedVector(std::size_t(val.shape.numel()));
    }
    p.workspace = AlignedVector(std::size_t(workspace));
    return p;
  }

  Plan& plan(const Shape& input) {
    if (!plan_ || !(plan_->input_shape == input)) plan_ = std::make_unique<Plan>(make_plan(input));
    return *plan_;
  }

  void run_step(Plan& p, const Step& st) {
    const Value& out = p.values[std::size_t(st.out)];
    const Shape& s = out.shape;
    const Value& in = p.values[std::size_t(st.ins.empty() ? 0 : st.ins[0])];
    switch (st.kind) {
      case Kind::Float: {
        std::vector<ConstTensorView> ins;
        for (int v : st.ins) ins.push_back(ConstTensorView{p.values[std::size_t(v)].shape, p.floats(v)});
        layers_[std::size_t(st.node)]->forward(ins, TensorView{s, p.out_floats(st.out)}, p.workspace.data());
        break;
      }
      case Kind::Quantize:
        for (int64_t n = 0; n < s.n; ++n)
          quant::quantize_nchw(p.floats(st.ins[0]) + n * s.sample(), s, out.qp,
                               p.bytes(st.out) + n * s.sample());
        break;
      case Kind::Dequantize:
        for (int64_t n = 0; n < s.n; ++n)
          quant::dequantize_nhwc(p.bytes(st.ins[0]) + n * s.sample(), s, in.qp, p.out_floats(st.out) + n * s.sample());
        break;
      case Kind::MaxPool: {
        const auto* pool = static_cast<const Pool2d*>(layers_[std::size_t(st.node)]);
        for (int64_t n = 0; n < s.n; ++n)
          quant::max_pool_nhwc(p.bytes(st.ins[0]) + n * in.shape.sample(), in.shape, pool->options(), s,
                               p.bytes(st.out) + n * s.sample());
        break;
      }
      case Kind::Int8: {
        const quant::ConvInt8& c = convs_.at(st.node);
        const kernels::int8::Geometry g = c.geometry(in.shape);
        for (int64_t n = 0; n < s.n; ++n)
          c.run(p.bytes(st.ins[0]) + n * in.shape.sample(), g, c.residual ? p.bytes(st.ins[1]) + n * s.sample() : nullptr,
                out.u8 ? p.bytes(st.out) + n * s.sample() : nullptr, out.u8 ? nullptr : p.out_floats(st.out) + n * s.sample());
        break;
      }
    }
  }

  // Observes the float graph on every calibration input: ranges, then (for percentiles)
  // histograms; then quantizes every candidate and measures its SQNR; then picks the int8 layers.
  // Layer i's int8 form with its tensors' ranges (input, output, residual) and whether it writes a
  // model output (in float), prepared to run.
  void connect(quant::ConvInt8& c, int i, const float* bias) const {
    const std::vector<int>& in = inputs_[std::size_t(i)];
    c.in = qparams_[std::size_t(in[0])];
    c.out = qparams_[std::size_t(i)];
    if (c.residual) c.res = qparams_[std::size_t(in[1])];
    c.float_out = std::find(outputs_.begin(), outputs_.end(), i) != outputs_.end();
    c.prepare(bias);
  }

  // The graph's nodes as forward() needs them (layers live on the heap, so a moved Graph keeps them).
  void take_structure(const Graph& graph) {
    if (!graph.loaded()) fail("quantize: the model holds no weights yet");
    for (std::size_t i = 0; i < graph.num_nodes(); ++i) {
      layers_.push_back(graph.layer(int(i)));
      inputs_.push_back(graph.inputs_of(int(i)));
    }
    outputs_ = graph.output_nodes();
  }

  void calibrate(Graph& graph, const std::vector<Tensor>& inputs) {
    const int N = int(layers_.size());
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
      graph.forward(x.view(), nullptr, &ob);
    }
    if (opt_.range == CalibrationRange::Percentile)
      for (const Tensor& x : inputs) {
        stats[0].add_hist(x.data(), x.numel());
        Graph::Observer ob = [&](int node, ConstTensorView y) { stats[std::size_t(node)].add_hist(y.data, y.shape.numel()); };
        graph.forward(x.view(), nullptr, &ob);
      }
    qparams_.assign(std::size_t(N), QuantParams{});
    for (int t = 0; t < N; ++t) qparams_[std::size_t(t)] = stats[std::size_t(t)].qparams(opt_.range, opt_.percentile);
    // A max pool, Dropout or Flatten hands its u8 input on as it is, so its output has its input's
    // range (for a max pool a superset of its own, if it ends up running in fp32).
    for (int i = 1; i < N; ++i)
      if (forwards_range(layers_[std::size_t(i)])) qparams_[std::size_t(i)] = qparams_[std::size_t(inputs_[std::size_t(i)][0])];

    // Candidates, quantized with these ranges; a model output is written in float.
    std::map<int, quant::ConvInt8> candidates;
    for (int i = 1; i < N; ++i) {
      quant::ConvInt8 c;
      const float* bias = nullptr;
      if (!quant::int8_candidate(layers_[std::size_t(i)], c, bias)) continue;
      connect(c, i, bias);
      candidates.emplace(i, std::move(c));
    }
    // Each candidate alone on the float graph's own tensors.
    std::map<int, std::pair<double, double>> signal_noise;
    std::vector<Shape> shapes(static_cast<std::size_t>(N));  // each node's output for the first input
    const int samples = std::clamp<int>(opt_.sqnr_samples, 1, int(inputs.size()));
    for (int k = 0; k < samples; ++k) {
      std::vector<Tensor> seen(static_cast<std::size_t>(N));
      seen[0] = inputs[std::size_t(k)].clone();
      Graph::Observer ob = [&](int node, ConstTensorView y) { seen[std::size_t(node)] = Tensor::from(y.shape, y.data); };
      graph.forward(inputs[std::size_t(k)].view(), nullptr, &ob);
      if (k == 0)
        for (int t = 0; t < N; ++t) shapes[std::size_t(t)] = seen[std::size_t(t)].shape();
      for (auto it = candidates.begin(); it != candidates.end();) {
        const int i = it->first;
        const Tensor& x = seen[std::size_t(inputs_[std::size_t(i)][0])];
        if (dynamic_cast<const Linear*>(layers_[std::size_t(i)]) && x.shape().plane() != 1) {
          it = candidates.erase(it);  // a linear layer reading a whole image: its order is NCHW's
          continue;
        }
        auto& [sig, noise] = signal_noise[i];
        measure(it->second, x, it->second.residual ? &seen[std::size_t(inputs_[std::size_t(i)][1])] : nullptr,
                seen[std::size_t(i)], sig, noise);
        ++it;
      }
    }
    for (auto& [i, c] : candidates) {
      const auto [sig, noise] = signal_noise[i];
      const double db = noise > 0 ? 10 * std::log10(std::max(sig, 1e-30) / noise) : 200.0;
      sqnr_[i] = db;
      if (db >= opt_.min_sqnr_db) convs_.emplace(i, std::move(c));
      else why_fp32_[i] = "under the SQNR limit";
    }
    drop_costly_regions(shapes);
    decide_pools();
    plan_.reset();
  }

  // The speed rule. Int8 layers joined by u8 tensors (directly or through max pools, Dropout,
  // Flatten) form a region: its inputs are quantized once on the way in and its outputs
  // dequantized on the way out. Where a region does fewer than kMinMacsPerConverted multiply-adds
  // per converted element, the conversions cost more than int8 saves (break-even about 110 here:
  // 0.76 ns to quantize an element, 6.7 ps saved per multiply-add), and the region stays fp32.
  // YuNet's 1x1 layers of 16-64 channels between fp32 depth-wise ones (33 ms per photo in int8
  // instead of 20) stay fp32; VGG and ResNet are one region each and run in int8.
  static constexpr int64_t kMinMacsPerConverted = 256;
  void drop_costly_regions(const std::vector<Shape>& shapes) {
    const int N = int(layers_.size());
    std::vector<std::vector<int>> readers(static_cast<std::size_t>(N));
    for (int k = 1; k < N; ++k)
      for (int t : inputs_[std::size_t(k)]) readers[std::size_t(t)].push_back(k);
    // The int8 layer whose u8 output reaches tensor t unchanged, or -1.
    auto int8_source = [&](int t) {
      while (t > 0 && !convs_.count(t) && forwards_range(layers_[std::size_t(t)])) t = inputs_[std::size_t(t)][0];
      return convs_.count(t) && !convs_.at(t).float_out ? t : -1;
    };
    // Whether some reader of tensor t (through layers that hand it on) runs fp32.
    std::function<bool(int)> fp32_reader = [&](int t) {
      for (int k : readers[std::size_t(t)])
        if (!convs_.count(k) && (!forwards_range(layers_[std::size_t(k)]) || fp32_reader(k))) return true;
      return false;
    };
    std::map<int, int> region;  // int8 layer -> its region's first layer
    std::function<int(int)> find = [&](int i) { return region[i] == i ? i : region[i] = find(region[i]); };
    for (auto& [i, c] : convs_) region[i] = i;
    std::map<int, int> first_reader;  // of each tensor quantized on the way in: its readers share it
    for (auto& [i, c] : convs_)
      for (int t : inputs_[std::size_t(i)]) {
        const int src = int8_source(t);
        const int other = src >= 0 ? src : first_reader.emplace(t, i).first->second;
        region[find(i)] = find(other);
      }
    std::map<int, std::pair<int64_t, int64_t>> cost;  // region -> multiply-adds, converted elements
    std::set<int> quantized;                           // tensors counted once however many read them
    for (auto& [i, c] : convs_) {
      auto& [macs, converted] = cost[find(i)];
      macs += shapes[std::size_t(i)].numel() * c.o.in_channels * c.o.kh * c.o.kw;
      if (!c.float_out && fp32_reader(i)) converted += shapes[std::size_t(i)].numel();
      for (int t : inputs_[std::size_t(i)])
        if (int8_source(t) < 0 && quantized.insert(t).second) converted += shapes[std::size_t(t)].numel();
    }
    for (auto it = convs_.begin(); it != convs_.end();) {
      const auto [macs, converted] = cost[find(it->first)];
      if (macs >= kMinMacsPerConverted * converted) {
        ++it;
        continue;
      }
      why_fp32_[it->first] = "its region's conversions would cost more than int8 saves";
      it = convs_.erase(it);
    }
  }

  // Max pools run on u8 where their input is u8 (written by an int8 layer, or passed on).
  void decide_pools() {
    std::set<int> u8_nodes;
    int8_pools_.clear();
    for (int i = 1; i < int(layers_.size()); ++i) {
      const Layer* l = layers_[std::size_t(i)];
      const int t0 = inputs_[std::size_t(i)][0];
      const auto* pool = dynamic_cast<const Pool2d*>(l);
      if (convs_.count(i) && !convs_.at(i).float_out) u8_nodes.insert(i);
      else if (pool && u8_nodes.count(t0) && forwards_range(l)) int8_pools_.insert(i), u8_nodes.insert(i);
      else if (!pool && u8_nodes.count(t0) && forwards_range(l)) u8_nodes.insert(i);  // make_plan checks shapes
    }
  }

  // Max pools (no dilation), Dropout and Flatten: they pass a u8 tensor on with its range.
  static bool forwards_range(const Layer* l) {
    if (const auto* pool = dynamic_cast<const Pool2d*>(l))
      return pool->kind() == PoolKind::Max && pool->options().dilation_h == 1 && pool->options().dilation_w == 1;
    return dynamic_cast<const Dropout*>(l) || dynamic_cast<const Flatten*>(l);
  }

  std::string node_name(int i) const { return i == 0 ? "@input" : layers_[std::size_t(i)]->name(); }

  void load(const SafeTensors& file) {
    const std::string& origin = file.origin();
    const std::string text = file.meta("quantization");
    if (text.empty())
      fail(origin, ": holds no int8 form (no metadata 'quantization'); make one with --calibrate ... --save-int8 FILE");
    json::Value doc;
    try {
      doc = json::parse(text);
    } catch (const Error& e) {
      fail(origin, ": metadata 'quantization' is not valid JSON: ", e.what());
    }
    auto bad = [&](const std::string& what) { fail(origin, ": metadata 'quantization': ", what); };
    const json::Value* format = doc.is_object() ? doc.find("format") : nullptr;
    if (!format || !format->is_number() || format->number != 1) bad("needs \"format\": 1");
    const json::Value *acts = doc.find("activations"), *int8 = doc.find("int8"), *fp32 = doc.find("fp32");
    if (!acts || !acts->is_object() || !int8 || !int8->is_object()) bad("needs \"activations\" and \"int8\" objects");
    if (const json::Value* r = doc.find("range"); r && r->is_string()) opt_.range = r->string == "minmax" ? CalibrationRange::MinMax : CalibrationRange::Percentile;
    if (const json::Value* v = doc.find("percentile"); v && v->is_number()) opt_.percentile = v->number;
    if (const json::Value* v = doc.find("min_sqnr_db"); v && v->is_number()) opt_.min_sqnr_db = v->number;
    auto positive = [&](const json::Value& v, const std::string& what) {
      if (!v.is_number() || !std::isfinite(v.number) || !(v.number > 0) || v.number > 3.4e38)
        bad(what + " must be a finite positive number");
      return float(v.number);
    };
    const int N = int(layers_.size());
    std::map<std::string, int> by_name;
    qparams_.assign(std::size_t(N), QuantParams{});
    for (int i = 0; i < N; ++i) {
      by_name[node_name(i)] = i;
      const json::Value* a = acts->find(node_name(i));
      if (!a) bad("no activation range for '" + node_name(i) + "'");
      if (!a->is_array() || a->array.size() != 2) bad("the range of '" + node_name(i) + "' must be [scale, zero point]");
      qparams_[std::size_t(i)].scale = positive(a->array[0], "the scale of '" + node_name(i) + "'");
      const json::Value& z = a->array[1];
      if (!z.is_index() || z.number > 255) bad("the zero point of '" + node_name(i) + "' must be a whole number in [0, 255]");
      qparams_[std::size_t(i)].zero = int32_t(z.number);
    }
    for (const auto& [name, entry] : int8->object) {
      const auto it = by_name.find(name);
      if (it == by_name.end() || it->second == 0) bad("int8 layer '" + name + "' is not in the model");
      const int i = it->second;
      quant::ConvInt8 c;
      const float* bias = nullptr;
      bool capable = false;
      try {
        capable = quant::int8_candidate(layers_[std::size_t(i)], c, bias);
      } catch (const Error& e) {
        fail(origin, ": ", e.what());
      }
      if (!capable) bad("layer '" + name + "' cannot run in int8");
      const json::Value* ws = entry.is_object() ? entry.find("weight_scales") : nullptr;
      if (!ws || !ws->is_array() || int64_t(ws->array.size()) != c.o.out_channels)
        bad("layer '" + name + "' needs " + std::to_string(c.o.out_channels) + " weight scales");
      for (std::size_t k = 0; k < ws->array.size(); ++k)
        c.w_scale[k] = positive(ws->array[k], "weight scale " + std::to_string(k) + " of '" + name + "'");
      const std::string tensor = name + ".weight_int8";
      if (!file.contains(tensor)) fail(origin, ": int8 layer '", name, "' has no tensor '", tensor, "'");
      const std::vector<int64_t> want{c.o.out_channels, c.o.in_channels, c.o.kh, c.o.kw};
      if (file.dims(tensor) != want)
        fail(origin, ": tensor '", tensor, "' has shape ", dims_str(file.dims(tensor)), ", expected ", dims_str(want));
      c.weights = file.read_int8(tensor);
      connect(c, i, bias);
      if (const json::Value* db = entry.find("sqnr_db"); db && db->is_number()) sqnr_[i] = db->number;
      convs_.emplace(i, std::move(c));
    }
    if (fp32 && fp32->is_object())
      for (const auto& [name, entry] : fp32->object) {
        const auto it = by_name.find(name);
        const json::Value* db = entry.is_object() ? entry.find("sqnr_db") : nullptr;
        if (it != by_name.end() && db && db->is_number()) sqnr_[it->second] = db->number;
        const json::Value* why = entry.is_object() ? entry.find("why") : nullptr;
        if (it != by_name.end() && why && why->is_string()) why_fp32_[it->second] = why->string;
      }
    decide_pools();
    plan_.reset();
  }

  // Adds one candidate's squared output and squared int8 error on one observed input (x, residual)
  // with float output y, sample by sample.
  static void measure(const quant::ConvInt8& c, const Tensor& x, const Tensor* residual, const Tensor& y, double& sig,
                      double& noise) {
    const Shape xs{1, x.shape().c, x.shape().h, x.shape().w}, ys{1, y.shape().c, y.shape().h, y.shape().w};
    const kernels::int8::Geometry geo = c.geometry(xs);
    AlignedVector xq = quant::u8_storage(xs.numel()), rq = quant::u8_storage(ys.numel()),
                  yq = quant::u8_storage(ys.numel());
    AlignedVector yd(std::size_t(ys.numel()));
    const bool flt = c.float_out && ys.plane() == 1;
    for (int64_t n = 0; n < x.shape().n; ++n) {
      quant::quantize_nchw(x.data() + n * xs.numel(), xs, c.in, quant::bytes_of(xq));
      if (residual) quant::quantize_nchw(residual->data() + n * ys.numel(), ys, c.res, quant::bytes_of(rq));
      c.run(quant::bytes_of(xq), geo, residual ? quant::bytes_of(rq) : nullptr, flt ? nullptr : quant::bytes_of(yq),
            flt ? yd.data() : nullptr);
      if (!flt) quant::dequantize_nhwc(quant::bytes_of(yq), ys, c.out, yd.data());
      const float* ref = y.data() + n * ys.numel();
      for (int64_t e = 0; e < ys.numel(); ++e) {
        const double d = double(ref[e]) - yd.data()[e];
        sig += double(ref[e]) * ref[e];
        noise += d * d;
      }
    }
  }

  static void check_finite(const Tensor& x) {
    for (int64_t i = 0; i < x.numel(); ++i)
      if (!std::isfinite(x[i])) fail("quantize: a calibration input holds a non-finite value");
  }

  std::vector<const Layer*> layers_;     // per node (node 0, the input: none)
  std::vector<std::vector<int>> inputs_;  // per node
  std::vector<int> outputs_;              // the graph's output nodes
  QuantizeOptions opt_;
  std::vector<QuantParams> qparams_;      // per graph node's output (node 0: the input)
  std::map<int, quant::ConvInt8> convs_;  // the layers that run in int8, by node
  std::map<int, double> sqnr_;            // every candidate's measured SQNR
  std::map<int, std::string> why_fp32_;   // the candidates kept fp32, and which rule kept them
  std::set<int> int8_pools_;
  std::unique_ptr<Plan> plan_;
  std::unique_ptr<std::mutex> mutex_ = std::make_unique<std::mutex>();
};

}  // namespace cnn
CNN_KERNELS_END
