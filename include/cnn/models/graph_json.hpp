// cnn/models/graph_json.hpp — a network described as data: the weights file's
// __metadata__["graph"] lists its nodes, so a converted network (tools/convert_yunet.py) needs no
// C++ builder of its own.
//
//   {"inputs": [{"name": "image", "channels": 3}],
//    "nodes": [{"name": "conv0", "op": "Conv2d", "inputs": ["image"], "in_channels": 3,
//               "out_channels": 16, "kernel": 3, "stride": 2, "padding": 1, "groups": 1, "bias": true},
//              {"name": "conv0.relu", "op": "ReLU"},             // "inputs" left out: the node before
//              {"name": "up", "op": "Upsample", "inputs": ["x"], "scale": 2, "mode": "nearest"}, ...],
//    "outputs": [["cls_8", "node name"], ...]}
//
// A node's parameters are `<name>.weight`, `<name>.bias`, ... as PyTorch names them. Ops and their
// attributes (PyTorch's meanings; a pair such as "kernel" may be one number or [h, w]):
//   Conv2d      in_channels out_channels kernel stride=1 padding=0 dilation=1 groups=1 bias=true
//   BatchNorm2d num_features eps=1e-5
//   Linear      in_features out_features bias=true
//   MaxPool2d / AvgPool2d   kernel stride=kernel padding=0 ceil_mode=false (+ count_include_pad=true)
//   AdaptiveAvgPool2d       output ([h, w] or one number)
//   Upsample    scale (integer) mode="nearest"
//   ReLU ReLU6 Sigmoid LeakyReLU(slope=0.01) Add Flatten Dropout Softmax
// Anything else is refused with the file, the node and the op named.
#pragma once
#include <map>
#include <string>

#include "../graph.hpp"
#include "../io/json.hpp"
#include "../ops/upsample.hpp"

namespace cnn {

inline const std::vector<std::string>& graph_ops() {
  static const std::vector<std::string> ops{"Conv2d",  "BatchNorm2d",       "Linear",   "MaxPool2d", "AvgPool2d",
                                            "AdaptiveAvgPool2d", "Upsample", "ReLU",      "ReLU6",
                                            "Sigmoid", "LeakyReLU",         "Add",      "Flatten",   "Dropout",
                                            "Softmax"};
  return ops;
}

// Builds the graph `text` describes; every error names `origin` (the file) and the node.
inline Graph build_graph_from_json(const std::string& text, const std::string& origin) {
  json::Value doc;
  try {
    doc = json::parse(text);
  } catch (const Error& e) {
    fail(origin, ": metadata 'graph' is not valid JSON: ", e.what());
  }
  const json::Value* inputs = doc.is_object() ? doc.find("inputs") : nullptr;
  const json::Value* nodes = doc.is_object() ? doc.find("nodes") : nullptr;
  const json::Value* outputs = doc.is_object() ? doc.find("outputs") : nullptr;
  if (!inputs || !inputs->is_array() || inputs->array.size() != 1 || !nodes || !nodes->is_array() || !outputs ||
      !outputs->is_array() || outputs->array.empty())
    fail(origin, ": metadata 'graph' needs one entry in \"inputs\", a \"nodes\" array and a non-empty \"outputs\" array");
  const json::Value* in_name = inputs->array[0].is_object() ? inputs->array[0].find("name") : nullptr;
  if (!in_name || !in_name->is_string()) fail(origin, ": the graph's input needs a \"name\"");

  Graph g;
  std::map<std::string, int> ids{{in_name->string, Graph::kInput}};
  int prev = Graph::kInput;
  for (const json::Value& n : nodes->array) {
    const json::Value* name = n.is_object() ? n.find("name") : nullptr;
    const json::Value* op = n.is_object() ? n.find("op") : nullptr;
    if (!name || !name->is_string() || name->string.empty() || !op || !op->is_string())
      fail(origin, ": every graph node needs a \"name\" and an \"op\"");
    const std::string& nm = name->string;
    auto bad = [&](const std::string& what) { fail(origin, ": graph node '", nm, "' (", op->string, "): ", what); };
    if (ids.count(nm)) bad("the name is used twice");
    // Attributes: integers (or [h, w] pairs), booleans, numbers.
    auto field = [&](const char* key) { return n.find(key); };
    auto integer = [&](const json::Value* v, const char* key) -> int64_t {
      if (!v->is_index() || v->number > 1e9) bad(std::string("\"") + key + "\" must be a non-negative integer");
      return int64_t(v->number);
    };
    auto int_attr = [&](const char* key, int64_t fallback, bool required = false) -> int64_t {
      const json::Value* v = field(key);
      if (!v) {
        if (required) bad(std::string("needs \"") + key + "\"");
        return fallback;
      }
      return integer(v, key);
    };
    auto pair_attr = [&](const char* key, int fallback, bool required = false) -> std::pair<int, int> {
      const json::Value* v = field(key);
      if (!v) {
        if (required) bad(std::string("needs \"") + key + "\"");
        return {fallback, fallback};
      }
      if (v->is_array()) {
        if (v->array.size() != 2) bad(std::string("\"") + key + "\" must be a number or [h, w]");
        return {int(integer(&v->array[0], key)), int(integer(&v->array[1], key))};
      }
      const int x = int(integer(v, key));
      return {x, x};
    };
    auto bool_attr = [&](const char* key, bool fallback) {
      const json::Value* v = field(key);
      if (!v) return fallback;
      if (v->type != json::Value::Type::Bool) bad(std::string("\"") + key + "\" must be true or false");
      return v->boolean;
    };
    auto num_attr = [&](const char* key, double fallback) {
      const json::Value* v = field(key);
      if (!v) return fallback;
      if (!v->is_number()) bad(std::string("\"") + key + "\" must be a number");
      return v->number;
    };

    std::vector<int> in;
    if (const json::Value* v = field("inputs")) {
      if (!v->is_array()) bad("\"inputs\" must be an array of node names");
      for (const json::Value& i : v->array) {
        if (!i.is_string() || !ids.count(i.string))
          bad("reads '" + (i.is_string() ? i.string : std::string("?")) + "', which no earlier node defines");
        in.push_back(ids.at(i.string));
      }
    } else {
      in.push_back(prev);
    }

    const std::string& o = op->string;
    LayerPtr layer;
    try {  // a layer's own checks (groups dividing the channels...) name the file too
      if (o == "Conv2d") {
        Conv2dOptions c;
        c.in_channels = int_attr("in_channels", 0, true);
        c.out_channels = int_attr("out_channels", 0, true);
        std::tie(c.kh, c.kw) = pair_attr("kernel", 1, true);
        std::tie(c.stride_h, c.stride_w) = pair_attr("stride", 1);
        std::tie(c.pad_h, c.pad_w) = pair_attr("padding", 0);
        std::tie(c.dilation_h, c.dilation_w) = pair_attr("dilation", 1);
        c.groups = int(int_attr("groups", 1));
        c.bias = bool_attr("bias", true);
        layer = std::make_unique<Conv2d>(nm, c);
      } else if (o == "BatchNorm2d") {
        layer = std::make_unique<BatchNorm2d>(nm, int_attr("num_features", 0, true), num_attr("eps", 1e-5));
      } else if (o == "Linear") {
        layer = std::make_unique<Linear>(nm, int_attr("in_features", 0, true), int_attr("out_features", 0, true),
                                         bool_attr("bias", true));
      } else if (o == "MaxPool2d" || o == "AvgPool2d") {
        Pool2dOptions p;
        std::tie(p.kh, p.kw) = pair_attr("kernel", 1, true);
        std::tie(p.stride_h, p.stride_w) = pair_attr("stride", 0);
        std::tie(p.pad_h, p.pad_w) = pair_attr("padding", 0);
        p.ceil_mode = bool_attr("ceil_mode", false);
        p.count_include_pad = bool_attr("count_include_pad", true);
        layer = std::make_unique<Pool2d>(nm, o == "MaxPool2d" ? PoolKind::Max : PoolKind::Avg, p);
      } else if (o == "AdaptiveAvgPool2d") {
        const auto [h, w] = pair_attr("output", 1, true);
        layer = std::make_unique<AdaptiveAvgPool2d>(nm, h, w);
      } else if (o == "Upsample") {
        const json::Value* mode = field("mode");
        if (mode && !(mode->is_string() && mode->string == "nearest")) bad("only mode \"nearest\" is supported");
        layer = std::make_unique<Upsample2d>(nm, int(int_attr("scale", 0, true)));
      } else if (o == "ReLU" || o == "ReLU6" || o == "Sigmoid" || o == "LeakyReLU") {
        const Activation a = o == "ReLU" ? Activation::ReLU : o == "ReLU6" ? Activation::ReLU6
                             : o == "Sigmoid" ? Activation::Sigmoid : Activation::LeakyReLU;
        layer = std::make_unique<ActivationLayer>(nm, a, float(num_attr("slope", 0.01)));
      } else if (o == "Add") {
        layer = std::make_unique<Add>(nm);
      } else if (o == "Flatten") {
        layer = std::make_unique<Flatten>(nm);
      } else if (o == "Dropout") {
        layer = std::make_unique<Dropout>(nm);
      } else if (o == "Softmax") {
        layer = std::make_unique<Softmax>(nm);
      } else {
        std::string known;
        for (auto& k : graph_ops()) known += " " + k;
        fail(origin, ": graph node '", nm, "' uses op '", o, "', which this engine does not have (it has:", known, ")");
      }
    } catch (const Error& e) {
      const std::string m = e.what();
      if (m.rfind(origin, 0) == 0) throw;
      fail(origin, ": graph node '", nm, "': ", m);
    }
    if (int(in.size()) != layer->num_inputs())
      bad("takes " + std::to_string(layer->num_inputs()) + " input(s), given " + std::to_string(in.size()));
    prev = g.add(std::move(layer), in);
    ids[nm] = prev;
  }
  for (const json::Value& o : outputs->array) {
    if (!o.is_array() || o.array.size() != 2 || !o.array[0].is_string() || !o.array[1].is_string())
      fail(origin, ": each graph output must be [\"output name\", \"node name\"]");
    auto it = ids.find(o.array[1].string);
    if (it == ids.end() || it->second == Graph::kInput)
      fail(origin, ": graph output '", o.array[0].string, "' names unknown node '", o.array[1].string, "'");
    g.add_output(it->second, o.array[0].string);
  }
  return g;
}

}  // namespace cnn
