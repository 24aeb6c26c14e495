// vision/image.hpp - the 8-bit image type shared by every vision header.
// Pixels are interleaved (RGB or RGBA or grey), rows contiguous, no padding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "../cnn/checked.hpp"

namespace vision {

// Every vision error is a vision::Error whose message names the input and the problem.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Rect {
  int x = 0, y = 0, w = 0, h = 0;
  int64_t area() const { return int64_t(w) * h; }  // 64-bit: a box from a file may be huge
  bool operator==(const Rect& o) const { return x == o.x && y == o.y && w == o.w && h == o.h; }
  bool operator!=(const Rect& o) const { return !(*this == o); }
};

struct Point2f {
  float x = 0, y = 0;
};

// Intersection over union, in 64-bit arithmetic (boxes from manifests may lie anywhere in int).
inline double iou(const Rect& a, const Rect& b) {
  const int64_t ax1 = int64_t(a.x) + a.w, ay1 = int64_t(a.y) + a.h, bx1 = int64_t(b.x) + b.w, by1 = int64_t(b.y) + b.h;
  const int64_t x0 = a.x > b.x ? a.x : b.x, y0 = a.y > b.y ? a.y : b.y;
  const int64_t x1 = ax1 < bx1 ? ax1 : bx1, y1 = ay1 < by1 ? ay1 : by1;
  if (x1 <= x0 || y1 <= y0) return 0.0;
  const double inter = double(x1 - x0) * double(y1 - y0);
  return inter / (double(a.area()) + double(b.area()) - inter);
}

// Largest image the library allocates (16 GiB of pixels); decoders refuse far smaller ones first
// (LoadOptions::max_pixels).
constexpr int64_t kMaxImageBytes = int64_t(1) << 34;

// An 8-bit image with 1 (grey), 3 (RGB) or 4 (RGBA) channels.
class Image {
 public:
  Image() = default;
  Image(int width, int height, int channels, uint8_t fill = 0) { reset(width, height, channels, fill); }

  void reset(int width, int height, int channels, uint8_t fill = 0) {
    if (width < 0 || height < 0 || channels < 1 || channels > 4)
      throw Error("vision::Image: invalid size " + std::to_string(width) + "x" + std::to_string(height) + "x" +
                  std::to_string(channels));
    const int64_t bytes = cnn::checked_product<Error>(
        "vision::Image: " + std::to_string(width) + "x" + std::to_string(height) + "x" + std::to_string(channels),
        {width, height, channels}, kMaxImageBytes);
    px_.assign(size_t(bytes), fill);
    w_ = width;
    h_ = height;
    c_ = channels;
  }

  int width() const { return w_; }
  int height() const { return h_; }
  int channels() const { return c_; }
  bool empty() const { return w_ == 0 || h_ == 0; }
  size_t stride() const { return size_t(w_) * size_t(c_); }  // bytes per row
  size_t size_bytes() const { return px_.size(); }

  uint8_t* data() { return px_.data(); }
  const uint8_t* data() const { return px_.data(); }
  uint8_t* row(int y) { return px_.data() + size_t(y) * stride(); }
  const uint8_t* row(int y) const { return px_.data() + size_t(y) * stride(); }
  uint8_t& at(int x, int y, int c = 0) { return px_[(size_t(y) * w_ + x) * c_ + c]; }
  uint8_t at(int x, int y, int c = 0) const { return px_[(size_t(y) * w_ + x) * c_ + c]; }

  bool operator==(const Image& o) const { return w_ == o.w_ && h_ == o.h_ && c_ == o.c_ && px_ == o.px_; }
  bool operator!=(const Image& o) const { return !(*this == o); }

 private:
  int w_ = 0, h_ = 0, c_ = 1;
  std::vector<uint8_t> px_;
};

// Float planar (CHW) tensor for the CNN: out[c][y][x] = (px/255 - mean[c]) / std[c].
struct ImageF {
  int width = 0, height = 0, channels = 0;
  std::vector<float> data;  // CHW
};

inline ImageF to_float_chw(const Image& img, const float* mean = nullptr, const float* stdv = nullptr) {
  ImageF out;
  out.width = img.width();
  out.height = img.height();
  out.channels = img.channels();
  out.data.resize(size_t(out.width) * out.height * out.channels);
  const size_t plane = size_t(out.width) * out.height;
  for (int c = 0; c < img.channels(); ++c) {
    float m = mean ? mean[c] : 0.f, s = stdv ? stdv[c] : 1.f;
    float* dst = out.data.data() + plane * c;
    for (int y = 0; y < img.height(); ++y) {
      const uint8_t* r = img.row(y);
      for (int x = 0; x < img.width(); ++x) dst[size_t(y) * out.width + x] = (r[x * img.channels() + c] / 255.f - m) / s;
    }
  }
  return out;
}

// Grey conversion with OpenCV's fixed-point BT.601 weights (cvtColor RGB2GRAY, 8-bit, OpenCV 4.x):
// Y = (9798 R + 19235 G + 3735 B + 16384) >> 15. RGBA drops alpha; grey is copied.
inline Image to_grey(const Image& src) {
  if (src.channels() == 1) return src;
  Image dst(src.width(), src.height(), 1);
  const int c = src.channels();
  for (int y = 0; y < src.height(); ++y) {
    const uint8_t* s = src.row(y);
    uint8_t* d = dst.row(y);
    if (c == 2) {
      for (int x = 0; x < src.width(); ++x) d[x] = s[2 * x];
      continue;
    }
    for (int x = 0; x < src.width(); ++x, s += c)
      d[x] = uint8_t((s[0] * 9798 + s[1] * 19235 + s[2] * 3735 + (1 << 14)) >> 15);
  }
  return dst;
}

// Grey or RGBA to RGB.
inline Image to_rgb(const Image& src) {
  if (src.channels() == 3) return src;
  Image dst(src.width(), src.height(), 3);
  const int c = src.channels();
  for (int y = 0; y < src.height(); ++y) {
    const uint8_t* s = src.row(y);
    uint8_t* d = dst.row(y);
    for (int x = 0; x < src.width(); ++x, s += c, d += 3) {
      if (c < 3) d[0] = d[1] = d[2] = s[0];
      else { d[0] = s[0]; d[1] = s[1]; d[2] = s[2]; }
    }
  }
  return dst;
}

}  // namespace vision
