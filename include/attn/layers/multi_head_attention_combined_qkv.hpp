// attn/layers/multi_head_attention_combined_qkv.hpp: MultiHeadAttentionCombinedQKV (the book's
// bonus notebook on efficient multi-head attention): the same maths as MultiHeadAttention with
// one (3 * d_out, d_in) projection named `qkv` and an output projection named `proj`.
#ifndef ATTN_LAYERS_MULTI_HEAD_ATTENTION_COMBINED_QKV_HPP
#define ATTN_LAYERS_MULTI_HEAD_ATTENTION_COMBINED_QKV_HPP

#include <string>

#include "attn/config.hpp"
#include "attn/detail/stacked_qkv_attention.hpp"
#include "attn/layers/linear.hpp"
#include "attn/random/generator.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn {

/// Causal multi-head attention with a fused QKV projection. The (B, T, 3 * d_out) projection
/// holds queries, keys and values side by side, as the notebook's
/// `qkv.view(b, T, 3, H, D).permute(2, 0, 3, 1, 4)` reads them; here each is a column slice
/// split into heads, all views into the one buffer.
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
      : impl_("MultiHeadAttentionCombinedQKV", d_in, d_out, context_length, dropout, num_heads,
              qkv_bias) {
    impl_.qkv().reset_parameters(generator);
    impl_.out().reset_parameters(generator);
  }

  Index d_in() const { return impl_.core().d_in(); }
  Index d_out() const { return impl_.core().d_out(); }
  Index context_length() const { return impl_.core().context_length(); }
  Index num_heads() const { return impl_.core().num_heads(); }
  Index head_dim() const { return impl_.core().head_dim(); }
  Scalar dropout() const { return impl_.core().dropout(); }
  Linear<Scalar>& qkv() { return impl_.qkv(); }
  Linear<Scalar>& proj() { return impl_.out(); }

  void train(bool training = true) { impl_.core().set_training(training); }
  void eval() { train(false); }
  bool is_training() const { return impl_.core().is_training(); }
  Generator& dropout_generator() const { return impl_.core().dropout_generator(); }
  /// Which kernel implementation forward uses (automatic: fused unless dropout is active).
  void set_attention_path(AttentionPath path) { impl_.core().set_attention_path(path); }

  /// @param x (B, T, d_in), T <= context_length. @return (B, T, d_out).
  /// @throws ShapeError if x does not fit.
  template <typename T>
  Tensor<Scalar, 3> forward(const TensorView<T, 3>& x) const {
    return impl_.forward(x);
  }

  /// What a training forward keeps for backward: the input, the stacked projection, the
  /// context before the output projection, and the kernel's cache (log-sum-exp per row, or the
  /// dropout generator's state).
  using Cache = typename detail::StackedQkvAttention<Scalar>::Cache;

  /// Forward that fills `cache` for backward. Same result as forward(x).
  template <typename T>
  Tensor<Scalar, 3> forward(const TensorView<T, 3>& x, Cache& cache) const {
    return impl_.forward(x, &cache);
  }

  /// Backward of forward(x, cache): returns dL/dx (B, T, d_in) and accumulates (+=) the
  /// gradients of every parameter (see visit_state).
  /// @param grad_out (B, T, d_out), dL/dout.
  Tensor<Scalar, 3> backward(const Cache& cache, const detail::ConstView<Scalar, 3>& grad_out) {
    return impl_.backward(cache, grad_out);
  }

  /// Entries "qkv.weight" (3 * d_out, d_in), "qkv.bias" with qkv_bias, "proj.weight",
  /// "proj.bias", and the buffer "mask".
  template <typename Visitor>
  void visit_state(Visitor&& visit, const std::string& prefix = "") {
    impl_.qkv().visit_state(visit, prefix + "qkv.");
    impl_.out().visit_state(visit, prefix + "proj.");
    impl_.core().visit_mask(visit, prefix);
  }

 private:
  detail::StackedQkvAttention<Scalar> impl_;
};

}  // namespace attn

#endif  // ATTN_LAYERS_MULTI_HEAD_ATTENTION_COMBINED_QKV_HPP
