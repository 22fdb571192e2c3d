// attn/layers/self_attention_v1.hpp: SelfAttentionV1 (book section 3.4.2), trainable
// self-attention with raw (d_in, d_out) weight matrices: queries = x W_query, and so on.
#ifndef ATTN_LAYERS_SELF_ATTENTION_V1_HPP
#define ATTN_LAYERS_SELF_ATTENTION_V1_HPP

#include <string>

#include "attn/config.hpp"
#include "attn/detail/validate.hpp"
#include "attn/kernels/scaled_dot_product_attention.hpp"
#include "attn/layers/state_dict.hpp"
#include "attn/random/generator.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn {

/// Scaled dot-product self-attention with raw weight matrices, as the book writes it first.
/// Weights are stored (d_in, d_out), not transposed, and initialised like the book's
/// `torch.rand(d_in, d_out)`: W_query, then W_key, then W_value, U[0, 1) from the generator.
/// So `Generator(123)` reproduces `torch.manual_seed(123); SelfAttentionV1(d_in, d_out)`.
template <typename ScalarType>
class SelfAttentionV1 {
 public:
  using Scalar = ScalarType;

  /// @throws std::invalid_argument if d_in or d_out is not positive.
  SelfAttentionV1(Index d_in, Index d_out, Generator&& generator = Generator())
      : SelfAttentionV1(d_in, d_out, static_cast<Generator&>(generator)) {}

  SelfAttentionV1(Index d_in, Index d_out, Generator& generator)
      : W_query_(init(d_in, d_out, generator)),
        W_key_(init(d_in, d_out, generator)),
        W_value_(init(d_in, d_out, generator)) {}

  /// Training/eval mode, as nn.Module has it. This layer behaves the same in both.
  void train(bool training = true) { training_ = training; }
  void eval() { training_ = false; }
  bool is_training() const { return training_; }

  Index d_in() const { return W_query_.size(0); }
  Index d_out() const { return W_query_.size(1); }
  Tensor<Scalar, 2>& W_query() { return W_query_; }
  Tensor<Scalar, 2>& W_key() { return W_key_; }
  Tensor<Scalar, 2>& W_value() { return W_value_; }

  /// @param x (T, d_in) token embeddings.
  /// @return  (T, d_out) context vectors.
  /// @throws ShapeError if the last dim of x is not d_in.
  template <typename T>
  Tensor<Scalar, 2> forward(const TensorView<T, 2>& x) const {
    detail::require_features("SelfAttentionV1", x.shape(), d_in(), "d_in");
    const auto X = as_matrix(x);
    Tensor<Scalar, 2> queries({x.size(0), d_out()}), keys(queries.shape()), values(queries.shape()),
        context(queries.shape());
    as_matrix(queries.view()).noalias() = X * as_matrix(W_query_.view());
    as_matrix(keys.view()).noalias() = X * as_matrix(W_key_.view());
    as_matrix(values.view()).noalias() = X * as_matrix(W_value_.view());
    scaled_dot_product_attention(queries.view(), keys.view(), values.view(), context.view());
    return context;
  }

  /// Entries "W_query", "W_key", "W_value", each (d_in, d_out): nn.Parameter names.
  template <typename Visitor>
  void visit_state(Visitor&& visit, const std::string& prefix = "") {
    visit(StateEntry<Scalar>{prefix + "W_query", {d_in(), d_out()}, W_query_.data()});
    visit(StateEntry<Scalar>{prefix + "W_key", {d_in(), d_out()}, W_key_.data()});
    visit(StateEntry<Scalar>{prefix + "W_value", {d_in(), d_out()}, W_value_.data()});
  }

 private:
  static Tensor<Scalar, 2> init(Index d_in, Index d_out, Generator& generator) {
    detail::require_positive("SelfAttentionV1", "d_in", d_in);
    detail::require_positive("SelfAttentionV1", "d_out", d_out);
    Tensor<Scalar, 2> weight({d_in, d_out});
    for (Index i = 0; i < weight.numel(); ++i) weight.data()[i] = generator.uniform<Scalar>();
    return weight;
  }

  Tensor<Scalar, 2> W_query_, W_key_, W_value_;
  bool training_ = true;  // PyTorch modules start in training mode
};

}  // namespace attn

#endif  // ATTN_LAYERS_SELF_ATTENTION_V1_HPP
