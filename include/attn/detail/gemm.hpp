// attn/detail/gemm.hpp: the matrix products behind Linear and the fused attention kernel.
//
// Eigen computes them everywhere. When attn is built with a BLAS (CMake finds one: the
// attn::attn target then defines ATTN_HAS_BLAS) and, at run time, the BLAS behind it is OpenBLAS
// (Debian's libblas.so.3 alternative points to whichever implementation is installed), large
// products go to OpenBLAS instead: its AVX-512 kernels run about twice as fast as Eigen 3.4's on
// the CPUs we measured. attn then sets OpenBLAS to one thread and splits the work over its own
// OpenMP threads, so OpenBLAS's thread pool never competes with attn's. A reference (netlib)
// BLAS is never used: it is slower than Eigen. Private: users never include this.
#ifndef ATTN_DETAIL_GEMM_HPP
#define ATTN_DETAIL_GEMM_HPP

#include <algorithm>
#include <atomic>
#include <climits>
#include <type_traits>

#include "attn/config.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/threads.hpp"

#ifdef ATTN_HAS_BLAS
#include <dlfcn.h>
extern "C" {
// The Fortran BLAS interface every BLAS exports (column-major, arguments by pointer).
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc);
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b, const int* ldb,
            const double* beta, double* c, const int* ldc);
}
#endif

namespace attn::detail {

/// Whether products go to OpenBLAS: found at run time, and not switched off by the tests.
inline std::atomic<bool>& blas_enabled() {
  static std::atomic<bool> enabled = [] {
#ifdef ATTN_HAS_BLAS
    using SetThreads = void (*)(int);
    auto set_threads =
        reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    if (set_threads == nullptr) return false;  // a reference BLAS: Eigen is faster
    set_threads(1);
    return true;
#else
    return false;
#endif
  }();
  return enabled;
}

/// True when OpenBLAS computes attn's products (for reports and benchmarks).
inline bool uses_blas() {
  return blas_enabled().load(std::memory_order_relaxed);
}

/// C = alpha * op(A) op(B) + beta * C for row-major blocks with leading dimensions (row
/// strides). op(A) is (m, k): A is stored (m, k), or (k, m) when `a_transposed`. op(B) is (k, n):
/// B is stored (k, n), or (n, k) when `b_transposed` (the layout of a Linear weight or of keys).
/// C is (m, n). With beta = 0, C is not read. Runs on the calling thread.
template <typename Scalar>
void gemm(bool a_transposed, bool b_transposed, Index m, Index n, Index k, Scalar alpha,
          const Scalar* a, Index lda, const Scalar* b, Index ldb, Scalar beta, Scalar* c,
          Index ldc) {
  if (m == 0 || n == 0) return;
#ifdef ATTN_HAS_BLAS
  constexpr Index int_max = INT_MAX;
  if (k > 0 && uses_blas() && std::max({m, n, k, lda, ldb, ldc}) <= int_max) {
    // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands. A
    // row-major buffer read column-major is its transpose, so a stored-transposed operand
    // becomes 'T' and a plain one 'N'.
    const int M = static_cast<int>(n), N = static_cast<int>(m), K = static_cast<int>(k);
    const int LDA = static_cast<int>(std::max<Index>(ldb, 1));
    const int LDB = static_cast<int>(std::max<Index>(lda, 1));
    const int LDC = static_cast<int>(std::max<Index>(ldc, 1));
    const char transa = b_transposed ? 'T' : 'N', transb = a_transposed ? 'T' : 'N';
    if constexpr (std::is_same_v<Scalar, float>) {
      sgemm_(&transa, &transb, &M, &N, &K, &alpha, b, &LDA, a, &LDB, &beta, c, &LDC);
      return;
    } else if constexpr (std::is_same_v<Scalar, double>) {
      dgemm_(&transa, &transb, &M, &N, &K, &alpha, b, &LDA, a, &LDB, &beta, c, &LDC);
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
  if (a_transposed && b_transposed) {
    C.noalias() += alpha * (A.transpose() * B.transpose());
  } else if (a_transposed) {
    C.noalias() += alpha * (A.transpose() * B);
  } else if (b_transposed) {
    C.noalias() += alpha * (A * B.transpose());
  } else {
    C.noalias() += alpha * (A * B);
  }
}

/// The same product for a large m, its rows split over attn's threads when OpenBLAS is in use
/// (it runs single-threaded); Eigen parallelises a large product by itself.
template <typename Scalar>
void parallel_gemm(bool a_transposed, bool b_transposed, Index m, Index n, Index k, Scalar alpha,
                   const Scalar* a, Index lda, const Scalar* b, Index ldb, Scalar beta, Scalar* c,
                   Index ldc) {
  const int threads = num_threads();
  if (!uses_blas() || threads < 2 || m < 2 * 64) {
    gemm(a_transposed, b_transposed, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  ATTN_OMP(parallel num_threads(threads)) {
#ifdef _OPENMP
    const Index parts = omp_get_num_threads(), part = omp_get_thread_num();
#else
    const Index parts = 1, part = 0;
#endif
    const Index chunk = (m + parts - 1) / parts;
    const Index row0 = std::min(m, part * chunk), rows = std::min(chunk, m - row0);
    // Rows of op(A) are rows of A, or columns of A when it is stored transposed.
    const Scalar* a_rows = a_transposed ? a + row0 : a + row0 * lda;
    gemm(a_transposed, b_transposed, rows, n, k, alpha, a_rows, lda, b, ldb, beta, c + row0 * ldc,
         ldc);
  }
}

}  // namespace attn::detail

#endif  // ATTN_DETAIL_GEMM_HPP
