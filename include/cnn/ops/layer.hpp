// cnn/ops/layer.hpp — the interface every op implements.
//
// A Layer knows its parameters (by their PyTorch state_dict names), how its output shape follows
// from its input shapes, and how to compute its output. Layers are plain run-time objects: models
// are graphs of them built at run time (cnn/graph.hpp), never C++ types.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "../error.hpp"
#include "../kernels/gemm.hpp"
#include "../tensor.hpp"

namespace cnn {

// One learnable tensor a layer expects from the weights file: `<layer name>.<key>` with `dims`.
struct ParamSlot {
  std::string key;  // "weight", "bias", "running_mean", ...
  Param* param;
  std::vector<int64_t> dims;
  bool trainable = true;  // false for buffers such as BatchNorm's running statistics
};

class Layer {
 public:
  explicit Layer(std::string name) : name_(std::move(name)) {}
  virtual ~Layer() = default;

  const std::string& name() const { return name_; }
  virtual std::string type() const = 0;                 // "Conv2d"
  virtual std::string describe() const { return ""; }  // "3x3, stride 2, pad 1" for summaries
  virtual int num_inputs() const { return 1; }

  // Output shape for these input shapes; throws cnn::Error naming the layer if they don't fit.
  virtual Shape output_shape(const std::vector<Shape>& in) const = 0;
  // Scratch floats forward() needs for these input shapes.
  virtual int64_t workspace_floats(const std::vector<Shape>&) const { return 0; }
  // The input whose buffer forward() may write its output over (same or smaller size), or -1.
  virtual int in_place_input() const { return -1; }
  virtual void forward(const std::vector<ConstTensorView>& in, TensorView out, float* workspace) const = 0;
  // Whether forward() should run on channel-blocked views (every input and the output NCHW16c) for
  // these input shapes: a layer says so where its blocked path is faster. The graph converts
  // tensors between the layouts where producer and consumer differ.
  virtual bool runs_blocked(const std::vector<Shape>& /*in*/) const { return false; }
  // Whether, running blocked, forward() can also write its output NCHW (reading any inputs after
  // the first in that layout too), so that the graph needs no conversion after it.
  virtual bool writes_nchw_from_blocked(const std::vector<Shape>& /*in*/) const { return false; }
  // Whether, not running blocked, forward() can write its output blocked (reading any inputs after
  // the first in that layout), so that the graph needs no conversion before blocked readers.
  virtual bool writes_blocked_from_nchw(const std::vector<Shape>& /*in*/) const { return false; }

  virtual std::vector<ParamSlot> params() { return {}; }
  // Called once after all parameters are loaded: derive what forward() uses (repacked weights...).
  virtual void prepare() {}

  // Fusion hooks used by Graph::fuse(). Layers that can absorb a following activation say so.
  virtual bool accepts_activation() const { return false; }
  virtual void set_activation(Activation, float /*slope*/) {}

  // Learnable parameters, as sum(p.numel() for p in module.parameters()) counts them.
  int64_t param_count() {
    int64_t n = 0;
    for (auto& p : params()) {
      if (!p.trainable) continue;  // counted like PyTorch's parameters(), not its buffers
      int64_t e = 1;
      for (auto d : p.dims) e *= d;
      n += e;
    }
    return n;
  }

 protected:
  [[noreturn]] void layer_error(const std::string& what) const { fail(type(), " '", name_, "': ", what); }
  void expect_inputs(const std::vector<Shape>& in) const {
    if (static_cast<int>(in.size()) != num_inputs())
      layer_error("expects " + std::to_string(num_inputs()) + " input(s), got " + std::to_string(in.size()));
  }

 private:
  std::string name_;
};

using LayerPtr = std::unique_ptr<Layer>;

}  // namespace cnn
