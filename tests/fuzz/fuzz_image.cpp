// libFuzzer target: image decoding (vision::decode_image: header sniffing, the pixel limit, stb,
// EXIF orientation), then grey conversion.
#include <vision/image_io.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vision::LoadOptions opt;
  opt.max_pixels = 1 << 22;  // 4 MP: the limit path is exercised, and memory stays small
  try {
    const vision::Image img = vision::decode_image(data, size, "fuzz.img", opt);
    if (img.empty() || size_t(img.width()) * size_t(img.height()) > opt.max_pixels) __builtin_trap();
    (void)vision::to_grey(img);
  } catch (const vision::Error&) {
  }
  return 0;
}
