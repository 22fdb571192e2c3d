// attn/layers/feed_forward.hpp: FeedForward, the book's position-wise feed-forward network
// (section 4.3): Linear(emb_dim, 4 emb_dim), GELU, Linear(4 emb_dim, emb_dim), applied to every
// token alone. The second half of each TransformerBlock.
#ifndef ATTN_LAYERS_FEED_FORWARD_HPP
#define ATTN_LAYERS_FEED_FORWARD_HPP

#include <string>
#include <utility>

#include "attn/config.hpp"
#include "attn/layers/detail/validate.hpp"
#include "attn/layers/gelu.hpp"
#include "attn/layers/linear.hpp"
#include "attn/random/generator.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn {

/// out = layers.2(GELU(layers.0(x))), the book's nn.Sequential(nn.Linear(emb_dim, 4 * emb_dim),
/// GELU(), nn.Linear(4 * emb_dim, emb_dim)), with its state_dict names: "layers.0.weight"
/// (4 emb_dim, emb_dim), "layers.0.bias", "layers.2.weight" (emb_dim, 4 emb_dim),
/// "layers.2.bias". Generator(s) gives the weights of torch.manual_seed(s); FeedForward(cfg):
/// layers.0 drawn first (weight, then bias), then layers.2. Same in training and eval mode.
template <typename ScalarType>
class FeedForward : public StateVisitable<FeedForward<ScalarType>> {
 public:
  using Scalar = ScalarType;

  /// @throws std::invalid_argument if emb_dim is not positive.
  explicit FeedForward(Index emb_dim, GeneratorRef generator = Generator())
      : layer0_(validated(emb_dim), 4 * emb_dim, true, generator),
        layer2_(4 * emb_dim, emb_dim, true, generator) {}

  Index emb_dim() const { return layer0_.in_features(); }
  /// The hidden width, 4 emb_dim.
  Index hidden_dim() const { return layer0_.out_features(); }
  /// layers.0, the expansion to 4 emb_dim.
  Linear<Scalar>& layer0() { return layer0_; }
  const Linear<Scalar>& layer0() const { return layer0_; }
  /// layers.2, the projection back to emb_dim.
  Linear<Scalar>& layer2() { return layer2_; }
  const Linear<Scalar>& layer2() const { return layer2_; }

  /// Stores both layers' weights as `format` (Linear::set_weight_format).
  void set_weight_format(WeightFormat format) {
    layer0_.set_weight_format(format);
    layer2_.set_weight_format(format);
  }

  /// The layer has no mode; these exist so that code switching every layer need not know.
  void train(bool /*training*/ = true) {}
  void eval() {}

  /// What forward keeps for backward: the input and the (B, T, 4 emb_dim) pre-activation
  /// layers.0(x). The activation GELU(hidden) is recomputed in backward rather than kept, which
  /// halves what a training forward holds here (the wide tensors dominate a GPT's activations).
  struct Cache {
    Tensor<Scalar, 3> x, hidden;
  };

  /// @param x (B, T, emb_dim), any strides Linear reads. @return (B, T, emb_dim).
  /// @throws ShapeError if the last dim is not emb_dim.
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x) const {
    Tensor<Scalar, 3> hidden = layer0_.forward(x);
    GELU<Scalar>::apply(hidden.data(), hidden.numel(), hidden.data());
    return layer2_.forward(hidden.view());
  }

  /// Forward that fills `cache` for backward. Same result as forward(x).
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x, Cache& cache) const {
    Tensor<Scalar, 3> hidden = layer0_.forward(x);
    auto activated = Tensor<Scalar, 3>::uninitialized(hidden.shape());
    GELU<Scalar>::apply(hidden.data(), hidden.numel(), activated.data());
    Tensor<Scalar, 3> out = layer2_.forward(activated.view());
    cache.x = Tensor<Scalar, 3>(x);
    cache.hidden = std::move(hidden);
    return out;
  }

  /// Backward of forward(x, cache): returns dL/dx (B, T, emb_dim) and accumulates (+=) the
  /// gradients of layers.0 and layers.2.
  /// @param grad_out (B, T, emb_dim), dL/dout.
  /// @throws ShapeError if grad_out does not match the forward's output.
  Tensor<Scalar, 3> backward(const Cache& cache, const TensorView<const Scalar, 3>& grad_out) {
    detail::require_filled_cache("FeedForward", "forward(x, cache)",
                                 cache.hidden.shape() != Shape<3>{});
    // out = layers.2(a), a = GELU(hidden)  ->  da, and layers.2's gradients
    auto activated = Tensor<Scalar, 3>::uninitialized(cache.hidden.shape());
    GELU<Scalar>::apply(cache.hidden.data(), cache.hidden.numel(), activated.data());
    Tensor<Scalar, 3> grad = layer2_.backward(activated.view(), grad_out);
    // a = GELU(hidden)  ->  d hidden, in place
    GELU<Scalar>::apply_backward(cache.hidden.data(), grad.data(), grad.numel(), grad.data());
    // hidden = layers.0(x)  ->  dx, and layers.0's gradients
    return layer0_.backward(cache.x.view(), grad.view());
  }

 private:
  friend class StateVisitable<FeedForward<ScalarType>>;
  // Entries "layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias" (the
  // Sequential's indices; the GELU at index 1 has no parameters), with gradients.
  template <typename Self, typename Visitor>
  static void visit_entries(Self& self, Visitor& visit, const std::string& prefix) {
    self.layer0_.visit_state(visit, prefix + "layers.0.");
    self.layer2_.visit_state(visit, prefix + "layers.2.");
  }

  static Index validated(Index emb_dim) {
    detail::require_positive("FeedForward", "emb_dim", emb_dim);
    return emb_dim;
  }

  Linear<Scalar> layer0_;
  Linear<Scalar> layer2_;
};

}  // namespace attn

#endif  // ATTN_LAYERS_FEED_FORWARD_HPP
