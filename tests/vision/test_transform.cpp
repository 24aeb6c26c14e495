// Resize / crop / pad / warp: OpenCV fixtures (tools/opencv_golden.py fixtures) and fast-vs-reference.
#include <dirent.h>

#include <algorithm>
#include <cstdlib>

#include "common.hpp"

using namespace vision;

static int max_abs_diff(const Image& a, const Image& b) {
  REQUIRE(a.width() == b.width());
  REQUIRE(a.height() == b.height());
  REQUIRE(a.channels() == b.channels());
  int m = 0;
  for (size_t i = 0; i < a.size_bytes(); ++i) m = std::max(m, std::abs(int(a.data()[i]) - int(b.data()[i])));
  return m;
}

TEST_CASE("resize matches OpenCV fixtures (exact: bit-exact, linear/area: within 1)") {
  const std::string dir = vt::golden("resize");
  DIR* d = opendir(dir.c_str());
  REQUIRE(d != nullptr);
  int checked = 0;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    char mode[16] = {0};
    int cn = 0, w = 0, h = 0;
    if (std::sscanf(n.c_str(), "%15[a-z]_c%d_%dx%d.png", mode, &cn, &w, &h) != 4) continue;
    Image src = load_image(dir + "/src_c" + std::to_string(cn) + ".png");
    Image want = load_image(dir + "/" + n);
    REQUIRE(src.channels() == cn);
    std::string m = mode;
    CAPTURE(n);
    if (m == "exact") CHECK(max_abs_diff(resize(src, w, h, Interp::Linear), want) == 0);
    else if (m == "linear") CHECK(max_abs_diff(resize(src, w, h, Interp::Linear), want) <= 1);
    else if (m == "area") CHECK(max_abs_diff(resize(src, w, h, Interp::Area), want) <= 1);
    ++checked;
  }
  closedir(d);
  CHECK(checked >= 50);
}

TEST_CASE("resize_linear fast path equals its reference on random sizes") {
  std::mt19937 rng(7);
  for (int t = 0; t < 60; ++t) {
    int sw = 1 + rng() % 70, sh = 1 + rng() % 70, dw = 1 + rng() % 90, dh = 1 + rng() % 90, cn = (t % 3 == 0) ? 3 : 1;
    Image s = vt::random_image(sw, sh, cn, 100 + t);
    Image fast = resize(s, dw, dh);
    Image ref = resize_linear_reference(s, dw, dh);
    CAPTURE(sw); CAPTURE(sh); CAPTURE(dw); CAPTURE(dh);
    CHECK(fast == ref);
  }
}

TEST_CASE("crop, crop_padded, pad, flip") {
  Image s = vt::random_image(10, 8, 3, 1);
  Image c = crop(s, Rect{2, 3, 4, 5});
  CHECK(c.width() == 4);
  CHECK(c.at(0, 0, 1) == s.at(2, 3, 1));
  CHECK(c.at(3, 4, 2) == s.at(5, 7, 2));
  CHECK_THROWS_AS(crop(s, Rect{8, 0, 4, 4}), Error);
  Image p = pad(s, 1, 2, 3, 4, 9);
  CHECK(p.width() == 14);
  CHECK(p.height() == 14);
  CHECK(p.at(0, 0, 0) == 9);
  CHECK(p.at(1, 2, 0) == s.at(0, 0, 0));
  Image cp = crop_padded(s, Rect{-2, -2, 4, 4}, 7);
  CHECK(cp.at(0, 0) == 7);
  CHECK(cp.at(2, 2, 0) == s.at(0, 0, 0));
  Image f = flip_horizontal(s);
  CHECK(f.at(0, 0, 2) == s.at(9, 0, 2));
}

TEST_CASE("warp_affine: identity, translation and a quarter turn") {
  Image s = vt::random_image(9, 7, 1, 3);
  CHECK(warp_affine(s, Affine{}, 9, 7) == s);
  Affine t;
  t.m[2] = 2;
  t.m[5] = 1;  // move right 2, down 1
  Image m = warp_affine(s, t, 9, 7);
  CHECK(m.at(2, 1) == s.at(0, 0));
  CHECK(m.at(8, 6) == s.at(6, 5));
  CHECK(m.at(0, 0) == 0);
  // 90 degrees about the centre of a square image maps pixels exactly
  Image q = vt::random_image(9, 9, 1, 4);
  Image r = warp_affine(q, rotation_matrix(4, 4, 90, 1.0), 9, 9);
  // getRotationMatrix2D convention: positive angle turns the picture counter-clockwise on screen
  CHECK(r.at(4, 4) == q.at(4, 4));
  CHECK(r.at(7, 4) == q.at(4, 7));  // the pixel below the centre moves to its right
  double ox, oy;
  rotation_matrix(4, 4, 90, 1.0).apply(4, 7, ox, oy);
  CHECK(ox == doctest::Approx(7));
  CHECK(oy == doctest::Approx(4));
}

TEST_CASE("halve: each pixel the rounded mean of its 2x2 block, as an area resize by one half") {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 20; ++trial) {
    const int w = 2 + int(rng() % 40), h = 2 + int(rng() % 30), cn = (int[]){1, 3, 4, 2}[trial % 4];
    Image s(w, h, cn);
    for (size_t i = 0; i < s.size_bytes(); ++i) s.data()[i] = uint8_t(rng());
    const Image d = halve(s);
    REQUIRE(d.width() == w / 2);
    REQUIRE(d.height() == h / 2);
    for (int y = 0; y < d.height(); ++y)
      for (int x = 0; x < d.width(); ++x)
        for (int c = 0; c < cn; ++c) {
          const int sum = s.at(2 * x, 2 * y, c) + s.at(2 * x + 1, 2 * y, c) + s.at(2 * x, 2 * y + 1, c) + s.at(2 * x + 1, 2 * y + 1, c);
          CHECK(d.at(x, y, c) == (sum + 2) / 4);
        }
    // Even sizes: the area resize gives the same within 1 (it rounds halves to even).
    if (w % 2 == 0 && h % 2 == 0) {
      const Image a = resize(s, w / 2, h / 2, Interp::Area);
      for (size_t i = 0; i < a.size_bytes(); ++i) CHECK(std::abs(int(a.data()[i]) - int(d.data()[i])) <= 1);
    }
  }
  CHECK_THROWS_AS(halve(Image(1, 5, 1)), Error);
}
