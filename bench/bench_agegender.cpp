// bench_agegender - speed of the age/gender pipeline (Google Benchmark), with the bundled models.
//   bench_agegender [benchmark flags]
// The photo is samples/astronaut.png (one face) placed in a 640x480 frame. <model>: 0 ResNet-18,
// 1 VGG16-BN, 2 face-api; <int8>: 0 fp32, 1 the weights file's int8 form (the app's default, auto).
//   BM_classify/<model>/<int8>/threads  one aligned 200x200 crop -> resize, normalise, network (per face)
//   BM_network/<model>/<int8>/threads   the network alone on a prepared input
//   BM_align/threads               alignment of the detected face on its five landmarks
//   BM_photo/<model>/<int8>/threads/mirror  the whole photo: detect (YuNet; mirror:1 with its mirror
//                                  pass, the pipeline's default), align, classify (ms_per_photo)
//   BM_photo_12mp/<model>/<int8>/threads/mirror  a 4000x3000 group photo (a WIDER photo with 10
//                                  faces, enlarged; needs ../shared): detect, align, classify every face
//   BM_decode_12mp/png/stb         decoding that photo in memory from a JPEG (quality 90; png:0) or a
//                                  PNG (png:1) with decode_image (stb:0: libjpeg-turbo, libpng) or
//                                  with stb_image on the same bytes (stb:1, for comparison)
#include <benchmark/benchmark.h>
#include <cnn/cnn.hpp>
#include <vision/vision.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

namespace {

const char* kModels[] = {"agegender-resnet18.safetensors", "agegender-vgg16bn.safetensors",
                         "agegender-faceapi.safetensors"};
constexpr int kNumModels = int(std::size(kModels));
std::string g_weights;
vision::Image g_photo, g_grey, g_face;
std::unique_ptr<vision::FacePipeline> g_pipe[kNumModels][2];  // [model][int8]
vision::Image g_big;              // the 12-megapixel photo (empty without ../shared)
std::vector<uint8_t> g_big_jpeg, g_big_png;
vision::Face g_det;

void set_threads(benchmark::State& st, int arg) { cnn::set_num_threads(int(st.range(arg))); }

vision::FacePipeline& pipe(benchmark::State& st) { return *g_pipe[st.range(0)][st.range(1)]; }
void label(benchmark::State& st) { st.SetLabel(std::string(kModels[st.range(0)]) + (st.range(1) ? " int8" : " fp32")); }

void BM_classify(benchmark::State& st) {
  set_threads(st, 2);
  auto& clf = pipe(st).classifier();
  for (auto _ : st) benchmark::DoNotOptimize(clf.classify(g_face).p_male);
  label(st);
}

void BM_network(benchmark::State& st) {
  set_threads(st, 2);
  auto& clf = pipe(st).classifier();
  const cnn::Tensor x = clf.preprocess(g_face);
  for (auto _ : st) benchmark::DoNotOptimize(clf.classify_input(x).p_male);
  label(st);
}

void BM_align(benchmark::State& st) {
  set_threads(st, 0);
  for (auto _ : st) benchmark::DoNotOptimize(g_pipe[0][0]->analyse_face(g_photo, g_grey, g_det).aligned.data());
}

// The pipeline of the benchmark's model and precision, its detector's mirror pass as asked (arg 3).
vision::FacePipeline& photo_pipe(benchmark::State& st) {
  vision::FacePipeline& p = pipe(st);
  p.options().detect.mirror = st.range(3) != 0;
  return p;
}

void BM_photo(benchmark::State& st) {
  set_threads(st, 2);
  vision::FacePipeline& p = photo_pipe(st);
  std::size_t faces = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : st) faces += p.analyse(g_photo).size();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  st.counters["ms_per_photo"] = ms / double(st.iterations());
  st.counters["faces"] = double(faces) / double(st.iterations());
  label(st);
}

void BM_photo_12mp(benchmark::State& st) {
  if (g_big.empty()) return st.SkipWithError("../shared/data/wider-dev is missing");
  set_threads(st, 2);
  vision::FacePipeline& p = photo_pipe(st);
  std::size_t faces = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : st) faces += p.analyse(g_big).size();
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  st.counters["ms_per_photo"] = ms / double(st.iterations());
  st.counters["faces"] = double(faces) / double(st.iterations());
  label(st);
}

void BM_decode_12mp(benchmark::State& st) {
  if (g_big.empty()) return st.SkipWithError("../shared/data/wider-dev is missing");
  const std::vector<uint8_t>& bytes = st.range(0) ? g_big_png : g_big_jpeg;
  for (auto _ : st) {
    if (st.range(1) == 0) {
      benchmark::DoNotOptimize(vision::decode_image(bytes.data(), bytes.size(), "12mp").data());
    } else {
      int w = 0, h = 0, c = 0;
      unsigned char* px = stbi_load_from_memory(bytes.data(), int(bytes.size()), &w, &h, &c, 3);
      if (!px) return st.SkipWithError("stb_image could not decode the photo");
      benchmark::DoNotOptimize(px);
      stbi_image_free(px);
    }
  }
}

}  // namespace

BENCHMARK(BM_classify)->ArgsProduct({{0, 1, 2}, {0, 1}, {1, 2}})->ArgNames({"model", "int8", "threads"})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_network)->ArgsProduct({{0, 1, 2}, {0, 1}, {1}})->ArgNames({"model", "int8", "threads"})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_align)->Arg(1)->ArgName("threads")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_photo)->ArgsProduct({{0, 1, 2}, {0, 1}, {1, 2}, {0, 1}})->ArgNames({"model", "int8", "threads", "mirror"})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_photo_12mp)->ArgsProduct({{0, 2}, {0, 1}, {1, 2}, {0, 1}})->ArgNames({"model", "int8", "threads", "mirror"})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_decode_12mp)->ArgsProduct({{0, 1}, {0, 1}})->ArgNames({"png", "stb"})->Unit(benchmark::kMillisecond);

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const std::string root = FACECNN_SOURCE_DIR;
  try {
    const vision::Image astronaut = vision::to_rgb(vision::load_image(root + "/samples/astronaut.png"));
    g_photo = vision::Image(640, 480, 3);
    std::fill(g_photo.data(), g_photo.data() + g_photo.size_bytes(), uint8_t(128));
    for (int y = 0; y < 480; ++y)  // the top 480 rows of the portrait, centred
      std::copy(astronaut.row(y), astronaut.row(y) + 512 * 3, g_photo.row(y) + 64 * 3);
    g_grey = vision::to_grey(g_photo);
    for (int m = 0; m < kNumModels; ++m)
      for (int q = 0; q < 2; ++q) {
        vision::AgeGenderClassifier clf = vision::AgeGenderClassifier::load(root + "/weights/" + kModels[m]);
        if (q) clf.use_int8();
        g_pipe[m][q] = std::make_unique<vision::FacePipeline>(
            std::make_unique<vision::YuNetDetector>(vision::YuNetDetector::load(root + "/weights/yunet.safetensors")),
            vision::CascadeClassifier::load(root + "/weights/haarcascade_eye.xml"), std::move(clf));
      }
    const auto faces = g_pipe[0][0]->analyse(g_photo);
    if (faces.size() != 1) {
      std::fprintf(stderr, "bench_agegender: expected one face in the test photo, found %zu\n", faces.size());
      return 1;
    }
    g_face = faces[0].aligned;
    const std::string group = root + "/../shared/data/wider-dev/images/12--Group/12_Group_Group_12_Group_Group_12_578.jpg";
    if (std::FILE* f = std::fopen(group.c_str(), "rb")) {  // enlarged to 4000 wide, centred in 4000x3000
      std::fclose(f);
      const vision::Image src = vision::to_rgb(vision::load_image(group));
      const int h = int(std::lround(4000.0 * src.height() / src.width()));
      const vision::Image wide = vision::resize(src, 4000, h, vision::Interp::Linear);
      g_big = vision::Image(4000, 3000, 3, 128);
      const int top = (3000 - std::min(h, 3000)) / 2, skip = (h - std::min(h, 3000)) / 2;
      for (int y = 0; y < std::min(h, 3000); ++y) std::copy(wide.row(y + skip), wide.row(y + skip) + 4000 * 3, g_big.row(y + top));
      g_big_jpeg = vision::encode_jpeg(g_big, 90);
      g_big_png = vision::encode_png(g_big);
    }
    g_det = faces[0].face;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_agegender: %s\n", e.what());
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
