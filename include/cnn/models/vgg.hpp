// cnn/models/vgg.hpp — VGG-11/13/16/19, with or without BatchNorm, named like torchvision's
// `features.N`, `classifier.N`, so torchvision state_dicts load unchanged.
#pragma once
#include "../graph.hpp"
#include "config.hpp"

namespace cnn::models {

// torchvision's cfgs "A", "B", "D", "E": channel counts, 0 = 2x2 max pooling.
inline std::vector<int> vgg_layers(int depth) {
  switch (depth) {
    case 11: return {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0};
    case 13: return {64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0};
    case 16: return {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0};
    case 19: return {64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0};
  }
  fail("unknown VGG depth ", depth);
}

// Adds the classifier output(s) on top of `features` (in_features wide): the single torchvision
// layer `fc_name` or one Linear per head named heads.<name>.
inline void add_heads(Graph& g, int features, int64_t in_features, const ModelConfig& c, const std::string& fc_name) {
  if (c.heads.empty()) {
    g.add_output(g.add<Linear>({features}, fc_name, in_features, c.num_classes), "logits");
    return;
  }
  for (const HeadSpec& h : c.heads)
    g.add_output(g.add<Linear>({features}, "heads." + h.name, in_features, h.outputs), h.name);
}

inline Graph build_vgg(int depth, bool batch_norm, const ModelConfig& c) {
  Graph g;
  int x = Graph::kInput, idx = 0;
  int64_t ch = c.in_channels;
  for (int v : vgg_layers(depth)) {
    const std::string name = "features." + std::to_string(idx);
    if (v == 0) {
      x = g.add<Pool2d>({x}, name, PoolKind::Max, Pool2dOptions{}.kernel(2).stride(2));
      ++idx;
      continue;
    }
    const int64_t out = c.scaled(v);
    x = g.add<Conv2d>({x}, name, Conv2dOptions{ch, out}.kernel(3).padding(1));
    ++idx;
    if (batch_norm) x = g.add<BatchNorm2d>({x}, "features." + std::to_string(idx++), out);
    x = g.add<ActivationLayer>({x}, "features." + std::to_string(idx++), Activation::ReLU);
    ch = out;
  }
  x = g.add<AdaptiveAvgPool2d>({x}, "avgpool", c.vgg_pool, c.vgg_pool);
  x = g.add<Flatten>({x}, "flatten");
  x = g.add<Linear>({x}, "classifier.0", ch * c.vgg_pool * c.vgg_pool, c.vgg_hidden);
  x = g.add<ActivationLayer>({x}, "classifier.1", Activation::ReLU);
  x = g.add<Dropout>({x}, "classifier.2");
  x = g.add<Linear>({x}, "classifier.3", c.vgg_hidden, c.vgg_hidden);
  x = g.add<ActivationLayer>({x}, "classifier.4", Activation::ReLU);
  x = g.add<Dropout>({x}, "classifier.5");
  add_heads(g, x, c.vgg_hidden, c, "classifier.6");
  return g;
}

}  // namespace cnn::models
