// Image type, grey conversion, PNG/JPEG I/O, EXIF orientation, pixel limit, drawing.
#include <cstring>

#include "common.hpp"

using namespace vision;

TEST_CASE("grey conversion equals OpenCV's cvtColor (fixture)") {
  Image rgb = load_image(vt::golden("resize/src_c3.png"));
  Image want = load_image(vt::golden("resize/src_c1.png"));
  REQUIRE(rgb.channels() == 3);
  REQUIRE(want.channels() == 1);
  CHECK(to_grey(rgb) == want);
  CHECK(load_image(vt::golden("resize/src_c3.png"), LoadOptions{100000000, size_t(1) << 30, 1, true}) == want);
}

TEST_CASE("PNG round trip is lossless for 1, 3 and 4 channels; JPEG is close") {
  for (int c : {1, 3, 4}) {
    Image img = vt::random_image(13, 7, c, c);
    std::string p = vt::tmp_dir() + "/rt" + std::to_string(c) + ".png";
    save_image(p, img);
    CHECK(load_image(p) == img);
  }
  Image smooth(32, 24, 3);
  for (int y = 0; y < 24; ++y)
    for (int x = 0; x < 32; ++x) {
      smooth.at(x, y, 0) = uint8_t(x * 8);
      smooth.at(x, y, 1) = uint8_t(y * 10);
      smooth.at(x, y, 2) = 128;
    }
  std::string pj = vt::tmp_dir() + "/rt.jpg";
  save_image(pj, smooth, 95);
  Image back = load_image(pj);
  REQUIRE(back.width() == 32);
  int worst = 0;
  for (size_t i = 0; i < back.size_bytes(); ++i) worst = std::max(worst, std::abs(back.data()[i] - smooth.data()[i]));
  CHECK(worst < 24);
  CHECK_THROWS_AS(save_image(vt::tmp_dir() + "/x.gif", smooth), Error);
}

// Insert an EXIF APP1 segment with the given orientation right after SOI.
static std::string with_exif(const std::vector<uint8_t>& jpg, int orientation, bool big_endian) {
  std::string app1;
  app1 += "Exif";
  app1 += '\0';
  app1 += '\0';
  auto u16 = [&](unsigned v) {
    if (big_endian) { app1 += char(v >> 8); app1 += char(v & 255); }
    else { app1 += char(v & 255); app1 += char(v >> 8); }
  };
  auto u32 = [&](unsigned v) {
    if (big_endian) { u16(v >> 16); u16(v & 0xffff); }
    else { u16(v & 0xffff); u16(v >> 16); }
  };
  app1 += big_endian ? "MM" : "II";
  u16(42);
  u32(8);
  u16(1);          // one entry
  u16(0x0112);     // orientation
  u16(3);          // SHORT
  u32(1);
  u16(unsigned(orientation));
  u16(0);
  u32(0);          // next IFD
  std::string out(reinterpret_cast<const char*>(jpg.data()), 2);
  size_t len = app1.size() + 2;
  out += char(0xFF);
  out += char(0xE1);
  out += char(len >> 8);
  out += char(len & 255);
  out += app1;
  out.append(reinterpret_cast<const char*>(jpg.data()) + 2, jpg.size() - 2);
  return out;
}

TEST_CASE("EXIF orientation is honoured (all 8 values, both byte orders)") {
  // a 16x8 image: left half dark, right half bright, top-left quadrant marked
  Image img(16, 8, 1, 30);
  for (int y = 0; y < 8; ++y)
    for (int x = 8; x < 16; ++x) img.at(x, y) = 220;
  auto jpg = encode_jpeg(img, 100);
  struct Want { int w, h; int bright_x, bright_y; };  // where the bright half ends up (a pixel well inside it)
  const Want want[9] = {{}, {16, 8, 13, 4}, {16, 8, 2, 4}, {16, 8, 2, 4}, {16, 8, 13, 4},
                        {8, 16, 4, 13}, {8, 16, 4, 13}, {8, 16, 4, 2}, {8, 16, 4, 2}};
  for (int o = 1; o <= 8; ++o)
    for (bool be : {false, true}) {
      std::string data = with_exif(jpg, o, be);
      Image r = decode_image(reinterpret_cast<const uint8_t*>(data.data()), data.size(), "exif.jpg");
      CAPTURE(o);
      CHECK(r.width() == want[o].w);
      CHECK(r.height() == want[o].h);
      CHECK(r.at(want[o].bright_x, want[o].bright_y, 0) > 150);
      Image raw = decode_image(reinterpret_cast<const uint8_t*>(data.data()), data.size(), "exif.jpg",
                               LoadOptions{100000000, size_t(1) << 30, 0, false});
      CHECK(raw.width() == 16);
    }
}

TEST_CASE("pixel limit is checked before decoding") {
  Image img(100, 50, 3, 5);
  auto png = encode_png(img);
  LoadOptions lo;
  lo.max_pixels = 4999;
  try {
    decode_image(png.data(), png.size(), "big.png", lo);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("big.png: image is 100x50, above the limit of 4999 pixels") != std::string::npos);
  }
  lo.max_pixels = 5000;
  CHECK(decode_image(png.data(), png.size(), "ok.png", lo).width() == 100);
}

TEST_CASE("drawing clips at the border and text marks pixels") {
  Image img(40, 20, 3);
  draw_rect(img, Rect{-5, -5, 60, 60}, Color{255, 0, 0});
  draw_labeled_box(img, Rect{30, 10, 20, 20}, "A1", Color{0, 255, 0});
  int w = draw_text(img, 1, 1, "Hi 9", Color{0, 0, 255});
  CHECK(w == 24);
  int blue = 0;
  for (int y = 0; y < 20; ++y)
    for (int x = 0; x < 40; ++x) blue += img.at(x, y, 2) == 255;
  CHECK(blue > 10);
  draw_line(img, -10, -10, 100, 50, Color{});
  draw_circle(img, 5, 5, 30, Color{});
  Image g(10, 10, 1);
  draw_rect(g, Rect{1, 1, 5, 5}, Color{255, 255, 255}, 1);
  CHECK(g.at(1, 1) == 255);
}

TEST_CASE("float CHW conversion") {
  Image img(2, 1, 3);
  img.at(1, 0, 2) = 255;
  const float mean[3] = {0.5f, 0.5f, 0.5f}, sd[3] = {0.5f, 0.5f, 0.5f};
  ImageF f = to_float_chw(img, mean, sd);
  CHECK(f.data.size() == 6);
  CHECK(f.data[0] == doctest::Approx(-1.f));
  CHECK(f.data[5] == doctest::Approx(1.f));
}

extern "C" {
int stbi_write_bmp_to_func(stbi_write_func* func, void* context, int w, int h, int comp, const void* data);
int stbi_write_tga_to_func(stbi_write_func* func, void* context, int w, int h, int comp, const void* data);
}

TEST_CASE("BMP, TGA and GIF (first frame) load") {
  Image img = vt::random_image(11, 5, 3, 21);
  std::vector<uint8_t> bmp, tga;
  REQUIRE(stbi_write_bmp_to_func(detail::append_bytes, &bmp, 11, 5, 3, img.data()));
  REQUIRE(stbi_write_tga_to_func(detail::append_bytes, &tga, 11, 5, 3, img.data()));
  CHECK(decode_image(bmp.data(), bmp.size(), "x.bmp") == img);
  CHECK(decode_image(tga.data(), tga.size(), "x.tga") == img);
  if (vt::exists(vt::golden("bad/two_frames.gif"))) {
    Image g = load_image(vt::golden("bad/two_frames.gif"));
    CHECK(g.width() == 8);
    CHECK(g.height() == 6);
    CHECK(g.at(3, 3, 0) > 200);  // red: the first frame
    CHECK(g.at(3, 3, 2) < 50);
  }
}

TEST_CASE("JPEG decoding gives OpenCV's pixels (libjpeg-turbo, the same IDCT and upsampling)") {
  // Fixtures and OpenCV's decoding of them: tools/opencv_golden.py decode (4:2:0 at odd sizes,
  // quality 100, progressive, grey).
  for (const char* name : {"photo_420", "photo_q100", "photo_progressive", "photo_grey"}) {
    CAPTURE(name);
    const Image ours = load_image(vt::golden(std::string("decode/") + name + ".jpg"));
    const Image opencv = load_image(vt::golden(std::string("decode/") + name + ".opencv.png"));
    REQUIRE(ours.width() == opencv.width());
    REQUIRE(ours.height() == opencv.height());
    REQUIRE(ours.channels() == opencv.channels());
    CHECK(ours == opencv);
  }
}
