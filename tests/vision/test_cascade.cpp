// Integral images, the cascade loader (both formats, all bundled cascades), grouping, and raw
// windows against OpenCV on a committed synthetic image.
#include <algorithm>
#include <iterator>
#include <set>
#include <sstream>
#include <thread>

#include "common.hpp"

using namespace vision;

TEST_CASE("integral images equal OpenCV's integral3 (fixture)") {
  std::istringstream in(vt::read_text(vt::golden("integral.txt")));
  int w = 0, h = 0;
  in >> w >> h;
  REQUIRE(w == 9);
  std::vector<uint8_t> img(size_t(w) * h);
  for (auto& v : img) { int x; in >> x; v = uint8_t(x); }
  const size_t n = size_t(w + 1) * (h + 1);
  std::vector<long long> s(n), sq(n), t(n);
  for (auto& v : s) in >> v;
  for (auto& v : sq) in >> v;
  for (auto& v : t) in >> v;
  REQUIRE(in);
  std::vector<uint32_t> fs(n), fq(n), ft(n);
  integral_sums(img.data(), w, h, w, fs.data(), fq.data());
  integral_tilted(img.data(), w, h, w, ft.data());
  for (size_t i = 0; i < n; ++i) {
    CHECK(fs[i] == uint32_t(s[i]));
    CHECK(fq[i] == uint32_t(sq[i]));
    CHECK(ft[i] == uint32_t(t[i]));
  }
}

TEST_CASE("fast integrals equal the plain definitions on random images") {
  std::mt19937 rng(11);
  for (int k = 0; k < 20; ++k) {
    int w = 1 + rng() % 23, h = 1 + rng() % 19;
    Image img = vt::random_image(w, h, 1, 50 + k);
    const size_t n = size_t(w + 1) * (h + 1);
    std::vector<uint32_t> s(n), q(n), t(n);
    integral_sums(img.data(), w, h, img.stride(), s.data(), q.data());
    integral_tilted(img.data(), w, h, img.stride(), t.data());
    auto rs = integral_reference(img.data(), w, h, 0), rq = integral_reference(img.data(), w, h, 1),
         rt = integral_reference(img.data(), w, h, 2);
    bool ok = true;
    for (size_t i = 0; i < n; ++i) ok = ok && s[i] == uint32_t(rs[i]) && q[i] == uint32_t(rq[i]) && t[i] == uint32_t(rt[i]);
    CAPTURE(w); CAPTURE(h);
    CHECK(ok);
  }
}

TEST_CASE("bundled cascades load") {
  struct C { const char* f; int w, h; size_t stages; bool lbp, tilted, stumps; };
  const C cs[] = {{"haarcascade_frontalface_default.xml", 24, 24, 25, false, false, true},
                  {"haarcascade_frontalface_alt.xml", 20, 20, 22, false, false, true},
                  {"haarcascade_frontalface_alt2.xml", 20, 20, 20, false, false, false},
                  {"haarcascade_eye.xml", 20, 20, 24, false, false, true},
                  {"haarcascade_eye_tree_eyeglasses.xml", 20, 20, 30, false, true, false},
                  {"lbpcascade_frontalface_improved.xml", 45, 45, 0, true, false, true}};
  for (const C& c : cs) {
    CAPTURE(c.f);
    auto cc = CascadeClassifier::load(vt::repo(std::string("weights/") + c.f));
    CHECK(cc.window_width() == c.w);
    CHECK(cc.window_height() == c.h);
    if (c.stages) CHECK(cc.stage_count() == c.stages);
    CHECK((cc.feature_type() == CascadeClassifier::FeatureType::LBP) == c.lbp);
    CHECK(cc.has_tilted() == c.tilted);
    CHECK(cc.stumps_only() == c.stumps);
  }
}

static std::vector<std::string> raw_golden(const std::string& tag, const std::string& fmt) {
  std::istringstream in(vt::read_text(vt::golden("cascade_raw.txt")));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string t, f;
    size_t n = 0;
    ls >> t >> f >> n;
    if (t != tag || f != fmt) continue;
    std::vector<std::string> v(n);
    for (auto& s : v) ls >> s;
    return v;
  }
  return {};
}

static std::vector<std::string> keys(const std::vector<Detection>& d) {
  std::vector<std::string> v;
  for (auto& x : d) v.push_back(std::to_string(x.box.x) + "," + std::to_string(x.box.y) + "," + std::to_string(x.box.w) + "," + std::to_string(x.box.h));
  std::sort(v.begin(), v.end());
  return v;
}

TEST_CASE("old and new cascade formats: same windows as OpenCV (minNeighbors 0)") {
  Image img = load_image(vt::golden("synthetic.png"));
  REQUIRE(img.channels() == 1);
  DetectParams p;
  p.min_neighbors = 0;
  for (const char* tag : {"default7", "eyetree6"}) {
    for (const char* fmt : {"new", "old"}) {
      
      auto cc = CascadeClassifier::load(vt::golden(std::string("cascade_") + tag + "_" + fmt + ".xml"));
      auto want = raw_golden(tag, fmt);
      REQUIRE(!want.empty());
      auto got = keys(cc.detect(img, p));
      std::sort(want.begin(), want.end());
      std::vector<std::string> miss, extra;
      std::set_difference(want.begin(), want.end(), got.begin(), got.end(), std::back_inserter(miss));
      std::set_difference(got.begin(), got.end(), want.begin(), want.end(), std::back_inserter(extra));
      if (!miss.empty() || !extra.empty())
        MESSAGE(tag << " " << fmt << ": OpenCV " << want.size() << " windows, ours " << got.size() << ", missing "
                    << miss.size() << " (first " << (miss.empty() ? "-" : miss[0]) << "), extra " << extra.size()
                    << " (first " << (extra.empty() ? "-" : extra[0]) << ")"); for (auto& e : extra) MESSAGE(e);
      CHECK(miss.empty());
      CHECK(extra.empty());
    }
  }
}

TEST_CASE("results do not depend on the thread count") {
  Image img = load_image(vt::golden("synthetic.png"));
  auto cc = CascadeClassifier::load(vt::golden("cascade_default7_new.xml"));
  DetectParams p;
  p.min_neighbors = 0;
  p.threads = 1;
  auto a = cc.detect_candidates(img, p);
  p.threads = 3;
  auto b = cc.detect_candidates(img, p);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].box == b[i].box);
    CHECK(a[i].stage_sum == b[i].stage_sum);
  }
}

TEST_CASE("group_rectangles follows OpenCV's rules") {
  std::vector<Candidate> c;
  for (int i = 0; i < 4; ++i) c.push_back({Rect{100 + i, 100, 50, 50}, double(i)});
  c.push_back({Rect{300, 300, 40, 40}, 0.0});  // lone window
  c.push_back({Rect{110, 110, 20, 20}, 0.0});  // small inside big cluster
  c.push_back({Rect{111, 110, 20, 20}, 0.0});
  auto g = group_rectangles(c, 1);
  REQUIRE(g.size() == 1);
  CHECK(g[0].box == Rect{102, 100, 50, 50});  // mean 101.5 rounds half to even
  CHECK(g[0].neighbors == 4);
  CHECK(g[0].score == 3.0);
  CHECK(group_rectangles(c, 0).size() == c.size());
  CHECK(group_rectangles(c, 4).empty());
}

TEST_CASE("scales follow OpenCV (window fits, minSize/maxSize, single-size search)") {
  auto cc = CascadeClassifier::load(vt::golden("cascade_default7_new.xml"));
  DetectParams p;
  auto s = cc.scales(100, 60, p);
  REQUIRE(!s.empty());
  CHECK(s[0] == 1.f);
  CHECK(int(std::nearbyint(24 * double(s.back()))) <= 60);
  p.min_width = p.min_height = 40;
  p.max_width = p.max_height = 40;
  auto one = cc.scales(100, 60, p);
  REQUIRE(one.size() == 1);
  CHECK(std::abs(24 * one[0] - 40) < 3);
  CHECK(cc.scales(23, 100, DetectParams{}).empty());
  Image tiny(1, 1, 1);
  CHECK(cc.detect(tiny).empty());
  CHECK(cc.detect(Image()).empty());
}

TEST_CASE("SIMD window evaluation (Haar stumps AVX-512 and AVX2; Haar trees and LBP AVX-512) equals the scalar reference (run_window)") {
  std::vector<Image> imgs{load_image(vt::golden("synthetic.png"))};
  if (vt::have_shared()) imgs.push_back(resize(to_grey(load_image(vt::shared_dir() + "/samples/astronaut.png")), 300, 300));
  else MESSAGE("shared data absent: SIMD-vs-scalar check on the synthetic image only");
  // random noise with flat patches exercises the variance rejection and the skip rule
  Image noise = vt::random_image(97, 83, 1, 77);
  for (int y = 10; y < 40; ++y)
    for (int x = 5; x < 60; ++x) noise.at(x, y) = 128;
  imgs.push_back(noise);
  for (const char* f : {"weights/haarcascade_frontalface_default.xml", "weights/haarcascade_eye.xml",
                        "weights/haarcascade_frontalface_alt.xml", "weights/lbpcascade_frontalface_improved.xml",
                        "weights/haarcascade_frontalface_alt2.xml", "weights/haarcascade_eye_tree_eyeglasses.xml"}) {
    auto cc = CascadeClassifier::load(vt::repo(f));
    for (const Image& img : imgs) {
      DetectParams p;
      p.min_neighbors = 0;
      p.scale_factor = 1.07;
      p.simd = false;
      auto ref = cc.detect_candidates(img, p);
      for (bool avx512 : {true, false}) {
        p.simd = true;
        p.allow_avx512 = avx512;  // AVX-512 kernel, then the AVX2 one
        auto fast = cc.detect_candidates(img, p);
        CAPTURE(f);
        CAPTURE(avx512);
        REQUIRE(ref.size() == fast.size());
        bool same = true;
        for (size_t i = 0; i < ref.size(); ++i) same = same && ref[i].box == fast[i].box && ref[i].stage_sum == fast[i].stage_sum;
        CHECK(same);
      }
    }
  }
}

TEST_CASE("one classifier shared by several threads gives the same boxes") {
  Image img = load_image(vt::golden("synthetic.png"));
  const auto cc = CascadeClassifier::load(vt::golden("cascade_eyetree6_new.xml"));
  DetectParams p;
  p.min_neighbors = 1;
  p.threads = 1;
  const auto want = cc.detect(img, p);
  std::vector<std::vector<Detection>> got(4);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) ts.emplace_back([&, t] { got[size_t(t)] = cc.detect(img, p); });
  for (auto& t : ts) t.join();
  for (auto& g : got) {
    REQUIRE(g.size() == want.size());
    for (size_t i = 0; i < g.size(); ++i) CHECK(g[i].box == want[i].box);
  }
}
