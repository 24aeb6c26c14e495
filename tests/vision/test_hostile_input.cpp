// Hostile sizes in vision inputs: cascade geometry near INT_MAX, non-finite weights, huge images,
// huge manifest boxes, manifests with thousands of age ranges. Each is refused with an error naming
// the file (and the stage / feature / line), or bounded; none crashes (tests/data/hostile/README.md).
#include <chrono>
#include <climits>

#include "common.hpp"

using namespace vision;

namespace {
const std::string kData = vt::repo("tests/data/hostile/");

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A one-stump Haar cascade (24x24 window) whose feature has the given rectangles ("x y w h wt" each).
std::string haar_cascade(const std::string& rects, const std::string& tilted = "0", const std::string& node = "0 -1 0 0.5",
                         const std::string& leaves = "-1. 1.", const std::string& stage_thr = "-1.") {
  std::string r;
  for (size_t p = 0; p < rects.size();) {
    size_t q = rects.find(';', p);
    if (q == std::string::npos) q = rects.size();
    r += "<_>" + rects.substr(p, q - p) + "</_>";
    p = q + 1;
  }
  return "<?xml version=\"1.0\"?><opencv_storage><cascade type_id=\"opencv-cascade-classifier\">"
         "<stageType>BOOST</stageType><featureType>HAAR</featureType><height>24</height><width>24</width>"
         "<featureParams><maxCatCount>0</maxCatCount></featureParams><stages><_><stageThreshold>" +
         stage_thr + "</stageThreshold><weakClassifiers><_><internalNodes>" + node + "</internalNodes><leafValues>" +
         leaves + "</leafValues></_></weakClassifiers></_></stages><features><_><rects>" + r + "</rects><tilted>" +
         tilted + "</tilted></_></features></cascade></opencv_storage>";
}
std::string lbp_cascade(const std::string& rect) {
  std::string subset = "0 -1 0 -1 0 -1 0 -1";
  return "<?xml version=\"1.0\"?><opencv_storage><cascade type_id=\"opencv-cascade-classifier\">"
         "<stageType>BOOST</stageType><featureType>LBP</featureType><height>24</height><width>24</width>"
         "<featureParams><maxCatCount>256</maxCatCount></featureParams><stages><_><stageThreshold>-1."
         "</stageThreshold><weakClassifiers><_><internalNodes>0 -1 0 " + subset + "</internalNodes><leafValues>"
         "-1. 1.</leafValues></_></weakClassifiers></_></stages><features><_><rect>" + rect +
         "</rect></_></features></cascade></opencv_storage>";
}
std::string parse_error(const std::string& xml) {
  return error_of([&] { CascadeClassifier::parse(xml, "h.xml"); });
}
Image textured(int w, int h) {
  Image img(w, h, 1);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) img.at(x, y) = uint8_t((x * 37 + y * 91 + x * y) & 255);
  return img;
}
}  // namespace

TEST_CASE("cascade with a rectangle at INT_MAX: refused by name (regression: detect() crashed)") {
  const std::string path = kData + "cascade_intmax.xml";
  CHECK(vt::has(error_of([&] { CascadeClassifier::load(path); }),
                path + ": Haar feature 0 rectangle 1 (2147483647 0 2 4) lies outside the 24x24 window"));
  // every coordinate and size near INT_MAX, plain and tilted; uint32 spellings wrap to negatives
  for (const char* rect : {"2147483647 0 2 4 -1.", "0 2147483647 2 4 -1.", "0 0 2147483647 4 -1.",
                           "0 0 2 2147483647 -1.", "4294967295 0 2 4 -1.", "2147483646 2147483646 2 2 1."}) {
    CAPTURE(rect);
    CHECK(vt::has(parse_error(haar_cascade(std::string("0 0 2 4 2.;") + rect)), "h.xml: Haar feature 0 rectangle 1"));
  }
  for (const char* rect : {"2147483647 0 2 4 -1.", "4 0 2147483647 2 -1.", "4 0 2 2147483647 -1.",
                           "4 2147483647 2 2 -1.", "2 0 2 4 -1."}) {  // the last: x - h < 0
    CAPTURE(rect);
    CHECK(vt::has(parse_error(haar_cascade(std::string("8 0 2 4 2.;") + rect, "1")), "rectangle 1"));
  }
  for (const char* rect : {"0 0 715827883 1", "0 0 1 715827883", "2147483647 0 1 1", "0 0 1431655765 1"}) {
    CAPTURE(rect);  // 3 * w wraps for the first and last
    CHECK(vt::has(parse_error(lbp_cascade(rect)), "h.xml: LBP feature 0 rectangle"));
  }
  CHECK(parse_error(lbp_cascade("0 0 8 8")).empty());
  CHECK(parse_error(haar_cascade("0 0 2 4 2.;2 0 2 4 -1.")).empty());
  CHECK(parse_error(haar_cascade("8 0 2 4 2.;10 0 2 4 -1.", "1")).empty());
}

TEST_CASE("cascade weights, thresholds and indices out of range are refused by stage") {
  CHECK(vt::has(parse_error(haar_cascade("0 0 2 4 1e39;2 0 2 4 -1.")), "h.xml: Haar feature 0 rectangle 0 has weight"));
  CHECK(vt::has(parse_error(haar_cascade("0 0 2 4 2.;2 0 2 4 -1.", "0", "0 -1 0 1e39")),
                "stage 0 tree 0 node 0 threshold out of float range"));
  CHECK(vt::has(parse_error(haar_cascade("0 0 2 4 2.;2 0 2 4 -1.", "0", "0 -1 0 0.5", "-1e39 1.")),
                "leaf value 0 out of float range"));
  CHECK(vt::has(parse_error(haar_cascade("0 0 2 4 2.;2 0 2 4 -1.", "0", "0 -1 0 0.5", "-1. 1.", "-1e39")),
                "stage 0 threshold out of float range"));
  // 2147483648 is read as a uint32 and becomes INT_MIN: a leaf index, out of range, without UB
  CHECK(vt::has(parse_error(haar_cascade("0 0 2 4 2.;2 0 2 4 -1.", "0", "0 2147483648 0 0.5")),
                "leaf index 2147483648 out of range in stage 0 tree 0"));
  CHECK(vt::has(parse_error(haar_cascade("0 0 2 4 2.;2 0 2 4 -1.", "0", "0 -1 2147483647 0.5")),
                "feature index 2147483647 out of range (the cascade has 1 features) in stage 0 tree 0"));
}

TEST_CASE("an unused rectangle anywhere is harmless: detect() agrees on every ISA") {
  // weight 0 and size 0: OpenCV ignores it, our kernels read its corners, so it is moved to 0,0
  const auto cc = CascadeClassifier::parse(haar_cascade("0 0 12 24 1.;12 0 12 24 -1.;2147483647 2147483647 0 0 0"), "u.xml");
  const Image img = textured(80, 64);
  DetectParams p;
  p.min_neighbors = 0;
  p.threads = 1;
  p.simd = false;
  const auto ref = cc.detect_candidates(img, p);
  CHECK(!ref.empty());
  p.simd = true;
  for (bool avx512 : {false, true}) {
    p.allow_avx512 = avx512;
    const auto got = cc.detect_candidates(img, p);
    REQUIRE(got.size() == ref.size());
    for (size_t i = 0; i < got.size(); ++i) CHECK(got[i].box == ref[i].box);
  }
}

TEST_CASE("images too large to allocate are refused, not wrapped") {
  CHECK(vt::has(error_of([] { Image img(INT_MAX, INT_MAX, 4); }), "exceeds the limit"));
  CHECK(vt::has(error_of([] { Image img(1 << 20, 1 << 20, 3); }), "vision::Image: 1048576x1048576x3"));
  CHECK(Image(3, 2, 4).size_bytes() == 24);
}

TEST_CASE("IoU and area of huge boxes stay exact (regression: Rect::area overflowed int)") {
  const Rect big{0, 0, 100000, 100000};  // 10^10 pixels
  CHECK(big.area() == int64_t(10000000000));
  CHECK(iou(big, big) == doctest::Approx(1.0));
  const Rect edge{INT_MAX - 10, INT_MAX - 10, INT_MAX, INT_MAX};  // far edges beyond INT_MAX
  const double v = iou(edge, Rect{INT_MAX - 20, INT_MAX - 20, 15, 15});
  CHECK(v > 0);
  CHECK(v < 1e-15);
  CHECK(iou(Rect{10, 10, 50, 60}, Rect{10, 10, 50, 60}) == doctest::Approx(1.0));
}

TEST_CASE("manifest face boxes beyond the coordinate limit are refused by line") {
  std::istringstream in("image,age,gender,x,y,w,h\na.jpg,30,m,10,10,40,40\nb.jpg,30,m,0,0,2147483647,2147483647\n"
                        "c.jpg,30,f,1e300,0,10,10\nd.jpg,30,f,-1e300,0,10,10\ne.jpg,30,f,0,0,0.2,10\n");
  const std::string e = error_of([&] { parse_manifest(in, "m.csv"); });
  CHECK(vt::has(e, "m.csv:3: face box x,y,w,h beyond +-268435456 pixels"));
  CHECK(vt::has(e, "m.csv:4: face box"));
  CHECK(vt::has(e, "m.csv:5: face box"));
  CHECK(vt::has(e, "m.csv:6: face box w,h round to 0"));
  CHECK(!vt::has(e, "m.csv:2:"));
  std::istringstream ok("image,age,gender,x,y,w,h\na.jpg,30,m,-268435456,0,268435456,268435456\n");
  const Manifest m = parse_manifest(ok, "ok.csv");
  REQUIRE(m.rows.size() == 1);
  CHECK(m.rows[0].box.area() == int64_t(268435456) * 268435456);
}

TEST_CASE("a manifest with thousands of distinct age ranges: bounded report (regression: 5.6 GB, 19 s)") {
  std::string csv = "image,age,gender\n";
  for (int i = 0; i < 1500; ++i)
    csv += "p" + std::to_string(i) + ".jpg," + std::to_string(i % 100) + "-" + std::to_string(i % 100 + 1 + i / 100) + ",m\n";
  std::istringstream in(csv);
  const Manifest m = parse_manifest(in, "many.csv");
  std::vector<Prediction> preds(m.rows.size());
  for (size_t i = 0; i < preds.size(); ++i) {
    preds[i].found = true;
    preds[i].pred.age_years = float(i % 90);
    preds[i].pred.group = age_group_of_years(preds[i].pred.age_years);
    preds[i].pred.p_male = 0.8f;
  }
  const auto t0 = std::chrono::steady_clock::now();
  const Evaluation ev = evaluate(m, preds);
  CHECK(ev.bins.too_many_ranges());
  CHECK(ev.bins.distinct_ranges == 1500);
  CHECK(ev.bins.size() == kAgeGroups);
  const std::string md = report_markdown(ev, "many", "c.png");
  CHECK(vt::has(md, "The manifest has 1500 distinct age ranges, more than 32 (kMaxAgeRanges)"));
  const Image img = confusion_image(ev);
  CHECK(img.size_bytes() < 2000000);
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 10);
  // at the limit the manifest's own ranges are kept
  std::string csv32 = "image,age,gender\n";
  for (int i = 0; i < kMaxAgeRanges; ++i) csv32 += "q.jpg," + std::to_string(i) + "-" + std::to_string(i + 1) + ",f\n";
  std::istringstream in32(csv32);
  const Manifest m32 = parse_manifest(in32, "m32.csv");
  const Evaluation ev32 = evaluate(m32, std::vector<Prediction>(m32.rows.size()));
  CHECK(ev32.bins.size() == kMaxAgeRanges);
  CHECK(!ev32.bins.too_many_ranges());
}

#ifdef VISION_DETECT_EXE
TEST_CASE("detect app: the INT_MAX cascade is one error line naming the file, exit 1") {
  const vt::Run r = vt::run(VISION_DETECT_EXE, vt::golden("synthetic.png") + " --cascade " + kData + "cascade_intmax.xml");
  CHECK(r.rc == 1);
  CHECK(vt::has(r.err, "cascade_intmax.xml: Haar feature 0 rectangle 1 (2147483647 0 2 4) lies outside the 24x24 window"));
  CHECK(!vt::has(r.err, "Sanitizer"));
}
#endif

TEST_CASE("JPEGs that broke stb_image's decoder are refused by libjpeg-turbo with the file named") {
  // Found by fuzz_image when stb decoded JPEGs (tests/data/hostile/README.md): a Huffman table that
  // wrote past stb's array, and one that tripped stb's assertion.
  CHECK(error_of([&] { load_image(kData + "stb_dht_overflow.jpg"); }) ==
        kData + "stb_dht_overflow.jpg: corrupt JPEG: Bogus Huffman table definition");
  const std::string e = error_of([&] { load_image(kData + "stb_huff_assert.jpg"); });
  CHECK(e.rfind(kData + "stb_huff_assert.jpg: corrupt JPEG: ", 0) == 0);
  // stb takes FF FF D8 (a fill byte before the SOI marker) as a JPEG; this one overflows the same
  // Huffman array. A first byte of 0xFF now always means libjpeg, which accepts only FF D8.
  CHECK(error_of([&] { load_image(kData + "stb_fill_bytes_jpeg.jpg"); }) ==
        kData + "stb_fill_bytes_jpeg.jpg: corrupt JPEG: Not a JPEG file: starts with 0xff 0xff");
}
