// cnn/models/resnet.hpp — ResNet-18/34 (basic blocks) and ResNet-50/101 (bottlenecks, stride on
// the 3x3 conv as torchvision's v1.5), named like torchvision (conv1, bn1, layerK.B.convN,
// layerK.B.downsample.0/1, fc).
#pragma once
#include "vgg.hpp"

namespace cnn::models {

namespace detail {
inline int conv_bn(Graph& g, int x, const std::string& conv, const std::string& bn, int64_t in, int64_t out, int k,
                   int stride, bool relu, const std::string& relu_name) {
  x = g.add<Conv2d>({x}, conv, Conv2dOptions{in, out}.kernel(k).stride(stride).padding(k / 2).with_bias(false));
  x = g.add<BatchNorm2d>({x}, bn, out);
  if (relu) x = g.add<ActivationLayer>({x}, relu_name, Activation::ReLU);
  return x;
}
}  // namespace detail

inline Graph build_resnet(int depth, const ModelConfig& c) {
  std::vector<int> blocks;
  bool bottleneck = false;
  switch (depth) {
    case 18: blocks = {2, 2, 2, 2}; break;
    case 34: blocks = {3, 4, 6, 3}; break;
    case 50: blocks = {3, 4, 6, 3}, bottleneck = true; break;
    case 101: blocks = {3, 4, 23, 3}, bottleneck = true; break;
    default: fail("unknown ResNet depth ", depth);
  }
  const int expansion = bottleneck ? 4 : 1;
  Graph g;
  int64_t ch = c.scaled(64);
  int x = detail::conv_bn(g, Graph::kInput, "conv1", "bn1", c.in_channels, ch, 7, 2, true, "relu");
  x = g.add<Pool2d>({x}, "maxpool", PoolKind::Max, Pool2dOptions{}.kernel(3).stride(2).padding(1));
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t planes = c.scaled(64 << stage);
    for (int b = 0; b < blocks[stage]; ++b) {
      const std::string p = "layer" + std::to_string(stage + 1) + "." + std::to_string(b) + ".";
      const int stride = (b == 0 && stage > 0) ? 2 : 1;
      const int64_t out = planes * expansion;
      int y;
      if (bottleneck) {
        y = detail::conv_bn(g, x, p + "conv1", p + "bn1", ch, planes, 1, 1, true, p + "relu1");
        y = detail::conv_bn(g, y, p + "conv2", p + "bn2", planes, planes, 3, stride, true, p + "relu2");
        y = detail::conv_bn(g, y, p + "conv3", p + "bn3", planes, out, 1, 1, false, "");
      } else {
        y = detail::conv_bn(g, x, p + "conv1", p + "bn1", ch, planes, 3, stride, true, p + "relu1");
        y = detail::conv_bn(g, y, p + "conv2", p + "bn2", planes, planes, 3, 1, false, "");
      }
      int shortcut = x;
      if (stride != 1 || ch != out)
        shortcut = detail::conv_bn(g, x, p + "downsample.0", p + "downsample.1", ch, out, 1, stride, false, "");
      x = g.add<Add>({y, shortcut}, p + "add");
      x = g.add<ActivationLayer>({x}, p + "relu", Activation::ReLU);
      ch = out;
    }
  }
  x = g.add<AdaptiveAvgPool2d>({x}, "avgpool", 1, 1);
  x = g.add<Flatten>({x}, "flatten");
  add_heads(g, x, ch, c, "fc");
  return g;
}

}  // namespace cnn::models
