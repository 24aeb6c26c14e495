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
#include <array>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <functional>
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

// Buffers, shapes and the order of work for one input shape. Tensors 0..nodes-1 are the nodes'
// outputs (tensor 0: the external input); after them come copies of tensors in the other layout,
// made where a producer and a consumer run on different layouts (see Layer::runs_blocked()).
struct MemoryPlan {
  // The kernel settings the layouts and the workspace were chosen under: which kernel a layer runs
  // decides both (set_isa(), set_blocked(), set_direct(), set_winograd(), set_rowconv(); set_bf16()
  // keeps the 1x1 layers off the blocked layout).
  struct Settings {
    Isa isa = Isa::Generic;
    bool blocked = false, direct = false, winograd = false, rowconv = false, bf16 = false;
    static Settings current() {
      return {active_isa(), blocked_enabled(), direct_enabled(), winograd_enabled(), rowconv_enabled(), bf16_enabled()};
    }
    bool operator==(const Settings& o) const {
      return isa == o.isa && blocked == o.blocked && direct == o.direct && winograd == o.winograd &&
             rowconv == o.rowconv && bf16 == o.bf16;
    }
  };
  Shape input;
  Settings settings;
  std::vector<Shape> shapes;           // per tensor
  std::vector<char> blocked;           // per tensor: stored NCHW16c
  std::vector<int> slot;               // per tensor: index into slot_floats (-1: the external input)
  std::vector<int64_t> slot_floats;    // capacity of each buffer
  int64_t workspace_floats = 0;        // scratch shared by all nodes (im2col columns)
  // Each step runs node `node` on tensors `ins` into tensor `out`, or (from >= 0) converts tensor
  // `from` into tensor `out` in the other layout for node `node`, whose time it counts in.
  struct Step {
    int node = 0;
    std::vector<int> ins;
    int out = 0;
    int from = -1;
  };
  std::vector<Step> steps;
  std::vector<int> outputs;            // the tensor of each graph output (NCHW)

  int64_t activation_bytes() const {
    int64_t n = workspace_floats;
    for (auto f : slot_floats) n += f;
    return n * int64_t(sizeof(float));
  }
  int conversions() const {
    return int(std::count_if(steps.begin(), steps.end(), [](const Step& s) { return s.from >= 0; }));
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
  std::vector<int> output_nodes() const {
    std::vector<int> v;
    for (auto& o : outputs_) v.push_back(o.node);
    return v;
  }
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
  // tensors the graph does not use (BatchNorm's num_batches_tracked counters and int8 weights excepted), then
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
      // BatchNorm's counters, and the int8 weights a quantized file adds (cnn/quantize.hpp reads them).
      auto ends_with = [&](const std::string& suffix) {
        return n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0;
      };
      if (ends_with(".num_batches_tracked") || ends_with(".weight_int8")) continue;
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
    // The layouts and the workspace follow the kernel settings too.
    if (plan_valid_ && plan_.input == input && plan_.settings == MemoryPlan::Settings::current())
      return plan_;
    plan_ = make_plan(input);
    plan_valid_ = true;
    return plan_;
  }

  // The same plan with every tensor NCHW (no layer runs channel-blocked, so there are no layout
  // conversions): what another backend, such as the CUDA one, runs the graph's nodes from.
  MemoryPlan plan_nchw(Shape input) const { return make_plan(input, /*allow_blocked=*/false); }

  // The shape of each output (add_output() order) for this input shape.
  std::vector<Shape> output_shapes(Shape input) {
    const MemoryPlan& p = plan(input);
    std::vector<Shape> v;
    for (auto& o : outputs_) v.push_back(p.shapes[o.node]);
    return v;
  }

  // Called with each node's output as soon as it is computed (calibration, debugging); the view is
  // valid only during the call and may be channel-blocked.
  using Observer = std::function<void(int node, ConstTensorView output)>;

  // Runs the model; returns one tensor per output, in add_output() order. With `layer_ms`, also
  // records each node's wall time (index = node; see profile()).
  std::vector<Tensor> forward(ConstTensorView input, std::vector<double>* layer_ms = nullptr,
                              const Observer* observe = nullptr) {
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
    auto data_of = [&](int t) -> float* {
      return t == kInput ? const_cast<float*>(input.data) : buffers_[p.slot[t]].get();
    };
    std::vector<ConstTensorView> ins;
    if (layer_ms) layer_ms->assign(nodes_.size(), 0.0);
    for (const MemoryPlan::Step& step : p.steps) {
      const auto t0 = std::chrono::steady_clock::now();
      if (step.from >= 0) {
        convert(p.shapes[step.from], data_of(step.from), p.blocked[step.out] != 0, data_of(step.out));
      } else {
        ins.clear();
        for (int t : step.ins) ins.push_back(ConstTensorView{p.shapes[t], data_of(t), p.blocked[t] != 0});
        nodes_[step.node].layer->forward(ins, TensorView{p.shapes[step.out], data_of(step.out), p.blocked[step.out] != 0},
                                         workspace_.get());
        if (observe)
          (*observe)(step.node, ConstTensorView{p.shapes[step.out], data_of(step.out), p.blocked[step.out] != 0});
      }
      if (layer_ms)
        (*layer_ms)[step.node] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
    std::vector<Tensor> out;
    for (std::size_t o = 0; o < outputs_.size(); ++o)
      out.push_back(Tensor::from(p.shapes[p.outputs[o]], data_of(p.outputs[o])));
    return out;
  }
  Tensor forward_single(ConstTensorView input) {
    if (outputs_.size() != 1) fail("graph: forward_single() on a model with ", outputs_.size(), " outputs");
    return std::move(forward(input)[0]);
  }

  // Per-layer times (the fastest of `runs`, the least disturbed by other load), slowest first.
  std::string profile(ConstTensorView input, int runs = 5) {
    const auto all = profile_runs(runs, [&](std::vector<double>* ms) { forward(input, ms); });
    const MemoryPlan& p = plan(input.shape);
    return profile_table(all, [&](std::size_t i) {
      const Layer& l = *nodes_[i].layer;
      return std::array<std::string, 3>{l.name(), l.type() + " " + l.describe(), p.shapes[i].str() + (p.blocked[i] ? " c16" : "")};
    });
  }

  // Each node's time in `runs` runs of run(&ms) (a forward that records them).
  static std::vector<std::vector<double>> profile_runs(int runs, const std::function<void(std::vector<double>*)>& run) {
    std::vector<std::vector<double>> all(static_cast<std::size_t>(std::max(runs, 1)));
    for (auto& ms : all) run(&ms);
    return all;
  }

  // The table profile() prints: node i's best time over the runs (ms[run][node], node 0 the
  // input), labelled {name, type, shape} by `label`, slowest first.
  static std::string profile_table(const std::vector<std::vector<double>>& ms,
                                   const std::function<std::array<std::string, 3>(std::size_t)>& label) {
    std::vector<std::pair<double, std::size_t>> rows;
    double total = 0;
    for (std::size_t i = 1; !ms.empty() && i < ms[0].size(); ++i) {
      double best = ms[0][i];
      for (auto& run : ms) best = std::min(best, run[i]);
      rows.push_back({best, i});
      total += best;
    }
    std::sort(rows.rbegin(), rows.rend());
    std::string s;
    char line[256];
    for (auto& [t, i] : rows) {
      const auto l = label(i);
      std::snprintf(line, sizeof line, "%-26s %-26s %-20s %9.3f ms %5.1f%%\n", l[0].c_str(), l[1].c_str(), l[2].c_str(),
                    t, 100 * t / total);
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
      const std::string shape = p.shapes[i].str() + (p.blocked[i] ? " c16" : "");
      std::snprintf(line, sizeof line, "%-28s %-26s %-22s %12lld\n", l.name().c_str(), type.c_str(), shape.c_str(),
                    static_cast<long long>(l.param_count()));
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
    if (p.conversions()) {
      std::snprintf(line, sizeof line, "Layout: \"c16\" outputs are channel-blocked (NCHW16c); %d conversion(s)\n",
                    p.conversions());
      s += line;
    }
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

  MemoryPlan make_plan(Shape input, bool allow_blocked = true) const {
    if (input.n <= 0 || input.c <= 0 || input.h <= 0 || input.w <= 0) fail("graph: invalid input shape ", input.str());
    if (outputs_.empty()) fail("graph: no outputs declared");
    const int N = int(nodes_.size());
    MemoryPlan p;
    p.input = input;
    p.settings = MemoryPlan::Settings::current();
    p.shapes.resize(N);
    p.blocked.assign(N, 0);
    p.shapes[0] = input;
    // Shapes and layouts; then the steps, with a conversion before the first node that needs a
    // tensor in the other layout (one copy per tensor and layout, shared by its readers).
    std::vector<std::vector<Shape>> ins(N);
    std::vector<char> runs(N, 0);  // node i runs on blocked inputs
    for (int i = 1; i < N; ++i) {
      for (int j : nodes_[i].inputs) ins[i].push_back(p.shapes[j]);
      p.shapes[i] = nodes_[i].layer->output_shape(ins[i]);
      runs[i] = allow_blocked && nodes_[i].layer->runs_blocked(ins[i]);
      p.workspace_floats = std::max(p.workspace_floats, nodes_[i].layer->workspace_floats(ins[i]));
    }
    choose_layouts(ins, runs, p.blocked);
    std::map<std::pair<int, bool>, int> copies;
    auto in_layout = [&](int t, bool blocked, int for_node) {
      if (bool(p.blocked[t]) == blocked) return t;
      auto it = copies.find({t, blocked});
      if (it != copies.end()) return it->second;
      const int copy = int(p.shapes.size());
      p.shapes.push_back(p.shapes[t]);
      p.blocked.push_back(blocked);
      p.steps.push_back(MemoryPlan::Step{for_node, {}, copy, t});
      copies[{t, blocked}] = copy;
      return copy;
    };
    for (int i = 1; i < N; ++i) {
      MemoryPlan::Step step{i, {}, i, -1};
      for (std::size_t q = 0; q < nodes_[i].inputs.size(); ++q)
        step.ins.push_back(in_layout(nodes_[i].inputs[q], q == 0 ? runs[i] : p.blocked[i], i));
      p.steps.push_back(std::move(step));
    }
    for (auto& o : outputs_) p.outputs.push_back(in_layout(o.node, false, o.node));

    // Buffers: a tensor's buffer is released after the last step that reads it; a node may write
    // over the input it names in in_place_input() when that is the input's last read.
    const int T = int(p.shapes.size());
    p.slot.assign(T, -1);
    std::vector<int> last_use(T, -1);
    for (int s = 0; s < int(p.steps.size()); ++s) {
      const MemoryPlan::Step& st = p.steps[std::size_t(s)];
      for (int t : st.ins) last_use[t] = s;
      if (st.from >= 0) last_use[st.from] = s;
    }
    for (int t : p.outputs) last_use[t] = INT_MAX;
    std::vector<int> free_slots;
    for (int s = 0; s < int(p.steps.size()); ++s) {
      const MemoryPlan::Step& st = p.steps[std::size_t(s)];
      const int64_t need = p.shapes[st.out].numel();
      const int k = st.from >= 0 ? -1 : nodes_[st.node].layer->in_place_input();
      const int over = k >= 0 ? st.ins[std::size_t(k)] : kInput;
      if (over != kInput && last_use[over] == s && std::count(st.ins.begin(), st.ins.end(), over) == 1 &&
          need <= p.shapes[over].numel()) {
        p.slot[st.out] = p.slot[over];  // overwrite that input
      } else {
        // Best fit among free buffers: the smallest that is big enough, else the biggest (grown).
        int best = -1;
        for (int f : free_slots) {
          const bool fits = p.slot_floats[f] >= need;
          if (best < 0) { best = f; continue; }
          const bool best_fits = p.slot_floats[best] >= need;
          if (fits && (!best_fits || p.slot_floats[f] < p.slot_floats[best])) best = f;
          else if (!fits && !best_fits && p.slot_floats[f] > p.slot_floats[best]) best = f;
        }
        if (best < 0) {
          best = int(p.slot_floats.size());
          p.slot_floats.push_back(0);
        } else {
          free_slots.erase(std::find(free_slots.begin(), free_slots.end(), best));
        }
        p.slot_floats[best] = std::max(p.slot_floats[best], need);
        p.slot[st.out] = best;
      }
      // Release inputs read for the last time (unless their buffer now holds this output).
      std::vector<int> read = st.ins;
      if (st.from >= 0) read.push_back(st.from);
      for (int t : read)
        if (t != kInput && last_use[t] == s && p.slot[t] != p.slot[st.out] &&
            std::find(free_slots.begin(), free_slots.end(), p.slot[t]) == free_slots.end())
          free_slots.push_back(p.slot[t]);
      if (last_use[st.out] < 0) free_slots.push_back(p.slot[st.out]);  // dead end: nobody reads it
    }
    return p;
  }

  // Which nodes run on blocked tensors and which outputs are stored blocked. A node runs blocked
  // where its layer asks to (runs[i]), except alone between NCHW neighbours, where converting its
  // input and output would cost more than it gains (VGG16's 64-channel 3x3 layer). It reads its
  // first input in the layout it runs on and any others (a residual) in its output's layout, which
  // is the one it runs on unless its readers all want the other and the layer can write that
  // directly (writes_nchw_from_blocked(), writes_blocked_from_nchw()).
  void choose_layouts(const std::vector<std::vector<Shape>>& ins, std::vector<char>& runs,
                      std::vector<char>& out_blocked) const {
    const int N = int(nodes_.size());
    for (bool changed = true; changed;) {
      changed = false;
      for (int i = 1; i < N; ++i) {
        if (!runs[i]) continue;
        const int first = nodes_[i].inputs[0];
        bool neighbour = first != kInput && runs[first];
        for (int k : consumers(i)) neighbour |= bool(runs[k]);
        if (!neighbour) runs[i] = 0, changed = true;
      }
    }
    out_blocked.assign(N, 0);
    for (int i = N - 1; i >= 1; --i) {  // readers come after their producers
      out_blocked[i] = runs[i];
      if (is_output(i)) {
        if (runs[i] && nodes_[i].layer->writes_nchw_from_blocked(ins[i])) out_blocked[i] = 0;
        continue;
      }
      bool wants_blocked = false, wants_nchw = false;
      for (int k : consumers(i))
        for (std::size_t q = 0; q < nodes_[k].inputs.size(); ++q)
          if (nodes_[k].inputs[q] == i) {
            if (q == 0 ? runs[k] : out_blocked[k]) wants_blocked = true;
            else wants_nchw = true;
          }
      if (runs[i] && !wants_blocked && nodes_[i].layer->writes_nchw_from_blocked(ins[i])) out_blocked[i] = 0;
      if (!runs[i] && wants_blocked && !wants_nchw && nodes_[i].layer->writes_blocked_from_nchw(ins[i])) out_blocked[i] = 1;
    }
  }

  // One tensor (every sample) into the other layout.
  static void convert(const Shape& s, const float* from, bool to_blocked, float* to) {
#ifdef CNN_X86
    for (int64_t n = 0; n < s.n; ++n) {
      const float* x = from + n * s.sample();
      float* y = to + n * s.sample();
      if (to_blocked) kernels::blocked::to_blocked(x, s.c, s.plane(), y);
      else kernels::blocked::to_nchw(x, s.c, s.plane(), y);
    }
#else
    (void)s, (void)from, (void)to_blocked, (void)to;
    fail("graph: channel-blocked tensors need an x86 CPU with AVX-512");
#endif
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
