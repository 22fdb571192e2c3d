// attn/layers/multi_head_attention_wrapper.hpp: MultiHeadAttentionWrapper (book section
// 3.6.1): num_heads independent CausalAttention heads, outputs concatenated; optionally followed
// by the output projection of the chapter's multihead-attention.ipynb notebook.
#ifndef ATTN_LAYERS_MULTI_HEAD_ATTENTION_WRAPPER_HPP
#define ATTN_LAYERS_MULTI_HEAD_ATTENTION_WRAPPER_HPP

#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "attn/config.hpp"
#include "attn/layers/causal_attention.hpp"
#include "attn/layers/context_with_weights.hpp"
#include "attn/layers/detail/validate.hpp"
#include "attn/layers/linear.hpp"
#include "attn/random/generator.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/view_ops.hpp"

namespace attn {

/// Stacks num_heads CausalAttention heads of width d_out each; the output is num_heads * d_out
/// wide, head h in columns [h * d_out, (h + 1) * d_out). Heads are initialised in order from
/// one generator, as PyTorch's ModuleList comprehension draws them.
///
/// With Options::out_proj the concatenated heads go through `out_proj`, an nn.Linear(num_heads *
/// d_out, num_heads * d_out) with bias, as in the chapter's multihead-attention.ipynb (the main
/// chapter's wrapper has none); it is initialised after the heads, as the notebook's module
/// constructs it, and named "out_proj.weight", "out_proj.bias" in the state_dict.
template <typename ScalarType>
class MultiHeadAttentionWrapper : public StateVisitable<MultiHeadAttentionWrapper<ScalarType>> {
 public:
  using Scalar = ScalarType;

  /// The wrapper's switches: `qkv_bias` for every head's projections, `out_proj` for the
  /// notebook's output projection after the concatenation.
  struct Options {
    bool qkv_bias = false;
    bool out_proj = false;
  };

  /// The main chapter's wrapper: heads only, no output projection.
  /// @throws std::invalid_argument for a non-positive size or num_heads, or a bad dropout.
  MultiHeadAttentionWrapper(Index d_in, Index d_out, Index context_length, Scalar dropout,
                            Index num_heads, bool qkv_bias = false,
                            GeneratorRef generator = Generator())
      : MultiHeadAttentionWrapper(d_in, d_out, context_length, dropout, num_heads,
                                  Options{qkv_bias, false}, generator) {}

  /// The wrapper with Options: pass a named Options (a braced `{}` would be ambiguous with the
  /// qkv_bias constructor), e.g. `Options options; options.out_proj = true;`.
  /// @throws std::invalid_argument for a non-positive size or num_heads, or a bad dropout.
  MultiHeadAttentionWrapper(Index d_in, Index d_out, Index context_length, Scalar dropout,
                            Index num_heads, const Options& options,
                            GeneratorRef generator = Generator()) {
    detail::require_positive("MultiHeadAttentionWrapper", "num_heads", num_heads);
    heads_.reserve(static_cast<std::size_t>(num_heads));
    for (Index h = 0; h < num_heads; ++h) {
      heads_.emplace_back(d_in, d_out, context_length, dropout, options.qkv_bias, generator);
    }
    if (options.out_proj) {
      const Index width = num_heads * heads_.front().d_out();
      out_proj_.emplace(width, width, /*bias=*/true, generator);
    }
  }

  Index num_heads() const { return static_cast<Index>(heads_.size()); }
  Index d_in() const { return heads_.front().d_in(); }
  /// The width of one head; the output is num_heads() * d_out() wide.
  Index d_out() const { return heads_.front().d_out(); }
  CausalAttention<Scalar>& head(Index h) { return heads_.at(static_cast<std::size_t>(h)); }
  bool has_out_proj() const { return out_proj_.has_value(); }
  /// The output projection. @throws std::invalid_argument if the wrapper has none.
  Linear<Scalar>& out_proj() { return checked_out_proj(*this); }
  const Linear<Scalar>& out_proj() const { return checked_out_proj(*this); }

  void train(bool training = true) {
    for (auto& head : heads_) head.train(training);
  }
  void eval() { train(false); }
  bool is_training() const { return heads_.front().is_training(); }
  void set_attention_path(AttentionPath path) {
    for (auto& head : heads_) head.set_attention_path(path);
  }

  /// What a training forward keeps for backward: each head's cache and, with out_proj, the
  /// concatenated heads (out_proj's input).
  struct Cache {
    std::vector<typename CausalAttention<Scalar>::Cache> heads;
    Tensor<Scalar, 3> concatenated;
  };

  /// @param x (B, T, d_in), T <= context_length. @return (B, T, num_heads * d_out): the heads
  /// side by side, or out_proj of them.
  /// @throws ShapeError if x does not fit.
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x) const { return run(x, nullptr); }

  /// Forward that fills `cache` for backward. Same result as forward(x).
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x, Cache& cache) const {
    return run(x, &cache);
  }

  ATTN_LAYER_INPUT_CHECKS("MultiHeadAttentionWrapper", 3, "(batch, tokens, d_in)")

  /// Forward that also returns the attention weights, (B, num_heads, T, T): head h's are its
  /// CausalAttention's `attn_weights`. The context is forward(x)'s (after out_proj, if any).
  ContextWithWeights<Scalar, 3, 4> forward_with_weights(
      const TensorView<const Scalar, 3>& x) const {
    const Index T = x.size(1);
    // Checked before the (B, H, T, T) weights are allocated.
    detail::require_features("MultiHeadAttentionWrapper", x.shape(), d_in(), "d_in");
    detail::require_context("MultiHeadAttentionWrapper", T, heads_.front().context_length());
    ContextWithWeights<Scalar, 3, 4> result{{}, Tensor<Scalar, 4>({x.size(0), num_heads(), T, T})};
    result.context = run(x, nullptr, result.weights.view());
    return result;
  }

  /// Backward of forward(x, cache): returns dL/dx (B, T, d_in), the sum over heads, and
  /// accumulates (+=) every head's gradients and out_proj's.
  /// @param grad_out (B, T, num_heads * d_out), dL/dout.
  Tensor<Scalar, 3> backward(const Cache& cache, const TensorView<const Scalar, 3>& grad_out) {
    if (out_proj_) {
      // out = concat W^T + b: out_proj's backward gives dL/dconcat and accumulates dW, db.
      const Tensor<Scalar, 3> grad_concatenated =
          out_proj_->backward(cache.concatenated.view(), grad_out);
      return backward_heads(cache, grad_concatenated.view());
    }
    return backward_heads(cache, grad_out);
  }

 private:
  friend class StateVisitable<MultiHeadAttentionWrapper<ScalarType>>;
  // Entries "heads.<h>.W_query.weight", ..., "heads.<h>.mask" for every head, then with out_proj
  // "out_proj.weight" and "out_proj.bias".
  template <typename Self, typename Visitor>
  static void visit_entries(Self& self, Visitor& visit, const std::string& prefix) {
    for (std::size_t h = 0; h < self.heads_.size(); ++h) {
      self.heads_[h].visit_state(visit, prefix + "heads." + std::to_string(h) + ".");
    }
    if (self.out_proj_) self.out_proj_->visit_state(visit, prefix + "out_proj.");
  }

  template <typename Self>
  static auto& checked_out_proj(Self& self) {
    if (!self.out_proj_) {
      throw std::invalid_argument(
          "MultiHeadAttentionWrapper::out_proj: this wrapper was built without out_proj "
          "(Options::out_proj)");
    }
    return *self.out_proj_;
  }

  // dL/dx from dL/d(concatenated heads): each head's backward on its column block, summed.
  Tensor<Scalar, 3> backward_heads(const Cache& cache, const TensorView<const Scalar, 3>& grad) {
    const Index width = d_out();
    Tensor<Scalar, 3> grad_x;
    for (Index h = 0; h < num_heads(); ++h) {
      const auto index = static_cast<std::size_t>(h);
      auto grad_head =
          heads_[index].backward(cache.heads.at(index), slice(grad, 2, h * width, (h + 1) * width));
      if (h == 0) {
        grad_x = std::move(grad_head);
      } else {
        grad_x += grad_head;
      }
    }
    return grad_x;
  }

  Tensor<Scalar, 3> run(const TensorView<const Scalar, 3>& x, Cache* cache,
                        const TensorView<Scalar, 4>& weights = {}) const {
    // Every head reads x by rows: an x they cannot read so is copied once, here.
    if (!rows_mappable(x)) return run(Tensor<Scalar, 3>(x).view(), cache, weights);
    const Index width = d_out();
    Tensor<Scalar, 3> context({x.size(0), x.size(1), num_heads() * width});
    if (cache != nullptr) cache->heads.resize(heads_.size());
    for (Index h = 0; h < num_heads(); ++h) {
      const auto index = static_cast<std::size_t>(h);
      // torch.cat(..., dim=-1) without the copy: each head writes its own column block.
      heads_[index].forward_into(
          x, slice(context.view(), 2, h * width, (h + 1) * width),
          cache != nullptr ? &cache->heads[index] : nullptr,
          weights.data() != nullptr ? select(weights, 1, h) : TensorView<Scalar, 3>());
    }
    if (!out_proj_) return context;
    Tensor<Scalar, 3> out = out_proj_->forward(context.view());
    if (cache != nullptr) cache->concatenated = std::move(context);
    return out;
  }

  std::vector<CausalAttention<Scalar>> heads_;
  std::optional<Linear<Scalar>> out_proj_;
};

}  // namespace attn

#endif  // ATTN_LAYERS_MULTI_HEAD_ATTENTION_WRAPPER_HPP
