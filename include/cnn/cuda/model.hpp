// cnn/cuda/model.hpp — the optional CUDA backend: a loaded Graph, run on the GPU by our own kernels.
//
//   cnn::Model m = cnn::load_model("weights/agegender-resnet18.safetensors");
//   cnn::cuda::Model gpu(m.graph, cnn::cuda::Precision::TF32);   // weights uploaded and repacked once
//   std::vector<cnn::Tensor> out = gpu.forward(input);             // host in, host out
//
//   cnn::cuda::DeviceTensor x = cnn::cuda::DeviceTensor::upload(input);   // or data already there:
//   std::vector<cnn::cuda::DeviceView> y = gpu.forward(x.view());         // asynchronous, on gpu.stream()
//
// This header is plain C++ (it needs the CUDA toolkit's include directory for cuda_runtime_api.h).
// The definitions come in two parts, each compiled once: model_impl.hpp, C++ for the host compiler,
// and kernels.cuh (the kernels, conv.cuh and ops.cuh), CUDA for nvcc. The facecnn::cuda library
// (CMake: -DFACECNN_CUDA=ON) compiles both and links the CUDA runtime.
//
// The GPU runs the graph as the CPU would, node by node, from the CPU's own memory plan with every
// tensor NCHW (Graph::plan_nchw): buffers are allocated once per input shape and reused, layers
// write over their inputs where the CPU's would, and a forward allocates nothing. Convolutions are
// implicit GEMMs (conv.cuh) in the chosen precision; everything else runs in FP32.
// docs/cuda.md describes the kernels, the tests and the measured figures.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "../graph.hpp"
#include "launch.hpp"

namespace cnn::cuda {

inline Precision parse_precision(const std::string& s) {
  for (Precision p : {Precision::FP32, Precision::TF32, Precision::BF16})
    if (s == precision_name(p)) return p;
  fail("unknown CUDA precision '", s, "' (fp32, tf32 or bf16)");
}

// Device 0, or why there is none to use (no driver, no device, a device older than sm_80).
struct DeviceInfo {
  bool usable = false;
  std::string why;   // when not usable
  std::string name;  // "NVIDIA H100 80GB HBM3"
  int major = 0, minor = 0, multiprocessors = 0;
  int64_t memory_bytes = 0;
  int driver_version = 0, runtime_version = 0;  // 13000 = 13.0
};
DeviceInfo device_info();

// Float data in GPU memory, NCHW. A view does not own it.
struct DeviceView {
  Shape shape;
  const float* data = nullptr;
  Tensor download() const;  // waits for the copy
};

// An owning GPU buffer for one tensor.
class DeviceTensor {
 public:
  DeviceTensor() = default;
  explicit DeviceTensor(Shape shape);  // uninitialised
  static DeviceTensor upload(ConstTensorView host);
  ~DeviceTensor();
  DeviceTensor(DeviceTensor&& o) noexcept;
  DeviceTensor& operator=(DeviceTensor&& o) noexcept;
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;

  const Shape& shape() const { return shape_; }
  float* data() { return data_; }
  DeviceView view() const { return {shape_, data_}; }
  Tensor download() const { return view().download(); }

 private:
  Shape shape_;
  float* data_ = nullptr;
};

class Model {
 public:
  // Uploads the graph's weights (already loaded, BN folded, activations fused) and repacks them for
  // the kernels. The graph must outlive the model; the model reads its layers' settings and plans.
  // Throws cnn::Error naming the layer when one has no GPU kernel, or when there is no usable GPU.
  explicit Model(const Graph& graph, Precision precision = Precision::FP32);
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  Precision precision() const;
  void set_precision(Precision p);

  // Host input, host outputs (one per graph output, in add_output() order); waits for the GPU.
  std::vector<Tensor> forward(ConstTensorView input);
  // Device input; returns views of the outputs in the model's own buffers, valid until the next
  // forward. Runs asynchronously on stream(): synchronize() (or DeviceView::download()) before
  // reading them from the host.
  std::vector<DeviceView> forward(const DeviceView& input);
  void synchronize();
  void* stream() const;  // the cudaStream_t the model's kernels run on

  // GPU time of `runs` forwards after `warmup` untimed ones, one CUDA-event pair per run (ms).
  std::vector<double> time_forward(const DeviceView& input, int runs, int warmup);
  // Weights, tables and activation buffers held on the GPU.
  int64_t device_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cnn::cuda
