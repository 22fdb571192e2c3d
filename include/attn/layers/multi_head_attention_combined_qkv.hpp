// attn/layers/multi_head_attention_combined_qkv.hpp: MultiHeadAttentionCombinedQKV (the book's
// bonus notebook on efficient multi-head attention): the same maths as MultiHeadAttention with
// one (3 * d_out, d_in) projection for queries, keys and values together.
#ifndef ATTN_LAYERS_MULTI_HEAD_ATTENTION_COMBINED_QKV_HPP
#define ATTN_LAYERS_MULTI_HEAD_ATTENTION_COMBINED_QKV_HPP

#include <string>

#include "attn/config.hpp"
#include "attn/detail/causal_core.hpp"
#include "attn/layers/linear.hpp"
#include "attn/random/generator.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/view_ops.hpp"

namespace attn {

/// Causal multi-head attention with a fused QKV projection. The (B, T, 3 * d_out) projection
/// holds queries, keys and values side by side, as the notebook's
/// `qkv.view(b, T, 3, H, D).permute(2, 0, 3, 1, 4)` reads them; here each is a column slice
/// split into heads, all views into the one buffer. The output projection is named `proj`.
template <typename ScalarType>
class MultiHeadAttentionCombinedQKV {
 public:
  using Scalar = ScalarType;

  /// @throws std::invalid_argument as MultiHeadAttention.
  MultiHeadAttentionCombinedQKV(Index d_in, Index d_out, Index context_length, Scalar dropout,
                                Index num_heads, bool qkv_bias = false,
                                Generator&& generator = Generator())
      : MultiHeadAttentionCombinedQKV(d_in, d_out, context_length, dropout, num_heads, qkv_bias,
                                      static_cast<Generator&>(generator)) {}

  MultiHeadAttentionCombinedQKV(Index d_in, Index d_out, Index context_length, Scalar dropout,
                                Index num_heads, bool qkv_bias, Generator& generator)
      : core_("MultiHeadAttentionCombinedQKV", d_in, d_out, context_length, dropout, num_heads),
        qkv_(d_in, 3 * d_out, qkv_bias, generator),
        proj_(d_out, d_out, true, generator) {}

  Index d_in() const { return core_.d_in(); }
  Index d_out() const { return core_.d_out(); }
  Index context_length() const { return core_.context_length(); }
  Index num_heads() const { return core_.num_heads(); }
  Index head_dim() const { return core_.head_dim(); }
  Scalar dropout() const { return core_.dropout(); }
  Linear<Scalar>& qkv() { return qkv_; }
  Linear<Scalar>& proj() { return proj_; }

  void train(bool training = true) { core_.set_training(training); }
  void eval() { core_.set_training(false); }
  bool is_training() const { return core_.is_training(); }
  Generator& dropout_generator() const { return core_.dropout_generator(); }

  /// @param x (B, T, d_in), T <= context_length. @return (B, T, d_out).
  /// @throws ShapeError if x does not fit.
  template <typename T>
  Tensor<Scalar, 3> forward(const TensorView<T, 3>& x) const {
    core_.check_input(x.shape());
    const Index C = d_out();
    const Tensor<Scalar, 3> qkv = qkv_.forward(x);
    Tensor<Scalar, 3> context({x.size(0), x.size(1), C});
    core_.attend(slice(qkv.view(), 2, 0, C), slice(qkv.view(), 2, C, 2 * C),
                 slice(qkv.view(), 2, 2 * C, 3 * C), context.view());
    return proj_.forward(context.view());
  }

  /// Entries "qkv.weight" (3 * d_out, d_in), "qkv.bias" with qkv_bias, "proj.weight",
  /// "proj.bias", and the buffer "mask".
  template <typename Visitor>
  void visit_state(Visitor&& visit, const std::string& prefix = "") {
    qkv_.visit_state(visit, prefix + "qkv.");
    proj_.visit_state(visit, prefix + "proj.");
    core_.visit_mask(visit, prefix);
  }

 private:
  detail::CausalCore<Scalar> core_;
  Linear<Scalar> qkv_, proj_;
};

}  // namespace attn

#endif  // ATTN_LAYERS_MULTI_HEAD_ATTENTION_COMBINED_QKV_HPP
