// Bad and awkward inputs: library errors name the file and the problem; the detect app exits
// non-zero with one clear message, never crashes and leaves no partial output.
#include <sys/wait.h>

#include <algorithm>

#include "common.hpp"

using namespace vision;

namespace {
std::string load_error(const std::string& path, const LoadOptions& lo = {}) {
  try {
    load_image(path, lo);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
std::string cascade_error(const std::string& path) {
  try {
    CascadeClassifier::load(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
bool has(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

// A PNG whose header claims the given size (the IDAT is never reached).
std::string png_header(uint32_t w, uint32_t h) {
  std::string s("\x89PNG\r\n\x1a\n", 8);
  std::string ihdr("IHDR", 4);
  auto be32 = [](std::string& o, uint32_t v) {
    for (int k = 3; k >= 0; --k) o += char((v >> (8 * k)) & 255);
  };
  be32(ihdr, w);
  be32(ihdr, h);
  ihdr += char(8); ihdr += char(0); ihdr += char(0); ihdr += char(0); ihdr += char(0);
  uint32_t crc = 0xffffffffu;
  for (unsigned char c : ihdr) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
  }
  be32(s, 13);
  s += ihdr;
  be32(s, ~crc);
  s += std::string("\0\0\0\0IDAT\0\0\0\0", 12);
  return s;
}

std::string tmp(const std::string& name, const std::string& data) {
  std::string p = vt::tmp_dir() + "/" + name;
  vt::write_bytes(p, data);
  return p;
}

std::string valid_png() {
  auto v = encode_png(vt::random_image(40, 30, 3, 9));
  return std::string(v.begin(), v.end());
}
std::string valid_jpg() {
  auto v = encode_jpeg(vt::random_image(40, 30, 3, 9), 90);
  return std::string(v.begin(), v.end());
}
}  // namespace

TEST_CASE("image loading: each bad file gives one clear error naming it") {
  const std::string missing = vt::tmp_dir() + "/does_not_exist.png";
  CHECK(has(load_error(missing), missing + ": cannot open file"));
  auto empty = tmp("empty.jpg", "");
  CHECK(has(load_error(empty), empty + ": empty file"));
  auto text = tmp("text.png", "this is not an image at all\n");
  CHECK(has(load_error(text), text + ": not a readable image"));
  std::string png = valid_png();
  auto tpng = tmp("trunc.png", png.substr(0, png.size() / 2));
  CHECK(has(load_error(tpng), tpng + ": "));
  std::string jpg = valid_jpg();
  auto tjpg = tmp("trunc.jpg", jpg.substr(0, jpg.size() * 2 / 3));
  CHECK(has(load_error(tjpg), tjpg + ": truncated JPEG"));
  auto huge = tmp("huge.png", png_header(200000, 100000));
  CHECK(has(load_error(huge), huge + ": image is 200000x100000, above the limit of 100000000 pixels"));
  auto zero = tmp("zero.png", png_header(0, 0));
  CHECK(has(load_error(zero), zero + ": "));
  LoadOptions small;
  small.max_file_bytes = 100;
  auto ok = tmp("ok.png", png);
  CHECK(has(load_error(ok, small), ok + ": file is "));
  CHECK(has(load_error(vt::tmp_dir()), vt::tmp_dir() + ": is a directory"));
  CHECK(has(cascade_error(vt::tmp_dir()), vt::tmp_dir() + ": is a directory"));
}

// One PNG chunk (length, type, data, CRC) for building files byte by byte.
std::string png_chunk(const std::string& type, const std::string& data) {
  std::string body = type + data;
  uint32_t crc = 0xffffffffu;
  for (unsigned char c : body) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
  }
  crc = ~crc;
  std::string out;
  for (uint32_t v : {uint32_t(data.size())})
    for (int k = 3; k >= 0; --k) out += char((v >> (8 * k)) & 255);
  out += body;
  for (int k = 3; k >= 0; --k) out += char((crc >> (8 * k)) & 255);
  return out;
}

TEST_CASE("formats the docs do not name are refused by name, before any decoder sees them") {
  const std::pair<const char*, std::string> others[] = {
      {"Radiance HDR", "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 2 +X 2\n"},
      {"Photoshop (PSD)", std::string("8BPS\0\1\0\0\0\0\0\0\0\3\0\0\0\2\0\0\0\2\0\x08\0\3", 26)},
      {"PNM", "P6\n2 2\n255\n............"},
      {"TIFF", std::string("II*\0\x08\0\0\0", 8)},
      {"WebP", std::string("RIFF\x1a\0\0\0WEBPVP8 ", 16)},
      {"HEIF/AVIF", std::string("\0\0\0\x18" "ftypheic\0\0\0\0", 16)},
  };
  for (const auto& [format, bytes] : others) {
    CAPTURE(format);
    const std::string path = tmp("other.img", bytes);
    CHECK(has(load_error(path), path + ": " + format + " images are not supported (JPEG, PNG, BMP, TGA, GIF)"));
  }
}

TEST_CASE("damaged JPEG and PNG data is an error, not a picture filled with grey or garbage") {
  // PNG: image data that does not match its chunk's checksum.
  std::string png = valid_png();
  const size_t idat = png.find("IDAT");
  REQUIRE(idat != std::string::npos);
  size_t len = 0;
  for (size_t k = idat - 4; k < idat; ++k) len = len * 256 + uint8_t(png[k]);
  std::string flipped = png;
  flipped[idat + 4 + len] = char(flipped[idat + 4 + len] ^ 0x5a);  // first byte of the CRC
  auto bad_crc = tmp("bad_crc.png", flipped);
  CHECK(has(load_error(bad_crc), bad_crc + ": corrupt PNG: IDAT: CRC error"));
  // PNG: a flipped byte inside the compressed data.
  flipped = png;
  flipped[idat + 10] = char(flipped[idat + 10] ^ 0x5a);
  auto bad_data = tmp("bad_data.png", flipped);
  CHECK(has(load_error(bad_data), bad_data + ": corrupt PNG: "));
  // PNG: image data that inflates to fewer rows than the header declares.
  std::string hdr = png.substr(0, idat - 4);  // signature + IHDR (40x30 RGB)
  std::string short_png = hdr + png_chunk("IDAT", std::string("\x78\x9c\x63\x00\x00\x00\x01\x00\x01", 9)) +
                          png_chunk("IEND", "");
  auto s = tmp("short.png", short_png);
  CHECK(has(load_error(s), s + ": corrupt PNG: "));
  // JPEG: a restart marker in the middle of entropy-coded data that has no restart interval.
  std::string jpg = valid_jpg();
  const size_t sos = jpg.find("\xFF\xDA");
  REQUIRE(sos != std::string::npos);
  std::string marked = jpg;
  const size_t mid = sos + (jpg.size() - sos) / 2;
  marked.insert(mid, std::string("\xFF\xD3", 2));
  auto m = tmp("marker.jpg", marked);
  CHECK(has(load_error(m), m + ": corrupt JPEG: Corrupt JPEG data"));
  // JPEG: cut short (the existing case) still names the cause.
  auto cut = tmp("cut.jpg", jpg.substr(0, jpg.size() - 30));
  CHECK(has(load_error(cut), cut + ": truncated JPEG (Premature end of JPEG file)"));
}

TEST_CASE("the memory budget counts the decoder's and the caller's working memory, before allocating") {
  // A 54-byte PNG that claims 12000 x 8000 grey pixels (96 MB): inside the default 512 MiB budget,
  // outside a 64 MiB one, where it is refused before the 96 MB are allocated.
  auto big = tmp("claims_96mp.png", png_header(12000, 8000).substr(0, 33) +
                                        png_chunk("IDAT", std::string("\x78\x9c\x63\x00\x00\x00\x01\x00\x01", 9)));
  LoadOptions lo;
  CHECK(has(load_error(big), big + ": corrupt PNG: Not enough image data"));
  lo.memory_budget = size_t(64) << 20;
  CHECK(has(load_error(big, lo), big + ": 12000x8000 pixels need 92 MiB, above the memory budget of 64 MiB"));
  // The caller's own work per pixel counts too: 96 MB of output + 2 bytes per pixel = 275 MiB.
  lo.memory_budget = size_t(256) << 20;
  CHECK(has(load_error(big, lo), big + ": corrupt PNG: Not enough image data"));
  lo.work_bytes_per_pixel = 2;
  CHECK(has(load_error(big, lo), big + ": 12000x8000 pixels need 275 MiB, above the memory budget of 256 MiB"));
  lo.work_bytes_per_pixel = 0;
  // A progressive JPEG needs its coefficients too: 2 bytes per component per pixel on top of the
  // 3 of the output. The fixture is 32x24, 3 components: 768 pixels x 9 bytes.
  const std::string prog = vt::golden("bad/progressive.jpg");
  lo.memory_budget = 768 * 9;
  CHECK(load_image(prog, lo).width() == 32);
  lo.memory_budget = 768 * 9 - 1;
  CHECK(has(load_error(prog, lo), prog + ": 32x24 pixels need 1 MiB, above the memory budget of 0 MiB"));
  lo.memory_budget = 768 * 3;  // a baseline JPEG of the same size needs only its output
  CHECK(load_image(vt::golden("bad/baseline.jpg"), lo).width() == 32);
  lo.work_bytes_per_pixel = 1;  // unless the caller needs more afterwards
  CHECK(has(load_error(vt::golden("bad/baseline.jpg"), lo), "baseline.jpg: 32x24 pixels need 1 MiB"));
}

TEST_CASE("progressive JPEGs with more scans than allowed are refused") {
  const std::string prog = vt::golden("bad/progressive.jpg");
  LoadOptions lo;
  CHECK(load_image(prog, lo).width() == 32);  // ~10 scans
  lo.max_jpeg_scans = 2;
  CHECK(has(load_error(prog, lo), prog + ": corrupt JPEG: more than 2 progressive scans"));
}

TEST_CASE("awkward but valid images decode") {
  // 16-bit PNG: reduced to 8 bits
  Image g16 = load_image(vt::golden("bad/grey16.png"));
  CHECK(g16.channels() == 1);
  CHECK(g16.width() == 32);
  CHECK(std::abs(int(g16.at(5, 3)) - int(((5 * 2000 + 3 * 700) % 65536) >> 8)) <= 1);
  Image prog = load_image(vt::golden("bad/progressive.jpg"));
  Image base = load_image(vt::golden("bad/baseline.jpg"));
  REQUIRE(prog.width() == base.width());
  int worst = 0;
  for (size_t i = 0; i < prog.size_bytes(); ++i) worst = std::max(worst, std::abs(prog.data()[i] - base.data()[i]));
  CHECK(worst <= 16);
  if (vt::exists(vt::golden("bad/cmyk.jpg"))) {
    std::string e = load_error(vt::golden("bad/cmyk.jpg"));
    if (e.empty()) {
      Image c = load_image(vt::golden("bad/cmyk.jpg"));
      CHECK(c.channels() == 3);
      CHECK(c.width() == 32);
    } else {
      CHECK(has(e, "cmyk.jpg: "));
    }
  }
  Image ga = load_image(vt::golden("bad/grey_alpha.png"));
  CHECK(ga.channels() >= 3);
  Image one = load_image(vt::golden("bad/one.png"));
  CHECK(one.width() == 1);
  CHECK(one.at(0, 0) == 77);
  // BMP and TGA go to stb (hand-made 4x3 files of the fuzz corpus, tests/fuzz/make_seeds.py): the
  // same pixels either way
  const Image bmp = load_image(vt::repo("tests/fuzz/corpus/image/tiny.bmp"));
  const Image tga = load_image(vt::repo("tests/fuzz/corpus/image/tiny.tga"));
  REQUIRE(bmp.width() == 4);
  REQUIRE(bmp.height() == 3);
  CHECK(bmp == tga);
}

TEST_CASE("cascade loading: malformed, truncated and inconsistent files") {
  const std::string good = vt::read_text(vt::golden("cascade_default7_new.xml"));
  REQUIRE(!good.empty());
  CHECK(has(cascade_error(vt::tmp_dir() + "/nope.xml"), "nope.xml: cannot open cascade file"));
  auto empty = tmp("empty.xml", "");
  CHECK(has(cascade_error(empty), empty + ": empty cascade file"));
  auto notxml = tmp("notxml.xml", "hello world");
  CHECK(has(cascade_error(notxml), notxml + ": malformed XML"));
  for (size_t cut : {size_t(100), good.size() / 3, good.size() - 40}) {
    auto tr = tmp("trunc.xml", good.substr(0, cut));
    CHECK(has(cascade_error(tr), tr + ": "));
  }
  auto mism = tmp("mismatch.xml", "<?xml version=\"1.0\"?><opencv_storage><cascade></cascad></opencv_storage>");
  CHECK(has(cascade_error(mism), "does not match"));
  // feature index out of range: the first stump uses feature 0; make it 99999
  std::string bad = good;
  size_t p = bad.find("<internalNodes>");
  REQUIRE(p != std::string::npos);
  size_t q = bad.find("0 -1 0 ", p);
  REQUIRE(q != std::string::npos);
  bad.replace(q, 7, "0 -1 99999 ");
  auto oor = tmp("oor.xml", bad);
  CHECK(has(cascade_error(oor), oor + ": feature index 99999 out of range"));
  std::string badnum = good;
  badnum.replace(badnum.find("<stageThreshold>") + 16, 1, "x");
  auto bn = tmp("badnum.xml", badnum);
  CHECK(has(cascade_error(bn), bn + ": bad number in <stageThreshold>"));
  auto other = tmp("other.xml", "<?xml version=\"1.0\"?><opencv_storage><foo>1</foo></opencv_storage>");
  CHECK(has(cascade_error(other), "unrecognized cascade format"));
  std::string rect = good;
  size_t r = rect.find("<rects>");
  size_t rr = rect.find("<_>", r);
  rect.insert(rr + 3, "30 ");  // x=30 and the rest shifted: rectangle outside the window / bad count
  auto br = tmp("badrect.xml", rect);
  CHECK(has(cascade_error(br), br + ": "));
}

#ifdef VISION_DETECT_EXE
namespace {
vt::Run run(const std::string& args) { return vt::run(VISION_DETECT_EXE, args); }
using vt::Run;
}  // namespace

TEST_CASE("detect app: bad inputs and flags") {
  const std::string casc = " --cascade " + vt::golden("cascade_default7_new.xml");
  auto empty = tmp("app_empty.jpg", "");
  Run r = run(empty + casc);
  CHECK(r.rc == 1);
  CHECK(has(r.err, "detect: error: " + empty + ": empty file"));
  auto text = tmp("app_text.png", "not an image");
  r = run(text + casc);
  CHECK(r.rc == 1);
  CHECK(has(r.err, text + ": not a readable image"));
  std::string jpg = valid_jpg();
  auto tj = tmp("app_trunc.jpg", jpg.substr(0, jpg.size() / 2));
  const std::string ann = vt::tmp_dir() + "/ann_should_not_exist.png";
  std::remove(ann.c_str());
  r = run(tj + casc + " --annotate " + ann);
  CHECK(r.rc == 1);
  CHECK(has(r.err, tj + ": truncated JPEG"));
  CHECK(!vt::exists(ann));
  CHECK(!vt::exists(ann + ".part"));
  auto huge = tmp("app_huge.png", png_header(70000, 70000));
  r = run(huge + casc);
  CHECK(r.rc == 1);
  CHECK(has(r.err, "above the limit"));
  // the memory budget: pixels x (output + the detector's work + what the outputs add), before decoding
  const std::string photo = vt::repo("samples/astronaut.png");  // 512 x 512 RGB
  r = run(photo + " --detector cnn --max-memory 1");  // x (3 + 2) = 1.25 MiB
  CHECK(r.rc == 1);
  CHECK(has(r.err, photo + ": 512x512 pixels need 2 MiB, above the memory budget of 1 MiB"));
  CHECK(run(photo + " --detector cnn --max-memory 2").rc == 0);
  r = run(photo + " --detector haar --max-memory 5");  // x (3 + 18) = 5.25 MiB
  CHECK(r.rc == 1);
  CHECK(has(r.err, "need 6 MiB, above the memory budget of 5 MiB"));
  CHECK(run(photo + " --detector haar --max-memory 6").rc == 0);
  r = run(photo + " --detector haar --max-memory 6 --annotate " + ann);  // x (3 + 18 + 9) = 7.5 MiB
  CHECK(r.rc == 1);
  CHECK(has(r.err, "need 8 MiB, above the memory budget of 6 MiB"));
  CHECK(!vt::exists(ann));
  CHECK(run(photo + " --max-memory 0").rc == 2);
  r = run(vt::golden("bad/one.png") + casc + " --json");
  CHECK(r.rc == 0);
  CHECK(has(r.out, "\"faces\":[]"));
  r = run(vt::golden("bad/grey16.png") + casc);
  CHECK(r.rc == 0);
  // one bad image among good ones: the good ones are still processed, exit status 1
  r = run(vt::golden("synthetic.png") + " " + empty + casc + " --json");
  CHECK(r.rc == 1);
  CHECK(has(r.out, "synthetic.png"));
  CHECK(has(r.err, empty));
  // cascades
  auto badx = tmp("app_bad.xml", "<opencv_storage><cascade>");
  r = run(vt::golden("synthetic.png") + " --cascade " + badx);
  CHECK(r.rc == 1);
  CHECK(has(r.err, badx + ": malformed XML"));
  r = run(vt::golden("synthetic.png") + " --cascade " + vt::tmp_dir() + "/missing.xml");
  CHECK(r.rc == 1);
  CHECK(has(r.err, "missing.xml: cannot open cascade file"));
  // flags
  for (const char* f : {"--scale-factor 1.0", "--scale-factor abc", "--min-neighbors -1", "--threads x",
                        "--min-size", "--bogus", "--max-size 10 --min-size 20"}) {
    CAPTURE(f);
    r = run(vt::golden("synthetic.png") + " " + f);
    CHECK(r.rc == 2);
    CHECK(has(r.err, "detect: "));
  }
  r = run("");
  CHECK(r.rc == 2);
  CHECK(has(r.err, "no input image"));
  // unwritable annotate target: refused before any image is read (exit 2), nothing left behind
  r = run(vt::golden("synthetic.png") + casc + " --annotate /nonexistent_dir/x.png");
  CHECK(r.rc == 2);
  CHECK(has(r.err, "--annotate: /nonexistent_dir/x.png: directory /nonexistent_dir does not exist"));
  CHECK(r.out.empty());
  r = run(vt::golden("synthetic.png") + casc + " --annotate " + vt::tmp_dir() + "/x.bmp");
  CHECK(r.rc == 2);
  CHECK(has(r.err, "x.bmp: unsupported output format"));
  CHECK(!vt::exists(vt::tmp_dir() + "/x.bmp"));
}

TEST_CASE("detect app: JSON output and annotation") {
  const std::string out = vt::tmp_dir() + "/annot.png";
  Run r = run(vt::golden("synthetic.png") + " --cascade " + vt::golden("cascade_default7_new.xml") +
              " --min-size 24 --json --annotate " + out);
  CHECK(r.rc == 0);
  CHECK(has(r.out, "{\"image\":\""));
  CHECK(has(r.out, "\"width\":160,\"height\":120,\"faces\":["));
  CHECK(has(r.out, "\"ms\":"));
  CHECK(load_image(out).width() == 160);
}
#endif

#ifdef VISION_DETECT_EXE
TEST_CASE("detect app: --keypoints and --align") {
  VT_REQUIRE_SHARED();
  const std::string dir = vt::tmp_dir() + "/aligned";
  ::mkdir(dir.c_str(), 0755);
  const std::string ann = vt::tmp_dir() + "/kp.png";
  Run r = run(vt::shared_dir() + "/samples/astronaut.png --keypoints --annotate " + ann + " --align " + dir);
  CHECK(r.rc == 0);
  CHECK(has(r.out, "1 face"));
  CHECK(has(r.out, "ORB keypoints"));
  CHECK(vt::exists(ann));
  Image a = load_image(dir + "/astronaut_face0.png");
  CHECK(a.width() == 200);
  CHECK(a.height() == 200);
  r = run(vt::shared_dir() + "/samples/astronaut.png --align " + ann);  // a file, not a folder
  CHECK(r.rc == 2);
  CHECK(has(r.err, "exists and is not a directory"));
}
#endif

TEST_CASE("mutated files: decoders and the cascade parser fail cleanly, never crash") {
  std::mt19937 rng(99);
  std::vector<std::string> images{valid_png(), valid_jpg(), vt::read_text(vt::golden("bad/progressive.jpg")),
                                  vt::read_text(vt::golden("bad/grey16.png"))};
  if (vt::exists(vt::golden("bad/two_frames.gif"))) images.push_back(vt::read_text(vt::golden("bad/two_frames.gif")));
  int ok = 0, errors = 0;
  for (const std::string& base : images)
    for (int k = 0; k < 150; ++k) {
      std::string m = base;
      const int edits = 1 + int(rng() % 4);
      for (int e = 0; e < edits; ++e) {
        size_t pos = rng() % m.size();
        switch (rng() % 3) {
          case 0: m[pos] = char(rng()); break;
          case 1: m.erase(pos, 1 + rng() % 8); break;
          default: m.insert(pos, 1 + rng() % 4, char(rng())); break;
        }
        if (m.empty()) m = "x";
      }
      try {
        Image img = decode_image(reinterpret_cast<const uint8_t*>(m.data()), m.size(), "fuzz");
        CHECK(img.width() > 0);
        ++ok;
      } catch (const Error& e) {
        CHECK(std::string(e.what()).rfind("fuzz: ", 0) == 0);
        ++errors;
      }
    }
  MESSAGE("mutated images: " << ok << " decoded, " << errors << " clean errors");
  const std::string xml = vt::read_text(vt::golden("cascade_eyetree6_new.xml"));
  int xok = 0, xerr = 0;
  for (int k = 0; k < 120; ++k) {
    std::string m = xml;
    for (int e = 0; e < 3; ++e) {
      size_t pos = rng() % m.size();
      const char* junk[] = {"<", ">", "/", "-9", "1e40", "</_>", "<_>", "99999", " "};
      if (rng() % 2) m.erase(pos, 1 + rng() % 12);
      else m.insert(pos, junk[rng() % 9]);
    }
    try {
      auto cc = CascadeClassifier::parse(m, "fuzz.xml");
      Image img = load_image(vt::golden("synthetic.png"));
      cc.detect(img);  // a cascade that loads must also run
      ++xok;
    } catch (const Error& e) {
      CHECK(std::string(e.what()).rfind("fuzz.xml: ", 0) == 0);
      ++xerr;
    }
  }
  MESSAGE("mutated cascades: " << xok << " loaded and ran, " << xerr << " clean errors");
}
