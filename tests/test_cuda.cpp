// The CUDA backend against the CPU engine (label `cuda`; built with -DFACECNN_CUDA=ON). Exits 77,
// which ctest reports as skipped, when the machine has no usable GPU.
//
// Every kernel runs inside a small graph whose CPU forward is the reference, on random shapes, in
// each precision: FP32 within 1e-4 of the CPU (max |gpu - cpu| / max |cpu|), TF32 and BF16 within
// 1e-2 (tests/cuda_graphs.hpp). Then whole models: VGG16, VGG16-BN, ResNet-18/50 with random
// weights at batch 1 and 3, and the bundled age/gender networks at batch 2 (BF16 within 3e-2).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cnn/cuda/model.hpp>
#include <cstdio>

#include "cuda_graphs.hpp"

namespace {

using cnn::cuda::Precision;

// The GPU against the CPU forward of `g`, in each precision.
void compare(cnn::Graph& g, const cnn::Shape& in, std::mt19937& rng, const std::string& what, bool whole_model) {
  cnn::cuda::Model gpu(g);
  cuda_graphs::compare(g, in, rng, what, whole_model, 1e-4, [&](cnn::ConstTensorView x, Precision p) {
    gpu.set_precision(p);
    return gpu.forward(x);
  });
}

}  // namespace

TEST_CASE("convolutions on random shapes, with bias, residual and activation, match the CPU") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 30; ++trial) {
    cnn::Shape in;
    cnn::Graph g = cuda_graphs::conv_graph(trial, rng, in);
    compare(g, in, rng, "conv trial " + std::to_string(trial), false);
  }
}

TEST_CASE("linear, pooling, adaptive pooling, BatchNorm, activations and softmax match the CPU") {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 12; ++trial) {
    cnn::Shape in;
    cnn::Graph g = cuda_graphs::ops_graph(trial, rng, in);
    compare(g, in, rng, "ops trial " + std::to_string(trial), false);
  }
}

TEST_CASE("whole models match the CPU engine, batch 1 and 3") {
  std::mt19937 rng(5);
  for (const char* arch : {"resnet18", "resnet50", "vgg16", "vgg16_bn"}) {
    cnn::ModelConfig c;
    c.arch = arch;
    cnn::Graph g = cnn::build_model(c);
    g.init_random(9);
    for (int64_t batch : {1, 3}) compare(g, {batch, 3, 224, 224}, rng, arch, true);
  }
  for (const char* file : {"agegender-resnet18.safetensors", "agegender-vgg16bn.safetensors",
                           "agegender-faceapi.safetensors"}) {
    cnn::Model m = cnn::load_model(std::string(FACECNN_SOURCE_DIR) + "/weights/" + file);
    const cnn::Shape in{2, 3, 112, 112};
    compare(m.graph, in, rng, file, true);
  }
}

TEST_CASE("one model serves several input shapes; a reused plan gives the same answer") {
  std::mt19937 rng(3);
  cnn::ModelConfig c;
  c.arch = "resnet18";
  c.num_classes = 7;
  cnn::Graph g = cnn::build_model(c);
  g.init_random(2);
  cnn::cuda::Model gpu(g);
  cnn::Tensor a({2, 3, 64, 80}), b({1, 3, 97, 61});
  test::fill_random(a.data(), a.numel(), rng);
  test::fill_random(b.data(), b.numel(), rng);
  const std::vector<cnn::Tensor> first = gpu.forward(a.view());
  gpu.forward(b.view());
  const std::vector<cnn::Tensor> again = gpu.forward(a.view());
  CHECK(test::rel_error(again[0].data(), first[0].data(), first[0].numel()) == 0.0);
  // Device tensors in and out, without the host copies.
  const cnn::cuda::DeviceTensor x = cnn::cuda::DeviceTensor::upload(a.view());
  const std::vector<cnn::cuda::DeviceView> y = gpu.forward(x.view());
  const cnn::Tensor from_device = y[0].download();
  CHECK(test::rel_error(from_device.data(), first[0].data(), first[0].numel()) == 0.0);
  CHECK(gpu.device_bytes() > g.param_count() * 4);
}

int main(int argc, char** argv) {
  const cnn::cuda::DeviceInfo info = cnn::cuda::device_info();
  if (!info.usable) {
    std::printf("cuda tests skipped: %s\n", info.why.c_str());
    return 77;
  }
  std::printf("GPU: %s (sm_%d%d, %d SMs), driver %d, runtime %d\n", info.name.c_str(), info.major, info.minor,
              info.multiprocessors, info.driver_version, info.runtime_version);
  doctest::Context context(argc, argv);
  return context.run();
}
