// Shared helpers for the vision tests.
#pragma once
#include <doctest/doctest.h>
#include <vision/vision.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <sys/wait.h>

namespace vt {

inline std::string repo(const std::string& rel) { return std::string(VISION_REPO_ROOT) + "/" + rel; }
inline std::string golden(const std::string& rel) { return repo("tests/vision/golden/" + rel); }
// ../shared beside the repository, or $FACECNN_SHARED when set.
inline std::string shared_dir() {
  const char* e = std::getenv("FACECNN_SHARED");
  return e && *e ? std::string(e) : std::string(VISION_SHARED_DIR);
}
inline bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}
inline bool have_shared() { return exists(shared_dir() + "/samples/astronaut.png"); }
// Use at the top of a test that needs ../shared.
#define VT_REQUIRE_SHARED()                                                                                 \
  do {                                                                                                      \
    if (!vt::have_shared()) {                                                                               \
      MESSAGE("SKIPPED: shared data not found at " << vt::shared_dir() << " (expected ../shared beside the repo)"); \
      return;                                                                                               \
    }                                                                                                       \
  } while (0)

inline std::string read_text(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
inline void write_bytes(const std::string& p, const std::string& data) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(data.data(), std::streamsize(data.size()));
}
inline std::string tmp_dir() {
  static std::string d = [] {
    char tmpl[] = "/tmp/vision_tests_XXXXXX";
    const char* r = ::mkdtemp(tmpl);
    return std::string(r ? r : "/tmp");
  }();
  return d;
}
// Runs a program through the shell; stdout and stderr captured.
struct Run { int rc; std::string out, err; };
inline Run run(const std::string& exe, const std::string& args) {
  const std::string o = tmp_dir() + "/out.txt", e = tmp_dir() + "/err.txt";
  const std::string cmd = exe + " " + args + " >" + o + " 2>" + e;
  const int st = std::system(cmd.c_str());
  return Run{WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), read_text(o), read_text(e)};
}
inline bool has(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

inline vision::Image random_image(int w, int h, int c, uint32_t seed) {
  std::mt19937 rng(seed);
  vision::Image img(w, h, c);
  for (size_t i = 0; i < img.size_bytes(); ++i) img.data()[i] = uint8_t(rng() >> 24);
  return img;
}

}  // namespace vt
