// cnn/parallel.hpp — the engine's threads: a small pool behind parallel_for().
//
// Why not OpenMP parallel regions: a model runs hundreds of short parallel loops, each ending in a
// barrier. When another process holds a core, libgomp's spinning barrier made 2-thread inference
// up to 10x slower than 1 thread here (ResNet-18: 217 ms vs 33 ms, 2026-11-28). In this pool the
// calling thread claims work items itself and waits only for items another thread has actually
// started, so a descheduled worker delays nothing; idle workers spin ~50 us, then sleep.
//
// Results never depend on the thread count: kernels split work into items whose boundaries depend
// only on the problem, and every output element is computed inside one item in a fixed order.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CNN_PAUSE() _mm_pause()
#else
#define CNN_PAUSE() std::this_thread::yield()
#endif

namespace cnn {

inline int& thread_count_setting() {
  static int n = 0;  // 0 = all cores
  return n;
}
inline int max_threads() { return std::max(1u, std::thread::hardware_concurrency()); }
// Set the number of threads kernels use (0 = all cores).
inline void set_num_threads(int n) { thread_count_setting() = n < 0 ? 0 : n; }
inline int num_threads() {
  const int n = thread_count_setting();
  return n > 0 ? n : max_threads();
}

class ThreadPool {
 public:
  static ThreadPool& instance() {
    static ThreadPool pool;
    return pool;
  }

  // Runs fn(i) for i in [0, count) on the caller and up to threads - 1 workers.
  template <class Fn>
  void run(int64_t count, int threads, Fn& fn) {
    if (in_worker() || threads <= 1 || count <= 1) {
      for (int64_t i = 0; i < count; ++i) fn(i);
      return;
    }
    std::lock_guard<std::mutex> one_job(run_mutex_);  // one parallel loop at a time
    ensure_workers(threads - 1);
    struct Nested {  // a parallel_for inside one of this loop's items runs serially
      Nested() { in_worker() = true; }
      ~Nested() { in_worker() = false; }
    } nested;
    // Publish the job, then open it by moving to a new generation. job_gen_ says which generation
    // the fields belong to: a worker still entering the previous loop reads them while they change
    // (see work()). Release stores (not a release fence and relaxed stores: the same instructions
    // on x86, but ThreadSanitizer does not model fences) keep job_gen_ = 0 ahead of each field.
    const uint64_t gen = (state_.load(std::memory_order_relaxed) >> 32) + 1;
    job_gen_.store(0, std::memory_order_relaxed);
    fn_.store(&call<Fn>, std::memory_order_release);
    ctx_.store(&fn, std::memory_order_release);
    count_.store(count, std::memory_order_release);
    seats_.store(threads - 1, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    failed_.store(false, std::memory_order_relaxed);
    job_gen_.store(gen, std::memory_order_release);
    // Sequentially consistent, like the sleeper's count and check below: with release/acquire the
    // caller could miss a worker just going to sleep and the worker the new job (a lost wake-up).
    state_.store(gen << 32, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lk(sleep_mutex_);
      wake_.notify_all();
    }
    work(gen);
    // Wait only for items other threads have claimed and not finished.
    for (int spins = 0; done_.load(std::memory_order_acquire) < count; ++spins)
      if (spins < 4096) CNN_PAUSE();
      else std::this_thread::yield();
    if (error_) std::rethrow_exception(error_);
  }

  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lk(sleep_mutex_);
      stop_ = true;
      wake_.notify_all();
    }
    for (auto& t : workers_) t.join();
  }

 private:
  using Thunk = void (*)(void*, int64_t);
  template <class Fn>
  static void call(void* ctx, int64_t i) {
    (*static_cast<Fn*>(ctx))(i);
  }
  static bool& in_worker() {
    thread_local bool flag = false;
    return flag;
  }

  // Claims and runs items of generation `gen` until none are left.
  void work(uint64_t gen) {
    // The job's fields, if they still are generation gen's (a seqlock read): a worker that comes late
    // to a loop the caller has finished alone may find the next loop's fields half written, and
    // with the next loop's larger count it would claim (and run, with the wrong function) an item
    // of the old generation, while the caller returns early from the new one (seen as a crash in a
    // stale item in 6 of 12 runs of bench_agegender's 2-thread VGG16 benchmark).
    // Acquire loads of the fields (not an acquire fence, for ThreadSanitizer as in run()): a field of
    // the next loop is read only with that loop's job_gen_ = 0 visible, so the check after fails.
    if (job_gen_.load(std::memory_order_acquire) != gen) return;
    const Thunk fn = fn_.load(std::memory_order_acquire);
    void* ctx = ctx_.load(std::memory_order_acquire);
    const int64_t count = count_.load(std::memory_order_acquire);
    if (job_gen_.load(std::memory_order_relaxed) != gen) return;
    uint64_t s = state_.load(std::memory_order_acquire);
    while ((s >> 32) == gen && int64_t(s & 0xffffffffu) < count) {
      if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) continue;
      const int64_t i = int64_t(s & 0xffffffffu);
      if (!failed_.load(std::memory_order_relaxed)) {  // after a failure, the rest is skipped
        try {
          fn(ctx, i);
        } catch (...) {
          std::lock_guard<std::mutex> lk(sleep_mutex_);
          if (!error_) error_ = std::current_exception();
          failed_.store(true, std::memory_order_relaxed);
        }
      }
      done_.fetch_add(1, std::memory_order_acq_rel);
      s = state_.load(std::memory_order_acquire);
    }
  }

  void worker_loop() {
    in_worker() = true;
    uint64_t seen = state_.load(std::memory_order_acquire) >> 32;
    while (true) {
      // Spin briefly for the next job (they come every few microseconds during inference)...
      uint64_t gen = state_.load(std::memory_order_acquire) >> 32;
      const auto t0 = std::chrono::steady_clock::now();
      for (int spins = 0; gen == seen; ++spins) {
        CNN_PAUSE();
        if ((spins & 255) == 255 && std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(50)) break;
        gen = state_.load(std::memory_order_acquire) >> 32;
      }
      // ...then sleep until one arrives.
      if (gen == seen) {
        std::unique_lock<std::mutex> lk(sleep_mutex_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        wake_.wait(lk, [&] { return stop_ || (state_.load(std::memory_order_seq_cst) >> 32) != seen; });
        sleepers_.fetch_sub(1, std::memory_order_acq_rel);
        if (stop_) return;
        gen = state_.load(std::memory_order_acquire) >> 32;
      }
      seen = gen;
      if (seats_.fetch_sub(1, std::memory_order_acq_rel) > 0) work(gen);
    }
  }

  void ensure_workers(int n) {
    while (int(workers_.size()) < n) workers_.emplace_back([this] { worker_loop(); });
  }

  std::mutex run_mutex_, sleep_mutex_;
  std::condition_variable wake_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> state_{0};  // generation << 32 | next item
  std::atomic<uint64_t> job_gen_{0};  // the generation fn_, ctx_ and count_ belong to (0: changing)
  std::atomic<Thunk> fn_{nullptr};
  std::atomic<void*> ctx_{nullptr};
  std::atomic<int64_t> count_{0}, done_{0};
  std::atomic<int> seats_{0}, sleepers_{0};
  std::exception_ptr error_;  // the first item's exception (written under sleep_mutex_, read after the loop)
  std::atomic<bool> failed_{false};
  bool stop_ = false;
};

// Below this much work (roughly multiply-adds) a loop is not worth waking threads for.
constexpr int64_t kMinParallelWork = 1 << 15;

// Runs fn(i) for i in [0, count) on up to `max_threads` threads (0: num_threads()). Threads only
// when count * work_per_item is large enough.
// Many small items are claimed in runs of consecutive ones: every claim is an atomic operation on a
// cache line both cores write (ResNet-50's global average pool, 2048 items of 49 additions: 0.24 ms
// claimed one by one).
constexpr int64_t kMinItemRunWork = 1 << 14;

template <class Fn>
inline void parallel_for(int64_t count, int64_t work_per_item, Fn&& fn, int max_threads = 0) {
  const int threads = static_cast<int>(std::min<int64_t>(max_threads > 0 ? max_threads : num_threads(), count));
  if (threads > 1 && count * work_per_item >= kMinParallelWork) {
    // Runs of at least kMinItemRunWork, yet at least 4 runs per thread to share out uneven items.
    const int64_t run = std::max<int64_t>(
        1, std::min(kMinItemRunWork / std::max<int64_t>(work_per_item, 1), count / (4 * int64_t(threads))));
    if (run == 1) return ThreadPool::instance().run(count, threads, fn);
    auto runs = [&](int64_t r) {
      for (int64_t i = r * run, end = std::min(count, i + run); i < end; ++i) fn(i);
    };
    return ThreadPool::instance().run((count + run - 1) / run, threads, runs);
  }
  for (int64_t i = 0; i < count; ++i) fn(i);
}

}  // namespace cnn
