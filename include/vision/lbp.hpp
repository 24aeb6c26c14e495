// vision/lbp.hpp - uniform LBP(8,1) codes and grid histograms as a face descriptor.
// Neighbours are the 8 pixels around the centre (clockwise from the top-left); bit k is set when
// neighbour k >= centre. The 58 "uniform" codes (at most 2 circular 0/1 transitions) get their
// own bin and every other code shares bin 58: 59 bins per cell, each cell L1-normalized.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "image.hpp"

namespace vision {

namespace detail {
inline const std::array<uint8_t, 256>& lbp_uniform_bins() {
  static const std::array<uint8_t, 256> t = [] {
    std::array<uint8_t, 256> m{};
    int next = 0;
    for (int c = 0; c < 256; ++c) {
      int tr = 0;
      for (int k = 0; k < 8; ++k) tr += ((c >> k) & 1) != ((c >> ((k + 1) & 7)) & 1);
      m[size_t(c)] = uint8_t(tr <= 2 ? next++ : 58);
    }
    return m;
  }();
  return t;
}
}  // namespace detail

// LBP(8,1) code image (border pixels get code 0).
inline Image lbp_codes(const Image& src) {
  const Image g = to_grey(src);
  Image out(g.width(), g.height(), 1, 0);
  static const int nb[8][2] = {{-1, -1}, {0, -1}, {1, -1}, {1, 0}, {1, 1}, {0, 1}, {-1, 1}, {-1, 0}};
  for (int y = 1; y < g.height() - 1; ++y)
    for (int x = 1; x < g.width() - 1; ++x) {
      const int c = g.at(x, y);
      int code = 0;
      for (int k = 0; k < 8; ++k) code |= (g.at(x + nb[k][0], y + nb[k][1]) >= c) << k;
      out.at(x, y) = uint8_t(code);
    }
  return out;
}

// Concatenated uniform-LBP histograms over a gx x gy grid: gx*gy*59 floats.
inline std::vector<float> lbp_histogram(const Image& src, int gx = 8, int gy = 8) {
  const Image codes = lbp_codes(src);
  const auto& bins = detail::lbp_uniform_bins();
  std::vector<float> h(size_t(gx) * gy * 59, 0.f);
  const int W = codes.width() - 2, H = codes.height() - 2;  // interior only
  if (W <= 0 || H <= 0) return h;
  for (int cy = 0; cy < gy; ++cy)
    for (int cx = 0; cx < gx; ++cx) {
      const int x0 = 1 + cx * W / gx, x1 = 1 + (cx + 1) * W / gx, y0 = 1 + cy * H / gy, y1 = 1 + (cy + 1) * H / gy;
      float* cell = &h[(size_t(cy) * gx + cx) * 59];
      int n = 0;
      for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x) { cell[bins[codes.at(x, y)]] += 1.f; ++n; }
      if (n)
        for (int b = 0; b < 59; ++b) cell[b] /= float(n);
    }
  return h;
}

// Chi-square distance between two histograms of equal length.
inline double chi_square(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    double s = double(a[i]) + b[i];
    if (s > 0) d += (double(a[i]) - b[i]) * (double(a[i]) - b[i]) / s;
  }
  return d;
}

}  // namespace vision
