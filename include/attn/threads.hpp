// attn/threads.hpp: how many threads attn's kernels use. attn parallelises with OpenMP when it
// is compiled with it (the attn::attn target links OpenMP when CMake finds it); without OpenMP
// everything runs on the calling thread and these functions report 1.
#ifndef ATTN_THREADS_HPP
#define ATTN_THREADS_HPP

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "attn/config.hpp"

#ifdef _OPENMP
#include <omp.h>
// ATTN_OMP(parallel for) expands to `#pragma omp parallel for`, or to nothing without OpenMP, so
// builds without -fopenmp stay free of unknown-pragma warnings.
#define ATTN_OMP(directive) _Pragma(ATTN_OMP_STRINGIFY(omp directive))
#define ATTN_OMP_STRINGIFY(text) #text
#else
#define ATTN_OMP(directive)
#endif

namespace attn {
namespace detail {

/// A mutex member that keeps its owner copyable and movable: a copy gets a new, unlocked mutex.
/// For layers and models whose const training-mode forward draws dropout masks from a generator
/// they own, so concurrent forwards take turns.
struct CopyableMutex {
  CopyableMutex() = default;
  CopyableMutex(const CopyableMutex& /*other*/) {}
  CopyableMutex& operator=(const CopyableMutex& /*other*/) { return *this; }
  std::mutex mutex;
};

inline int& requested_threads() {
  static int threads = 0;  // 0: OpenMP's default, which honours OMP_NUM_THREADS
  return threads;
}
}  // namespace detail

/// The number of threads attn's kernels and Eigen's matrix products use: the last value given
/// to set_num_threads, else OpenMP's default (OMP_NUM_THREADS, or one per core); 1 without OpenMP.
inline int num_threads() {
#ifdef _OPENMP
  return detail::requested_threads() > 0 ? detail::requested_threads() : omp_get_max_threads();
#else
  return 1;
#endif
}

/// Sets the thread count for attn's kernels and for Eigen's matrix products (like
/// torch.set_num_threads). Kernels parallelise over (batch, head, query tile) and run Eigen
/// single-threaded inside, so the two never oversubscribe the cores.
/// @throws std::invalid_argument if threads < 1.
inline void set_num_threads(int threads) {
  if (threads < 1) {
    throw std::invalid_argument(
        detail::concat("set_num_threads: threads (", threads, ") must be at least 1"));
  }
  detail::requested_threads() = threads;
  Eigen::setNbThreads(threads);
}

namespace detail {

/// Keeps attn's parallel regions from collapsing when another process holds a core. A region
/// ends when its last thread does; if the OS has put one of attn's threads aside for another
/// process, the calling thread waits out the rest of that process's time slice (milliseconds),
/// and between regions the idle threads' spinning takes the cores from both. Decoding a token
/// runs some sixty regions: with a CPU-bound process beside it, two threads ran at half the
/// speed of one here (2 % of the regions waited, 5 ms each). So each region reports how long it
/// took against the calling thread's own share of the work; when two of the last 64 regions
/// waited well beyond that share, the next regions run on the calling thread alone (one
/// thread's speed; the idle team falls asleep), 256 of them at first, doubling up to 16384
/// while the team keeps waiting whenever it is tried again.
class TeamWatch {
 public:
  /// The threads a region of `requested` threads should use now.
  int threads(int requested) {
    if (requested < 2) return requested;
    if (alone_.load(std::memory_order_relaxed) > 0 &&
        alone_.fetch_sub(1, std::memory_order_relaxed) > 0) {
      return 1;
    }
    return requested;
  }

  /// After a region run on several threads: `wall` its duration, `own` how long the calling
  /// thread worked in it (seconds).
  void observe(double wall, double own) {
    constexpr long window = 64;
    const long region = regions_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (!(wall > 2 * own + 100e-6)) {  // no wait
      if (region - last_wait_.load(std::memory_order_relaxed) > 4 * window) {
        spell_.store(256, std::memory_order_relaxed);  // the team has been fine for a while
      }
      return;
    }
    const long previous = last_wait_.exchange(region, std::memory_order_relaxed);
    if (region - previous > window) return;
    const int spell = spell_.load(std::memory_order_relaxed);
    alone_.store(spell, std::memory_order_relaxed);
    spell_.store(std::min(spell * 2, 16384), std::memory_order_relaxed);
    last_wait_.store(-window - 1, std::memory_order_relaxed);  // two fresh waits to go alone again
  }

 private:
  std::atomic<int> alone_{0};           // regions still to run on the calling thread alone
  std::atomic<long> regions_{0};        // regions observed
  std::atomic<long> last_wait_{-1000};  // the last region that waited
  std::atomic<int> spell_{256};         // how long the next spell alone lasts
};

/// The process's watch (each copy of attn's code, the program's and each attn::compiled level,
/// keeps its own).
inline TeamWatch& team_watch() {
  static TeamWatch watch;
  return watch;
}

/// Seconds on a monotonic clock.
inline double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Runs body() in a parallel region of `team` threads, timed for team_watch() when team > 1.
/// Its loops should be `nowait`, so that the calling thread's own work is timed before it waits
/// for the others. (A region of one thread rather than a plain call when team < 2: a worksharing
/// loop in body must bind to a region of its own, not to one the caller may be running in.)
template <typename Body>
void watched_parallel(int team, Body&& body) {
  if (team < 2) {
    ATTN_OMP(parallel num_threads(1))
    body();
    return;
  }
  const double start = seconds_now();
  double own = 0;
  ATTN_OMP(parallel num_threads(team)) {
    body();
    ATTN_OMP(master)
    own = seconds_now() - start;
  }
  team_watch().observe(seconds_now() - start, own);
}

/// How many blocks for_each_thread_row_block splits `rows` into: one per thread of `threads`,
/// or one (the calling thread alone) when there are fewer than `min_rows`.
inline Index thread_row_blocks(Index rows, Index min_rows, int threads = num_threads()) {
  return rows < min_rows ? 1 : threads;
}

/// Runs body(block, row0, count) once for each of thread_row_blocks(rows, min_rows, threads)
/// contiguous blocks of [0, rows), one block per thread, so that a pass over a large matrix
/// leaves no core idle. How parallel_gemm splits a product and Linear its bias passes. With a
/// single block the body runs on the calling thread, outside any parallel region. The dispatched
/// kernels (attn::compiled) pass the caller's count explicitly: the library's copy of
/// num_threads() does not see the program's set_num_threads.
template <typename Body>
void for_each_thread_row_block(Index rows, Index min_rows, int threads, Body&& body) {
  const Index blocks = thread_row_blocks(rows, min_rows, threads);
  if (blocks < 2) {  // no parallel region: the calling thread, as it would run alone
    if (rows > 0) body(Index{0}, Index{0}, rows);
    return;
  }
  const Index chunk = (rows + blocks - 1) / blocks;
  // The same blocks either way (a body may keep per-block state), run by the team or, while
  // another process holds a core (TeamWatch), one after another on the calling thread. Blocks
  // are claimed as threads arrive: one that arrives late finds the others' work done.
  watched_parallel(team_watch().threads(static_cast<int>(blocks)), [&] {
    ATTN_OMP(for schedule(dynamic, 1) nowait)
    for (Index block = 0; block < blocks; ++block) {
      const Index row0 = std::min(rows, block * chunk);
      if (row0 < rows) body(block, row0, std::min(chunk, rows - row0));
    }
  });
}

/// The same on num_threads() threads.
template <typename Body>
void for_each_thread_row_block(Index rows, Index min_rows, Body&& body) {
  for_each_thread_row_block(rows, min_rows, num_threads(), std::forward<Body>(body));
}

}  // namespace detail

}  // namespace attn

#endif  // ATTN_THREADS_HPP
