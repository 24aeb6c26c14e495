// The CUDA backend on the CPU (every build, GPU or not): its program (describe, step_specs,
// run_step) and its kernels' own thread code, run by tests/cuda_sim.hpp, against the CPU engine.
// What this cannot check is the hardware: wmma's real multiply, timing, memory. That is
// test_cuda.cpp's work, on a GPU.
#include <doctest/doctest.h>

#include "cuda_graphs.hpp"
#include "cuda_sim.hpp"

// A suite of its own: ctest runs it as `cuda_on_cpu` (ThreadSanitizer leaves it out: it is one
// thread of arithmetic; AddressSanitizer keeps it, as the memory checker of the kernels' indexing).
TEST_SUITE_BEGIN("cuda_on_cpu");

namespace {

using cnn::cuda::Precision;

// The simulated GPU against the CPU forward of `g`: an H100's 132 multiprocessors, on which these
// small layers split K wherever they have 8 steps of it, and a GPU on which nothing splits.
void compare(cnn::Graph& g, const cnn::Shape& in, std::mt19937& rng, const std::string& what, bool whole_model,
             std::vector<Precision> precisions = {Precision::FP32, Precision::TF32, Precision::BF16}) {
  for (int multiprocessors : {132, 0}) {
    cuda_sim::SimModel sim(g, multiprocessors);
    cuda_graphs::compare(g, in, rng, what + (multiprocessors ? " split-K" : ""), whole_model, 1e-5,
                         [&](cnn::ConstTensorView x, Precision p) { return sim.forward(x, p); }, precisions);
  }
}

}  // namespace

TEST_CASE("the GPU convolution kernels' thread code gives the CPU engine's convolution") {
  std::mt19937 rng(20261208);
  for (int trial = 0; trial < 24; ++trial) {
    cnn::Shape in;
    cnn::Graph g = cuda_graphs::conv_graph(trial, rng, in, 24);
    compare(g, in, rng, "conv trial " + std::to_string(trial), false);
  }
}

TEST_CASE("the GPU pooling, BatchNorm, activation, linear and softmax kernels give the CPU's results") {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 12; ++trial) {
    cnn::Shape in;
    cnn::Graph g = cuda_graphs::ops_graph(trial, rng, in);
    compare(g, in, rng, "ops trial " + std::to_string(trial), false, {Precision::FP32});
  }
}

TEST_CASE("the bundled age/gender networks through the GPU program give the CPU's outputs") {
  std::mt19937 rng(5);
  for (const char* file : {"agegender-resnet18.safetensors", "agegender-vgg16bn.safetensors"}) {
    cnn::Model m = cnn::load_model(std::string(FACECNN_SOURCE_DIR) + "/weights/" + file);
    compare(m.graph, {2, 3, 40, 32}, rng, file, true);
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
  for (std::size_t i = 0; i < g.num_nodes(); ++i) CHECK(nchw.shapes[i] == cpu.shapes[i]);
  CHECK(nchw.slot_floats.size() < g.num_nodes() / 4);  // buffers are shared
  const std::vector<cnn::cuda::StepSpec> specs = cnn::cuda::step_specs(nchw, cnn::cuda::describe(g), 132);
  int split = 0;
  for (const auto& s : specs) {
    if (s.table.empty()) continue;  // not a convolution
    const int steps = s.geometry.k_padded / cnn::cuda::kTileK;
    CHECK(s.splits <= 16);
    CHECK(s.steps_per_split * s.splits >= steps);
    CHECK(s.steps_per_split * (s.splits - 1) < steps);  // no empty split
    if (s.splits > 1) CHECK(s.steps_per_split >= 4);
    split += s.splits > 1;
  }
  CHECK(specs[0].splits == 1);  // the stem (step 0): 5 steps of K
  CHECK(split > 20);            // at 96x96 and batch 2, most layers fill few of 132 multiprocessors
}

TEST_CASE("a layer without a GPU kernel is refused by name, before any GPU is looked for") {
  cnn::Graph g;
  const int y = g.add<cnn::Upsample2d>({cnn::Graph::kInput}, "up", 2);
  g.add_output(y, "out");
  g.init_random(1);
  CHECK_THROWS_WITH(cnn::cuda::describe(g), doctest::Contains("Upsample 'up': no GPU kernel"));
  cnn::Graph unloaded;
  unloaded.add_output(unloaded.add<cnn::Flatten>({cnn::Graph::kInput}, "flat"), "out");
  CHECK_THROWS_WITH(cnn::cuda::describe(unloaded), doctest::Contains("no weights yet"));
}

TEST_SUITE_END();
