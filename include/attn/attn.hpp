// attn/attn.hpp: the umbrella header of the core: tensors, the generator, the parameter
// protocol, the kernels, the layers, losses, models, optimisers and the data pipeline (data/).
// It needs Eigen only. The components are included on their own: <attn/io/safetensors.hpp>
// (target attn::io, needs nlohmann-json) and <attn/viz/heatmap.hpp> / <attn/viz/heatmap_png.hpp>
// (target attn::viz).
#ifndef ATTN_ATTN_HPP
#define ATTN_ATTN_HPP

#include "attn/config.hpp"
#include "attn/data/data_loader.hpp"
#include "attn/data/gpt_dataset.hpp"
#include "attn/isa.hpp"
#include "attn/kernels/dropout.hpp"
#include "attn/kernels/mask.hpp"
#include "attn/kernels/merge_attention.hpp"
#include "attn/kernels/rope.hpp"
#include "attn/kernels/scaled_dot_product_attention.hpp"
#include "attn/kernels/softmax.hpp"
#include "attn/layers/causal_attention.hpp"
#include "attn/layers/embedding.hpp"
#include "attn/layers/feed_forward.hpp"
#include "attn/layers/gelu.hpp"
#include "attn/layers/grouped_query_attention.hpp"
#include "attn/layers/kv_cache.hpp"
#include "attn/layers/layer_norm.hpp"
#include "attn/layers/linear.hpp"
#include "attn/layers/multi_head_attention.hpp"
#include "attn/layers/multi_head_attention_combined_qkv.hpp"
#include "attn/layers/multi_head_attention_wrapper.hpp"
#include "attn/layers/self_attention_v1.hpp"
#include "attn/layers/self_attention_v2.hpp"
#include "attn/layers/simplified_self_attention.hpp"
#include "attn/layers/transformer_block.hpp"
#include "attn/losses/cross_entropy.hpp"
#include "attn/models/attention_language_model.hpp"
#include "attn/models/generation.hpp"
#include "attn/models/gpt_model.hpp"
#include "attn/models/next_token.hpp"
#include "attn/optim/adamw.hpp"
#include "attn/optim/parameter_list.hpp"
#include "attn/optim/sgd.hpp"
#include "attn/random/generator.hpp"
#include "attn/random/randperm.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/format.hpp"
#include "attn/tensor/shape.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/tensor_view.hpp"
#include "attn/tensor/view_ops.hpp"
#include "attn/threads.hpp"
#include "attn/version.hpp"

#endif  // ATTN_ATTN_HPP
