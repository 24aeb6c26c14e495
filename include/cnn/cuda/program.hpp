// cnn/cuda/program.hpp — a loaded Graph as the kernels the CUDA backend runs, in plain C++.
//
//   describe(layer)        a node's kernel and its parameters in the kernels' form (packed conv
//                          weights, bias, BatchNorm scale and shift), as host vectors;
//   step_specs(plan, ops)  per step of Graph::plan_nchw(), a convolution's geometry and k table;
//   run_step(...)          the one place that turns a step into a kernel call (ConvArgs, PoolArgs…),
//                          given where the tensors and parameters live.
//
// An executor performs the calls: model_impl.hpp launches the kernels on the GPU, with the
// parameters uploaded once; tests/cuda_sim.hpp runs the kernels' own thread code on the CPU. So the
// CPU build tests everything between a Graph and the GPU's instructions except wmma's multiply.
#pragma once
#include <algorithm>
#include <string>
#include <vector>

#include "../graph.hpp"
#include "conv_tiles.hpp"
#include "op_elements.hpp"

namespace cnn::cuda {

static_assert(int(Activation::None) == kActNone && int(Activation::ReLU) == kActReLU &&
                  int(Activation::LeakyReLU) == kActLeakyReLU && int(Activation::Sigmoid) == kActSigmoid &&
                  int(Activation::ReLU6) == kActReLU6,
              "conv_geometry.hpp's activation codes follow cnn::Activation");

inline std::string layer_label(const Layer& l) { return l.type() + " '" + l.name() + "'"; }

[[noreturn]] inline void unsupported(const Layer& l, const std::string& why) { fail("cuda: ", layer_label(l), ": ", why); }

// One node's kernel and its parameters (host vectors).
struct OpSpec {
  enum Kind { Conv, Linear, Pool, AdaptivePool, Add, Activate, Affine, Softmax, Identity } kind = Identity;
  const Layer* layer = nullptr;
  int act = kActNone;
  float slope = 0.01f;
  ConvParams conv{};
  int64_t in_features = 0, out_features = 0;
  Pool2dOptions pool;
  bool max_pool = false;
  std::vector<float> weights;  // Conv: pack_weights(); Linear: [out][in] as stored
  std::vector<float> bias;     // Conv, Linear: [out] (zeros when the layer has none)
  std::vector<float> scale, shift;  // Affine (a BatchNorm that was not folded)
};

// Where an op's parameters live for the executor (device pointers; host ones in the simulation).
struct OpData {
  const float *weights = nullptr, *bias = nullptr, *scale = nullptr, *shift = nullptr;
};

// A step's shape-dependent data: a convolution's geometry, k table and split of K.
struct StepSpec {
  ConvGeometry geometry{};
  std::vector<KEntry> table;
  int splits = 1, steps_per_split = 0;
  int64_t partial_floats = 0;  // scratch for the splits' sums
};
struct StepData {
  const KEntry* table = nullptr;
  float* partial = nullptr;  // at least the step's partial_floats (shared by all steps)
};

// How many ways to split K: a layer whose tiles make fewer blocks than the GPU has
// multiprocessors (ResNet-50's last stages at batch 1: 4 to 16 blocks on 132) gets about two
// blocks per multiprocessor, keeping at least 4 steps of kTileK in each split and at most 16
// splits. 1 when `multiprocessors` is 0 (no splitting).
inline void choose_splits(StepSpec& s, int multiprocessors) {
  const ConvGeometry& g = s.geometry;
  const int64_t blocks = (g.columns() + kTileN - 1) / kTileN * (g.m_padded / kTileM) * g.groups;
  const int steps = g.k_padded / kTileK;
  int splits = 1;
  if (multiprocessors > 0 && blocks < multiprocessors)
    splits = int(std::min<int64_t>({16, steps / 4, (2 * multiprocessors + blocks - 1) / blocks}));
  if (splits < 2) {
    s.splits = 1, s.steps_per_split = steps, s.partial_floats = 0;
    return;
  }
  s.steps_per_split = (steps + splits - 1) / splits;
  s.splits = (steps + s.steps_per_split - 1) / s.steps_per_split;  // none of them empty
  s.partial_floats = s.splits * output_numel(g);
}

inline std::vector<float> bias_or_zeros(const float* bias, int64_t n) {
  return bias ? std::vector<float>(bias, bias + n) : std::vector<float>(std::size_t(n), 0.f);
}

// The kernel of one layer (after Graph::fuse(): BatchNorm folded, activations and residuals fused).
// Throws, naming the layer, for a layer type without a GPU kernel.
inline OpSpec describe(const Layer& l) {
  OpSpec op;
  op.layer = &l;
  if (auto* c = dynamic_cast<const Conv2d*>(&l)) {
    op.kind = OpSpec::Conv;
    const Conv2dOptions& o = c->options();
    op.conv = ConvParams{int(o.in_channels), int(o.out_channels), o.kh, o.kw, o.stride_h, o.stride_w,
                         o.pad_h, o.pad_w, o.dilation_h, o.dilation_w, o.groups};
    const Epilogue ep = c->epilogue();
    op.act = int(ep.act), op.slope = ep.slope;
    // The packing depends on K and M only: any input shape gives the same matrix.
    op.weights = pack_weights(c->weight().values.data(), make_geometry(op.conv, 1, int(o.in_channels), o.kh, o.kw));
    op.bias = bias_or_zeros(c->bias_data(), o.out_channels);
  } else if (auto* f = dynamic_cast<const cnn::Linear*>(&l)) {
    op.kind = OpSpec::Linear;
    op.in_features = f->in_features(), op.out_features = f->out_features();
    op.act = int(f->activation()), op.slope = f->slope();
    op.weights = f->weight().values;
    op.bias = bias_or_zeros(f->bias_data(), op.out_features);
  } else if (auto* p = dynamic_cast<const Pool2d*>(&l)) {
    op.kind = OpSpec::Pool;
    op.pool = p->options();
    op.max_pool = p->kind() == PoolKind::Max;
  } else if (dynamic_cast<const AdaptiveAvgPool2d*>(&l)) {
    op.kind = OpSpec::AdaptivePool;
  } else if (auto* a = dynamic_cast<const cnn::Add*>(&l)) {
    op.kind = OpSpec::Add;
    op.act = int(a->activation()), op.slope = a->slope();
  } else if (auto* a = dynamic_cast<const ActivationLayer*>(&l)) {
    op.kind = OpSpec::Activate;
    op.act = int(a->kind()), op.slope = a->slope();
  } else if (auto* b = dynamic_cast<const BatchNorm2d*>(&l)) {
    op.kind = OpSpec::Affine;
    op.scale.assign(b->scale().begin(), b->scale().end());
    op.shift.assign(b->shift().begin(), b->shift().end());
  } else if (dynamic_cast<const cnn::Softmax*>(&l)) {
    op.kind = OpSpec::Softmax;
  } else if (dynamic_cast<const Flatten*>(&l) || dynamic_cast<const Dropout*>(&l)) {
    op.kind = OpSpec::Identity;  // the same floats (Dropout: inference)
  } else {
    unsupported(l, "no GPU kernel for this layer type");
  }
  return op;
}

inline std::vector<OpSpec> describe(const Graph& g) {
  if (!g.loaded()) fail("cuda: the graph has no weights yet (load_weights() or init_random() first)");
  std::vector<OpSpec> ops(g.num_nodes());  // ops[0]: the input
  for (std::size_t i = 1; i < g.num_nodes(); ++i) ops[i] = describe(*g.layer(int(i)));
  return ops;
}

// Per step of an NCHW plan; checks that the plan is one (no blocked tensor, no conversion).
// `multiprocessors`: the GPU's, for choose_splits() (0: never split K).
inline std::vector<StepSpec> step_specs(const MemoryPlan& m, const std::vector<OpSpec>& ops, int multiprocessors) {
  for (char b : m.blocked)
    if (b) fail("cuda: internal: the plan has a blocked tensor");
  std::vector<StepSpec> specs(m.steps.size());
  for (std::size_t s = 0; s < m.steps.size(); ++s) {
    const MemoryPlan::Step& st = m.steps[s];
    if (st.from >= 0) fail("cuda: internal: the plan converts a layout");
    const OpSpec& op = ops[std::size_t(st.node)];
    if (op.kind != OpSpec::Conv) continue;
    const Shape& in = m.shapes[std::size_t(st.ins[0])];
    if (in.c * in.h * in.w >= (int64_t(1) << 29))  // KEntry::offset is an int
      unsupported(*op.layer, "input " + in.str() + " is too large for the kernels' 32-bit offsets");
    specs[s].geometry = make_geometry(op.conv, int(in.n), int(in.c), int(in.h), int(in.w));
    specs[s].table = make_k_table(op.conv, specs[s].geometry);
    choose_splits(specs[s], multiprocessors);
  }
  return specs;
}

// Step s as one kernel call on `exec`. tensor(t) gives plan tensor t's address. Returns the
// executor's status (0: launched).
//
// Exec provides, each returning int (0 on success):
//   conv(const ConvArgs&)  linear(const LinearArgs&)  pool(const PoolArgs&)
//   adaptive_avg_pool(x, y, planes, h, w, oh, ow)  add(a, b, y, n, act, slope)
//   activate(x, y, n, act, slope)  affine(x, y, scale, shift, n, channels, plane)
//   softmax(x, y, batch, channels, plane)  copy(y, x, n)
template <class Exec, class TensorOf>
int run_step(const MemoryPlan& m, std::size_t s, const OpSpec& op, const OpData& d, const StepSpec& spec,
             const StepData& sd, TensorOf&& tensor, Exec& exec) {
  const MemoryPlan::Step& st = m.steps[s];
  const Shape& out = m.shapes[std::size_t(st.out)];
  const Shape& in = m.shapes[std::size_t(st.ins[0])];
  const float* x = tensor(st.ins[0]);
  float* y = tensor(st.out);
  const int64_t n = out.numel();
  switch (op.kind) {
    case OpSpec::Conv:
      return exec.conv(ConvArgs{x, d.weights, sd.table, d.bias, st.ins.size() > 1 ? tensor(st.ins[1]) : nullptr, y,
                                spec.geometry, op.act, op.slope, spec.splits, spec.steps_per_split, sd.partial});
    case OpSpec::Linear:
      return exec.linear(LinearArgs{x, d.weights, d.bias, y, int(in.n), int(op.in_features), int(op.out_features),
                                    op.act, op.slope});
    case OpSpec::Pool: {
      const Pool2dOptions& o = op.pool;
      return exec.pool(PoolArgs{x, y, in.n * in.c, int(in.h), int(in.w), int(out.h), int(out.w), o.kh, o.kw, o.sh(),
                                o.sw(), o.pad_h, o.pad_w, o.dilation_h, o.dilation_w, op.max_pool, o.count_include_pad});
    }
    case OpSpec::AdaptivePool:
      return exec.adaptive_avg_pool(x, y, in.n * in.c, int(in.h), int(in.w), int(out.h), int(out.w));
    case OpSpec::Add: return exec.add(x, tensor(st.ins[1]), y, n, op.act, op.slope);
    case OpSpec::Activate: return exec.activate(x, y, n, op.act, op.slope);
    case OpSpec::Affine: return exec.affine(x, y, d.scale, d.shift, n, int(out.c), out.plane());
    case OpSpec::Softmax: return exec.softmax(x, y, int(out.n), int(out.c), out.plane());
    case OpSpec::Identity: return x == y ? 0 : exec.copy(y, x, n);
  }
  return 0;
}

}  // namespace cnn::cuda
