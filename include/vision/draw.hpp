// vision/draw.hpp - rectangles, lines, dots and text labels (built-in 5x7 bitmap font) for
// annotated output. Everything clips at the image border.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "image.hpp"

namespace vision {

struct Color {
  uint8_t r = 0, g = 255, b = 0;
};

inline void put_pixel(Image& img, int x, int y, Color c) {
  if (x < 0 || y < 0 || x >= img.width() || y >= img.height()) return;
  uint8_t* p = img.row(y) + size_t(x) * img.channels();
  if (img.channels() == 1) { p[0] = uint8_t((c.r * 9798 + c.g * 19235 + c.b * 3735 + 16384) >> 15); return; }
  p[0] = c.r; p[1] = c.g; p[2] = c.b;
}

inline void fill_rect(Image& img, const Rect& r, Color c) {
  for (int y = r.y; y < r.y + r.h; ++y)
    for (int x = r.x; x < r.x + r.w; ++x) put_pixel(img, x, y, c);
}

inline void draw_rect(Image& img, const Rect& r, Color c, int thickness = 2) {
  for (int t = 0; t < thickness; ++t) {
    for (int x = r.x - t; x < r.x + r.w + t; ++x) { put_pixel(img, x, r.y - t, c); put_pixel(img, x, r.y + r.h - 1 + t, c); }
    for (int y = r.y - t; y < r.y + r.h + t; ++y) { put_pixel(img, r.x - t, y, c); put_pixel(img, r.x + r.w - 1 + t, y, c); }
  }
}

inline void draw_line(Image& img, int x0, int y0, int x1, int y1, Color c) {
  int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1, dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1, err = dx + dy;
  for (int guard = 0; guard < 1 << 20; ++guard) {
    put_pixel(img, x0, y0, c);
    if (x0 == x1 && y0 == y1) break;
    int e2 = 2 * err;
    if (e2 >= dy) { err += dy; x0 += sx; }
    if (e2 <= dx) { err += dx; y0 += sy; }
  }
}

inline void draw_circle(Image& img, int cx, int cy, int radius, Color c) {
  const int n = 8 * radius + 8;
  for (int i = 0; i < n; ++i) {
    double a = 6.283185307179586 * i / n;
    put_pixel(img, cx + int(std::lround(radius * std::cos(a))), cy + int(std::lround(radius * std::sin(a))), c);
  }
}

namespace detail {
// 5x7 glyphs, 5 column bytes each (bit 0 = top row), for ' ' .. 'Z' (lowercase maps to uppercase).
inline const uint8_t* glyph(char ch) {
  static const uint8_t font[][5] = {
      {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5F, 0x00, 0x00}, {0x00, 0x07, 0x00, 0x07, 0x00},  // sp ! "
      {0x14, 0x7F, 0x14, 0x7F, 0x14}, {0x24, 0x2A, 0x7F, 0x2A, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62},  // # $ %
      {0x36, 0x49, 0x55, 0x22, 0x50}, {0x00, 0x05, 0x03, 0x00, 0x00}, {0x00, 0x1C, 0x22, 0x41, 0x00},  // & ' (
      {0x00, 0x41, 0x22, 0x1C, 0x00}, {0x14, 0x08, 0x3E, 0x08, 0x14}, {0x08, 0x08, 0x3E, 0x08, 0x08},  // ) * +
      {0x00, 0x50, 0x30, 0x00, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08}, {0x00, 0x60, 0x60, 0x00, 0x00},  // , - .
      {0x20, 0x10, 0x08, 0x04, 0x02}, {0x3E, 0x51, 0x49, 0x45, 0x3E}, {0x00, 0x42, 0x7F, 0x40, 0x00},  // / 0 1
      {0x42, 0x61, 0x51, 0x49, 0x46}, {0x21, 0x41, 0x45, 0x4B, 0x31}, {0x18, 0x14, 0x12, 0x7F, 0x10},  // 2 3 4
      {0x27, 0x45, 0x45, 0x45, 0x39}, {0x3C, 0x4A, 0x49, 0x49, 0x30}, {0x01, 0x71, 0x09, 0x05, 0x03},  // 5 6 7
      {0x36, 0x49, 0x49, 0x49, 0x36}, {0x06, 0x49, 0x49, 0x29, 0x1E}, {0x00, 0x36, 0x36, 0x00, 0x00},  // 8 9 :
      {0x00, 0x56, 0x36, 0x00, 0x00}, {0x08, 0x14, 0x22, 0x41, 0x00}, {0x14, 0x14, 0x14, 0x14, 0x14},  // ; < =
      {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x51, 0x09, 0x06}, {0x32, 0x49, 0x79, 0x41, 0x3E},  // > ? @
      {0x7E, 0x11, 0x11, 0x11, 0x7E}, {0x7F, 0x49, 0x49, 0x49, 0x36}, {0x3E, 0x41, 0x41, 0x41, 0x22},  // A B C
      {0x7F, 0x41, 0x41, 0x22, 0x1C}, {0x7F, 0x49, 0x49, 0x49, 0x41}, {0x7F, 0x09, 0x09, 0x09, 0x01},  // D E F
      {0x3E, 0x41, 0x49, 0x49, 0x7A}, {0x7F, 0x08, 0x08, 0x08, 0x7F}, {0x00, 0x41, 0x7F, 0x41, 0x00},  // G H I
      {0x20, 0x40, 0x41, 0x3F, 0x01}, {0x7F, 0x08, 0x14, 0x22, 0x41}, {0x7F, 0x40, 0x40, 0x40, 0x40},  // J K L
      {0x7F, 0x02, 0x0C, 0x02, 0x7F}, {0x7F, 0x04, 0x08, 0x10, 0x7F}, {0x3E, 0x41, 0x41, 0x41, 0x3E},  // M N O
      {0x7F, 0x09, 0x09, 0x09, 0x06}, {0x3E, 0x41, 0x51, 0x21, 0x5E}, {0x7F, 0x09, 0x19, 0x29, 0x46},  // P Q R
      {0x46, 0x49, 0x49, 0x49, 0x31}, {0x01, 0x01, 0x7F, 0x01, 0x01}, {0x3F, 0x40, 0x40, 0x40, 0x3F},  // S T U
      {0x1F, 0x20, 0x40, 0x20, 0x1F}, {0x3F, 0x40, 0x38, 0x40, 0x3F}, {0x63, 0x14, 0x08, 0x14, 0x63},  // V W X
      {0x07, 0x08, 0x70, 0x08, 0x07}, {0x61, 0x51, 0x49, 0x45, 0x43},                                   // Y Z
  };
  if (ch >= 'a' && ch <= 'z') ch = char(ch - 'a' + 'A');
  if (ch == '_') ch = '-';
  if (ch < ' ' || ch > 'Z') ch = '?';
  return font[ch - ' '];
}
}  // namespace detail

// Draw `text` with its top-left corner at (x, y); `scale` multiplies the 5x7 glyph size.
// Returns the width drawn in pixels. With `background`, a filled box is drawn behind the text.
inline int draw_text(Image& img, int x, int y, const std::string& text, Color c, int scale = 1,
                     const Color* background = nullptr) {
  if (scale < 1) scale = 1;
  const int adv = 6 * scale;
  if (background) fill_rect(img, Rect{x - scale, y - scale, adv * int(text.size()) + scale, 9 * scale}, *background);
  for (size_t i = 0; i < text.size(); ++i) {
    const uint8_t* g = detail::glyph(text[i]);
    for (int col = 0; col < 5; ++col)
      for (int row = 0; row < 7; ++row)
        if (g[col] >> row & 1)
          for (int sy = 0; sy < scale; ++sy)
            for (int sx = 0; sx < scale; ++sx) put_pixel(img, x + int(i) * adv + col * scale + sx, y + row * scale + sy, c);
  }
  return adv * int(text.size());
}

// A box with a label above it (inside the image when the box touches the top).
inline void draw_labeled_box(Image& img, const Rect& r, const std::string& label, Color c) {
  const int scale = std::max(1, std::min(img.width(), img.height()) / 400);
  draw_rect(img, r, c, scale + 1);
  if (label.empty()) return;
  int ty = r.y - 10 * scale;
  if (ty < 0) ty = r.y + 2 * scale;
  Color bg{0, 0, 0};
  draw_text(img, r.x, ty, label, c, scale, &bg);
}

}  // namespace vision
