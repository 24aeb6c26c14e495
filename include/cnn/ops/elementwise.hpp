// cnn/ops/elementwise.hpp — shape-only and element-wise ops: Flatten, Dropout (identity at
// inference), Softmax over channels, and the residual Add (with an optional fused activation).
#pragma once
#include <cmath>
#include <cstring>

#include "layer.hpp"

namespace cnn {

// Copies input 0 to the output unless the graph planned them into the same buffer.
inline void copy_if_distinct(ConstTensorView x, TensorView y) {
  if (x.data != y.data) std::memcpy(y.data, x.data, static_cast<std::size_t>(x.shape.numel()) * sizeof(float));
}

// (N, C, H, W) -> (N, C*H*W, 1, 1), as torch.flatten(x, 1).
class Flatten : public Layer {
 public:
  using Layer::Layer;
  std::string type() const override { return "Flatten"; }
  bool in_place() const override { return true; }
  Shape output_shape(const std::vector<Shape>& in) const override {
    expect_inputs(in);
    return {in[0].n, in[0].sample(), 1, 1};
  }
  void forward(const std::vector<ConstTensorView>& in, TensorView y, float*) const override { copy_if_distinct(in[0], y); }
};

class Dropout : public Layer {
 public:
  using Layer::Layer;
  std::string type() const override { return "Dropout"; }
  bool in_place() const override { return true; }
  Shape output_shape(const std::vector<Shape>& in) const override {
    expect_inputs(in);
    return in[0];
  }
  void forward(const std::vector<ConstTensorView>& in, TensorView y, float*) const override { copy_if_distinct(in[0], y); }
};

// Softmax over the channel dimension at every (n, h, w), as torch.softmax(x, dim=1).
class Softmax : public Layer {
 public:
  using Layer::Layer;
  std::string type() const override { return "Softmax"; }
  bool in_place() const override { return true; }
  Shape output_shape(const std::vector<Shape>& in) const override {
    expect_inputs(in);
    return in[0];
  }
  void forward(const std::vector<ConstTensorView>& in, TensorView y, float*) const override {
    const ConstTensorView x = in[0];
    const int64_t C = x.shape.c, P = x.shape.plane();
    for (int64_t n = 0; n < x.shape.n; ++n)
      for (int64_t p = 0; p < P; ++p) {
        const float* s = x.sample(n) + p;
        float* d = y.sample(n) + p;
        float m = -INFINITY;
        for (int64_t c = 0; c < C; ++c) m = std::max(m, s[c * P]);
        double sum = 0;
        for (int64_t c = 0; c < C; ++c) {
          const float e = std::exp(s[c * P] - m);
          d[c * P] = e;
          sum += e;
        }
        const float inv = float(1.0 / sum);
        for (int64_t c = 0; c < C; ++c) d[c * P] *= inv;
      }
  }
};

// y = act(a + b) for two inputs of the same shape (the residual connection).
class Add : public Layer {
 public:
  using Layer::Layer;
  std::string type() const override { return "Add"; }
  std::string describe() const override {
    return act_ == Activation::None ? "" : std::string("+") + activation_name(act_);
  }
  int num_inputs() const override { return 2; }
  bool in_place() const override { return true; }
  bool accepts_activation() const override { return act_ == Activation::None; }
  void set_activation(Activation a, float slope) override { act_ = a, slope_ = slope; }

  Shape output_shape(const std::vector<Shape>& in) const override {
    expect_inputs(in);
    if (in[0] != in[1]) layer_error("input shapes differ: " + in[0].str() + " and " + in[1].str());
    return in[0];
  }
  void forward(const std::vector<ConstTensorView>& in, TensorView y, float*) const override {
    const Epilogue ep{nullptr, act_, slope_};
    const int64_t n = y.shape.numel();
    const float *a = in[0].data, *b = in[1].data;
    constexpr int64_t kChunk = 1 << 14;
    parallel_for((n + kChunk - 1) / kChunk, kChunk, [&](int64_t blk) {
      const int64_t end = std::min(n, (blk + 1) * kChunk);
      for (int64_t i = blk * kChunk; i < end; ++i) y.data[i] = ep.apply(a[i] + b[i], 0);
    });
  }

 private:
  Activation act_ = Activation::None;
  float slope_ = 0.01f;
};

}  // namespace cnn
