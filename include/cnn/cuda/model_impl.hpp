// cnn/cuda/model_impl.hpp — the definitions of cnn/cuda/model.hpp: host code for the C++ compiler,
// calling the CUDA runtime and the launchers of launch.hpp. Compile it in exactly one .cpp file
// (the facecnn::cuda library's is cmake/facecnn_cuda_model.cpp).
#pragma once
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "model.hpp"
#include "program.hpp"

namespace cnn::cuda {

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

// One node's parameters on the GPU.
struct DeviceOp {
  DeviceArray<float> weights, bias, scale, shift;
  OpData data() const { return {weights.get(), bias.get(), scale.get(), shift.get()}; }
  int64_t bytes() const { return weights.bytes() + bias.bytes() + scale.bytes() + shift.bytes(); }
};

// Everything that depends on the input shape.
struct Plan {
  MemoryPlan memory;
  std::vector<StepSpec> specs;
  std::vector<DeviceArray<float>> slots;
  std::vector<DeviceArray<KEntry>> tables;  // per step (Conv steps only)
  DeviceArray<float> partial;               // the split convolutions' sums (the largest step's)
};

// run_step()'s executor: the launchers of launch.hpp on one stream.
struct Launcher {
  Precision precision;
  cudaStream_t stream;
  int conv(const ConvArgs& a) { return launch_conv(precision, a, stream); }
  int linear(const LinearArgs& a) { return launch_linear(a, stream); }
  int pool(const PoolArgs& a) { return launch_pool(a, stream); }
  int adaptive_avg_pool(const float* x, float* y, int64_t planes, int h, int w, int oh, int ow) {
    return launch_adaptive_avg_pool(x, y, planes, h, w, oh, ow, stream);
  }
  int add(const float* a, const float* b, float* y, int64_t n, int act, float slope) {
    return launch_add(a, b, y, n, act, slope, stream);
  }
  int activate(const float* x, float* y, int64_t n, int act, float slope) {
    return launch_activate(x, y, n, act, slope, stream);
  }
  int affine(const float* x, float* y, const float* scale, const float* shift, int64_t n, int c, int64_t plane) {
    return launch_channel_affine(x, y, scale, shift, n, c, plane, stream);
  }
  int softmax(const float* x, float* y, int batch, int c, int64_t plane) {
    return launch_softmax(x, y, batch, c, plane, stream);
  }
  int copy(float* y, const float* x, int64_t n) {
    return cudaMemcpyAsync(y, x, std::size_t(n) * sizeof(float), cudaMemcpyDeviceToDevice, stream);
  }
};

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
  std::vector<OpSpec> ops;               // per node (ops[0]: the input)
  std::vector<detail::DeviceOp> params;  // the same, uploaded
  int multiprocessors = 0;               // for step_specs()' split-K choice (0: never split)
  bool planned = false;
  detail::Plan plan;
  DeviceTensor host_input;               // where forward(ConstTensorView) uploads to

  Impl(const Graph& g, Precision p) : graph(&g), precision(p) {
    ops = describe(g);  // refuses an unsupported layer before anything is allocated
    const DeviceInfo info = device_info();
    if (!info.usable) fail("cuda: no usable GPU: ", info.why);
    // CNN_CUDA_SPLITK=0 turns split-K off (to compare; docs/cuda.md).
    const char* split = std::getenv("CNN_CUDA_SPLITK");
    multiprocessors = split && std::string(split) == "0" ? 0 : info.multiprocessors;
    params.resize(ops.size());
    for (std::size_t i = 1; i < ops.size(); ++i) {
      const OpSpec& op = ops[i];
      const std::string what = layer_label(*op.layer);
      params[i].weights = detail::DeviceArray<float>(op.weights, what + " weights");
      params[i].bias = detail::DeviceArray<float>(op.bias, what + " bias");
      params[i].scale = detail::DeviceArray<float>(op.scale, what + " scale");
      params[i].shift = detail::DeviceArray<float>(op.shift, what + " shift");
    }
    // A blocking stream: the synchronous copies on the default stream (DeviceTensor::upload,
    // DeviceView::download) wait for its kernels, and its kernels for them.
    detail::check(cudaStreamCreate(&stream.h), "creating a stream");
    detail::check(cudaEventCreate(&start.h), "creating an event");
    detail::check(cudaEventCreate(&stop.h), "creating an event");
  }

  void make_plan(Shape input) {
    planned = false;
    plan = detail::Plan{};
    plan.memory = graph->plan_nchw(input);
    plan.specs = step_specs(plan.memory, ops, multiprocessors);
    const MemoryPlan& m = plan.memory;
    int64_t partial = 0;
    for (const StepSpec& spec : plan.specs) partial = std::max(partial, spec.partial_floats);
    plan.partial = detail::DeviceArray<float>(std::size_t(partial), "split-K sums");
    for (std::size_t s = 0; s < m.slot_floats.size(); ++s)
      plan.slots.emplace_back(std::size_t(std::max<int64_t>(m.slot_floats[s], 1)), "activation buffer " + std::to_string(s));
    plan.tables.resize(m.steps.size());
    for (std::size_t s = 0; s < m.steps.size(); ++s)
      if (!plan.specs[s].table.empty())
        plan.tables[s] = detail::DeviceArray<KEntry>(plan.specs[s].table,
                                                     layer_label(*ops[std::size_t(m.steps[s].node)].layer) + " k table");
    planned = true;
  }

  float* tensor(int t, const float* input) const {
    if (t == 0) return const_cast<float*>(input);  // never written: the plan does not write over the input
    return plan.slots[std::size_t(plan.memory.slot[std::size_t(t)])].get();
  }

  std::vector<DeviceView> forward(const DeviceView& input) {
    if (!planned || plan.memory.input != input.shape) make_plan(input.shape);
    detail::Launcher launcher{precision, stream};
    const MemoryPlan& m = plan.memory;
    for (std::size_t s = 0; s < m.steps.size(); ++s) {
      const std::size_t node = std::size_t(m.steps[s].node);
      const int e = run_step(m, s, ops[node], params[node].data(), plan.specs[s], StepData{plan.tables[s].get(), plan.partial.get()},
                             [&](int t) { return tensor(t, input.data); }, launcher);
      detail::check(cudaError_t(e), "running " + layer_label(*ops[node].layer));
    }
    std::vector<DeviceView> out;
    for (int t : m.outputs) out.push_back({m.shapes[std::size_t(t)], tensor(t, input.data)});
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
  for (const detail::DeviceOp& op : impl_->params) b += op.bytes();
  for (const auto& s : impl_->plan.slots) b += s.bytes();
  for (const auto& t : impl_->plan.tables) b += t.bytes();
  b += impl_->plan.partial.bytes();
  return b;
}

}  // namespace cnn::cuda
