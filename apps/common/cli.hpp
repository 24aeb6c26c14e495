// apps/common/cli.hpp - what the command-line apps share: flag value parsing with messages that
// name the flag, usage errors (exit 2), file tests, and finding the bundled weights/cascades.
#pragma once
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

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

}  // namespace cli
