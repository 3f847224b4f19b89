// parallel_for: the work-sharing loop of this folder's kernels over XLA's intra-op pool.
#ifndef MTL_JAX_KERNELS_PARALLEL_FOR_H_
#define MTL_JAX_KERNELS_PARALLEL_FOR_H_

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace mtl_jax {

// Runs fn(item, scratch) for item in [0, n) on the caller and XLA's pool.
// Items are taken from a shared counter; the caller waits only for tasks
// that started while items were left (a late task finds none and leaves).
template <typename Fn>
void parallel_for(xla::ffi::ThreadPool& pool, int64_t n, size_t scratch_floats, const Fn& fn) {
  struct State {
    std::atomic<int64_t> next{0};
    std::atomic<int> running{0};
    std::mutex mu;
    std::condition_variable cv;
  };
  auto state = std::make_shared<State>();
  auto work = [state, n, scratch_floats, &fn]() {
    state->running.fetch_add(1);
    // Per thread and kept across calls: fresh pages cost a fault and a
    // zeroing each, which for ~250 KB was a visible part of a call.
    thread_local std::vector<float> scratch;
    for (int64_t i; (i = state->next.fetch_add(1)) < n;) {
      if (scratch.size() < scratch_floats) scratch.resize(scratch_floats);
      fn(i, scratch.data());
    }
    if (state->running.fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> lock(state->mu);
      state->cv.notify_all();
    }
  };
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), n) - 1;
  for (int64_t t = 0; t < helpers; ++t) pool.Schedule(decltype(work)(work));
  work();
  std::unique_lock<std::mutex> lock(state->mu);
  state->cv.wait(lock, [&] { return state->running.load() == 0; });
}

}  // namespace mtl_jax

#endif  // MTL_JAX_KERNELS_PARALLEL_FOR_H_
