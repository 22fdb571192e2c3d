// src/dispatched_kernels.cpp: attn::compiled's hot kernels for one instruction-set level. CMake
// compiles this file once per level (attn_add_compiled_library: -march=x86-64, x86-64-v3,
// x86-64-v4, x86-64-v4 -mavx512bf16), each time naming the entry point ATTN_KERNELS_ENTRY, and
// then localises every symbol of the object but that entry (objcopy), so that no inline Eigen,
// attn or standard-library function compiled for one level can stand in for another level's or
// the program's. The entry returns the level's table (kernels/detail/dispatch.hpp), which
// src/dispatch.cpp chooses from at run time. These are the headers' own bodies: one portable
// source, compiled for each level.
#include "attn/kernels/bfloat16_matrix.hpp"
#include "attn/kernels/detail/dispatch.hpp"
#include "attn/kernels/fused_attention.hpp"
#include "attn/kernels/gemm.hpp"

#ifdef ATTN_COMPILED
#error "dispatched_kernels.cpp holds the kernels' bodies: it must be built without ATTN_COMPILED."
#endif
#ifndef ATTN_KERNELS_ENTRY
#error "dispatched_kernels.cpp needs ATTN_KERNELS_ENTRY, the name of this level's entry point."
#endif
#ifdef ATTN_KERNELS_LEVEL  // (not for the level "native", whatever this CPU has)
static_assert(attn::flags_isa() == attn::Isa::ATTN_KERNELS_LEVEL,
              "dispatched_kernels.cpp: the compile flags do not give this object's level (does "
              "CMAKE_CXX_FLAGS hold an -m option that overrides -march?)");
#endif

namespace attn::detail {
namespace {

// The table takes the layouts as arguments; the bodies take them as template arguments.
template <typename Scalar>
void gemm_any_layout(bool a_transposed, bool b_transposed, Index m, Index n, Index k, Scalar alpha,
                     const Scalar* a, Index lda, const Scalar* b, Index ldb, Scalar beta, Scalar* c,
                     Index ldc) {
  if (a_transposed && b_transposed) {
    gemm_kernel<true, true>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else if (a_transposed) {
    gemm_kernel<true, false>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else if (b_transposed) {
    gemm_kernel<false, true>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else {
    gemm_kernel<false, false>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

template <typename Scalar>
void parallel_gemm_any_layout(bool a_transposed, bool b_transposed, Index m, Index n, Index k,
                              Scalar alpha, const Scalar* a, Index lda, const Scalar* b, Index ldb,
                              Scalar beta, Scalar* c, Index ldc, int threads) {
  if (a_transposed && b_transposed) {
    parallel_gemm_kernel<true, true>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads);
  } else if (a_transposed) {
    parallel_gemm_kernel<true, false>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads);
  } else if (b_transposed) {
    parallel_gemm_kernel<false, true>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads);
  } else {
    parallel_gemm_kernel<false, false>(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, threads);
  }
}

template <typename Scalar>
constexpr KernelTable<Scalar> kernel_table() {
  return {&gemm_any_layout<Scalar>,           &parallel_gemm_any_layout<Scalar>,
          &fused_attention_kernel<Scalar, 4>, &fused_attention_backward_kernel<Scalar, 4>,
          &bfloat16_product_kernel<Scalar>,   &bfloat16_pack_kernel<Scalar>};
}

}  // namespace
}  // namespace attn::detail

extern "C" const attn::detail::Kernels* ATTN_KERNELS_ENTRY() {
  static constexpr attn::detail::Kernels kernels{
      attn::flags_isa(), static_cast<int>(sizeof(attn::Index)), attn::detail::kernel_table<float>(),
      attn::detail::kernel_table<double>()};
  return &kernels;
}
