// The CUDA backend's index arithmetic, checked on the CPU (every build, GPU or not): the implicit
// GEMM walked tile by tile as the kernels walk it (cnn/cuda/conv_geometry.hpp) against the CPU
// engine's Conv2d, and the NCHW plan the backend runs from.
#include <doctest/doctest.h>

#include <cnn/cuda/conv_geometry.hpp>

#include "test_util.hpp"

namespace {

cnn::cuda::ConvParams params_of(const cnn::Conv2dOptions& o) {
  return {int(o.in_channels), int(o.out_channels), o.kh, o.kw, o.stride_h, o.stride_w,
          o.pad_h, o.pad_w, o.dilation_h, o.dilation_w, o.groups};
}

}  // namespace

TEST_CASE("the GPU convolution's tiles, k table and packed weights give the CPU engine's convolution") {
  std::mt19937 rng(20261208);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 40; ++trial) {
    cnn::Conv2dOptions o;
    o.groups = trial % 5 == 0 ? pick(2, 4) : 1;
    o.in_channels = o.groups * pick(1, trial % 7 == 0 ? 70 : 12);  // 70: K past two tiles
    o.out_channels = o.groups * pick(1, trial % 6 == 0 ? 140 : 20);  // 140: M past one tile
    if (trial % 9 == 4) o.groups = int(o.in_channels), o.out_channels = o.in_channels;  // depth-wise
    o.kh = pick(1, 4), o.kw = pick(1, 4);
    o.stride_h = pick(1, 3), o.stride_w = pick(1, 3);
    o.pad_h = pick(0, 2), o.pad_w = pick(0, 2);
    o.dilation_h = pick(1, 2), o.dilation_w = pick(1, 2);
    o.bias = trial % 3 != 0;
    const cnn::Shape in{pick(1, 3), o.in_channels, pick(o.kh * 2, 23), pick(o.kw * 2, 31)};
    CAPTURE(trial);
    CAPTURE(in.str());

    cnn::Conv2d conv("conv", o);
    test::fill_params(conv, rng, 0.5f);
    conv.prepare();
    const cnn::Shape out_shape = conv.output_shape({in});
    cnn::Tensor x(in), cpu(out_shape), residual(out_shape), gpu_way(out_shape);
    test::fill_random(x.data(), x.numel(), rng);
    test::fill_random(residual.data(), residual.numel(), rng);
    std::vector<float> workspace(std::size_t(conv.workspace_floats({in})) + 1);
    conv.forward({x.view()}, cpu.view(), workspace.data());

    const cnn::cuda::ConvParams p = params_of(o);
    const cnn::cuda::ConvGeometry g = cnn::cuda::make_geometry(p, int(in.n), int(in.c), int(in.h), int(in.w));
    REQUIRE(g.oh == out_shape.h);
    REQUIRE(g.ow == out_shape.w);
    CHECK(g.k_padded % cnn::cuda::kTileK == 0);
    CHECK(g.m_padded % cnn::cuda::kTileM == 0);
    const std::vector<float> packed = cnn::cuda::pack_weights(conv.weight().values.data(), g);
    const std::vector<cnn::cuda::KEntry> table = cnn::cuda::make_k_table(p, g);
    const bool with_residual = trial % 2 == 1;
    const int act = trial % 4 == 1 ? cnn::cuda::kActReLU : trial % 4 == 3 ? cnn::cuda::kActLeakyReLU : cnn::cuda::kActNone;
    cnn::cuda::reference_conv(g, packed, table, x.data(), conv.bias_data(), with_residual ? residual.data() : nullptr,
                              act, 0.1f, gpu_way.data());

    // The CPU's convolution (bias included), then the residual and the activation.
    const cnn::Epilogue ep{nullptr, cnn::Activation(act), 0.1f};
    for (int64_t i = 0; i < cpu.numel(); ++i) cpu[i] = ep.activate(cpu[i] + (with_residual ? residual[i] : 0.f));
    CHECK(test::rel_error(gpu_way.data(), cpu.data(), cpu.numel()) < 1e-5);
  }
}

TEST_CASE("the NCHW plan a GPU runs from has no blocked tensor and no layout conversion") {
  cnn::ModelConfig c;
  c.arch = "resnet50";
  c.num_classes = 10;
  cnn::Graph g = cnn::build_model(c);
  g.init_random(3);
  const cnn::Shape in{2, 3, 96, 96};
  const cnn::MemoryPlan cpu = g.plan(in);
  const cnn::MemoryPlan nchw = g.plan_nchw(in);
  for (char b : nchw.blocked) CHECK_FALSE(b);
  for (const auto& st : nchw.steps) CHECK(st.from < 0);
  CHECK(nchw.steps.size() == g.num_nodes() - 1);
  // Same shapes per node as the CPU's own plan, whatever its layouts.
  for (std::size_t i = 0; i < g.num_nodes(); ++i) CHECK(nchw.shapes[i] == cpu.shapes[i]);
  // Buffers are shared: far fewer than tensors.
  CHECK(nchw.slot_floats.size() < g.num_nodes() / 4);
}
