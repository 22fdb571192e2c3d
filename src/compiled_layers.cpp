// src/compiled_layers.cpp: libattn_compiled, part 2 of 2: every layer and the model,
// instantiated once for float and double (see compiled_kernels.cpp).
#include "attn/attn.hpp"

#ifndef ATTN_COMPILED
#error "compiled_layers.cpp is built by the attn::compiled target, which defines ATTN_COMPILED."
#endif

namespace attn {
ATTN_LINEAR_INSTANTIATIONS(template)
ATTN_SELF_ATTENTION_V1_INSTANTIATIONS(template)
ATTN_SELF_ATTENTION_V2_INSTANTIATIONS(template)
ATTN_CAUSAL_ATTENTION_INSTANTIATIONS(template)
ATTN_MULTI_HEAD_ATTENTION_INSTANTIATIONS(template)
ATTN_MULTI_HEAD_ATTENTION_COMBINED_QKV_INSTANTIATIONS(template)
ATTN_MULTI_HEAD_ATTENTION_WRAPPER_INSTANTIATIONS(template)
ATTN_GROUPED_QUERY_ATTENTION_INSTANTIATIONS(template)
ATTN_EMBEDDING_INSTANTIATIONS(template)
ATTN_LAYER_NORM_INSTANTIATIONS(template)
ATTN_GELU_INSTANTIATIONS(template)
ATTN_FEED_FORWARD_INSTANTIATIONS(template)
ATTN_TRANSFORMER_BLOCK_INSTANTIATIONS(template)
ATTN_ATTENTION_LANGUAGE_MODEL_INSTANTIATIONS(template)
ATTN_GPT_MODEL_INSTANTIATIONS(template)
}  // namespace attn
