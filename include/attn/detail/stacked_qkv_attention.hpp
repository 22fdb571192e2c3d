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

  /// x (B, T, d_in), T <= context_length -> (B, T, d_out).
  template <typename T>
  Tensor<Scalar, 3> forward(const TensorView<T, 3>& x) const {
    core_.check_input(x.shape());
    const Index C = core_.d_out();
    const Tensor<Scalar, 3> projected = qkv_.forward(x);  // (B, T, 3 * d_out), one GEMM
    auto context = Tensor<Scalar, 3>::uninitialized({x.size(0), x.size(1), C});
    core_.attend(slice(projected.view(), 2, 0, C), slice(projected.view(), 2, C, 2 * C),
                 slice(projected.view(), 2, 2 * C, 3 * C), context.view());
    return out_.forward(context.view());
  }

 private:
  CausalCore<Scalar> core_;
  Linear<Scalar> qkv_;
  Linear<Scalar> out_;
};

}  // namespace attn::detail

#endif  // ATTN_DETAIL_STACKED_QKV_ATTENTION_HPP
