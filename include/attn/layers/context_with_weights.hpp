// attn/layers/context_with_weights.hpp: ContextWithWeights, what a layer's forward_with_weights
// returns: the context vectors and the attention weights that made them, for heatmaps, the
// book's figures and debugging.
#ifndef ATTN_LAYERS_CONTEXT_WITH_WEIGHTS_HPP
#define ATTN_LAYERS_CONTEXT_WITH_WEIGHTS_HPP

#include "attn/tensor/tensor.hpp"

namespace attn {

/// A layer's output and its attention weights, shaped as the book's `attn_weights`: (T, T) for
/// SelfAttentionV1/V2, (B, T, T) for CausalAttention, (B, H, T, T) for the multi-head layers.
/// Masked weights are exactly 0. In training mode with dropout they are the weights after
/// dropout (what multiplied the values), as nn.MultiheadAttention returns them.
/// Unpacks with structured bindings: `auto [context, weights] = layer.forward_with_weights(x);`
template <typename Scalar, int ContextRank, int WeightsRank>
struct ContextWithWeights {
  Tensor<Scalar, ContextRank> context;
  Tensor<Scalar, WeightsRank> weights;
};

}  // namespace attn

#endif  // ATTN_LAYERS_CONTEXT_WITH_WEIGHTS_HPP
