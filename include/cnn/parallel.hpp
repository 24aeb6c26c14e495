// cnn/parallel.hpp — the engine's thread count and a parallel-for that stays serial for small work.
//
// Results never depend on the thread count: every kernel splits work so that each output element
// is computed by exactly one thread in a fixed order.
#pragma once
#include <algorithm>
#include <cstdint>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace cnn {

inline int& thread_count_setting() {
  static int n = 0;  // 0 = all cores
  return n;
}
inline int max_threads() {
#ifdef _OPENMP
  return omp_get_num_procs();
#else
  return 1;
#endif
}
// Set the number of threads kernels use (0 = all cores).
inline void set_num_threads(int n) { thread_count_setting() = n < 0 ? 0 : n; }
inline int num_threads() {
  int n = thread_count_setting();
  return n > 0 ? n : max_threads();
}

// Below this much work (roughly multiply-adds) a loop is not worth waking threads for.
constexpr int64_t kMinParallelWork = 1 << 15;

// Runs fn(i) for i in [0, count). Threads only when count * work_per_item is large enough.
template <class Fn>
inline void parallel_for(int64_t count, int64_t work_per_item, Fn&& fn) {
#ifdef _OPENMP
  int threads = static_cast<int>(std::min<int64_t>(num_threads(), count));
  if (threads > 1 && count * work_per_item >= kMinParallelWork) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < count; ++i) fn(i);
    return;
  }
#else
  (void)work_per_item;
#endif
  for (int64_t i = 0; i < count; ++i) fn(i);
}

}  // namespace cnn
