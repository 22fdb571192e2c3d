// attn/layers/self_attention_v2.hpp: SelfAttentionV2 (book section 3.4.2), trainable
// self-attention with three Linear projections and optional qkv bias.
#ifndef ATTN_LAYERS_SELF_ATTENTION_V2_HPP
#define ATTN_LAYERS_SELF_ATTENTION_V2_HPP

#include "attn/config.hpp"
#include "attn/layers/detail/self_attention.hpp"
#include "attn/layers/detail/validate.hpp"
#include "attn/layers/linear.hpp"
#include "attn/random/generator.hpp"

namespace attn {

/// Self-attention with nn.Linear projections. Initialised W_query, W_key, W_value in that
/// order, so `Generator(789)` reproduces `torch.manual_seed(789); SelfAttentionV2(d_in, d_out)`.
///
/// forward(x) takes (T, d_in) and returns (T, d_out); forward(x, cache) and backward(cache,
/// grad) train it; its state entries are "W_query.weight" (d_out, d_in), "W_query.bias" with
/// qkv_bias, and the same for W_key and W_value.
template <typename ScalarType>
class SelfAttentionV2 : public detail::SelfAttention<Linear<ScalarType>> {
  using Base = detail::SelfAttention<Linear<ScalarType>>;

 public:
  using Scalar = ScalarType;

  /// @throws std::invalid_argument if d_in or d_out is not positive.
  SelfAttentionV2(Index d_in, Index d_out, bool qkv_bias = false,
                  GeneratorRef generator = Generator())
      : Base("SelfAttentionV2", ".", [&] {
          // Checked here so the message names this layer and the book's argument names.
          detail::require_positive("SelfAttentionV2", "d_in", d_in);
          detail::require_positive("SelfAttentionV2", "d_out", d_out);
          return Linear<Scalar>(d_in, d_out, qkv_bias, generator);
        }) {}

  Linear<Scalar>& W_query() { return this->projections().query(); }
  Linear<Scalar>& W_key() { return this->projections().key(); }
  Linear<Scalar>& W_value() { return this->projections().value(); }
};

}  // namespace attn

#endif  // ATTN_LAYERS_SELF_ATTENTION_V2_HPP
