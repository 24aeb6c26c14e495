// bench_detect - Viola-Jones detection speed (Google Benchmark).
//   bench_detect [benchmark flags] [--images DIR_OR_FILES...] [--cascade FILE]
// Without --images it uses ../shared/samples/astronaut.png resized to 640x480. Each benchmark
// detects faces in every image once per iteration (scaleFactor 1.1, minNeighbors 3, minSize 24),
// at 1 and 2 threads (and the AVX2 kernel and the portable scalar path at 1 thread);
// ms_per_image is per image.
#include <benchmark/benchmark.h>
#include <dirent.h>
#include <vision/vision.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

namespace {
std::vector<vision::Image> g_images;
vision::CascadeClassifier g_cc;

void run_detect(benchmark::State& st, bool simd, bool avx512 = true) {
  vision::DetectParams p;
  p.simd = simd;
  p.allow_avx512 = avx512;
  p.scale_factor = 1.1;
  p.min_neighbors = 3;
  p.min_width = p.min_height = 24;
  p.threads = int(st.range(0));
  size_t faces = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : st) {
    for (const auto& img : g_images) {
      auto d = g_cc.detect(img, p);
      faces += d.size();
      benchmark::DoNotOptimize(d.data());
    }
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  st.counters["ms_per_image"] = ms / double(st.iterations() * g_images.size());
  st.counters["faces_per_image"] = double(faces) / double(st.iterations() * g_images.size());
}

void BM_detect(benchmark::State& st) { run_detect(st, true); }
void BM_detect_scalar(benchmark::State& st) { run_detect(st, false); }
void BM_detect_avx2(benchmark::State& st) { run_detect(st, true, false); }

void BM_pyramid_integrals(benchmark::State& st) {
  // resize + integral of every scale, no cascade evaluation
  vision::DetectParams p;
  for (auto _ : st)
    for (const auto& img : g_images)
      for (float s : g_cc.scales(img.width(), img.height(), p)) {
        auto L = g_cc.prepare(img, s);
        benchmark::DoNotOptimize(L.buf.data());
      }
}
}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::string cascade = std::string(FACECNN_SOURCE_DIR) + "/weights/haarcascade_frontalface_default.xml";
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--cascade") && i + 1 < argc) cascade = argv[++i];
    else if (!std::strcmp(argv[i], "--images")) {
      while (i + 1 < argc && argv[i + 1][0] != '-') {
        std::string a = argv[++i];
        if (DIR* d = opendir(a.c_str())) {
          std::vector<std::string> names;
          while (dirent* e = readdir(d))
            if (e->d_name[0] != '.') names.push_back(a + "/" + e->d_name);
          closedir(d);
          std::sort(names.begin(), names.end());
          files.insert(files.end(), names.begin(), names.end());
        } else {
          files.push_back(a);
        }
      }
    } else {
      std::fprintf(stderr, "bench_detect: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  try {
    g_cc = vision::CascadeClassifier::load(cascade);
    if (files.empty()) {
      std::string s = std::string(FACECNN_SOURCE_DIR) + "/../shared/samples/astronaut.png";
      g_images.push_back(vision::resize(vision::to_grey(vision::load_image(s)), 640, 480, vision::Interp::Area));
    }
    for (auto& f : files) g_images.push_back(vision::to_grey(vision::load_image(f)));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_detect: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "bench_detect: %zu image(s), cascade %s\n", g_images.size(), cascade.c_str());
  benchmark::RegisterBenchmark("detect/threads", BM_detect)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("detect_avx2/threads", BM_detect_avx2)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("detect_scalar/threads", BM_detect_scalar)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("pyramid_integrals", BM_pyramid_integrals)->Unit(benchmark::kMillisecond);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
