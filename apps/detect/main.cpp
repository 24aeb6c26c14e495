// detect - face detection: YuNet (a CNN on this project's engine, boxes + five landmarks) by
// default, or Viola-Jones with OpenCV-compatible cascades (--detector haar: OpenCV's boxes).
// Thin CLI over include/vision: parse flags, call the library, print.
#include <cnn/io/json.hpp>
#include <vision/vision.hpp>

#include "../common/cli.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace {

using cli::numbered;
using cli::parse_double;
using cli::parse_int;
using cli::usage_error;

const char* kUsage =
    "usage: detect IMAGE|DIR... [options]\n"
    "  a DIR is walked recursively for JPEG, PNG and BMP files\n"
    "  --detector cnn|haar   YuNet CNN (default; with --cascade: haar) or a Viola-Jones cascade\n"
    "  --min-score S         drop faces scoring below S, 0..1 (default: cnn 0.5, haar 0 = every box)\n"
    "  --min-size S          smallest face in pixels (default: cnn 16, haar 24)\n"
    "  --max-size S          largest face in pixels, 0 = no limit (default 0)\n"
    "  --weights FILE        CNN detector weights (default: bundled yunet.safetensors)\n"
    "  --max-input S         cnn: longer side of the image the network sees at most (default 1600)\n"
    "  --mirror on|off       cnn: also run the network on the mirrored image and average the two\n"
    "                        (fewer false boxes, twice the network's time; default off: the\n"
    "                        network's own boxes, as libfacedetection gives them)\n"
    "  --cascade FILE        haar: cascade XML (default: bundled haarcascade_frontalface_default.xml)\n"
    "  --scale-factor F      haar: pyramid step, > 1 (default 1.1)\n"
    "  --min-neighbors N     haar: windows a face needs, >= 0 (default 3)\n"
    "  --threads T           worker threads, 0 = all cores (default 0)\n"
    "  --max-pixels N        refuse larger images (default 100000000)\n"
    "  --max-memory MIB      refuse photos whose decoding and processing need more (default 512)\n"
    "  --json                one JSON object per image on stdout\n"
    "  --annotate OUT.png    write the image with boxes (several images: OUT_<i>.png)\n"
    "  --keypoints           also draw ORB keypoints on the --annotate image (and count them)\n"
    "  --align DIR           write each face aligned on its eyes as DIR/<image>_face<k>.png (200x200)\n"
    "  --eye-cascade FILE    eye cascade for --align (default: bundled haarcascade_eye.xml)\n"
    "  --dump-grey DIR       write the decoded grey image of input i as DIR/<iiii>.png\n"
    "  --quiet               no progress bar\n"
    "  --precision auto|fp32|bf16|int8  cnn: int8 runs the network's int8 form from its weights\n"
    "                        file; auto (default): that form where it converts any layer, else fp32\n"
    "                        (the bundled YuNet's keeps every layer fp32: auto runs it in fp32);\n"
    "                        bf16: its GEMM layers multiply in bf16 (CPUs with AVX512_BF16)\n"
    "  --calibrate DIR --save-int8 OUT  cnn: make that int8 form from the photos in DIR and write the\n"
    "                        weights file with it as OUT\n"
    "  --calibration minmax|percentile  activation ranges for --calibrate (default percentile)\n"
    "  --min-sqnr DB         --calibrate: layers whose own int8 error is larger stay fp32 (default 20)\n"
    "  -h, --help            this text\n";

// --calibrate DIR --save-int8 OUT: the network's int8 form from the photos in DIR, each scaled as
// detection scales it.
int calibrate(vision::YuNetDetector& det, const cli::Int8Flags& int8, const vision::FaceDetectParams& fp,
              const vision::LoadOptions& lo) {
  const cli::Inputs in = cli::collect_inputs({int8.calibrate});
  if (in.errors) return 1;
  std::vector<vision::Image> photos;
  for (const std::string& path : in.photos) photos.push_back(vision::load_image(path, lo));
  det.calibrate_int8(photos, fp, int8.quantize_options());
  det.save_int8(int8.save);
  std::printf("%s: int8 form calibrated on %zu photos from %s, written with the weights as %s\n%s", det.path().c_str(),
              photos.size(), int8.calibrate.c_str(), int8.save.c_str(), det.int8().report().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  cli::program() = {"detect", kUsage};
  std::vector<std::string> images;
  std::string detector, weights_path, cascade_path, annotate, dump_dir, align_dir, eye_path;
  bool json = false, keypoints = false, quiet = false;
  long min_size = -1;
  double min_score = -1;
  vision::DetectParams p;
  vision::FaceDetectParams fp;
  cli::Int8Flags int8;
  vision::LoadOptions lo;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") { std::fputs(kUsage, stdout); return 0; }
    else if (a == "--detector") {
      detector = val();
      if (detector != "cnn" && detector != "haar") usage_error("--detector must be cnn or haar, not '" + detector + "'");
    }
    else if (a == "--weights") weights_path = val();
    else if (a == "--min-score") min_score = cli::parse_probability(a, val());
    else if (a == "--max-input") fp.max_input_side = int(parse_int(a, val(), 32, 1 << 16));
    else if (a == "--mirror") fp.mirror = cli::parse_on_off(a, val());
    else if (a == "--cascade") cascade_path = val();
    else if (a == "--scale-factor") p.scale_factor = parse_double(a, val(), 1.0, 100.0);
    else if (a == "--min-neighbors") p.min_neighbors = int(parse_int(a, val(), 0, 1000000));
    else if (a == "--min-size") min_size = parse_int(a, val(), 0, 1 << 20);
    else if (a == "--max-size") p.max_width = p.max_height = fp.max_face = int(parse_int(a, val(), 0, 1 << 20));
    else if (a == "--threads") p.threads = int(parse_int(a, val(), 0, 4096));
    else if (a == "--max-pixels") lo.max_pixels = size_t(parse_int(a, val(), 1, 4000000000L));
    else if (a == "--max-memory") lo.memory_budget = size_t(parse_int(a, val(), 1, 1L << 30)) << 20;
    else if (a == "--json") json = true;
    else if (a == "--annotate") annotate = val();
    else if (a == "--dump-grey") dump_dir = val();
    else if (a == "--keypoints") keypoints = true;
    else if (a == "--quiet") quiet = true;
    else if (a == "--align") align_dir = val();
    else if (a == "--eye-cascade") eye_path = val();
    else if (int8.take(a, val)) continue;
    else if (a.size() > 1 && a[0] == '-') usage_error("unknown option " + a);
    else images.push_back(a);
  }
  int8.check();
  if (int8.calibrating() && !images.empty()) usage_error("--calibrate runs alone: no photos");
  if (images.empty() && !int8.calibrating()) usage_error("no input image");
  const std::vector<std::string> args = images;
  if (detector.empty()) detector = cascade_path.empty() ? "cnn" : "haar";  // --cascade alone means the cascade
  const bool cnn_detector = detector == "cnn";
  if (!cnn_detector && (int8.precision == "int8" || int8.precision == "bf16" || int8.calibrating()))
    usage_error("--precision int8|bf16 and --calibrate are for --detector cnn");
  if (!cnn_detector && !weights_path.empty()) usage_error("--weights is for --detector cnn");
  if (!cnn_detector && fp.mirror) usage_error("--mirror is for --detector cnn");
  if (cnn_detector && !cascade_path.empty()) usage_error("--cascade is for --detector haar");
  fp.min_face = p.min_width = p.min_height = int(min_size >= 0 ? min_size : cnn_detector ? 16 : 24);
  fp.min_score = float(min_score >= 0 ? min_score : cnn_detector ? vision::FaceDetectParams{}.min_score : 0.0);
  if (p.max_width > 0 && p.max_width < p.min_width) usage_error("--max-size is below --min-size");
  // Outputs are checked (and their folders made) before any image is read, not at the end.
  if (!annotate.empty()) cli::check_image_output("--annotate", annotate);
  if (!dump_dir.empty()) cli::make_output_dir("--dump-grey", dump_dir);
  if (!align_dir.empty()) cli::make_output_dir("--align", align_dir);
  if (cascade_path.empty()) cascade_path = cli::bundled_file("haarcascade_frontalface_default.xml");
  if (weights_path.empty()) weights_path = cli::bundled_file("yunet.safetensors");
  if (eye_path.empty()) eye_path = cli::bundled_file("haarcascade_eye.xml");
  if (p.threads > 0) cnn::set_num_threads(p.threads);

  std::unique_ptr<vision::FaceDetector> det;
  vision::CascadeClassifier eyes;
  try {
    if (cnn_detector) {
      auto yunet = std::make_unique<vision::YuNetDetector>(vision::YuNetDetector::load(weights_path));
      if (int8.calibrating()) return calibrate(*yunet, int8, fp, lo);
      yunet->use_precision(int8.mode());
      det = std::move(yunet);
    } else det = std::make_unique<vision::CascadeFaceDetector>(vision::CascadeClassifier::load(cascade_path), p);
    if (!align_dir.empty()) eyes = vision::CascadeClassifier::load(eye_path);
    lo.work_bytes_per_pixel = det->work_bytes_per_pixel() + (annotate.empty() ? 0 : cli::kAnnotateBytesPerPixel) +
                              (keypoints ? cli::kKeypointsBytesPerPixel : 0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "detect: error: %s\n", e.what());
    return 1;
  }
  const cli::Inputs in = cli::collect_inputs(args);
  images = in.photos;
  int failures = in.errors;
  cli::Progress bar(images.size(), !quiet);
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string& path = images[i];
    try {
      vision::Image img = vision::load_image(path, lo);
      if (!dump_dir.empty()) {
        char name[32];
        std::snprintf(name, sizeof name, "/%04zu.png", i);
        vision::save_image(dump_dir + name, vision::to_grey(img));
        bar.update(i + 1);
        continue;
      }
      auto t0 = std::chrono::steady_clock::now();
      const std::vector<vision::Face> faces = det->detect(img, fp);
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      bar.clear();
      if (json) {
        std::string s = "{\"image\":" + cnn::json::quote(path) + ",\"width\":" + std::to_string(img.width()) +
                        ",\"height\":" + std::to_string(img.height()) + ",\"faces\":[";
        for (size_t k = 0; k < faces.size(); ++k) {
          const auto& f = faces[k];
          char b[400];
          std::snprintf(b, sizeof b, "%s{\"x\":%d,\"y\":%d,\"w\":%d,\"h\":%d,\"score\":%.4f", k ? "," : "", f.box.x,
                        f.box.y, f.box.w, f.box.h, f.score);
          s += b;
          if (!f.has_landmarks) s += ",\"neighbors\":" + std::to_string(f.neighbors);
          else {
            s += ",\"landmarks\":[";
            for (int m = 0; m < 5; ++m) {
              std::snprintf(b, sizeof b, "%s[%.1f,%.1f]", m ? "," : "", f.landmarks[m].x, f.landmarks[m].y);
              s += b;
            }
            s += "]";
          }
          s += "}";
        }
        char b[64];
        std::snprintf(b, sizeof b, "],\"detector\":\"%s\",\"ms\":%.3f}", det->name().c_str(), ms);
        s += b;
        std::printf("%s\n", s.c_str());
      } else {
        std::printf("%s: %dx%d, %zu face%s (%s, %.1f ms)\n", path.c_str(), img.width(), img.height(), faces.size(),
                    faces.size() == 1 ? "" : "s", det->name().c_str(), ms);
        if (faces.empty()) std::printf("  %s\n", cli::no_face_hint(cnn_detector, fp.min_face, fp.min_score).c_str());
        for (const auto& f : faces) {
          std::printf("  x=%d y=%d w=%d h=%d score=%.3f", f.box.x, f.box.y, f.box.w, f.box.h, f.score);
          if (!f.has_landmarks) std::printf(" neighbors=%d", f.neighbors);
          else std::printf(" eyes=(%.0f,%.0f),(%.0f,%.0f)", f.landmarks[0].x, f.landmarks[0].y, f.landmarks[1].x, f.landmarks[1].y);
          std::printf("\n");
        }
      }
      std::fflush(stdout);
      std::vector<vision::KeyPoint> kps;
      if (keypoints) {
        std::vector<vision::Descriptor> desc;
        vision::orb_detect_and_compute(vision::to_grey(img), kps, desc);
        if (!json) std::printf("  %zu ORB keypoints\n", kps.size());
      }
      if (!annotate.empty()) {
        vision::Image out = vision::to_rgb(img);
        for (const auto& k : kps) {
          const int r = std::max(2, int(k.size / 6));
          vision::draw_circle(out, int(k.x), int(k.y), r, vision::Color{255, 200, 0});
          const double a = k.angle * 3.14159265358979323846 / 180.0;
          vision::draw_line(out, int(k.x), int(k.y), int(k.x + r * std::cos(a)), int(k.y + r * std::sin(a)),
                            vision::Color{255, 200, 0});
        }
        for (const auto& f : faces) vision::draw_face(out, f, cnn_detector ? vision::score_label(f.score) : std::to_string(f.neighbors));
        vision::save_image(numbered(annotate, i, images.size()), out);
      }
      if (!align_dir.empty()) {
        std::string base = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
        if (base.rfind('.') != std::string::npos) base = base.substr(0, base.rfind('.'));
        const vision::Image grey = vision::to_grey(img);
        for (size_t k = 0; k < faces.size(); ++k)
          vision::save_image(align_dir + "/" + base + "_face" + std::to_string(k) + ".png",
                             vision::align_detected_face(img, grey, faces[k], eyes));
      }
    } catch (const std::bad_alloc&) {
      bar.message("detect: error: " + path + ": out of memory");
      ++failures;
    } catch (const std::exception& e) {
      bar.message(std::string("detect: error: ") + e.what());
      ++failures;
    }
    bar.update(i + 1);
  }
  return failures ? 1 : 0;
}
