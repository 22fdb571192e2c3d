// attn/layers/self_attention_v1.hpp: SelfAttentionV1 (book section 3.4.2), trainable
// self-attention with raw (d_in, d_out) weight matrices: queries = x W_query, and so on.
#ifndef ATTN_LAYERS_SELF_ATTENTION_V1_HPP
#define ATTN_LAYERS_SELF_ATTENTION_V1_HPP

#include <string>

#include "attn/config.hpp"
#include "attn/detail/gemm.hpp"
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

  /// Backward of forward(x, cache): returns dL/dx (T, d_in) and accumulates (+=)
  /// dL/dW = x^T dL/d(x W) into each weight's gradient.
  /// @param grad_context (T, d_out), dL/dcontext.
  Tensor<Scalar, 2> backward(const Cache& cache, const detail::ConstView<Scalar, 2>& grad_context) {
    Tensor<Scalar, 2> grad_q(cache.queries.shape()), grad_k(grad_q.shape()), grad_v(grad_q.shape());
    scaled_dot_product_attention_backward<Scalar, 2>(
        cache.queries.view(), cache.keys.view(), cache.values.view(), cache.context.view(),
        grad_context, grad_q.view(), grad_k.view(), grad_v.view(), AttentionOptions<Scalar>{},
        cache.attention);
    const Index T = cache.x.size(0);
    auto grad_x = Tensor<Scalar, 2>::uninitialized(cache.x.shape());
    const Tensor<Scalar, 2>* grads[] = {&grad_q, &grad_k, &grad_v};
    const Tensor<Scalar, 2>* weights[] = {&W_query_, &W_key_, &W_value_};
    Tensor<Scalar, 2>* weight_grads[] = {&W_query_grad_, &W_key_grad_, &W_value_grad_};
    for (int i = 0; i < 3; ++i) {
      // queries = x W  ->  dW += x^T dqueries,  dx += dqueries W^T
      detail::gemm(true, false, d_in(), d_out(), T, Scalar(1), cache.x.data(), d_in(),
                   grads[i]->data(), d_out(), Scalar(1), weight_grads[i]->data(), d_out());
      detail::gemm(false, true, T, d_in(), d_out(), Scalar(1), grads[i]->data(), d_out(),
                   weights[i]->data(), d_out(), Scalar(i == 0 ? 0 : 1), grad_x.data(), d_in());
    }
    return grad_x;
  }

  /// Entries "W_query", "W_key", "W_value", each (d_in, d_out): nn.Parameter names.
  template <typename Visitor>
  void visit_state(Visitor&& visit, const std::string& prefix = "") {
    using Kind = typename StateEntry<Scalar>::Kind;
    visit(StateEntry<Scalar>{prefix + "W_query",
                             {d_in(), d_out()},
                             W_query_.data(),
                             Kind::parameter,
                             W_query_grad_.data()});
    visit(StateEntry<Scalar>{
        prefix + "W_key", {d_in(), d_out()}, W_key_.data(), Kind::parameter, W_key_grad_.data()});
    visit(StateEntry<Scalar>{prefix + "W_value",
                             {d_in(), d_out()},
                             W_value_.data(),
                             Kind::parameter,
                             W_value_grad_.data()});
  }

 private:
  static Tensor<Scalar, 2> init(Index d_in, Index d_out, Generator& generator) {
    detail::require_positive("SelfAttentionV1", "d_in", d_in);
    detail::require_positive("SelfAttentionV1", "d_out", d_out);
    Tensor<Scalar, 2> weight({d_in, d_out});
    for (Index i = 0; i < weight.numel(); ++i) weight.data()[i] = generator.uniform<Scalar>();
    return weight;
  }

  template <typename T>
  void run(const TensorView<T, 2>& x, Cache& cache, bool keep) const {
    detail::require_features("SelfAttentionV1", x.shape(), d_in(), "d_in");
    const auto X = as_matrix(x);
    cache.queries = Tensor<Scalar, 2>({x.size(0), d_out()});
    cache.keys = Tensor<Scalar, 2>(cache.queries.shape());
    cache.values = Tensor<Scalar, 2>(cache.queries.shape());
    cache.context = Tensor<Scalar, 2>(cache.queries.shape());
    as_matrix(cache.queries.view()).noalias() = X * as_matrix(W_query_.view());
    as_matrix(cache.keys.view()).noalias() = X * as_matrix(W_key_.view());
    as_matrix(cache.values.view()).noalias() = X * as_matrix(W_value_.view());
    scaled_dot_product_attention(cache.queries.view(), cache.keys.view(), cache.values.view(),
                                 cache.context.view(), AttentionOptions<Scalar>{}, {},
                                 keep ? &cache.attention : nullptr);
    if (keep) cache.x = Tensor<Scalar, 2>(TensorView<const Scalar, 2>(x));
  }

  Tensor<Scalar, 2> W_query_, W_key_, W_value_;
  Tensor<Scalar, 2> W_query_grad_{W_query_.shape()}, W_key_grad_{W_query_.shape()},
      W_value_grad_{W_query_.shape()};
  bool training_ = true;  // PyTorch modules start in training mode
};

}  // namespace attn

#endif  // ATTN_LAYERS_SELF_ATTENTION_V1_HPP
