// face-api's face recognition network (dlib's ResNet), converted by tools/convert_faceapi.py into a
// graph file, run by cnn::load_model alone: its descriptors equal face-api's own
// (tests/golden/faceapi/, made by tools/faceapi/golden.mjs with @vladmandic/face-api 1.7.15).
// The bundled weights/faceapi-recognition.safetensors is the converter's output (the age/gender
// model fine-tunes its later layers, so its own descriptor is no longer face-api's);
// FACECNN_FACEAPI_WEIGHTS may name another conversion (--dtype F32) or a model keeping the output.
#include "common.hpp"

#include <algorithm>

#include <cnn/cnn.hpp>

namespace {

struct Threads {  // the engine's thread count for one scope
  int saved;
  explicit Threads(int n) : saved(cnn::thread_count_setting()) { cnn::set_num_threads(n); }
  ~Threads() { cnn::set_num_threads(saved); }
};

std::string faceapi_weights() {
  const char* e = std::getenv("FACECNN_FACEAPI_WEIGHTS");
  return e && *e ? std::string(e) : vt::repo("weights/faceapi-recognition.safetensors");
}

}  // namespace

TEST_CASE("face-api's recognition network on the engine gives face-api's descriptors") {
  const std::string path = faceapi_weights();
  if (!vt::exists(path)) {
    MESSAGE("SKIPPED: " << path << " not found; make it with: cd tools/faceapi && npm install --ignore-scripts && cd ../.. && "
                           "/usr/bin/python3 tools/convert_faceapi.py --package tools/faceapi/node_modules/@vladmandic/face-api "
                           "--out weights/faceapi-recognition.safetensors");
    return;
  }
  cnn::Model m = cnn::load_model(path);
  CHECK(m.config.arch == "graph");
  const std::vector<std::string> outputs = m.graph.output_names();
  const std::size_t which = std::size_t(std::find(outputs.begin(), outputs.end(), "descriptor") - outputs.begin());
  REQUIRE(which < outputs.size());
  const auto in = m.meta_numbers("input_size");
  REQUIRE(in == std::vector<double>{3, 150, 150});
  CHECK(m.graph.output_shapes(cnn::Shape{1, 3, 150, 150})[which].numel() == 128);
  const auto mean_d = m.meta_numbers("mean"), std_d = m.meta_numbers("std");
  REQUIRE(mean_d.size() == 3);
  REQUIRE(std_d.size() == 3);
  const float mean[3] = {float(mean_d[0]), float(mean_d[1]), float(mean_d[2])};
  const float stdv[3] = {float(std_d[0]), float(std_d[1]), float(std_d[2])};
  // face-api subtracts [122.782, 117.001, 104.298] from 0..255 RGB and divides by 255
  CHECK(mean[0] * 255 == doctest::Approx(122.782).epsilon(1e-6));
  CHECK(mean[2] * 255 == doctest::Approx(104.298).epsilon(1e-6));
  // F16 weights (the committed file): measured max |diff| 2.5e-4; F32 (--dtype F32): 3e-7
  const bool f16 = m.metadata["weights_dtype"] == "F16";
  const double tol = f16 ? 5e-4 : 2e-6;

  const cnn::SafeTensors golden = cnn::SafeTensors::open(vt::repo("tests/golden/faceapi/descriptors.safetensors"));
  const std::vector<std::string> names = golden.names();
  REQUIRE(names.size() == 5);
  cnn::Tensor batch(cnn::Shape{int64_t(names.size()), 3, 150, 150});
  const int64_t plane = 3 * 150 * 150;
  for (std::size_t i = 0; i < names.size(); ++i) {
    vision::LoadOptions opt;
    opt.channels = 3;
    const vision::Image img = vision::load_image(vt::repo("tests/golden/faceapi/" + names[i] + ".png"), opt);
    REQUIRE(img.width() == 150);
    REQUIRE(img.height() == 150);
    const vision::ImageF x = vision::to_float_chw(img, mean, stdv);
    std::copy(x.data.begin(), x.data.end(), batch.data() + int64_t(i) * plane);
  }
  double worst = 0;
  for (int threads : {1, 2}) {
    Threads t(threads);
    // one face at a time, then all five in one batch
    for (std::size_t i = 0; i < names.size(); ++i) {
      cnn::Tensor one(cnn::Shape{1, 3, 150, 150});
      std::copy(batch.data() + int64_t(i) * plane, batch.data() + int64_t(i + 1) * plane, one.data());
      const cnn::Tensor d = std::move(m.graph.forward(one.view())[which]);
      std::vector<float> want;
      golden.read(names[i], want);
      REQUIRE(want.size() == 128);
      REQUIRE(d.numel() == 128);
      double diff = 0;
      for (int k = 0; k < 128; ++k) diff = std::max(diff, double(std::abs(d.data()[k] - want[std::size_t(k)])));
      worst = std::max(worst, diff);
      INFO(names[i] << " threads " << threads << ": max |ours - face-api| " << diff);
      CHECK(diff < tol);
    }
    const cnn::Tensor all = std::move(m.graph.forward(batch.view())[which]);
    REQUIRE(all.numel() == int64_t(128 * names.size()));
    for (std::size_t i = 0; i < names.size(); ++i) {
      std::vector<float> want;
      golden.read(names[i], want);
      for (int k = 0; k < 128; ++k) CHECK(std::abs(all.data()[i * 128 + k] - want[std::size_t(k)]) < tol);
    }
  }
  MESSAGE("face-api descriptors (" << (f16 ? "F16" : "F32") << " weights): max |ours - face-api| = " << worst);
}
