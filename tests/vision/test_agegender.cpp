// Age/gender: the shipped models against PyTorch (golden values by tools/make_agegender_golden.py),
// the classifier's preprocessing against OpenCV's, the performance analysis on cases small enough
// to count by hand, manifest parsing errors, and the agegender app from the outside.
#include <cnn/io/npy.hpp>

#include <cmath>
#include <random>

#include "common.hpp"

using namespace vision;

namespace {

// Sorted by name, the order tools/make_agegender_golden.py stores them in.
const char* kFaces[] = {"face_astronaut.png", "face_astronaut_150.png", "face_astronaut_flip.png", "face_astronaut_grey.png"};

std::string agegender_golden(const std::string& rel) { return vt::golden("agegender/" + rel); }

double max_rel_diff(const float* a, const std::vector<float>& b) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < b.size(); ++i) {
    diff = std::max(diff, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(b[i])));
  }
  return diff / std::max(scale, 1e-6);
}

void check_model_against_torch(const std::string& weights_name, const std::string& golden_prefix) {
  const std::string weights = vt::repo("weights/" + weights_name);
  REQUIRE_MESSAGE(vt::exists(weights), weights);
  AgeGenderClassifier clf = AgeGenderClassifier::load(weights);
  const cnn::NpyArray input = cnn::read_npy(agegender_golden(golden_prefix + ".input.npy"));
  REQUIRE(input.dims.size() == 4);
  REQUIRE(input.dims[0] == int64_t(std::size(kFaces)));
  const int64_t S = clf.input_size(), per_face = 3 * S * S;
  REQUIRE(input.dims[2] == S);
  const cnn::NpyArray gender = cnn::read_npy(agegender_golden(golden_prefix + ".gender.npy"));
  const cnn::NpyArray group = cnn::read_npy(agegender_golden(golden_prefix + ".age_group.npy"));
  const cnn::NpyArray age = cnn::read_npy(agegender_golden(golden_prefix + ".age.npy"));
  const cnn::NpyArray years = cnn::read_npy(agegender_golden(golden_prefix + ".years.npy"));
  const std::size_t age_outputs = age.values.size() / std::size(kFaces);  // 1 (regression) or one per year
  REQUIRE(years.values.size() == std::size(kFaces));
  for (std::size_t i = 0; i < std::size(kFaces); ++i) {
    CAPTURE(kFaces[i]);
    // Preprocessing: INTER_AREA resize within one grey level of OpenCV's, then (px/255-mean)/std.
    const Image face = load_image(agegender_golden(kFaces[i]));
    const cnn::Tensor x = clf.preprocess(face);
    const float* want = input.values.data() + i * std::size_t(per_face);
    double worst = 0;
    for (int64_t k = 0; k < per_face; ++k) worst = std::max(worst, double(std::fabs(x.data()[k] - want[k])));
    const std::vector<double> stdv = clf.model().meta_numbers("std");
    const double one_level = 1.0 / 255 / *std::min_element(stdv.begin(), stdv.end());
    CHECK(worst <= 1.01 * one_level);
    // The network: the engine on PyTorch's input, every head to 1e-4.
    cnn::Tensor golden_in(cnn::Shape{1, 3, S, S});
    std::copy(want, want + per_face, golden_in.data());
    const std::vector<cnn::Tensor> out = clf.model().graph.forward(golden_in.view());
    CHECK(max_rel_diff(out[0].data(), std::vector<float>(gender.values.begin() + long(2 * i), gender.values.begin() + long(2 * i + 2))) < 1e-4);
    CHECK(max_rel_diff(out[1].data(), std::vector<float>(group.values.begin() + long(8 * i), group.values.begin() + long(8 * i + 8))) < 1e-4);
    CHECK(max_rel_diff(out[2].data(), std::vector<float>(age.values.begin() + long(age_outputs * i),
                                                         age.values.begin() + long(age_outputs * (i + 1)))) < 1e-4);
    // The head read as years (x100, or the mean of the age distribution), as the app reports it.
    CHECK(std::fabs(clf.classify_input(golden_in).age_head_years - years.values[i]) <= 1e-3 * std::max(1.f, years.values[i]));
  }
}

}  // namespace

TEST_CASE("shipped ResNet age/gender model equals PyTorch on real face crops") {
  check_model_against_torch("agegender-resnet18.safetensors", "resnet18");
}

TEST_CASE("shipped VGG16 age/gender model equals PyTorch on real face crops") {
  check_model_against_torch("agegender-vgg16bn.safetensors", "vgg16bn");
}

TEST_CASE("shipped face-api age/gender model (a graph file) equals PyTorch on real face crops") {
  check_model_against_torch("agegender-faceapi.safetensors", "faceapi");
}

TEST_CASE("one answer per face: the age lies in the group's label and in the range") {
  // Each group's label names years inside the years the group takes.
  for (int g = 0; g < kAgeGroups; ++g) {
    const auto [l0, l1] = age_group_label_years(g);
    const auto [y0, y1] = age_group_years(g);
    CHECK(std::string(age_group_label(g)) == "(" + std::to_string(l0) + ", " + std::to_string(l1) + ")");
    CHECK((y0 <= l0 && l1 <= y1 && age_group_of_years(y0) == g && age_group_of_years(y1) == g));
  }
  // By hand: the group head is sure of (25, 32) (23..35 years), the age head puts everything on 34:
  // the age is held inside the label at 32, the range is 34..34 widened to hold it.
  std::array<double, 101> years{};
  years[34] = 1;
  std::array<float, kAgeGroups> groups{};
  groups[4] = 1;
  AgeGender r;
  decode_age(groups, years.data(), r);
  CHECK(r.group == 4);
  CHECK(r.age_years == 32);
  CHECK(r.age_low == 32);
  CHECK(r.age_high == 34);
  // Half the mass on (4, 6), the age head silent there (spread evenly over 4..7), the other half on
  // 60 (group (60, 100)): the group head's argmax is (4, 6) by a hair; the median is in 4..7.
  years.fill(0);
  years[60] = 1;
  groups.fill(0);
  groups[1] = 0.51f, groups[7] = 0.49f;
  decode_age(groups, years.data(), r);
  CHECK(r.group == 1);
  CHECK(r.age_years == 6);  // 4, 5, 6, 7 hold 0.1275 each: the cumulative share reaches 0.5 at 7, held at 6
  CHECK(r.age_low == 4);
  CHECK(r.age_high == 60);
  // Random heads: every answer agrees with itself.
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0.f, 3.f);
  for (int t = 0; t < 2000; ++t) {
    double sum = 0;
    for (auto& y : years) y = std::exp(double(n(rng))), sum += y;
    for (auto& y : years) y /= sum;
    float gs = 0;
    for (auto& g : groups) g = std::exp(n(rng)), gs += g;
    for (auto& g : groups) g /= gs;
    decode_age(groups, years.data(), r);
    const auto [l0, l1] = age_group_label_years(r.group);
    CHECK((r.group == int(std::max_element(groups.begin(), groups.end()) - groups.begin())));
    CHECK((l0 <= r.age_years && r.age_years <= l1));
    CHECK((r.age_low <= r.age_years && r.age_years <= r.age_high && 0 <= r.age_low && r.age_high <= 100));
    CHECK(r.age_years == std::floor(r.age_years));
  }
}

TEST_CASE("an age head with one output per year reads as the mean of its distribution") {
  // A small random-weight model with a 101-way age head (tools/make_golden.py) and PyTorch's logits.
  const std::string dir = vt::repo("tests/golden/models/");
  AgeGenderClassifier clf = AgeGenderClassifier::load(dir + "resnet18_agedist.safetensors");
  const cnn::NpyArray input = cnn::read_npy(dir + "resnet18_agedist.input.npy");
  const cnn::NpyArray gender = cnn::read_npy(dir + "resnet18_agedist.gender.npy");
  const cnn::NpyArray age = cnn::read_npy(dir + "resnet18_agedist.age.npy");
  REQUIRE(input.dims.size() == 4);
  const int64_t S = clf.input_size(), per = 3 * S * S, bins = 101;
  REQUIRE(input.dims[2] == S);
  REQUIRE(age.values.size() == std::size_t(input.dims[0] * bins));
  for (int64_t i = 0; i < input.dims[0]; ++i) {
    cnn::Tensor x(cnn::Shape{1, 3, S, S});
    std::copy(input.values.begin() + long(i * per), input.values.begin() + long((i + 1) * per), x.data());
    const AgeGender r = clf.classify_input(x);
    const float* logits = age.values.data() + i * bins;
    double mx = logits[0], sum = 0, mean = 0;
    for (int64_t y = 1; y < bins; ++y) mx = std::max(mx, double(logits[y]));
    for (int64_t y = 0; y < bins; ++y) sum += std::exp(logits[y] - mx), mean += double(y) * std::exp(logits[y] - mx);
    mean /= sum;
    CHECK(mean > 1.0);  // random weights still spread the mass over many years
    CHECK(std::fabs(r.age_head_years - mean) <= 1e-3 * mean);
    const double p_male = 1 / (1 + std::exp(double(gender.values[2 * i + 1]) - gender.values[2 * i]));
    CHECK(std::fabs(r.p_male - p_male) <= 1e-4);
  }
}

namespace {
// The bundled pipeline with the cascade ("haar") or YuNet ("cnn"); every face classified.
FacePipeline bundled_pipeline(const std::string& detector, float retry_border = PipelineOptions().retry_border) {
  PipelineOptions o;
  o.retry_border = retry_border;
  o.detect.min_score = o.classify_score = 0.f;
  std::unique_ptr<FaceDetector> det;
  if (detector == "cnn") det = std::make_unique<YuNetDetector>(YuNetDetector::load(vt::repo("weights/yunet.safetensors")));
  else det = std::make_unique<CascadeFaceDetector>(CascadeClassifier::load(vt::repo("weights/haarcascade_frontalface_alt2.xml")));
  return FacePipeline(std::move(det), CascadeClassifier::load(vt::repo("weights/haarcascade_eye.xml")),
                      AgeGenderClassifier::load(vt::repo("weights/agegender-resnet18.safetensors")), o);
}

// The middle of the detector's own box on the sample photo as the whole picture: no room left for
// the cascade's windows. `found`: what the detector found on the photo.
Image tight_face_crop(FacePipeline& plain, const Image& photo, std::vector<Face>& found) {
  found = plain.detect(photo);
  REQUIRE(found.size() == 1);
  const Rect& f = found[0].box;
  return crop(photo, Rect{f.x + f.w / 10, f.y + f.h / 10, f.w * 8 / 10, f.h * 8 / 10});
}
}  // namespace

TEST_CASE("a face that fills the picture is found on the second look, inside a border") {
  const Image photo = load_image(vt::repo("samples/astronaut.png"));
  FacePipeline plain = bundled_pipeline("haar", 0.f), retry = bundled_pipeline("haar", 0.125f);
  std::vector<Face> found;
  const Image tight = tight_face_crop(plain, photo, found);
  CHECK(plain.detect(tight).empty());
  const std::vector<Face> again = retry.detect(tight);
  REQUIRE(again.size() == 1);
  const Rect& b = again[0].box;
  CHECK(b.x >= 0);
  CHECK(b.y >= 0);
  CHECK(b.x + b.w <= tight.width());
  CHECK(b.y + b.h <= tight.height());
  CHECK(b.w * b.h >= tight.width() * tight.height() / 2);
  // A photo with a face is looked at once: the border changes nothing there.
  const std::vector<Face> same = retry.detect(photo);
  REQUIRE(same.size() == 1);
  CHECK(same[0].box.x == found[0].box.x);
  CHECK(same[0].box.w == found[0].box.w);
  CHECK(retry.analyse(tight).size() == 1);
}

TEST_CASE("a large photo gets its second look on a reduced copy, with boxes in its own pixels") {
  const Image photo = load_image(vt::repo("samples/astronaut.png"));
  FacePipeline plain = bundled_pipeline("haar", 0.f), retry = bundled_pipeline("haar", 0.125f);
  std::vector<Face> found;
  const Image tight = tight_face_crop(plain, photo, found);
  // The same tight crop enlarged to about three times FacePipeline::kRetrySide: the second look
  // runs on a copy reduced by about 3; its answer, mapped back, must match the small crop's
  // scaled up (a box left in the reduced copy's pixels would be 3 times too small).
  const int k = 3 * FacePipeline::kRetrySide / std::max(tight.width(), tight.height()) + 1;
  const Image large = resize(tight, tight.width() * k, tight.height() * k, Interp::Linear);
  REQUIRE(std::max(large.width(), large.height()) > 2 * FacePipeline::kRetrySide);
  REQUIRE(plain.detect(large).empty());
  const std::vector<Face> small_faces = retry.detect(tight), large_faces = retry.detect(large);
  REQUIRE(small_faces.size() == 1);
  REQUIRE(large_faces.size() == 1);
  const Rect &a = small_faces[0].box, &b = large_faces[0].box;
  const double tol = 0.15 * a.w * k;  // the cascade's scale steps are 10% apart
  CHECK(std::abs(b.x - a.x * k) <= tol);
  CHECK(std::abs(b.y - a.y * k) <= tol);
  CHECK(std::abs(b.w - a.w * k) <= tol);
  CHECK(std::abs(b.h - a.h * k) <= tol);
  CHECK(b.x >= 0);
  CHECK(b.y >= 0);
  CHECK(b.x + b.w <= large.width());
  CHECK(b.y + b.h <= large.height());
}

TEST_CASE("a loosely framed face crop is aligned on its face, a UTKFace-like one used as it is") {
  for (const char* detector : {"haar", "cnn"}) {
    INFO(detector);
    const Image photo = load_image(vt::repo("samples/astronaut.png"));
    FacePipeline pipe = bundled_pipeline(detector);
    const std::vector<FaceResult> faces = pipe.analyse(photo);
    REQUIRE(faces.size() == 1);
    // Loose: a square around the face box's centre, as large as the photo allows up to three times
    // the box. The crop goes through the same alignment as the photo's face, so the prediction is
    // close to the photo's.
    const Rect& f = faces[0].box;
    const int cx = f.x + f.w / 2, cy = f.y + f.h / 2;
    const int half = std::min({3 * f.w / 2, cx, cy, photo.width() - cx, photo.height() - cy});
    REQUIRE(2 * half >= f.w * 18 / 10);  // loose enough to be reframed (span < 0.6)
    const Image loose = crop(photo, Rect{cx - half, cy - half, 2 * half, 2 * half});
    const FaceResult l = pipe.analyse_crop(loose);
    CHECK(l.box.w < loose.width() * 6 / 10);
    CHECK(std::fabs(l.pred.p_male - faces[0].pred.p_male) < 0.1f);
    CHECK(std::fabs(l.pred.age_head_years - faces[0].pred.age_head_years) < 5.f);
    // UTKFace-like: the photo's own aligned crop is classified as it is.
    const FaceResult t = pipe.analyse_crop(faces[0].aligned);
    CHECK(t.box.w == faces[0].aligned.width());
    CHECK(t.pred.p_male == faces[0].pred.p_male);
    CHECK(t.pred.age_years == faces[0].pred.age_years);
  }
}

TEST_CASE("the five-landmark alignment puts the landmarks where UTKFace's crops have them") {
  FacePipeline pipe = bundled_pipeline("cnn");
  const Image photo = load_image(vt::repo("samples/astronaut.png"));
  // The photo rotated by 25 degrees: the aligned face is upright again, eyes level.
  const Image tilted = warp_affine(photo, rotation_matrix(256, 256, 25, 1.0), 512, 512, 0, true);
  const AlignParams ap;
  for (const Image* img : {&photo, &tilted}) {
    const std::vector<FaceResult> faces = pipe.analyse(*img);
    REQUIRE(faces.size() == 1);
    REQUIRE(faces[0].face.has_landmarks);
    const Affine m = five_point_transform(faces[0].face.landmarks, ap);
    std::array<Point2f, 5> q;
    double cx = 0, cy = 0, tx = 0, ty = 0, err = 0;
    for (int k = 0; k < 5; ++k) {
      double x, y;
      m.apply(faces[0].face.landmarks[k].x, faces[0].face.landmarks[k].y, x, y);
      q[k] = {float(x), float(y)};
      cx += x / 5, cy += y / 5, tx += ap.five_points[k][0] * ap.size / 5, ty += ap.five_points[k][1] * ap.size / 5;
      err = std::max(err, std::hypot(x - ap.five_points[k][0] * ap.size, y - ap.five_points[k][1] * ap.size));
    }
    // Least squares puts the landmarks' centre on the framing's; each landmark lands within 8% of
    // the side of its place (the face is turned a little: the fit shares the error).
    CHECK(std::fabs(cx - tx) < 1e-3);
    CHECK(std::fabs(cy - ty) < 1e-3);
    CHECK(err < 0.08 * ap.size);
    const double tilt = std::atan2(q[1].y - q[0].y, q[1].x - q[0].x) * 180 / 3.14159265358979;
    CHECK(std::fabs(tilt) < 8);  // the photo's own head tilt is about 6 degrees
    // The crop is that transform applied to the photo.
    const Image want = warp_affine(*img, m, ap.size, ap.size, 0, true);
    CHECK(want == faces[0].aligned);
  }
}

TEST_CASE("faces the detector is unsure of get no age and gender") {
  FacePipeline pipe = bundled_pipeline("cnn");
  const Image photo = load_image(vt::repo("samples/astronaut.png"));
  pipe.options().classify_score = 0.f;
  const std::vector<FaceResult> sure = pipe.analyse(photo);
  REQUIRE(sure.size() == 1);
  CHECK(sure[0].classified);
  pipe.options().classify_score = std::nextafter(sure[0].face.score, 2.f);  // just above this face's score
  const std::vector<FaceResult> unsure = pipe.analyse(photo);
  REQUIRE(unsure.size() == 1);
  CHECK_FALSE(unsure[0].classified);
}

TEST_CASE("years to Adience groups follow the shared table") {
  // 0-3, 4-7, 8-13, 14-22, 23-35, 36-45, 46-56, 57+
  const int upper[] = {3, 7, 13, 22, 35, 45, 56};
  for (int g = 0; g < 7; ++g) {
    CHECK(age_group_of_years(upper[g]) == g);
    CHECK(age_group_of_years(upper[g] + 1) == g + 1);
  }
  CHECK(age_group_of_years(0) == 0);
  CHECK(age_group_of_years(116) == 7);
  CHECK(age_group_of_years(35.4) == 4);
  CHECK(age_group_of_years(35.6) == 5);
}

namespace {
Prediction pred(char gender, float p, float age, int group) {
  Prediction r;
  r.found = true;
  r.pred.p_male = gender == 'm' ? p : 1 - p;
  r.pred.age_years = age;
  r.pred.age_low = age - 5, r.pred.age_high = age + 5;
  r.pred.group = group;
  r.pred.group_probs[std::size_t(group)] = 0.6f;
  return r;
}
}  // namespace

TEST_CASE("performance analysis counts by hand") {
  const std::string path = vt::tmp_dir() + "/m.csv";
  vt::write_bytes(path,
                  "image,age,gender\n"
                  "a/25_0_0_x.jpg,25,m\n"   // right gender, right group (25-32)
                  "b/30_0_1_x.jpg,30,m\n"   // gender wrong (FN), group off by one
                  "c/40_1_2_x.jpg,40,f\n"   // right, group exact
                  "d/2_1_3_x.jpg,2,f\n"     // gender wrong (FP), group off by two
                  "e/60_0_4_x.jpg,60,m\n"   // unreadable
                  "f/50_1_0_x.jpg,50,f\n"); // no face
  const Manifest m = read_manifest(path);
  REQUIRE(m.rows.size() == 6);
  std::vector<Prediction> p{pred('m', 0.95f, 27, 4), pred('f', 0.75f, 40, 5), pred('f', 0.85f, 41, 5),
                            pred('m', 0.65f, 9, 2), Prediction{}, Prediction{}};
  p[4].unreadable = true;
  const Evaluation ev = evaluate(m, p);
  const GenderMetrics& g = ev.all.gender;
  CHECK(g.tp == 1);
  CHECK(g.fn == 1);
  CHECK(g.tn == 1);
  CHECK(g.fp == 1);
  CHECK(g.accuracy() == doctest::Approx(0.5));
  CHECK(g.precision() == doctest::Approx(0.5));
  CHECK(g.f1() == doctest::Approx(0.5));
  CHECK(ev.unreadable == 1);
  CHECK(ev.no_face == 1);
  CHECK(ev.all.rows == 6);
  CHECK(ev.all.readable == 5);
  CHECK(ev.all.coverage() == doctest::Approx(4.0 / 5));
  CHECK(ev.all.age.n == 4);
  CHECK(ev.all.age.exact == 2);
  CHECK(ev.all.age.one_off == 3);
  CHECK(ev.all.age.mae() == doctest::Approx((2 + 10 + 1 + 7) / 4.0));
  CHECK(ev.confusion[4][5] == 1);
  CHECK(ev.confusion[0][2] == 1);
  // ECE: confidences 0.95 (right), 0.75 (wrong), 0.85 (right), 0.65 (wrong), one per bin
  CHECK(ev.ece() == doctest::Approx((0.05 + 0.75 + 0.15 + 0.65) / 4));
  // per age band and race (UTKFace-style names)
  CHECK(ev.by_band[4].rows == 2);
  CHECK(ev.by_band[4].gender.accuracy() == doctest::Approx(0.5));
  CHECK(ev.by_race.size() == 5);
  CHECK(ev.by_race.at(0).rows == 2);
  const std::string md = report_markdown(ev, "t", "t_confusion.png");
  CHECK(vt::has(md, "| 1 | 1 | 1 | 1 | 50.00% |"));
  CHECK(vt::has(md, "coverage (face found / image read) 80.00%"));
  const std::string csv = predictions_csv(m, p);
  CHECK(vt::has(csv, "image,pred_age,pred_gender,pred_group,gender_prob,group_prob,age_low,age_high\n"
                     "a/25_0_0_x.jpg,27,m,\"(25, 32)\",0.9500,0.6000,22,32\n"));
  CHECK(vt::has(csv, "\ne/60_0_4_x.jpg,,,,,,,\n"));
  CHECK(confusion_image(ev).width() > 8 * 40);
}

TEST_CASE("age ranges in the manifest become the bins") {
  const std::string path = vt::tmp_dir() + "/ranges.csv";
  vt::write_bytes(path, "gender,image,age,extra\nm,x.jpg,20-29,1\nf,\"y, z.jpg\",30-39,2\nf,w.jpg,,3\n");
  const Manifest m = read_manifest(path);
  REQUIRE(m.rows.size() == 3);
  CHECK(m.rows[1].image == "y, z.jpg");
  CHECK(!m.rows[2].has_age);
  std::vector<Prediction> p{pred('m', 0.9f, 31, 4), pred('f', 0.9f, 33, 4), pred('f', 0.9f, 50, 6)};
  const Evaluation ev = evaluate(m, p);
  REQUIRE(ev.bins.size() == 2);
  CHECK(ev.bins.labels[0] == "20-29");
  CHECK(ev.bins.of_years(29.9) == 0);  // 20-29 covers [20, 30)
  CHECK(ev.bins.of_years(30) == 1);
  CHECK(ev.bins.of_years(5) == 0);     // outside every range: the nearest
  CHECK(ev.bins.of_years(70) == 1);
  CHECK(ev.all.age.n == 2);
  CHECK(ev.all.age.exact == 1);    // 33 in 30-39; 31 is not in 20-29
  CHECK(ev.all.age.one_off == 2);
  CHECK(ev.all.age.mae() == doctest::Approx((6.5 + 1.5) / 2));
  CHECK(ev.all.gender.n() == 3);
}

TEST_CASE("malformed manifests name the file and line") {
  auto err = [](const std::string& text) {
    const std::string path = vt::tmp_dir() + "/bad.csv";
    vt::write_bytes(path, text);
    try {
      read_manifest(path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(vt::has(err("image,age,gender\nok.jpg,30,m\nx.jpg,thirty,m\n"), "bad.csv:3: age 'thirty'"));
  CHECK(vt::has(err("image,age,gender\nx.jpg,30,male\n"), "bad.csv:2: gender 'male' is not m or f"));
  CHECK(vt::has(err("image,age,gender\nx.jpg,30\n"), "bad.csv:2: has 2 fields"));
  CHECK(vt::has(err("image,age,gender\n\"x.jpg,30,m\n"), "bad.csv:2: unclosed quote"));
  CHECK(vt::has(err("image,years,gender\nx.jpg,30,m\n"), "bad.csv:1: header must name"));
  CHECK(vt::has(err("image,age,gender,x,y\nx.jpg,30,m,1,2\n"), "needs all of x,y,w,h"));
  CHECK(vt::has(err("image,age,gender,x,y,w,h\nx.jpg,30,m,1,2,0,5\n"), "bad.csv:2: face box"));
  CHECK(vt::has(err("image,age,gender\nx.jpg,40-30,m\n"), "bad.csv:2: age '40-30'"));
  CHECK(vt::has(err(""), "empty manifest"));
  try {
    read_manifest(vt::tmp_dir() + "/does_not_exist.csv");
    CHECK(false);
  } catch (const Error& e) {
    CHECK(vt::has(e.what(), "does_not_exist.csv: cannot open manifest"));
  }
}

TEST_CASE("Precision::Auto runs a network in int8 only where its file's int8 form converts a layer") {
  AgeGenderClassifier clf = AgeGenderClassifier::load(vt::repo("weights/agegender-faceapi.safetensors"));
  CHECK(clf.use_precision(Precision::Auto));
  CHECK(clf.int8().active());
  CHECK(!clf.use_precision(Precision::FP32));
  CHECK(!clf.int8().active());
  // No int8 form: fp32 under Auto, an error naming the file under Int8.
  AgeGenderClassifier plain = AgeGenderClassifier::load(vt::repo("tests/golden/models/resnet18_agedist.safetensors"));
  CHECK(!plain.use_precision(Precision::Auto));
  CHECK_THROWS_WITH_AS(plain.use_precision(Precision::Int8), doctest::Contains("resnet18_agedist.safetensors: holds no int8 form"),
                       cnn::Error);
  // YuNet's form keeps every layer fp32 (the speed rule): Auto leaves it on the float graph.
  YuNetDetector yunet = YuNetDetector::load(vt::repo("weights/yunet.safetensors"));
  CHECK(!yunet.use_precision(Precision::Auto));
  CHECK(yunet.use_precision(Precision::Int8));
}

#ifdef VISION_AGEGENDER_EXE
namespace {
vt::Run agegender(const std::string& args) { return vt::run(VISION_AGEGENDER_EXE, args); }
}  // namespace

TEST_CASE("agegender app: photos") {
  const std::string astronaut = vt::repo("samples/astronaut.png");
  vt::Run r = agegender(astronaut);
  CHECK(r.rc == 0);
  CHECK(vt::has(r.out, "1 face"));
  CHECK(vt::has(r.out, "Age: ("));
  CHECK(vt::has(r.out, "Gender: "));
  const std::string ann = vt::tmp_dir() + "/ag_ann.png";
  r = agegender(astronaut + " --model vgg16 --json --annotate " + ann + " --threads 1");
  CHECK(r.rc == 0);
  CHECK(vt::has(r.out, "\"faces\":[{\"x\":"));
  CHECK(vt::has(r.out, "\"age_group\":\"("));
  CHECK(vt::has(r.out, "\"score\":0.9"));
  CHECK(vt::has(r.out, "\"landmarks\":[["));
  CHECK(vt::has(r.out, "\"classified\":true"));
  CHECK(load_image(ann).width() == 512);
  // A face the detector is unsure of is listed without an age or gender.
  r = agegender(astronaut + " --classify-score 1 --json");
  CHECK(r.rc == 0);
  CHECK(vt::has(r.out, "\"classified\":false}"));
  CHECK(!vt::has(r.out, "age_group"));
  r = agegender(astronaut + " --classify-score 1");
  CHECK(vt::has(r.out, "detector unsure: score 0.9"));
  // The cascade behind the same app.
  r = agegender(astronaut + " --detector haar --json");
  CHECK(r.rc == 0);
  CHECK(vt::has(r.out, "\"classified\":true"));
  CHECK(!vt::has(r.out, "landmarks"));
  // The detector's mirror pass is the default; --mirror off runs the network once (another score).
  auto faces_json = [&](const std::string& flags) {
    const vt::Run run = agegender(astronaut + " --json --threads 1" + flags);
    CHECK(run.rc == 0);
    return run.out.substr(0, run.out.find("\"ms\":"));
  };
  const std::string by_default = faces_json(""), mirrored = faces_json(" --mirror on"), single = faces_json(" --mirror off");
  CHECK(by_default == mirrored);
  CHECK(by_default != single);
  CHECK(vt::has(single, "\"classified\":true"));
  for (const char* f : {"--detector dnn", "--min-score 2", "--classify-score -1", "--detector cnn --cascade x.xml",
                        "--mirror 1", "--detector haar --mirror off"}) {
    CAPTURE(f);
    r = agegender(astronaut + " " + f);
    CHECK(r.rc == 2);
    CHECK(vt::has(r.err, "agegender: "));
  }
  // a directory is walked; a bad file among good ones: reported, the rest processed, exit 1
  const std::string dir = vt::tmp_dir() + "/agdir";
  ::mkdir(dir.c_str(), 0755);
  ::mkdir((dir + "/sub").c_str(), 0755);
  vt::write_bytes(dir + "/sub/a.png", vt::read_text(astronaut));
  vt::write_bytes(dir + "/b.jpg", "not a jpeg");
  vt::write_bytes(dir + "/notes.txt", "ignored");
  r = agegender(dir + " --quiet");
  CHECK(r.rc == 1);
  CHECK(vt::has(r.out, "sub/a.png: 512x512, 1 face"));
  CHECK(vt::has(r.err, "b.jpg"));
  CHECK(vt::has(r.err, "skipping " + dir + "/notes.txt: not an image (.jpg .jpeg .png .bmp)\n"));
}

TEST_CASE("agegender app: int8 from the weights files' int8 forms, and calibrating a new one") {
  const std::string astronaut = vt::repo("samples/astronaut.png");
  vt::Run fp = agegender(astronaut + " --json --threads 1 --precision fp32");
  vt::Run q = agegender(astronaut + " --json --threads 1 --precision int8");
  vt::Run dflt = agegender(astronaut + " --json --threads 1");
  CHECK(fp.rc == 0);
  CHECK(q.rc == 0);
  CHECK(vt::has(q.out, "\"classified\":true"));
  const auto field = [](const std::string& json, const std::string& key) {
    const std::size_t at = json.find("\"" + key + "\":");
    return at == std::string::npos ? std::string("(none)") : json.substr(at, key.size() + 10);
  };
  CHECK(field(q.out, "gender") == field(fp.out, "gender"));  // p = 0.9 in fp32: int8 must not flip it
  CHECK(field(q.out, "p_male") != field(fp.out, "p_male"));  // but it is another network
  // auto, the default: the bundled model's int8 form (it converts most layers)
  CHECK(field(dflt.out, "p_male") == field(q.out, "p_male"));
  CHECK(field(agegender(astronaut + " --json --threads 1 --precision auto").out, "p_male") == field(q.out, "p_male"));
  // bf16: the fp32 networks with bf16 GEMM layers (another rounding, the same answer), or, on a CPU
  // without AVX512_BF16, refused by name.
  vt::Run b = agegender(astronaut + " --json --threads 1 --precision bf16");
  if (cnn::kernels::bf16_available()) {
    CHECK(b.rc == 0);
    CHECK(field(b.out, "gender") == field(fp.out, "gender"));
    CHECK(field(b.out, "p_male") != field(fp.out, "p_male"));
  } else {
    CHECK(b.rc == 2);
    CHECK(vt::has(b.err, "--precision bf16: this CPU has no AVX512_BF16"));
  }
  CHECK(agegender(astronaut + " --precision bf16 --calibrate " + vt::tmp_dir() + " --save-int8 x.safetensors").rc == 2);
  // The ResNet in int8 too; a weights file without an int8 form: said, exit 1 (auto: fp32, silently).
  vt::Run r = agegender(astronaut + " --model resnet --precision int8 --json");
  CHECK(r.rc == 0);
  CHECK(field(r.out, "gender") == field(fp.out, "gender"));
  r = agegender(astronaut + " --precision int8 --weights " + vt::repo("tests/golden/models/resnet18_agedist.safetensors"));
  CHECK(r.rc == 1);
  CHECK(vt::has(r.err, "resnet18_agedist.safetensors: holds no int8 form"));
  r = agegender(astronaut + " --weights " + vt::repo("tests/golden/models/resnet18_agedist.safetensors"));
  CHECK(r.rc == 0);
  // Calibrating: the crops the app writes are the calibration set.
  const std::string crops = vt::tmp_dir() + "/ag_int8_crops", out = vt::tmp_dir() + "/ag_int8.safetensors";
  r = agegender(astronaut + " --crops " + crops + " --quiet");
  REQUIRE(r.rc == 0);
  std::remove(out.c_str());
  r = agegender("--model vgg16 --calibrate " + crops + " --save-int8 " + out);
  CHECK(r.rc == 0);
  CHECK(vt::has(r.out, "int8 form calibrated on 1 face crops"));
  CHECK(vt::has(r.out, "features.0 "));
  r = agegender(astronaut + " --weights " + out + " --precision int8 --json");
  CHECK(r.rc == 0);
  CHECK(vt::has(r.out, "\"age_group\":\"("));
  // A broken int8 form is an error under auto (the default) as under int8: never a silent fall-back.
  std::string broken = vt::read_text(out);
  const std::size_t fmt = broken.find("\\\"format\\\":1");
  REQUIRE(fmt != std::string::npos);
  broken[fmt + 11] = '7';
  vt::write_bytes(out + ".broken", broken);
  r = agegender(astronaut + " --weights " + out + ".broken");
  CHECK(r.rc == 1);
  CHECK(vt::has(r.err, "ag_int8.safetensors.broken: metadata 'quantization': needs \"format\": 1"));
  CHECK(agegender(astronaut + " --weights " + out + ".broken --precision fp32").rc == 0);
  // Bad int8 flags: exit 2 before any work.
  for (const char* f : {"--precision int4", "--calibrate", "", "--calibration mean", "--min-sqnr x"}) {  // "": no --save-int8
    CAPTURE(f);
    r = agegender(std::string("--calibrate ") + crops + " " + f);
    CHECK(r.rc == 2);
  }
  r = agegender(astronaut + " --calibrate " + crops + " --save-int8 " + out);
  CHECK(r.rc == 2);
  CHECK(vt::has(r.err, "--calibrate runs alone"));
  r = agegender("--calibrate /nonexistent --save-int8 " + out);
  CHECK(r.rc == 2);
  CHECK(vt::has(r.err, "--calibrate: /nonexistent is not a directory"));
}

// The rough edges a new user hits: folders without photos, other files in them, output folders
// that do not exist yet, --threads 0, the progress bar, and a photo in which no face is found.
TEST_CASE("agegender app: careless input") {
  const std::string astronaut = vt::repo("samples/astronaut.png");
  const std::string root = vt::tmp_dir() + "/agcareless";
  ::mkdir(root.c_str(), 0755);
  // a folder without photos: said so, exit 1
  const std::string empty = root + "/empty", txt = root + "/textonly";
  ::mkdir(empty.c_str(), 0755);
  ::mkdir(txt.c_str(), 0755);
  vt::write_bytes(txt + "/readme.txt", "x");
  vt::Run r = agegender(empty);
  CHECK(r.rc == 1);
  CHECK(r.out.empty());
  CHECK(vt::has(r.err, "agegender: error: " + empty + ": no images (JPEG, PNG, BMP) found"));
  r = agegender(txt);
  CHECK(r.rc == 1);
  CHECK(vt::has(r.err, "skipping " + txt + "/readme.txt: not an image"));
  CHECK(vt::has(r.err, "agegender: error: " + txt + ": no images (JPEG, PNG, BMP) found"));
  // other files beside photos: one line each (the first 5), then a count; the exit code stays 0;
  // hidden files are passed over silently;
  // upper-case extensions are photos
  const std::string mixed = root + "/mixed";
  ::mkdir(mixed.c_str(), 0755);
  vt::write_bytes(mixed + "/A.PNG", vt::read_text(astronaut));
  vt::write_bytes(mixed + "/b.png", vt::read_text(astronaut));
  for (int k = 0; k < 7; ++k) vt::write_bytes(mixed + "/n" + std::to_string(k) + ".txt", "x");
  vt::write_bytes(mixed + "/.hidden", "x");
  r = agegender(mixed + " --threads 0");  // --threads 0: all cores
  CHECK(r.rc == 0);
  CHECK(vt::has(r.out, "A.PNG: 512x512, 1 face"));
  CHECK(vt::has(r.err, "skipping " + mixed + "/n0.txt: not an image (.jpg .jpeg .png .bmp)"));
  CHECK(vt::has(r.err, "skipping " + mixed + "/n4.txt: not an image"));
  CHECK(!vt::has(r.err, "n5.txt"));
  CHECK(!vt::has(r.err, ".hidden"));
  CHECK(vt::has(r.err, "skipping 2 more files under " + mixed + ": not images"));
  // not a terminal: no progress bar
  CHECK(!vt::has(r.err, "\r"));
  CHECK(!vt::has(r.err, "] 1/2"));
  // output folders are made (mkdir -p); a file in their place is refused before any work
  const std::string ann_dir = root + "/new/annotated", crops = root + "/new/crops";
  r = agegender(astronaut + " --annotate-dir " + ann_dir + " --crops " + crops);
  CHECK(r.rc == 0);
  CHECK(load_image(ann_dir + "/astronaut.png").width() == 512);
  CHECK(vt::exists(crops + "/astronaut_face0.png"));
  for (const char* flag : {"--annotate-dir", "--crops"}) {
    CAPTURE(flag);
    r = agegender(astronaut + " " + flag + " " + txt + "/readme.txt");
    CHECK(r.rc == 2);
    CHECK(vt::has(r.err, txt + "/readme.txt exists and is not a directory"));
    CHECK(r.out.empty());
  }
  // --annotate into a missing folder: refused up front, naming the path, nothing written
  r = agegender(astronaut + " --annotate " + root + "/missing/out.png");
  CHECK(r.rc == 2);
  CHECK(vt::has(r.err, root + "/missing/out.png: directory " + root + "/missing does not exist"));
  CHECK(r.out.empty());
  CHECK(!vt::exists(root + "/missing"));
  // a photo without a face: a hint that fits the detector (text only; JSON unchanged)
  const std::string blank = root + "/blank.png";
  save_image(blank, vision::Image(64, 48, 3, 128));
  r = agegender(blank);
  CHECK(r.rc == 0);
  CHECK(vt::has(r.out, "blank.png: 64x48, 0 faces"));
  CHECK(vt::has(r.out, "  no face found (the CNN detector finds faces of at least 24 px scoring at least 0.50; "
                       "try --min-score 0.3 or a smaller --min-size)"));
  r = agegender(blank + " --detector haar --min-size 30");
  CHECK(vt::has(r.out, "no face found (--detector haar finds frontal, upright faces of at least 30 px; "
                       "--detector cnn also finds turned and tilted ones)"));
  r = agegender(blank + " --json");
  CHECK(vt::has(r.out, "\"faces\":[]"));
  CHECK(!vt::has(r.out, "no face"));
}

#ifdef __linux__
TEST_CASE("agegender app: on a terminal the progress bar never shares a line with a result") {
  if (std::system("script -V >/dev/null 2>&1") != 0) {
    MESSAGE("SKIPPED: no script(1) to run the app on a terminal");
    return;
  }
  const std::string dir = vt::tmp_dir() + "/agtty";
  ::mkdir(dir.c_str(), 0755);
  for (const char* n : {"a.png", "b.png", "c.png"}) vt::write_bytes(dir + "/" + n, vt::read_text(vt::repo("samples/astronaut.png")));
  const std::string log = vt::tmp_dir() + "/agtty.log";
  const std::string cmd = "script -qec '" + std::string(VISION_AGEGENDER_EXE) + " " + dir + "' " + log + " >/dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  const std::string raw = vt::read_text(log);
  CHECK(vt::has(raw, "] 1/3"));  // the bar was drawn
  // What the terminal shows of each line: the text after the last erase-line.
  int results = 0;
  std::size_t at = 0;
  while (at < raw.size()) {
    std::size_t end = raw.find('\n', at);
    if (end == std::string::npos) end = raw.size();
    std::string line = raw.substr(at, end - at);
    at = end + 1;
    const std::size_t erase = line.rfind("\r\033[K");
    if (erase != std::string::npos) line = line.substr(erase + 4);
    if (vt::has(line, "512x512")) {
      ++results;
      CHECK(line.rfind(dir, 0) == 0);  // the result starts its line
    }
    CHECK(!vt::has(line, "] 1/3"));
    CHECK(!vt::has(line, "] 2/3"));
  }
  CHECK(results == 3);
}
#endif

TEST_CASE("agegender app: manifest evaluation and its bad inputs") {
  const std::string dir = vt::tmp_dir() + "/agm";
  ::mkdir(dir.c_str(), 0755);
  vt::write_bytes(dir + "/face.png", vt::read_text(agegender_golden("face_astronaut.png")));
  vt::write_bytes(dir + "/photo.png", vt::read_text(vt::repo("samples/astronaut.png")));
  vt::write_bytes(dir + "/broken.png", "garbage");
  vt::write_bytes(dir + "/m.csv", "image,age,gender\nface.png,40,f\nbroken.png,30,m\nmissing.png,30,m\n");
  const std::string preds = dir + "/p.csv", report = dir + "/r.md";
  vt::Run r = agegender("--manifest " + dir + "/m.csv --aligned --predictions " + preds + " --report " + report + " --quiet");
  CHECK(r.rc == 1);  // unreadable rows: counted and reported, the run completes
  CHECK(vt::has(r.err, "m.csv:3: "));
  CHECK(vt::has(r.err, "broken.png"));
  CHECK(vt::has(r.err, "m.csv:4: "));
  CHECK(vt::has(r.err, "2 of 3 images could not be read"));
  CHECK(vt::has(r.out, "unreadable 2"));
  const std::string p = vt::read_text(preds);
  CHECK(vt::has(p, "image,pred_age,pred_gender,pred_group,gender_prob,group_prob,age_low,age_high\nface.png,"));
  CHECK(vt::has(p, "\nbroken.png,,,,,,,\nmissing.png,,,,,,,\n"));
  CHECK(vt::has(vt::read_text(report), "r_confusion.png"));
  CHECK(load_image(dir + "/r_confusion.png").width() > 100);
  // the full pipeline with a face box
  vt::write_bytes(dir + "/box.csv", "image,age,gender,x,y,w,h\nphoto.png,40,f,180,70,95,95\nphoto.png,40,f,10,400,50,50\n");
  r = agegender("--manifest " + dir + "/box.csv --predictions " + preds + " --quiet");
  CHECK(r.rc == 0);
  CHECK(vt::has(r.out, "no face found 1"));
  CHECK(vt::has(vt::read_text(preds), "\nphoto.png,,,,,,,\n"));
  // malformed manifest: line number, nothing written
  std::remove(preds.c_str());
  vt::write_bytes(dir + "/bad.csv", "image,age,gender\nface.png,40,f\nface.png,forty,f\n");
  r = agegender("--manifest " + dir + "/bad.csv --predictions " + preds);
  CHECK(r.rc == 1);
  CHECK(vt::has(r.err, "bad.csv:3: age 'forty'"));
  CHECK(!vt::exists(preds));
  // missing, corrupt or wrong weights and cascades, and a too large photo: exit 1 naming the problem
  const std::string whole = vt::read_text(vt::repo("weights/agegender-resnet18.safetensors"));
  vt::write_bytes(dir + "/cut.safetensors", whole.substr(0, whole.size() / 2));
  // a graph file whose gender head is no longer an output (blanked in place: the header keeps its length)
  std::string headless = vt::read_text(vt::repo("weights/agegender-faceapi.safetensors"));
  const std::string gender_out = "[\\\"gender\\\",\\\"head.gender\\\"],";
  const std::size_t at = headless.find(gender_out);
  REQUIRE(at != std::string::npos);
  headless.replace(at, gender_out.size(), std::string(gender_out.size(), ' '));
  vt::write_bytes(dir + "/headless.safetensors", headless);
  const std::pair<std::string, std::string> failures[] = {
      {"--weights " + dir + "/headless.safetensors", "headless.safetensors: not an age/gender model (no 'gender' head"},
      {"--weights " + dir + "/nope.safetensors", "nope.safetensors"},
      {"--cascade " + dir + "/nope.xml", "nope.xml"},
      {"--weights " + vt::golden("cascade_default7_new.xml"), "cascade_default7_new.xml"},
      {"--weights " + dir + "/cut.safetensors", "cut.safetensors"},
      {"--weights " + vt::repo("tests/golden/models/resnet18_w025.safetensors"), "not an age/gender model"},
      {"--max-pixels 1000", "astronaut.png"}};
  for (const auto& [args, message] : failures) {
    CAPTURE(args);
    r = agegender(vt::repo("samples/astronaut.png") + " " + args);
    CHECK(r.rc == 1);
    CHECK(vt::has(r.err, message));
  }
  // bad flags exit 2
  for (const char* f : {"--model alexnet", "--threads x", "--bogus", "--aligned", "--predictions p.csv",
                        "--manifest m.csv"}) {
    CAPTURE(f);
    r = agegender(vt::repo("samples/astronaut.png") + " " + f);
    CHECK(r.rc == 2);
    CHECK(vt::has(r.err, "agegender: "));
  }
  r = agegender("--manifest " + dir + "/m.csv --predictions /nonexistent_dir/p.csv");
  CHECK(r.rc == 2);
  CHECK(vt::has(r.err, "/nonexistent_dir"));
}
#endif
