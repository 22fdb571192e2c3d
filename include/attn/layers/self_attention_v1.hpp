// attn/layers/self_attention_v1.hpp: SelfAttentionV1 (book section 3.4.2), trainable
// self-attention with raw (d_in, d_out) weight matrices: queries = x W_query, and so on.
#ifndef ATTN_LAYERS_SELF_ATTENTION_V1_HPP
#define ATTN_LAYERS_SELF_ATTENTION_V1_HPP

#include "attn/config.hpp"
#include "attn/layers/detail/matrix_projection.hpp"
#include "attn/layers/detail/self_attention.hpp"
#include "attn/random/generator.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn {

/// Scaled dot-product self-attention with raw weight matrices, as the book writes it first.
/// Weights are stored (d_in, d_out), not transposed, and initialised like the book's
/// `torch.rand(d_in, d_out)`: W_query, then W_key, then W_value, U[0, 1) from the generator.
/// So `Generator(123)` reproduces `torch.manual_seed(123); SelfAttentionV1(d_in, d_out)`.
///
/// forward(x) takes (T, d_in) and returns (T, d_out); forward(x, cache) and backward(cache,
/// grad) train it; its state entries are "W_query", "W_key", "W_value", each (d_in, d_out).
template <typename ScalarType>
class SelfAttentionV1 : public detail::SelfAttention<detail::MatrixProjection<ScalarType>> {
  using Base = detail::SelfAttention<detail::MatrixProjection<ScalarType>>;

 public:
  using Scalar = ScalarType;

  /// @throws std::invalid_argument if d_in or d_out is not positive.
  SelfAttentionV1(Index d_in, Index d_out, GeneratorRef generator = Generator())
      : Base("SelfAttentionV1", "", [&] {
          return detail::MatrixProjection<Scalar>("SelfAttentionV1", d_in, d_out, generator);
        }) {}

  Tensor<Scalar, 2>& W_query() { return this->projections().query().weight(); }
  Tensor<Scalar, 2>& W_key() { return this->projections().key().weight(); }
  Tensor<Scalar, 2>& W_value() { return this->projections().value().weight(); }
};

}  // namespace attn

#endif  // ATTN_LAYERS_SELF_ATTENTION_V1_HPP
