// attn/layers/transformer_block.hpp: TransformerBlock, the book's GPT block (section 4.5):
// pre-LayerNorm multi-head attention and feed-forward network, each inside a shortcut (residual)
// connection with dropout on its branch. GPTModel (models/gpt_model.hpp) stacks n_layers of them.
#ifndef ATTN_LAYERS_TRANSFORMER_BLOCK_HPP
#define ATTN_LAYERS_TRANSFORMER_BLOCK_HPP

#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

#include "attn/config.hpp"
#include "attn/kernels/dropout.hpp"
#include "attn/layers/detail/validate.hpp"
#include "attn/layers/feed_forward.hpp"
#include "attn/layers/kv_cache.hpp"
#include "attn/layers/layer_mask.hpp"
#include "attn/layers/layer_norm.hpp"
#include "attn/layers/multi_head_attention.hpp"
#include "attn/random/generator.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/view_ops.hpp"
#include "attn/threads.hpp"

namespace attn {

/// x = x + drop_shortcut(att(norm1(x))); x = x + drop_shortcut(ff(norm2(x))), with the book's
/// parts and state_dict names: "att." (MultiHeadAttention(d_in = d_out = emb_dim,
/// context_length, dropout = drop_rate, num_heads = n_heads, qkv_bias): W_query, W_key, W_value,
/// out_proj and the `mask` buffer), "ff." (FeedForward: layers.0, layers.2), "norm1.", "norm2."
/// (LayerNorm: scale, shift).
///
/// Initialisation draws att's parameters, then ff's, from the generator (the norms and dropout
/// draw nothing), so Generator(s) gives the weights of torch.manual_seed(s);
/// TransformerBlock(cfg). The block's dropout generator then continues that generator's sequence,
/// as PyTorch's global generator does after the constructor: a training-mode forward right after
/// TransformerBlock(cfg, Generator(s)) drops what `torch.manual_seed(s); block = ...; block(x)`
/// drops. (MultiHeadAttention alone keeps a generator of its own default seed.)
///
/// Training mode (the default) applies dropout with drop_rate in three places, drawn in
/// PyTorch's order from the block's one generator, dropout_generator() (its attention's):
/// the attention weights (B, H, T, T) inside att, then the attention branch (B, T, emb_dim),
/// then the feed-forward branch. Those masks are PyTorch's on the attention's reference path,
/// which AttentionPath::automatic takes whenever dropout is active. A training forward is
/// `const` and may run on several threads; they take turns for the whole forward, each drawing
/// one unbroken stretch of the generator.
template <typename ScalarType>
class TransformerBlock : public StateVisitable<TransformerBlock<ScalarType>> {
 public:
  using Scalar = ScalarType;

  /// The block's hyper-parameters, named as the book's cfg keys.
  struct Config {
    Index emb_dim = 0;
    Index context_length = 0;
    Index n_heads = 0;
    double drop_rate = 0;
    bool qkv_bias = false;
  };

  /// @throws std::invalid_argument for a non-positive size, emb_dim not divisible by n_heads,
  ///         or a drop_rate outside [0, 1).
  explicit TransformerBlock(const Config& config, GeneratorRef generator = Generator())
      : config_(validated(config)),
        att_(config.emb_dim, config.emb_dim, config.context_length,
             static_cast<Scalar>(config.drop_rate), config.n_heads, config.qkv_bias, generator),
        ff_(config.emb_dim, generator),
        norm1_(config.emb_dim),
        norm2_(config.emb_dim) {
    if (!generator.skips_init()) att_.dropout_generator() = generator.get();
  }

  const Config& config() const { return config_; }
  MultiHeadAttention<Scalar>& att() { return att_; }
  const MultiHeadAttention<Scalar>& att() const { return att_; }
  FeedForward<Scalar>& ff() { return ff_; }
  const FeedForward<Scalar>& ff() const { return ff_; }
  LayerNorm<Scalar>& norm1() { return norm1_; }
  const LayerNorm<Scalar>& norm1() const { return norm1_; }
  LayerNorm<Scalar>& norm2() { return norm2_; }
  const LayerNorm<Scalar>& norm2() const { return norm2_; }

  /// Training mode (the default, as in PyTorch) applies dropout; eval mode does not.
  void train(bool training = true) { att_.train(training); }
  void eval() { train(false); }
  bool is_training() const { return att_.is_training(); }
  /// Stores the attention's and the feed-forward's weights as `format`
  /// (Linear::set_weight_format); the LayerNorms stay in Scalar.
  void set_weight_format(WeightFormat format) {
    att_.set_weight_format(format);
    ff_.set_weight_format(format);
  }
  /// Every dropout of the block draws from this generator, in PyTorch's order; reseed it, or
  /// assign another generator's state, for reproducible runs (not while a forward runs).
  Generator& dropout_generator() const { return att_.dropout_generator(); }

  /// What forward keeps for backward: each part's cache and, in training mode with dropout,
  /// the generator as it stood before each shortcut dropout (its masks are drawn again in
  /// backward, not stored).
  struct Cache {
    typename LayerNorm<Scalar>::Cache norm1;
    typename MultiHeadAttention<Scalar>::Cache att;
    std::optional<Generator> drop_att;
    typename LayerNorm<Scalar>::Cache norm2;
    typename FeedForward<Scalar>::Cache ff;
    std::optional<Generator> drop_ff;
  };

  /// @param x (B, T, emb_dim), T <= context_length, any strides (a view that is not contiguous
  ///          is copied once). @return (B, T, emb_dim).
  /// @throws ShapeError if x does not fit.
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x) const { return run(x, nullptr); }

  /// Forward that fills `cache` for backward. Same result as forward(x).
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x, Cache& cache) const {
    return run(x, &cache);
  }

  /// forward(x) of a batch of sequences of different lengths: `mask` (layers/layer_mask.hpp)
  /// reaches the attention, as MultiHeadAttention::forward(x, mask) takes it.
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x,
                            const LayerMask<Scalar>& mask) const {
    return run(x, nullptr, mask);
  }
  /// forward(x, mask) that fills `cache` for backward (the attention's cache keeps the mask).
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x, Cache& cache,
                            const LayerMask<Scalar>& mask) const {
    return run(x, &cache, mask);
  }

  /// Inference with a KV cache (see MultiHeadAttention's forward(x, KVCache&)): x (B, T,
  /// emb_dim) holds the next T tokens after the cache.size() already cached; the attention
  /// appends their keys and values. Prefill, then one token at a time, equals forward over the
  /// whole sequence. Eval mode: no dropout. `mask` as MultiHeadAttention's forward with a KV
  /// cache takes it.
  /// @throws std::invalid_argument in training mode with a drop_rate above 0; ShapeError or
  ///         std::out_of_range as MultiHeadAttention's.
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x, KVCache<Scalar>& cache,
                            const LayerMask<Scalar>& mask = {}) const {
    check_input(x.shape());
    if (dropping()) {
      throw std::invalid_argument(detail::concat(
          "TransformerBlock: forward with a KV cache is for inference, without dropout, but the "
          "block is in training mode with drop_rate ",
          config_.drop_rate, "; call eval() first"));
    }
    const detail::Contiguous<Scalar, 3> in(x);
    Tensor<Scalar, 3> x1 = att_.forward(norm1_.forward(in.view()).view(), cache, mask);
    add_into(x1, in.data());
    Tensor<Scalar, 3> out = ff_.forward(norm2_.forward(x1.view()).view());
    add_into(out, x1.data());
    return out;
  }

  /// A KV cache for this block's attention: `batch` sequences of up to `capacity` positions
  /// (0: context_length), as MultiHeadAttention::make_kv_cache makes it.
  /// @throws std::invalid_argument if batch is not positive or capacity is negative.
  KVCache<Scalar> make_kv_cache(Index batch, Index capacity = 0) const {
    return att_.make_kv_cache(batch, capacity);
  }

  /// Backward of forward(x, cache): returns dL/dx (B, T, emb_dim) and accumulates (+=) the
  /// gradients of every parameter (att, ff, norm1, norm2).
  /// @param grad_out (B, T, emb_dim), dL/dout, any strides.
  /// @throws ShapeError if grad_out does not match the forward's output.
  Tensor<Scalar, 3> backward(const Cache& cache, const TensorView<const Scalar, 3>& grad_out) {
    detail::require_filled_cache("TransformerBlock", "forward(x, cache)",
                                 cache.att.x.shape() != Shape<3>{});
    detail::require_shape("TransformerBlock::backward", "grad_out", grad_out.shape(),
                          cache.att.x.shape());
    const Tensor<Scalar, 3> dy(grad_out);
    Tensor<Scalar, 3> masked;
    // out = x1 + drop(ff(norm2(x1)))  ->  d x1 = dy + norm2'(ff'(drop'(dy)))
    Tensor<Scalar, 3> grad = ff_.backward(cache.ff, undropped(dy, cache.drop_ff, masked));
    Tensor<Scalar, 3> grad_x1 = norm2_.backward(cache.norm2, grad.view());
    add_into(grad_x1, dy.data());
    // x1 = x + drop(att(norm1(x)))  ->  dx = d x1 + norm1'(att'(drop'(d x1)))
    grad = att_.backward(cache.att, undropped(grad_x1, cache.drop_att, masked));
    Tensor<Scalar, 3> grad_x = norm1_.backward(cache.norm1, grad.view());
    add_into(grad_x, grad_x1.data());
    return grad_x;
  }

 private:
  friend class StateVisitable<TransformerBlock<ScalarType>>;
  // Entries "att.*" (with the buffer "att.mask"), "ff.*", "norm1.*", "norm2.*".
  template <typename Self, typename Visitor>
  static void visit_entries(Self& self, Visitor& visit, const std::string& prefix) {
    self.att_.visit_state(visit, prefix + "att.");
    self.ff_.visit_state(visit, prefix + "ff.");
    self.norm1_.visit_state(visit, prefix + "norm1.");
    self.norm2_.visit_state(visit, prefix + "norm2.");
  }

  static const Config& validated(const Config& config) {
    constexpr const char* who = "TransformerBlock";
    detail::require_positive(who, "emb_dim", config.emb_dim);
    detail::require_positive(who, "context_length", config.context_length);
    detail::require_positive(who, "n_heads", config.n_heads);
    detail::require_divisible(who, "emb_dim", config.emb_dim, "n_heads", config.n_heads);
    detail::require_drop_probability(who, "drop_rate", config.drop_rate);
    return config;
  }

  bool dropping() const { return is_training() && config_.drop_rate > 0; }

  void check_input(const Shape<3>& x) const {
    detail::require_features("TransformerBlock", x, config_.emb_dim, "emb_dim");
    detail::require_context("TransformerBlock", x[1], config_.context_length);
  }

  Tensor<Scalar, 3> run(const TensorView<const Scalar, 3>& x, Cache* cache,
                        const LayerMask<Scalar>& mask = {}) const {
    check_input(x.shape());
    const bool drop = dropping();
    std::unique_lock<std::mutex> turn(mutex_.mutex, std::defer_lock);
    if (drop) turn.lock();
    const detail::Contiguous<Scalar, 3> in(x);
    // x1 = x + drop_shortcut(att(norm1(x)))
    Tensor<Scalar, 3> h =
        cache != nullptr ? norm1_.forward(in.view(), cache->norm1) : norm1_.forward(in.view());
    Tensor<Scalar, 3> x1 =
        cache != nullptr ? att_.forward(h.view(), cache->att, mask) : att_.forward(h.view(), mask);
    drop_shortcut(x1, drop, cache != nullptr ? &cache->drop_att : nullptr);
    add_into(x1, in.data());
    // out = x1 + drop_shortcut(ff(norm2(x1)))
    h = cache != nullptr ? norm2_.forward(x1.view(), cache->norm2) : norm2_.forward(x1.view());
    Tensor<Scalar, 3> out =
        cache != nullptr ? ff_.forward(h.view(), cache->ff) : ff_.forward(h.view());
    drop_shortcut(out, drop, cache != nullptr ? &cache->drop_ff : nullptr);
    add_into(out, x1.data());
    return out;
  }

  /// nn.Dropout(drop_rate) on a branch, in place, in training mode: PyTorch's mask over the
  /// (B, T, emb_dim) tensor in memory order. Records the generator's state before the draws.
  void drop_shortcut(Tensor<Scalar, 3>& branch, bool drop, std::optional<Generator>* replay) const {
    if (replay != nullptr) replay->reset();
    if (drop) {
      detail::dropout_recording(branch.view(), static_cast<Scalar>(config_.drop_rate),
                                dropout_generator(), replay);
    }
  }

  /// The gradient of a shortcut branch's input from the gradient of its output: `grad` itself
  /// without dropout, else `grad` with the forward's mask and scale (drawn again from the
  /// recorded generator) written into `masked`.
  TensorView<const Scalar, 3> undropped(const Tensor<Scalar, 3>& grad,
                                        const std::optional<Generator>& replay,
                                        Tensor<Scalar, 3>& masked) const {
    if (!replay) return grad.view();
    masked = grad;
    detail::dropout_replayed_backward(masked.view(), static_cast<Scalar>(config_.drop_rate),
                                      *replay);
    return masked.view();
  }

  /// target += addend (contiguous, target's size).
  static void add_into(Tensor<Scalar, 3>& target, const Scalar* addend) {
    using Values = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
    Eigen::Map<Values>(target.data(), target.numel()) +=
        Eigen::Map<const Values>(addend, target.numel());
  }

  Config config_;
  MultiHeadAttention<Scalar> att_;
  FeedForward<Scalar> ff_;
  LayerNorm<Scalar> norm1_;
  LayerNorm<Scalar> norm2_;
  // Training forwards with dropout take turns: each draws one unbroken stretch.
  mutable detail::CopyableMutex mutex_;
};

}  // namespace attn

#endif  // ATTN_LAYERS_TRANSFORMER_BLOCK_HPP
