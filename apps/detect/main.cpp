// detect - Viola-Jones face detection with OpenCV-compatible cascades.
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
#include <new>
#include <string>
#include <vector>

namespace {

using cli::dir_exists;
using cli::numbered;
using cli::parse_double;
using cli::parse_int;
using cli::usage_error;

const char* kUsage =
    "usage: detect IMAGE... [options]\n"
    "  --cascade FILE        cascade XML (default: bundled haarcascade_frontalface_default.xml)\n"
    "  --scale-factor F      pyramid step, > 1 (default 1.1)\n"
    "  --min-neighbors N     windows a face needs, >= 0 (default 3)\n"
    "  --min-size S          smallest face in pixels (default 24)\n"
    "  --max-size S          largest face in pixels, 0 = no limit (default 0)\n"
    "  --threads T           worker threads, 0 = all (default 0)\n"
    "  --max-pixels N        refuse larger images (default 100000000)\n"
    "  --json                one JSON object per image on stdout\n"
    "  --annotate OUT.png    write the image with boxes (several images: OUT_<i>.png)\n"
    "  --keypoints           also draw ORB keypoints on the --annotate image (and count them)\n"
    "  --align DIR           write each face aligned on its eyes as DIR/<image>_face<k>.png (200x200)\n"
    "  --eye-cascade FILE    eye cascade for --align (default: bundled haarcascade_eye.xml)\n"
    "  --dump-grey DIR       write the decoded grey image of input i as DIR/<iiii>.png\n"
    "  -h, --help            this text\n";

}  // namespace

int main(int argc, char** argv) {
  cli::program() = {"detect", kUsage};
  std::vector<std::string> images;
  std::string cascade_path, annotate, dump_dir, align_dir, eye_path;
  bool json = false, keypoints = false;
  vision::DetectParams p;
  p.min_width = p.min_height = 24;
  vision::LoadOptions lo;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> const char* {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") { std::fputs(kUsage, stdout); return 0; }
    else if (a == "--cascade") cascade_path = val();
    else if (a == "--scale-factor") p.scale_factor = parse_double(a, val(), 1.0, 100.0);
    else if (a == "--min-neighbors") p.min_neighbors = int(parse_int(a, val(), 0, 1000000));
    else if (a == "--min-size") p.min_width = p.min_height = int(parse_int(a, val(), 0, 1 << 20));
    else if (a == "--max-size") p.max_width = p.max_height = int(parse_int(a, val(), 0, 1 << 20));
    else if (a == "--threads") p.threads = int(parse_int(a, val(), 0, 4096));
    else if (a == "--max-pixels") lo.max_pixels = size_t(parse_int(a, val(), 1, 4000000000L));
    else if (a == "--json") json = true;
    else if (a == "--annotate") annotate = val();
    else if (a == "--dump-grey") dump_dir = val();
    else if (a == "--keypoints") keypoints = true;
    else if (a == "--align") align_dir = val();
    else if (a == "--eye-cascade") eye_path = val();
    else if (a.size() > 1 && a[0] == '-') usage_error("unknown option " + a);
    else images.push_back(a);
  }
  if (images.empty()) usage_error("no input image");
  if (p.max_width > 0 && p.max_width < p.min_width) usage_error("--max-size is below --min-size");
  if (!dump_dir.empty() && !dir_exists(dump_dir)) usage_error("--dump-grey: " + dump_dir + " is not a directory");
  if (!align_dir.empty() && !dir_exists(align_dir)) usage_error("--align: " + align_dir + " is not a directory");
  if (cascade_path.empty()) cascade_path = cli::bundled_file("haarcascade_frontalface_default.xml");
  if (eye_path.empty()) eye_path = cli::bundled_file("haarcascade_eye.xml");

  vision::CascadeClassifier cc, eyes;
  try {
    cc = vision::CascadeClassifier::load(cascade_path);
    if (!align_dir.empty()) eyes = vision::CascadeClassifier::load(eye_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "detect: error: %s\n", e.what());
    return 1;
  }
  int failures = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    const std::string& path = images[i];
    try {
      vision::Image img = vision::load_image(path, lo);
      vision::Image grey = vision::to_grey(img);
      if (!dump_dir.empty()) {
        char name[32];
        std::snprintf(name, sizeof name, "/%04zu.png", i);
        vision::save_image(dump_dir + name, grey);
        continue;
      }
      auto t0 = std::chrono::steady_clock::now();
      auto faces = cc.detect(grey, p);
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (json) {
        std::string s = "{\"image\":" + cnn::json::quote(path) + ",\"width\":" + std::to_string(img.width()) +
                        ",\"height\":" + std::to_string(img.height()) + ",\"faces\":[";
        for (size_t k = 0; k < faces.size(); ++k) {
          const auto& f = faces[k];
          char b[200];
          std::snprintf(b, sizeof b, "%s{\"x\":%d,\"y\":%d,\"w\":%d,\"h\":%d,\"score\":%.6g,\"neighbors\":%d}",
                        k ? "," : "", f.box.x, f.box.y, f.box.w, f.box.h, f.score, f.neighbors);
          s += b;
        }
        char b[64];
        std::snprintf(b, sizeof b, "],\"ms\":%.3f}", ms);
        s += b;
        std::printf("%s\n", s.c_str());
      } else {
        std::printf("%s: %dx%d, %zu face%s (%.1f ms)\n", path.c_str(), img.width(), img.height(), faces.size(),
                    faces.size() == 1 ? "" : "s", ms);
        for (const auto& f : faces)
          std::printf("  x=%d y=%d w=%d h=%d neighbors=%d score=%.4f\n", f.box.x, f.box.y, f.box.w, f.box.h,
                      f.neighbors, f.score);
      }
      std::fflush(stdout);
      std::vector<vision::KeyPoint> kps;
      if (keypoints) {
        std::vector<vision::Descriptor> desc;
        vision::orb_detect_and_compute(grey, kps, desc);
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
        for (const auto& f : faces) vision::draw_labeled_box(out, f.box, std::to_string(f.neighbors), vision::Color{0, 255, 0});
        vision::save_image(numbered(annotate, i, images.size()), out);
      }
      if (!align_dir.empty()) {
        std::string base = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
        if (base.rfind('.') != std::string::npos) base = base.substr(0, base.rfind('.'));
        for (size_t k = 0; k < faces.size(); ++k) {
          vision::Eyes e = vision::find_eyes(grey, faces[k].box, eyes);
          vision::save_image(align_dir + "/" + base + "_face" + std::to_string(k) + ".png", vision::align_face(img, e));
        }
      }
    } catch (const std::bad_alloc&) {
      std::fflush(stdout);
      std::fprintf(stderr, "detect: error: %s: out of memory\n", path.c_str());
      ++failures;
    } catch (const std::exception& e) {
      std::fflush(stdout);
      std::fprintf(stderr, "detect: error: %s\n", e.what());
      ++failures;
    }
  }
  return failures ? 1 : 0;
}
