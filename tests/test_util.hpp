// Helpers shared by the engine tests.
#pragma once
#include <cmath>
#include <random>
#include <string>

#include <cnn/cnn.hpp>

namespace test {

inline std::string golden(const std::string& rel) { return std::string(FACECNN_GOLDEN_DIR) + "/" + rel; }

inline void fill_random(float* p, int64_t n, std::mt19937& rng, float scale = 1.f) {
  std::normal_distribution<float> d(0.f, scale);
  for (int64_t i = 0; i < n; ++i) p[i] = d(rng);
}

// Every parameter of a stand-alone layer (not in a Graph) sized and filled with N(0, scale).
inline void fill_params(cnn::Layer& layer, std::mt19937& rng, float scale) {
  for (auto& p : layer.params()) {
    p.param->dims = p.dims;
    p.param->values.resize(std::size_t(p.param->numel()));
    fill_random(p.param->values.data(), p.param->numel(), rng, scale);
  }
}

// max|a - b| / max|b|: the comparison the issue specifies for model outputs.
inline double rel_error(const float* a, const float* b, int64_t n) {
  double diff = 0, mag = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, double(std::abs(a[i] - b[i])));
    mag = std::max(mag, double(std::abs(b[i])));
  }
  return mag > 0 ? diff / mag : diff;
}

// Raises the thread count for one scope, restoring it afterwards.
struct ThreadScope {
  int saved;
  explicit ThreadScope(int n) : saved(cnn::thread_count_setting()) { cnn::set_num_threads(n); }
  ~ThreadScope() { cnn::set_num_threads(saved); }
};

// The ISAs this CPU can run, generic first.
inline std::vector<cnn::Isa> available_isas() {
  std::vector<cnn::Isa> v;
  for (cnn::Isa i : {cnn::Isa::Generic, cnn::Isa::AVX2, cnn::Isa::AVX512})
    if (i <= cnn::detect_isa()) v.push_back(i);
  return v;
}

// Forces the kernels' ISA for one scope.
struct IsaScope {
  cnn::Isa saved;
  explicit IsaScope(cnn::Isa isa) : saved(cnn::active_isa()) { cnn::set_isa(isa); }
  ~IsaScope() { cnn::set_isa(saved); }
};

}  // namespace test
