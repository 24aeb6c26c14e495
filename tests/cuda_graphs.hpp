// What the CUDA backend is tested on, and how: the same small graphs, and the same comparison
// with the CPU engine, on the GPU (test_cuda.cpp) and in the CPU simulation of its kernels
// (test_cuda_on_cpu.cpp).
#pragma once
#include <doctest/doctest.h>

#include <cnn/cnn.hpp>
#include <cnn/cuda/conv_tiles.hpp>  // Precision
#include <functional>
#include <random>

#include "test_util.hpp"

namespace cuda_graphs {

using cnn::cuda::Precision;

// Bounds on max |ours - cpu| / max |cpu|: the for one kernel (`fp32` is 1e-4 on the GPU,
// whose FP32 sums run in another order; the simulation is held to 1e-5); whole networks add up
// every layer's rounding, which BF16 (8 significant bits) keeps within 3e-2 on the age/gender
// networks' logits.
inline double tolerance(Precision p, bool whole_model, double fp32) {
  return p == Precision::FP32 ? fp32 : p == Precision::BF16 && whole_model ? 3e-2 : 1e-2;
}

// Runs `g` on the CPU and through `run` in each precision, and compares every output.
using Runner = std::function<std::vector<cnn::Tensor>(cnn::ConstTensorView, Precision)>;
inline void compare(cnn::Graph& g, const cnn::Shape& in, std::mt19937& rng, const std::string& what, bool whole_model,
                    double fp32, const Runner& run,
                    std::vector<Precision> precisions = {Precision::FP32, Precision::TF32, Precision::BF16}) {
  cnn::Tensor x(in);
  test::fill_random(x.data(), x.numel(), rng);
  const std::vector<cnn::Tensor> cpu = g.forward(x.view());
  for (Precision p : precisions) {
    const std::vector<cnn::Tensor> out = run(x.view(), p);
    REQUIRE(out.size() == cpu.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
      REQUIRE(out[i].shape() == cpu[i].shape());
      const double err = test::rel_error(out[i].data(), cpu[i].data(), cpu[i].numel());
      INFO(what << " " << in.str() << " " << std::string(cnn::cuda::precision_name(p)) << " output " << i << ": " << err);
      CHECK(err < tolerance(p, whole_model, fp32));
    }
  }
}

inline int pick(std::mt19937& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

// A convolution of random shape (groups, depth-wise, stride, padding, dilation, K past one tile,
// M past one), with a residual Add that fuse() folds into it on odd trials and a fused ReLU on
// some. Sets `in` to the input shape.
inline cnn::Graph conv_graph(int trial, std::mt19937& rng, cnn::Shape& in, int max_side = 40) {
  cnn::Conv2dOptions o;
  o.groups = trial % 6 == 0 ? pick(rng, 2, 4) : 1;
  o.in_channels = o.groups * pick(rng, 1, trial % 5 == 0 ? 96 : 24);
  o.out_channels = o.groups * pick(rng, 1, trial % 4 == 0 ? 200 : 40);
  if (trial % 10 == 3) o.groups = int(o.in_channels), o.out_channels = o.in_channels;  // depth-wise
  o.kh = pick(rng, 1, 3) * 2 - 1;
  o.kw = trial % 8 == 5 ? 1 : o.kh;
  o.stride_h = pick(rng, 1, 2);
  o.stride_w = trial % 8 == 2 ? 3 - o.stride_h : o.stride_h;
  o.pad_h = pick(rng, 0, o.kh / 2 + 1);
  o.pad_w = pick(rng, 0, o.kw / 2 + 1);
  o.dilation_h = o.dilation_w = trial % 7 == 0 ? 2 : 1;
  o.bias = trial % 3 != 0;
  in = {pick(rng, 1, 3), o.in_channels, pick(rng, 9, max_side), pick(rng, 9, max_side)};
  cnn::Graph g;
  int y = g.add<cnn::Conv2d>({cnn::Graph::kInput}, "conv", o);
  if (trial % 2) {
    const int z = g.add<cnn::Conv2d>({cnn::Graph::kInput}, "shortcut", o);
    y = g.add<cnn::Add>({y, z}, "add");
  }
  if (trial % 3 == 1) y = g.add<cnn::ActivationLayer>({y}, "relu", cnn::Activation::ReLU);
  g.add_output(y, "out");
  g.init_random(uint32_t(trial + 1));
  return g;
}

// Pooling (max or average, ceil mode, padding), an unfolded BatchNorm, LeakyReLU or Sigmoid; then
// adaptive pooling, Flatten, Dropout, Linear + ReLU and Softmax: two outputs.
inline cnn::Graph ops_graph(int trial, std::mt19937& rng, cnn::Shape& in) {
  const int64_t c = pick(rng, 1, 40), h = pick(rng, 4, 30), w = pick(rng, 4, 30);
  const int64_t oh = pick(rng, 1, 4), ow = pick(rng, 1, 4), features = pick(rng, 1, 300);
  cnn::Pool2dOptions po;
  po.kh = po.kw = pick(rng, 2, 3);
  po.stride_h = po.stride_w = pick(rng, 1, 2);
  po.pad_h = po.pad_w = pick(rng, 0, po.kh / 2);
  po.ceil_mode = trial % 2 == 0;
  po.count_include_pad = trial % 3 != 0;
  cnn::Graph g;
  int y = g.add<cnn::Pool2d>({cnn::Graph::kInput}, "pool", trial % 2 ? cnn::PoolKind::Max : cnn::PoolKind::Avg, po);
  y = g.add<cnn::BatchNorm2d>({y}, "bn", c);  // after a pooling: a layer of its own, not folded
  y = g.add<cnn::ActivationLayer>({y}, "act", trial % 3 ? cnn::Activation::LeakyReLU : cnn::Activation::Sigmoid, 0.2f);
  int head = g.add<cnn::AdaptiveAvgPool2d>({y}, "adaptive", oh, ow);
  head = g.add<cnn::Flatten>({head}, "flatten");
  head = g.add<cnn::Dropout>({head}, "dropout");
  head = g.add<cnn::Linear>({head}, "fc", c * oh * ow, features, trial % 4 != 0);
  head = g.add<cnn::ActivationLayer>({head}, "fc_relu", cnn::Activation::ReLU);  // fused into the Linear
  const int probs = g.add<cnn::Softmax>({head}, "softmax");
  g.add_output(y, "pooled");
  g.add_output(probs, "probabilities");
  g.init_random(uint32_t(100 + trial));
  in = {pick(rng, 1, 9), c, h, w};
  return g;
}

}  // namespace cuda_graphs
