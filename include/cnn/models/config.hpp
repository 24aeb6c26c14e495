// cnn/models/config.hpp — what a model builder needs to know: architecture, classes or heads,
// width. Serialised as JSON into the weights file's __metadata__["config"], so a file alone is
// enough to rebuild its model.
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "../io/json.hpp"

namespace cnn {

struct HeadSpec {
  std::string name;     // output name; its Linear is named "heads.<name>"
  int64_t outputs = 0;  // number of outputs (e.g. 2 for gender, 8 for age groups, 1 for years)
};

struct ModelConfig {
  std::string arch = "resnet18";  // vgg11 vgg13 vgg16 vgg19 (+ _bn), resnet18 resnet34 resnet50 resnet101,
                                  // mobilenet_v2
  int64_t num_classes = 1000;     // the single head when `heads` is empty (torchvision's fc / classifier.6)
  std::vector<HeadSpec> heads;    // several named heads instead of the single classifier
  double width = 1.0;             // channel multiplier for every convolution (mobilenet_v2: torchvision's
                                  // width_mult, rounded to multiples of 8 as torchvision does)
  int64_t in_channels = 3;
  int64_t vgg_hidden = 4096;      // VGG classifier width
  int64_t vgg_pool = 7;           // VGG adaptive pooling side before the classifier

  int64_t scaled(int64_t channels) const {
    return std::max<int64_t>(1, static_cast<int64_t>(std::lround(double(channels) * width)));
  }

  std::string to_json() const {
    std::string s = "{\"arch\":" + json::quote(arch) + ",\"num_classes\":" + std::to_string(num_classes) +
                    ",\"width\":" + json::number(width) + ",\"in_channels\":" + std::to_string(in_channels) +
                    ",\"vgg_hidden\":" + std::to_string(vgg_hidden) + ",\"vgg_pool\":" + std::to_string(vgg_pool) +
                    ",\"heads\":[";
    for (std::size_t i = 0; i < heads.size(); ++i)
      s += std::string(i ? "," : "") + "{\"name\":" + json::quote(heads[i].name) +
           ",\"outputs\":" + std::to_string(heads[i].outputs) + "}";
    return s + "]}";
  }

  // Fields missing from the JSON keep their defaults. Throws cnn::Error (prefixed by `origin`).
  static ModelConfig from_json(const std::string& text, const std::string& origin) {
    ModelConfig c;
    json::Value v;
    try {
      v = json::parse(text);
    } catch (const Error& e) {
      fail(origin, ": metadata 'config' is not valid JSON: ", e.what());
    }
    if (!v.is_object()) fail(origin, ": metadata 'config' is not a JSON object");
    auto str = [&](const char* k, std::string& dst) {
      if (auto* f = v.find(k)) {
        if (!f->is_string()) fail(origin, ": config field '", k, "' must be a string");
        dst = f->string;
      }
    };
    auto num = [&](const char* k, auto& dst, bool positive) {
      if (auto* f = v.find(k)) {
        if (!f->is_number() || (positive && !(f->number > 0)))
          fail(origin, ": config field '", k, "' must be a positive number");
        dst = static_cast<std::remove_reference_t<decltype(dst)>>(f->number);
      }
    };
    str("arch", c.arch);
    num("num_classes", c.num_classes, true);
    num("width", c.width, true);
    num("in_channels", c.in_channels, true);
    num("vgg_hidden", c.vgg_hidden, true);
    num("vgg_pool", c.vgg_pool, true);
    if (auto* h = v.find("heads")) {
      if (!h->is_array()) fail(origin, ": config field 'heads' must be an array");
      for (auto& e : h->array) {
        const json::Value *n = e.find("name"), *o = e.find("outputs");
        if (!e.is_object() || !n || !n->is_string() || !o || !o->is_index() || o->number < 1)
          fail(origin, ": each config head needs a 'name' and positive 'outputs'");
        c.heads.push_back({n->string, int64_t(o->number)});
      }
    }
    return c;
  }
};

}  // namespace cnn
