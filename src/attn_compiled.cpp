// src/attn_compiled.cpp: libattn_compiled, the optional compiled part of attn (CMake target
// attn::compiled, which defines ATTN_COMPILED for its users). It instantiates the kernels and
// layers once for float and double; the headers declare the same lists `extern template`, so a
// file linked against this library compiles none of them itself.
#include "attn/attn.hpp"

#ifndef ATTN_COMPILED
#error "attn_compiled.cpp is built by the attn::compiled target, which defines ATTN_COMPILED."
#endif

namespace attn {
namespace detail {
ATTN_GEMM_INSTANTIATIONS(template)
}  // namespace detail

ATTN_SDPA_INSTANTIATIONS(template)
ATTN_LINEAR_INSTANTIATIONS(template)
ATTN_SELF_ATTENTION_V1_INSTANTIATIONS(template)
ATTN_SELF_ATTENTION_V2_INSTANTIATIONS(template)
ATTN_CAUSAL_ATTENTION_INSTANTIATIONS(template)
ATTN_MULTI_HEAD_ATTENTION_INSTANTIATIONS(template)
ATTN_MULTI_HEAD_ATTENTION_COMBINED_QKV_INSTANTIATIONS(template)
ATTN_MULTI_HEAD_ATTENTION_WRAPPER_INSTANTIATIONS(template)
ATTN_EMBEDDING_INSTANTIATIONS(template)
ATTN_ATTENTION_LANGUAGE_MODEL_INSTANTIATIONS(template)
}  // namespace attn
