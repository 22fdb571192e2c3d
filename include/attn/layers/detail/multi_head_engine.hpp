// attn/layers/detail/multi_head_engine.hpp: everything MultiHeadAttention and
// MultiHeadAttentionCombinedQKV share: they compute the same function and differ only in how
// their parameters are named and initialised, so each is a thin front end deriving from this.
// Queries, keys and values come from one (3 * d_out, d_in) projection, so x is read once in one
// GEMM; the heads are strided views into its output, the kernel writes each head's context into
// its columns of one (B, T, d_out) buffer, and out_proj reads that buffer. Private.
#ifndef ATTN_LAYERS_DETAIL_MULTI_HEAD_ENGINE_HPP
#define ATTN_LAYERS_DETAIL_MULTI_HEAD_ENGINE_HPP

#include <type_traits>

#include "attn/config.hpp"
#include "attn/layers/context_with_weights.hpp"
#include "attn/layers/detail/causal_core.hpp"
#include "attn/layers/detail/validate.hpp"
#include "attn/layers/linear.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/view_ops.hpp"

namespace attn::detail {

template <typename ScalarType>
class MultiHeadEngine : public CausalCore<ScalarType> {
  using Core = CausalCore<ScalarType>;

 public:
  using Scalar = ScalarType;

  Index num_heads() const { return this->heads(); }
  Index head_dim() const { return this->d_out() / this->heads(); }

  /// What a training forward keeps for backward: the input, the (B, T, 3 d_out) projection,
  /// the (B, T, d_out) context before the output projection, and the kernel's cache (log-sum-exp
  /// per row, or the dropout generator's state).
  struct Cache {
    Tensor<Scalar, 3> x, projected, context;
    AttentionCache<Scalar> attention;
  };

  /// @param x (B, T, d_in), T <= context_length. @return (B, T, d_out).
  /// @throws ShapeError if x does not fit.
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x) const { return run(x, nullptr); }

  /// Forward that fills `cache` for backward. Same result as forward(x).
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x, Cache& cache) const {
    return run(x, &cache);
  }

  ATTN_LAYER_INPUT_CHECKS("MultiHeadAttention(CombinedQKV)", 3, "(batch, tokens, d_in)")

  /// Forward that also returns the (B, H, T, T) attention weights of every head, the book's
  /// `attn_weights`, with the projections' biases included.
  ContextWithWeights<Scalar, 3, 4> forward_with_weights(
      const TensorView<const Scalar, 3>& x) const {
    this->check_input(x.shape());  // before the (B, H, T, T) weights are allocated
    const Index T = x.size(1);
    ContextWithWeights<Scalar, 3, 4> result{{}, Tensor<Scalar, 4>({x.size(0), num_heads(), T, T})};
    result.context = run(x, nullptr, result.weights.view());
    return result;
  }

  /// Backward of forward(x, cache): returns dL/dx (B, T, d_in) and accumulates (+=) the
  /// gradients of every parameter (see the layer's visit_state).
  /// @param grad_out (B, T, d_out), dL/dout.
  Tensor<Scalar, 3> backward(const Cache& cache, const TensorView<const Scalar, 3>& grad_out) {
    const Index C = this->d_out();
    // out = out_proj(context)  ->  d context, and out_proj's gradients
    const Tensor<Scalar, 3> grad_context = out_.backward(cache.context.view(), grad_out);
    // context = attention(q, k, v)  ->  dq, dk, dv, side by side like the projection
    auto grad_projected = Tensor<Scalar, 3>::uninitialized(cache.projected.shape());
    const auto p = cache.projected.view();
    const auto g = grad_projected.view();
    this->attend_backward(slice(p, 2, 0, C), slice(p, 2, C, 2 * C), slice(p, 2, 2 * C, 3 * C),
                          cache.context.view(), grad_context.view(), slice(g, 2, 0, C),
                          slice(g, 2, C, 2 * C), slice(g, 2, 2 * C, 3 * C), cache.attention);
    // projected = x W_qkv^T + b  ->  dx, and the projection's gradients
    return qkv_.backward(cache.x.view(), grad_projected.view());
  }

 protected:
  /// Parameters start at zero; the front end initialises them in its PyTorch order.
  /// @throws std::invalid_argument as CausalCore.
  MultiHeadEngine(const char* who, Index d_in, Index d_out, Index context_length, Scalar dropout,
                  Index num_heads, bool qkv_bias)
      : Core(who, d_in, d_out, context_length, dropout, num_heads),
        qkv_(Linear<Scalar>::zeros(d_in, 3 * d_out, qkv_bias)),
        out_(Linear<Scalar>::zeros(d_out, d_out, true)) {}

  Linear<Scalar>& qkv() { return qkv_; }
  Linear<Scalar>& out() { return out_; }

  /// Rows [part * d_out, (part + 1) * d_out) of the stacked weight: part 0 queries, 1 keys,
  /// 2 values, each (d_out, d_in) as nn.Linear stores it.
  TensorView<Scalar, 2> weight_part(Index part) {
    return slice(qkv_.weight().view(), 0, part * this->d_out(), (part + 1) * this->d_out());
  }
  /// The matching bias entries; empty without qkv_bias.
  TensorView<Scalar, 1> bias_part(Index part) {
    if (!qkv_.has_bias()) return {};
    return slice(qkv_.bias().view(), 0, part * this->d_out(), (part + 1) * this->d_out());
  }

  /// The stacked projection's entries as three nn.Linear's (MultiHeadAttention's names):
  /// "<names[p]>weight" (d_out, d_in) and, with qkv_bias, "<names[p]>bias" (d_out).
  template <typename Self, typename Visitor>
  static void visit_split_qkv(Self& self, Visitor& visit, const std::string& prefix,
                              const char* const (&names)[3]) {
    const Index C = self.d_out(), weights = C * self.d_in();
    auto& qkv = self.qkv_;
    for (Index part = 0; part < 3; ++part) {
      visit(parameter_entry(prefix + names[part] + "weight", {C, self.d_in()},
                            qkv.weight().data() + part * weights,
                            qkv.weight_grad().data() + part * weights));
      if (qkv.has_bias()) {
        visit(parameter_entry(prefix + names[part] + "bias", {C}, qkv.bias().data() + part * C,
                              qkv.bias_grad().data() + part * C));
      }
    }
  }

  /// The stacked projection as one nn.Linear (MultiHeadAttentionCombinedQKV's `qkv`).
  template <typename Self, typename Visitor>
  static void visit_stacked_qkv(Self& self, Visitor& visit, const std::string& prefix) {
    self.qkv_.visit_state(visit, prefix);
  }

  /// The output projection under `out_name`, then the book's mask buffer.
  template <typename Self, typename Visitor>
  static void visit_out_and_mask(Self& self, Visitor& visit, const std::string& prefix,
                                 const char* out_name) {
    self.out_.visit_state(visit, prefix + out_name);
    Core::visit_mask(self, visit, prefix);
  }

 private:
  Tensor<Scalar, 3> run(const TensorView<const Scalar, 3>& x, Cache* cache,
                        const TensorView<Scalar, 4>& weights = {}) const {
    this->check_input(x.shape());
    const Index C = this->d_out();
    Tensor<Scalar, 3> projected = qkv_.forward(x);  // (B, T, 3 * d_out), one GEMM
    auto context = Tensor<Scalar, 3>::uninitialized({x.size(0), x.size(1), C});
    this->attend(slice(projected.view(), 2, 0, C), slice(projected.view(), 2, C, 2 * C),
                 slice(projected.view(), 2, 2 * C, 3 * C), context.view(),
                 cache != nullptr ? &cache->attention : nullptr, weights);
    Tensor<Scalar, 3> out = out_.forward(context.view());
    if (cache != nullptr) {
      cache->x = Tensor<Scalar, 3>(x);
      cache->projected = std::move(projected);
      cache->context = std::move(context);
    }
    return out;
  }

  Linear<Scalar> qkv_;
  Linear<Scalar> out_;
};

}  // namespace attn::detail

#endif  // ATTN_LAYERS_DETAIL_MULTI_HEAD_ENGINE_HPP
