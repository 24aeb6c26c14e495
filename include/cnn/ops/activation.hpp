// cnn/ops/activation.hpp — element-wise ReLU / LeakyReLU / Sigmoid. Graph::fuse() merges one that
// follows a Conv2d, Linear or Add into that op's output.
#pragma once
#include "layer.hpp"

namespace cnn {

class ActivationLayer : public Layer {
 public:
  ActivationLayer(std::string name, Activation kind, float slope = 0.01f)
      : Layer(std::move(name)), kind_(kind), slope_(slope) {}
  std::string type() const override { return activation_name(kind_); }
  bool in_place() const override { return true; }
  Activation kind() const { return kind_; }
  float slope() const { return slope_; }

  Shape output_shape(const std::vector<Shape>& in) const override {
    expect_inputs(in);
    return in[0];
  }
  void forward(const std::vector<ConstTensorView>& in, TensorView y, float*) const override {
    const Epilogue ep{nullptr, kind_, slope_};
    const int64_t n = in[0].shape.numel();
    const float* s = in[0].data;
    constexpr int64_t kChunk = 1 << 14;
    parallel_for((n + kChunk - 1) / kChunk, kChunk, [&](int64_t b) {
      const int64_t end = std::min(n, (b + 1) * kChunk);
      for (int64_t i = b * kChunk; i < end; ++i) y.data[i] = ep.apply(s[i], 0);
    });
  }

 private:
  Activation kind_;
  float slope_;
};

}  // namespace cnn
