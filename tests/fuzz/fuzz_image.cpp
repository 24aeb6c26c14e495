// libFuzzer target: image decoding (vision::decode_image: format sniffing and refusal, the pixel
// limit and the memory budget, libjpeg-turbo / libpng / stb behind our error handling, the scan
// limit, EXIF orientation), then grey conversion.
#include <vision/image_io.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vision::LoadOptions opt;
  opt.max_pixels = 1 << 22;             // 4 MP: the limit path is exercised, and memory stays small
  opt.memory_budget = size_t(64) << 20;  // the budget path too (a progressive 4 MP needs 36 MB)
  try {
    const vision::Image img = vision::decode_image(data, size, "fuzz.img", opt);
    if (img.empty() || size_t(img.width()) * size_t(img.height()) > opt.max_pixels) __builtin_trap();
    (void)vision::to_grey(img);
  } catch (const vision::Error&) {
  }
  return 0;
}
