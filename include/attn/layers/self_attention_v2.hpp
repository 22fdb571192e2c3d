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
      : W_query_(validated(d_in, "d_in"), validated(d_out, "d_out"), qkv_bias, generator),
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

  /// What a training forward keeps for backward: the input, the projections, the context
  /// and the kernel's cache.
  struct Cache {
    Tensor<Scalar, 2> x, queries, keys, values, context;
    AttentionCache<Scalar> attention;
  };

  /// @param x (T, d_in) token embeddings.
  /// @return  (T, d_out) context vectors.
  /// @throws ShapeError if the last dim of x is not d_in.
  template <typename T>
  Tensor<Scalar, 2> forward(const TensorView<T, 2>& x) const {
    Cache cache;
    run(x, cache, false);
    return std::move(cache.context);
  }

  /// Forward that fills `cache` for backward. Same result as forward(x).
  template <typename T>
  Tensor<Scalar, 2> forward(const TensorView<T, 2>& x, Cache& cache) const {
    run(x, cache, true);
    return cache.context;
  }

  /// Backward of forward(x, cache): returns dL/dx (T, d_in) and accumulates (+=) the three
  /// projections' gradients.
  /// @param grad_context (T, d_out), dL/dcontext.
  Tensor<Scalar, 2> backward(const Cache& cache, const detail::ConstView<Scalar, 2>& grad_context) {
    Tensor<Scalar, 2> grad_q(cache.queries.shape()), grad_k(grad_q.shape()), grad_v(grad_q.shape());
    scaled_dot_product_attention_backward<Scalar, 2>(
        cache.queries.view(), cache.keys.view(), cache.values.view(), cache.context.view(),
        grad_context, grad_q.view(), grad_k.view(), grad_v.view(), AttentionOptions<Scalar>{},
        cache.attention);
    // x feeds three projections: its gradient is the sum of theirs.
    Tensor<Scalar, 2> grad_x = W_query_.backward(cache.x.view(), grad_q.view());
    grad_x += W_key_.backward(cache.x.view(), grad_k.view());
    grad_x += W_value_.backward(cache.x.view(), grad_v.view());
    return grad_x;
  }

  /// Entries "W_query.weight" (d_out, d_in), "W_query.bias" with qkv_bias, and so on.
  template <typename Visitor>
  void visit_state(Visitor&& visit, const std::string& prefix = "") {
    W_query_.visit_state(visit, prefix + "W_query.");
    W_key_.visit_state(visit, prefix + "W_key.");
    W_value_.visit_state(visit, prefix + "W_value.");
  }

 private:
  // Checked here so the message names this layer and the book's argument names.
  static Index validated(Index value, const char* name) {
    detail::require_positive("SelfAttentionV2", name, value);
    return value;
  }

  template <typename T>
  void run(const TensorView<T, 2>& x, Cache& cache, bool keep) const {
    detail::require_features("SelfAttentionV2", x.shape(), d_in(), "d_in");
    cache.queries = W_query_.forward(x);
    cache.keys = W_key_.forward(x);
    cache.values = W_value_.forward(x);
    cache.context = Tensor<Scalar, 2>(cache.queries.shape());
    scaled_dot_product_attention(cache.queries.view(), cache.keys.view(), cache.values.view(),
                                 cache.context.view(), AttentionOptions<Scalar>{}, {},
                                 keep ? &cache.attention : nullptr);
    if (keep) cache.x = Tensor<Scalar, 2>(TensorView<const Scalar, 2>(x));
  }

  Linear<Scalar> W_query_, W_key_, W_value_;
  bool training_ = true;  // PyTorch modules start in training mode
};

}  // namespace attn

#endif  // ATTN_LAYERS_SELF_ATTENTION_V2_HPP
