// cnn/ops/batchnorm.hpp — BatchNorm2d in inference mode: y = (x - mean) / sqrt(var + eps) * w + b.
// When it directly follows a Conv2d, Graph::fuse() folds it into the conv's weights and drops it.
#pragma once
#include <cmath>

#include "layer.hpp"

namespace cnn {

class BatchNorm2d : public Layer {
 public:
  BatchNorm2d(std::string name, int64_t channels, double eps = 1e-5) : Layer(std::move(name)), c_(channels), eps_(eps) {
    for (Param* p : {&weight_, &bias_, &mean_, &var_}) p->dims = {channels};
  }
  std::string type() const override { return "BatchNorm2d"; }
  int in_place_input() const override { return 0; }

  Shape output_shape(const std::vector<Shape>& in) const override {
    expect_inputs(in);
    if (in[0].c != c_) layer_error("input has " + std::to_string(in[0].c) + " channels, expected " + std::to_string(c_));
    return in[0];
  }
  std::vector<ParamSlot> params() override {
    return {{"weight", &weight_, weight_.dims}, {"bias", &bias_, bias_.dims},
            {"running_mean", &mean_, mean_.dims, false}, {"running_var", &var_, var_.dims, false}};
  }
  void prepare() override {
    scale_.resize(c_);
    shift_.resize(c_);
    for (int64_t c = 0; c < c_; ++c) {
      if (!(var_.values[c] + eps_ > 0.0)) layer_error("running_var[" + std::to_string(c) + "] + eps is not positive");
      scale_[c] = weight_.values[c] / std::sqrt(double(var_.values[c]) + eps_);
      shift_[c] = bias_.values[c] - mean_.values[c] * scale_[c];
    }
  }
  // Per-channel affine form, valid after prepare().
  const std::vector<double>& scale() const { return scale_; }
  const std::vector<double>& shift() const { return shift_; }

  void forward(const std::vector<ConstTensorView>& in, TensorView y, float*) const override {
    const ConstTensorView x = in[0];
    const int64_t P = x.shape.plane();
    parallel_for(x.shape.n * c_, P, [&](int64_t nc) {
      const int64_t c = nc % c_;
      const float sc = float(scale_[c]), sh = float(shift_[c]);
      const float* s = x.data + nc * P;
      float* d = y.data + nc * P;
      for (int64_t i = 0; i < P; ++i) d[i] = s[i] * sc + sh;
    });
  }

 private:
  int64_t c_;
  double eps_;
  Param weight_, bias_, mean_, var_;
  std::vector<double> scale_, shift_;
};

}  // namespace cnn
