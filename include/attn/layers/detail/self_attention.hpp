// attn/layers/detail/self_attention.hpp: everything SelfAttentionV1 and SelfAttentionV2 share
// (book section 3.4.2): unbatched (T, d_in) input, three separate projections, the shared kernel
// with no mask. They differ only in the projection (a raw matrix or nn.Linear), how it is
// initialised and named, so each is a thin front end deriving from this. Private.
#ifndef ATTN_LAYERS_DETAIL_SELF_ATTENTION_HPP
#define ATTN_LAYERS_DETAIL_SELF_ATTENTION_HPP

#include <string>
#include <type_traits>

#include "attn/config.hpp"
#include "attn/layers/context_with_weights.hpp"
#include "attn/layers/detail/separate_projections.hpp"
#include "attn/layers/detail/validate.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn::detail {

template <typename Projection>
class SelfAttention : public StateVisitable<SelfAttention<Projection>> {
  using Projections = SeparateProjections<Projection, 2>;

 public:
  using Scalar = typename Projection::Scalar;
  using Cache = typename Projections::Cache;

  Index d_in() const { return projections_.query().in_features(); }
  Index d_out() const { return projections_.query().out_features(); }

  /// This layer behaves the same in training and eval mode; these exist so that code switching
  /// every layer of a model need not know which ones have a mode.
  void train(bool /*training*/ = true) {}
  void eval() {}

  /// @param x (T, d_in) token embeddings.
  /// @return  (T, d_out) context vectors.
  /// @throws ShapeError if the last dim of x is not d_in.
  Tensor<Scalar, 2> forward(const TensorView<const Scalar, 2>& x) const { return run(x, nullptr); }

  /// Forward that fills `cache` for backward. Same result as forward(x).
  Tensor<Scalar, 2> forward(const TensorView<const Scalar, 2>& x, Cache& cache) const {
    return run(x, &cache);
  }

  ATTN_LAYER_INPUT_CHECKS("SelfAttentionV1/V2", 2, "(tokens, d_in); CausalAttention takes batches")

  /// Forward that also returns the (T, T) attention weights, the book's `attn_weights`.
  ContextWithWeights<Scalar, 2, 2> forward_with_weights(
      const TensorView<const Scalar, 2>& x) const {
    require_features(who_, x.shape(), d_in(), "d_in");  // before the weights are allocated
    ContextWithWeights<Scalar, 2, 2> result{{}, Tensor<Scalar, 2>({x.size(0), x.size(0)})};
    result.context = run(x, nullptr, result.weights.view());
    return result;
  }

  /// Backward of forward(x, cache): returns dL/dx (T, d_in) and accumulates (+=) the three
  /// projections' gradients.
  /// @param grad_context (T, d_out), dL/dcontext.
  Tensor<Scalar, 2> backward(const Cache& cache, const TensorView<const Scalar, 2>& grad_context) {
    return projections_.backward(UnmaskedAttention<Scalar, 2>{}, cache, grad_context);
  }

 protected:
  /// `make()` builds one projection, called for W_query, W_key, W_value in that order; `who`
  /// names the layer in error messages, `joint` joins a projection's name to its entries'.
  template <typename Make>
  SelfAttention(const char* who, const char* joint, const Make& make)
      : who_(who), joint_(joint), projections_(make) {}

  Projections& projections() { return projections_; }

 private:
  friend class StateVisitable<SelfAttention<Projection>>;
  // Entries of W_query, W_key and W_value (see the layer for their names and shapes).
  template <typename Self, typename Visitor>
  static void visit_entries(Self& self, Visitor& visit, const std::string& prefix) {
    Projections::visit_state(self.projections_, visit, prefix, self.joint_);
  }

  Tensor<Scalar, 2> run(const TensorView<const Scalar, 2>& x, Cache* cache,
                        const TensorView<Scalar, 2>& weights = {}) const {
    require_features(who_, x.shape(), d_in(), "d_in");
    Tensor<Scalar, 2> context({x.size(0), d_out()});
    projections_.forward_into(UnmaskedAttention<Scalar, 2>{}, x, context.view(), cache, weights);
    return context;
  }

  const char* who_;
  const char* joint_;
  Projections projections_;
};

}  // namespace attn::detail

#endif  // ATTN_LAYERS_DETAIL_SELF_ATTENTION_HPP
