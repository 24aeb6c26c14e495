// cnn/ops/linear.hpp — fully connected layer y = x W^T + b. The input is flattened per sample
// (C*H*W must equal in_features), the output has shape (N, out_features, 1, 1).
#pragma once
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
    kernels::linear_forward(out_, in[0].shape.n, in_, weight_.values.data(), in[0].data, y.data,
                            Epilogue{bias_.values.empty() ? nullptr : bias_.values.data(), act_, slope_});
  }

 private:
  int64_t in_, out_;
  Param weight_, bias_;
  Activation act_ = Activation::None;
  float slope_ = 0.01f;
};

}  // namespace cnn
