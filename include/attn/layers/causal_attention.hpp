// attn/layers/causal_attention.hpp: CausalAttention (book section 3.5.3): batched
// self-attention where each token attends only to itself and earlier tokens, with dropout on
// the attention weights.
#ifndef ATTN_LAYERS_CAUSAL_ATTENTION_HPP
#define ATTN_LAYERS_CAUSAL_ATTENTION_HPP

#include <string>

#include "attn/config.hpp"
#include "attn/detail/causal_core.hpp"
#include "attn/layers/linear.hpp"
#include "attn/random/generator.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn {

/// Causal self-attention over a batch. Inputs may be shorter than context_length: the book
/// slices its (context_length, context_length) mask to (T, T), which is what Mask::causal does.
template <typename ScalarType>
class CausalAttention {
 public:
  using Scalar = ScalarType;

  /// @throws std::invalid_argument if d_in, d_out or context_length is not positive, or dropout
  ///         is outside [0, 1).
  CausalAttention(Index d_in, Index d_out, Index context_length, Scalar dropout,
                  bool qkv_bias = false, Generator&& generator = Generator())
      : CausalAttention(d_in, d_out, context_length, dropout, qkv_bias,
                        static_cast<Generator&>(generator)) {}

  CausalAttention(Index d_in, Index d_out, Index context_length, Scalar dropout, bool qkv_bias,
                  Generator& generator)
      : core_("CausalAttention", d_in, d_out, context_length, dropout, 1),
        W_query_(d_in, d_out, qkv_bias, generator),
        W_key_(d_in, d_out, qkv_bias, generator),
        W_value_(d_in, d_out, qkv_bias, generator) {}

  Index d_in() const { return core_.d_in(); }
  Index d_out() const { return core_.d_out(); }
  Index context_length() const { return core_.context_length(); }
  Scalar dropout() const { return core_.dropout(); }
  Linear<Scalar>& W_query() { return W_query_; }
  Linear<Scalar>& W_key() { return W_key_; }
  Linear<Scalar>& W_value() { return W_value_; }

  /// Training mode (the default, as in PyTorch) applies dropout; eval mode does not.
  void train(bool training = true) { core_.set_training(training); }
  void eval() { core_.set_training(false); }
  bool is_training() const { return core_.is_training(); }
  /// Draws the dropout masks in training mode; reseed it for reproducible runs.
  Generator& dropout_generator() const { return core_.dropout_generator(); }
  /// Which kernel implementation forward uses (automatic: fused unless dropout is active).
  void set_attention_path(AttentionPath path) { core_.set_attention_path(path); }

  /// What a training forward keeps for backward: the input, the projections, the context
  /// and the kernel's cache.
  struct Cache {
    Tensor<Scalar, 3> x, queries, keys, values, context;
    AttentionCache<Scalar> attention;
  };

  /// @param x       (B, T, d_in), T <= context_length.
  /// @param context (B, T, d_out), written; may be a strided view (the wrapper passes slices).
  /// @param cache   optional: filled with what backward needs.
  /// @throws ShapeError if x is not (B, T <= context_length, d_in) or context's shape differs.
  template <typename T>
  void forward_into(const TensorView<T, 3>& x, const TensorView<Scalar, 3>& context,
                    Cache* cache = nullptr) const {
    core_.check_input(x.shape());
    Tensor<Scalar, 3> queries = W_query_.forward(x);
    Tensor<Scalar, 3> keys = W_key_.forward(x);
    Tensor<Scalar, 3> values = W_value_.forward(x);
    core_.attend(queries.view(), keys.view(), values.view(), context,
                 cache != nullptr ? &cache->attention : nullptr);
    if (cache != nullptr) {
      cache->x = Tensor<Scalar, 3>(TensorView<const Scalar, 3>(x));
      cache->queries = std::move(queries);
      cache->keys = std::move(keys);
      cache->values = std::move(values);
      cache->context = Tensor<Scalar, 3>(TensorView<const Scalar, 3>(context));
    }
  }

  /// @param x (B, T, d_in), T <= context_length. @return (B, T, d_out).
  template <typename T>
  Tensor<Scalar, 3> forward(const TensorView<T, 3>& x) const {
    Tensor<Scalar, 3> context({x.size(0), x.size(1), d_out()});
    forward_into(x, context.view());
    return context;
  }

  /// Forward that fills `cache` for backward. Same result as forward(x).
  template <typename T>
  Tensor<Scalar, 3> forward(const TensorView<T, 3>& x, Cache& cache) const {
    Tensor<Scalar, 3> context({x.size(0), x.size(1), d_out()});
    forward_into(x, context.view(), &cache);
    return context;
  }

  /// Backward of forward(x, cache): returns dL/dx (B, T, d_in) and accumulates (+=) the
  /// projections' gradients.
  /// @param grad_context (B, T, d_out), dL/dcontext; may be strided.
  Tensor<Scalar, 3> backward(const Cache& cache, const detail::ConstView<Scalar, 3>& grad_context) {
    Tensor<Scalar, 3> grad_q(cache.queries.shape()), grad_k(cache.keys.shape()),
        grad_v(cache.values.shape());
    const Tensor<Scalar, 3> grad_c(grad_context);
    core_.attend_backward(cache.queries.view(), cache.keys.view(), cache.values.view(),
                          cache.context.view(), grad_c.view(), grad_q.view(), grad_k.view(),
                          grad_v.view(), cache.attention);
    // x feeds three projections: its gradient is the sum of theirs.
    Tensor<Scalar, 3> grad_x = W_query_.backward(cache.x.view(), grad_q.view());
    grad_x += W_key_.backward(cache.x.view(), grad_k.view());
    grad_x += W_value_.backward(cache.x.view(), grad_v.view());
    return grad_x;
  }

  /// Entries "W_query.weight", "W_key.weight", "W_value.weight" (d_out, d_in), their biases
  /// with qkv_bias, and the buffer "mask" (context_length, context_length).
  template <typename Visitor>
  void visit_state(Visitor&& visit, const std::string& prefix = "") {
    W_query_.visit_state(visit, prefix + "W_query.");
    W_key_.visit_state(visit, prefix + "W_key.");
    W_value_.visit_state(visit, prefix + "W_value.");
    core_.visit_mask(visit, prefix);
  }

 private:
  detail::CausalCore<Scalar> core_;
  Linear<Scalar> W_query_, W_key_, W_value_;
};

}  // namespace attn

#endif  // ATTN_LAYERS_CAUSAL_ATTENTION_HPP
