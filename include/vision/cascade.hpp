// vision/cascade.hpp - Viola-Jones cascade detector compatible with OpenCV's cascade XML files
// (new "opencv-cascade-classifier" format and the old haartraining format; Haar, tilted Haar and
// LBP features) whose detect() follows OpenCV 4.6's CascadeClassifier::detectMultiScale rules:
//  * scales: factor_k = scaleFactor^k (double) while the rounded window fits the image, kept as
//    float; a scale is used when its window lies within [minSize, maxSize];
//  * each scale resizes the image to round(W/f) x round(H/f) with the bit-exact bilinear resize
//    (INTER_LINEAR_EXACT) and scans the trained window over it with a step of 2 pixels below
//    scale 2 and 1 from 2 on, skipping one extra step after a window rejected by stage 0;
//  * each window is normalized by the standard deviation of its interior (the window shrunk by
//    one pixel on each side); windows whose deviation is too small (area/sqrt(n*sumsq-sum^2)
//    >= 0.1) are rejected; a node compares feature*norm (float) with its threshold; a stage
//    fails when its double sum of leaf values is below (threshold - 1e-5f);
//  * rows are cut into stripes as OpenCV's parallel loop does (ceil(first working width/32)
//    stripes of floor-divided height): a scale's last rows may be left unscanned, as in OpenCV;
//  * hits map back to the image as (round(x*f), round(y*f), round(w*f), round(h*f)) and are merged
//    by group_rectangles (eps 0.2, clusters of at most minNeighbors dropped, small clusters inside
//    bigger ones dropped), then clipped to the image.
// The classifier is immutable after loading; detect() is const and safe to call from many threads.
#pragma once
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "image.hpp"
#include "integral.hpp"
#include "kernels/cascade_avx2.hpp"
#include "kernels/cascade_avx512.hpp"
#include "transform.hpp"
#include "xml.hpp"

#include "../cnn/checked.hpp"
#include "../cnn/parallel.hpp"

namespace vision {

struct DetectParams {
  double scale_factor = 1.1;
  int min_neighbors = 3;
  int min_width = 0, min_height = 0;  // 0: no limit
  int max_width = 0, max_height = 0;  // 0: the image size
  int threads = 0;                    // 0: cnn::num_threads() (all cores unless set)
  bool simd = true;                   // use a SIMD kernel where the CPU has one (same results)
  bool allow_avx512 = true;           // false: AVX2 at most (to test or compare the kernels)
};

struct Detection {
  Rect box;
  int neighbors = 0;   // raw windows merged into this box (OpenCV's "weights")
  double score = 0.0;  // largest last-stage sum among those windows
};

// A raw window accepted by every stage, before grouping.
struct Candidate {
  Rect box;
  double stage_sum = 0.0;
};

namespace detail {
inline int round_half_even(double v) { return int(std::nearbyint(v)); }
inline int round_half_even_f(float v) { return int(std::nearbyintf(v)); }
}  // namespace detail

// OpenCV's groupRectangles(rects, groupThreshold, eps) plus a score per box.
inline std::vector<Detection> group_rectangles(const std::vector<Candidate>& cands, int group_threshold,
                                               double eps = 0.2) {
  std::vector<Detection> out;
  if (group_threshold <= 0 || cands.empty()) {
    for (auto& c : cands) out.push_back({c.box, 1, c.stage_sum});
    return out;
  }
  const int n = int(cands.size());
  auto similar = [eps](const Rect& a, const Rect& b) {
    double delta = eps * (std::min(a.w, b.w) + std::min(a.h, b.h)) * 0.5;
    return std::abs(a.x - b.x) <= delta && std::abs(a.y - b.y) <= delta &&
           std::abs(a.x + a.w - b.x - b.w) <= delta && std::abs(a.y + a.h - b.y - b.h) <= delta;
  };
  std::vector<int> parent(n);
  for (int i = 0; i < n; ++i) parent[i] = i;
  auto find = [&](int i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
  };
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j)
      if (similar(cands[i].box, cands[j].box)) {
        int a = find(i), b = find(j);
        if (a != b) parent[std::max(a, b)] = std::min(a, b);
      }
  std::vector<int> label(n), root_label(n, -1);
  int nclasses = 0;
  for (int i = 0; i < n; ++i) {
    int r = find(i);
    if (root_label[r] < 0) root_label[r] = nclasses++;
    label[i] = root_label[r];
  }
  struct Acc { long long x = 0, y = 0, w = 0, h = 0; int n = 0; double best = -1e300; };
  std::vector<Acc> acc(nclasses);
  for (int i = 0; i < n; ++i) {
    Acc& a = acc[label[i]];
    a.x += cands[i].box.x; a.y += cands[i].box.y; a.w += cands[i].box.w; a.h += cands[i].box.h;
    a.n++;
    a.best = std::max(a.best, cands[i].stage_sum);
  }
  std::vector<Rect> rr(nclasses);
  for (int k = 0; k < nclasses; ++k) {
    float s = 1.f / float(acc[k].n);
    rr[k] = Rect{detail::round_half_even_f(float(acc[k].x) * s), detail::round_half_even_f(float(acc[k].y) * s),
                 detail::round_half_even_f(float(acc[k].w) * s), detail::round_half_even_f(float(acc[k].h) * s)};
  }
  for (int i = 0; i < nclasses; ++i) {
    const Rect r1 = rr[i];
    const int n1 = acc[i].n;
    if (n1 <= group_threshold) continue;
    int j = 0;
    for (; j < nclasses; ++j) {
      const int n2 = acc[j].n;
      if (j == i || n2 <= group_threshold) continue;
      const Rect r2 = rr[j];
      int dx = detail::round_half_even(r2.w * eps), dy = detail::round_half_even(r2.h * eps);
      if (r1.x >= r2.x - dx && r1.y >= r2.y - dy && r1.x + r1.w <= r2.x + r2.w + dx &&
          r1.y + r1.h <= r2.y + r2.h + dy && (n2 > std::max(3, n1) || n1 < 3))
        break;
    }
    if (j == nclasses) out.push_back({r1, n1, acc[i].best});
  }
  return out;
}

class CascadeClassifier {
 public:
  enum class FeatureType { Haar, LBP };

  // Load an OpenCV cascade XML file; throws vision::Error("<path>: <problem>").
  static CascadeClassifier load(const std::string& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) throw Error(path + ": is a directory, not a cascade file");
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(path + ": cannot open cascade file");
    std::stringstream ss;
    ss << f.rdbuf();
    std::string text = ss.str();
    if (text.empty()) throw Error(path + ": empty cascade file");
    return parse(text, path);
  }

  static CascadeClassifier parse(const std::string& text, const std::string& source) {
    auto doc = xml::parse(text, source);
    const xml::Node* top = doc->children.empty() ? nullptr : doc->children[0].get();
    if (!top || top->name != "opencv_storage" || top->children.empty())
      throw Error(source + ": not an OpenCV cascade (expected <opencv_storage> with a cascade inside)");
    const xml::Node* c = top->children[0].get();
    CascadeClassifier cc;
    cc.src_ = source;
    if (c->child("stageType") || c->attr("type_id") == "opencv-cascade-classifier") cc.read_new(*c);
    else if (c->child("size") || c->attr("type_id") == "opencv-haar-classifier") cc.read_old(*c);
    else throw Error(source + ": unrecognized cascade format in <" + c->name + ">");
    cc.finish();
    return cc;
  }

  FeatureType feature_type() const { return type_; }
  int window_width() const { return win_w_; }
  int window_height() const { return win_h_; }
  size_t stage_count() const { return stages_.size(); }
  size_t feature_count() const { return type_ == FeatureType::Haar ? haar_.size() : lbp_.size(); }
  bool has_tilted() const { return tilted_; }
  bool stumps_only() const { return max_nodes_ == 1; }

  // OpenCV's detectMultiScale: grey 8-bit image (colour is converted with to_grey first).
  std::vector<Detection> detect(const Image& img, const DetectParams& p = {}) const {
    auto d = group_rectangles(detect_candidates(img, p), p.min_neighbors, 0.2);
    // as cv::CascadeClassifier::detectMultiScale: clip to the image, drop what is left empty
    std::vector<Detection> out;
    for (auto& x : d) {
      int x0 = std::max(x.box.x, 0), y0 = std::max(x.box.y, 0);
      int x1 = std::min(x.box.x + x.box.w, img.width()), y1 = std::min(x.box.y + x.box.h, img.height());
      if (x1 <= x0 || y1 <= y0) continue;
      x.box = Rect{x0, y0, x1 - x0, y1 - y0};
      out.push_back(x);
    }
    return out;
  }

  // The scale factors OpenCV would use for an image of this size.
  std::vector<float> scales(int img_w, int img_h, const DetectParams& p) const {
    std::vector<float> all, used;
    if (img_w < win_w_ || img_h < win_h_) return used;
    if (!(p.scale_factor > 1.0)) throw Error("detect: scale factor must be > 1 (got " + std::to_string(p.scale_factor) + ")");
    const int max_w = (p.max_width <= 0 || p.max_height <= 0) ? img_w : p.max_width;
    const int max_h = (p.max_width <= 0 || p.max_height <= 0) ? img_h : p.max_height;
    for (double f = 1;; f *= p.scale_factor) {
      int ww = detail::round_half_even(win_w_ * f), wh = detail::round_half_even(win_h_ * f);
      if (ww > img_w || wh > img_h) break;
      all.push_back(float(f));
      if (all.size() > 100000) break;
    }
    for (float f : all) {
      int ww = detail::round_half_even_f(float(win_w_) * f), wh = detail::round_half_even_f(float(win_h_) * f);
      if (ww > max_w || wh > max_h) break;
      if (ww < p.min_width || wh < p.min_height) continue;
      used.push_back(f);
    }
    if (used.empty() && !all.empty() && p.min_width == max_w && p.min_height == max_h) {
      // single-size search: the closest available scale (L2 on the window size)
      double best = 1e300;
      float bf = all[0];
      for (float f : all) {
        double dw = detail::round_half_even_f(float(win_w_) * f) - p.min_width;
        double dh = detail::round_half_even_f(float(win_h_) * f) - p.min_height;
        double d = dw * dw + dh * dh;
        if (d < best) { best = d; bf = f; }
      }
      used.push_back(bf);
    }
    return used;
  }

  // Every window accepted by the whole cascade (before grouping), in a fixed order
  // (scale, then row, then column) whatever the thread count.
  std::vector<Candidate> detect_candidates(const Image& img, const DetectParams& p) const {
    if (img.empty()) return {};
    if (img.channels() != 1) return detect_candidates(to_grey(img), p);
    const std::vector<float> sc = scales(img.width(), img.height(), p);
    const int ns = int(sc.size());
    std::vector<std::vector<Candidate>> per(ns);
    // OpenCV splits rows into stripes sized from the first scale's working width; the last
    // rows of a scale can fall outside every stripe and are then never scanned.
    int nstripes = 1;
    if (ns > 0) {
      int w0 = detail::round_half_even_f(float(img.width()) / sc[0]) + 1 - win_w_;
      nstripes = std::max(1, int(std::ceil(std::max(w0, 0) / 32.0)));
    }
    // One work item per scale on the engine's thread pool (cnn/parallel.hpp); the pool rethrows
    // the first exception an item throws.
    cnn::parallel_for(
        ns, int64_t(1) << 20,
        [&](int64_t k) { per[k] = scan_scale(img, sc[k], nstripes, p.simd ? (p.allow_avx512 ? 2 : 1) : 0); },
        p.threads);
    std::vector<Candidate> all;
    for (auto& v : per) all.insert(all.end(), v.begin(), v.end());
    return all;
  }

  // Evaluate one window of an already prepared scale: >0 accepted, 0 rejected at stage 0,
  // -k rejected at stage k, -1 also for a window too flat to normalize (as OpenCV's runAt).
  struct Layer;
  int run_window(const Layer& L, int x, int y, double& sum) const;

  // Per-scale node tables: every offset resolved against the layer's row stride, nodes stored in
  // evaluation order so that a window walks them sequentially.
  using OptHaar = kernels::HaarNode;  // tilted rects point into the tilted table
  using OptLbp = kernels::LbpNode;  // 4x4 grid of integral points, 256-bit subset
  // Per-scale resized image and integral tables, public for tests and tools.
  struct Layer {
    int w = 0, h = 0;  // resized image size; tables are (w+1) x (h+1)
    size_t st = 0, tab = 0;
    Image img;
    std::vector<uint32_t> buf;  // sum | sqsum (Haar) | tilted (if any), each st*(h+1)
    std::vector<OptHaar> hn;    // per node (Haar)
    std::vector<OptLbp> ln;     // per node (LBP)
    int nofs[4] = {0, 0, 0, 0};
    double norm_area = 0;
    const uint32_t* sum() const { return buf.data(); }
    const uint32_t* sqsum() const { return buf.data() + tab; }
    const uint32_t* tilted() const { return buf.data() + 2 * tab; }
  };
  Layer prepare(const Image& grey, float scale) const {
    Layer L;
    L.w = detail::round_half_even_f(float(grey.width()) / scale);
    L.h = detail::round_half_even_f(float(grey.height()) / scale);
    L.st = size_t(L.w) + 1;
    L.tab = L.st * (size_t(L.h) + 1);
    if (L.tab * 6 + 64 > size_t(0x7fffffff))  // node offsets are 32-bit
      throw Error("detect: image too large for the detector (" + std::to_string(grey.width()) + "x" +
                  std::to_string(grey.height()) + ")");
    L.img = Image(L.w, L.h, 1);
    resize_linear(grey.data(), grey.width(), grey.height(), grey.stride(), L.img.data(), L.w, L.h, L.img.stride(), 1);
    if (type_ == FeatureType::Haar) {
      L.buf.resize(L.tab * (tilted_ ? 3 : 2) + 64);  // padding: SIMD rows read past the last window
      integral_sums(L.img.data(), L.w, L.h, L.img.stride(), L.buf.data(), L.buf.data() + L.tab);
      if (tilted_) integral_tilted(L.img.data(), L.w, L.h, L.img.stride(), L.buf.data() + 2 * L.tab);
    } else {
      L.buf.resize(L.tab + 64);
      integral_sums(L.img.data(), L.w, L.h, L.img.stride(), L.buf.data(), nullptr);
    }
    make_offsets(L);
    return L;
  }

 private:
  struct HaarFeature {
    Rect r[3];
    float wt[3] = {0, 0, 0};
    bool tilted = false;
  };
  struct Stage { int first_tree, ntrees; float threshold; };
  struct Tree { int first_node, nnodes, first_leaf, nleaves; };
  struct Node { int left, right, feature; float threshold; };

  std::string src_;
  FeatureType type_ = FeatureType::Haar;
  int win_w_ = 0, win_h_ = 0, ncat_ = 0, subset_size_ = 0, max_nodes_ = 0;
  bool tilted_ = false;
  std::vector<HaarFeature> haar_;
  std::vector<Rect> lbp_;
  std::vector<Stage> stages_;
  std::vector<Tree> trees_;
  std::vector<Node> nodes_;
  std::vector<float> leaves_;
  std::vector<int32_t> subsets_;  // subset_size_ ints per node (LBP)

  [[noreturn]] void fail(const std::string& why) const { throw Error(src_ + ": " + why); }

  const xml::Node& need(const xml::Node& n, const char* name) const {
    const xml::Node* c = n.child(name);
    if (!c) fail("missing <" + std::string(name) + "> in <" + n.name + ">");
    return *c;
  }
  std::vector<double> numbers(const xml::Node& n) const {
    std::vector<double> v;
    const char* s = n.text.c_str();
    for (;;) {
      while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') ++s;
      if (!*s) break;
      char* e = nullptr;
      errno = 0;
      double d = std::strtod(s, &e);
      if (e == s || errno == ERANGE || !std::isfinite(d) ||
          (*e && *e != ' ' && *e != '\t' && *e != '\n' && *e != '\r'))
        fail("bad number in <" + n.name + ">: '" + std::string(s, std::min<size_t>(std::strlen(s), 20)) + "'");
      v.push_back(d);
      s = e;
    }
    return v;
  }
  double number(const xml::Node& n) const {
    auto v = numbers(n);
    if (v.size() != 1) fail("expected one number in <" + n.name + ">");
    return v[0];
  }
  int integer(double d, const char* what) const {
    if (d != std::floor(d) || d < -2147483648.0 || d > 4294967295.0) fail(std::string("bad integer for ") + what);
    return d > 2147483647.0 ? int32_t(uint32_t(d)) : int(d);
  }

  HaarFeature read_haar_feature(const xml::Node& f) const {
    HaarFeature hf;
    const xml::Node& rects = need(f, "rects");
    int k = 0;
    for (auto& r : rects.children) {
      if (k >= 3) fail("Haar feature with more than 3 rectangles");
      auto v = numbers(*r);
      if (v.size() != 5) fail("Haar rectangle needs 'x y w h weight'");
      hf.r[k] = Rect{integer(v[0], "rect x"), integer(v[1], "rect y"), integer(v[2], "rect w"), integer(v[3], "rect h")};
      hf.wt[k] = float(v[4]);
      ++k;
    }
    if (k == 0) fail("Haar feature without rectangles");
    if (const xml::Node* t = f.child("tilted")) hf.tilted = number(*t) != 0;
    return hf;
  }

  void read_new(const xml::Node& c) {
    const std::string st = trim(need(c, "stageType").text);
    if (st != "BOOST") fail("unsupported stageType '" + st + "' (only BOOST)");
    const std::string ft = trim(need(c, "featureType").text);
    if (ft == "HAAR") type_ = FeatureType::Haar;
    else if (ft == "LBP") type_ = FeatureType::LBP;
    else fail("unsupported featureType '" + ft + "' (HAAR or LBP)");
    win_w_ = integer(number(need(c, "width")), "width");
    win_h_ = integer(number(need(c, "height")), "height");
    ncat_ = 0;
    if (const xml::Node* fp = c.child("featureParams"))
      if (const xml::Node* mc = fp->child("maxCatCount")) ncat_ = integer(number(*mc), "maxCatCount");
    if (type_ == FeatureType::LBP && ncat_ != 256) fail("LBP cascade needs maxCatCount 256");
    if (type_ == FeatureType::Haar && ncat_ != 0) fail("Haar cascade needs maxCatCount 0");
    subset_size_ = (ncat_ + 31) / 32;
    const int node_step = 3 + (ncat_ > 0 ? subset_size_ : 1);
    const xml::Node& stages = need(c, "stages");
    for (auto& s : stages.children) {
      Stage stg;
      stg.threshold = float(number(need(*s, "stageThreshold"))) - 1e-5f;
      stg.first_tree = int(trees_.size());
      const xml::Node& weak = need(*s, "weakClassifiers");
      for (auto& w : weak.children) {
        auto in = numbers(need(*w, "internalNodes"));
        auto lv = numbers(need(*w, "leafValues"));
        if (in.empty() || in.size() % node_step != 0)
          fail("internalNodes of stage " + std::to_string(stages_.size()) + " has " + std::to_string(in.size()) +
               " values, not a multiple of " + std::to_string(node_step));
        Tree t;
        t.first_node = int(nodes_.size());
        t.nnodes = int(in.size() / node_step);
        t.first_leaf = int(leaves_.size());
        t.nleaves = int(lv.size());
        for (int k = 0; k < t.nnodes; ++k) {
          const double* q = &in[size_t(k) * node_step];
          Node nd{integer(q[0], "node left"), integer(q[1], "node right"), integer(q[2], "feature index"), 0.f};
          if (ncat_ > 0) {
            for (int j = 0; j < subset_size_; ++j) subsets_.push_back(integer(q[3 + j], "LBP subset"));
          } else {
            nd.threshold = float(q[3]);
          }
          nodes_.push_back(nd);
        }
        for (double d : lv) leaves_.push_back(float(d));
        trees_.push_back(t);
      }
      stg.ntrees = int(trees_.size()) - stg.first_tree;
      if (stg.ntrees == 0) fail("stage " + std::to_string(stages_.size()) + " has no weak classifiers");
      stages_.push_back(stg);
    }
    const xml::Node& feats = need(c, "features");
    for (auto& f : feats.children) {
      if (type_ == FeatureType::Haar) {
        haar_.push_back(read_haar_feature(*f));
      } else {
        auto v = numbers(need(*f, "rect"));
        if (v.size() != 4) fail("LBP feature needs 'x y w h'");
        lbp_.push_back(Rect{integer(v[0], "x"), integer(v[1], "y"), integer(v[2], "w"), integer(v[3], "h")});
      }
    }
  }

  void read_old(const xml::Node& c) {
    type_ = FeatureType::Haar;
    auto sz = numbers(need(c, "size"));
    if (sz.size() != 2) fail("<size> needs 'width height'");
    win_w_ = integer(sz[0], "width");
    win_h_ = integer(sz[1], "height");
    const xml::Node& stages = need(c, "stages");
    for (auto& s : stages.children) {
      Stage stg;
      stg.threshold = float(number(need(*s, "stage_threshold"))) - 1e-5f;
      stg.first_tree = int(trees_.size());
      for (auto& tr : need(*s, "trees").children) {
        Tree t;
        t.first_node = int(nodes_.size());
        t.first_leaf = int(leaves_.size());
        t.nnodes = int(tr->children.size());
        if (t.nnodes == 0) fail("empty tree in stage " + std::to_string(stages_.size()));
        int nleaves = 0;
        for (auto& nd : tr->children) {
          Node n{0, 0, int(haar_.size()), float(number(need(*nd, "threshold")))};
          haar_.push_back(read_haar_feature(need(*nd, "feature")));
          auto child = [&](const char* node_tag, const char* val_tag) {
            if (const xml::Node* x = nd->child(node_tag)) {
              int k = integer(number(*x), node_tag);
              if (k <= 0) fail(std::string("bad <") + node_tag + ">");
              return k;
            }
            leaves_.push_back(float(number(need(*nd, val_tag))));
            return -(nleaves++);
          };
          n.left = child("left_node", "left_val");
          n.right = child("right_node", "right_val");
          nodes_.push_back(n);
        }
        t.nleaves = nleaves;
        trees_.push_back(t);
      }
      stg.ntrees = int(trees_.size()) - stg.first_tree;
      if (stg.ntrees == 0) fail("stage " + std::to_string(stages_.size()) + " has no trees");
      stages_.push_back(stg);
    }
  }

  static std::string trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  }

  // Limits on what a cascade file may hold (OpenCV's largest bundled cascade has 2913 features and
  // 25 stages); the geometry must also fit the 4096x4096 window limit.
  static constexpr int64_t kMaxWindow = 4096;
  static constexpr int64_t kMaxStages = 1 << 12;
  static constexpr int64_t kMaxNodes = 1 << 20;     // internal nodes (and so features used)
  static constexpr int64_t kMaxFeatures = 1 << 20;

  // A rectangle's far edge x + k*w (k = 1 or 3), checked in 64 bits (cnn/checked.hpp): values from
  // the file are ints, and near INT_MAX their plain sum wraps negative and passed the bounds test.
  bool edge_within(int64_t x, int64_t w, int64_t k, int64_t limit, const std::string& where) const {
    int64_t kw = 0;
    if (!cnn::checked::mul(w, k, kMaxWindow, kw) || x < 0) return false;
    return cnn::checked_sum<Error>(src_ + ": " + where, x, kw, int64_t(1) << 40) <= limit;
  }
  std::string rect_text(const Rect& r) const {
    return std::to_string(r.x) + " " + std::to_string(r.y) + " " + std::to_string(r.w) + " " + std::to_string(r.h);
  }

  // Validate everything a window evaluation relies on, then build the stump table.
  void finish() {
    if (win_w_ < 3 || win_h_ < 3 || win_w_ > kMaxWindow || win_h_ > kMaxWindow)
      fail("bad window size " + std::to_string(win_w_) + "x" + std::to_string(win_h_));
    if (stages_.empty()) fail("cascade has no stages");
    if (int64_t(stages_.size()) > kMaxStages)
      fail(std::to_string(stages_.size()) + " stages, above the limit of " + std::to_string(kMaxStages));
    if (int64_t(nodes_.size()) > kMaxNodes)
      fail(std::to_string(nodes_.size()) + " tree nodes, above the limit of " + std::to_string(kMaxNodes));
    if (int64_t(feature_count()) > kMaxFeatures)
      fail(std::to_string(feature_count()) + " features, above the limit of " + std::to_string(kMaxFeatures));
    const int nf = int(feature_count());
    if (nf == 0) fail("cascade has no features");
    const std::string wintext = std::to_string(win_w_) + "x" + std::to_string(win_h_) + " window";
    for (size_t fi = 0; fi < haar_.size(); ++fi) {
      HaarFeature& f = haar_[fi];
      for (int k = 0; k < 3; ++k) {
        Rect& r = f.r[k];
        if (!std::isfinite(f.wt[k]))
          fail("Haar feature " + std::to_string(fi) + " rectangle " + std::to_string(k) + " has weight out of float range");
        // An unused rectangle (weight 0, size 0): the kernels still read its corners, so it is
        // placed at the window origin whatever its coordinates were.
        if (f.wt[k] == 0.f && r.w == 0 && r.h == 0) {
          r = Rect{};
          continue;
        }
        const std::string where = "Haar feature " + std::to_string(fi) + " rectangle " + std::to_string(k);
        bool ok = r.w >= 0 && r.h >= 0 && r.y >= 0;
        if (ok && f.tilted) {
          // corners (x, y), (x - h, y + h), (x + w, y + w), (x + w - h, y + w + h)
          int64_t wh = 0;
          ok = int64_t(r.x) >= int64_t(r.h) && edge_within(r.x, r.w, 1, win_w_, where) &&
               cnn::checked::add(r.w, r.h, kMaxWindow, wh) && edge_within(r.y, wh, 1, win_h_, where);
        } else if (ok) {
          ok = edge_within(r.x, r.w, 1, win_w_, where) && edge_within(r.y, r.h, 1, win_h_, where);
        }
        if (!ok) fail(where + " (" + rect_text(r) + (f.tilted ? ", tilted" : "") + ") lies outside the " + wintext);
      }
      if (f.tilted) tilted_ = true;
    }
    for (size_t fi = 0; fi < lbp_.size(); ++fi) {
      const Rect& r = lbp_[fi];
      const std::string where = "LBP feature " + std::to_string(fi);
      if (r.w <= 0 || r.h <= 0 || !edge_within(r.x, r.w, 3, win_w_, where) || !edge_within(r.y, r.h, 3, win_h_, where))
        fail(where + " rectangle (" + rect_text(r) + ", 3x3 blocks) lies outside the " + wintext);
    }
    for (size_t si = 0; si < stages_.size(); ++si)
      if (!std::isfinite(stages_[si].threshold)) fail("stage " + std::to_string(si) + " threshold out of float range");
    for (size_t i = 0; i < leaves_.size(); ++i)
      if (!std::isfinite(leaves_[i])) fail("leaf value " + std::to_string(i) + " out of float range");
    max_nodes_ = 0;
    size_t si = 0;
    for (size_t ti = 0; ti < trees_.size(); ++ti) {
      const Tree& t = trees_[ti];
      while (si + 1 < stages_.size() && int(ti) >= stages_[si].first_tree + stages_[si].ntrees) ++si;
      const std::string where = "stage " + std::to_string(si) + " tree " + std::to_string(int(ti) - stages_[si].first_tree);
      if (t.nleaves != t.nnodes + 1)
        fail(where + " has " + std::to_string(t.nnodes) + " internal nodes but " + std::to_string(t.nleaves) +
             " leaf values (expected " + std::to_string(t.nnodes + 1) + ")");
      max_nodes_ = std::max(max_nodes_, t.nnodes);
      for (int k = 0; k < t.nnodes; ++k) {
        const Node& n = nodes_[size_t(t.first_node) + k];
        if (!std::isfinite(n.threshold)) fail(where + " node " + std::to_string(k) + " threshold out of float range");
        if (n.feature < 0 || n.feature >= nf)
          fail("feature index " + std::to_string(n.feature) + " out of range (the cascade has " + std::to_string(nf) +
               " features) in " + where);
        for (int ch : {n.left, n.right}) {
          if (ch > 0 && (ch <= k || ch >= t.nnodes)) fail("tree node child " + std::to_string(ch) + " out of range in " + where);
          if (ch <= 0 && -int64_t(ch) >= t.nleaves) fail("leaf index " + std::to_string(-int64_t(ch)) + " out of range in " + where);
        }
      }
    }
  }

  void make_offsets(Layer& L) const {
    const int st = int(L.st);
    const int tofs = int(2 * L.tab);
    auto o = [st](int x, int y) { return y * st + x; };
    L.nofs[0] = o(1, 1);
    L.nofs[1] = o(win_w_ - 1, 1);
    L.nofs[2] = o(1, win_h_ - 1);
    L.nofs[3] = o(win_w_ - 1, win_h_ - 1);
    L.norm_area = double(win_w_ - 2) * double(win_h_ - 2);
    if (type_ == FeatureType::Haar) L.hn.resize(nodes_.size());
    else L.ln.resize(nodes_.size());
    for (const Tree& t : trees_) {
      for (int k = 0; k < t.nnodes; ++k) {
        const size_t ni = size_t(t.first_node) + k;
        const Node& n = nodes_[ni];
        const float lv = n.left <= 0 ? leaves_[size_t(t.first_leaf) - n.left] : 0.f;
        const float rv = n.right <= 0 ? leaves_[size_t(t.first_leaf) - n.right] : 0.f;
        if (type_ == FeatureType::Haar) {
          OptHaar& d = L.hn[ni];
          const HaarFeature& f = haar_[n.feature];
          for (int q = 0; q < 3; ++q) {
            const Rect& r = f.r[q];
            int* c = d.o + q * 4;
            if (f.tilted) {
              c[0] = tofs + o(r.x, r.y);
              c[1] = tofs + o(r.x - r.h, r.y + r.h);
              c[2] = tofs + o(r.x + r.w, r.y + r.w);
              c[3] = tofs + o(r.x + r.w - r.h, r.y + r.w + r.h);
            } else {
              c[0] = o(r.x, r.y);
              c[1] = o(r.x + r.w, r.y);
              c[2] = o(r.x, r.y + r.h);
              c[3] = o(r.x + r.w, r.y + r.h);
            }
            d.w[q] = f.wt[q];
          }
          d.thr = n.threshold;
          d.lv = lv; d.rv = rv; d.l = n.left; d.r = n.right;
        } else {
          OptLbp& d = L.ln[ni];
          const Rect& r = lbp_[n.feature];
          for (int gy = 0; gy < 4; ++gy)
            for (int gx = 0; gx < 4; ++gx) d.o[gy * 4 + gx] = o(r.x + gx * r.w, r.y + gy * r.h);
          for (int j = 0; j < 8; ++j) d.subset[j] = subsets_[ni * size_t(subset_size_) + j];
          d.lv = lv; d.rv = rv; d.l = n.left; d.r = n.right;
        }
      }
    }
  }

  static int box4(const uint32_t* p, int a, int b, int c, int d) { return int32_t(p[a] - p[b] - p[c] + p[d]); }

  static float haar_value(const OptHaar& h, const uint32_t* p) {
    float v = h.w[0] * float(box4(p, h.o[0], h.o[1], h.o[2], h.o[3])) + h.w[1] * float(box4(p, h.o[4], h.o[5], h.o[6], h.o[7]));
    if (h.w[2] != 0.f) v += h.w[2] * float(box4(p, h.o[8], h.o[9], h.o[10], h.o[11]));
    return v;
  }

  static int lbp_code(const int* o, const uint32_t* p) {
    const int c = box4(p, o[5], o[6], o[9], o[10]);
    return (box4(p, o[0], o[1], o[4], o[5]) >= c ? 128 : 0) | (box4(p, o[1], o[2], o[5], o[6]) >= c ? 64 : 0) |
           (box4(p, o[2], o[3], o[6], o[7]) >= c ? 32 : 0) | (box4(p, o[6], o[7], o[10], o[11]) >= c ? 16 : 0) |
           (box4(p, o[10], o[11], o[14], o[15]) >= c ? 8 : 0) | (box4(p, o[9], o[10], o[13], o[14]) >= c ? 4 : 0) |
           (box4(p, o[8], o[9], o[12], o[13]) >= c ? 2 : 0) | (box4(p, o[4], o[5], o[8], o[9]) >= c ? 1 : 0);
  }

  // simd: 0 scalar, 1 up to AVX2, 2 up to AVX-512
  std::vector<Candidate> scan_scale(const Image& grey, float scale, int nstripes, int simd) const {
    std::vector<Candidate> out;
    const Layer L = prepare(grey, scale);
    const int ww = std::max(L.w + 1 - win_w_, 0), wh0 = std::max(L.h + 1 - win_h_, 0);
    const int step = scale >= 2.f ? 1 : 2;
    const int stripe = std::max((wh0 / step + nstripes - 1) / nstripes, 1) * step;
    const int wh = std::min(wh0, stripe * nstripes);
    const int bw = detail::round_half_even_f(float(win_w_) * scale), bh = detail::round_half_even_f(float(win_h_) * scale);
    auto hit = [&](int x, int y, double sum) {
      out.push_back({Rect{detail::round_half_even_f(float(x) * scale), detail::round_half_even_f(float(y) * scale), bw, bh}, sum});
    };
#ifdef VISION_HAVE_AVX512_KERNEL
    if (simd > 0 && ww > 0 && (max_nodes_ == 1 || type_ == FeatureType::Haar)) {
      int isa = simd >= 2 && kernels::cpu_has_avx512() ? 2 : kernels::cpu_has_avx2() ? 1 : 0;
      if ((type_ == FeatureType::LBP || max_nodes_ > 1) && isa == 1) isa = 0;  // AVX-512 kernel only
      if (isa) {
        scan_scale_simd(L, ww, wh, step, isa, hit);
        return out;
      }
    }
#else
    (void)simd;
#endif
    for (int y = 0; y < wh; y += step)
      for (int x = 0; x < ww; x += step) {
        double sum = 0;
        int r = run_window(L, x, y, sum);
        if (r > 0) hit(x, y, sum);
        if (r == 0) x += step;
      }
    return out;
  }

#ifdef VISION_HAVE_AVX512_KERNEL
  template <class Hit>
  void scan_scale_simd(const Layer& L, int ww, int wh, int step, int isa, Hit& hit) const {
    const OptLbp* lnodes = L.ln.data();
    std::vector<int> tree_nodes(trees_.size());
    for (size_t i = 0; i < trees_.size(); ++i) tree_nodes[i] = trees_[i].nnodes;
    auto row_kernel = [&](const uint32_t* row, int nwin, const int* nofs, int sqofs, const OptHaar* nodes, const int* nt,
                          const float* thr, std::vector<kernels::RowHit>& hits) {
      if (type_ == FeatureType::LBP)
        kernels::lbp_stump_row_avx512(row, nwin, lnodes, nt, thr, int(stages_.size()), hits);
      else if (max_nodes_ > 1)
        kernels::haar_tree_row_avx512(row, nwin, nofs, sqofs, L.norm_area, nodes, nt, tree_nodes.data(), thr,
                                      int(stages_.size()), hits);
      else if (isa == 2)
        kernels::haar_stump_row_avx512(row, nwin, nofs, sqofs, L.norm_area, nodes, nt, thr, int(stages_.size()), hits);
      else
        kernels::haar_stump_row_avx2(row, nwin, nofs, sqofs, L.norm_area, nodes, nt, thr, int(stages_.size()), hits);
    };
    std::vector<int> ntrees(stages_.size());
    std::vector<float> sthr(stages_.size());
    for (size_t i = 0; i < stages_.size(); ++i) { ntrees[i] = stages_[i].ntrees; sthr[i] = stages_[i].threshold; }
    const int nwin = (ww + step - 1) / step;
    std::vector<kernels::RowHit> hits;
    if (step == 1) {
      for (int y = 0; y < wh; ++y) {
        hits.clear();
        row_kernel(L.buf.data() + size_t(y) * L.st, nwin, L.nofs, int(L.tab), L.hn.data(), ntrees.data(), sthr.data(), hits);
        for (auto& h : hits) hit(h.j, y, h.sum);
      }
      return;
    }
    // stride 2: split every table into even and odd columns so that window j reads element j
    const size_t st = L.st, pw = st / 2 + 1, plane = (size_t(L.h) + 1) * pw;
    const int ntab = type_ == FeatureType::LBP ? 1 : tilted_ ? 3 : 2;
    std::vector<uint32_t> split(size_t(ntab) * 2 * plane + 64, 0);
    for (int t = 0; t < ntab; ++t)
      for (int y = 0; y <= L.h; ++y) {
        const uint32_t* src = L.buf.data() + size_t(t) * L.tab + size_t(y) * st;
        uint32_t* ev = split.data() + size_t(t) * 2 * plane + size_t(y) * pw;
        uint32_t* od = ev + plane;
        size_t x = 0;
        for (; x + 1 < st; x += 2) {
          ev[x >> 1] = src[x];
          od[x >> 1] = src[x + 1];
        }
        if (x < st) ev[x >> 1] = src[x];
      }
    auto remap = [&](int o) {
      const size_t t = size_t(o) / L.tab, rem = size_t(o) % L.tab, dy = rem / st, dx = rem % st;
      return int(t * 2 * plane + (dx & 1) * plane + dy * pw + (dx >> 1));
    };
    std::vector<OptHaar> hs(L.hn);
    for (auto& h : hs)
      for (int& o : h.o) o = remap(o);
    std::vector<OptLbp> ls(L.ln);
    for (auto& n : ls)
      for (int& o : n.o) o = remap(o);
    lnodes = ls.data();
    int nofs[4];
    for (int k = 0; k < 4; ++k) nofs[k] = remap(L.nofs[k]);
    for (int y = 0; y < wh; y += 2) {
      hits.clear();
      row_kernel(split.data() + size_t(y) * pw, nwin, nofs, int(2 * plane), hs.data(), ntrees.data(), sthr.data(), hits);
      for (auto& h : hits) hit(2 * h.j, y, h.sum);
    }
  }
#endif

};

inline int CascadeClassifier::run_window(const Layer& L, int x, int y, double& sum) const {
  if (x < 0 || y < 0 || x + win_w_ >= int(L.st) || y + win_h_ >= L.h + 1) return -1;
  const size_t base = size_t(y) * L.st + size_t(x);
  const uint32_t* p = L.buf.data() + base;
  const int nstages = int(stages_.size());
  if (type_ == FeatureType::Haar) {
    const uint32_t* pq = p + L.tab;
    const int vs = box4(p, L.nofs[0], L.nofs[1], L.nofs[2], L.nofs[3]);
    const unsigned vq = uint32_t(pq[L.nofs[0]] - pq[L.nofs[1]] - pq[L.nofs[2]] + pq[L.nofs[3]]);
    double nf = L.norm_area * double(vq) - double(vs) * double(vs);
    if (!(nf > 0.)) return -1;
    const float norm = float(1. / std::sqrt(nf));
    if (!(L.norm_area * norm < 1e-1)) return -1;
    const OptHaar* hn = L.hn.data();
    if (max_nodes_ == 1) {
      double tmp = 0;
      for (int si = 0; si < nstages; ++si) {
        const Stage& s = stages_[si];
        tmp = 0;
        for (int i = 0; i < s.ntrees; ++i) {
          const OptHaar& h = hn[i];
          tmp += haar_value(h, p) * norm < h.thr ? h.lv : h.rv;
        }
        if (tmp < s.threshold) {
          sum = tmp;
          return -si;
        }
        hn += s.ntrees;
      }
      sum = tmp;
      return 1;
    }
    for (int si = 0; si < nstages; ++si) {
      const Stage& s = stages_[si];
      double tmp = 0;
      for (int ti = s.first_tree; ti < s.first_tree + s.ntrees; ++ti) {
        const Tree& t = trees_[ti];
        const OptHaar* root = hn + t.first_node;
        int idx = 0;
        do {
          const OptHaar& h = root[idx];
          idx = haar_value(h, p) * norm < h.thr ? h.l : h.r;
        } while (idx > 0);
        tmp += leaves_[size_t(t.first_leaf) - idx];
      }
      sum = tmp;
      if (tmp < s.threshold) return -si;
    }
    return 1;
  }
  const OptLbp* ln = L.ln.data();
  if (max_nodes_ == 1) {
    double tmp = 0;
    for (int si = 0; si < nstages; ++si) {
      const Stage& s = stages_[si];
      tmp = 0;
      for (int i = 0; i < s.ntrees; ++i) {
        const OptLbp& n = ln[i];
        const int c = lbp_code(n.o, p);
        tmp += (n.subset[c >> 5] & (1 << (c & 31))) ? n.lv : n.rv;
      }
      if (tmp < s.threshold) {
        sum = tmp;
        return -si;
      }
      ln += s.ntrees;
    }
    sum = tmp;
    return 1;
  }
  for (int si = 0; si < nstages; ++si) {
    const Stage& s = stages_[si];
    double tmp = 0;
    for (int ti = s.first_tree; ti < s.first_tree + s.ntrees; ++ti) {
      const Tree& t = trees_[ti];
      const OptLbp* root = ln + t.first_node;
      int idx = 0;
      do {
        const OptLbp& n = root[idx];
        const int c = lbp_code(n.o, p);
        idx = (n.subset[c >> 5] & (1 << (c & 31))) ? n.l : n.r;
      } while (idx > 0);
      tmp += leaves_[size_t(t.first_leaf) - idx];
    }
    sum = tmp;
    if (tmp < s.threshold) return -si;
  }
  return 1;
}

}  // namespace vision
