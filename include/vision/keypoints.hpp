// vision/keypoints.hpp - FAST-9 corners (non-maximum suppression, Harris ranking), ORB
// (oriented FAST in a scale pyramid + rotated BRIEF, 256 bits) and Hamming matching.
//
// Each optimized routine keeps a plain reference beside it (fast9_reference, hamming_reference),
// compared on random inputs in the tests. The BRIEF sampling pattern is this library's own
// (orb_pattern.hpp, learned by tools/orb_pattern.py as in the ORB paper), inside the radius-15
// disc so that rotated pairs stay inside the 31x31 patch.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "image.hpp"
#include "orb_pattern.hpp"
#include "transform.hpp"

namespace vision {

struct KeyPoint {
  float x = 0, y = 0;      // position in the input image
  float size = 31;         // patch diameter in the input image
  float angle = 0;         // orientation in degrees [0, 360) (ORB), -1 when not computed
  float response = 0;      // Harris response (ORB) or FAST score
  int octave = 0;          // pyramid level
};

using Descriptor = std::array<uint64_t, 4>;  // 256 bits

namespace detail {
// The 16-pixel Bresenham circle of radius 3, clockwise from the top.
inline const int (&fast_circle())[16][2] {
  static const int c[16][2] = {{0, -3}, {1, -3}, {2, -2}, {3, -1}, {3, 0}, {3, 1}, {2, 2}, {1, 3},
                               {0, 3}, {-1, 3}, {-2, 2}, {-3, 1}, {-3, 0}, {-3, -1}, {-2, -2}, {-1, -3}};
  return c;
}

// FAST score: the largest t for which the pixel is still a FAST-9 corner (0 if it is not one at
// threshold `thr`): max over 9-arcs of the arc's smallest |difference|, minus 1.
inline int fast_score(const uint8_t* p, size_t stride, int thr) {
  const auto& c = fast_circle();
  int d[16];
  const int v = p[0];
  for (int k = 0; k < 16; ++k) d[k] = int(p[c[k][1] * ptrdiff_t(stride) + c[k][0]]) - v;
  int best = 0;
  for (int s = 0; s < 16; ++s) {
    int mb = 255, md = 255;
    for (int k = 0; k < 9; ++k) {
      int x = d[(s + k) & 15];
      mb = std::min(mb, x);
      md = std::min(md, -x);
    }
    best = std::max(best, std::max(mb, md));
  }
  return best > thr ? best - 1 : 0;
}
}  // namespace detail

// FAST-9 score map (0 = not a corner), reference version: full segment test at every pixel.
inline std::vector<int> fast9_reference(const Image& g, int thr, int border = 3) {
  std::vector<int> s(size_t(g.width()) * g.height(), 0);
  border = std::max(border, 3);
  for (int y = border; y < g.height() - border; ++y)
    for (int x = border; x < g.width() - border; ++x) s[size_t(y) * g.width() + x] = detail::fast_score(g.row(y) + x, g.stride(), thr);
  return s;
}

// Same map, with the usual compass pre-test: a 9-arc covers two adjacent compass points, so a
// pixel with no such pair beyond the threshold cannot be a corner.
inline std::vector<int> fast9(const Image& g, int thr, int border = 3) {
  std::vector<int> s(size_t(g.width()) * g.height(), 0);
  border = std::max(border, 3);
  const ptrdiff_t st = ptrdiff_t(g.stride());
  for (int y = border; y < g.height() - border; ++y) {
    const uint8_t* r = g.row(y);
    for (int x = border; x < g.width() - border; ++x) {
      const uint8_t* p = r + x;
      const int v = p[0], hi = v + thr, lo = v - thr;
      const int a = p[-3 * st], b = p[3], c = p[3 * st], d = p[-3];
      const bool ab = (a > hi && b > hi) || (b > hi && c > hi) || (c > hi && d > hi) || (d > hi && a > hi);
      const bool db = (a < lo && b < lo) || (b < lo && c < lo) || (c < lo && d < lo) || (d < lo && a < lo);
      if (!ab && !db) continue;
      s[size_t(y) * g.width() + x] = detail::fast_score(p, g.stride(), thr);
    }
  }
  return s;
}

// FAST-9 corners with 3x3 non-maximum suppression (ties kept for the first in raster order).
inline std::vector<KeyPoint> fast_corners(const Image& grey, int thr = 20, bool nms = true, int border = 3) {
  if (grey.channels() != 1) return fast_corners(to_grey(grey), thr, nms, border);
  const auto s = fast9(grey, thr, border);
  const int w = grey.width(), h = grey.height();
  std::vector<KeyPoint> out;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const int v = s[size_t(y) * w + x];
      if (!v) continue;
      bool keep = true;
      if (nms)
        for (int dy = -1; dy <= 1 && keep; ++dy)
          for (int dx = -1; dx <= 1; ++dx) {
            if (!dx && !dy) continue;
            int xx = x + dx, yy = y + dy;
            if (xx < 0 || yy < 0 || xx >= w || yy >= h) continue;
            int u = s[size_t(yy) * w + xx];
            bool before = dy < 0 || (dy == 0 && dx < 0);
            if (u > v || (u == v && before)) { keep = false; break; }
          }
      if (keep) {
        KeyPoint k;
        k.x = float(x);
        k.y = float(y);
        k.size = 7;
        k.angle = -1;
        k.response = float(v);
        out.push_back(k);
      }
    }
  return out;
}

// Harris response at (x, y): Sobel gradients summed over a block x block window, k = 0.04.
inline float harris_response(const Image& g, int x, int y, int block = 7, float k = 0.04f) {
  const int r = block / 2;
  double a = 0, b = 0, c = 0;
  for (int yy = y - r; yy <= y + r; ++yy)
    for (int xx = x - r; xx <= x + r; ++xx) {
      if (xx < 1 || yy < 1 || xx >= g.width() - 1 || yy >= g.height() - 1) continue;
      auto P = [&](int dx, int dy) { return int(g.at(xx + dx, yy + dy)); };
      double ix = (P(1, -1) + 2 * P(1, 0) + P(1, 1)) - (P(-1, -1) + 2 * P(-1, 0) + P(-1, 1));
      double iy = (P(-1, 1) + 2 * P(0, 1) + P(1, 1)) - (P(-1, -1) + 2 * P(0, -1) + P(1, -1));
      a += ix * ix;
      b += iy * iy;
      c += ix * iy;
    }
  const double scale = 1.0 / (4.0 * block * 255.0);  // as OpenCV's ORB normalizes
  a *= scale * scale; b *= scale * scale; c *= scale * scale;
  return float(a * b - c * c - k * (a + b) * (a + b));
}

// Separable Gaussian blur (7 taps, sigma 2, edges replicated) as ORB applies before BRIEF.
inline Image gaussian_blur7(const Image& g) {
  float k[7];
  double sum = 0;
  for (int i = 0; i < 7; ++i) sum += k[i] = float(std::exp(-(i - 3) * (i - 3) / 8.0));
  for (float& v : k) v = float(v / sum);
  const int w = g.width(), h = g.height();
  std::vector<float> tmp(size_t(w) * h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      float s = 0;
      for (int i = -3; i <= 3; ++i) s += k[i + 3] * g.at(std::min(std::max(x + i, 0), w - 1), y);
      tmp[size_t(y) * w + x] = s;
    }
  Image out(w, h, 1);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      float s = 0;
      for (int i = -3; i <= 3; ++i) s += k[i + 3] * tmp[size_t(std::min(std::max(y + i, 0), h - 1)) * w + x];
      out.at(x, y) = uint8_t(std::min(255.f, s + 0.5f));
    }
  return out;
}

struct OrbParams {
  int nfeatures = 500;
  float scale_factor = 1.2f;
  int nlevels = 8;
  int fast_threshold = 20;
  int edge = 31;  // keypoints keep this distance from the level's border (patch radius 15 + FAST 3 + 1)
};

namespace detail {
// Intensity-centroid orientation over the radius-15 disc, degrees.
inline float ic_angle(const Image& g, int x, int y) {
  double m01 = 0, m10 = 0;
  for (int dy = -15; dy <= 15; ++dy) {
    const int dx_max = int(std::sqrt(15.0 * 15.0 - dy * dy) + 0.5);
    const uint8_t* r = g.row(y + dy);
    for (int dx = -dx_max; dx <= dx_max; ++dx) {
      m10 += dx * r[x + dx];
      m01 += dy * r[x + dx];
    }
  }
  float a = float(std::atan2(m01, m10) * 180.0 / 3.14159265358979323846);
  return a < 0 ? a + 360.f : a;
}
}  // namespace detail

// ORB keypoints and 256-bit descriptors. Keypoint coordinates are in the input image.
inline void orb_detect_and_compute(const Image& input, std::vector<KeyPoint>& kps, std::vector<Descriptor>& desc,
                                   const OrbParams& prm = {}) {
  kps.clear();
  desc.clear();
  const Image grey = to_grey(input);
  if (grey.empty()) return;
  // features per level, geometric in the scale factor (as OpenCV's ORB)
  const double f = 1.0 / prm.scale_factor;
  double ndesired = prm.nfeatures * (1 - f) / (1 - std::pow(f, prm.nlevels));
  int total = 0;
  std::vector<int> per(prm.nlevels);
  for (int l = 0; l < prm.nlevels - 1; ++l) {
    per[l] = int(std::lround(ndesired));
    total += per[l];
    ndesired *= f;
  }
  per[prm.nlevels - 1] = std::max(prm.nfeatures - total, 0);
  const auto& pat = detail::orb_pattern();
  Image lev;
  for (int l = 0; l < prm.nlevels; ++l) {
    const double sc = std::pow(double(prm.scale_factor), l);
    const int lw = int(std::lround(grey.width() / sc)), lh = int(std::lround(grey.height() / sc));
    if (lw <= 2 * prm.edge + 1 || lh <= 2 * prm.edge + 1) break;
    lev = l == 0 ? grey : resize(grey, lw, lh, Interp::Area);  // box filter: no aliasing
    auto cand = fast_corners(lev, prm.fast_threshold, true, prm.edge);
    // best 2N by FAST score, then best N by Harris
    std::stable_sort(cand.begin(), cand.end(), [](const KeyPoint& a, const KeyPoint& b) { return a.response > b.response; });
    if (cand.size() > size_t(2 * per[l])) cand.resize(size_t(2 * per[l]));
    for (auto& k : cand) k.response = harris_response(lev, int(k.x), int(k.y));
    std::stable_sort(cand.begin(), cand.end(), [](const KeyPoint& a, const KeyPoint& b) { return a.response > b.response; });
    if (cand.size() > size_t(per[l])) cand.resize(size_t(per[l]));
    const Image blur = gaussian_blur7(lev);
    for (auto& k : cand) {
      const int x = int(k.x), y = int(k.y);
      k.angle = detail::ic_angle(lev, x, y);
      const double a = k.angle * 3.14159265358979323846 / 180.0, ca = std::cos(a), sa = std::sin(a);
      Descriptor d{0, 0, 0, 0};
      for (int b = 0; b < 256; ++b) {
        const int8_t* q = pat[b];
        auto sample = [&](int px, int py) {
          int rx = int(std::lround(px * ca - py * sa)), ry = int(std::lround(px * sa + py * ca));
          return blur.at(x + rx, y + ry);
        };
        if (sample(q[0], q[1]) < sample(q[2], q[3])) d[size_t(b >> 6)] |= uint64_t(1) << (b & 63);
      }
      KeyPoint o = k;
      o.x = float(x * sc);
      o.y = float(y * sc);
      o.size = float(31 * sc);
      o.octave = l;
      kps.push_back(o);
      desc.push_back(d);
    }
  }
}

inline int hamming_reference(const Descriptor& a, const Descriptor& b) {
  int n = 0;
  for (int w = 0; w < 4; ++w)
    for (int bit = 0; bit < 64; ++bit) n += int(((a[size_t(w)] ^ b[size_t(w)]) >> bit) & 1);
  return n;
}
inline int hamming(const Descriptor& a, const Descriptor& b) {
  return __builtin_popcountll(a[0] ^ b[0]) + __builtin_popcountll(a[1] ^ b[1]) + __builtin_popcountll(a[2] ^ b[2]) +
         __builtin_popcountll(a[3] ^ b[3]);
}

struct Match {
  int query = -1, train = -1;
  int distance = 0;
};

// Brute-force Hamming matching; keeps a match when best < ratio * second best (ratio >= 1 keeps
// every nearest neighbour).
inline std::vector<Match> match_ratio(const std::vector<Descriptor>& q, const std::vector<Descriptor>& t, float ratio = 0.8f) {
  std::vector<Match> out;
  for (size_t i = 0; i < q.size(); ++i) {
    int b1 = 1 << 30, b2 = 1 << 30, bi = -1;
    for (size_t j = 0; j < t.size(); ++j) {
      int d = hamming(q[i], t[j]);
      if (d < b1) { b2 = b1; b1 = d; bi = int(j); }
      else if (d < b2) b2 = d;
    }
    if (bi >= 0 && (ratio >= 1.f || float(b1) < ratio * float(b2))) out.push_back(Match{int(i), bi, b1});
  }
  return out;
}

}  // namespace vision
