// apps/common/cli.hpp - what the command-line apps share: flag value parsing with messages that
// name the flag, usage errors (exit 2), file tests, output folders, walking photo folders, the
// progress bar, and finding the bundled weights/cascades.
#pragma once
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include <cnn/quantize.hpp>
#include <vision/precision.hpp>

namespace cli {

struct Program {
  const char* name = "";
  const char* usage = "";
};
inline Program& program() {
  static Program p;
  return p;
}

[[noreturn]] inline void usage_error(const std::string& msg) {
  std::fprintf(stderr, "%s: %s\n%s", program().name, msg.c_str(), program().usage);
  std::exit(2);
}

inline long parse_int(const std::string& flag, const char* v, long lo, long hi) {
  char* e = nullptr;
  errno = 0;
  const long x = std::strtol(v, &e, 10);
  if (!*v || *e || errno || x < lo || x > hi)
    usage_error(flag + " needs an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + v + "'");
  return x;
}

inline double parse_double(const std::string& flag, const char* v, double lo, double hi) {
  char* e = nullptr;
  errno = 0;
  const double x = std::strtod(v, &e);
  if (!*v || *e || errno || !(x > lo) || !(x <= hi))
    usage_error(flag + " needs a number in (" + std::to_string(lo) + ", " + std::to_string(hi) + "], got '" + v + "'");
  return x;
}

// A score or probability: a number in [0, 1].
inline double parse_probability(const std::string& flag, const char* v) {
  char* e = nullptr;
  errno = 0;
  const double x = std::strtod(v, &e);
  if (!*v || *e || errno || !(x >= 0.0 && x <= 1.0)) usage_error(flag + " needs a number in [0, 1], got '" + v + "'");
  return x;
}

// "on" or "off".
inline bool parse_on_off(const std::string& flag, const std::string& v) {
  if (v != "on" && v != "off") usage_error(flag + " must be on or off, got '" + v + "'");
  return v == "on";
}

// Memory (docs/robustness.md, "Memory"): a photo is refused before decoding when decoding it or
// working on it would need more than --max-memory MiB. The work per pixel is the detector's
// (FaceDetector::work_bytes_per_pixel) plus what the outputs asked for add:
constexpr std::size_t kAnnotateBytesPerPixel = 9;   // the RGB copy drawn on + the PNG encoder's buffers
constexpr std::size_t kKeypointsBytesPerPixel = 8;  // ORB's pyramid and score maps (detect --keypoints)

inline bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
inline bool dir_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// A bundled file (cascade, model) by name: $FACECNN_WEIGHTS, ./weights, <exe>/../share/facecnn/weights,
// the install directory, the source tree. Falls back to weights/NAME so the error names a path.
inline std::string bundled_file(const std::string& name) {
  std::vector<std::string> dirs;
  if (const char* e = std::getenv("FACECNN_WEIGHTS")) dirs.push_back(e);
  dirs.push_back("weights");
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n > 0) {
    const std::string exe(buf, std::size_t(n));
    const auto slash = exe.rfind('/');
    if (slash != std::string::npos) dirs.push_back(exe.substr(0, slash) + "/../share/facecnn/weights");
  }
#ifdef FACECNN_INSTALL_WEIGHTS
  dirs.push_back(FACECNN_INSTALL_WEIGHTS);
#endif
#ifdef FACECNN_SOURCE_WEIGHTS
  dirs.push_back(FACECNN_SOURCE_WEIGHTS);
#endif
  for (auto& d : dirs)
    if (file_exists(d + "/" + name)) return d + "/" + name;
  return "weights/" + name;
}

// OUT.png -> OUT_<i>.png when there are several inputs.
inline std::string numbered(const std::string& path, std::size_t i, std::size_t n) {
  if (n == 1) return path;
  const auto dot = path.rfind('.'), slash = path.rfind('/');
  const std::string suf = "_" + std::to_string(i);
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return path + suf;
  return path.substr(0, dot) + suf + path.substr(dot);
}

// The directory part of a path ("." for a bare name).
inline std::string parent_dir(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

// The file name without directory and extension.
inline std::string stem(const std::string& path) {
  const auto slash = path.rfind('/');
  std::string base = path.substr(slash == std::string::npos ? 0 : slash + 1);
  const auto dot = base.rfind('.');
  return dot == std::string::npos || dot == 0 ? base : base.substr(0, dot);
}

// An output folder: created with its parents when missing (mkdir -p); a usage error (exit 2)
// naming FLAG when the path exists and is not a folder, or cannot be created.
inline void make_output_dir(const std::string& flag, const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) usage_error(flag + ": " + dir + " exists and is not a directory");
    if (::access(dir.c_str(), W_OK) != 0) usage_error(flag + ": directory " + dir + " is not writable");
    return;
  }
  for (std::size_t at = 1; at <= dir.size(); ++at) {
    if (at < dir.size() && dir[at] != '/') continue;
    const std::string part = dir.substr(0, at);
    if (::mkdir(part.c_str(), 0777) != 0 && errno != EEXIST)
      usage_error(flag + ": cannot create directory " + part + ": " + std::strerror(errno));
    if (!dir_exists(part)) usage_error(flag + ": " + part + " exists and is not a directory");
  }
}

// An output file: checked before any work is done, so that a run does not fail at its end. Its
// folder must exist and be writable, and the path must not be a folder (usage error, exit 2).
inline void check_output_file(const std::string& flag, const std::string& path) {
  const std::string dir = parent_dir(path);
  if (!dir_exists(dir)) usage_error(flag + ": " + path + ": directory " + dir + " does not exist");
  if (::access(dir.c_str(), W_OK) != 0) usage_error(flag + ": " + path + ": directory " + dir + " is not writable");
  if (dir_exists(path)) usage_error(flag + ": " + path + " is a directory");
}

// An image output file (--annotate): as check_output_file, and a format save_image writes.
inline void check_image_output(const std::string& flag, const std::string& path) {
  check_output_file(flag, path);
  const auto dot = path.rfind('.');
  std::string ext = dot == std::string::npos ? "" : path.substr(dot);
  for (auto& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (ext != ".png" && ext != ".jpg" && ext != ".jpeg")
    usage_error(flag + ": " + path + ": unsupported output format (use .png, .jpg or .jpeg)");
}

// The photo formats the apps read, by extension (any case).
inline bool is_image_name(const std::string& n) {
  const auto dot = n.rfind('.');
  if (dot == std::string::npos || dot == 0) return false;
  std::string ext = n.substr(dot);
  for (auto& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

// The photos named on the command line: a file is taken as it is (its errors come when it is read);
// a folder is walked recursively in sorted order, skipping hidden entries (".name"). Every other
// file in a folder is reported on stderr ("skipping DIR/x.txt: not an image (...)"), the first
// kMaxSkipLines of a folder one per line and the rest as one count; skipped files do not change
// the exit code. A folder that holds no photo, or cannot be read, is an error (counted in errors).
struct Inputs {
  std::vector<std::string> photos;
  int errors = 0;
};
constexpr int kMaxSkipLines = 5;

namespace detail {
struct WalkState {
  std::vector<std::string> photos, skipped;
  std::vector<std::string> unreadable;
};
inline void walk(const std::string& dir, WalkState& w) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    w.unreadable.push_back(dir + ": cannot read directory: " + std::strerror(errno));
    return;
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  const std::string prefix = dir.size() > 1 && dir.back() == '/' ? dir : dir + "/";
  for (auto& n : names) {
    const std::string p = prefix + n;
    if (dir_exists(p)) walk(p, w);
    else if (is_image_name(n)) w.photos.push_back(p);
    else w.skipped.push_back(p);
  }
}
}  // namespace detail

inline Inputs collect_inputs(const std::vector<std::string>& args) {
  Inputs in;
  for (const auto& a : args) {
    if (!dir_exists(a)) {
      in.photos.push_back(a);
      continue;
    }
    detail::WalkState w;
    detail::walk(a, w);
    for (const auto& u : w.unreadable) {
      std::fprintf(stderr, "%s: error: %s\n", program().name, u.c_str());
      ++in.errors;
    }
    for (std::size_t k = 0; k < w.skipped.size() && k < std::size_t(kMaxSkipLines); ++k)
      std::fprintf(stderr, "skipping %s: not an image (.jpg .jpeg .png .bmp)\n", w.skipped[k].c_str());
    if (w.skipped.size() > std::size_t(kMaxSkipLines))
      std::fprintf(stderr, "skipping %zu more files under %s: not images (.jpg .jpeg .png .bmp)\n",
                   w.skipped.size() - kMaxSkipLines, a.c_str());
    if (w.photos.empty() && w.unreadable.empty()) {
      std::fprintf(stderr, "%s: error: %s: no images (JPEG, PNG, BMP) found\n", program().name, a.c_str());
      ++in.errors;
    }
    in.photos.insert(in.photos.end(), w.photos.begin(), w.photos.end());
  }
  return in;
}

// A one-line progress bar on stderr, drawn only when stderr is a terminal. Whatever else is
// printed goes through clear() first (stdout lines) or message() (stderr lines), so that the bar
// never shares a line with a result: results scroll above it, the bar stays on the last line.
class Progress {
 public:
  Progress(std::size_t total, bool enabled) : total_(total), on_(enabled && total > 1 && ::isatty(2)) {}
  bool on() const { return on_; }
  // Erase the bar before printing to stdout.
  void clear() {
    if (!on_ || !drawn_) return;
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    drawn_ = false;
  }
  void update(std::size_t done) {
    if (!on_) return;
    std::fflush(stdout);
    const int width = 30, fill = int(width * done / total_);
    std::fprintf(stderr, "\r\033[K[%s%s] %zu/%zu", std::string(std::size_t(fill), '#').c_str(),
                 std::string(std::size_t(width - fill), '.').c_str(), done, total_);
    drawn_ = true;
    if (done == total_) {
      std::fputs("\r\033[K", stderr);  // done: leave no bar behind
      drawn_ = false;
    }
    std::fflush(stderr);
  }
  // A stderr message on its own line, not in the bar.
  void message(const std::string& s) {
    std::fflush(stdout);
    clear();
    std::fprintf(stderr, "%s\n", s.c_str());
  }

 private:
  std::size_t total_;
  bool on_, drawn_ = false;
};

// --precision auto|fp32|bf16|int8, --calibrate DIR and --save-int8 OUT, as agegender and detect
// take them. int8 runs a network's int8 form from its weights file; --calibrate makes one from the
// images in DIR, --save-int8 writes the weights file again with it, and the app stops there. bf16
// runs the fp32 networks with the engine's bf16 GEMMs (cnn::set_bf16; CPUs with AVX512_BF16).
struct Int8Flags {
  std::string precision = "auto", calibrate, save;  // --precision auto|fp32|bf16|int8
  std::string range = "percentile";  // --calibration minmax|percentile
  double min_sqnr_db = 20;           // --min-sqnr DB (cnn::QuantizeOptions)
  // Takes flag `a` (value from `val`) if it is one of these; false otherwise.
  template <class Val>
  bool take(const std::string& a, Val&& val) {
    if (a == "--precision") {
      precision = val();
      if (precision != "auto" && precision != "fp32" && precision != "bf16" && precision != "int8")
        usage_error("--precision must be auto, fp32, bf16 or int8, got '" + precision + "'");
    } else if (a == "--calibrate") calibrate = val();
    else if (a == "--save-int8") save = val();
    else if (a == "--calibration") {
      range = val();
      if (range != "minmax" && range != "percentile") usage_error("--calibration must be minmax or percentile, got '" + range + "'");
    } else if (a == "--min-sqnr") min_sqnr_db = parse_double(a, val(), -100, 200);
    else return false;
    return true;
  }
  bool calibrating() const { return !calibrate.empty(); }
  // The networks' precision (bf16: their fp32 form, the engine multiplying in bf16).
  vision::Precision mode() const {
    if (precision == "int8") return vision::Precision::Int8;
    return precision == "auto" ? vision::Precision::Auto : vision::Precision::FP32;
  }
  cnn::QuantizeOptions quantize_options() const {
    cnn::QuantizeOptions q;
    q.range = range == "minmax" ? cnn::CalibrationRange::MinMax : cnn::CalibrationRange::Percentile;
    q.min_sqnr_db = min_sqnr_db;
    return q;
  }
  // Checks the flags together; with --precision bf16 it turns the engine's bf16 GEMMs on.
  void check() const {
    if (precision == "bf16") {
      if (!calibrate.empty()) usage_error("--calibrate makes an int8 form: not with --precision bf16");
      if (!cnn::kernels::bf16_available())
        usage_error("--precision bf16: this CPU has no AVX512_BF16 (vdpbf16ps); use auto, fp32 or int8");
      cnn::set_bf16(true);
    }
    if (calibrate.empty() != save.empty()) usage_error("--calibrate DIR and --save-int8 OUT go together");
    if (calibrate.empty() && (range != "percentile" || min_sqnr_db != 20))
      usage_error("--calibration and --min-sqnr are for --calibrate");
    if (!calibrate.empty() && !dir_exists(calibrate)) usage_error("--calibrate: " + calibrate + " is not a directory");
    if (!save.empty()) check_output_file("--save-int8", save);
  }
};

// The line printed for a photo in which no face was found: what the detector finds and which
// flag to try.
inline std::string no_face_hint(bool cnn, int min_size, double min_score) {
  char b[320];
  if (cnn) {
    if (min_score > 0.05)
      std::snprintf(b, sizeof b,
                    "no face found (the CNN detector finds faces of at least %d px scoring at least %.2f; "
                    "try --min-score %.1f or a smaller --min-size)",
                    min_size, min_score, std::max(0.0, min_score - 0.2));
    else
      std::snprintf(b, sizeof b, "no face found (the CNN detector finds faces of at least %d px; try a smaller --min-size)",
                    min_size);
  } else {
    std::snprintf(b, sizeof b,
                  "no face found (--detector haar finds frontal, upright faces of at least %d px; "
                  "--detector cnn also finds turned and tilted ones)",
                  min_size);
  }
  return b;
}

}  // namespace cli
