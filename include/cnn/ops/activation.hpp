// cnn/ops/activation.hpp — element-wise ReLU / ReLU6 / LeakyReLU / Sigmoid. Graph::fuse() merges one that
// follows a Conv2d, Linear or Add into that op's output.
#pragma once
#include "elementwise.hpp"

namespace cnn {

class ActivationLayer : public Layer {
 public:
  ActivationLayer(std::string name, Activation kind, float slope = 0.01f)
      : Layer(std::move(name)), kind_(kind), slope_(slope) {}
  std::string type() const override { return activation_name(kind_); }
  int in_place_input() const override { return 0; }
  Activation kind() const { return kind_; }
  float slope() const { return slope_; }

  Shape output_shape(const std::vector<Shape>& in) const override {
    expect_inputs(in);
    return in[0];
  }
  void forward(const std::vector<ConstTensorView>& in, TensorView y, float*) const override {
    const float* x = in[0].data;
    for_chunks(in[0].shape.numel(), [&](int64_t b, int64_t e) { activate(x + b, y.data + b, e - b, kind_, slope_); });
  }

 private:
  Activation kind_;
  float slope_;
};

}  // namespace cnn
