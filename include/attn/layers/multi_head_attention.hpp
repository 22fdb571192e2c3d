// attn/layers/multi_head_attention.hpp: MultiHeadAttention (book section 3.6.2): one set of
// d_out-wide projections split into num_heads heads of head_dim = d_out / num_heads, then an
// output projection.
#ifndef ATTN_LAYERS_MULTI_HEAD_ATTENTION_HPP
#define ATTN_LAYERS_MULTI_HEAD_ATTENTION_HPP

#include <string>

#include "attn/config.hpp"
#include "attn/detail/causal_core.hpp"
#include "attn/layers/linear.hpp"
#include "attn/random/generator.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn {

/// Causal multi-head attention with weight splits. The book's
/// `.view(b, T, H, D).transpose(1, 2)` and the inverse transpose before out_proj are strided
/// views here (split_heads): the kernel reads heads in place and writes each head's context
/// straight into its columns of the (B, T, d_out) buffer that out_proj reads.
template <typename ScalarType>
class MultiHeadAttention {
 public:
  using Scalar = ScalarType;

  /// @throws std::invalid_argument for a non-positive size or num_heads, d_out not divisible
  ///         by num_heads, or a dropout outside [0, 1).
  MultiHeadAttention(Index d_in, Index d_out, Index context_length, Scalar dropout, Index num_heads,
                     bool qkv_bias = false, Generator&& generator = Generator())
      : MultiHeadAttention(d_in, d_out, context_length, dropout, num_heads, qkv_bias,
                           static_cast<Generator&>(generator)) {}

  MultiHeadAttention(Index d_in, Index d_out, Index context_length, Scalar dropout, Index num_heads,
                     bool qkv_bias, Generator& generator)
      : core_("MultiHeadAttention", d_in, d_out, context_length, dropout, num_heads),
        W_query_(d_in, d_out, qkv_bias, generator),
        W_key_(d_in, d_out, qkv_bias, generator),
        W_value_(d_in, d_out, qkv_bias, generator),
        out_proj_(d_out, d_out, true, generator) {}

  Index d_in() const { return core_.d_in(); }
  Index d_out() const { return core_.d_out(); }
  Index context_length() const { return core_.context_length(); }
  Index num_heads() const { return core_.num_heads(); }
  Index head_dim() const { return core_.head_dim(); }
  Scalar dropout() const { return core_.dropout(); }
  Linear<Scalar>& W_query() { return W_query_; }
  Linear<Scalar>& W_key() { return W_key_; }
  Linear<Scalar>& W_value() { return W_value_; }
  Linear<Scalar>& out_proj() { return out_proj_; }

  void train(bool training = true) { core_.set_training(training); }
  void eval() { core_.set_training(false); }
  bool is_training() const { return core_.is_training(); }
  Generator& dropout_generator() const { return core_.dropout_generator(); }

  /// @param x (B, T, d_in), T <= context_length. @return (B, T, d_out).
  /// @throws ShapeError if x does not fit.
  template <typename T>
  Tensor<Scalar, 3> forward(const TensorView<T, 3>& x) const {
    core_.check_input(x.shape());
    const Tensor<Scalar, 3> queries = W_query_.forward(x);
    const Tensor<Scalar, 3> keys = W_key_.forward(x);
    const Tensor<Scalar, 3> values = W_value_.forward(x);
    Tensor<Scalar, 3> context(queries.shape());
    core_.attend(queries.view(), keys.view(), values.view(), context.view());
    return out_proj_.forward(context.view());
  }

  /// Entries "W_query.weight", "W_key.weight", "W_value.weight" (d_out, d_in) and their biases
  /// with qkv_bias, "out_proj.weight" (d_out, d_out), "out_proj.bias", and the buffer "mask".
  template <typename Visitor>
  void visit_state(Visitor&& visit, const std::string& prefix = "") {
    W_query_.visit_state(visit, prefix + "W_query.");
    W_key_.visit_state(visit, prefix + "W_key.");
    W_value_.visit_state(visit, prefix + "W_value.");
    out_proj_.visit_state(visit, prefix + "out_proj.");
    core_.visit_mask(visit, prefix);
  }

 private:
  detail::CausalCore<Scalar> core_;
  Linear<Scalar> W_query_, W_key_, W_value_, out_proj_;
};

}  // namespace attn

#endif  // ATTN_LAYERS_MULTI_HEAD_ATTENTION_HPP
