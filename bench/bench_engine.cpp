// Engine benchmarks (Google Benchmark). Build: cmake --build build --target bench_engine
//
//   build/bench/bench_engine --benchmark_filter=Peak      the machine's fp32 FMA peak (1 thread)
//   build/bench/bench_engine --benchmark_filter=Gemm      GEMM at VGG16 / ResNet-50 layer shapes (GemmBf16: in bf16)
//   build/bench/bench_engine --benchmark_filter=Conv      every distinct conv layer of both models
//   build/bench/bench_engine --benchmark_filter=Model     whole models, batch 1 and 8, 1 and 2 threads
// CNN_ISA=avx2|generic forces a slower kernel path; CNN_WINOGRAD=0 turns Winograd off.
// GEMM and conv rows report GFLOP/s (direct-convolution flops, 2 per multiply-add) and the share
// of the peak measured by BM_Peak in the same process.
#include <benchmark/benchmark.h>

#include <array>

#include <chrono>
#include <cstdio>
#include <map>
#include <set>

#include <cnn/cnn.hpp>
#include <cnn/kernels/gemm_bf16.hpp>

namespace {

using cnn::Shape;

// ---- the machine's peak: independent FMA chains on registers, nothing from memory -------------
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12, inside its own _mm512_reduce_add_ps
#endif
#ifdef CNN_X86
CNN_TARGET_AVX512 double fma_loop_avx512(int64_t iters) {
  __m512 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(float(i) * 1e-3f);
  const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-4f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], x, y);
  float s = 0;
  for (int i = 0; i < 12; ++i) s += _mm512_reduce_add_ps(a[i]);
  return s;
}
CNN_TARGET_AVX2 double fma_loop_avx2(int64_t iters) {
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(float(i) * 1e-3f);
  const __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-4f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], x, y);
  alignas(32) float v[8];
  float s = 0;
  for (int i = 0; i < 12; ++i) {
    _mm256_store_ps(v, a[i]);
    for (float f : v) s += f;
  }
  return s;
}
#endif

// GFLOP/s of one core at the active ISA's widest FMA (0 if unknown).
double measured_peak() {
  static double peak = [] {
#ifdef CNN_X86
    const cnn::Isa isa = cnn::active_isa();
    if (isa == cnn::Isa::Generic) return 0.0;
    const int lanes = isa == cnn::Isa::AVX512 ? 16 : 8;
    const int64_t iters = 20000000;
    double best = 0;
    for (int r = 0; r < 3; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      volatile double sink = isa == cnn::Isa::AVX512 ? fma_loop_avx512(iters) : fma_loop_avx2(iters);
      (void)sink;
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, 2.0 * lanes * 12 * double(iters) / s / 1e9);
    }
    return best;
#else
    return 0.0;
#endif
  }();
  return peak;
}

void BM_Peak(benchmark::State& st) {
  for (auto _ : st) benchmark::DoNotOptimize(measured_peak());
  st.counters["GFLOP/s/core"] = measured_peak();
  st.SetLabel(cnn::isa_name(cnn::active_isa()));
}
BENCHMARK(BM_Peak)->Iterations(1);

void report(benchmark::State& st, double flops, int threads) {
  st.counters["GFLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  const double peak = measured_peak() * threads;
  if (peak > 0) {
    st.counters["peak%"] = benchmark::Counter(100.0 * flops / (peak * 1e9), benchmark::Counter::kIsIterationInvariantRate);
  }
}

// ---- the micro-kernel alone: 64 A panels (512 KB, L2) against one B panel (L1), kc = 256 ---------
void BM_MicroKernel(benchmark::State& st) {
  const cnn::Isa isa = cnn::active_isa();
  const int64_t kc = 256, panels = 64, nr = cnn::kernels::nr_for(isa);
  cnn::AlignedVector a(std::size_t(kc * 8 * panels)), b(std::size_t(kc * nr)), c(std::size_t(8 * nr));
  for (std::size_t i = 0; i < a.size(); ++i) a.data()[i] = 1e-3f * float(i % 97);
  for (std::size_t i = 0; i < b.size(); ++i) b.data()[i] = 0.5f;
  const cnn::kernels::MicroKernel micro = cnn::kernels::micro_kernel_for(isa);
  const cnn::Epilogue ep;
  for (auto _ : st)
    for (int64_t p = 0; p < panels; ++p) micro(kc, a.data() + p * kc * 8, b.data(), nr, c.data(), nr, 8, nr, true, false, ep, 0, kc * 8);
  report(st, 2.0 * 8 * double(nr) * kc * panels, 1);
  st.SetLabel(cnn::isa_name(isa));
}
BENCHMARK(BM_MicroKernel);

// ---- GEMM at layer shapes -----------------------------------------------------------------------
void BM_Gemm(benchmark::State& st) {
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  const int threads = int(st.range(3));
  cnn::set_num_threads(threads);
  std::vector<float> a(M * K, 0.5f), b(K * N, 0.25f), c(M * N);
  const cnn::kernels::PackedA pa = cnn::kernels::pack_a(M, K, cnn::ConstMat{a.data(), K, 1});
  const cnn::ConstMat B{b.data(), N, 1};
  for (auto _ : st) {
    cnn::kernels::gemm_packed(M, N, K, pa, cnn::kernels::matrix_source(B), cnn::Mat{c.data(), N, 1});
    benchmark::DoNotOptimize(c.data());
  }
  report(st, 2.0 * M * N * K, threads);
}
// M = output channels, N = output pixels, K = input channels x kernel area (VGG16 and ResNet-50).
void gemm_shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "N", "K", "thr"});
  for (const auto& s : std::vector<std::array<int64_t, 4>>{
           {64, 50176, 576, 1},     // VGG16 conv1_2 (as im2col GEMM)
           {128, 12544, 1152, 1},   // VGG16 conv2_2
           {256, 3136, 2304, 1},    // VGG16 conv3_x
           {512, 784, 4608, 1},     // VGG16 conv4_x
           {512, 196, 4608, 1},     // VGG16 conv5_x
           {64, 3136, 256, 1},      // ResNet-50 layer1 conv1
           {256, 3136, 64, 1},      // ResNet-50 layer1 conv3
           {512, 784, 128, 1},      // ResNet-50 layer2 conv3
           {1024, 196, 256, 1},     // ResNet-50 layer3 conv3
           {2048, 49, 512, 1},      // ResNet-50 layer4 conv3
           {1024, 1024, 1024, 1},   // square: the usual SGEMM yardstick (bench/peers/gemm_peers.py)
           {2048, 2048, 2048, 1},
           {512, 784, 4608, 2},
           {256, 3136, 64, 2}})
    b->Args({s[0], s[1], s[2], s[3]});
}
BENCHMARK(BM_Gemm)->Apply(gemm_shapes)->Unit(benchmark::kMillisecond);

// The same shapes in bf16 with fp32 sums (gemm_bf16.hpp; skipped without AVX512_BF16).
void BM_GemmBf16(benchmark::State& st) {
  if (!cnn::kernels::bf16_available()) return st.SkipWithError("no AVX512_BF16 on this CPU");
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  const int threads = int(st.range(3));
  cnn::set_num_threads(threads);
  std::vector<float> a(M * K, 0.5f), b(K * N, 0.25f), c(M * N);
  const cnn::kernels::PackedA16 pa = cnn::kernels::pack_a_bf16(M, K, cnn::ConstMat{a.data(), K, 1});
  const cnn::ConstMat B{b.data(), N, 1};
  for (auto _ : st) {
    cnn::kernels::gemm_bf16_packed(M, N, K, pa, cnn::kernels::matrix_source(B), cnn::Mat{c.data(), N, 1});
    benchmark::DoNotOptimize(c.data());
  }
  report(st, 2.0 * M * N * K, threads);
}
BENCHMARK(BM_GemmBf16)->Apply(gemm_shapes)->Unit(benchmark::kMillisecond);

// The same GEMM with B packed beforehand: what the blocked loop and micro-kernel reach without the
// per-call packing (docs/performance.md compares the two).
void BM_GemmPrepacked(benchmark::State& st) {
  namespace k = cnn::kernels;
  const int64_t M = st.range(0), N = st.range(1), K = st.range(2);
  const cnn::Isa isa = cnn::active_isa();
  const int64_t NR = k::nr_for(isa), width = (N + NR - 1) / NR * NR;
  std::vector<float> a(M * K, 0.5f), b(K * N, 0.25f), c(M * N);
  const k::PackedA pa = k::pack_a(M, K, cnn::ConstMat{a.data(), K, 1});
  const cnn::ConstMat B{b.data(), N, 1};
  const k::BSource src = k::matrix_source(B);
  cnn::AlignedVector packed(std::size_t(K * width));
  for (int64_t pc = 0; pc < K; pc += k::detail::kKC)
    src.pack(src.ctx, pc, std::min(k::detail::kKC, K - pc), 0, N, NR, packed.data() + pc * width);
  for (auto _ : st) {
    k::detail::gemm_block(0, M, 0, N, K, pa, src, cnn::Mat{c.data(), N, 1}, cnn::Epilogue{}, isa, NR, false, packed.data());
    benchmark::DoNotOptimize(c.data());
  }
  report(st, 2.0 * M * N * K, 1);
}
BENCHMARK(BM_GemmPrepacked)
    ->ArgNames({"M", "N", "K"})
    ->Args({64, 3136, 256})    // ResNet-50 layer1 conv1
    ->Args({256, 196, 1024})   // ResNet-50 layer3 conv1
    ->Args({2048, 49, 512})    // ResNet-50 layer4 conv3
    ->Unit(benchmark::kMillisecond);

#ifdef CNN_X86
// The direct strided kernel with its weights cold, as at batch 1 (24 copies, used in turn, so each
// run reads them from beyond L2): ResNet-50's 3x3/2 layers.
void BM_DirectColdWeights(benchmark::State& st) {
  namespace d = cnn::kernels::direct;
  const int64_t cin = st.range(0), side = st.range(1), M = st.range(2);
  cnn::set_num_threads(int(st.range(3)));
  const int64_t hp = side + 2, oh = side / 2;  // 3x3, stride 2, padding 1 (already applied)
  const d::Geometry g{cin, hp, hp, 3, 3, 2, oh, oh};
  std::vector<float> w(std::size_t(M * cin * 9), 0.01f), x(std::size_t(cin * hp * hp), 0.5f), y(std::size_t(M * oh * oh));
  std::vector<d::Weights> copies;
  for (int i = 0; i < 24; ++i) copies.push_back(d::pack_weights(w.data(), M, cin * 9));
  std::size_t next = 0;
  for (auto _ : st) {
    d::run(copies[next++ % copies.size()], x.data(), g, y.data(), cnn::Epilogue{});
    benchmark::DoNotOptimize(y.data());
  }
  report(st, 2.0 * M * oh * oh * cin * 9, int(st.range(3)));
}
BENCHMARK(BM_DirectColdWeights)
    ->ArgNames({"cin", "side", "M", "thr"})
    ->Args({256, 28, 256, 1})   // layer3.0.conv2
    ->Args({512, 14, 512, 1})   // layer4.0.conv2
    ->Args({512, 14, 512, 2})
    ->Unit(benchmark::kMillisecond);
#endif

// ---- every distinct convolution of VGG16 and ResNet-50 at 224x224 ---------------------------------
struct ConvCase {
  std::string name;
  cnn::Conv2dOptions o;
  Shape in;
};
std::vector<ConvCase> conv_cases() {
  std::vector<ConvCase> cases;
  std::set<std::string> seen;
  for (const char* arch : {"vgg16", "resnet50"}) {
    cnn::ModelConfig c;
    c.arch = arch;
    cnn::Graph g = cnn::build_model(c);
    const cnn::MemoryPlan& p = g.plan(Shape{1, 3, 224, 224});
    for (std::size_t i = 1; i < g.num_nodes(); ++i)
      if (auto* conv = dynamic_cast<cnn::Conv2d*>(g.layer(int(i)))) {
        const Shape in = p.shapes[g.inputs_of(int(i))[0]];
        const std::string key = conv->describe() + " " + std::to_string(conv->options().in_channels) + "->" +
                                std::to_string(conv->options().out_channels) + " @" + std::to_string(in.h);
        if (seen.insert(key).second) cases.push_back({std::string(arch) + " " + conv->name() + " " + key, conv->options(), in});
      }
  }
  return cases;
}

void BM_Conv(benchmark::State& st, ConvCase cc, int threads) {
  cnn::set_num_threads(threads);
  cnn::Graph g;
  g.add_output(g.add<cnn::Conv2d>({cnn::Graph::kInput}, "conv", cc.o), "y");
  g.init_random();
  cnn::Tensor x(cc.in);
  const Shape out = g.plan(cc.in).shapes[1];
  for (auto _ : st) benchmark::DoNotOptimize(g.forward(x.view()));
  const double flops = 2.0 * double(out.numel()) * double(cc.o.in_channels / cc.o.groups) * cc.o.kh * cc.o.kw;
  report(st, flops, threads);
  auto* conv = static_cast<cnn::Conv2d*>(g.layer(1));
  st.SetLabel(conv->use_winograd(out) ? "winograd" : conv->use_direct(cc.in, out) ? "direct" : "gemm");
}

// ---- whole models --------------------------------------------------------------------------------
void BM_Model(benchmark::State& st, const char* arch, int64_t side) {
  const int64_t batch = st.range(0);
  const int threads = int(st.range(1));
  cnn::set_num_threads(threads);
  cnn::ModelConfig c;
  c.arch = arch;
  cnn::Graph g = cnn::build_model(c);
  g.init_random();
  cnn::Tensor x(Shape{batch, 3, side, side});
  g.forward(x.view());  // warm-up: plan, buffers
  for (auto _ : st) benchmark::DoNotOptimize(g.forward(x.view()));
  st.counters["ms/image"] = benchmark::Counter(double(batch) / 1000.0, benchmark::Counter::kIsIterationInvariantRate |
                                                                          benchmark::Counter::kInvert);
}
BENCHMARK_CAPTURE(BM_Model, vgg16_224, "vgg16", 224)
    ->ArgNames({"batch", "thr"})->ArgsProduct({{1, 8}, {1, 2}})->Unit(benchmark::kMillisecond)->MinTime(2);
BENCHMARK_CAPTURE(BM_Model, resnet18_224, "resnet18", 224)
    ->ArgNames({"batch", "thr"})->ArgsProduct({{1, 8}, {1, 2}})->Unit(benchmark::kMillisecond)->MinTime(2);
BENCHMARK_CAPTURE(BM_Model, resnet50_224, "resnet50", 224)
    ->ArgNames({"batch", "thr"})->ArgsProduct({{1, 8}, {1, 2}})->Unit(benchmark::kMillisecond)->MinTime(2);

}  // namespace

int main(int argc, char** argv) {
  for (const ConvCase& cc : conv_cases())
    for (int threads : {1, 2})
      benchmark::RegisterBenchmark(("BM_Conv/" + cc.name + "/thr:" + std::to_string(threads)).c_str(), BM_Conv, cc,
                                   threads)
          ->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
