// cnn/ops/linear.hpp — fully connected layer y = x W^T + b. The input is flattened per sample
// (C*H*W must equal in_features), the output has shape (N, out_features, 1, 1). With set_bf16(true)
// and AVX512_BF16 it multiplies in bf16 (half the weight bytes to read).
#pragma once
#include <memory>
#include <mutex>

#include "../kernels/linear.hpp"
#include "layer.hpp"

namespace cnn {

class Linear : public Layer {
 public:
  Linear(std::string name, int64_t in_features, int64_t out_features, bool bias = true)
      : Layer(std::move(name)), in_(in_features), out_(out_features) {
    if (in_features <= 0 || out_features <= 0) layer_error("feature counts must be positive");
    weight_.dims = {out_features, in_features};
    if (bias) bias_.dims = {out_features};
  }
  std::string type() const override { return "Linear"; }
  std::string describe() const override {
    std::string s = std::to_string(in_) + " -> " + std::to_string(out_);
    if (act_ != Activation::None) s += std::string(" +") + activation_name(act_);
    return s;
  }
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  const Param& weight() const { return weight_; }
  const float* bias_data() const { return bias_.values.empty() ? nullptr : bias_.values.data(); }
  Activation activation() const { return act_; }
  float slope() const { return slope_; }  // LeakyReLU's

  Shape output_shape(const std::vector<Shape>& in) const override {
    expect_inputs(in);
    if (in[0].sample() != in_)
      layer_error("input " + in[0].str() + " has " + std::to_string(in[0].sample()) + " features per sample, expected " +
                  std::to_string(in_));
    return {in[0].n, out_, 1, 1};
  }
  std::vector<ParamSlot> params() override {
    std::vector<ParamSlot> p{{"weight", &weight_, weight_.dims}};
    if (!bias_.dims.empty()) p.push_back({"bias", &bias_, bias_.dims});
    return p;
  }
  bool accepts_activation() const override { return act_ == Activation::None; }
  void set_activation(Activation a, float slope) override { act_ = a, slope_ = slope; }

  void forward(const std::vector<ConstTensorView>& in, TensorView y, float*) const override {
    const Epilogue ep{bias_.values.empty() ? nullptr : bias_.values.data(), act_, slope_};
    if (bf16_enabled() && kernels::bf16_available())
      return kernels::linear_forward_bf16(in[0].shape.n, bf16_weights(), in[0].data, y.data, ep);
    kernels::linear_forward(out_, in[0].shape.n, in_, weight_.values.data(), in[0].data, y.data, ep);
  }
  void prepare() override { bf16_.reset(); }

 private:
  int64_t in_, out_;
  Param weight_, bias_;
  Activation act_ = Activation::None;
  float slope_ = 0.01f;

  // The weights in bf16 (set_bf16), built on first use.
  const kernels::LinearBf16Weights& bf16_weights() const {
    std::lock_guard<std::mutex> lock(bf16_mutex_);
    if (!bf16_) bf16_ = std::make_unique<kernels::LinearBf16Weights>(kernels::pack_linear_bf16(out_, in_, weight_.values.data()));
    return *bf16_;
  }
  mutable std::unique_ptr<kernels::LinearBf16Weights> bf16_;
  mutable std::mutex bf16_mutex_;
};

}  // namespace cnn
