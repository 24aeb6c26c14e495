// FAST / ORB / matching / LBP / alignment.
#include <sstream>

#include "common.hpp"

using namespace vision;

TEST_CASE("FAST-9 fast path equals the reference; NMS keeps local maxima") {
  for (int t = 0; t < 6; ++t) {
    Image img = vt::random_image(64 + t * 7, 48 + t * 5, 1, 200 + t);
    Image sm = gaussian_blur7(img);  // fewer, more realistic corners
    for (const Image* g : {&img, &sm}) {
      for (int thr : {10, 20, 40}) CHECK(fast9(*g, thr) == fast9_reference(*g, thr));
    }
  }
  // a bright square on black: its 4 corners are FAST corners
  Image sq(40, 40, 1, 0);
  for (int y = 10; y < 30; ++y)
    for (int x = 10; x < 30; ++x) sq.at(x, y) = 200;
  auto kp = fast_corners(sq, 20);
  REQUIRE(kp.size() >= 4);
  int near_corner = 0;
  for (auto& k : kp)
    for (auto c : {std::pair<int, int>{10, 10}, {29, 10}, {10, 29}, {29, 29}})
      near_corner += std::abs(k.x - c.first) <= 3 && std::abs(k.y - c.second) <= 3;  // ties on the plateau: first in raster order
  CHECK(near_corner >= 4);
  CHECK(harris_response(sq, 10, 10) > harris_response(sq, 20, 10));  // corner beats edge
}

TEST_CASE("Hamming distance: popcount path equals the bit loop") {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 200; ++i) {
    Descriptor a{rng(), rng(), rng(), rng()}, b{rng(), rng(), rng(), rng()};
    CHECK(hamming(a, b) == hamming_reference(a, b));
  }
  std::vector<Descriptor> q{{1, 0, 0, 0}, {0xFF, 0, 0, 0}}, t{{1, 0, 0, 0}, {0xF0, 0, 0, 0}, {0xFFFF, 0, 0, 0}};
  auto m = match_ratio(q, t, 0.8f);
  REQUIRE(!m.empty());
  CHECK(m[0].train == 0);
  CHECK(m[0].distance == 0);
}

TEST_CASE("ORB on rotated/scaled pairs: share of correct matches >= OpenCV's") {
  VT_REQUIRE_SHARED();
  std::istringstream in(vt::read_text(vt::golden("orb_pairs.txt")));
  std::string sample;
  double ang, sc;
  int cv_m, cv_ok;
  double cv_share;
  long tot_ok = 0, tot_m = 0, cv_tot_ok = 0, cv_tot_m = 0;
  std::string last;
  Image g;
  std::vector<KeyPoint> k1;
  std::vector<Descriptor> d1;
  while (in >> sample >> ang >> sc >> cv_m >> cv_ok >> cv_share) {
    if (sample != last) {
      g = to_grey(load_image(vt::shared_dir() + "/samples/" + sample));
      orb_detect_and_compute(g, k1, d1);
      last = sample;
    }
    const Affine M = rotation_matrix(g.width() / 2.0, g.height() / 2.0, ang, sc);
    Image g2 = warp_affine(g, M, g.width(), g.height());
    std::vector<KeyPoint> k2;
    std::vector<Descriptor> d2;
    orb_detect_and_compute(g2, k2, d2);
    auto m = match_ratio(d1, d2, 0.8f);
    int ok = 0;
    for (auto& x : m) {
      double px, py;
      M.apply(k1[size_t(x.query)].x, k1[size_t(x.query)].y, px, py);
      double ex = px - k2[size_t(x.train)].x, ey = py - k2[size_t(x.train)].y;
      ok += ex * ex + ey * ey <= 9.0;
    }
    MESSAGE(sample << " angle " << ang << " scale " << sc << ": ours " << ok << "/" << m.size() << " = "
                   << (m.empty() ? 0.0 : double(ok) / m.size()) << ", OpenCV " << cv_ok << "/" << cv_m << " = " << cv_share);
    tot_ok += ok;
    tot_m += long(m.size());
    cv_tot_ok += cv_ok;
    cv_tot_m += cv_m;
  }
  REQUIRE(tot_m > 0);
  const double ours = double(tot_ok) / tot_m, theirs = double(cv_tot_ok) / cv_tot_m;
  MESSAGE("ORB correct-match share: ours " << ours << " (" << tot_ok << " correct), OpenCV " << theirs << " ("
                                           << cv_tot_ok << " correct)");
  CHECK(ours >= theirs);
}

TEST_CASE("uniform LBP histograms") {
  Image flat(20, 20, 1, 100);
  auto h = lbp_histogram(flat, 2, 2);
  REQUIRE(h.size() == 4 * 59);
  // all neighbours >= centre: code 255, a uniform pattern, one bin holds everything
  float mx = 0, sum = 0;
  for (int b = 0; b < 59; ++b) { mx = std::max(mx, h[size_t(b)]); sum += h[size_t(b)]; }
  CHECK(mx == doctest::Approx(1.f));
  CHECK(sum == doctest::Approx(1.f));
  Image n1 = vt::random_image(40, 40, 1, 1), n2 = vt::random_image(40, 40, 1, 2);
  auto a = lbp_histogram(n1), b = lbp_histogram(n2);
  CHECK(chi_square(a, a) == 0.0);
  CHECK(chi_square(a, b) > 0.0);
  CHECK(chi_square(a, lbp_histogram(flat)) > chi_square(a, b));
}

TEST_CASE("alignment puts the eyes level at the framing positions") {
  Eyes e;
  e.lx = 100; e.ly = 120; e.rx = 160; e.ry = 100;  // tilted face
  AlignParams ap;
  Affine A = alignment_transform(e, ap);
  double x, y;
  A.apply(e.lx, e.ly, x, y);
  CHECK(x == doctest::Approx(ap.left_x * ap.size).epsilon(1e-6));
  CHECK(y == doctest::Approx(ap.eye_y * ap.size).epsilon(1e-6));
  A.apply(e.rx, e.ry, x, y);
  CHECK(x == doctest::Approx(ap.right_x * ap.size).epsilon(1e-6));
  CHECK(y == doctest::Approx(ap.eye_y * ap.size).epsilon(1e-6));
  Image img = vt::random_image(300, 300, 3, 5);
  Image out = align_face(img, e, ap);
  CHECK(out.width() == 200);
  CHECK(out.channels() == 3);
}

TEST_CASE("eyes found on the astronaut, crop framed like UTKFace") {
  VT_REQUIRE_SHARED();
  Image img = load_image(vt::shared_dir() + "/samples/astronaut.png");
  auto fc = CascadeClassifier::load(vt::repo("weights/haarcascade_frontalface_default.xml"));
  auto ec = CascadeClassifier::load(vt::repo("weights/haarcascade_eye.xml"));
  auto faces = fc.detect(img);
  REQUIRE(faces.size() == 1);
  Eyes e = find_eyes(img, faces[0].box, ec);
  CHECK(e.left_found);
  CHECK(e.right_found);
  CHECK(e.lx < e.rx);
  CHECK(std::abs(e.ly - e.ry) < faces[0].box.h * 0.15);
  Image crop200 = align_face(img, e);
  // the eye cascade on the aligned crop finds the eyes near the framing positions
  DetectParams p;
  p.min_width = p.min_height = 20;
  p.max_width = p.max_height = 80;
  auto eyes = ec.detect(crop(to_grey(crop200), Rect{0, 0, 200, 110}), p);
  int near = 0;
  for (auto& d : eyes) {
    float cx = d.box.x + d.box.w / 2.f, cy = d.box.y + d.box.h / 2.f;
    near += (std::abs(cx - 56.9f) < 12 || std::abs(cx - 135.5f) < 12) && std::abs(cy - 58.5f) < 12;
  }
  CHECK(near >= 2);
}
