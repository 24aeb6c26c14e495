// The CUDA backend against the CPU engine (label `cuda`; built with -DFACECNN_CUDA=ON). Exits 77,
// which ctest reports as skipped, when the machine has no usable GPU.
//
// Every kernel runs inside a small graph whose CPU forward is the reference, on random shapes, in
// each precision: FP32 within 1e-4 of the CPU (max |gpu - cpu| / max |cpu|), TF32 and BF16 within
// 1e-2. Then whole models: VGG16, VGG16-BN, ResNet-18/50 with random weights and the bundled
// age/gender networks, batch 1 and 3.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cnn/cuda/model.hpp>
#include <cstdio>

#include "test_util.hpp"

namespace {

using cnn::cuda::Precision;

double tolerance(Precision p) { return p == Precision::FP32 ? 1e-4 : 1e-2; }

// Runs `g` on the CPU and on the GPU in each precision and compares every output.
void compare(cnn::Graph& g, const cnn::Shape& in, std::mt19937& rng, const std::string& what) {
  cnn::Tensor x(in);
  test::fill_random(x.data(), x.numel(), rng);
  const std::vector<cnn::Tensor> cpu = g.forward(x.view());
  cnn::cuda::Model gpu(g);
  for (Precision p : {Precision::FP32, Precision::TF32, Precision::BF16}) {
    gpu.set_precision(p);
    const std::vector<cnn::Tensor> out = gpu.forward(x.view());
    REQUIRE(out.size() == cpu.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
      REQUIRE(out[i].shape() == cpu[i].shape());
      const double err = test::rel_error(out[i].data(), cpu[i].data(), cpu[i].numel());
      INFO(what << " " << in.str() << " " << cnn::cuda::precision_name(p) << " output " << i << ": " << err);
      CHECK(err < tolerance(p));
    }
  }
}

int pick(std::mt19937& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

}  // namespace

TEST_CASE("convolutions on random shapes, with bias, residual and activation, match the CPU") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 30; ++trial) {
    cnn::Conv2dOptions o;
    o.groups = trial % 6 == 0 ? pick(rng, 2, 4) : 1;
    o.in_channels = o.groups * pick(rng, 1, trial % 5 == 0 ? 96 : 24);
    o.out_channels = o.groups * pick(rng, 1, trial % 4 == 0 ? 200 : 40);
    if (trial % 10 == 3) o.groups = int(o.in_channels), o.out_channels = o.in_channels;  // depth-wise
    o.kh = o.kw = pick(rng, 1, 3) * 2 - 1;
    o.stride_h = o.stride_w = pick(rng, 1, 2);
    o.pad_h = o.pad_w = pick(rng, 0, o.kh / 2 + 1);
    o.dilation_h = o.dilation_w = trial % 7 == 0 ? 2 : 1;
    o.bias = trial % 3 != 0;
    const cnn::Shape in{pick(rng, 1, 3), o.in_channels, pick(rng, 9, 40), pick(rng, 9, 40)};
    cnn::Graph g;
    int y = g.add<cnn::Conv2d>({cnn::Graph::kInput}, "conv", o);
    if (trial % 2) {  // a second convolution and an Add: fuse() makes it a residual epilogue
      const int z = g.add<cnn::Conv2d>({cnn::Graph::kInput}, "shortcut", o);
      y = g.add<cnn::Add>({y, z}, "add");
    }
    if (trial % 3 == 1) y = g.add<cnn::ActivationLayer>({y}, "relu", cnn::Activation::ReLU);
    g.add_output(y, "out");
    g.init_random(uint32_t(trial + 1));
    compare(g, in, rng, "conv trial " + std::to_string(trial));
  }
}

TEST_CASE("linear, pooling, adaptive pooling, BatchNorm, activations and softmax match the CPU") {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 12; ++trial) {
    const int64_t c = pick(rng, 1, 40), h = pick(rng, 4, 30), w = pick(rng, 4, 30);
    const int64_t oh = pick(rng, 1, 4), ow = pick(rng, 1, 4), features = pick(rng, 1, 300);
    cnn::Pool2dOptions po;
    po.kh = po.kw = pick(rng, 2, 3);
    po.stride_h = po.stride_w = pick(rng, 1, 2);
    po.pad_h = po.pad_w = pick(rng, 0, po.kh / 2);
    po.ceil_mode = trial % 2 == 0;
    po.count_include_pad = trial % 3 != 0;
    cnn::Graph g;
    int y = g.add<cnn::Pool2d>({cnn::Graph::kInput}, "pool", trial % 2 ? cnn::PoolKind::Max : cnn::PoolKind::Avg, po);
    y = g.add<cnn::BatchNorm2d>({y}, "bn", c);  // after a pooling: a layer of its own, not folded
    y = g.add<cnn::ActivationLayer>({y}, "act", trial % 3 ? cnn::Activation::LeakyReLU : cnn::Activation::Sigmoid, 0.2f);
    int head = g.add<cnn::AdaptiveAvgPool2d>({y}, "adaptive", oh, ow);
    head = g.add<cnn::Flatten>({head}, "flatten");
    head = g.add<cnn::Dropout>({head}, "dropout");
    head = g.add<cnn::Linear>({head}, "fc", c * oh * ow, features, trial % 4 != 0);
    head = g.add<cnn::ActivationLayer>({head}, "fc_relu", cnn::Activation::ReLU);  // fused into the Linear
    const int probs = g.add<cnn::Softmax>({head}, "softmax");
    g.add_output(y, "pooled");
    g.add_output(probs, "probabilities");
    g.init_random(uint32_t(100 + trial));
    compare(g, {pick(rng, 1, 9), c, h, w}, rng, "pool trial " + std::to_string(trial));
  }
}

TEST_CASE("whole models match the CPU engine, batch 1 and 3") {
  std::mt19937 rng(5);
  for (const char* arch : {"resnet18", "resnet50", "vgg16", "vgg16_bn"}) {
    cnn::ModelConfig c;
    c.arch = arch;
    cnn::Graph g = cnn::build_model(c);
    g.init_random(9);
    for (int64_t batch : {1, 3}) compare(g, {batch, 3, 224, 224}, rng, arch);
  }
  for (const char* file : {"agegender-resnet18.safetensors", "agegender-vgg16bn.safetensors",
                           "agegender-faceapi.safetensors"}) {
    cnn::Model m = cnn::load_model(std::string(FACECNN_SOURCE_DIR) + "/weights/" + file);
    const cnn::Shape in{2, 3, 112, 112};
    compare(m.graph, in, rng, file);
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

TEST_CASE("a layer without a GPU kernel is refused by name") {
  cnn::Graph g;
  const int y = g.add<cnn::Upsample2d>({cnn::Graph::kInput}, "up", 2);
  g.add_output(y, "out");
  g.init_random(1);
  try {
    cnn::cuda::Model gpu(g);
    FAIL("no error");
  } catch (const cnn::Error& e) {
    CHECK(std::string(e.what()).find("'up'") != std::string::npos);
  }
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
