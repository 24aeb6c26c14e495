// bench/cache_flush.hpp — evicting every cache level between timed runs, for benchmarks that time a
// layer as a batch-1 model runs it: its weights and input coming from memory (docs/performance.md,
// "Seventh session").
#pragma once
#include <cnn/cnn.hpp>

#include <cstddef>
#include <vector>

namespace bench {

class CacheFlush {
 public:
  explicit CacheFlush(std::size_t megabytes) : junk_(megabytes << 18, 1.f) {}
  // Reads one float per cache line of a buffer larger than the L3, then wakes the engine's pool
  // (idle workers sleep after ~50 us; between a model's layers they are awake).
  void operator()() {
    float s = 0;
    for (std::size_t i = 0; i < junk_.size(); i += 16) s += junk_[i];
    sink_ += s;
    cnn::parallel_for(64, cnn::kMinParallelWork, [](int64_t) {});
  }
  float sink() const { return sink_; }  // return it from main so the reads are kept

 private:
  std::vector<float> junk_;
  float sink_ = 0;
};

}  // namespace bench
