// cnn/models/zoo.hpp — architectures by name, and models loaded from a weights file.
//
//   cnn::Model m = cnn::load_model("weights/resnet_agegender.safetensors");
//   std::vector<cnn::Tensor> out = m.graph.forward(input);     // one tensor per head
#pragma once
#include "../io/safetensors.hpp"
#include "graph_json.hpp"
#include "mobilenet.hpp"
#include "resnet.hpp"
#include "vgg.hpp"

namespace cnn {

inline const std::vector<std::string>& known_architectures() {
  static const std::vector<std::string> a{"vgg11",    "vgg13",    "vgg16",    "vgg19",    "vgg11_bn",
                                          "vgg13_bn", "vgg16_bn", "vgg19_bn", "resnet18", "resnet34",
                                          "resnet50", "resnet101", "mobilenet_v2"};
  return a;
}

inline Graph build_model(const ModelConfig& c) {
  const std::string& a = c.arch;
  if (a.rfind("vgg", 0) == 0) {
    const bool bn = a.size() > 3 && a.compare(a.size() - 3, 3, "_bn") == 0;
    const std::string digits = a.substr(3, a.size() - 3 - (bn ? 3 : 0));
    for (int d : {11, 13, 16, 19})
      if (digits == std::to_string(d)) return models::build_vgg(d, bn, c);
  } else if (a.rfind("resnet", 0) == 0) {
    for (int d : {18, 34, 50, 101})
      if (a.substr(6) == std::to_string(d)) return models::build_resnet(d, c);
  } else if (a == "mobilenet_v2") {
    return models::build_mobilenet_v2(c);
  }
  std::string known;
  for (auto& k : known_architectures()) known += " " + k;
  fail("unknown architecture '", a, "' (known:", known, ")");
}

// A model and what its weights file says about how to feed it.
struct Model {
  ModelConfig config;
  Graph graph;
  std::map<std::string, std::string> metadata;  // the file's __metadata__

  // "3,224,224" style metadata as numbers; empty if absent.
  std::vector<double> meta_numbers(const std::string& key) const {
    std::vector<double> v;
    auto it = metadata.find(key);
    if (it == metadata.end()) return v;
    std::string s = it->second;
    std::size_t p = 0;
    while (p < s.size()) {
      std::size_t q = s.find(',', p);
      if (q == std::string::npos) q = s.size();
      v.push_back(std::atof(s.substr(p, q - p).c_str()));
      p = q + 1;
    }
    return v;
  }
};

// Reads the architecture from metadata (`config` JSON, or `arch`), unless `arch_override` names
// one; a missing class count is taken from the classifier weight's shape. Then builds and loads.
// A file whose metadata holds a "graph" (a converted network, models/graph_json.hpp) is built from it.
inline Model load_model(const SafeTensors& st, const std::string& arch_override = "", int64_t num_classes = 0) {
  Model m;
  m.metadata = st.metadata();
  if (const std::string graph = st.meta("graph"); !graph.empty()) {
    if (!arch_override.empty() && arch_override != "graph")
      fail(st.origin(), ": holds a network described by its metadata 'graph', not '", arch_override, "'");
    m.config.arch = "graph";
    m.graph = build_graph_from_json(graph, st.origin());
    m.graph.load_weights(st);
    return m;
  }
  const std::string cfg = st.meta("config");
  if (!cfg.empty()) m.config = ModelConfig::from_json(cfg, st.origin());
  else if (!st.meta("arch").empty()) m.config.arch = st.meta("arch");
  else if (arch_override.empty())
    fail(st.origin(), ": no 'arch' in the file's metadata; say which architecture it holds (--arch)");
  if (!arch_override.empty()) {
    if (!cfg.empty() && m.config.arch != arch_override)
      fail(st.origin(), ": holds a '", m.config.arch, "' model, not '", arch_override, "'");
    m.config.arch = arch_override;
  }
  if (num_classes > 0) m.config.num_classes = num_classes;
  else if (cfg.empty() || !m.config.heads.empty()) {
    const std::string& a = m.config.arch;
    const std::string fc = a.rfind("vgg", 0) == 0 ? "classifier.6.weight" : a == "mobilenet_v2" ? "classifier.1.weight" : "fc.weight";
    if (m.config.heads.empty() && st.contains(fc) && !st.dims(fc).empty()) m.config.num_classes = st.dims(fc)[0];
  }
  m.graph = build_model(m.config);
  m.graph.load_weights(st);
  return m;
}
// The model's graph as built, before loading folds BatchNorm and fuses activations (for summaries
// that read like the PyTorch module).
inline Graph build_unloaded(const Model& m, const std::string& origin) {
  if (m.config.arch == "graph") return build_graph_from_json(m.metadata.at("graph"), origin);
  return build_model(m.config);
}

inline Model load_model(const std::string& path, const std::string& arch_override = "", int64_t num_classes = 0) {
  return load_model(SafeTensors::open(path), arch_override, num_classes);
}

}  // namespace cnn
