// Engine benchmarks (Google Benchmark): GEMM at convolution shapes and whole models.
//   build/bench/bench_engine --benchmark_filter=Model
#include <benchmark/benchmark.h>

#include <random>

#include <cnn/cnn.hpp>

namespace {

void BM_Gemm(benchmark::State& st) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  cnn::set_num_threads(int(st.range(3)));
  std::vector<float> a(M * K, 0.5f), b(K * N, 0.25f), c(M * N);
  for (auto _ : st) {
    cnn::kernels::gemm(M, N, K, cnn::ConstMat{a.data(), K, 1}, cnn::ConstMat{b.data(), N, 1}, cnn::Mat{c.data(), N, 1});
    benchmark::DoNotOptimize(c.data());
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * M * N * K, benchmark::Counter::kIsIterationInvariantRate);
}
// M (output channels), N (output pixels), K (input channels x 9), threads: VGG16 / ResNet-50 layers.
BENCHMARK(BM_Gemm)->Args({64, 50176, 576, 1})->Args({128, 12544, 1152, 1})->Args({512, 784, 4608, 1})
    ->Args({256, 3136, 64, 1})->Args({512, 784, 4608, 2})->Unit(benchmark::kMillisecond);

void BM_Model(benchmark::State& st, const char* arch, int64_t side) {
  cnn::set_num_threads(int(st.range(0)));
  cnn::ModelConfig c;
  c.arch = arch;
  cnn::Graph g = cnn::build_model(c);
  g.init_random();
  cnn::Tensor x(cnn::Shape{1, 3, side, side});
  for (auto _ : st) benchmark::DoNotOptimize(g.forward(x.view()));
}
BENCHMARK_CAPTURE(BM_Model, resnet18_224, "resnet18", 224)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Model, resnet50_224, "resnet50", 224)->Arg(2)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Model, vgg16_224, "vgg16", 224)->Arg(2)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace

BENCHMARK_MAIN();
