// attn/threads.hpp: how many threads attn's kernels use. attn parallelises with OpenMP when it
// is compiled with it (the attn::attn target links OpenMP when CMake finds it); without OpenMP
// everything runs on the calling thread and these functions report 1.
#ifndef ATTN_THREADS_HPP
#define ATTN_THREADS_HPP

#include <algorithm>
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
  ATTN_OMP(parallel for schedule(static, 1) num_threads(static_cast<int>(blocks)))
  for (Index block = 0; block < blocks; ++block) {
    const Index row0 = std::min(rows, block * chunk);
    if (row0 < rows) body(block, row0, std::min(chunk, rows - row0));
  }
}

/// The same on num_threads() threads.
template <typename Body>
void for_each_thread_row_block(Index rows, Index min_rows, Body&& body) {
  for_each_thread_row_block(rows, min_rows, num_threads(), std::forward<Body>(body));
}

}  // namespace detail

}  // namespace attn

#endif  // ATTN_THREADS_HPP
