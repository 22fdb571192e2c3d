// attn/detail/stacked_qkv_attention.hpp: the engine shared by MultiHeadAttention and
// MultiHeadAttentionCombinedQKV, which compute the same function and differ only in how their
// parameters are named and initialised. Queries, keys and values come from one (3 * d_out, d_in)
// projection, so x is read once in one GEMM; the heads are strided views into its output, the
// kernel writes each head's context into its columns of one (B, T, d_out) buffer, and out_proj
// reads that buffer. Private: users never include this.
#ifndef ATTN_DETAIL_STACKED_QKV_ATTENTION_HPP
#define ATTN_DETAIL_STACKED_QKV_ATTENTION_HPP

#include "attn/config.hpp"
#include "attn/detail/causal_core.hpp"
#include "attn/layers/linear.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/view_ops.hpp"

namespace attn::detail {

template <typename Scalar>
class StackedQkvAttention {
 public:
  /// Parameters start at zero; the owning layer initialises them in its PyTorch order.
  /// @throws std::invalid_argument as CausalCore.
  StackedQkvAttention(const char* who, Index d_in, Index d_out, Index context_length,
                      Scalar dropout, Index num_heads, bool qkv_bias)
      : core_(who, d_in, d_out, context_length, dropout, num_heads),
        qkv_(Linear<Scalar>::zeros(d_in, 3 * d_out, qkv_bias)),
        out_(Linear<Scalar>::zeros(d_out, d_out, true)) {}

  CausalCore<Scalar>& core() { return core_; }
  const CausalCore<Scalar>& core() const { return core_; }
  Linear<Scalar>& qkv() { return qkv_; }
  Linear<Scalar>& out() { return out_; }

  /// Rows [part * d_out, (part + 1) * d_out) of the stacked weight: part 0 queries, 1 keys,
  /// 2 values, each (d_out, d_in) as nn.Linear stores it.
  TensorView<Scalar, 2> weight_part(Index part) {
    return slice(qkv_.weight().view(), 0, part * core_.d_out(), (part + 1) * core_.d_out());
  }
  /// The matching bias entries; empty without qkv_bias.
  TensorView<Scalar, 1> bias_part(Index part) {
    if (!qkv_.has_bias()) return {};
    return slice(qkv_.bias().view(), 0, part * core_.d_out(), (part + 1) * core_.d_out());
  }

  /// What a training forward keeps for backward: the input, the (B, T, 3 d_out) projection,
  /// the (B, T, d_out) context before out_proj, and the kernel's cache.
  struct Cache {
    Tensor<Scalar, 3> x, projected, context;
    AttentionCache<Scalar> attention;
  };

  /// x (B, T, d_in), T <= context_length -> (B, T, d_out); with a cache, keeps what backward
  /// needs.
  template <typename T>
  Tensor<Scalar, 3> forward(const TensorView<T, 3>& x, Cache* cache = nullptr) const {
    core_.check_input(x.shape());
    const Index C = core_.d_out();
    Tensor<Scalar, 3> projected = qkv_.forward(x);  // (B, T, 3 * d_out), one GEMM
    auto context = Tensor<Scalar, 3>::uninitialized({x.size(0), x.size(1), C});
    core_.attend(slice(projected.view(), 2, 0, C), slice(projected.view(), 2, C, 2 * C),
                 slice(projected.view(), 2, 2 * C, 3 * C), context.view(),
                 cache != nullptr ? &cache->attention : nullptr);
    Tensor<Scalar, 3> out = out_.forward(context.view());
    if (cache != nullptr) {
      cache->x = Tensor<Scalar, 3>(TensorView<const Scalar, 3>(x));
      cache->projected = std::move(projected);
      cache->context = std::move(context);
    }
    return out;
  }

  /// dL/dout (B, T, d_out) -> dL/dx (B, T, d_in); accumulates the parameter gradients.
  Tensor<Scalar, 3> backward(const Cache& cache, const TensorView<const Scalar, 3>& grad_out) {
    const Index C = core_.d_out();
    // out = out_proj(context)  ->  d context, and out_proj's gradients
    const Tensor<Scalar, 3> grad_context = out_.backward(cache.context.view(), grad_out);
    // context = attention(q, k, v)  ->  dq, dk, dv, side by side like the projection
    auto grad_projected = Tensor<Scalar, 3>::uninitialized(cache.projected.shape());
    const auto p = cache.projected.view();
    const auto g = grad_projected.view();
    core_.attend_backward(slice(p, 2, 0, C), slice(p, 2, C, 2 * C), slice(p, 2, 2 * C, 3 * C),
                          cache.context.view(), grad_context.view(), slice(g, 2, 0, C),
                          slice(g, 2, C, 2 * C), slice(g, 2, 2 * C, 3 * C), cache.attention);
    // projected = x W_qkv^T + b  ->  dx, and the projection's gradients
    return qkv_.backward(cache.x.view(), grad_projected.view());
  }

 private:
  CausalCore<Scalar> core_;
  Linear<Scalar> qkv_;
  Linear<Scalar> out_;
};

}  // namespace attn::detail

#endif  // ATTN_DETAIL_STACKED_QKV_ATTENTION_HPP
