// cnn/ops/elementwise.hpp — shape-only and element-wise ops: Flatten, Dropout (identity at
// inference), Softmax over channels, and the residual Add (with an optional fused activation).
#pragma once
#include <cmath>
#include <cstring>

#include "layer.hpp"

namespace cnn {

// y = act(x) over n elements; one loop per activation so each vectorises (x may equal y).
inline void activate(const float* x, float* y, int64_t n, Activation act, float slope) {
  switch (act) {
    case Activation::None:
      if (x != y) std::memmove(y, x, static_cast<std::size_t>(n) * sizeof(float));
      break;
    case Activation::ReLU:
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.f ? x[i] : 0.f;
      break;
    case Activation::LeakyReLU:
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.f ? x[i] : x[i] * slope;
      break;
    case Activation::Sigmoid:
      for (int64_t i = 0; i < n; ++i) y[i] = 1.f / (1.f + std::exp(-x[i]));
      break;
    case Activation::ReLU6:
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.f ? (x[i] < 6.f ? x[i] : 6.f) : 0.f;
      break;
  }
}

// Runs fn(begin, end) over [0, n) in cache-sized chunks, in parallel when n is large.
template <class Fn>
inline void for_chunks(int64_t n, Fn&& fn) {
  constexpr int64_t kChunk = 1 << 14;
  parallel_for((n + kChunk - 1) / kChunk, kChunk, [&](int64_t b) { fn(b * kChunk, std::min(n, (b + 1) * kChunk)); });
}

// Copies input 0 to the output unless the graph planned them into the same buffer.
inline void copy_if_distinct(ConstTensorView x, TensorView y) {
  if (x.data != y.data) std::memcpy(y.data, x.data, static_cast<std::size_t>(x.shape.numel()) * sizeof(float));
}

// (N, C, H, W) -> (N, C*H*W, 1, 1), as torch.flatten(x, 1).
class Flatten : public Layer {
 public:
  using Layer::Layer;
  std::string type() const override { return "Flatten"; }
  int in_place_input() const override { return 0; }
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
  int in_place_input() const override { return 0; }
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
  int in_place_input() const override { return 0; }
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
  int in_place_input() const override { return 0; }
  bool accepts_activation() const override { return act_ == Activation::None; }
  void set_activation(Activation a, float slope) override { act_ = a, slope_ = slope; }
  Activation activation() const { return act_; }
  float slope() const { return slope_; }

  Shape output_shape(const std::vector<Shape>& in) const override {
    expect_inputs(in);
    if (in[0] != in[1]) layer_error("input shapes differ: " + in[0].str() + " and " + in[1].str());
    return in[0];
  }
  void forward(const std::vector<ConstTensorView>& in, TensorView y, float*) const override {
    const float *a = in[0].data, *b = in[1].data;
    for_chunks(y.shape.numel(), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) y.data[i] = a[i] + b[i];
      activate(y.data + begin, y.data + begin, end - begin, act_, slope_);
    });
  }

 private:
  Activation act_ = Activation::None;
  float slope_ = 0.01f;
};

}  // namespace cnn
