// attn/kernels/detail/dispatch.hpp: the boundary between the headers and the kernels that
// attn::compiled compiles once per instruction-set level (attn/isa.hpp).
//
// Each level's kernels are one translation unit, src/dispatched_kernels.cpp, compiled with that
// level's -march and then made private: every symbol but its entry point is localised, so the
// linker cannot merge its inline Eigen and attn code with another level's or the program's
// (the one-definition rule would otherwise let a baseline path run AVX-512 code, or the reverse).
// Only what this table names crosses the boundary: raw pointers, shapes, strides, thread counts
// and plain structs whose layout no compiler flag changes (TensorView, ScoreMasking,
// PositionalDropout); never an Eigen object, whose alignment follows the flags. So a program
// compiled with -march=native links a library built for baseline x86-64, and the reverse.
// Private to the kernels floor: the headers' gemm, fused_attention and bfloat16 product call it.
#ifndef ATTN_KERNELS_DETAIL_DISPATCH_HPP
#define ATTN_KERNELS_DETAIL_DISPATCH_HPP

#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "attn/config.hpp"
#include "attn/isa.hpp"
#include "attn/kernels/detail/score_masking.hpp"
#include "attn/kernels/dropout.hpp"
#include "attn/kernels/mask.hpp"
#include "attn/tensor/tensor_view.hpp"

namespace attn::detail {

/// One level's kernels for one Scalar. Each entry has the signature of the header function it
/// serves, with the thread count made explicit (the library's copy of num_threads() does not see
/// the program's set_num_threads).
template <typename Scalar>
struct KernelTable {
  using ConstView = TensorView<const Scalar, 4>;
  using View = TensorView<Scalar, 4>;
  /// gemm and parallel_gemm (kernels/gemm.hpp), the layout as arguments.
  void (*gemm)(bool a_transposed, bool b_transposed, Index m, Index n, Index k, Scalar alpha,
               const Scalar* a, Index lda, const Scalar* b, Index ldb, Scalar beta, Scalar* c,
               Index ldc);
  void (*parallel_gemm)(bool a_transposed, bool b_transposed, Index m, Index n, Index k,
                        Scalar alpha, const Scalar* a, Index lda, const Scalar* b, Index ldb,
                        Scalar beta, Scalar* c, Index ldc, int threads);
  /// fused_attention and fused_attention_backward (kernels/fused_attention.hpp), rank 4.
  void (*fused_attention)(const ConstView& q, const ConstView& k, const ConstView& v,
                          const View& out, Scalar scale, bool bfloat16_products,
                          const ScoreMasking<Scalar>& masking,
                          const PositionalDropout<Scalar>* dropout, Scalar* lse, int threads);
  void (*fused_attention_backward)(const ConstView& q, const ConstView& k, const ConstView& v,
                                   const ConstView& out, const ConstView& grad_out,
                                   const View& grad_q, const View& grad_k, const View& grad_v,
                                   Scalar scale, bool bfloat16_products,
                                   const ScoreMasking<Scalar>& masking,
                                   const PositionalDropout<Scalar>* dropout, const Scalar* lse,
                                   int threads);
  /// Y (+)= X W^T over a packed bfloat16 W (kernels/bfloat16_matrix.hpp).
  void (*bfloat16_product)(const std::uint16_t* packed, Index rows, Index cols,
                           const TensorView<const Scalar, 2>& x, Scalar* y, Index ldy,
                           bool accumulate, bool round_activations, int threads);
  /// Packs W into a BFloat16Matrix's bits (kernels/bfloat16_matrix.hpp).
  void (*bfloat16_pack)(const TensorView<const Scalar, 2>& w, std::uint16_t* bits, int threads);
};

/// Everything one level's translation unit provides.
struct Kernels {
  Isa isa;          ///< the level it was compiled for
  int index_bytes;  ///< sizeof(Index) there: a program must use the same Index
  KernelTable<float> f32;
  KernelTable<double> f64;
};

// What crosses the boundary must mean the same on both sides whatever the flags: plain data.
template <typename T>
constexpr bool crosses_boundary = std::is_trivially_copyable_v<T>&& std::is_standard_layout_v<T>;
static_assert(crosses_boundary<TensorView<const float, 4>> &&
                  crosses_boundary<TensorView<const float, 2>> && crosses_boundary<Mask> &&
                  crosses_boundary<ScoreMasking<float>> &&
                  crosses_boundary<PositionalDropout<float>>,
              "attn::compiled's kernels take plain structs only.");

/// Whether this program links attn::compiled (its CMake target defines ATTN_COMPILED): the
/// headers then call its kernels (`if constexpr`) instead of compiling their own bodies.
#ifdef ATTN_COMPILED
inline constexpr bool compiled_kernels = true;
#else
inline constexpr bool compiled_kernels = false;
#endif

/// The level libattn_compiled chose at its first call (src/dispatch.cpp); a bad ATTN_ISA is
/// reported on stderr and ignored. Defined in the library only: called where compiled_kernels.
/// @throws std::runtime_error if the library holds no level this CPU runs.
const Kernels& dispatched_kernels();

/// The chosen level's kernels for Scalar (float or double).
template <typename Scalar>
const KernelTable<Scalar>& dispatched() {
  static_assert(std::is_same_v<Scalar, float> || std::is_same_v<Scalar, double>,
                "attn's compiled kernels exist for float and double.");
  const Kernels& kernels = dispatched_kernels();
  if (kernels.index_bytes != static_cast<int>(sizeof(Index))) {
    throw std::invalid_argument(concat("attn::compiled was built with ", kernels.index_bytes,
                                       "-byte indices but this ", "program uses ", sizeof(Index),
                                       " (EIGEN_DEFAULT_DENSE_INDEX_TYPE must agree)"));
  }
  if constexpr (std::is_same_v<Scalar, float>) {
    return kernels.f32;
  } else {
    return kernels.f64;
  }
}

}  // namespace attn::detail

#endif  // ATTN_KERNELS_DETAIL_DISPATCH_HPP
