// Box-for-box comparison with OpenCV 4.6 (golden/detect.json from tools/opencv_golden.py detect).
// "boxes": OpenCV on the grey pixels our loader decodes (the detector comparison proper);
// "boxes_cv_decode": OpenCV on its own decode (cv2.imread), reported for information.
#include <nlohmann/json.hpp>

#include <chrono>
#include <map>

#include "common.hpp"

using namespace vision;

namespace {
struct BoxMatch { int matched = 0, want = 0, got = 0, exact = 0; };

BoxMatch compare(const std::vector<Detection>& got, const std::vector<std::vector<int>>& want, bool verbose) {
  BoxMatch m;
  m.want = int(want.size());
  m.got = int(got.size());
  std::vector<bool> used(got.size(), false);
  for (const auto& w : want) {
    Rect r{w[0], w[1], w[2], w[3]};
    int best = -1;
    double bi = 0.9 - 1e-12;
    for (size_t k = 0; k < got.size(); ++k) {
      if (used[k]) continue;
      double v = iou(r, got[k].box);
      if (v >= bi) { bi = v; best = int(k); }
    }
    if (best >= 0) {
      used[best] = true;
      m.matched++;
      if (got[best].box == r && (w.size() < 5 || got[best].neighbors == w[4])) m.exact++;
      else if (verbose)
        MESSAGE("not identical: OpenCV " << w[0] << "," << w[1] << "," << w[2] << "," << w[3] << " n=" << (w.size() > 4 ? w[4] : -1)
                << " ours " << got[best].box.x << "," << got[best].box.y << "," << got[best].box.w << "," << got[best].box.h
                << " n=" << got[best].neighbors);
    }
  }
  return m;
}
}  // namespace

TEST_CASE("detector gives OpenCV 4.6's boxes on samples and wider-dev photos") {
  VT_REQUIRE_SHARED();
  const std::string gpath = vt::golden("detect.json");
  REQUIRE(vt::exists(gpath));
  auto g = nlohmann::json::parse(vt::read_text(gpath));
  std::vector<Image> greys;
  for (const auto& key : g["images"]) {
    std::string p = vt::shared_dir() + "/" + key.get<std::string>();
    if (!vt::exists(p)) {
      MESSAGE("SKIPPED: " << p << " is missing from the shared data");
      return;
    }
    greys.push_back(to_grey(load_image(p)));
  }
  std::map<std::string, CascadeClassifier> cascades;
  BoxMatch total, total_cv;
  for (const auto& run : g["runs"]) {
    const std::string cf = run["cascade"];
    if (!cascades.count(cf)) cascades.emplace(cf, CascadeClassifier::load(vt::repo("weights/" + cf)));
    const CascadeClassifier& cc = cascades.at(cf);
    DetectParams p;
    p.scale_factor = run["scale_factor"];
    p.min_neighbors = run["min_neighbors"];
    p.min_width = p.min_height = run["min_size"];
    p.max_width = p.max_height = run["max_size"];
    BoxMatch rm, rc;
    auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < greys.size(); ++i) {
      auto got = cc.detect(greys[i], p);
      auto want = run["boxes"][i].get<std::vector<std::vector<int>>>();
      BoxMatch m = compare(got, want, true);
      BoxMatch c = compare(got, run["boxes_cv_decode"][i].get<std::vector<std::vector<int>>>(), false);
      if (m.matched != m.want || m.got != m.want)
        MESSAGE(cf << " image " << g["images"][i].get<std::string>() << ": OpenCV " << m.want << " boxes, ours "
                   << m.got << ", matched " << m.matched);
      rm.matched += m.matched; rm.want += m.want; rm.got += m.got; rm.exact += m.exact;
      rc.matched += c.matched; rc.want += c.want; rc.got += c.got; rc.exact += c.exact;
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE(cf << " sf=" << p.scale_factor << " mn=" << p.min_neighbors << " min=" << p.min_width << " max="
               << p.max_width << ": OpenCV " << rm.want << " boxes, ours " << rm.got << ", matched " << rm.matched
               << " (identical incl. neighbours " << rm.exact << "); vs OpenCV's own JPEG decode: matched "
               << rc.matched << "/" << rc.want << ", ours " << rc.got << "  [" << int(ms) << " ms]");
    CHECK(rm.matched >= 0.99 * rm.want);
    CHECK(rm.got == rm.matched);  // no extra boxes
    total.matched += rm.matched; total.want += rm.want; total.got += rm.got; total.exact += rm.exact;
    total_cv.matched += rc.matched; total_cv.want += rc.want;
  }
  MESSAGE("all runs: OpenCV " << total.want << " boxes, ours " << total.got << ", matched " << total.matched
                              << ", identical " << total.exact << "; vs OpenCV's own decode " << total_cv.matched << "/"
                              << total_cv.want);
}
