// attn/layers/detail/separate_projections.hpp: the three separate query/key/value projections
// of SelfAttentionV1, SelfAttentionV2 and CausalAttention, and what they do around the shared
// kernel: project x three times, let the layer's attention turn the projections into context,
// keep what backward needs, and in backward sum the three projections' input gradients.
// `Projection` is Linear (V2, CausalAttention) or MatrixProjection (V1). Private.
#ifndef ATTN_LAYERS_DETAIL_SEPARATE_PROJECTIONS_HPP
#define ATTN_LAYERS_DETAIL_SEPARATE_PROJECTIONS_HPP

#include <string>

#include "attn/config.hpp"
#include "attn/kernels/scaled_dot_product_attention.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn::detail {

template <typename Projection, int Rank>
class SeparateProjections {
 public:
  using Scalar = typename Projection::Scalar;

  /// What a training forward keeps for backward: the input, the projections, the context
  /// and the kernel's cache.
  struct Cache {
    Tensor<Scalar, Rank> x, queries, keys, values, context;
    AttentionCache<Scalar> attention;
  };

  /// `make()` builds one projection; it is called for W_query, W_key, W_value in that order,
  /// the order in which PyTorch draws their initial weights. (Taken by const reference, so
  /// copying a SeparateProjections still picks the copy constructor.)
  template <typename Make>
  explicit SeparateProjections(const Make& make)
      : W_query_(make()), W_key_(make()), W_value_(make()) {}

  Projection& query() { return W_query_; }
  Projection& key() { return W_key_; }
  Projection& value() { return W_value_; }
  const Projection& query() const { return W_query_; }

  /// queries, keys, values = the three projections of x; then
  /// `attention.attend(queries, keys, values, context, attention_cache, weights...)` writes
  /// context (and the attention weights, when the layer passes a view for them).
  /// With a cache, keeps what backward needs.
  template <typename Attention, typename... Weights>
  void forward_into(const Attention& attention, const TensorView<const Scalar, Rank>& x,
                    const TensorView<Scalar, Rank>& context, Cache* cache,
                    const Weights&... weights) const {
    // Three projections read x by rows: an x they cannot read so is copied once, here.
    if (!rows_mappable(x)) {
      return forward_into(attention, Tensor<Scalar, Rank>(x).view(), context, cache, weights...);
    }
    Tensor<Scalar, Rank> queries = W_query_.forward(x);
    Tensor<Scalar, Rank> keys = W_key_.forward(x);
    Tensor<Scalar, Rank> values = W_value_.forward(x);
    attention.attend(queries.view(), keys.view(), values.view(), context,
                     cache != nullptr ? &cache->attention : nullptr, weights...);
    if (cache != nullptr) {
      cache->x = Tensor<Scalar, Rank>(x);
      cache->queries = std::move(queries);
      cache->keys = std::move(keys);
      cache->values = std::move(values);
      cache->context = Tensor<Scalar, Rank>(TensorView<const Scalar, Rank>(context));
    }
  }

  /// Backward of forward_into: returns dL/dx and accumulates (+=) the projections' gradients.
  template <typename Attention>
  Tensor<Scalar, Rank> backward(const Attention& attention, const Cache& cache,
                                const TensorView<const Scalar, Rank>& grad_context) {
    Tensor<Scalar, Rank> grad_q(cache.queries.shape()), grad_k(cache.keys.shape()),
        grad_v(cache.values.shape());
    const Contiguous<Scalar, Rank> grad_c(grad_context);  // copied only when it is strided
    attention.attend_backward(cache.queries.view(), cache.keys.view(), cache.values.view(),
                              cache.context.view(), grad_c.view(), grad_q.view(), grad_k.view(),
                              grad_v.view(), cache.attention);
    // x feeds three projections: its gradient is the sum of theirs.
    Tensor<Scalar, Rank> grad_x = W_query_.backward(cache.x.view(), grad_q.view());
    grad_x += W_key_.backward(cache.x.view(), grad_k.view());
    grad_x += W_value_.backward(cache.x.view(), grad_v.view());
    return grad_x;
  }

  /// Entries of the three projections under "<prefix>W_query<joint>" and so on: joint "." for a
  /// Linear ("W_query.weight"), "" for a matrix that is itself the parameter ("W_query").
  template <typename Self, typename Visitor>
  static void visit_state(Self& self, Visitor& visit, const std::string& prefix,
                          const char* joint) {
    self.W_query_.visit_state(visit, prefix + "W_query" + joint);
    self.W_key_.visit_state(visit, prefix + "W_key" + joint);
    self.W_value_.visit_state(visit, prefix + "W_value" + joint);
  }

 private:
  Projection W_query_, W_key_, W_value_;
};

/// The attention of SelfAttentionV1 and V2: no mask, no dropout, default scale.
template <typename Scalar, int Rank>
struct UnmaskedAttention {
  void attend(const TensorView<const Scalar, Rank>& queries,
              const TensorView<const Scalar, Rank>& keys,
              const TensorView<const Scalar, Rank>& values, const TensorView<Scalar, Rank>& context,
              AttentionCache<Scalar>* cache, const TensorView<Scalar, Rank>& weights = {}) const {
    scaled_dot_product_attention<Scalar, Rank>(queries, keys, values, context, {}, weights, cache);
  }
  void attend_backward(
      const TensorView<const Scalar, Rank>& queries, const TensorView<const Scalar, Rank>& keys,
      const TensorView<const Scalar, Rank>& values, const TensorView<const Scalar, Rank>& context,
      const TensorView<const Scalar, Rank>& grad_context, const TensorView<Scalar, Rank>& grad_q,
      const TensorView<Scalar, Rank>& grad_k, const TensorView<Scalar, Rank>& grad_v,
      const AttentionCache<Scalar>& cache) const {
    scaled_dot_product_attention_backward<Scalar, Rank>(
        queries, keys, values, context, grad_context, grad_q, grad_k, grad_v, Mask::none(), cache);
  }
};

}  // namespace attn::detail

#endif  // ATTN_LAYERS_DETAIL_SEPARATE_PROJECTIONS_HPP
