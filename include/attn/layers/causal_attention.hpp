// attn/layers/causal_attention.hpp: CausalAttention (book section 3.5.3): batched
// self-attention where each token attends only to itself and earlier tokens, with dropout on
// the attention weights.
#ifndef ATTN_LAYERS_CAUSAL_ATTENTION_HPP
#define ATTN_LAYERS_CAUSAL_ATTENTION_HPP

#include <string>
#include <type_traits>

#include "attn/config.hpp"
#include "attn/layers/context_with_weights.hpp"
#include "attn/layers/detail/causal_core.hpp"
#include "attn/layers/detail/separate_projections.hpp"
#include "attn/layers/detail/validate.hpp"
#include "attn/layers/linear.hpp"
#include "attn/random/generator.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn {

/// Causal self-attention over a batch. Inputs may be shorter than context_length: the book
/// slices its (context_length, context_length) mask to (T, T), which is what Mask::causal does.
/// d_in(), d_out(), context_length(), dropout(), train()/eval(), dropout_generator() and
/// set_attention_path() come from the causal core it shares with the multi-head layers.
template <typename ScalarType>
class CausalAttention : public detail::CausalCore<ScalarType>,
                        public StateVisitable<CausalAttention<ScalarType>> {
  using Core = detail::CausalCore<ScalarType>;
  using Projections = detail::SeparateProjections<Linear<ScalarType>, 3>;

 public:
  using Scalar = ScalarType;

  /// @throws std::invalid_argument if d_in, d_out or context_length is not positive, or dropout
  ///         is outside [0, 1).
  CausalAttention(Index d_in, Index d_out, Index context_length, Scalar dropout,
                  bool qkv_bias = false, GeneratorRef generator = Generator())
      : Core("CausalAttention", d_in, d_out, context_length, dropout, 1),
        projections_([&] { return Linear<Scalar>(d_in, d_out, qkv_bias, generator); }) {}

  Linear<Scalar>& W_query() { return projections_.query(); }
  Linear<Scalar>& W_key() { return projections_.key(); }
  Linear<Scalar>& W_value() { return projections_.value(); }

  /// What a training forward keeps for backward: the input, the projections, the context
  /// and the kernel's cache.
  using Cache = typename Projections::Cache;

  /// @param x       (B, T, d_in), T <= context_length.
  /// @param context (B, T, d_out), written; may be a strided view (the wrapper passes slices).
  /// @param cache   optional: filled with what backward needs.
  /// @param weights optional (B, T, T): the attention weights, written (reference path).
  /// @throws ShapeError if x is not (B, T <= context_length, d_in) or context's or weights'
  ///         shape differs.
  void forward_into(const TensorView<const Scalar, 3>& x, const TensorView<Scalar, 3>& context,
                    Cache* cache = nullptr, const TensorView<Scalar, 3>& weights = {}) const {
    this->check_input(x.shape());
    const Index B = x.size(0), T = x.size(1);
    detail::require_shape("CausalAttention", "context", context.shape(), {B, T, this->d_out()});
    if (weights.data() != nullptr) {
      detail::require_shape("CausalAttention", "weights", weights.shape(), {B, T, T});
    }
    // One head: the (B, T, T) weights are the kernel's (B, 1, T, T).
    projections_.forward_into(static_cast<const Core&>(*this), x, context, cache,
                              split_heads(weights, 1));
  }

  /// @param x (B, T, d_in), T <= context_length. @return (B, T, d_out).
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x) const {
    Tensor<Scalar, 3> context({x.size(0), x.size(1), this->d_out()});
    forward_into(x, context.view());
    return context;
  }

  /// Forward that fills `cache` for backward. Same result as forward(x).
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x, Cache& cache) const {
    Tensor<Scalar, 3> context({x.size(0), x.size(1), this->d_out()});
    forward_into(x, context.view(), &cache);
    return context;
  }

  ATTN_LAYER_INPUT_CHECKS("CausalAttention", 3, "(batch, tokens, d_in)")

  /// Forward that also returns the (B, T, T) attention weights, the book's `attn_weights`.
  ContextWithWeights<Scalar, 3, 3> forward_with_weights(
      const TensorView<const Scalar, 3>& x) const {
    this->check_input(x.shape());
    const Index B = x.size(0), T = x.size(1);
    ContextWithWeights<Scalar, 3, 3> result{Tensor<Scalar, 3>({B, T, this->d_out()}),
                                            Tensor<Scalar, 3>({B, T, T})};
    forward_into(x, result.context.view(), nullptr, result.weights.view());
    return result;
  }

  /// Backward of forward(x, cache): returns dL/dx (B, T, d_in) and accumulates (+=) the
  /// projections' gradients.
  /// @param grad_context (B, T, d_out), dL/dcontext; may be strided.
  Tensor<Scalar, 3> backward(const Cache& cache, const TensorView<const Scalar, 3>& grad_context) {
    return projections_.backward(static_cast<const Core&>(*this), cache, grad_context);
  }

 private:
  friend class StateVisitable<CausalAttention<ScalarType>>;
  // Entries "W_query.weight", "W_key.weight", "W_value.weight" (d_out, d_in), their biases
  // with qkv_bias, and the buffer "mask" (context_length, context_length).
  template <typename Self, typename Visitor>
  static void visit_entries(Self& self, Visitor& visit, const std::string& prefix) {
    Projections::visit_state(self.projections_, visit, prefix, ".");
    Core::visit_mask(self, visit, prefix);
  }

  Projections projections_;
};

}  // namespace attn

#endif  // ATTN_LAYERS_CAUSAL_ATTENTION_HPP
