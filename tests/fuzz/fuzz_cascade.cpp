// libFuzzer target: OpenCV cascade XML parsing, then detect() with the parsed cascade on a small
// image on every path the CPU has: the scalar code, AVX2 (allow_avx512 = false) and AVX-512
// (CascadeClassifier::scan_scale picks the kernel by cpuid). The raw windows of every SIMD path
// must equal the scalar ones (the kernels' contract, docs/vision.md).
#include <vision/cascade.hpp>

namespace {
vision::Image test_image() {
  vision::Image img(72, 60, 1);
  uint32_t s = 12345;
  for (int y = 0; y < img.height(); ++y)
    for (int x = 0; x < img.width(); ++x) {
      s = s * 1103515245u + 12345u;
      const int v = ((x * 3 + y * 2) & 0xFF) / 2 + int((s >> 16) & 0x7F);
      img.at(x, y) = uint8_t(std::min(v, 255));
    }
  return img;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const vision::Image img = test_image();
  vision::CascadeClassifier cc;
  try {
    cc = vision::CascadeClassifier::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz.xml");
  } catch (const vision::Error&) {
    return 0;
  }
  vision::DetectParams p;
  p.threads = 1;
  p.min_neighbors = 0;
  p.scale_factor = 1.25;
  p.simd = false;
  const auto ref = cc.detect_candidates(img, p);
  p.simd = true;
  for (bool avx512 : {false, true}) {
    p.allow_avx512 = avx512;
    const auto got = cc.detect_candidates(img, p);
    if (got.size() != ref.size()) __builtin_trap();
    for (size_t i = 0; i < got.size(); ++i)
      if (got[i].box != ref[i].box) __builtin_trap();
  }
  p.min_neighbors = 2;
  (void)cc.detect(img, p);
  return 0;
}
