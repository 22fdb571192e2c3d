// attn/kernels/gemm.hpp: the one matrix product behind Linear, SelfAttentionV1 and both
// paths of the attention kernel, so every product in attn is written, tuned and tested once.
//
// Eigen computes it by default. Built with ATTN_USE_CBLAS (CMake option ATTN_CBLAS, chosen when
// attn is configured), products go to the CBLAS of the BLAS found then: `cblas_sgemm` /
// `cblas_dgemm`, row-major, declared by that BLAS's own <cblas.h>. attn never changes the BLAS's
// global state (its thread count included). How the two share threads: attn parallelises over
// (batch, head, query tile) and over row blocks of large products, and calls the BLAS from inside
// those threads, so the BLAS should run one thread per call: OpenBLAS's OpenMP build does so by
// itself inside a parallel region; with its pthreads build, set OPENBLAS_NUM_THREADS=1.
// A kernel of its own (the layers call it), in attn::detail: not an interface users call.
#ifndef ATTN_KERNELS_GEMM_HPP
#define ATTN_KERNELS_GEMM_HPP

#include <algorithm>
#include <climits>
#include <type_traits>

#include "attn/config.hpp"
#include "attn/kernels/detail/dispatch.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/threads.hpp"

#ifdef ATTN_USE_CBLAS
#include <cblas.h>
#endif

namespace attn::detail {

/// True when attn was built to hand its products to a CBLAS (for reports and benchmarks).
constexpr bool uses_cblas() {
#ifdef ATTN_USE_CBLAS
  return true;
#else
  return false;
#endif
}

/// C = alpha * op(A) op(B) + beta * C for row-major blocks with leading dimensions (row
/// strides). op(A) is (m, k): A is stored (m, k), or (k, m) when `a_transposed`. op(B) is (k, n):
/// B is stored (k, n), or (n, k) when `b_transposed` (the layout of a Linear weight or of keys).
/// C is (m, n). With beta = 0, C is not read. Runs on the calling thread.
/// The layouts are template arguments, so a program compiles only the Eigen products it uses.
/// This is the body; gemm below runs it, or the level attn::compiled chose.
template <bool a_transposed, bool b_transposed, typename Scalar>
void gemm_kernel(Index m, Index n, Index k, Scalar alpha, const Scalar* a, Index lda,
                 const Scalar* b, Index ldb, Scalar beta, Scalar* c, Index ldc) {
  if (m == 0 || n == 0) return;
#ifdef ATTN_USE_CBLAS
  constexpr Index int_max = INT_MAX;
  if (k > 0 && std::max({m, n, k, lda, ldb, ldc}) <= int_max) {
    const auto ta = a_transposed ? CblasTrans : CblasNoTrans;
    const auto tb = b_transposed ? CblasTrans : CblasNoTrans;
    const int M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k);
    // A leading dimension must be at least 1 even for an empty operand.
    const int LDA = static_cast<int>(std::max<Index>(lda, 1));
    const int LDB = static_cast<int>(std::max<Index>(ldb, 1));
    const int LDC = static_cast<int>(std::max<Index>(ldc, 1));
    if constexpr (std::is_same_v<Scalar, float>) {
      cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, a, LDA, b, LDB, beta, c, LDC);
      return;
    } else if constexpr (std::is_same_v<Scalar, double>) {
      cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, alpha, a, LDA, b, LDB, beta, c, LDC);
      return;
    }
  }
#endif
  using Stride = Eigen::OuterStride<>;
  using ConstMap = Eigen::Map<const RowMatrix<Scalar>, Eigen::Unaligned, Stride>;
  Eigen::Map<RowMatrix<Scalar>, Eigen::Unaligned, Stride> C(c, m, n, Stride(ldc));
  if (beta == Scalar(0)) {
    C.setZero();
  } else if (beta != Scalar(1)) {
    C *= beta;
  }
  const ConstMap A(a, a_transposed ? k : m, a_transposed ? m : k, Stride(lda));
  const ConstMap B(b, b_transposed ? n : k, b_transposed ? k : n, Stride(ldb));
  if constexpr (a_transposed && b_transposed) {
    C.noalias() += alpha * (A.transpose() * B.transpose());
  } else if constexpr (a_transposed) {
    C.noalias() += alpha * (A.transpose() * B);
  } else if constexpr (b_transposed) {
    C.noalias() += alpha * (A * B.transpose());
  } else {
    C.noalias() += alpha * (A * B);
  }
}

/// The same product for a large m, with the rows of C split over attn's threads: each thread
/// runs one single-threaded product on its block of rows, sharing B (for a few rows and a
/// large B, the columns are split instead). Measured here (8192 x 2304
/// x 768, float, 2 threads), this runs at ~1.2x the rate of Eigen's own threaded product, which
/// splits the columns and synchronises between its panels; a CBLAS call runs on one thread
/// inside an OpenMP region, so the same split serves it.
template <bool a_transposed, bool b_transposed, typename Scalar>
void parallel_gemm_kernel(Index m, Index n, Index k, Scalar alpha, const Scalar* a, Index lda,
                          const Scalar* b, Index ldb, Scalar beta, Scalar* c, Index ldc,
                          int threads) {
  constexpr Index min_rows = 128;  // below it a row block is too small to split
  if (m < min_rows && n >= min_rows && n * k >= (Index{1} << 18)) {
    // A few rows (decoding one token): the time goes into reading B, the weights, so split its
    // columns instead, each thread reading and writing its own block of them.
    detail::for_each_thread_row_block(n, min_rows, threads, [&](Index, Index col0, Index cols) {
      const Scalar* b_cols = b_transposed ? b + col0 * ldb : b + col0;
      gemm_kernel<a_transposed, b_transposed>(m, cols, k, alpha, a, lda, b_cols, ldb, beta,
                                              c + col0, ldc);
    });
    return;
  }
  detail::for_each_thread_row_block(m, min_rows, threads, [&](Index, Index row0, Index rows) {
    // Rows of op(A) are rows of A, or columns of A when it is stored transposed.
    const Scalar* a_rows = a_transposed ? a + row0 : a + row0 * lda;
    gemm_kernel<a_transposed, b_transposed>(rows, n, k, alpha, a_rows, lda, b, ldb, beta,
                                            c + row0 * ldc, ldc);
  });
}

/// C = alpha * op(A) op(B) + beta * C, as gemm_kernel, on the calling thread: compiled into
/// this program from the headers, or attn::compiled's kernel for the CPU's level.
template <bool a_transposed, bool b_transposed, typename Scalar>
void gemm(Index m, Index n, Index k, Scalar alpha, const Scalar* a, Index lda, const Scalar* b,
          Index ldb, Scalar beta, Scalar* c, Index ldc) {
  if constexpr (compiled_kernels) {
    dispatched<Scalar>().gemm(a_transposed, b_transposed, m, n, k, alpha, a, lda, b, ldb, beta, c,
                              ldc);
  } else {
    gemm_kernel<a_transposed, b_transposed>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

/// The same product with the rows (or, for a few rows, the columns) of C split over
/// num_threads() threads, as parallel_gemm_kernel.
template <bool a_transposed, bool b_transposed, typename Scalar>
void parallel_gemm(Index m, Index n, Index k, Scalar alpha, const Scalar* a, Index lda,
                   const Scalar* b, Index ldb, Scalar beta, Scalar* c, Index ldc) {
  if constexpr (compiled_kernels) {
    dispatched<Scalar>().parallel_gemm(a_transposed, b_transposed, m, n, k, alpha, a, lda, b, ldb,
                                       beta, c, ldc, num_threads());
  } else {
    parallel_gemm_kernel<a_transposed, b_transposed>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                                                     num_threads());
  }
}

}  // namespace attn::detail

#endif  // ATTN_KERNELS_GEMM_HPP
