// cnn/models/mobilenet.hpp — MobileNet V2 named like torchvision's `mobilenet_v2`, so its
// state_dicts load unchanged:
//
//   features.0          3x3/2 stem: features.0.0 Conv2d, features.0.1 BatchNorm2d, features.0.2 ReLU6
//   features.1 .. 17    inverted residual blocks, features.N.conv.K...:
//                         expansion 1 (features.1): conv.0 = depthwise 3x3 (conv.0.0/.1/.2),
//                                                   conv.1 = 1x1 projection, conv.2 = its BatchNorm
//                         expansion 6 (the rest):   conv.0 = 1x1 expansion (conv.0.0/.1/.2),
//                                                   conv.1 = depthwise 3x3 (conv.1.0/.1/.2),
//                                                   conv.2 = 1x1 projection, conv.3 = its BatchNorm
//                       plus the input added back (features.N.add) when stride 1 and in == out
//   features.18         1x1 to 1280 channels, BatchNorm, ReLU6
//   avgpool, flatten, classifier.0 Dropout, classifier.1 Linear (or heads.<name>)
//
// ModelConfig::width is torchvision's width_mult: channel counts are rounded with its
// _make_divisible(c * width, 8), and the last 1x1 layer keeps at least 1280 channels.
// Graph::fuse() folds every BatchNorm, merges every ReLU6 and folds every residual Add into the
// projection convolution, so a block runs as three convolutions.
#pragma once
#include <algorithm>

#include "vgg.hpp"

namespace cnn::models {

// torchvision's _make_divisible(v, divisor): v to the nearest multiple of `divisor` (halves up),
// at least `divisor`, and never more than 10% below v.
inline int64_t make_divisible(double v, int64_t divisor = 8) {
  int64_t n = std::max<int64_t>(divisor, static_cast<int64_t>(v + double(divisor) / 2) / divisor * divisor);
  if (double(n) < 0.9 * v) n += divisor;
  return n;
}

namespace detail {
// torchvision's Conv2dNormActivation(in, out, k, stride, groups, BatchNorm2d, ReLU6): `prefix`.0/.1/.2.
inline int conv_bn_relu6(Graph& g, int x, const std::string& prefix, int64_t in, int64_t out, int k, int stride,
                         int groups = 1) {
  x = g.add<Conv2d>({x}, prefix + ".0",
                    Conv2dOptions{in, out}.kernel(k).stride(stride).padding((k - 1) / 2).group(groups).with_bias(false));
  x = g.add<BatchNorm2d>({x}, prefix + ".1", out);
  return g.add<ActivationLayer>({x}, prefix + ".2", Activation::ReLU6);
}
}  // namespace detail

inline Graph build_mobilenet_v2(const ModelConfig& c) {
  struct Stage {
    int t, c, n, s;  // expansion ratio, output channels, blocks, first block's stride
  };
  static const Stage stages[] = {{1, 16, 1, 1},  {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                 {6, 96, 3, 1},  {6, 160, 3, 2}, {6, 320, 1, 1}};
  Graph g;
  int64_t ch = make_divisible(32 * c.width);
  const int64_t last = make_divisible(1280 * std::max(1.0, c.width));
  int x = detail::conv_bn_relu6(g, Graph::kInput, "features.0", c.in_channels, ch, 3, 2);
  int idx = 1;
  for (const Stage& st : stages) {
    const int64_t out = make_divisible(st.c * c.width);
    for (int b = 0; b < st.n; ++b, ++idx) {
      const std::string p = "features." + std::to_string(idx) + ".conv.";
      const int stride = b == 0 ? st.s : 1;
      const int64_t hidden = ch * st.t;  // int(round(inp * expand_ratio)) with an integer ratio
      int y = x, k = 0;
      if (st.t != 1) y = detail::conv_bn_relu6(g, y, p + std::to_string(k++), ch, hidden, 1, 1);
      y = detail::conv_bn_relu6(g, y, p + std::to_string(k++), hidden, hidden, 3, stride, int(hidden));
      y = g.add<Conv2d>({y}, p + std::to_string(k++), Conv2dOptions{hidden, out}.kernel(1).with_bias(false));
      y = g.add<BatchNorm2d>({y}, p + std::to_string(k++), out);
      if (stride == 1 && ch == out) y = g.add<Add>({y, x}, "features." + std::to_string(idx) + ".add");
      x = y;
      ch = out;
    }
  }
  x = detail::conv_bn_relu6(g, x, "features." + std::to_string(idx), ch, last, 1, 1);
  x = g.add<AdaptiveAvgPool2d>({x}, "avgpool", 1, 1);
  x = g.add<Flatten>({x}, "flatten");
  x = g.add<Dropout>({x}, "classifier.0");
  add_heads(g, x, last, c, "classifier.1");
  return g;
}

}  // namespace cnn::models
