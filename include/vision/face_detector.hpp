// vision/face_detector.hpp - one interface for the face detectors: the Viola-Jones cascade
// (OpenCV's boxes) and YuNet, a CNN run on this project's engine (boxes, a probability and five
// landmarks per face).
//
//   auto det = vision::YuNetDetector::load("weights/yunet.safetensors");
//   for (const vision::Face& f : det.detect(photo))      // photo: any Image (grey, RGB, RGBA)
//     printf("%d %d %d %d p=%.2f\n", f.box.x, f.box.y, f.box.w, f.box.h, f.score);
//
// YuNet is libfacedetection's network (BSD; tools/convert_yunet.py converts its parameters). It runs
// on the photo scaled so that the smallest face wanted (FaceDetectParams::min_face) is about
// YuNetDetector::kSmallestFace pixels tall for the network, never larger than the photo and with its longer
// side at most max_input_side, so a 12-megapixel photo costs what its faces need, not what its
// pixels are. At scale 1 it gives libfacedetection's own boxes, scores and landmarks (decoding,
// NMS and rounding as its detection_output(); tests/vision/test_face_detector.cpp checks this
// against the library's output).
//
// A detector keeps its network's buffers between calls: use one per thread.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include <cnn/io/json.hpp>
#include <cnn/models/zoo.hpp>

#include "align.hpp"
#include "cascade.hpp"
#include "draw.hpp"
#include "image.hpp"
#include "precision.hpp"
#include "transform.hpp"

namespace vision {

// The five landmarks, in the order YuNet gives them (image left to right for a frontal face).
enum Landmark { kEyeLeft = 0, kEyeRight = 1, kNoseTip = 2, kMouthLeft = 3, kMouthRight = 4 };

struct Face {
  Rect box;                // photo pixels (may reach past the border for faces cut by it)
  float score = 0;         // probability that this is a face, 0..1
  int neighbors = 0;       // cascade only: windows merged into the box
  bool has_landmarks = false;
  std::array<Point2f, 5> landmarks{};  // CNN only: eyes, nose tip, mouth corners (enum Landmark)
};

struct FaceDetectParams {
  // Faces scoring below this are dropped (the pipeline's report threshold, chosen on wider-pool:
  // docs/face_detection.md, "Scores and thresholds").
  float min_score = 0.5f;
  int min_face = 20;           // smallest face wanted (height in photo pixels); larger = faster CNN
  int max_face = 0;            // largest, 0 = no limit
  int max_input_side = 1600;   // CNN: the longer side of the scaled photo at most (0: no limit)
  int threads = 0;             // cascade: worker threads (0: the engine's setting)
  // CNN: also run the network on the mirrored photo and average the two passes (YuNetDetector::
  // detect). About twice the network's time for a quarter fewer false boxes at the same recall;
  // off by default so that a detector alone gives libfacedetection's boxes; the pipeline turns it on.
  bool mirror = false;
};

class FaceDetector {
 public:
  virtual ~FaceDetector() = default;
  virtual std::string name() const = 0;  // "cnn" or "haar"
  virtual bool gives_landmarks() const = 0;
  // Bytes per photo pixel that finding and aligning its faces allocates beyond the photo itself, at
  // most (measured peaks: docs/robustness.md, "Memory"). The apps count it in their memory budget
  // (LoadOptions::work_bytes_per_pixel) before decoding a photo.
  virtual size_t work_bytes_per_pixel() const = 0;
  // Faces in the photo, highest score first.
  virtual std::vector<Face> detect(const Image& photo, const FaceDetectParams& p) = 0;
  std::vector<Face> detect(const Image& photo) { return detect(photo, FaceDetectParams{}); }
};

// ---------------------------------------------------------------------------------------------
// The Viola-Jones cascade behind the common interface. Boxes are OpenCV's (cascade.hpp); the
// score maps the neighbour count to the share of such boxes that were faces on wider-pool photos.
class CascadeFaceDetector : public FaceDetector {
 public:
  // `dp`: the cascade's own settings (scale factor, neighbours, sizes); FaceDetectParams' min_face
  // and max_face narrow its sizes further.
  explicit CascadeFaceDetector(CascadeClassifier c, DetectParams dp = {}) : c_(std::move(c)), dp_(dp) {}
  std::string name() const override { return "haar"; }
  bool gives_landmarks() const override { return false; }
  // The grey photo, a scale's resized copy, its integral tables (sum, squares, tilted: 12 bytes
  // per pixel) and their column-split copy for the stride-2 scan; measured 12.5-17.6 above the
  // photo at 59-100 MP (agegender and detect, 1 and 2 threads).
  size_t work_bytes_per_pixel() const override { return 18; }
  const CascadeClassifier& cascade() const { return c_; }

  // P(face | n neighbours): a logistic curve in log(n) fitted by tools/calibrate_cascade.py.
  static float probability(int neighbors) {
    return 1.f / (1.f + std::exp(-(kCalibA + kCalibB * std::log(float(std::max(neighbors, 1))))));
  }
  // Fitted on the alt2 cascade's 1770 boxes on wider-pool (tools/calibrate_cascade.py): 4-5
  // neighbours 0.45 faces, 10-19 0.90, 40 and more 1.00.
  static constexpr float kCalibA = -3.3564f, kCalibB = 2.1550f;

  std::vector<Face> detect(const Image& photo, const FaceDetectParams& p) override {
    DetectParams dp = dp_;
    dp.min_width = dp.min_height = std::max(dp_.min_width, p.min_face);
    if (p.max_face > 0) dp.max_width = dp.max_height = dp_.max_width > 0 ? std::min(dp_.max_width, p.max_face) : p.max_face;
    if (p.threads > 0) dp.threads = p.threads;
    std::vector<Face> out;
    for (const Detection& d : c_.detect(photo.channels() == 1 ? photo : to_grey(photo), dp)) {
      Face f;
      f.box = d.box;
      f.neighbors = d.neighbors;
      f.score = probability(d.neighbors);
      if (f.score >= p.min_score) out.push_back(f);
    }
    std::stable_sort(out.begin(), out.end(), [](const Face& a, const Face& b) { return a.score > b.score; });
    return out;
  }

 private:
  CascadeClassifier c_;
  DetectParams dp_;
};

// ---------------------------------------------------------------------------------------------
// YuNet's decoding, as libfacedetection's detection_output(): per anchor (a cell of the stride-8,
// 16 and 32 maps) score = sqrt(sigmoid(cls) * sigmoid(obj)); candidates >= candidate_score,
// sorted (stable), the best top_k kept; greedy NMS at IoU > nms_iou; the first keep_top_k kept.
struct YuNetDecode {
  float candidate_score = 0.2f, nms_iou = 0.45f;
  int top_k = 1000, keep_top_k = 512;
};

namespace detail {
struct Candidate {
  float score;
  float box[4];  // xmin ymin xmax ymax (network-input pixels)
  float lm[10];
};

inline float clamped_sigmoid(float v) {
  v = std::min(v, 88.3762626647949f);
  v = std::max(v, -88.3762626647949f);
  return 1.f / (1.f + std::exp(-v));
}

// libfacedetection's IoU: zero unless the boxes overlap with positive width and height.
inline float candidate_iou(const Candidate& a, const Candidate& b) {
  if (b.box[0] > a.box[2] || b.box[2] < a.box[0] || b.box[1] > a.box[3] || b.box[3] < a.box[1]) return 0.f;
  const float w = std::min(a.box[2], b.box[2]) - std::max(a.box[0], b.box[0]);
  const float h = std::min(a.box[3], b.box[3]) - std::max(a.box[1], b.box[1]);
  if (!(w > 0 && h > 0)) return 0.f;
  const float inter = w * h;
  const float sa = (a.box[2] - a.box[0]) * (a.box[3] - a.box[1]), sb = (b.box[2] - b.box[0]) * (b.box[3] - b.box[1]);
  return inter / (sa + sb - inter);
}
}  // namespace detail

class YuNetDetector : public FaceDetector {
 public:
  // The height, in network pixels, the smallest face wanted (min_face) is scaled to when the photo
  // is scaled down: YuNet finds faces of this size and larger best. On wider-pool, labelled faces of
  // at least 40 px found by the pipeline: 90% at full size, 88% at 2/3, 84% at 1/2 (docs/vision.md).
  static constexpr int kSmallestFace = 40;

  static YuNetDetector load(const std::string& path) {
    YuNetDetector d;
    d.path_ = path;
    d.model_ = cnn::load_model(path);
    const std::string task = meta(d.model_, "task"), spec = meta(d.model_, "detector");
    if (task != "face_detection" || spec.empty())
      cnn::fail(path, ": not a face detector (metadata 'task' is '", task, "', expected 'face_detection' with a 'detector')");
    cnn::json::Value v;
    try {
      v = cnn::json::parse(spec);
    } catch (const std::exception& e) {
      cnn::fail(path, ": metadata 'detector' is not valid JSON: ", e.what());
    }
    const cnn::json::Value* family = v.is_object() ? v.find("family") : nullptr;
    if (!family || !family->is_string() || family->string != "yunet")
      cnn::fail(path, ": metadata 'detector' names no family this library decodes (expected \"yunet\")");
    auto number = [&](const char* key, float& dst) {
      if (const cnn::json::Value* f = v.find(key)) {
        if (!f->is_number() || !std::isfinite(f->number)) cnn::fail(path, ": detector field '", key, "' must be a number");
        dst = float(f->number);
      }
    };
    number("candidate_score", d.decode_.candidate_score);
    number("nms_iou", d.decode_.nms_iou);
    // Every output the decoding reads, with its channel count, at strides 8, 16 and 32.
    const auto names = d.model_.graph.output_names();
    std::vector<cnn::Shape> shapes;
    try {  // a graph whose layers do not fit together fails here, on a 64x64 input
      shapes = d.model_.graph.output_shapes(cnn::Shape{1, 3, 64, 64});
    } catch (const cnn::Error& e) {
      cnn::fail(path, ": ", e.what());
    }
    for (int level = 0; level < 3; ++level)
      for (int k = 0; k < 4; ++k) {
        static const char* kind[4] = {"cls", "bbox", "obj", "kps"};
        static const int64_t channels[4] = {1, 4, 1, 10};
        const std::string want = std::string(kind[k]) + "_" + std::to_string(8 << level);
        const auto it = std::find(names.begin(), names.end(), want);
        if (it == names.end()) cnn::fail(path, ": the detector has no output '", want, "'");
        const std::size_t i = std::size_t(it - names.begin());
        if (shapes[i].c != channels[k] || shapes[i].h != 64 >> (3 + level))
          cnn::fail(path, ": output '", want, "' has shape ", shapes[i].str(), " for a 64x64 input, expected ",
                    channels[k], " channels at stride ", 8 << level);
        d.out_[level][k] = int(i);
      }
    return d;
  }

  std::string name() const override { return "cnn"; }
  bool gives_landmarks() const override { return true; }
  // The halving pyramid down to the network's input (1/4 + 1/16 + ... of the photo), and the
  // second look's copy of a photo that gave no face (FacePipeline::detect: reduced to 1024 px).
  size_t work_bytes_per_pixel() const override { return 2; }
  const std::string& path() const { return path_; }
  cnn::Model& model() { return model_; }
  YuNetDecode& decoding() { return decode_; }

  // The factor the photo is scaled by before the network sees it.
  static double input_scale(int width, int height, const FaceDetectParams& p) {
    double s = p.min_face > kSmallestFace ? double(kSmallestFace) / p.min_face : 1.0;
    const int side = std::max(width, height);
    if (p.max_input_side > 0 && side * s > p.max_input_side) s = double(p.max_input_side) / side;
    return std::min(s, 1.0);
  }

  // With p.mirror, a face's score is the mean of its scores on the photo and on the mirrored photo
  // (0 in a pass with no candidate overlapping it at IoU >= 0.5: a box only one pass gives keeps
  // half its score), its box and landmarks the score-weighted means of the two. Measured on
  // wider-pool and wider-dev: docs/face_detection.md, "The mirror pass".
  std::vector<Face> detect(const Image& photo, const FaceDetectParams& p) override {
    if (photo.empty()) throw Error("face detection: empty image");
    const Image scaled = scaled_rgb(photo, input_scale(photo.width(), photo.height(), p));
    std::vector<detail::Candidate> kept = nms(look(scaled, photo, false));
    if (p.mirror) kept = average_passes(kept, nms(look(scaled, photo, true)));
    std::vector<Face> faces;
    for (const detail::Candidate& c : kept) {
      if (c.score < p.min_score) continue;
      Face f;
      f.score = c.score;
      f.box = Rect{int(c.box[0]), int(c.box[1]), int(c.box[2] - c.box[0]), int(c.box[3] - c.box[1])};  // truncated, as libfacedetection
      f.has_landmarks = true;
      for (int k = 0; k < 5; ++k) f.landmarks[std::size_t(k)] = {c.lm[2 * k], c.lm[2 * k + 1]};
      if (f.box.h < p.min_face || (p.max_face > 0 && f.box.h > p.max_face)) continue;
      faces.push_back(f);
    }
    return faces;
  }

  // Two passes' faces (each after NMS) averaged, best first: each face of `a` meets the face of `b`
  // it overlaps most (IoU >= 0.5; faces taken best first, each used once).
  static std::vector<detail::Candidate> average_passes(const std::vector<detail::Candidate>& a,
                                                       const std::vector<detail::Candidate>& b) {
    std::vector<detail::Candidate> out;
    std::vector<char> used(b.size(), 0);
    for (const detail::Candidate& c : a) {
      std::size_t best = b.size();
      float best_iou = 0.5f;
      for (std::size_t j = 0; j < b.size(); ++j) {
        const float v = used[j] ? 0.f : detail::candidate_iou(c, b[j]);
        if (v >= best_iou) best_iou = v, best = j;
      }
      detail::Candidate m = c;
      if (best == b.size()) {
        m.score = c.score / 2;
      } else {
        used[best] = 1;
        const detail::Candidate& d = b[best];
        const float wc = c.score / (c.score + d.score), wd = 1.f - wc;
        for (int k = 0; k < 4; ++k) m.box[k] = wc * c.box[k] + wd * d.box[k];
        for (int k = 0; k < 10; ++k) m.lm[k] = wc * c.lm[k] + wd * d.lm[k];
        m.score = (c.score + d.score) / 2;
      }
      out.push_back(m);
    }
    for (std::size_t j = 0; j < b.size(); ++j)
      if (!used[j]) {
        detail::Candidate m = b[j];
        m.score /= 2;
        out.push_back(m);
      }
    std::stable_sort(out.begin(), out.end(),
                     [](const detail::Candidate& x, const detail::Candidate& y) { return x.score > y.score; });
    return out;
  }

  // The network on `scaled`, the photo scaled and made RGB (scaled_rgb): its candidates in photo
  // pixels, before NMS. `mirrored`: the network sees it mirrored, and the candidates come back in
  // the photo's own coordinates (landmarks keep their names: the mirror's left eye is the photo's
  // right eye).
  std::vector<detail::Candidate> look(const Image& scaled, const Image& photo, bool mirrored) {
    fill_input(scaled, mirrored, input_);
    std::vector<detail::Candidate> cands = candidates(int8_.forward(model_.graph, input_.view()),
                                                      double(scaled.width()) / photo.width(),
                                                      double(scaled.height()) / photo.height());
    if (mirrored) {
      const float w = float(photo.width());
      for (detail::Candidate& c : cands) {
        const float x0 = c.box[0];
        c.box[0] = w - c.box[2];
        c.box[2] = w - x0;
        for (int k = 0; k < 5; ++k) c.lm[2 * k] = w - c.lm[2 * k];
        std::swap(c.lm[2 * kEyeLeft], c.lm[2 * kEyeRight]);
        std::swap(c.lm[2 * kEyeLeft + 1], c.lm[2 * kEyeRight + 1]);
        std::swap(c.lm[2 * kMouthLeft], c.lm[2 * kMouthRight]);
        std::swap(c.lm[2 * kMouthLeft + 1], c.lm[2 * kMouthRight + 1]);
      }
    }
    return cands;
  }
  // Scaled first, made RGB after: no full-size copy of a grey or RGBA photo.
  static Image scaled_rgb(const Image& photo, double s) {
    const int w = std::max(1, int(std::lround(photo.width() * s))), h = std::max(1, int(std::lround(photo.height() * s)));
    Image scaled = shrink(photo, w, h);
    if (scaled.channels() != 3) scaled = to_rgb(scaled);
    return scaled;
  }

  // int8 inference from the weights file's int8 form (an error naming the file if it has none).
  void use_int8() { use_precision(Precision::Int8); }
  // fp32, int8 or auto (precision.hpp); returns whether the network now runs in int8.
  bool use_precision(Precision p) { return int8_.select(model_.graph, path_, p); }
  // A new int8 form calibrated on photos, each scaled as detect() scales it with `p`; used from
  // now on; save_int8() writes the weights file with it.
  void calibrate_int8(const std::vector<Image>& photos, const FaceDetectParams& p = {}, const cnn::QuantizeOptions& opt = {}) {
    std::vector<cnn::Tensor> inputs;
    for (const Image& photo : photos)
      inputs.push_back(input_tensor(scaled_rgb(photo, input_scale(photo.width(), photo.height(), p))));
    int8_.calibrate(model_.graph, inputs, opt);
  }
  void save_int8(const std::string& out) const { int8_.save(out, path_); }
  const Int8Form& int8() const { return int8_; }

  // The photo at w x h (never larger): halved while that stays at least twice the target, then
  // resized the rest of the way (area averaging; bilinear after halving, where less than 2x is left).
  static Image shrink(const Image& rgb, int w, int h) {
    if (w == rgb.width() && h == rgb.height()) return rgb;
    const Image* src = &rgb;
    Image half;
    while (src->width() >= 2 * w && src->height() >= 2 * h) {
      half = halve(*src);
      src = &half;
    }
    return resize(*src, w, h, src == &rgb ? Interp::Area : Interp::Linear);
  }

  // The network's input: the image (mirrored: left to right reversed) as B, G, R planes of 0..255
  // values, zero-padded on the right and bottom to multiples of 32 (so the three levels line up for
  // the upsampling adds).
  static cnn::Tensor input_tensor(const Image& rgb, bool mirrored = false) {
    cnn::Tensor t;
    fill_input(rgb, mirrored, t);
    return t;
  }
  // The same into `t`, reused when it has the shape already (a 1600x1200 photo's input is 23 MB,
  // not worth allocating and clearing twice per photo): only the padding is cleared again.
  static void fill_input(const Image& rgb, bool mirrored, cnn::Tensor& t) {
    const int64_t W = (rgb.width() + 31) / 32 * 32, H = (rgb.height() + 31) / 32 * 32;
    const cnn::Shape shape{1, 3, H, W};
    const bool fresh = !(t.shape() == shape) || !t.data();
    if (fresh) t = cnn::Tensor(shape);  // zero-filled
    const int w = rgb.width(), h = rgb.height();
    for (int64_t c = 0; c < 3 && !fresh; ++c) {
      float* plane = t.data() + c * H * W;
      for (int y = 0; y < h; ++y) std::fill(plane + y * W + w, plane + (y + 1) * W, 0.f);
      std::fill(plane + h * W, plane + H * W, 0.f);
    }
    for (int y = 0; y < h; ++y) {
      const uint8_t* row = rgb.row(y);
      float* b = t.data() + y * W;
      float* g = b + H * W;
      float* r = g + H * W;
      for (int x = 0; x < w; ++x) {
        const int to = mirrored ? w - 1 - x : x;
        r[to] = row[3 * x];
        g[to] = row[3 * x + 1];
        b[to] = row[3 * x + 2];
      }
    }
  }

  // Candidates from the twelve outputs of an input that was the photo scaled by (sx, sy), in photo
  // pixels, before NMS.
  std::vector<detail::Candidate> candidates(const std::vector<cnn::Tensor>& out, double sx, double sy) const {
    std::vector<detail::Candidate> cands;
    for (int level = 0; level < 3; ++level) {
      const float stride = float(8 << level);
      const cnn::Tensor &cls = out[std::size_t(out_[level][0])], &reg = out[std::size_t(out_[level][1])],
                        &obj = out[std::size_t(out_[level][2])], &kps = out[std::size_t(out_[level][3])];
      const int64_t rows = cls.shape().h, cols = cls.shape().w, plane = rows * cols;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          const int64_t i = r * cols + c;
          const float conf = std::sqrt(detail::clamped_sigmoid(cls.data()[i]) * detail::clamped_sigmoid(obj.data()[i]));
          if (!(conf >= decode_.candidate_score)) continue;
          detail::Candidate k;
          k.score = conf;
          const float px = float(c) * stride, py = float(r) * stride;  // the anchor (cell corner)
          const float* b = reg.data();
          const float cx = b[i] * stride + px, cy = b[plane + i] * stride + py;
          const float bw = std::exp(b[2 * plane + i]) * stride, bh = std::exp(b[3 * plane + i]) * stride;
          const float box[4] = {cx - bw / 2.f, cy - bh / 2.f, cx + bw / 2.f, cy + bh / 2.f};
          for (int m = 0; m < 4; ++m) k.box[m] = float(box[m] / (m % 2 ? sy : sx));
          for (int m = 0; m < 5; ++m) {
            k.lm[2 * m] = float((kps.data()[(2 * m) * plane + i] * stride + px) / sx);
            k.lm[2 * m + 1] = float((kps.data()[(2 * m + 1) * plane + i] * stride + py) / sy);
          }
          cands.push_back(k);
        }
    }
    return cands;
  }

  // Best first (stable), the best top_k, greedy NMS, the first keep_top_k.
  std::vector<detail::Candidate> nms(std::vector<detail::Candidate> cands) const {
    std::stable_sort(cands.begin(), cands.end(),
                     [](const detail::Candidate& a, const detail::Candidate& b) { return a.score > b.score; });
    if (decode_.top_k >= 0 && cands.size() > std::size_t(decode_.top_k)) cands.resize(std::size_t(decode_.top_k));
    std::vector<detail::Candidate> kept;
    for (const detail::Candidate& c : cands) {
      bool keep = true;
      for (const detail::Candidate& k : kept)
        if (detail::candidate_iou(c, k) > decode_.nms_iou) {
          keep = false;
          break;
        }
      if (keep) kept.push_back(c);
    }
    if (decode_.keep_top_k >= 0 && kept.size() > std::size_t(decode_.keep_top_k)) kept.resize(std::size_t(decode_.keep_top_k));
    return kept;
  }

 private:
  static std::string meta(const cnn::Model& m, const std::string& key) {
    auto it = m.metadata.find(key);
    return it == m.metadata.end() ? std::string() : it->second;
  }

  std::string path_;
  cnn::Model model_;
  Int8Form int8_;
  cnn::Tensor input_;  // the network's input, kept between calls (fill_input)
  YuNetDecode decode_;
  int out_[3][4] = {};  // output index of cls, bbox, obj, kps per level
};

// ---------------------------------------------------------------------------------------------
// The crop the age/gender models see for a detected face: aligned on its five landmarks when the
// detector gives them, else on the eyes the eye cascade finds inside the box (align.hpp). `eyes`,
// if given, receives where the eyes were taken to be.
inline Image align_detected_face(const Image& photo, const Image& grey, const Face& f, const CascadeClassifier& eye_cascade,
                                 const AlignParams& ap = {}, Eyes* eyes = nullptr) {
  Eyes e;
  Image crop;
  if (f.has_landmarks) {
    e.lx = f.landmarks[kEyeLeft].x, e.ly = f.landmarks[kEyeLeft].y;
    e.rx = f.landmarks[kEyeRight].x, e.ry = f.landmarks[kEyeRight].y;
    e.left_found = e.right_found = true;
    crop = warp_affine(photo, five_point_transform(f.landmarks, ap), ap.size, ap.size, 0, true);
  } else {
    e = find_eyes(grey, f.box, eye_cascade, ap);
    crop = align_face(photo, e, ap);
  }
  if (eyes) *eyes = e;
  return crop;
}

// "0.93" for a score.
inline std::string score_label(float score) {
  char b[16];
  std::snprintf(b, sizeof b, "%.2f", double(score));
  return b;
}

// A face's box with a label, and its landmarks as small discs (eyes cyan, nose yellow, mouth magenta).
inline void draw_face(Image& img, const Face& f, const std::string& label, Color c = Color{0, 255, 0}) {
  draw_labeled_box(img, f.box, label, c);
  if (!f.has_landmarks) return;
  static const Color kColors[5] = {{0, 255, 255}, {0, 255, 255}, {255, 255, 0}, {255, 0, 255}, {255, 0, 255}};
  const int r = std::max(1, f.box.w / 40);
  for (int k = 0; k < 5; ++k)
    for (int rr = 0; rr <= r; ++rr) draw_circle(img, int(std::lround(f.landmarks[k].x)), int(std::lround(f.landmarks[k].y)), rr, kColors[k]);
}

}  // namespace vision
