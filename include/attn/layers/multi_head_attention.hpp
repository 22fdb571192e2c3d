// attn/layers/multi_head_attention.hpp: MultiHeadAttention (book section 3.6.2): one set of
// d_out-wide projections split into num_heads heads of head_dim = d_out / num_heads, then an
// output projection.
#ifndef ATTN_LAYERS_MULTI_HEAD_ATTENTION_HPP
#define ATTN_LAYERS_MULTI_HEAD_ATTENTION_HPP

#include <string>

#include "attn/config.hpp"
#include "attn/detail/stacked_qkv_attention.hpp"
#include "attn/layers/linear.hpp"
#include "attn/random/generator.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn {

/// Causal multi-head attention with weight splits, with the book's parameter names
/// (W_query, W_key, W_value, out_proj) and initialisation order, so `Generator(123)` gives the
/// weights of `torch.manual_seed(123); MultiHeadAttention(...)`.
///
/// The three projections are stored stacked in one (3 * d_out, d_in) matrix, so the forward pass
/// projects queries, keys and values in one GEMM; W_query.weight and friends are row blocks of it.
/// The book's `.view(b, T, H, D).transpose(1, 2)` and the transpose back before out_proj are
/// strided views (split_heads): no copies.
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
      : impl_("MultiHeadAttention", d_in, d_out, context_length, dropout, num_heads, qkv_bias) {
    // nn.Linear draws weight then bias, for W_query, W_key, W_value in turn, then out_proj.
    const Scalar bound = Linear<Scalar>::init_bound(d_in);
    const auto draw = [&](Scalar* data, Index count) {
      for (Index i = 0; i < count; ++i) data[i] = generator.uniform<Scalar>(-bound, bound);
    };
    for (Index part = 0; part < 3; ++part) {
      draw(impl_.weight_part(part).data(), d_out * d_in);
      draw(impl_.bias_part(part).data(), impl_.bias_part(part).numel());
    }
    impl_.out().reset_parameters(generator);
  }

  Index d_in() const { return impl_.core().d_in(); }
  Index d_out() const { return impl_.core().d_out(); }
  Index context_length() const { return impl_.core().context_length(); }
  Index num_heads() const { return impl_.core().num_heads(); }
  Index head_dim() const { return impl_.core().head_dim(); }
  Scalar dropout() const { return impl_.core().dropout(); }

  /// The (d_out, d_in) projection weights and (d_out) biases (empty without qkv_bias), as views
  /// into the stacked storage.
  TensorView<Scalar, 2> W_query_weight() { return impl_.weight_part(0); }
  TensorView<Scalar, 2> W_key_weight() { return impl_.weight_part(1); }
  TensorView<Scalar, 2> W_value_weight() { return impl_.weight_part(2); }
  TensorView<Scalar, 1> W_query_bias() { return impl_.bias_part(0); }
  TensorView<Scalar, 1> W_key_bias() { return impl_.bias_part(1); }
  TensorView<Scalar, 1> W_value_bias() { return impl_.bias_part(2); }
  Linear<Scalar>& out_proj() { return impl_.out(); }

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

  /// Entries "W_query.weight", "W_key.weight", "W_value.weight" (d_out, d_in) and their biases
  /// with qkv_bias, "out_proj.weight" (d_out, d_out), "out_proj.bias", and the buffer "mask".
  template <typename Visitor>
  void visit_state(Visitor&& visit, const std::string& prefix = "") {
    const char* names[] = {"W_query.", "W_key.", "W_value."};
    const Index weights = d_out() * d_in();
    for (Index part = 0; part < 3; ++part) {
      visit(StateEntry<Scalar>{prefix + names[part] + "weight",
                               {d_out(), d_in()},
                               impl_.weight_part(part).data(),
                               StateEntry<Scalar>::Kind::parameter,
                               impl_.qkv().weight_grad().data() + part * weights});
      if (impl_.qkv().has_bias()) {
        visit(StateEntry<Scalar>{prefix + names[part] + "bias",
                                 {d_out()},
                                 impl_.bias_part(part).data(),
                                 StateEntry<Scalar>::Kind::parameter,
                                 impl_.qkv().bias_grad().data() + part * d_out()});
      }
    }
    impl_.out().visit_state(visit, prefix + "out_proj.");
    impl_.core().visit_mask(visit, prefix);
  }

 private:
  detail::StackedQkvAttention<Scalar> impl_;
};

}  // namespace attn

#endif  // ATTN_LAYERS_MULTI_HEAD_ATTENTION_HPP
