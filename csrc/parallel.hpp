// Work splitting for the batch entry points: plain std::thread, no Python.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <thread>
#include <vector>

namespace grit {

// Threads used when a caller passes num_threads <= 0: GRIT_FAST_NUM_THREADS if set, else all cores.
inline int default_num_threads() {
  if (const char* env = std::getenv("GRIT_FAST_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

inline int resolve_num_threads(int requested) {
  return requested > 0 ? requested : default_num_threads();
}

// Calls fn(i) for i in [0, n), split into contiguous ranges over up to num_threads threads.
// The first exception thrown by any worker is rethrown on the calling thread.
template <class Fn>
void parallel_for(std::size_t n, int num_threads, Fn&& fn, std::size_t min_per_thread = 16) {
  const std::size_t max_threads = std::max<std::size_t>(1, n / std::max<std::size_t>(1, min_per_thread));
  const std::size_t threads =
      std::min<std::size_t>(static_cast<std::size_t>(resolve_num_threads(num_threads)), max_threads);
  if (threads <= 1) {
    for (std::size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(threads);
  pool.reserve(threads);
  const std::size_t per = (n + threads - 1) / threads;
  for (std::size_t t = 0; t < threads; ++t) {
    const std::size_t begin = t * per, end = std::min(n, begin + per);
    pool.emplace_back([&, t, begin, end] {
      try {
        for (std::size_t i = begin; i < end; ++i) fn(i);
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  }
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace grit
