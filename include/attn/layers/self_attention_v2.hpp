// attn/layers/self_attention_v2.hpp: SelfAttentionV2 (book section 3.4.2), trainable
// self-attention with three Linear projections and optional qkv bias.
#ifndef ATTN_LAYERS_SELF_ATTENTION_V2_HPP
#define ATTN_LAYERS_SELF_ATTENTION_V2_HPP

#include <string>

#include "attn/config.hpp"
#include "attn/detail/validate.hpp"
#include "attn/kernels/scaled_dot_product_attention.hpp"
#include "attn/layers/linear.hpp"
#include "attn/layers/state_dict.hpp"
#include "attn/random/generator.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn {

/// Self-attention with nn.Linear projections. Initialised W_query, W_key, W_value in that
/// order, so `Generator(789)` reproduces `torch.manual_seed(789); SelfAttentionV2(d_in, d_out)`.
template <typename ScalarType>
class SelfAttentionV2 {
 public:
  using Scalar = ScalarType;

  /// @throws std::invalid_argument if d_in or d_out is not positive.
  SelfAttentionV2(Index d_in, Index d_out, bool qkv_bias = false,
                  Generator&& generator = Generator())
      : SelfAttentionV2(d_in, d_out, qkv_bias, static_cast<Generator&>(generator)) {}

  SelfAttentionV2(Index d_in, Index d_out, bool qkv_bias, Generator& generator)
      : W_query_(d_in, d_out, qkv_bias, generator),
        W_key_(d_in, d_out, qkv_bias, generator),
        W_value_(d_in, d_out, qkv_bias, generator) {}

  /// Training/eval mode, as nn.Module has it. This layer behaves the same in both.
  void train(bool training = true) { training_ = training; }
  void eval() { training_ = false; }
  bool is_training() const { return training_; }

  Index d_in() const { return W_query_.in_features(); }
  Index d_out() const { return W_query_.out_features(); }
  Linear<Scalar>& W_query() { return W_query_; }
  Linear<Scalar>& W_key() { return W_key_; }
  Linear<Scalar>& W_value() { return W_value_; }

  /// @param x (T, d_in) token embeddings.
  /// @return  (T, d_out) context vectors.
  /// @throws ShapeError if the last dim of x is not d_in.
  template <typename T>
  Tensor<Scalar, 2> forward(const TensorView<T, 2>& x) const {
    detail::require_features("SelfAttentionV2", x.shape(), d_in(), "d_in");
    const Tensor<Scalar, 2> queries = W_query_.forward(x);
    const Tensor<Scalar, 2> keys = W_key_.forward(x);
    const Tensor<Scalar, 2> values = W_value_.forward(x);
    Tensor<Scalar, 2> context(queries.shape());
    scaled_dot_product_attention(queries.view(), keys.view(), values.view(), context.view());
    return context;
  }

  /// Entries "W_query.weight" (d_out, d_in), "W_query.bias" with qkv_bias, and so on.
  template <typename Visitor>
  void visit_state(Visitor&& visit, const std::string& prefix = "") {
    W_query_.visit_state(visit, prefix + "W_query.");
    W_key_.visit_state(visit, prefix + "W_key.");
    W_value_.visit_state(visit, prefix + "W_value.");
  }

 private:
  Linear<Scalar> W_query_, W_key_, W_value_;
  bool training_ = true;  // PyTorch modules start in training mode
};

}  // namespace attn

#endif  // ATTN_LAYERS_SELF_ATTENTION_V2_HPP
