// agegender - age group, age and gender of every face in photos, and the performance analysis of
// a model on a labelled manifest. Thin CLI over include/vision/face_pipeline.hpp and
// include/vision/evaluation.hpp: parse flags, call the library, print.
#include <cnn/cnn.hpp>
#include <cnn/io/file.hpp>
#include <cnn/io/json.hpp>
#include <vision/evaluation.hpp>
#include <vision/face_pipeline.hpp>
#include <vision/vision.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <unistd.h>
#include <vector>

#include "../common/cli.hpp"

namespace {

using cli::parse_int;
using cli::usage_error;

const char* kUsage =
    "usage: agegender PHOTO|DIR... [options]\n"
    "       agegender --manifest M.csv --root DIR --predictions P.csv [--aligned] [--report R.md] [options]\n"
    "  --model faceapi|resnet|vgg16  bundled model: faceapi (default; face-api's recognition\n"
    "                        network fine-tuned with the heads, 150 px, best on photos), or the\n"
    "                        smaller ResNet-18 (phase II) and VGG16-BN (phase I), 64 px\n"
    "  --weights FILE        another age/gender model (.safetensors with gender/age_group/age heads)\n"
    "  --detector cnn|haar   face detector: YuNet CNN with landmarks (default; with --cascade: haar)\n"
    "                        or a Viola-Jones cascade\n"
    "  --min-score S         report faces scoring at least S, 0..1 (default 0.5)\n"
    "  --classify-score S    give age and gender to faces scoring at least S (default 0.55) and at\n"
    "                        least 32 px tall; the others are listed without\n"
    "  --detector-weights F  CNN detector weights (default: bundled yunet.safetensors)\n"
    "  --mirror on|off       cnn: also run the detector on the mirrored photo and average the two\n"
    "                        (default on: a quarter fewer false faces at the same recall)\n"
    "  --cascade FILE        haar: face cascade (default: bundled haarcascade_frontalface_alt2.xml)\n"
    "  --eye-cascade FILE    eye cascade to align faces without landmarks (default: bundled haarcascade_eye.xml)\n"
    "  --min-size S          smallest face in pixels (default 24)\n"
    "  --threads T           worker threads, 0 = all cores (default 0)\n"
    "  --max-pixels N        refuse larger images (default 100000000)\n"
    "  --max-memory MIB      refuse photos whose decoding and processing need more (default 512)\n"
    "  --json                one JSON object per photo on stdout\n"
    "  --annotate OUT.png    write the photo with boxes and labels (several photos: OUT_<i>.png)\n"
    "  --annotate-dir DIR    write each annotated photo as DIR/<name>.png\n"
    "  --crops DIR           write each aligned face as DIR/<name>_face<k>.png (what the network sees)\n"
    "  --quiet               no progress bar\n"
    "  --precision auto|fp32|bf16|int8  int8: run the age/gender network and the CNN detector in\n"
    "                        int8, from the int8 forms in their weights files; auto (default): int8\n"
    "                        where a file's form converts any layer (the bundled age/gender models),\n"
    "                        else fp32; bf16: fp32 networks whose GEMM layers multiply in bf16\n"
    "                        (CPUs with AVX512_BF16)\n"
    "  --calibrate DIR --save-int8 OUT  make the age/gender network's int8 form from the aligned\n"
    "                        face crops in DIR (--crops output), write its weights file with it as OUT\n"
    "  --calibration minmax|percentile  activation ranges for --calibrate (default percentile)\n"
    "  --min-sqnr DB         --calibrate: layers whose own int8 error is larger stay fp32 (default 20)\n"
    " evaluation:\n"
    "  --manifest M.csv      CSV with header image,age,gender[,x,y,w,h] (age: years or a range 30-39)\n"
    "  --root DIR            directory the manifest's image paths are relative to (default: the manifest's)\n"
    "  --aligned             images are face crops (UTKFace-like), used as they are; in a crop\n"
    "                        framed much more loosely the face is found and aligned first\n"
    "  --predictions P.csv   write image,pred_age,pred_gender,pred_group,gender_prob,group_prob,age_low,age_high\n"
    "                        per row\n"
    "  --report R.md         write the analysis as Markdown, with R_confusion.png beside it\n"
    "  -h, --help            this text\n";

struct Options {
  std::vector<std::string> inputs;
  std::string model = "faceapi", weights, detector, detector_weights, cascade, eye_cascade, annotate,
      annotate_dir, crops_dir;
  std::string manifest, root, predictions, report;
  bool json = false, aligned = false, quiet = false, mirror = vision::PipelineOptions().detect.mirror;
  bool mirror_given = false;
  int threads = 0, min_size = 24;
  double min_score = 0.5, classify_score = vision::PipelineOptions().classify_score;
  vision::LoadOptions load;
  cli::Int8Flags int8;
};

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") { std::fputs(kUsage, stdout); std::exit(0); }
    else if (a == "--model") o.model = val();
    else if (a == "--weights") o.weights = val();
    else if (a == "--detector") o.detector = val();
    else if (a == "--detector-weights") o.detector_weights = val();
    else if (a == "--mirror") o.mirror = cli::parse_on_off(a, val()), o.mirror_given = true;
    else if (a == "--min-score") o.min_score = cli::parse_probability(a, val());
    else if (a == "--classify-score") o.classify_score = cli::parse_probability(a, val());
    else if (a == "--cascade") o.cascade = val();
    else if (a == "--eye-cascade") o.eye_cascade = val();
    else if (a == "--min-size") o.min_size = int(parse_int(a, val(), 1, 1 << 20));
    else if (a == "--threads") o.threads = int(parse_int(a, val(), 0, 4096));
    else if (a == "--max-pixels") o.load.max_pixels = size_t(parse_int(a, val(), 1, 4000000000L));
    else if (a == "--max-memory") o.load.memory_budget = size_t(parse_int(a, val(), 1, 1L << 30)) << 20;
    else if (a == "--json") o.json = true;
    else if (a == "--annotate") o.annotate = val();
    else if (a == "--annotate-dir") o.annotate_dir = val();
    else if (a == "--crops") o.crops_dir = val();
    else if (a == "--quiet") o.quiet = true;
    else if (a == "--manifest") o.manifest = val();
    else if (a == "--root") o.root = val();
    else if (a == "--aligned") o.aligned = true;
    else if (a == "--predictions") o.predictions = val();
    else if (a == "--report") o.report = val();
    else if (o.int8.take(a, val)) continue;
    else if (a.size() > 1 && a[0] == '-') usage_error("unknown option " + a);
    else o.inputs.push_back(a);
  }
  if (o.model != "resnet" && o.model != "vgg16" && o.model != "faceapi")
    usage_error("--model must be faceapi, resnet or vgg16, got '" + o.model + "'");
  if (o.detector.empty()) o.detector = o.cascade.empty() ? "cnn" : "haar";  // --cascade alone means the cascade
  if (o.detector != "cnn" && o.detector != "haar") usage_error("--detector must be cnn or haar, got '" + o.detector + "'");
  if (o.detector == "cnn" && !o.cascade.empty()) usage_error("--cascade is for --detector haar");
  if (o.detector == "haar" && !o.detector_weights.empty()) usage_error("--detector-weights is for --detector cnn");
  if (o.detector == "haar" && o.mirror_given) usage_error("--mirror is for --detector cnn");
  o.int8.check();
  if (o.int8.calibrating()) {
    if (!o.inputs.empty() || !o.manifest.empty()) usage_error("--calibrate runs alone: no photos, no --manifest");
  } else if (!o.manifest.empty()) {
    if (!o.inputs.empty()) usage_error("give photos or --manifest, not both");
    if (o.predictions.empty()) usage_error("--manifest needs --predictions P.csv");
    if (!o.annotate.empty() || !o.annotate_dir.empty() || !o.crops_dir.empty() || o.json)
      usage_error("--annotate/--annotate-dir/--crops/--json are for photos, not --manifest");
    if (o.root.empty()) {
      const auto slash = o.manifest.rfind('/');
      o.root = slash == std::string::npos ? "." : o.manifest.substr(0, slash);
    }
    if (!cli::dir_exists(o.root)) usage_error("--root: " + o.root + " is not a directory");
    cli::check_output_file("--predictions", o.predictions);  // fail before the run, not after
    if (!o.report.empty()) cli::check_output_file("--report", o.report);
  } else {
    if (o.inputs.empty()) usage_error("no input photo");
    if (!o.root.empty() || !o.predictions.empty() || !o.report.empty())
      usage_error("--root, --predictions and --report need --manifest");
    if (o.aligned) usage_error("--aligned needs --manifest");
    // Outputs are checked (and their folders made) before any photo is read, not at the end.
    if (!o.annotate.empty()) cli::check_image_output("--annotate", o.annotate);
    if (!o.annotate_dir.empty()) cli::make_output_dir("--annotate-dir", o.annotate_dir);
    if (!o.crops_dir.empty()) cli::make_output_dir("--crops", o.crops_dir);
  }
  if (o.weights.empty())
    o.weights = cli::bundled_file(o.model == "resnet"  ? "agegender-resnet18.safetensors"
                                  : o.model == "vgg16" ? "agegender-vgg16bn.safetensors"
                                                       : "agegender-faceapi.safetensors");
  if (o.cascade.empty()) o.cascade = cli::bundled_file("haarcascade_frontalface_alt2.xml");
  if (o.detector_weights.empty()) o.detector_weights = cli::bundled_file("yunet.safetensors");
  if (o.eye_cascade.empty()) o.eye_cascade = cli::bundled_file("haarcascade_eye.xml");
  return o;
}

std::string face_label(const vision::AgeGender& p) {
  char b[64];
  std::snprintf(b, sizeof b, "%c %.0fy %s", p.gender_char(), p.age_years, vision::age_group_label(p.group));
  return b;
}

std::string face_json(const vision::FaceResult& f) {
  const auto& p = f.pred;
  char b[512];
  std::snprintf(b, sizeof b, "{\"x\":%d,\"y\":%d,\"w\":%d,\"h\":%d,\"score\":%.4f", f.box.x, f.box.y, f.box.w,
                f.box.h, f.face.score);
  std::string s = b;
  if (f.face.has_landmarks) {
    s += ",\"landmarks\":[";
    for (int m = 0; m < 5; ++m) {
      std::snprintf(b, sizeof b, "%s[%.1f,%.1f]", m ? "," : "", f.face.landmarks[m].x, f.face.landmarks[m].y);
      s += b;
    }
    s += "]";
  }
  if (!f.classified) return s + ",\"classified\":false}";
  std::snprintf(b, sizeof b,
                ",\"classified\":true,\"age_group\":\"%s\",\"age_group_index\":%d,\"age_group_prob\":%.4f,\"age\":%.0f,"
                "\"age_range\":[%.0f,%.0f],"
                "\"gender\":\"%c\",\"gender_prob\":%.4f,\"p_male\":%.4f,\"eyes\":[%.1f,%.1f,%.1f,%.1f],\"eyes_found\":%d}",
                vision::age_group_label(p.group), p.group, p.group_prob(), p.age_years, p.age_low, p.age_high, p.gender_char(),
                p.gender_confidence(), p.p_male, f.eyes.lx, f.eyes.ly, f.eyes.rx, f.eyes.ry,
                int(f.eyes.left_found) + int(f.eyes.right_found));
  return s + b;
}

void annotate(const vision::Image& photo, const std::vector<vision::FaceResult>& faces, const std::string& path) {
  vision::Image out = vision::to_rgb(photo);
  for (const auto& f : faces) {
    if (!f.classified) {  // grey, with its score only
      vision::draw_face(out, f.face, "? " + vision::score_label(f.face.score), vision::Color{160, 160, 160});
      continue;
    }
    const vision::Color c = f.pred.male() ? vision::Color{60, 160, 255} : vision::Color{255, 80, 160};
    vision::draw_face(out, f.face, face_label(f.pred), c);
  }
  vision::save_image(path, out);
}

int run_photos(const Options& o, vision::FacePipeline& pipe) {
  const cli::Inputs in = cli::collect_inputs(o.inputs);
  const std::vector<std::string>& photos = in.photos;
  int failures = in.errors;
  cli::Progress bar(photos.size(), !o.quiet);
  for (std::size_t i = 0; i < photos.size(); ++i) {
    const std::string& path = photos[i];
    try {
      const vision::Image img = vision::load_image(path, o.load);
      const auto t0 = std::chrono::steady_clock::now();
      const std::vector<vision::FaceResult> faces = pipe.analyse(img);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      bar.clear();
      if (o.json) {
        std::string s = "{\"image\":" + cnn::json::quote(path) + ",\"width\":" + std::to_string(img.width()) +
                        ",\"height\":" + std::to_string(img.height()) + ",\"faces\":[";
        for (std::size_t k = 0; k < faces.size(); ++k) s += (k ? "," : "") + face_json(faces[k]);
        char b[48];
        std::snprintf(b, sizeof b, "],\"ms\":%.3f}", ms);
        std::printf("%s%s\n", s.c_str(), b);
      } else {
        std::printf("%s: %dx%d, %zu face%s (%.1f ms)\n", path.c_str(), img.width(), img.height(), faces.size(),
                    faces.size() == 1 ? "" : "s", ms);
        if (faces.empty())
          std::printf("  %s\n", cli::no_face_hint(o.detector == "cnn", o.min_size, o.min_score).c_str());
        for (const auto& f : faces) {
          if (!f.classified) {
            const bool small = f.box.h < pipe.options().classify_min_face;
            std::printf("  face at x=%d y=%d w=%d h=%d  (%s: score %.2f; no age or gender)\n", f.box.x, f.box.y, f.box.w,
                        f.box.h, small ? "too small to judge" : "detector unsure", f.face.score);
            continue;
          }
          std::printf("  face at x=%d y=%d w=%d h=%d  Age: %s  Gender: %c  (%.0f years, likely %.0f-%.0f; group p=%.2f; "
                      "gender p=%.2f)\n",
                      f.box.x, f.box.y, f.box.w, f.box.h, vision::age_group_label(f.pred.group), f.pred.gender_char(),
                      f.pred.age_years, f.pred.age_low, f.pred.age_high, f.pred.group_prob(), f.pred.gender_confidence());
        }
      }
      std::fflush(stdout);
      if (!o.annotate.empty()) annotate(img, faces, cli::numbered(o.annotate, i, photos.size()));
      if (!o.annotate_dir.empty()) annotate(img, faces, o.annotate_dir + "/" + cli::stem(path) + ".png");
      if (!o.crops_dir.empty())
        for (std::size_t k = 0; k < faces.size(); ++k)
          vision::save_image(o.crops_dir + "/" + cli::stem(path) + "_face" + std::to_string(k) + ".png", faces[k].aligned);
    } catch (const std::bad_alloc&) {
      std::fflush(stdout);
      bar.message("agegender: error: " + path + ": out of memory");
      ++failures;
    } catch (const std::exception& e) {
      std::fflush(stdout);
      bar.message(std::string("agegender: error: ") + e.what());
      ++failures;
    }
    bar.update(i + 1);
  }
  return failures ? 1 : 0;
}

// The face of a manifest row: the detection overlapping the row's box best (IoU >= 0.4), or,
// without a box, the largest detection.
bool pick_face(const std::vector<vision::Face>& dets, const vision::ManifestRow& row, vision::Face& out) {
  double best = -1;
  for (const auto& d : dets) {
    const double score = row.has_box ? vision::iou(d.box, row.box) : double(d.box.w) * d.box.h;
    if (row.has_box && score < 0.4) continue;
    if (score > best) { best = score; out = d; }
  }
  return best >= 0;
}

int run_manifest(const Options& o, vision::FacePipeline& pipe) {
  const vision::Manifest m = vision::read_manifest(o.manifest);
  std::vector<vision::Prediction> preds(m.rows.size());
  cli::Progress bar(m.rows.size(), !o.quiet);
  // Consecutive rows often name the same photo (one row per face): decode and detect it once.
  struct Cached {
    std::string path;
    vision::Image img, grey;
    std::vector<vision::Face> dets;
  } cache;
  for (std::size_t i = 0; i < m.rows.size(); ++i) {
    const vision::ManifestRow& row = m.rows[i];
    vision::Prediction& p = preds[i];
    const std::string path = row.image[0] == '/' ? row.image : o.root + "/" + row.image;
    try {
      if (cache.path != path) {
        cache = Cached{};
        try {
          cache.img = vision::load_image(path, o.load);
        } catch (const std::exception&) {
          p.unreadable = true;
          throw;
        }
        if (!o.aligned) {
          cache.grey = vision::to_grey(cache.img);
          cache.dets = pipe.detect(cache.img);
        }
        cache.path = path;
      }
      vision::Face d;
      if (o.aligned) {
        p.pred = pipe.analyse_crop(cache.img).pred;
        p.found = true;
      } else if (pick_face(cache.dets, row, d)) {
        const vision::FaceResult r = pipe.analyse_face(cache.img, cache.grey, d);
        p.pred = r.pred;
        p.found = r.classified;
      }
    } catch (const std::bad_alloc&) {
      p.error = path + ": out of memory";
    } catch (const std::exception& e) {
      p.error = e.what();
    }
    if (!p.error.empty()) bar.message(o.manifest + ":" + std::to_string(row.line) + ": " + p.error);
    bar.update(i + 1);
  }
  cnn::write_file_atomic(o.predictions, vision::predictions_csv(m, preds));
  const vision::Evaluation ev = vision::evaluate(m, preds);
  std::string png;
  if (!o.report.empty() && ev.all.age.n > 0) {  // a confusion matrix only when there are ages
    std::string base = o.report;
    if (base.size() > 3 && base.compare(base.size() - 3, 3, ".md") == 0) base.resize(base.size() - 3);
    png = base + "_confusion.png";
    vision::save_image(png, vision::confusion_image(ev));
  }
  const std::string title = "Age and gender: " + o.manifest + " (" + pipe.classifier().path() + ", " +
                            (o.aligned ? "aligned crops" : "detect + align") + ")";
  const std::string png_name = png.substr(png.rfind('/') == std::string::npos ? 0 : png.rfind('/') + 1);
  const std::string md = vision::report_markdown(ev, title, png_name);
  if (!o.report.empty()) cnn::write_file_atomic(o.report, md);
  std::fputs(vision::report_markdown(ev, title).c_str(), stdout);
  if (ev.unreadable) {
    std::fprintf(stderr, "agegender: %ld of %zu images could not be read (listed above)\n", ev.unreadable, m.rows.size());
    return 1;
  }
  return 0;
}

// --calibrate DIR --save-int8 OUT: the age/gender network's int8 form from the face crops in DIR.
int calibrate(const Options& o, vision::AgeGenderClassifier& clf) {
  const cli::Inputs in = cli::collect_inputs({o.int8.calibrate});
  if (in.errors) return 1;
  std::vector<vision::Image> crops;
  for (const std::string& path : in.photos) crops.push_back(vision::load_image(path, o.load));
  clf.calibrate_int8(crops, o.int8.quantize_options());
  clf.save_int8(o.int8.save);
  std::printf("%s: int8 form calibrated on %zu face crops from %s, written with the weights as %s\n%s", o.weights.c_str(),
              crops.size(), o.int8.calibrate.c_str(), o.int8.save.c_str(), clf.int8().report().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  cli::program() = {"agegender", kUsage};
  Options o = parse_args(argc, argv);  // o.load gains the detector's work per pixel below
  if (o.threads > 0) cnn::set_num_threads(o.threads);
  try {
    vision::PipelineOptions po;
    po.detect.min_face = o.min_size;
    po.detect.min_score = float(o.min_score);
    po.detect.mirror = o.mirror;
    po.classify_score = float(o.classify_score);
    std::unique_ptr<vision::FaceDetector> det;
    if (o.detector == "cnn") det = std::make_unique<vision::YuNetDetector>(vision::YuNetDetector::load(o.detector_weights));
    else {
      vision::DetectParams dp;  // OpenCV's detectMultiScale defaults: scale 1.1, 3 neighbours
      dp.min_width = dp.min_height = o.min_size;
      det = std::make_unique<vision::CascadeFaceDetector>(vision::CascadeClassifier::load(o.cascade), dp);
    }
    o.load.work_bytes_per_pixel =
        det->work_bytes_per_pixel() + (o.annotate.empty() && o.annotate_dir.empty() ? 0 : cli::kAnnotateBytesPerPixel);
    vision::AgeGenderClassifier clf = vision::AgeGenderClassifier::load(o.weights);
    if (o.int8.calibrating()) return calibrate(o, clf);
    clf.use_precision(o.int8.mode());
    if (auto* cnn = dynamic_cast<vision::YuNetDetector*>(det.get())) cnn->use_precision(o.int8.mode());
    vision::FacePipeline pipe(std::move(det), vision::CascadeClassifier::load(o.eye_cascade), std::move(clf), po);
    return o.manifest.empty() ? run_photos(o, pipe) : run_manifest(o, pipe);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "agegender: error: out of memory\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "agegender: error: %s\n", e.what());
  }
  return 1;
}
