// vision/transform.hpp - resize (bilinear, area), crop, pad, flip, affine warp.
//
// resize_linear() reproduces OpenCV's cv::resize(INTER_LINEAR_EXACT) bit for bit (the resize the
// cascade detector's pyramid uses): 8.8 fixed-point weights rounded from double positions
// src = (dst + 0.5) * (1 / (dst_size / src_size)) - 0.5, a horizontal pass kept in 8.8 fixed point,
// then a vertical pass rounded from 16 fractional bits; outside the source the edge row/column is
// repeated. OpenCV's INTER_LINEAR differs from INTER_LINEAR_EXACT by at most 1 grey level.
// resize_area() is the box-filter average of cv::resize(INTER_AREA) (within 1 grey level of it).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "image.hpp"

namespace vision {

namespace detail {
// Keeps the compiler from fusing a*b+c into one FMA where OpenCV rounds twice.
inline double fp_barrier(double x) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__ volatile("" : "+x"(x));
  return x;
#else
  volatile double v = x;
  return v;
#endif
}

struct LinearTab {
  std::vector<int> ofs;        // source index (first of the pair)
  std::vector<uint16_t> c0, c1;  // 8.8 weights
  int lo = 0, hi = 0;          // [lo, hi): interpolated; below lo: first sample; from hi: last sample
};

// OpenCV's interpolationLinear::getCoeffs for one axis.
inline LinearTab linear_tab(int src, int dst) {
  LinearTab t;
  t.ofs.assign(dst, 0);
  t.c0.assign(dst, 256);
  t.c1.assign(dst, 0);
  t.lo = 0;
  t.hi = dst;
  const double inv = double(dst) / double(src);
  const double scale = 1.0 / inv;
  for (int v = 0; v < dst; ++v) {
    double f = fp_barrier(scale * (double(v) + 0.5)) - 0.5;
    int iv = int(std::floor(f));
    if (iv >= 0 && src > 1) {
      if (iv < src - 1) {
        t.ofs[v] = iv;
        double frac = f - double(iv);
        int c1 = int(std::nearbyint(frac * 256.0));
        t.c1[v] = uint16_t(c1);
        t.c0[v] = uint16_t(256 - c1);
      } else {
        t.ofs[v] = src - 1;
        t.hi = std::min(t.hi, v);
      }
    } else {
      t.lo = std::max(t.lo, v + 1);
    }
  }
  if (t.hi < t.lo) t.hi = t.lo;
  return t;
}

// One source row to 8.8 fixed point at every destination column.
inline void hline_linear(const uint8_t* src, int cn, int sw, const LinearTab& tx, uint16_t* out, int dw) {
  for (int k = 0; k < cn; ++k) {
    const uint16_t first = uint16_t(src[k] << 8);
    int x = 0;
    for (; x < tx.lo && x < dw; ++x) out[x * cn + k] = first;
    if (cn == 1) {
      for (; x < tx.hi; ++x) {
        const uint8_t* p = src + tx.ofs[x];
        out[x] = uint16_t(tx.c0[x] * p[0] + tx.c1[x] * p[1]);
      }
    } else {
      for (; x < tx.hi; ++x) {
        const uint8_t* p = src + tx.ofs[x] * cn + k;
        out[x * cn + k] = uint16_t(tx.c0[x] * p[0] + tx.c1[x] * p[cn]);
      }
    }
    const uint16_t last = uint16_t(src[(dw > 0 ? tx.ofs[dw - 1] : sw - 1) * cn + k] << 8);
    for (; x < dw; ++x) out[x * cn + k] = last;
  }
}
}  // namespace detail

// Bilinear resize, bit-exact with OpenCV's INTER_LINEAR_EXACT for 8-bit images.
inline void resize_linear(const uint8_t* src, int sw, int sh, size_t sstride, uint8_t* dst, int dw, int dh,
                          size_t dstride, int cn) {
  if (sw == dw && sh == dh) {
    for (int y = 0; y < sh; ++y) std::memcpy(dst + y * dstride, src + y * sstride, size_t(sw) * cn);
    return;
  }
  const detail::LinearTab tx = detail::linear_tab(sw, dw), ty = detail::linear_tab(sh, dh);
  const size_t n = size_t(dw) * cn;
  std::vector<uint16_t> buf(3 * n);
  uint16_t* rows[2] = {buf.data(), buf.data() + n};
  uint16_t* edge = buf.data() + 2 * n;
  int have[2] = {-1, -1};
  auto get = [&](int sy, int slot) -> const uint16_t* {
    for (int s = 0; s < 2; ++s)
      if (have[s] == sy) return rows[s];
    detail::hline_linear(src + size_t(sy) * sstride, cn, sw, tx, rows[slot], dw);
    have[slot] = sy;
    return rows[slot];
  };
  int dy = 0;
  if (ty.lo > 0) {
    detail::hline_linear(src, cn, sw, tx, edge, dw);
    for (; dy < ty.lo && dy < dh; ++dy)
      for (size_t i = 0; i < n; ++i) dst[dy * dstride + i] = uint8_t((edge[i] + 128) >> 8);
  }
  for (; dy < ty.hi; ++dy) {
    int sy = ty.ofs[dy];
    // keep the two rows in the slots so that a row shared by consecutive outputs is reused
    const uint16_t* r0;
    const uint16_t* r1;
    if (have[0] == sy) { r0 = rows[0]; r1 = get(sy + 1, 1); }
    else if (have[1] == sy) { r0 = rows[1]; r1 = get(sy + 1, 0); }
    else { r0 = get(sy, 0); r1 = get(sy + 1, 1); }
    const uint32_t b0 = ty.c0[dy], b1 = ty.c1[dy];
    uint8_t* d = dst + dy * dstride;
    for (size_t i = 0; i < n; ++i) d[i] = uint8_t((r0[i] * b0 + r1[i] * b1 + 32768u) >> 16);
  }
  if (dy < dh) {
    detail::hline_linear(src + size_t(sh - 1) * sstride, cn, sw, tx, edge, dw);
    for (; dy < dh; ++dy)
      for (size_t i = 0; i < n; ++i) dst[dy * dstride + i] = uint8_t((edge[i] + 128) >> 8);
  }
}

// Plain reference of resize_linear: one output pixel at a time, no row cache.
inline Image resize_linear_reference(const Image& s, int dw, int dh) {
  Image d(dw, dh, s.channels());
  if (dw == s.width() && dh == s.height()) return s;
  const detail::LinearTab tx = detail::linear_tab(s.width(), dw), ty = detail::linear_tab(s.height(), dh);
  auto hval = [&](int sy, int x, int k) -> uint32_t {
    if (x < tx.lo) return uint32_t(s.at(0, sy, k)) << 8;
    if (x >= tx.hi) return uint32_t(s.at(tx.ofs[dw - 1], sy, k)) << 8;
    return tx.c0[x] * s.at(tx.ofs[x], sy, k) + tx.c1[x] * s.at(tx.ofs[x] + 1, sy, k);
  };
  for (int y = 0; y < dh; ++y)
    for (int x = 0; x < dw; ++x)
      for (int k = 0; k < s.channels(); ++k) {
        uint32_t v;
        if (y < ty.lo) v = (hval(0, x, k) + 128) >> 8;
        else if (y >= ty.hi) v = (hval(s.height() - 1, x, k) + 128) >> 8;
        else v = (hval(ty.ofs[y], x, k) * ty.c0[y] + hval(ty.ofs[y] + 1, x, k) * ty.c1[y] + 32768u) >> 16;
        d.at(x, y, k) = uint8_t(v);
      }
  return d;
}

namespace detail {
// OpenCV's INTER_AREA when enlarging along an axis: bilinear taps placed so that each source
// pixel is replicated and only the destination pixels straddling two sources are blended.
inline Image resize_area_up(const Image& s, int dw, int dh) {
  struct Tap { int i; float f; };
  auto taps = [](int ssz, int dsz) {
    std::vector<Tap> t(dsz);
    const double scale = double(ssz) / dsz, inv = double(dsz) / ssz;
    for (int d = 0; d < dsz; ++d) {
      int sx = int(std::floor(d * scale));
      float fx = float((d + 1) - (sx + 1) * inv);
      fx = fx <= 0 ? 0.f : fx - std::floor(fx);
      if (sx < 0) { sx = 0; fx = 0; }
      if (sx >= ssz - 1) { sx = ssz - 1; fx = 0; }
      t[d] = {sx, fx};
    }
    return t;
  };
  const auto tx = taps(s.width(), dw), ty = taps(s.height(), dh);
  const int cn = s.channels();
  Image d(dw, dh, cn);
  for (int y = 0; y < dh; ++y) {
    const int y0 = ty[y].i, y1 = std::min(y0 + 1, s.height() - 1);
    const float b = ty[y].f;
    for (int x = 0; x < dw; ++x) {
      const int x0 = tx[x].i, x1 = std::min(x0 + 1, s.width() - 1);
      const float a = tx[x].f;
      for (int k = 0; k < cn; ++k) {
        float v = (1 - b) * ((1 - a) * s.at(x0, y0, k) + a * s.at(x1, y0, k)) +
                  b * ((1 - a) * s.at(x0, y1, k) + a * s.at(x1, y1, k));
        d.at(x, y, k) = uint8_t(std::min(255.f, std::max(0.f, std::nearbyint(v))));
      }
    }
  }
  return d;
}
}  // namespace detail

// Box-filter (area) resize: each output pixel is the coverage-weighted mean of the source pixels
// under it, rounded to nearest. When enlarging it uses OpenCV's replicate-and-blend taps.
inline Image resize_area(const Image& s, int dw, int dh) {
  if (dw <= 0 || dh <= 0 || s.empty()) throw Error("resize: empty size");
  if (dw == s.width() && dh == s.height()) return s;
  Image d(dw, dh, s.channels());
  if (dw > s.width() || dh > s.height()) return detail::resize_area_up(s, dw, dh);
  const double sx = double(s.width()) / dw, sy = double(s.height()) / dh;
  const int cn = s.channels();
  struct Tap { int i; double w; };
  auto taps = [](int dsz, double sc, int ssz) {
    std::vector<std::vector<Tap>> t(dsz);
    for (int o = 0; o < dsz; ++o) {
      double a = o * sc, b = std::min(a + sc, double(ssz));
      for (int i = int(std::floor(a)); i < b && i < ssz; ++i) {
        double w = std::min(b, i + 1.0) - std::max(a, double(i));
        if (w > 1e-9) t[o].push_back({i, w / sc});
      }
    }
    return t;
  };
  auto tx = taps(dw, sx, s.width()), ty = taps(dh, sy, s.height());
  std::vector<double> acc(size_t(dw) * cn);
  for (int y = 0; y < dh; ++y) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (const Tap& r : ty[y]) {
      const uint8_t* row = s.row(r.i);
      for (int x = 0; x < dw; ++x)
        for (const Tap& c : tx[x])
          for (int k = 0; k < cn; ++k) acc[size_t(x) * cn + k] += r.w * c.w * row[c.i * cn + k];
    }
    uint8_t* out = d.row(y);
    for (size_t i = 0; i < acc.size(); ++i) out[i] = uint8_t(std::min(255.0, std::max(0.0, std::nearbyint(acc[i]))));
  }
  return d;
}

namespace detail {
// One row of halve() for CN channels known at compile time (the divisions and the channel loop
// then vanish: 12 megapixels of RGB in 6.7 ms instead of 17 with a run-time channel count, 1 thread).
template <int CN>
inline void halve_row(const uint8_t* a, const uint8_t* b, uint8_t* o, int w) {
  for (int x = 0; x < w; ++x, a += 2 * CN, b += 2 * CN, o += CN)
    for (int k = 0; k < CN; ++k) o[k] = uint8_t((a[k] + a[k + CN] + b[k] + b[k + CN] + 2) >> 2);
}
}  // namespace detail

// Half the size (rounded down), each pixel the rounded mean of a 2x2 block: a cheap first step when
// shrinking a large photo by a big factor (one area resize of a 12-megapixel photo takes 60 ms).
inline Image halve(const Image& s) {
  if (s.width() < 2 || s.height() < 2) throw Error("halve: image smaller than 2x2");
  const int w = s.width() / 2, h = s.height() / 2, cn = s.channels();
  Image d(w, h, cn);
  for (int y = 0; y < h; ++y) {
    const uint8_t *a = s.row(2 * y), *b = s.row(2 * y + 1);
    uint8_t* o = d.row(y);
    switch (cn) {
      case 1: detail::halve_row<1>(a, b, o, w); break;
      case 3: detail::halve_row<3>(a, b, o, w); break;
      case 4: detail::halve_row<4>(a, b, o, w); break;
      default:
        for (int x = 0; x < w * cn; ++x) {
          const int i = (x / cn) * 2 * cn + x % cn;
          o[x] = uint8_t((a[i] + a[i + cn] + b[i] + b[i + cn] + 2) >> 2);
        }
    }
  }
  return d;
}

enum class Interp { Linear, Area };

inline Image resize(const Image& s, int dw, int dh, Interp interp = Interp::Linear) {
  if (s.empty()) throw Error("resize: empty source image");
  if (dw <= 0 || dh <= 0) throw Error("resize: invalid target size " + std::to_string(dw) + "x" + std::to_string(dh));
  if (interp == Interp::Area) return resize_area(s, dw, dh);
  Image d(dw, dh, s.channels());
  resize_linear(s.data(), s.width(), s.height(), s.stride(), d.data(), dw, dh, d.stride(), s.channels());
  return d;
}

// Crop a rectangle that must lie inside the image.
inline Image crop(const Image& s, const Rect& r) {
  if (r.w <= 0 || r.h <= 0 || r.x < 0 || r.y < 0 || r.x + r.w > s.width() || r.y + r.h > s.height())
    throw Error("crop: rectangle " + std::to_string(r.x) + "," + std::to_string(r.y) + " " + std::to_string(r.w) + "x" +
                std::to_string(r.h) + " is outside the " + std::to_string(s.width()) + "x" +
                std::to_string(s.height()) + " image");
  Image d(r.w, r.h, s.channels());
  for (int y = 0; y < r.h; ++y)
    std::memcpy(d.row(y), s.row(r.y + y) + size_t(r.x) * s.channels(), size_t(r.w) * s.channels());
  return d;
}

// Crop any rectangle; the parts outside the image are filled with `fill`.
inline Image crop_padded(const Image& s, const Rect& r, uint8_t fill = 0) {
  if (r.w <= 0 || r.h <= 0) throw Error("crop_padded: empty rectangle");
  Image d(r.w, r.h, s.channels(), fill);
  const int cn = s.channels();
  int x0 = std::max(r.x, 0), x1 = std::min(r.x + r.w, s.width());
  for (int y = 0; y < r.h; ++y) {
    int sy = r.y + y;
    if (sy < 0 || sy >= s.height() || x1 <= x0) continue;
    std::memcpy(d.row(y) + size_t(x0 - r.x) * cn, s.row(sy) + size_t(x0) * cn, size_t(x1 - x0) * cn);
  }
  return d;
}

inline Image pad(const Image& s, int left, int top, int right, int bottom, uint8_t fill = 0) {
  if (left < 0 || top < 0 || right < 0 || bottom < 0) throw Error("pad: negative border");
  return crop_padded(s, Rect{-left, -top, s.width() + left + right, s.height() + top + bottom}, fill);
}

inline Image flip_horizontal(const Image& s) {
  Image d(s.width(), s.height(), s.channels());
  const int cn = s.channels();
  for (int y = 0; y < s.height(); ++y)
    for (int x = 0; x < s.width(); ++x)
      for (int k = 0; k < cn; ++k) d.at(s.width() - 1 - x, y, k) = s.at(x, y, k);
  return d;
}

// 2x3 affine matrix mapping source to destination coordinates: [a b c; d e f].
struct Affine {
  double m[6] = {1, 0, 0, 0, 1, 0};
  Affine inverse() const {
    double det = m[0] * m[4] - m[1] * m[3];
    if (std::fabs(det) < 1e-12) throw Error("Affine::inverse: singular matrix");
    Affine r;
    r.m[0] = m[4] / det;
    r.m[1] = -m[1] / det;
    r.m[3] = -m[3] / det;
    r.m[4] = m[0] / det;
    r.m[2] = -(r.m[0] * m[2] + r.m[1] * m[5]);
    r.m[5] = -(r.m[3] * m[2] + r.m[4] * m[5]);
    return r;
  }
  void apply(double x, double y, double& ox, double& oy) const {
    ox = m[0] * x + m[1] * y + m[2];
    oy = m[3] * x + m[4] * y + m[5];
  }
};

// Rotation by `angle_deg` (counter-clockwise on screen, as cv::getRotationMatrix2D) and uniform
// `scale` about `(cx, cy)`.
inline Affine rotation_matrix(double cx, double cy, double angle_deg, double scale) {
  const double a = angle_deg * 3.14159265358979323846 / 180.0;
  const double al = scale * std::cos(a), be = scale * std::sin(a);
  Affine t;
  t.m[0] = al; t.m[1] = be; t.m[2] = (1 - al) * cx - be * cy;
  t.m[3] = -be; t.m[4] = al; t.m[5] = be * cx + (1 - al) * cy;
  return t;
}

// Warp with bilinear sampling; destination pixels whose source falls outside get `fill`
// (or the nearest edge pixel when `replicate`).
inline Image warp_affine(const Image& s, const Affine& src_to_dst, int dw, int dh, uint8_t fill = 0,
                         bool replicate = false) {
  if (s.empty()) throw Error("warp_affine: empty source image");
  if (dw <= 0 || dh <= 0) throw Error("warp_affine: invalid target size");
  const Affine inv = src_to_dst.inverse();
  const int cn = s.channels(), W = s.width(), H = s.height();
  Image d(dw, dh, cn, fill);
  for (int y = 0; y < dh; ++y) {
    uint8_t* out = d.row(y);
    for (int x = 0; x < dw; ++x) {
      double fx, fy;
      inv.apply(x, y, fx, fy);
      if (!replicate && (fx < -1 || fy < -1 || fx > W || fy > H)) continue;
      int x0 = int(std::floor(fx)), y0 = int(std::floor(fy));
      double ax = fx - x0, ay = fy - y0;
      for (int k = 0; k < cn; ++k) {
        auto px = [&](int xx, int yy) -> double {
          if (xx < 0 || yy < 0 || xx >= W || yy >= H) {
            if (!replicate) return fill;
            xx = std::min(std::max(xx, 0), W - 1);
            yy = std::min(std::max(yy, 0), H - 1);
          }
          return s.at(xx, yy, k);
        };
        double v = (1 - ay) * ((1 - ax) * px(x0, y0) + ax * px(x0 + 1, y0)) +
                   ay * ((1 - ax) * px(x0, y0 + 1) + ax * px(x0 + 1, y0 + 1));
        out[x * cn + k] = uint8_t(std::min(255.0, std::max(0.0, std::nearbyint(v))));
      }
    }
  }
  return d;
}

}  // namespace vision
