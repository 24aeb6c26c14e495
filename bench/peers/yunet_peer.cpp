// yunet_peer - the reference YuNet face detector (libfacedetection, 3-clause BSD, built from
// ../shared/third_party/libfacedetection by bench/peers/build_yunet_peer.sh; none of its code is in
// this repository) run on images decoded by THIS repository's loader, so that it sees exactly the
// pixels our own detectors see.
//
//   yunet_peer IMAGE... [--threads N] [--runs R] [--json]
//   yunet_peer --version        (which libfacedetection kernels it was built with)
//
// --json prints one line per image:
//   {"image":PATH,"width":W,"height":H,"faces":[{"x":..,"y":..,"w":..,"h":..,"score":S/100.0,
//    "score100":S,"landmarks":[[x,y]x5]}],"ms":MEDIAN}
// (landmarks: the two eyes, nose tip, the two mouth corners, in libfacedetection's order). Without
// --json a readable summary. "ms" is the median over R runs of the facedetect_cnn call alone (not the
// decoding nor the RGB->BGR copy). libfacedetection truncates the score (sqrt(cls*obj)) to a whole
// percent and the box and landmark coordinates to integers (toward zero); boxes are not clipped
// to the image. Its own thresholds: score >= 0.2, NMS IoU 0.45, at most 512 faces.
//
// Errors: "yunet_peer: error: FILE: problem" on stderr; the other images are still processed;
// exit 1 if any image failed, 2 on bad flags.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <cnn/io/json.hpp>
#include <vision/image_io.hpp>

#include "facedetectcnn.h"

namespace {

int usage(const char* why) {
  if (why) std::fprintf(stderr, "yunet_peer: error: %s\n", why);
  std::fprintf(why ? stderr : stdout,
               "usage: yunet_peer IMAGE... [--threads N] [--runs R] [--json] | --version\n"
               "  runs libfacedetection's YuNet on each image (decoded by vision::load_image)\n"
               "  --threads N  OpenMP threads (default: OpenMP's default)\n"
               "  --runs R     detect R times per image, report the median time (default 1)\n"
               "  --json       one JSON object per image\n");
  return why ? 2 : 0;
}

const char* simd_name() {
#if defined(_ENABLE_AVX512)
  return "AVX-512";
#elif defined(_ENABLE_AVX2)
  return "AVX2";
#else
  return "scalar";
#endif
}

bool parse_int(const char* s, int lo, int hi, int& out) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (end == s || *end || v < lo || v > hi) return false;
  out = int(v);
  return true;
}

// Interleaved BGR copy of an 8-bit image: grey replicated, RGBA loses alpha.
std::vector<unsigned char> to_bgr(const vision::Image& img) {
  const int w = img.width(), h = img.height(), c = img.channels();
  std::vector<unsigned char> bgr(size_t(w) * size_t(h) * 3);
  for (int y = 0; y < h; ++y) {
    const uint8_t* s = img.row(y);
    unsigned char* d = bgr.data() + size_t(y) * size_t(w) * 3;
    for (int x = 0; x < w; ++x, s += c, d += 3) {
      if (c < 3) {
        d[0] = d[1] = d[2] = s[0];
      } else {
        d[0] = s[2];
        d[1] = s[1];
        d[2] = s[0];
      }
    }
  }
  return bgr;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0, runs = 1;
  bool json = false;
  std::vector<std::string> images;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") return usage(nullptr);
    if (a == "--version") {
      std::printf("yunet_peer: libfacedetection (YuNet) built with %s kernels, OpenMP %d\n", simd_name(), _OPENMP);
      return 0;
    }
    if (a == "--json") {
      json = true;
    } else if (a == "--threads" || a == "--runs") {
      if (i + 1 >= argc) return usage((a + " needs a value").c_str());
      int& dst = a == "--threads" ? threads : runs;
      if (!parse_int(argv[++i], 1, 1024, dst)) return usage((a + ": bad value '" + argv[i] + "'").c_str());
    } else if (a.size() > 1 && a[0] == '-') {
      return usage(("unknown flag " + a).c_str());
    } else {
      images.push_back(a);
    }
  }
  if (images.empty()) return usage("no image given");
  if (threads > 0) omp_set_num_threads(threads);

  // FACEDETECTION_RESULT_BUFFER_SIZE bytes; int-aligned (the library writes an int count first).
  std::vector<int> buffer(FACEDETECTION_RESULT_BUFFER_SIZE / sizeof(int));
  int failures = 0;
  for (const std::string& path : images) {
    try {
      vision::Image img = vision::load_image(path);
      if (img.empty()) throw vision::Error(path + ": empty image");
      std::vector<unsigned char> bgr = to_bgr(img);
      std::vector<double> times;
      int* res = nullptr;
      for (int r = 0; r < runs; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        res = facedetect_cnn(reinterpret_cast<unsigned char*>(buffer.data()), bgr.data(), img.width(), img.height(),
                             img.width() * 3);
        times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      }
      if (!res) throw vision::Error(path + ": facedetect_cnn failed");
      std::sort(times.begin(), times.end());
      const size_t n = times.size();
      const double ms = n % 2 ? times[n / 2] : 0.5 * (times[n / 2 - 1] + times[n / 2]);
      const int count = res[0];
      const short* faces = reinterpret_cast<const short*>(res + 1);
      if (json) {
        std::string s = "{\"image\":" + cnn::json::quote(path) + ",\"width\":" + std::to_string(img.width()) +
                        ",\"height\":" + std::to_string(img.height()) + ",\"faces\":[";
        for (int k = 0; k < count; ++k) {
          const short* p = faces + FACEDETECTION_RESULT_STRIDE_SHORTS * k;
          char b[320];
          std::snprintf(b, sizeof b,
                        "%s{\"x\":%d,\"y\":%d,\"w\":%d,\"h\":%d,\"score\":%.2f,\"score100\":%d,\"landmarks\":"
                        "[[%d,%d],[%d,%d],[%d,%d],[%d,%d],[%d,%d]]}",
                        k ? "," : "", p[1], p[2], p[3], p[4], p[0] / 100.0, p[0], p[5], p[6], p[7], p[8], p[9], p[10],
                        p[11], p[12], p[13], p[14]);
          s += b;
        }
        char b[64];
        std::snprintf(b, sizeof b, "],\"ms\":%.3f}", ms);
        s += b;
        std::printf("%s\n", s.c_str());
      } else {
        std::printf("%s: %dx%d, %d face%s (%.1f ms)\n", path.c_str(), img.width(), img.height(), count,
                    count == 1 ? "" : "s", ms);
        for (int k = 0; k < count; ++k) {
          const short* p = faces + FACEDETECTION_RESULT_STRIDE_SHORTS * k;
          std::printf("  x=%d y=%d w=%d h=%d score=%.2f eyes (%d,%d) (%d,%d) nose (%d,%d) mouth (%d,%d) (%d,%d)\n",
                      p[1], p[2], p[3], p[4], p[0] / 100.0, p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13],
                      p[14]);
        }
      }
      std::fflush(stdout);
    } catch (const std::exception& e) {
      // vision::Error messages already start with the path.
      std::string m = e.what();
      if (m.compare(0, path.size(), path) != 0) m = path + ": " + m;
      std::fprintf(stderr, "yunet_peer: error: %s\n", m.c_str());
      ++failures;
    }
  }
  return failures ? 1 : 0;
}
