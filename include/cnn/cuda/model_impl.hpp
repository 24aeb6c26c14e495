// cnn/cuda/model_impl.hpp — the definitions of cnn/cuda/model.hpp: host code for the C++ compiler,
// calling the CUDA runtime and the launchers of launch.hpp. Compile it in exactly one .cpp file
// (the facecnn::cuda library's is cmake/facecnn_cuda_model.cpp).
#pragma once
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "model.hpp"

namespace cnn::cuda {

static_assert(int(Activation::None) == kActNone && int(Activation::ReLU) == kActReLU &&
                  int(Activation::LeakyReLU) == kActLeakyReLU && int(Activation::Sigmoid) == kActSigmoid &&
                  int(Activation::ReLU6) == kActReLU6,
              "conv_geometry.hpp's activation codes follow cnn::Activation");

namespace detail {

inline void check(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) fail("cuda: ", what, ": ", cudaGetErrorString(e), " (", cudaGetErrorName(e), ")");
}

// An owning device array.
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(std::size_t n, const std::string& what) : n_(n) {
    if (n) check(cudaMalloc(reinterpret_cast<void**>(&p_), n * sizeof(T)), "allocating " + what);
  }
  DeviceArray(const std::vector<T>& host, const std::string& what) : DeviceArray(host.size(), what) {
    if (n_) check(cudaMemcpy(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice), "uploading " + what);
  }
  ~DeviceArray() {
    if (p_) cudaFree(p_);
  }
  DeviceArray(DeviceArray&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  T* get() const { return p_; }
  std::size_t size() const { return n_; }
  int64_t bytes() const { return int64_t(n_ * sizeof(T)); }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

// An owned stream or event (members, so that a constructor that throws half-way frees them).
template <class T, cudaError_t (*Destroy)(T)>
struct Handle {
  T h = nullptr;
  Handle() = default;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    if (h) Destroy(h);
  }
  operator T() const { return h; }
};

// One node's kernel and its uploaded parameters.
struct Op {
  enum Kind { Conv, Linear, Pool, AdaptivePool, Add, Activate, Affine, Softmax, Identity } kind = Identity;
  const Layer* layer = nullptr;
  int act = 0;
  float slope = 0.01f;
  ConvParams conv{};
  DeviceArray<float> weights, bias;        // Conv: pack_weights(); Linear: [out][in] as stored
  int64_t in_features = 0, out_features = 0;
  Pool2dOptions pool;
  bool max_pool = false;
  DeviceArray<float> scale, shift;         // Affine
};

// Everything that depends on the input shape.
struct Plan {
  MemoryPlan memory;
  std::vector<DeviceArray<float>> slots;
  std::vector<DeviceArray<KEntry>> tables;  // per step (Conv steps only)
  std::vector<ConvGeometry> geometry;       // per step (Conv steps only)
};

[[noreturn]] inline void unsupported(const Layer& l, const std::string& why) {
  fail("cuda: ", l.type(), " '", l.name(), "': ", why);
}

inline std::string describe_layer(const Layer& l) { return l.type() + " '" + l.name() + "'"; }

}  // namespace detail

// ------------------------------------------------------------------------------------------------
DeviceInfo device_info() {
  DeviceInfo d;
  cudaDriverGetVersion(&d.driver_version);
  cudaRuntimeGetVersion(&d.runtime_version);
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    d.why = std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e);
    cudaGetLastError();  // clear it
    return d;
  }
  if (count == 0) {
    d.why = "no CUDA device";
    return d;
  }
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
    d.why = "cudaGetDeviceProperties failed";
    cudaGetLastError();
    return d;
  }
  d.name = p.name;
  d.major = p.major, d.minor = p.minor, d.multiprocessors = p.multiProcessorCount;
  d.memory_bytes = int64_t(p.totalGlobalMem);
  if (p.major < 8) {
    d.why = d.name + " is compute capability " + std::to_string(p.major) + "." + std::to_string(p.minor) +
            "; the kernels need 8.0 or newer (TF32/BF16 tensor cores)";
    return d;
  }
  d.usable = true;
  return d;
}

Tensor DeviceView::download() const {
  Tensor t(shape);
  detail::check(cudaMemcpy(t.data(), data, t.bytes(), cudaMemcpyDeviceToHost), "downloading a tensor");
  return t;
}

DeviceTensor::DeviceTensor(Shape shape) : shape_(shape) {
  const int64_t n = shape.checked_numel("device tensor of shape " + shape.str(), kMaxTensorElements);
  detail::check(cudaMalloc(reinterpret_cast<void**>(&data_), std::size_t(std::max<int64_t>(n, 1)) * sizeof(float)),
                "allocating a tensor of shape " + shape.str());
}
DeviceTensor DeviceTensor::upload(ConstTensorView host) {
  if (host.blocked) fail("cuda: upload expects an NCHW tensor");
  DeviceTensor t(host.shape);
  detail::check(cudaMemcpy(t.data_, host.data, std::size_t(host.shape.numel()) * sizeof(float), cudaMemcpyHostToDevice),
                "uploading a tensor of shape " + host.shape.str());
  return t;
}
DeviceTensor::~DeviceTensor() {
  if (data_) cudaFree(data_);
}
DeviceTensor::DeviceTensor(DeviceTensor&& o) noexcept
    : shape_(o.shape_), data_(std::exchange(o.data_, nullptr)) {}
DeviceTensor& DeviceTensor::operator=(DeviceTensor&& o) noexcept {
  std::swap(shape_, o.shape_);
  std::swap(data_, o.data_);
  return *this;
}

// ------------------------------------------------------------------------------------------------
struct Model::Impl {
  const Graph* graph = nullptr;
  Precision precision = Precision::FP32;
  detail::Handle<cudaStream_t, cudaStreamDestroy> stream;
  detail::Handle<cudaEvent_t, cudaEventDestroy> start, stop;
  std::vector<detail::Op> ops;  // per node (ops[0]: the input, unused)
  bool planned = false;
  detail::Plan plan;
  DeviceTensor host_input;      // where forward(ConstTensorView) uploads to

  Impl(const Graph& g, Precision p) : graph(&g), precision(p) {
    if (!g.loaded()) fail("cuda: the graph has no weights yet (load_weights() or init_random() first)");
    const DeviceInfo info = device_info();
    if (!info.usable) fail("cuda: no usable GPU: ", info.why);
    ops.resize(g.num_nodes());
    for (std::size_t i = 1; i < g.num_nodes(); ++i) ops[i] = make_op(*g.layer(int(i)));
    detail::check(cudaStreamCreateWithFlags(&stream.h, cudaStreamNonBlocking), "creating a stream");
    detail::check(cudaEventCreate(&start.h), "creating an event");
    detail::check(cudaEventCreate(&stop.h), "creating an event");
  }

  static detail::Op make_op(const Layer& l) {
    using detail::Op;
    Op op;
    op.layer = &l;
    const std::string what = detail::describe_layer(l);
    if (auto* c = dynamic_cast<const Conv2d*>(&l)) {
      op.kind = Op::Conv;
      const Conv2dOptions& o = c->options();
      op.conv = ConvParams{int(o.in_channels), int(o.out_channels), o.kh, o.kw, o.stride_h, o.stride_w,
                           o.pad_h, o.pad_w, o.dilation_h, o.dilation_w, o.groups};
      const Epilogue ep = c->epilogue();
      op.act = int(ep.act), op.slope = ep.slope;
      // The packing needs K and M only: any input shape gives the same matrix.
      const ConvGeometry g = make_geometry(op.conv, 1, o.in_channels, o.kh, o.kw);
      op.weights = detail::DeviceArray<float>(pack_weights(c->weight().values.data(), g), what + " weights");
      std::vector<float> bias(std::size_t(op.conv.out_channels), 0.f);
      if (c->bias_data()) std::copy(c->bias_data(), c->bias_data() + op.conv.out_channels, bias.begin());
      op.bias = detail::DeviceArray<float>(bias, what + " bias");
    } else if (auto* f = dynamic_cast<const cnn::Linear*>(&l)) {
      op.kind = Op::Linear;
      op.in_features = f->in_features(), op.out_features = f->out_features();
      op.act = int(f->activation()), op.slope = f->slope();
      op.weights = detail::DeviceArray<float>(f->weight().values, what + " weights");
      std::vector<float> bias(std::size_t(op.out_features), 0.f);
      if (f->bias_data()) std::copy(f->bias_data(), f->bias_data() + op.out_features, bias.begin());
      op.bias = detail::DeviceArray<float>(bias, what + " bias");
    } else if (auto* p = dynamic_cast<const Pool2d*>(&l)) {
      op.kind = Op::Pool;
      op.pool = p->options();
      op.max_pool = p->kind() == PoolKind::Max;
    } else if (dynamic_cast<const AdaptiveAvgPool2d*>(&l)) {
      op.kind = Op::AdaptivePool;
    } else if (auto* a = dynamic_cast<const cnn::Add*>(&l)) {
      op.kind = Op::Add;
      op.act = int(a->activation()), op.slope = a->slope();
    } else if (auto* a = dynamic_cast<const ActivationLayer*>(&l)) {
      op.kind = Op::Activate;
      op.act = int(a->kind()), op.slope = a->slope();
    } else if (auto* b = dynamic_cast<const BatchNorm2d*>(&l)) {
      op.kind = Op::Affine;
      std::vector<float> scale(b->scale().begin(), b->scale().end()), shift(b->shift().begin(), b->shift().end());
      op.scale = detail::DeviceArray<float>(scale, what + " scale");
      op.shift = detail::DeviceArray<float>(shift, what + " shift");
    } else if (dynamic_cast<const cnn::Softmax*>(&l)) {
      op.kind = Op::Softmax;
    } else if (dynamic_cast<const Flatten*>(&l) || dynamic_cast<const Dropout*>(&l)) {
      op.kind = Op::Identity;  // the same floats (Dropout: inference)
    } else {
      detail::unsupported(l, "no GPU kernel for this layer type");
    }
    return op;
  }

  void make_plan(Shape input) {
    planned = false;
    plan = detail::Plan{};
    plan.memory = graph->plan_nchw(input);
    const MemoryPlan& m = plan.memory;
    for (char b : m.blocked)
      if (b) fail("cuda: internal: the NCHW plan has a blocked tensor");
    for (std::size_t s = 0; s < m.slot_floats.size(); ++s)
      plan.slots.emplace_back(std::size_t(std::max<int64_t>(m.slot_floats[s], 1)), "activation buffer " + std::to_string(s));
    plan.tables.resize(m.steps.size());
    plan.geometry.resize(m.steps.size());
    for (std::size_t s = 0; s < m.steps.size(); ++s) {
      const MemoryPlan::Step& st = m.steps[s];
      if (st.from >= 0) fail("cuda: internal: the NCHW plan converts a layout");
      const detail::Op& op = ops[std::size_t(st.node)];
      if (op.kind != detail::Op::Conv) continue;
      const Shape& in = m.shapes[std::size_t(st.ins[0])];
      if (in.c * in.h * in.w >= (int64_t(1) << 29) || in.n * in.c * in.h * in.w >= (int64_t(1) << 62))
        detail::unsupported(*op.layer, "input " + in.str() + " is too large for the kernels' 32-bit offsets");
      const ConvGeometry g = make_geometry(op.conv, int(in.n), int(in.c), int(in.h), int(in.w));
      plan.geometry[s] = g;
      plan.tables[s] = detail::DeviceArray<KEntry>(make_k_table(op.conv, g), detail::describe_layer(*op.layer) + " k table");
    }
    planned = true;
  }

  float* tensor(int t, const float* input) const {
    if (t == 0) return const_cast<float*>(input);  // never written: the plan does not write over the input
    return plan.slots[std::size_t(plan.memory.slot[std::size_t(t)])].get();
  }

  void run_step(std::size_t s, const float* input) {
    const MemoryPlan& m = plan.memory;
    const MemoryPlan::Step& st = m.steps[s];
    const detail::Op& op = ops[std::size_t(st.node)];
    const Shape& out = m.shapes[std::size_t(st.out)];
    const Shape& in = m.shapes[std::size_t(st.ins[0])];
    const float* x = tensor(st.ins[0], input);
    float* y = tensor(st.out, input);
    const int64_t n = out.numel();
    using detail::Op;
    cudaError_t e = cudaSuccess;
    switch (op.kind) {
      case Op::Conv: {
        const ConvArgs a{x, op.weights.get(), plan.tables[s].get(), op.bias.get(),
                         st.ins.size() > 1 ? tensor(st.ins[1], input) : nullptr, y, plan.geometry[s], op.act, op.slope};
        e = launch_conv(precision, a, stream);
        break;
      }
      case Op::Linear:
        e = launch_linear(x, op.weights.get(), op.bias.get(), y, int(in.n), int(op.in_features), int(op.out_features),
                          op.act, op.slope, stream);
        break;
      case Op::Pool: {
        const Pool2dOptions& o = op.pool;
        const PoolArgs a{x, y, in.n * in.c, int(in.h), int(in.w), int(out.h), int(out.w), o.kh, o.kw, o.sh(), o.sw(),
                         o.pad_h, o.pad_w, o.dilation_h, o.dilation_w, op.max_pool, o.count_include_pad};
        e = launch_pool(a, stream);
        break;
      }
      case Op::AdaptivePool:
        e = launch_adaptive_avg_pool(x, y, in.n * in.c, int(in.h), int(in.w), int(out.h), int(out.w), stream);
        break;
      case Op::Add: e = launch_add(x, tensor(st.ins[1], input), y, n, op.act, op.slope, stream); break;
      case Op::Activate: e = launch_activate(x, y, n, op.act, op.slope, stream); break;
      case Op::Affine:
        e = launch_channel_affine(x, y, op.scale.get(), op.shift.get(), n, int(out.c), out.plane(), stream);
        break;
      case Op::Softmax: e = launch_softmax(x, y, int(out.n), int(out.c), out.plane(), stream); break;
      case Op::Identity:
        if (x != y) e = cudaMemcpyAsync(y, x, std::size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice, stream);
        break;
    }
    detail::check(e, "running " + detail::describe_layer(*op.layer));
  }

  std::vector<DeviceView> forward(const DeviceView& input) {
    if (!planned || plan.memory.input != input.shape) make_plan(input.shape);
    for (std::size_t s = 0; s < plan.memory.steps.size(); ++s) run_step(s, input.data);
    std::vector<DeviceView> out;
    for (int t : plan.memory.outputs) out.push_back({plan.memory.shapes[std::size_t(t)], tensor(t, input.data)});
    return out;
  }
};

Model::Model(const Graph& graph, Precision precision) : impl_(std::make_unique<Impl>(graph, precision)) {}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

Precision Model::precision() const { return impl_->precision; }
void Model::set_precision(Precision p) { impl_->precision = p; }
void* Model::stream() const { return impl_->stream.h; }

void Model::synchronize() { detail::check(cudaStreamSynchronize(impl_->stream), "running the model"); }

std::vector<DeviceView> Model::forward(const DeviceView& input) {
  if (!input.data) fail("cuda: forward of an empty device tensor");
  return impl_->forward(input);
}

std::vector<Tensor> Model::forward(ConstTensorView input) {
  if (input.blocked) fail("cuda: forward expects an NCHW tensor");
  Impl& m = *impl_;
  if (m.host_input.shape() != input.shape) m.host_input = DeviceTensor(input.shape);
  detail::check(cudaMemcpyAsync(m.host_input.data(), input.data, std::size_t(input.shape.numel()) * sizeof(float),
                                cudaMemcpyHostToDevice, m.stream),
                "uploading the input");
  const std::vector<DeviceView> views = m.forward(m.host_input.view());
  std::vector<Tensor> out;
  for (const DeviceView& v : views) {
    Tensor t(v.shape);
    detail::check(cudaMemcpyAsync(t.data(), v.data, t.bytes(), cudaMemcpyDeviceToHost, m.stream), "downloading an output");
    out.push_back(std::move(t));
  }
  synchronize();
  return out;
}

std::vector<double> Model::time_forward(const DeviceView& input, int runs, int warmup) {
  Impl& m = *impl_;
  for (int i = 0; i < warmup; ++i) forward(input);
  synchronize();
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    detail::check(cudaEventRecord(m.start, m.stream), "recording an event");
    forward(input);
    detail::check(cudaEventRecord(m.stop, m.stream), "recording an event");
    detail::check(cudaEventSynchronize(m.stop), "running the model");
    float t = 0.f;
    detail::check(cudaEventElapsedTime(&t, m.start, m.stop), "reading an event");
    ms.push_back(double(t));
  }
  return ms;
}

int64_t Model::device_bytes() const {
  int64_t b = impl_->host_input.shape().numel() * int64_t(sizeof(float));
  for (const detail::Op& op : impl_->ops) b += op.weights.bytes() + op.bias.bytes() + op.scale.bytes() + op.shift.bytes();
  for (const auto& s : impl_->plan.slots) b += s.bytes();
  for (const auto& t : impl_->plan.tables) b += t.bytes();
  return b;
}

}  // namespace cnn::cuda
