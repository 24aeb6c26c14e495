// cnn/graph.hpp — a model as a run-time graph of layers.
//
//   Graph g;                                  // node 0 is the input
//   int x = g.add(std::make_unique<Conv2d>("conv1", opts), {Graph::kInput});
//   x = g.add(std::make_unique<ActivationLayer>("relu", Activation::ReLU), {x});
//   g.add_output(x, "logits");
//   g.load_weights(source);                   // binds "conv1.weight"... then folds BN, fuses ReLU
//   std::vector<Tensor> out = g.forward(input);
//
// One forward() runs at a time on a Graph (calls from several threads wait for each other: the
// activation buffers belong to the graph); threads that want to run inferences side by side each
// build their own Graph.
//
// Nodes are appended in execution order, so the node list is already a topological order.
// plan() infers every shape for a given input shape and assigns each output to a reusable buffer:
// a buffer is released after the last node that reads it, and element-wise ops write over their
// input when nothing else needs it.
#pragma once
#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>

#include "ops/activation.hpp"
#include "ops/batchnorm.hpp"
#include "ops/conv2d.hpp"
#include "ops/elementwise.hpp"
#include "ops/linear.hpp"
#include "ops/pool.hpp"

namespace cnn {

// Where parameters come from (a safetensors file, in practice). Names are PyTorch state_dict keys.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual std::string origin() const = 0;  // for messages: the file name
  virtual std::vector<std::string> names() const = 0;
  virtual bool contains(const std::string& name) const = 0;
  virtual std::vector<int64_t> dims(const std::string& name) const = 0;
  // Converts the stored tensor to float32 into out.values; throws if it is not a float type.
  virtual void read(const std::string& name, std::vector<float>& out) const = 0;
};

// Buffers and shapes for one input shape.
struct MemoryPlan {
  Shape input;
  std::vector<Shape> shapes;           // per node
  std::vector<int> slot;               // per node: index into slot_floats (-1: the external input)
  std::vector<int64_t> slot_floats;    // capacity of each buffer
  int64_t workspace_floats = 0;        // scratch shared by all nodes (im2col columns)

  int64_t activation_bytes() const {
    int64_t n = workspace_floats;
    for (auto f : slot_floats) n += f;
    return n * int64_t(sizeof(float));
  }
};

class Graph {
 public:
  static constexpr int kInput = 0;

  Graph() { nodes_.push_back(Node{}); }  // node 0: the input
  Graph(Graph&&) = default;
  Graph& operator=(Graph&&) = default;

  int add(LayerPtr layer, std::vector<int> inputs) {
    if (static_cast<int>(inputs.size()) != layer->num_inputs())
      fail("graph: layer '", layer->name(), "' takes ", layer->num_inputs(), " input(s), given ", inputs.size());
    for (int i : inputs)
      if (i < 0 || i >= static_cast<int>(nodes_.size())) fail("graph: layer '", layer->name(), "' reads unknown node ", i);
    nodes_.push_back(Node{std::move(layer), std::move(inputs)});
    plan_valid_ = false;
    return static_cast<int>(nodes_.size()) - 1;
  }
  template <class L, class... Args>
  int add(std::vector<int> inputs, Args&&... args) {
    return add(std::make_unique<L>(std::forward<Args>(args)...), std::move(inputs));
  }
  void add_output(int node, std::string name) {
    if (node <= 0 || node >= static_cast<int>(nodes_.size())) fail("graph: output '", name, "' names unknown node ", node);
    outputs_.push_back({node, std::move(name)});
    plan_valid_ = false;
  }

  std::size_t num_nodes() const { return nodes_.size(); }
  Layer* layer(int node) const { return nodes_[node].layer.get(); }
  const std::vector<int>& inputs_of(int node) const { return nodes_[node].inputs; }
  std::vector<std::string> output_names() const {
    std::vector<std::string> v;
    for (auto& o : outputs_) v.push_back(o.name);
    return v;
  }
  int64_t param_count() const {
    int64_t n = 0;
    for (std::size_t i = 1; i < nodes_.size(); ++i) n += nodes_[i].layer->param_count();
    return n;
  }
  bool loaded() const { return loaded_; }

  // Binds every layer parameter to `<layer name>.<key>` in the source, checks shapes, rejects
  // tensors the graph does not use (BatchNorm's num_batches_tracked counters excepted), then
  // prepares the layers and fuses BN and activations.
  void load_weights(const WeightSource& src) {
    if (loaded_) fail(src.origin(), ": this graph already holds weights (build a new one to load again)");
    std::set<std::string> used;
    for (std::size_t i = 1; i < nodes_.size(); ++i) {
      Layer& l = *nodes_[i].layer;
      for (ParamSlot& p : l.params()) {
        const std::string key = l.name() + "." + p.key;
        if (!src.contains(key))
          fail(src.origin(), ": missing tensor '", key, "' (", l.type(), " '", l.name(), "' needs shape ",
               dims_str(p.dims), ")");
        const auto got = src.dims(key);
        if (got != p.dims)
          fail(src.origin(), ": tensor '", key, "' has shape ", dims_str(got), " but ", l.type(), " '", l.name(),
               "' expects ", dims_str(p.dims));
        p.param->dims = p.dims;
        src.read(key, p.param->values);
        used.insert(key);
      }
    }
    for (const std::string& n : src.names()) {
      if (used.count(n)) continue;
      const std::string suffix = ".num_batches_tracked";
      if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) continue;
      fail(src.origin(), ": unexpected tensor '", n, "' (the architecture has no such parameter)");
    }
    finish_loading();
  }

  // Fills every parameter with seeded random values (for benchmarks and tests): He-uniform
  // weights, small biases, BatchNorm statistics away from the identity.
  void init_random(uint32_t seed = 1) {
    if (loaded_) fail("graph: init_random() on a graph that already holds weights");
    std::mt19937 rng(seed);
    for (std::size_t i = 1; i < nodes_.size(); ++i) {
      Layer& l = *nodes_[i].layer;
      for (ParamSlot& p : l.params()) {
        p.param->dims = p.dims;
        int64_t n = 1, fan_in = 1;
        for (auto d : p.dims) n *= d;
        for (std::size_t k = 1; k < p.dims.size(); ++k) fan_in *= p.dims[k];
        const bool vec = p.dims.size() == 1;
        const double bound = std::sqrt(6.0 / double(fan_in));
        std::uniform_real_distribution<float> u(vec ? -0.1f : float(-bound), vec ? 0.1f : float(bound));
        p.param->values.resize(static_cast<std::size_t>(n));
        for (auto& v : p.param->values) v = u(rng);
        if (p.key == "running_var" || (l.type() == "BatchNorm2d" && p.key == "weight"))
          for (auto& v : p.param->values) v = 0.5f + std::abs(v) * 5.f;
      }
    }
    finish_loading();
  }

  // Shapes and buffer assignment for this input shape (cached until the input shape changes).
  const MemoryPlan& plan(Shape input) {
    if (plan_valid_ && plan_.input == input) return plan_;
    plan_ = make_plan(input);
    plan_valid_ = true;
    return plan_;
  }

  // The shape of each output (add_output() order) for this input shape.
  std::vector<Shape> output_shapes(Shape input) {
    const MemoryPlan& p = plan(input);
    std::vector<Shape> v;
    for (auto& o : outputs_) v.push_back(p.shapes[o.node]);
    return v;
  }

  // Runs the model; returns one tensor per output, in add_output() order. With `layer_ms`, also
  // records each node's wall time (index = node; see profile()).
  std::vector<Tensor> forward(ConstTensorView input, std::vector<double>* layer_ms = nullptr) {
    if (!loaded_) fail("graph: forward() before load_weights() or init_random()");
    std::lock_guard<std::mutex> one_at_a_time(*forward_mutex_);
    const MemoryPlan& p = plan(input.shape);
    if (buffers_.size() != p.slot_floats.size()) buffers_.clear();
    buffers_.resize(p.slot_floats.size());
    buffer_floats_.resize(p.slot_floats.size(), 0);
    for (std::size_t s = 0; s < p.slot_floats.size(); ++s)
      if (buffer_floats_[s] < p.slot_floats[s]) {
        buffers_[s] = allocate_floats(static_cast<std::size_t>(p.slot_floats[s]));
        buffer_floats_[s] = p.slot_floats[s];
      }
    if (workspace_floats_ < p.workspace_floats) {
      workspace_ = allocate_floats(static_cast<std::size_t>(p.workspace_floats));
      workspace_floats_ = p.workspace_floats;
    }
    auto data_of = [&](int node) -> float* {
      return node == kInput ? const_cast<float*>(input.data) : buffers_[p.slot[node]].get();
    };
    std::vector<ConstTensorView> ins;
    if (layer_ms) layer_ms->assign(nodes_.size(), 0.0);
    for (std::size_t i = 1; i < nodes_.size(); ++i) {
      ins.clear();
      for (int j : nodes_[i].inputs) ins.push_back(ConstTensorView{p.shapes[j], data_of(j)});
      const auto t0 = std::chrono::steady_clock::now();
      nodes_[i].layer->forward(ins, TensorView{p.shapes[i], data_of(int(i))}, workspace_.get());
      if (layer_ms)
        (*layer_ms)[i] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    std::vector<Tensor> out;
    for (auto& o : outputs_) out.push_back(Tensor::from(p.shapes[o.node], data_of(o.node)));
    return out;
  }
  Tensor forward_single(ConstTensorView input) {
    if (outputs_.size() != 1) fail("graph: forward_single() on a model with ", outputs_.size(), " outputs");
    return std::move(forward(input)[0]);
  }

  // Per-layer times (the fastest of `runs`, the least disturbed by other load), slowest first.
  std::string profile(ConstTensorView input, int runs = 5) {
    std::vector<std::vector<double>> all;
    for (int r = 0; r < runs; ++r) {
      std::vector<double> ms;
      forward(input, &ms);
      all.push_back(ms);
    }
    const MemoryPlan& p = plan(input.shape);
    std::vector<std::pair<double, std::size_t>> rows;
    double total = 0;
    for (std::size_t i = 1; i < nodes_.size(); ++i) {
      std::vector<double> v;
      for (auto& ms : all) v.push_back(ms[i]);
      const double best = *std::min_element(v.begin(), v.end());
      rows.push_back({best, i});
      total += best;
    }
    std::sort(rows.rbegin(), rows.rend());
    std::string s;
    char line[256];
    for (auto& [ms, i] : rows) {
      const Layer& l = *nodes_[i].layer;
      std::snprintf(line, sizeof line, "%-26s %-26s %-20s %9.3f ms %5.1f%%\n", l.name().c_str(),
                    (l.type() + " " + l.describe()).c_str(), p.shapes[i].str().c_str(), ms, 100 * ms / total);
      s += line;
    }
    std::snprintf(line, sizeof line, "total %.3f ms\n", total);
    return s + line;
  }

  // A Keras-like table: layer, type, output shape, parameters; then totals and planned memory.
  std::string summary(Shape input) {
    const MemoryPlan& p = plan(input);
    std::string s;
    char line[256];
    std::snprintf(line, sizeof line, "%-28s %-26s %-22s %12s\n", "Layer", "Type", "Output shape", "Params");
    s += line;
    s += std::string(91, '-') + "\n";
    std::snprintf(line, sizeof line, "%-28s %-26s %-22s %12d\n", "input", "Input", p.shapes[0].str().c_str(), 0);
    s += line;
    for (std::size_t i = 1; i < nodes_.size(); ++i) {
      Layer& l = *nodes_[i].layer;
      std::string type = l.type();
      const std::string d = l.describe();
      if (!d.empty()) type += " " + d;
      std::snprintf(line, sizeof line, "%-28s %-26s %-22s %12lld\n", l.name().c_str(), type.c_str(),
                    p.shapes[i].str().c_str(), static_cast<long long>(l.param_count()));
      s += line;
    }
    s += std::string(91, '-') + "\n";
    s += "Total params: " + std::to_string(param_count()) + "\n";
    std::string outs;
    for (auto& o : outputs_) outs += (outs.empty() ? "" : ", ") + o.name + " " + p.shapes[o.node].str();
    s += "Outputs: " + outs + "\n";
    std::snprintf(line, sizeof line, "Activation memory (planned, %zu buffers + workspace): %.1f MiB\n",
                  p.slot_floats.size(), p.activation_bytes() / 1048576.0);
    s += line;
    return s;
  }

 private:
  struct Node {
    LayerPtr layer;  // null for the input node
    std::vector<int> inputs;
  };
  struct Output {
    int node;
    std::string name;
  };

  void finish_loading() {
    fuse();
    for (std::size_t i = 1; i < nodes_.size(); ++i) nodes_[i].layer->prepare();
    loaded_ = true;
    plan_valid_ = false;
  }

  std::vector<int> consumers(int node) const {
    std::vector<int> c;
    for (std::size_t i = 1; i < nodes_.size(); ++i)
      for (int j : nodes_[i].inputs)
        if (j == node) c.push_back(int(i));
    return c;
  }
  bool is_output(int node) const {
    return std::any_of(outputs_.begin(), outputs_.end(), [&](const Output& o) { return o.node == node; });
  }

  // Folds BatchNorm into the Conv2d before it, a residual Add into the Conv2d that computes one of
  // its operands after the other is ready, and activations into the Conv2d / Linear / Add before
  // them — each when that producer feeds nothing else and is not itself a model output.
  void fuse() {
    std::vector<int> removed;
    auto fusable = [&](int node) { return node != kInput && consumers(node).size() == 1 && !is_output(node); };
    for (std::size_t i = 1; i < nodes_.size(); ++i) {
      Node& n = nodes_[i];
      if (auto* add = dynamic_cast<Add*>(n.layer.get()); add && add->accepts_activation()) {
        for (int side : {0, 1}) {
          const int c = n.inputs[side], other = n.inputs[1 - side];
          auto* conv = fusable(c) ? dynamic_cast<Conv2d*>(nodes_[c].layer.get()) : nullptr;
          if (!conv || !conv->accepts_residual() || other >= c) continue;  // the shortcut must exist first
          conv->set_residual();
          nodes_[c].inputs.push_back(other);
          absorb(int(i), c, removed);
          break;
        }
        continue;
      }
      if (n.inputs.size() != 1 || n.inputs[0] == kInput) continue;
      const int prod = n.inputs[0];
      Layer* producer = nodes_[prod].layer.get();
      if (!fusable(prod)) continue;
      bool absorbed = false;
      if (auto* bn = dynamic_cast<BatchNorm2d*>(n.layer.get())) {
        if (auto* conv = dynamic_cast<Conv2d*>(producer); conv && conv->accepts_activation()) {
          bn->prepare();  // its per-channel scale and shift
          conv->fold_affine(bn->scale(), bn->shift());
          absorbed = true;
        }
      } else if (auto* act = dynamic_cast<ActivationLayer*>(n.layer.get())) {
        if (act->kind() != Activation::Sigmoid && producer->accepts_activation()) {
          producer->set_activation(act->kind(), act->slope());
          absorbed = true;
        }
      }
      if (absorbed) absorb(int(i), prod, removed);
    }
    if (removed.empty()) return;
    // Compact the node list, renumbering references.
    std::vector<int> remap(nodes_.size(), -1);
    std::vector<Node> kept;
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (std::find(removed.begin(), removed.end(), int(i)) != removed.end()) continue;
      remap[i] = int(kept.size());
      kept.push_back(std::move(nodes_[i]));
    }
    for (auto& m : kept)
      for (int& j : m.inputs) j = remap[j];
    for (auto& o : outputs_) o.node = remap[o.node];
    nodes_ = std::move(kept);
  }

  // Node `gone` was merged into node `into`: its readers and outputs now use `into`.
  void absorb(int gone, int into, std::vector<int>& removed) {
    for (auto& m : nodes_)
      for (int& j : m.inputs)
        if (j == gone) j = into;
    for (auto& o : outputs_)
      if (o.node == gone) o.node = into;
    nodes_[gone].inputs.clear();
    removed.push_back(gone);
  }

  MemoryPlan make_plan(Shape input) const {
    if (input.n <= 0 || input.c <= 0 || input.h <= 0 || input.w <= 0) fail("graph: invalid input shape ", input.str());
    if (outputs_.empty()) fail("graph: no outputs declared");
    const int N = int(nodes_.size());
    MemoryPlan p;
    p.input = input;
    p.shapes.resize(N);
    p.slot.assign(N, -1);
    p.shapes[0] = input;
    std::vector<int> last_use(N, -1);
    for (int i = 1; i < N; ++i)
      for (int j : nodes_[i].inputs) last_use[j] = i;
    for (auto& o : outputs_) last_use[o.node] = INT_MAX;

    std::vector<int> free_slots;
    std::vector<Shape> ins;
    for (int i = 1; i < N; ++i) {
      const Node& n = nodes_[i];
      ins.clear();
      for (int j : n.inputs) ins.push_back(p.shapes[j]);
      p.shapes[i] = n.layer->output_shape(ins);
      p.workspace_floats = std::max(p.workspace_floats, n.layer->workspace_floats(ins));
      const int64_t need = p.shapes[i].numel();
      const int k = n.layer->in_place_input();
      const int over = k >= 0 ? n.inputs[std::size_t(k)] : kInput;
      if (over != kInput && last_use[over] == i && std::count(n.inputs.begin(), n.inputs.end(), over) == 1 &&
          need <= p.shapes[over].numel()) {
        p.slot[i] = p.slot[over];  // overwrite that input
      } else {
        // Best fit among free buffers: the smallest that is big enough, else the biggest (grown).
        int best = -1;
        for (int s : free_slots) {
          const bool fits = p.slot_floats[s] >= need;
          if (best < 0) { best = s; continue; }
          const bool best_fits = p.slot_floats[best] >= need;
          if (fits && (!best_fits || p.slot_floats[s] < p.slot_floats[best])) best = s;
          else if (!fits && !best_fits && p.slot_floats[s] > p.slot_floats[best]) best = s;
        }
        if (best < 0) {
          best = int(p.slot_floats.size());
          p.slot_floats.push_back(0);
        } else {
          free_slots.erase(std::find(free_slots.begin(), free_slots.end(), best));
        }
        p.slot_floats[best] = std::max(p.slot_floats[best], need);
        p.slot[i] = best;
      }
      // Release inputs read for the last time (unless their buffer now holds this output).
      for (int j : n.inputs)
        if (j != kInput && last_use[j] == i && p.slot[j] != p.slot[i] &&
            std::find(free_slots.begin(), free_slots.end(), p.slot[j]) == free_slots.end())
          free_slots.push_back(p.slot[j]);
      if (last_use[i] < 0) free_slots.push_back(p.slot[i]);  // dead end: nobody reads it
    }
    return p;
  }

  std::vector<Node> nodes_;
  std::vector<Output> outputs_;
  bool loaded_ = false;

  MemoryPlan plan_;
  bool plan_valid_ = false;
  std::vector<AlignedFloats> buffers_;
  std::vector<int64_t> buffer_floats_;
  AlignedFloats workspace_;
  int64_t workspace_floats_ = 0;
  std::unique_ptr<std::mutex> forward_mutex_ = std::make_unique<std::mutex>();  // (a Graph stays movable)
};

}  // namespace cnn
