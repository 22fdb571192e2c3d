// src/compiled_kernels.cpp: libattn_compiled, part 1 of 2 (CMake target attn::compiled, which
// defines ATTN_COMPILED for its users): the matrix product and the shared attention kernel,
// forward and backward, instantiated once for float and double. The headers declare the same
// lists `extern template`, so a file linked against the library compiles none of them itself.
// (Two source files so that a build compiles them on two cores at once.)
#include "attn/kernels/detail/bfloat16_matrix.hpp"
#include "attn/kernels/merge_attention.hpp"
#include "attn/kernels/rope.hpp"
#include "attn/kernels/scaled_dot_product_attention.hpp"

#ifndef ATTN_COMPILED
#error "compiled_kernels.cpp is built by the attn::compiled target, which defines ATTN_COMPILED."
#endif

namespace attn {
namespace detail {
ATTN_GEMM_INSTANTIATIONS(template)
ATTN_BFLOAT16_MATRIX_INSTANTIATIONS(template)
}  // namespace detail

ATTN_SDPA_INSTANTIATIONS(template)
ATTN_MERGE_ATTENTION_INSTANTIATIONS(template)
ATTN_ROPE_INSTANTIATIONS(template)
}  // namespace attn
