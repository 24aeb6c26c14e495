// The CNN face detector (YuNet on this engine) against libfacedetection's own output, the common
// FaceDetector interface, and bad detector files.
#include <nlohmann/json.hpp>

#include <functional>

#include "common.hpp"

using namespace vision;

namespace {
const std::string kWeights = vt::repo("weights/yunet.safetensors");

// A copy of the bundled detector with metadata changed (or tensors dropped) by `edit`.
std::string edited_copy(const std::string& name, const std::function<void(cnn::SafeTensorsWriter&)>& edit) {
  const cnn::SafeTensors st = cnn::SafeTensors::open(kWeights);
  cnn::SafeTensorsWriter w;
  w.metadata = st.metadata();
  for (const std::string& n : st.names()) {
    std::vector<float> v;
    st.read(n, v);
    w.add(n, st.dims(n), v);
  }
  edit(w);
  const std::string path = vt::tmp_dir() + "/" + name;
  w.save(path);
  return path;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("YuNet on this engine gives libfacedetection's boxes, scores and landmarks") {
  VT_REQUIRE_SHARED();
  // golden/yunet.json: libfacedetection's own output (bench/peers/yunet_peer, tools/yunet_golden.py)
  // on the pixels our decoder gives, boxes and landmarks in whole pixels, scores in hundredths.
  const auto g = nlohmann::json::parse(vt::read_text(vt::golden("yunet.json")));
  YuNetDetector det = YuNetDetector::load(kWeights);
  FaceDetectParams p;
  p.min_score = 0.f;       // every face the library keeps (its own threshold, 0.2, applies inside)
  p.min_face = 0;          // the photo at its own size, as the library runs it
  p.max_input_side = 0;
  int faces = 0, photos = 0;
  for (std::size_t i = 0; i < g["images"].size(); ++i) {
    const std::string path = vt::shared_dir() + "/" + g["images"][i].get<std::string>();
    REQUIRE_MESSAGE(vt::exists(path), path << " is missing from the shared data");
    const Image img = load_image(path);
    const auto& want = g["results"][i]["faces"];
    const std::vector<Face> got = det.detect(img, p);
    INFO(path);
    REQUIRE(got.size() == want.size());
    ++photos;
    for (std::size_t k = 0; k < want.size(); ++k) {
      const auto& w = want[k];
      const Face& f = got[k];  // both in the library's order: score, then NMS
      INFO("face " << k << ": library " << w.dump() << " ours " << f.box.x << "," << f.box.y << "," << f.box.w << ","
                   << f.box.h << " " << f.score);
      CHECK(std::abs(f.box.x - w["x"].get<int>()) <= 1);
      CHECK(std::abs(f.box.y - w["y"].get<int>()) <= 1);
      CHECK(std::abs(f.box.w - w["w"].get<int>()) <= 1);
      CHECK(std::abs(f.box.h - w["h"].get<int>()) <= 1);
      CHECK(std::fabs(f.score - w["score100"].get<int>() / 100.0) <= 0.01);
      for (int m = 0; m < 5; ++m) {
        CHECK(std::fabs(f.landmarks[m].x - w["landmarks"][m][0].get<double>()) <= 1.0);
        CHECK(std::fabs(f.landmarks[m].y - w["landmarks"][m][1].get<double>()) <= 1.0);
      }
      ++faces;
    }
  }
  MESSAGE(faces << " faces on " << photos << " photos equal libfacedetection's");
  CHECK(faces >= 60);
}

TEST_CASE("the detector scales a large photo for the faces wanted") {
  YuNetDetector det = YuNetDetector::load(kWeights);
  const Image photo = load_image(vt::repo("samples/astronaut.png"));
  FaceDetectParams p;
  p.min_face = 0;
  const std::vector<Face> native = det.detect(photo, p);
  REQUIRE(native.size() == 1);
  // Twice the size, and only faces of at least 80 px wanted: the network sees it at half size.
  const Image big = resize(photo, 1024, 1024, Interp::Linear);
  p.min_face = 80;
  CHECK(YuNetDetector::input_scale(1024, 1024, p) == doctest::Approx(0.5));
  const std::vector<Face> scaled = det.detect(big, p);
  REQUIRE(scaled.size() == 1);
  CHECK(std::abs(scaled[0].box.x - 2 * native[0].box.x) <= 8);
  CHECK(std::abs(scaled[0].box.w - 2 * native[0].box.w) <= 8);
  CHECK(std::fabs(scaled[0].landmarks[0].x - 2 * native[0].landmarks[0].x) <= 8);
  // The longer side is capped too, and min_face filters the boxes.
  p.min_face = 0;
  p.max_input_side = 256;
  CHECK(YuNetDetector::input_scale(1024, 1024, p) == doctest::Approx(0.25));
  p.max_input_side = 0;
  p.min_face = native[0].box.h * 2 + 20;
  CHECK(det.detect(big, p).empty());
  // Grey photos work as well (the network is fed grey in every channel).
  p.min_face = 0;
  CHECK(det.detect(to_grey(photo), p).size() == 1);
}

TEST_CASE("the mirror pass averages two passes: scores, boxes, landmarks") {
  // average_passes on hand-made candidates: a pair that overlaps (IoU >= 0.5) is one face with the
  // mean score and the score-weighted box; a face only one pass has keeps half its score.
  auto cand = [](float score, float x0, float y0, float x1, float y1) {
    detail::Candidate c{};
    c.score = score;
    c.box[0] = x0, c.box[1] = y0, c.box[2] = x1, c.box[3] = y1;
    for (int k = 0; k < 5; ++k) c.lm[2 * k] = x0 + k, c.lm[2 * k + 1] = y0 + k;
    return c;
  };
  const std::vector<detail::Candidate> a = {cand(0.9f, 0, 0, 100, 100), cand(0.6f, 300, 0, 340, 40)};
  const std::vector<detail::Candidate> b = {cand(0.7f, 500, 0, 540, 40), cand(0.3f, 10, 0, 110, 100)};
  const std::vector<detail::Candidate> m = YuNetDetector::average_passes(a, b);
  REQUIRE(m.size() == 3);
  CHECK(m[0].score == doctest::Approx(0.6f));  // (0.9 + 0.3) / 2
  CHECK(m[0].box[0] == doctest::Approx(0.25f * 10));  // weights 0.75 and 0.25
  CHECK(m[0].box[2] == doctest::Approx(0.75f * 100 + 0.25f * 110));
  CHECK(m[0].lm[0] == doctest::Approx(0.25f * 10));
  CHECK(m[1].score == doctest::Approx(0.35f));  // b's lone face: 0.7 / 2
  CHECK(m[1].box[0] == 500);
  CHECK(m[2].score == doctest::Approx(0.3f));  // a's lone face: 0.6 / 2

  // On photos: mirroring the photo mirrors the answer (the two passes swap), and the averaged
  // landmarks stay where the single pass puts them (the mirror's left eye is the photo's right).
  YuNetDetector det = YuNetDetector::load(kWeights);
  FaceDetectParams p;
  p.min_face = 0;
  p.mirror = true;
  std::vector<std::string> photos = {vt::repo("samples/astronaut.png")};
  if (vt::have_shared())  // a group photo of 8 faces
    photos.push_back(vt::shared_dir() + "/data/wider-dev/images/12--Group/12_Group_Group_12_Group_Group_12_101.jpg");
  for (const std::string& path : photos) {
    INFO(path);
    const Image img = load_image(path);
    const Image flipped = flip_horizontal(img);
    const std::vector<Face> got = det.detect(img, p), got_flipped = det.detect(flipped, p);
    FaceDetectParams single = p;
    single.mirror = false;
    const std::vector<Face> one = det.detect(img, single);
    REQUIRE(!got.empty());
    REQUIRE(got.size() == got_flipped.size());
    for (std::size_t k = 0; k < got.size(); ++k) {
      const Face &f = got[k], &g = got_flipped[k];
      CHECK(f.score == doctest::Approx(g.score).epsilon(1e-4));
      CHECK(std::abs(f.box.x - (img.width() - g.box.x - g.box.w)) <= 2);
      CHECK(std::abs(f.box.y - g.box.y) <= 1);
      CHECK(std::abs(f.box.w - g.box.w) <= 2);
      CHECK(f.landmarks[kEyeLeft].x < f.landmarks[kEyeRight].x);
      CHECK(std::fabs(f.landmarks[kEyeLeft].x - (img.width() - g.landmarks[kEyeRight].x)) <= 1.0);
    }
    int compared = 0;
    for (const Face& f : got) {  // the sure faces against the single pass's box of the same face
      if (f.score < 0.8f) continue;
      for (const Face& o : one) {
        if (iou(f.box, o.box) < 0.7) continue;
        ++compared;
        for (int m = 0; m < 5; ++m)
          CHECK(std::hypot(f.landmarks[m].x - o.landmarks[m].x, f.landmarks[m].y - o.landmarks[m].y) <= 0.1 * f.box.w);
      }
    }
    CHECK(compared >= 1);
  }
}

TEST_CASE("a detector reused on photos of other sizes answers as a fresh one") {
  // The network's input is kept between calls; a photo whose padded size is the same as the last
  // one's (512 -> 500 px: both padded to 512) must see zeros, not the last photo, in its padding.
  const Image photo = load_image(vt::repo("samples/astronaut.png"));
  const Image smaller = crop(photo, Rect{0, 0, 500, 500});
  for (bool mirror : {false, true}) {
    cnn::Tensor t;
    YuNetDetector::fill_input(photo, !mirror, t);
    YuNetDetector::fill_input(smaller, mirror, t);
    const cnn::Tensor want = YuNetDetector::input_tensor(smaller, mirror);
    REQUIRE(t.shape() == want.shape());
    CHECK(std::memcmp(t.data(), want.data(), want.bytes()) == 0);
  }
  FaceDetectParams p;
  p.min_face = 0;
  p.min_score = 0.f;
  for (bool mirror : {false, true}) {
    p.mirror = mirror;
    YuNetDetector reused = YuNetDetector::load(kWeights), fresh = YuNetDetector::load(kWeights);
    reused.detect(photo, p);
    const std::vector<Face> a = reused.detect(smaller, p), b = fresh.detect(smaller, p);
    REQUIRE(a.size() == b.size());
    for (std::size_t k = 0; k < a.size(); ++k) {
      CHECK(a[k].score == b[k].score);
      CHECK(a[k].box == b[k].box);
    }
  }
}

TEST_CASE("the cascade behind the same interface: OpenCV's boxes, a probability from the neighbours") {
  CascadeFaceDetector det(CascadeClassifier::load(vt::repo("weights/haarcascade_frontalface_alt2.xml")));
  const Image photo = load_image(vt::repo("samples/astronaut.png"));
  FaceDetectParams p;
  p.min_score = 0.f;
  p.min_face = 24;
  const std::vector<Face> faces = det.detect(photo, p);
  REQUIRE(faces.size() == 1);
  CHECK_FALSE(faces[0].has_landmarks);
  CHECK(faces[0].neighbors > 3);
  CHECK(faces[0].score == CascadeFaceDetector::probability(faces[0].neighbors));
  float last = 0.f;
  for (int n : {1, 3, 5, 10, 20, 40, 100}) {
    const float pr = CascadeFaceDetector::probability(n);
    CHECK(pr > last);
    CHECK(pr < 1.f);
    last = pr;
  }
  p.min_score = 1.f;
  CHECK(det.detect(photo, p).empty());
}

TEST_CASE("detector files of the wrong kind, cut short or using an op the engine lacks are refused by name") {
  auto err = [](const std::string& path) { return error_of([&] { YuNetDetector::load(path); }); };
  CHECK(vt::has(err(vt::repo("weights/agegender-resnet18.safetensors")), "not a face detector"));
  const std::string whole = vt::read_text(kWeights);
  const std::string cut = vt::tmp_dir() + "/yunet_cut.safetensors";
  vt::write_bytes(cut, whole.substr(0, whole.size() / 2));
  CHECK(vt::has(err(cut), "yunet_cut.safetensors"));
  CHECK(vt::has(err(vt::tmp_dir() + "/no_such.safetensors"), "no_such.safetensors"));

  const std::string mish = edited_copy("yunet_mish.safetensors", [](cnn::SafeTensorsWriter& w) {
    std::string& g = w.metadata["graph"];
    const std::string relu = "\"op\":\"ReLU\"";
    g.replace(g.find(relu), relu.size(), "\"op\":\"Mish\"");
  });
  const std::string e = err(mish);
  CHECK(vt::has(e, "yunet_mish.safetensors"));
  CHECK(vt::has(e, "uses op 'Mish'"));
  CHECK(vt::has(e, "backbone.model0.relu"));

  const std::string no_head = edited_copy("yunet_nohead.safetensors", [](cnn::SafeTensorsWriter& w) {
    std::string& g = w.metadata["graph"];
    const std::string out = "[\"kps_32\",";
    const std::size_t at = g.find(out);
    g.replace(at, out.size(), "[\"landmarks_32\",");
  });
  CHECK(vt::has(err(no_head), "has no output 'kps_32'"));

  const std::string no_tensor = edited_copy("yunet_notensor.safetensors", [](cnn::SafeTensorsWriter& w) {
    w.tensors.erase("neck.lateral_convs.0.pw.weight");
  });
  CHECK(vt::has(err(no_tensor), "missing tensor 'neck.lateral_convs.0.pw.weight'"));

  const std::string misfit = edited_copy("yunet_misfit.safetensors", [](cnn::SafeTensorsWriter& w) {
    std::string& g = w.metadata["graph"];  // the first upsampling doubles nothing: the add's shapes differ
    const std::string up = "\"scale\":2";
    g.replace(g.find(up), up.size(), "\"scale\":1");
  });
  const std::string m = err(misfit);
  CHECK(vt::has(m, "yunet_misfit.safetensors: Add 'neck.add1': input shapes differ"));

  const std::string not_json = edited_copy("yunet_badgraph.safetensors", [](cnn::SafeTensorsWriter& w) {
    w.metadata["graph"] = "{\"inputs\": [";
  });
  CHECK(vt::has(err(not_json), "metadata 'graph' is not valid JSON"));
}

#ifdef VISION_DETECT_EXE
TEST_CASE("detect app: the CNN by default, with scores and landmarks; --detector haar keeps the cascade") {
  const std::string img = vt::repo("samples/astronaut.png");
  vt::Run r = vt::run(VISION_DETECT_EXE, img + " --json");
  CHECK(r.rc == 0);
  CHECK(vt::has(r.out, "\"landmarks\":[["));
  CHECK(vt::has(r.out, "\"detector\":\"cnn\""));
  r = vt::run(VISION_DETECT_EXE, img + " --json --detector haar");
  CHECK(r.rc == 0);
  CHECK(vt::has(r.out, "\"neighbors\":"));
  CHECK(vt::has(r.out, "\"detector\":\"haar\""));
  CHECK_FALSE(vt::has(r.out, "landmarks"));
  r = vt::run(VISION_DETECT_EXE, img + " --json --min-score 1");
  CHECK(r.rc == 0);
  CHECK(vt::has(r.out, "\"faces\":[]"));
  r = vt::run(VISION_DETECT_EXE, img + " --json --mirror on");
  CHECK(r.rc == 0);
  CHECK(vt::has(r.out, "\"landmarks\":[["));
  const std::string ann = vt::tmp_dir() + "/cnn_annot.png";
  r = vt::run(VISION_DETECT_EXE, img + " --annotate " + ann);
  CHECK(r.rc == 0);
  CHECK(load_image(ann).width() == 512);
  for (const char* f : {"--detector dnn", "--min-score 1.5", "--min-score -0.1", "--detector cnn --cascade x.xml",
                        "--detector haar --weights w.safetensors", "--max-input 4", "--mirror yes",
                        "--detector haar --mirror on"}) {
    CAPTURE(f);
    r = vt::run(VISION_DETECT_EXE, img + " " + f);
    CHECK(r.rc == 2);
    CHECK(vt::has(r.err, "detect: "));
  }
  r = vt::run(VISION_DETECT_EXE, img + " --weights " + vt::repo("weights/agegender-vgg16bn.safetensors"));
  CHECK(r.rc == 1);
  CHECK(vt::has(r.err, "agegender-vgg16bn.safetensors: not a face detector"));
}

TEST_CASE("detect app: --precision int8 from the weights' int8 form; --calibrate makes one") {
  const std::string img = vt::repo("samples/astronaut.png");
  vt::Run fp = vt::run(VISION_DETECT_EXE, img + " --json");
  vt::Run q = vt::run(VISION_DETECT_EXE, img + " --json --precision int8");
  CHECK(q.rc == 0);
  // YuNet's int8 form keeps every layer fp32 (docs/int8.md, the speed rule): the same boxes.
  const auto faces = [](const std::string& json) {
    const std::size_t at = json.find("\"faces\"");
    return json.substr(at, json.find("\"detector\"") - at);
  };
  CHECK(faces(q.out) == faces(fp.out));
  const std::string dir = vt::tmp_dir() + "/det_int8", out = vt::tmp_dir() + "/det_int8.safetensors";
  ::mkdir(dir.c_str(), 0755);
  vt::write_bytes(dir + "/a.png", vt::read_text(img));
  std::remove(out.c_str());
  vt::Run r = vt::run(VISION_DETECT_EXE, "--calibrate " + dir + " --save-int8 " + out);
  CHECK(r.rc == 0);
  CHECK(vt::has(r.out, "int8 form calibrated on 1 photos"));
  CHECK(vt::has(r.out, "backbone.model0.conv "));
  r = vt::run(VISION_DETECT_EXE, img + " --weights " + out + " --precision int8 --json");
  CHECK(r.rc == 0);
  CHECK(vt::has(r.out, "\"landmarks\":[["));
  for (const char* f : {"--precision int4", "--precision int8 --detector haar", "--calibrate " , "--save-int8 x.safetensors"}) {
    CAPTURE(f);
    r = vt::run(VISION_DETECT_EXE, img + " " + f);
    CHECK(r.rc == 2);
  }
  r = vt::run(VISION_DETECT_EXE, img + " --calibrate " + dir + " --save-int8 " + out);
  CHECK(r.rc == 2);
  CHECK(vt::has(r.err, "--calibrate runs alone"));
}

TEST_CASE("detect app: folders are walked like agegender's; outputs checked and their folders made up front") {
  const std::string img = vt::repo("samples/astronaut.png");
  const std::string root = vt::tmp_dir() + "/detwalk";
  ::mkdir(root.c_str(), 0755);
  ::mkdir((root + "/photos").c_str(), 0755);
  ::mkdir((root + "/photos/sub").c_str(), 0755);
  ::mkdir((root + "/none").c_str(), 0755);
  vt::write_bytes(root + "/photos/sub/a.png", vt::read_text(img));
  vt::write_bytes(root + "/photos/b.JPG", "not a jpeg");
  vt::write_bytes(root + "/photos/list.csv", "x");
  // a folder: its photos in order, other files named on stderr, a bad photo counted (exit 1)
  vt::Run r = vt::run(VISION_DETECT_EXE, root + "/photos --threads 0");
  CHECK(r.rc == 1);
  CHECK(vt::has(r.out, root + "/photos/sub/a.png: 512x512, 1 face"));
  CHECK(vt::has(r.err, "b.JPG"));
  CHECK(vt::has(r.err, "skipping " + root + "/photos/list.csv: not an image (.jpg .jpeg .png .bmp)"));
  CHECK(!vt::has(r.err, "\r"));  // not a terminal: no progress bar
  std::remove((root + "/photos/b.JPG").c_str());
  r = vt::run(VISION_DETECT_EXE, root + "/photos --json");
  CHECK(r.rc == 0);  // skipped files do not change the exit code
  CHECK(vt::has(r.out, "\"image\":\"" + root + "/photos/sub/a.png\""));
  // a folder without photos: an error, exit 1
  r = vt::run(VISION_DETECT_EXE, root + "/none");
  CHECK(r.rc == 1);
  CHECK(vt::has(r.err, "detect: error: " + root + "/none: no images (JPEG, PNG, BMP) found"));
  // --align makes its folder; a file in its place, or --annotate into a missing folder: exit 2
  // before any image is read, nothing written
  r = vt::run(VISION_DETECT_EXE, img + " --align " + root + "/out/aligned");
  CHECK(r.rc == 0);
  CHECK(vt::exists(root + "/out/aligned/astronaut_face0.png"));
  r = vt::run(VISION_DETECT_EXE, img + " --align " + root + "/photos/list.csv");
  CHECK(r.rc == 2);
  CHECK(vt::has(r.err, "--align: " + root + "/photos/list.csv exists and is not a directory"));
  r = vt::run(VISION_DETECT_EXE, img + " --annotate " + root + "/nowhere/a.png");
  CHECK(r.rc == 2);
  CHECK(vt::has(r.err, "--annotate: " + root + "/nowhere/a.png: directory " + root + "/nowhere does not exist"));
  CHECK(r.out.empty());
  CHECK(!vt::exists(root + "/nowhere"));
  // no face: a one-line hint for the detector used (text only)
  const std::string blank = root + "/blank.png";
  save_image(blank, Image(64, 48, 3, 128));
  r = vt::run(VISION_DETECT_EXE, blank);
  CHECK(r.rc == 0);
  CHECK(vt::has(r.out, "0 faces"));
  CHECK(vt::has(r.out, "  no face found (the CNN detector finds faces of at least 16 px scoring at least 0.50; try --min-score 0.3"));
  r = vt::run(VISION_DETECT_EXE, blank + " --detector haar");
  CHECK(vt::has(r.out, "  no face found (--detector haar finds frontal, upright faces of at least 24 px"));
  r = vt::run(VISION_DETECT_EXE, blank + " --json");
  CHECK(!vt::has(r.out, "no face"));
}
#endif
