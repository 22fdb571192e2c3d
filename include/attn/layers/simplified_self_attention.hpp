// attn/layers/simplified_self_attention.hpp: the first rung of the ladder (book section 3.3):
// self-attention with no trainable weights. Scores are x x^T, unscaled; each context vector
// is the softmax-weighted sum of all inputs.
#ifndef ATTN_LAYERS_SIMPLIFIED_SELF_ATTENTION_HPP
#define ATTN_LAYERS_SIMPLIFIED_SELF_ATTENTION_HPP

#include <type_traits>

#include "attn/config.hpp"
#include "attn/kernels/scaled_dot_product_attention.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn {

/// context = softmax(x x^T) x, through the shared kernel with scale 1 and no mask.
/// @param x       (T, d) token embeddings, unit-stride rows.
/// @param weights optional (T, T) output of the attention weights.
/// @return (T, d) context vectors.
template <typename T>
Tensor<std::remove_const_t<T>, 2> simplified_self_attention(
    const TensorView<T, 2>& x, const TensorView<std::remove_const_t<T>, 2>& weights = {}) {
  using Scalar = std::remove_const_t<T>;
  Tensor<Scalar, 2> context(x.shape());
  AttentionOptions<Scalar> options;
  options.scale = Scalar(1);
  scaled_dot_product_attention(x, x, x, context.view(), options, weights);
  return context;
}

}  // namespace attn

#endif  // ATTN_LAYERS_SIMPLIFIED_SELF_ATTENTION_HPP
