// vision/integral.hpp - integral images as OpenCV's cv::integral defines them: (W+1)x(H+1) tables
// whose first row and column are 0. Values are kept modulo 2^32 (uint32), exactly as OpenCV's
// 32-bit tables wrap: a difference of four corners is exact whenever the true box sum fits.
//   sum(X,Y)    = sum of I(x,y) for x < X, y < Y
//   sqsum(X,Y)  = sum of I(x,y)^2 over the same box
//   tilted(X,Y) = sum of I(x,y) for y < Y and |x - X + 1| <= Y - y - 1  (45-degree triangle)
#pragma once
#include <cstdint>
#include <vector>

namespace vision {

// Upright sum and (optionally) squared sum. Output stride is w+1 elements.
inline void integral_sums(const uint8_t* img, int w, int h, size_t istride, uint32_t* sum, uint32_t* sqsum) {
  const size_t st = size_t(w) + 1;
  for (int x = 0; x <= w; ++x) sum[x] = 0;
  if (sqsum)
    for (int x = 0; x <= w; ++x) sqsum[x] = 0;
  for (int y = 0; y < h; ++y) {
    const uint8_t* r = img + size_t(y) * istride;
    uint32_t* s = sum + (y + 1) * st;
    const uint32_t* sp = s - st;
    s[0] = 0;
    uint32_t acc = 0;
    if (sqsum) {
      uint32_t* q = sqsum + (y + 1) * st;
      const uint32_t* qp = q - st;
      q[0] = 0;
      uint32_t acc2 = 0;
      for (int x = 0; x < w; ++x) {
        uint32_t v = r[x];
        acc += v;
        acc2 += v * v;
        s[x + 1] = sp[x + 1] + acc;
        q[x + 1] = qp[x + 1] + acc2;
      }
    } else {
      for (int x = 0; x < w; ++x) {
        acc += r[x];
        s[x + 1] = sp[x + 1] + acc;
      }
    }
  }
}

// Tilted (rotated 45 degrees) integral: T = S(Y) - L - R where S(Y) is the sum of rows < Y,
// L the part left of the triangle (a running sum along the up-left diagonal) and R the part right
// of it (along the up-right diagonal). O(W*H), two row buffers.
inline void integral_tilted(const uint8_t* img, int w, int h, size_t istride, uint32_t* tilted) {
  const size_t st = size_t(w) + 1;
  std::vector<uint32_t> pre(st), Lp(st, 0), Lc(st), Rp(st + 1, 0), Rc(st + 1);
  for (int x = 0; x <= w; ++x) tilted[x] = 0;
  uint32_t S = 0;
  for (int Y = 1; Y <= h; ++Y) {
    const uint8_t* r = img + size_t(Y - 1) * istride;
    pre[0] = 0;
    for (int x = 0; x < w; ++x) pre[x + 1] = pre[x] + r[x];  // R(Y-1, k) = pre[k]
    const uint32_t total = pre[w];
    S += total;
    // L(X,Y) = L(X-1,Y-1) + pre[clamp(X-1)],  L(0,Y) = 0
    Lc[0] = 0;
    for (int X = 1; X <= w; ++X) Lc[X] = Lp[X - 1] + pre[X - 1];
    // R(X,Y) = R(X+1,Y-1) + total - pre[clamp(X)],  R(W+1, .) = 0
    for (int X = 0; X <= w; ++X) Rc[X] = Rp[X + 1] + total - pre[X];
    Rc[w + 1] = 0;
    uint32_t* t = tilted + size_t(Y) * st;
    for (int X = 0; X <= w; ++X) t[X] = S - Lc[X] - Rc[X];
    Lp.swap(Lc);
    Rp.swap(Rc);
  }
}

// Plain references, straight from the definitions (O(W*H*(W+H))), for tests only.
inline std::vector<uint64_t> integral_reference(const uint8_t* img, int w, int h, int kind /*0 sum,1 sq,2 tilted*/) {
  std::vector<uint64_t> out(size_t(w + 1) * (h + 1), 0);
  for (int Y = 0; Y <= h; ++Y)
    for (int X = 0; X <= w; ++X) {
      uint64_t s = 0;
      for (int y = 0; y < Y; ++y)
        for (int x = 0; x < w; ++x) {
          uint64_t v = img[size_t(y) * w + x];
          if (kind == 2) {
            int d = x - X + 1;
            if (d < 0) d = -d;
            if (d <= Y - y - 1) s += v;
          } else if (x < X) {
            s += kind == 1 ? v * v : v;
          }
        }
      out[size_t(Y) * (w + 1) + X] = s;
    }
  return out;
}

}  // namespace vision
