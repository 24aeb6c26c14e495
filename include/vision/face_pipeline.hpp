// vision/face_pipeline.hpp - the whole age/gender pipeline in one place:
//
//   photo --detect (YuNet CNN, or a cascade)--> faces (box, score, five landmarks)
//         --align (five landmarks; eye cascade for the cascade's boxes)--> 200x200 UTKFace-framed crops
//         --resize + normalise--> CNN (three heads) --> gender, age group, age in years
//
//   auto det  = std::make_unique<vision::YuNetDetector>(vision::YuNetDetector::load("weights/yunet.safetensors"));
//   auto clf  = vision::AgeGenderClassifier::load("weights/agegender-resnet18.safetensors");
//   auto pipe = vision::FacePipeline(std::move(det), vision::CascadeClassifier::load(eye_xml), std::move(clf));
//   for (const vision::FaceResult& f : pipe.analyse(photo))
//     std::cout << vision::age_group_label(f.pred.group) << " " << f.pred.gender_char() << "\n";
//
// The classifier reads everything it needs to feed the network from the weights file's metadata
// (architecture, input size, mean/std, head labels), so a retrained model needs no code change.
// A classifier (and so a pipeline) keeps its network's buffers between calls: use one per thread;
// each call already uses all the engine's threads (cnn::set_num_threads).
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <vector>

#include <cnn/io/json.hpp>
#include <cnn/models/zoo.hpp>

#include "align.hpp"
#include "cascade.hpp"
#include "face_detector.hpp"
#include "image.hpp"
#include "precision.hpp"
#include "transform.hpp"

namespace vision {

// The Adience benchmark's eight age groups; UTKFace years map to them by upper bound
// (shared/data/README.md: 0-3, 4-7, 8-13, 14-22, 23-35, 36-45, 46-56, 57+).
constexpr int kAgeGroups = 8;
inline const char* age_group_label(int g) {
  static const char* labels[kAgeGroups] = {"(0, 2)",   "(4, 6)",   "(8, 12)",  "(15, 20)",
                                           "(25, 32)", "(38, 43)", "(48, 53)", "(60, 100)"};
  return g >= 0 && g < kAgeGroups ? labels[g] : "?";
}
inline int age_group_of_years(double years) {
  static const double upper[kAgeGroups - 1] = {3, 7, 13, 22, 35, 45, 56};
  // Ages are whole years in the labels; a predicted 35.4 belongs with 35, 35.6 with 36.
  const double y = std::floor(years + 0.5);
  for (int g = 0; g < kAgeGroups - 1; ++g)
    if (y <= upper[g]) return g;
  return kAgeGroups - 1;
}

// The years each group takes, as age_group_of_years maps whole years: [first, last].
inline std::pair<int, int> age_group_years(int g) {
  static const int first[kAgeGroups] = {0, 4, 8, 14, 23, 36, 46, 57};
  if (g < 0 || g >= kAgeGroups) return {0, 0};
  return {first[g], g + 1 < kAgeGroups ? first[g + 1] - 1 : 100};
}
// The years a group's label names: (25, 32) -> [25, 32]. An age shown beside a label lies in it.
inline std::pair<int, int> age_group_label_years(int g) {
  static const int lo[kAgeGroups] = {0, 4, 8, 15, 25, 38, 48, 60}, hi[kAgeGroups] = {2, 6, 12, 20, 32, 43, 53, 100};
  if (g < 0 || g >= kAgeGroups) return {0, 0};
  return {lo[g], hi[g]};
}

// One face's answer. Every printed field comes from one joint age distribution (decode_age), so
// they agree: the age shown lies in the group shown and in the range shown.
struct AgeGender {
  float p_male = 0.5f;                   // softmax of the gender head
  std::array<float, kAgeGroups> group_probs{};  // softmax of the age-group head
  int group = 0;                         // the most probable group (argmax of group_probs)
  float age_years = 0;                   // the median age, inside the group's label
  float age_low = 0, age_high = 0;       // 10th..90th percentile of the joint distribution
  float age_head_years = 0;              // the age head's own reading (regression, or its mean)
  bool male() const { return p_male >= 0.5f; }
  char gender_char() const { return male() ? 'm' : 'f'; }
  float gender_confidence() const { return male() ? p_male : 1 - p_male; }
  float group_prob() const { return group_probs[std::size_t(group)]; }
};

// Joins the two age heads into one distribution over the years 0..100: the group head says how
// likely each group is, the age head (`years`: non-negative weights over 0..100) how the years
// spread within a group: p(y) = P(group of y) * years(y) / (the sum of years(y') over that group).
// The group shown is the most probable one (the group head's argmax); the age is the median of p
// in whole years, kept inside the years the group's label names (never "34 years (25, 32)"); the
// range is p's 10th..90th percentiles, widened to hold the age. A group the age head gives no
// weight is spread evenly over its years. (UTKFace val: the group head's exact and 1-off accuracy
// unchanged, the MAE as the age head's own reading, +-0.07 years: docs/agegender.md.)
inline void decode_age(const std::array<float, kAgeGroups>& group_probs, const double* years, AgeGender& r) {
  std::array<double, 101> p{};
  for (int g = 0; g < kAgeGroups; ++g) {
    const auto [y0, y1] = age_group_years(g);
    double mass = 0;
    for (int y = y0; y <= y1; ++y) mass += years[y];
    for (int y = y0; y <= y1; ++y)
      p[std::size_t(y)] = group_probs[std::size_t(g)] * (mass > 1e-30 ? years[y] / mass : 1.0 / (y1 - y0 + 1));
  }
  double total = 0;
  for (double v : p) total += v;
  auto quantile = [&](double q) {  // the first year whose cumulative share reaches q
    double run = 0;
    for (int y = 0; y < 100; ++y)
      if ((run += p[std::size_t(y)]) >= q * total) return y;
    return 100;
  };
  r.group = int(std::max_element(group_probs.begin(), group_probs.end()) - group_probs.begin());
  const auto [g0, g1] = age_group_label_years(r.group);
  const int age = std::clamp(quantile(0.5), g0, g1);
  r.age_years = float(age);
  r.age_low = float(std::min(quantile(0.1), age));
  r.age_high = float(std::max(quantile(0.9), age));
}

// A three-headed age/gender network: heads "gender" [2: m, f], "age_group" [8] and "age", either
// [1: years/100] (regression) or [N >= 2: logits over the ages 0..N-1 years], whose mean is the age.
class AgeGenderClassifier {
 public:
  static AgeGenderClassifier load(const std::string& path) {
    AgeGenderClassifier c;
    c.path_ = path;
    c.model_ = cnn::load_model(path);
    const auto in = c.model_.meta_numbers("input_size");
    if (in.size() != 3 || in[0] != 3 || in[1] != in[2] || in[1] < 16 || in[1] > 1024)
      cnn::fail(path, ": metadata 'input_size' must be \"3,S,S\" with 16 <= S <= 1024");
    c.size_ = int(in[1]);
    const auto mean = c.model_.meta_numbers("mean"), stdv = c.model_.meta_numbers("std");
    if (mean.size() != 3 || stdv.size() != 3) cnn::fail(path, ": metadata 'mean' and 'std' need 3 numbers each");
    for (int i = 0; i < 3; ++i) {
      if (!(stdv[i] > 0)) cnn::fail(path, ": metadata 'std' must be positive");
      c.mean_[i] = float(mean[i]);
      c.std_[i] = float(stdv[i]);
    }
    const auto names = c.model_.graph.output_names();
    const auto shapes = c.model_.graph.output_shapes(cnn::Shape{1, 3, c.size_, c.size_});
    auto find = [&](const char* name, int64_t outputs) {  // outputs 0: any number (the age head)
      for (std::size_t i = 0; i < names.size(); ++i)
        if (names[i] == name) {
          if (outputs && shapes[i].numel() != outputs)
            cnn::fail(path, ": head '", name, "' has ", shapes[i].numel(), " outputs, expected ", outputs);
          return int(i);
        }
      cnn::fail(path, ": not an age/gender model (no '", name, "' head; heads are gender, age_group, age)");
    };
    c.gender_ = find("gender", 2);
    c.group_ = find("age_group", kAgeGroups);
    c.age_ = find("age", 0);
    c.age_bins_ = int(shapes[std::size_t(c.age_)].numel());
    const auto sigma = c.model_.meta_numbers("age_sigma");
    if (!sigma.empty()) {
      if (sigma.size() != 1 || !(sigma[0] >= 0.5 && sigma[0] <= 50)) cnn::fail(path, ": metadata 'age_sigma' must be one number of years in 0.5..50");
      c.age_sigma_ = sigma[0];
    }
    return c;
  }

  int input_size() const { return size_; }
  const std::string& path() const { return path_; }
  const cnn::Model& model() const { return model_; }
  cnn::Model& model() { return model_; }

  // The network's input for an aligned face crop (any size; resized with pixel-area averaging,
  // as cv2.INTER_AREA, then (px/255 - mean)/std in RGB order). Grey crops are expanded to RGB.
  cnn::Tensor preprocess(const Image& aligned) const {
    const Image rgb = to_rgb(aligned);
    const Image small = (rgb.width() == size_ && rgb.height() == size_) ? rgb : resize(rgb, size_, size_, Interp::Area);
    cnn::Tensor t(cnn::Shape{1, 3, size_, size_});
    const ImageF f = to_float_chw(small, mean_.data(), std_.data());
    std::copy(f.data.begin(), f.data.end(), t.data());
    return t;
  }

  AgeGender classify_input(const cnn::Tensor& input) {
    const std::vector<cnn::Tensor> out = int8_.forward(model_.graph, input.view());
    AgeGender r;
    const float* g = out[std::size_t(gender_)].data();
    r.p_male = 1.f / (1.f + std::exp(g[1] - g[0]));
    const float* a = out[std::size_t(group_)].data();
    softmax(a, kAgeGroups, r.group_probs.data());
    // The age head as weights over the years 0..100: its own distribution, or, for a regression
    // head, a Gaussian of age_sigma years (metadata; about its validation error) around its answer.
    const float* y = out[std::size_t(age_)].data();
    std::array<double, 101> years{};
    if (age_bins_ == 1) {
      r.age_head_years = std::max(0.f, y[0] * 100.f);
      for (int i = 0; i <= 100; ++i) {
        const double z = (i - r.age_head_years) / age_sigma_;
        years[std::size_t(i)] = std::exp(-0.5 * z * z);
      }
    } else {
      const float mx = *std::max_element(y, y + age_bins_);
      double sum = 0, weighted = 0;
      for (int i = 0; i < age_bins_; ++i) {
        const double e = std::exp(double(y[i] - mx));
        sum += e, weighted += i * e;
        years[std::size_t(std::min(i, 100))] += e;  // ages past 100 count as 100
      }
      r.age_head_years = float(weighted / sum);
    }
    decode_age(r.group_probs, years.data(), r);
    return r;
  }

  AgeGender classify(const Image& aligned) { return classify_input(preprocess(aligned)); }

  // int8 inference from the weights file's int8 form (an error naming the file if it has none).
  void use_int8() { use_precision(Precision::Int8); }
  // fp32, int8 or auto (precision.hpp); returns whether the network now runs in int8.
  bool use_precision(Precision p) { return int8_.select(model_.graph, path_, p); }
  // A new int8 form calibrated on aligned face crops (what the network sees: `--crops` output),
  // used from now on; save_int8() writes the weights file with it.
  void calibrate_int8(const std::vector<Image>& crops, const cnn::QuantizeOptions& opt = {}) {
    std::vector<cnn::Tensor> inputs;
    for (const Image& c : crops) inputs.push_back(preprocess(c));
    int8_.calibrate(model_.graph, inputs, opt);
  }
  void save_int8(const std::string& out) const { int8_.save(out, path_); }
  const Int8Form& int8() const { return int8_; }

 private:
  static void softmax(const float* logits, int n, float* p) {
    const float mx = *std::max_element(logits, logits + n);
    float sum = 0;
    for (int i = 0; i < n; ++i) sum += p[i] = std::exp(logits[i] - mx);
    for (int i = 0; i < n; ++i) p[i] /= sum;
  }

  std::string path_;
  cnn::Model model_;
  int size_ = 0, gender_ = 0, group_ = 0, age_ = 0;
  int age_bins_ = 1;  // 1: regression in years/100; else a distribution over 0..age_bins_-1 years
  double age_sigma_ = 5.0;  // a regression head's spread in years (metadata "age_sigma")
  std::array<float, 3> mean_{}, std_{};
  Int8Form int8_;
};

struct FaceResult {
  Face face;        // as the detector found it (box in photo pixels, score, landmarks)
  Rect box;         // = face.box
  Eyes eyes;        // where alignment put the eyes (landmarks, the eye cascade, or the box's defaults)
  Image aligned;    // the 200x200 crop the classifier saw (before resizing)
  bool classified = false;  // false: the detector was unsure of it, or it is too small (PipelineOptions)
  AgeGender pred;
};

struct PipelineOptions {
  FaceDetectParams detect;   // min_score, smallest face (24 px), the CNN's input size
  AlignParams align;
  // Faces the detector scores below classify_score get no age and gender (they are reported as
  // faces it is unsure of), nor do faces shorter than classify_min_face (too small to judge; most
  // boxes that are not faces are that small). Chosen on wider-pool: docs/face_detection.md.
  float classify_score = 0.55f;
  int classify_min_face = 32;
  // Border for the second look when a photo gives no face, as a fraction of its longer side
  // (UTKFace's val crops through the cascade pipeline: 71.5% -> 98.2% found). 0: no second look.
  float retry_border = 0.125f;
  PipelineOptions() {
    detect.min_face = 24;
    detect.mirror = true;  // the CNN detector's mirror pass: a quarter fewer false faces (face_detection.md)
  }
};

class FacePipeline {
 public:
  // `eyes`: the eye cascade that aligns faces the detector gives no landmarks for.
  FacePipeline(std::unique_ptr<FaceDetector> detector, CascadeClassifier eyes, AgeGenderClassifier clf,
               PipelineOptions opt = {})
      : det_(std::move(detector)), eyes_(std::move(eyes)), clf_(std::move(clf)), opt_(opt) {}

  // Faces in a photo. When there is none, detects again inside a black border: a face that fills
  // the picture (a tight crop) leaves the detector no room around it. A large photo gets that
  // second look on a copy reduced to kRetrySide (a face filling it is still large there), so the
  // padded copy never costs more than a few megabytes.
  static constexpr int kRetrySide = 1024;
  std::vector<Face> detect(const Image& photo) {
    std::vector<Face> faces = det_->detect(photo, opt_.detect);
    if (!faces.empty() || opt_.retry_border <= 0) return faces;
    const int side = std::max(photo.width(), photo.height());
    const double t = side > kRetrySide ? double(kRetrySide) / side : 1.0;  // photo -> reduced copy
    Image reduced;
    if (t < 1.0)
      reduced = resize(photo, std::max(1, int(std::lround(photo.width() * t))),
                       std::max(1, int(std::lround(photo.height() * t))), Interp::Area);
    const Image& src = t < 1.0 ? reduced : photo;
    const int b = int(std::lround(opt_.retry_border * std::max(src.width(), src.height())));
    if (b <= 0) return faces;
    const Image padded = crop_padded(src, Rect{-b, -b, src.width() + 2 * b, src.height() + 2 * b}, 0);
    FaceDetectParams p = opt_.detect;  // sizes in the reduced copy's pixels
    p.min_face = std::max(1, int(std::lround(p.min_face * t)));
    if (p.max_face > 0) p.max_face = std::max(1, int(std::lround(p.max_face * t)));
    for (Face f : det_->detect(padded, p)) {
      const auto back = [&](double v) { return int(std::lround((v - b) / t)); };  // padded copy -> photo
      const int x0 = std::max(back(f.box.x), 0), y0 = std::max(back(f.box.y), 0);
      const int x1 = std::min(back(f.box.x + f.box.w), photo.width());
      const int y1 = std::min(back(f.box.y + f.box.h), photo.height());
      const int w = int(std::lround(f.box.w / t)), h = int(std::lround(f.box.h / t));
      if (x1 - x0 < w / 2 || y1 - y0 < h / 2) continue;  // mostly in the border
      f.box = Rect{x0, y0, x1 - x0, y1 - y0};  // clipped to the photo
      for (Point2f& q : f.landmarks) q = {float((q.x - b) / t), float((q.y - b) / t)};
      faces.push_back(f);
    }
    return faces;
  }

  // Aligns and classifies one detected face of `photo` (`grey`: its grey version, read only for a
  // face without landmarks).
  FaceResult analyse_face(const Image& photo, const Image& grey, const Face& f) {
    FaceResult r;
    r.face = f;
    r.box = f.box;
    r.aligned = align_detected_face(photo, grey, f, eyes_, opt_.align, &r.eyes);
    r.classified = f.score >= opt_.classify_score && f.box.h >= opt_.classify_min_face;
    if (r.classified) r.pred = clf_.classify(r.aligned);
    return r;
  }

  // Every face in the photo, largest first.
  std::vector<FaceResult> analyse(const Image& photo) {
    std::vector<Face> faces = detect(photo);
    std::stable_sort(faces.begin(), faces.end(),
                     [](const Face& a, const Face& b) { return a.box.w * a.box.h > b.box.w * b.box.h; });
    const Image grey = det_->gives_landmarks() ? Image() : to_grey(photo);
    std::vector<FaceResult> out;
    for (const Face& f : faces) out.push_back(analyse_face(photo, grey, f));
    return out;
  }

  // A face crop (`agegender --aligned`). One framed like UTKFace's is classified as it is. In one
  // framed much more loosely, the face is found and aligned as in a photo: when its largest face
  // spans less than 0.6 of the crop's longer side and sits centred (its centre within 0.15 of its
  // size from the crop's). Measured with the cascade, largest face width over crop side: UTKFace
  // val crops 0.67 (5th percentile) to 0.84 (median), wider-dev faces cut with twice their box 0.46
  // (median) to 0.53 (90th percentile); the few small faces found in UTKFace crops are off centre
  // (false detections: median offset 0.33), the loose crops' faces are centred (median 0.08).
  FaceResult analyse_crop(const Image& crop) {
    const std::vector<Face> faces = detect(crop);
    const Face* largest = nullptr;
    for (const Face& f : faces)
      if (!largest || f.box.w * f.box.h > largest->box.w * largest->box.h) largest = &f;
    if (largest && largest->box.w < 0.6f * std::max(crop.width(), crop.height())) {
      const Rect& b = largest->box;
      const float off = std::max(std::fabs(b.x + b.w * 0.5f - crop.width() * 0.5f) / b.w,
                                 std::fabs(b.y + b.h * 0.5f - crop.height() * 0.5f) / b.h);
      if (off <= 0.15f) return analyse_face(crop, det_->gives_landmarks() ? Image() : to_grey(crop), *largest);
    }
    FaceResult r;
    r.box = r.face.box = Rect{0, 0, crop.width(), crop.height()};
    r.face.score = 1.f;
    r.aligned = crop;
    r.classified = true;
    r.pred = clf_.classify(crop);
    return r;
  }

  FaceDetector& detector() { return *det_; }
  AgeGenderClassifier& classifier() { return clf_; }
  const PipelineOptions& options() const { return opt_; }
  PipelineOptions& options() { return opt_; }

 private:
  std::unique_ptr<FaceDetector> det_;
  CascadeClassifier eyes_;
  AgeGenderClassifier clf_;
  PipelineOptions opt_;
};

}  // namespace vision
