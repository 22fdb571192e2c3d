// attn/models/gpt_model.hpp: GPTModel, the book's GPT (chapter 4, section 4.6): token and
// positional embeddings, dropout, n_layers TransformerBlocks, a final LayerNorm and a linear
// head over the vocabulary. With GPTConfig::gpt2_124m() it is GPT-2 small's architecture
// (163,009,536 parameters with the untied head); built from Generator(s) it holds the weights
// of `torch.manual_seed(s); GPTModel(cfg)`. GPTKVCache holds what generation feeds it one token
// at a time.
#ifndef ATTN_MODELS_GPT_MODEL_HPP
#define ATTN_MODELS_GPT_MODEL_HPP

#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "attn/checks.hpp"
#include "attn/config.hpp"
#include "attn/kernels/dropout.hpp"
#include "attn/layers/embedding.hpp"
#include "attn/layers/kv_cache.hpp"
#include "attn/layers/layer_mask.hpp"
#include "attn/layers/layer_norm.hpp"
#include "attn/layers/linear.hpp"
#include "attn/layers/transformer_block.hpp"
#include "attn/random/generator.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/view_ops.hpp"
#include "attn/threads.hpp"

namespace attn {

/// The book's cfg dictionary, key for key.
struct GPTConfig {
  Index vocab_size = 0;
  Index context_length = 0;
  Index emb_dim = 0;
  Index n_heads = 0;
  Index n_layers = 0;
  double drop_rate = 0;
  bool qkv_bias = false;

  /// The book's GPT_CONFIG_124M: GPT-2 small.
  static constexpr GPTConfig gpt2_124m() { return {50257, 1024, 768, 12, 12, 0.1, false}; }
};

/// The book's GPT_CONFIG_124M.
inline constexpr GPTConfig gpt_config_124m = GPTConfig::gpt2_124m();

/// The KV caches of a GPTModel, one KVCache per TransformerBlock, for generation: `batch`
/// sequences of up to capacity() positions. Make it with GPTModel::make_kv_cache; every layer's
/// cache advances together, so size() is the position of the next token fed.
template <typename ScalarType>
class GPTKVCache {
 public:
  using Scalar = ScalarType;

  /// @throws std::invalid_argument if a size is not positive.
  GPTKVCache(Index n_layers, Index batch, Index n_heads, Index head_dim, Index capacity) {
    detail::require_positive("GPTKVCache", "n_layers", n_layers);
    layers_.reserve(static_cast<std::size_t>(n_layers));
    for (Index l = 0; l < n_layers; ++l) layers_.emplace_back(batch, n_heads, head_dim, capacity);
  }

  /// Tokens cached since the last reset(): the position of the next token.
  Index size() const { return layers_.front().size(); }
  Index batch() const { return layers_.front().batch(); }
  Index capacity() const { return layers_.front().capacity(); }
  /// Forgets every cached token (a new sequence); keeps the storage.
  void reset() {
    for (auto& layer : layers_) layer.reset();
  }

  Index n_layers() const { return static_cast<Index>(layers_.size()); }
  /// Block l's cache.
  KVCache<Scalar>& layer(Index l) { return layers_.at(static_cast<std::size_t>(l)); }
  const KVCache<Scalar>& layer(Index l) const { return layers_.at(static_cast<std::size_t>(l)); }

 private:
  std::vector<KVCache<Scalar>> layers_;
};

/// logits = out_head(final_norm(trf_blocks(drop_emb(tok_emb(ids) + pos_emb(0 .. T-1))))), the
/// book's GPTModel with its state_dict names: "tok_emb.weight" (vocab_size, emb_dim),
/// "pos_emb.weight" (context_length, emb_dim), "trf_blocks.<n>." + TransformerBlock's names
/// (att.W_query.weight, ..., att.mask, ff.layers.0.weight, ..., norm1.scale, ...),
/// "final_norm.scale", "final_norm.shift", "out_head.weight" (vocab_size, emb_dim; no bias).
///
/// Initialisation draws, from one generator in PyTorch's order: tok_emb and pos_emb
/// (torch.randn's normals, Generator::normal_fill), then per block W_query, W_key, W_value,
/// out_proj, ff.layers.0, ff.layers.2 (nn.Linear's uniforms, weight then bias), then out_head;
/// the LayerNorms and dropouts draw nothing. The model's dropout generator then continues the
/// sequence, as PyTorch's global generator does: a training-mode forward right after
/// GPTModel(cfg, Generator(s)) gives what `torch.manual_seed(s); model = GPTModel(cfg);
/// model(ids)` gives, the book's printed logits included.
///
/// Training mode (the default) draws every dropout mask from dropout_generator() in PyTorch's
/// order: drop_emb over (B, T, emb_dim), then block after block its attention weights and its
/// two shortcut branches (see TransformerBlock). Training forwards take turns, so each draws one
/// unbroken stretch.
template <typename ScalarType>
class GPTModel : public StateVisitable<GPTModel<ScalarType>> {
 public:
  using Scalar = ScalarType;
  using Config = GPTConfig;
  using Block = TransformerBlock<Scalar>;

  /// Stores tok_emb, the blocks' projections and out_head as `format` (set_weight_format) from
  /// the start: with WeightFormat::bfloat16 each block is rounded as soon as it is drawn and the
  /// embedding and head are rounded row by row, so the model never holds its Scalar weights
  /// (GPT-2 124M: ~330 MB at its peak instead of 650 + 330). Same draws, same rounded weights as
  /// set_weight_format after the Scalar constructor. With attn::skip_init nothing is drawn
  /// (the weights are zero), for a loader that fills them all next (io/gpt2_checkpoint.hpp).
  /// @throws std::invalid_argument for a non-positive size, emb_dim not divisible by n_heads,
  ///         or a drop_rate outside [0, 1).
  explicit GPTModel(const Config& config, GeneratorRef generator = Generator(),
                    WeightFormat format = WeightFormat::scalar)
      : config_(validated(config)),
        tok_emb_(config.vocab_size, config.emb_dim, generator, format),
        pos_emb_(config.context_length, config.emb_dim, generator),
        trf_blocks_(make_blocks(config, generator, format)),
        final_norm_(config.emb_dim),
        out_head_(config.emb_dim, config.vocab_size, false, generator, format),
        dropout_generator_(generator.skips_init() ? Generator() : generator.get()) {
    // Scalar weights a block held before rounding went to the buffer pool: give them back.
    if (format != WeightFormat::scalar) release_buffer_pool();
  }

  const Config& config() const { return config_; }
  Embedding<Scalar>& tok_emb() { return tok_emb_; }
  const Embedding<Scalar>& tok_emb() const { return tok_emb_; }
  Embedding<Scalar>& pos_emb() { return pos_emb_; }
  const Embedding<Scalar>& pos_emb() const { return pos_emb_; }
  std::vector<Block>& trf_blocks() { return trf_blocks_; }
  const std::vector<Block>& trf_blocks() const { return trf_blocks_; }
  LayerNorm<Scalar>& final_norm() { return final_norm_; }
  const LayerNorm<Scalar>& final_norm() const { return final_norm_; }
  Linear<Scalar>& out_head() { return out_head_; }
  const Linear<Scalar>& out_head() const { return out_head_; }

  /// Training mode (the default, as in PyTorch) applies dropout; eval mode does not.
  void train(bool training = true) {
    training_ = training;
    for (auto& block : trf_blocks_) block.train(training);
  }
  void eval() { train(false); }
  bool is_training() const { return training_; }
  /// Stores tok_emb, every block's projections and out_head as `format`
  /// (Linear::set_weight_format): WeightFormat::bfloat16 rounds those weights to bfloat16 and
  /// keeps 2 bytes a weight only, so each decoding step reads half the bytes (a step reads all
  /// of them once: memory bandwidth bounds it) and the model needs half the memory; the freed
  /// Scalar weights are returned to the system (release_buffer_pool). pos_emb and the LayerNorms
  /// stay in Scalar. Changing a weight afterwards returns that layer to WeightFormat::scalar.
  void set_weight_format(WeightFormat format) {
    tok_emb_.set_weight_format(format);
    for (auto& block : trf_blocks_) block.set_weight_format(format);
    out_head_.set_weight_format(format);
    if (format != WeightFormat::scalar) release_buffer_pool();
  }
  /// Every dropout of the model draws from this generator (see the class comment); reseed it
  /// for reproducible runs (not while a forward runs).
  Generator& dropout_generator() const { return dropout_generator_; }

  /// What forward keeps for backward: the ids, the generator before drop_emb (training mode
  /// with dropout), each block's cache, the final norm's cache and its output, the head's input.
  struct Cache {
    Tensor<Index, 2> ids;
    Tensor<Index, 2> positions;  // with padding: each token's pos_emb row
    std::optional<Generator> drop_emb;
    std::vector<typename Block::Cache> blocks;
    typename LayerNorm<Scalar>::Cache final_norm;
    Tensor<Scalar, 3> normed;
  };

  /// @param ids (B, T) token ids in [0, vocab_size), T <= context_length (any strides).
  /// @return logits (B, T, vocab_size).
  /// @throws IndexError naming an id outside [0, vocab_size), its batch and position;
  ///         ShapeError if T exceeds context_length (the book crops a prompt to its last
  ///         context_length tokens before calling the model; forward does not crop).
  Tensor<Scalar, 3> forward(const TensorView<const Index, 2>& ids) const {
    return out_head_.forward(final_norm_.forward(trunk(ids, nullptr).view()).view());
  }

  /// Forward that fills `cache` for backward. Same result as forward(ids).
  Tensor<Scalar, 3> forward(const TensorView<const Index, 2>& ids, Cache& cache) const {
    return forward(ids, cache, {});
  }

  /// forward(ids) of a batch of sequences of different lengths, padded as Hugging Face's GPT-2
  /// batches prompts (on the left for generation): padding (B, T), true = a pad token. Each
  /// sequence's tokens take the positions 0, 1, ... from its first real token (pos_emb's rows,
  /// as Hugging Face's position_ids = cumsum(attention_mask) - 1), and no token attends to a
  /// pad, so a sequence's logits are those of the sequence alone. A pad's own logits mean
  /// nothing (a left pad sees no key: its attention is zero).
  /// @throws as forward(ids), and ShapeError if padding is not (B, T).
  Tensor<Scalar, 3> forward(const TensorView<const Index, 2>& ids,
                            const TensorView<const bool, 2>& padding) const {
    return out_head_.forward(final_norm_.forward(trunk(ids, nullptr, padding).view()).view());
  }
  /// forward(ids, padding) that fills `cache` for backward (padding may be empty: none).
  Tensor<Scalar, 3> forward(const TensorView<const Index, 2>& ids, Cache& cache,
                            const TensorView<const bool, 2>& padding) const {
    const Tensor<Scalar, 3> hidden = trunk(ids, &cache, padding);
    cache.normed = final_norm_.forward(hidden.view(), cache.final_norm);
    return out_head_.forward(cache.normed.view());
  }

  /// The logits of the last position only, (B, vocab_size): what generation reads
  /// (the book's logits[:, -1, :]), with final_norm and out_head run on B rows instead of B T.
  /// @throws as forward, and ShapeError if ids hold no token.
  Tensor<Scalar, 2> forward_last(const TensorView<const Index, 2>& ids) const {
    require_tokens(ids);
    return last_logits(trunk(ids, nullptr));
  }
  /// forward_last of forward(ids, padding).
  Tensor<Scalar, 2> forward_last(const TensorView<const Index, 2>& ids,
                                 const TensorView<const bool, 2>& padding) const {
    require_tokens(ids);
    return last_logits(trunk(ids, nullptr, padding));
  }

  /// Backward of forward(ids, cache): accumulates (+=) the gradient of every parameter.
  /// @param grad_logits (B, T, vocab_size), dL/dlogits, any strides.
  /// @throws ShapeError if grad_logits does not match the forward's logits.
  void backward(const Cache& cache, const TensorView<const Scalar, 3>& grad_logits) {
    detail::require_filled_cache("GPTModel", "forward(ids, cache)",
                                 cache.ids.shape() != Shape<2>{});
    const Shape<3> logits_shape{cache.ids.size(0), cache.ids.size(1), config_.vocab_size};
    detail::require_shape("GPTModel::backward", "grad_logits", grad_logits.shape(), logits_shape);
    // logits = out_head(normed), normed = final_norm(h)
    Tensor<Scalar, 3> grad = out_head_.backward(cache.normed.view(), grad_logits);
    grad = final_norm_.backward(cache.final_norm, grad.view());
    // h = trf_blocks(x), block after block
    for (std::size_t l = trf_blocks_.size(); l-- > 0;) {
      grad = trf_blocks_[l].backward(cache.blocks[l], grad.view());
    }
    // x = drop_emb(e): the forward's mask again, drawn from the recorded generator
    if (cache.drop_emb) {
      detail::dropout_replayed_backward(grad.view(), static_cast<Scalar>(config_.drop_rate),
                                        *cache.drop_emb);
    }
    // e = tok_emb(ids) + pos_emb(0 .. T-1): position t's row was added to every sequence
    tok_emb_.backward(cache.ids.view(), grad.view());
    if (cache.positions.numel() != 0) {
      pos_emb_.backward(cache.positions.view(), grad.view());
    } else {
      pos_emb_.add_positions_backward(grad.view());
    }
  }

  /// A KV cache for generation: `batch` sequences of up to `capacity` positions (0:
  /// context_length, the most pos_emb has rows for).
  /// @throws std::invalid_argument if batch is not positive or capacity is outside
  ///         [0, context_length].
  GPTKVCache<Scalar> make_kv_cache(Index batch, Index capacity = 0) const {
    if (capacity < 0 || capacity > config_.context_length) {
      throw std::invalid_argument(detail::concat(
          "GPTModel::make_kv_cache: capacity (", capacity, ") must be in [0, context_length (",
          config_.context_length, ")]: pos_emb has no row for a later position"));
    }
    return GPTKVCache<Scalar>(config_.n_layers, batch, config_.n_heads,
                              config_.emb_dim / config_.n_heads,
                              capacity == 0 ? config_.context_length : capacity);
  }

  /// Inference with a KV cache: ids (B, T) are the next T tokens of each sequence, at positions
  /// cache.size() .. cache.size() + T - 1 (pos_emb's rows from cache.size() on); every block's
  /// keys and values are appended to the cache. Prefill with a prompt, then one token at a
  /// time: the logits equal forward() over the whole sequence. Eval mode (no dropout); `const`
  /// and thread-safe for distinct caches.
  /// @return logits (B, T, vocab_size).
  /// @throws std::invalid_argument in training mode with a drop_rate above 0; ShapeError if the
  ///         cache was made for another batch size or model; IndexError for an id outside the
  ///         vocabulary; std::out_of_range when the tokens would pass context_length or the
  ///         cache's capacity. Nothing is cached when it throws.
  Tensor<Scalar, 3> forward(const TensorView<const Index, 2>& ids,
                            GPTKVCache<Scalar>& cache) const {
    return out_head_.forward(final_norm_.forward(trunk_cached(ids, cache).view()).view());
  }
  /// forward(ids, cache) of padded sequences (see forward(ids, padding)): padding (B, S) flags
  /// every token the cache will then hold, S = cache.size() + T, the cached ones first.
  /// @throws as forward(ids, cache), and ShapeError if padding is not (B, S).
  Tensor<Scalar, 3> forward(const TensorView<const Index, 2>& ids, GPTKVCache<Scalar>& cache,
                            const TensorView<const bool, 2>& padding) const {
    return out_head_.forward(final_norm_.forward(trunk_cached(ids, cache, padding).view()).view());
  }

  /// forward(ids, cache) for the last position only: (B, vocab_size), out_head on one row per
  /// sequence. A decoding step (B = 1, T = 1) does no work outside attention that grows with
  /// the context. @throws as forward(ids, cache), and ShapeError if ids hold no token.
  Tensor<Scalar, 2> forward_last(const TensorView<const Index, 2>& ids,
                                 GPTKVCache<Scalar>& cache) const {
    require_tokens(ids);
    return last_logits(trunk_cached(ids, cache));
  }
  /// forward_last of forward(ids, cache, padding).
  Tensor<Scalar, 2> forward_last(const TensorView<const Index, 2>& ids, GPTKVCache<Scalar>& cache,
                                 const TensorView<const bool, 2>& padding) const {
    require_tokens(ids);
    return last_logits(trunk_cached(ids, cache, padding));
  }

 private:
  friend class StateVisitable<GPTModel<ScalarType>>;
  // Entries "tok_emb.weight", "pos_emb.weight", "trf_blocks.<n>.*", "final_norm.*",
  // "out_head.weight", with gradients, and each block's "att.mask" buffer.
  template <typename Self, typename Visitor>
  static void visit_entries(Self& self, Visitor& visit, const std::string& prefix) {
    self.tok_emb_.visit_state(visit, prefix + "tok_emb.");
    self.pos_emb_.visit_state(visit, prefix + "pos_emb.");
    for (std::size_t l = 0; l < self.trf_blocks_.size(); ++l) {
      self.trf_blocks_[l].visit_state(visit, prefix + "trf_blocks." + std::to_string(l) + ".");
    }
    self.final_norm_.visit_state(visit, prefix + "final_norm.");
    self.out_head_.visit_state(visit, prefix + "out_head.");
  }

  static const Config& validated(const Config& config) {
    constexpr const char* who = "GPTModel";
    detail::require_positive(who, "vocab_size", config.vocab_size);
    detail::require_positive(who, "context_length", config.context_length);
    detail::require_positive(who, "emb_dim", config.emb_dim);
    detail::require_positive(who, "n_heads", config.n_heads);
    detail::require_positive(who, "n_layers", config.n_layers);
    detail::require_divisible(who, "emb_dim", config.emb_dim, "n_heads", config.n_heads);
    detail::require_drop_probability(who, "drop_rate", config.drop_rate);
    return config;
  }

  static typename Block::Config block_config(const Config& config) {
    return {config.emb_dim, config.context_length, config.n_heads, config.drop_rate,
            config.qkv_bias};
  }

  static std::vector<Block> make_blocks(const Config& config, GeneratorRef generator,
                                        WeightFormat format) {
    std::vector<Block> blocks;
    blocks.reserve(static_cast<std::size_t>(config.n_layers));
    for (Index l = 0; l < config.n_layers; ++l) {
      blocks.emplace_back(block_config(config), generator);
      blocks.back().set_weight_format(format);
    }
    return blocks;
  }

  bool dropping() const { return training_ && config_.drop_rate > 0; }

  /// @throws IndexError naming the first id outside [0, vocab_size), its batch and position.
  void check_ids(const TensorView<const Index, 2>& ids) const {
    for (Index b = 0; b < ids.size(0); ++b) {
      for (Index t = 0; t < ids.size(1); ++t) {
        const Index id = ids(b, t);
        if (id < 0 || id >= config_.vocab_size) {
          throw IndexError(detail::concat("GPTModel: token id ", id, " at batch ", b, ", position ",
                                          t, " is outside the vocabulary [0, ", config_.vocab_size,
                                          ")"));
        }
      }
    }
  }

  void require_tokens(const TensorView<const Index, 2>& ids) const {
    if (ids.size(1) < 1) {
      throw ShapeError(detail::concat("GPTModel: ids have shape ", to_string(ids.shape()),
                                      "; the last position's logits need at least one token"));
    }
  }

  /// tok_emb(ids) + pos_emb(position0 .. position0 + T - 1), (B, T, emb_dim).
  Tensor<Scalar, 3> embed(const TensorView<const Index, 2>& ids, Index position0) const {
    Tensor<Scalar, 3> x = tok_emb_.forward(ids);
    pos_emb_.add_positions(x.view(), position0);
    return x;
  }

  /// embed() of the T tokens after the first `cached` of a sequence, with padding (B, cached +
  /// T) when given (else empty): then a sequence's real tokens take the pos_emb rows 0, 1, ...
  /// from its first (a pad takes row 0, unused), written to `positions`, and `mask` gets the
  /// padding the blocks apply.
  /// @throws ShapeError unless padding is (B, cached + T).
  Tensor<Scalar, 3> embed_padded(const TensorView<const Index, 2>& ids,
                                 const TensorView<const bool, 2>& padding, Index cached,
                                 LayerMask<Scalar>& mask, Tensor<Index, 2>& positions) const {
    if (padding.data() == nullptr) return embed(ids, cached);
    const Index batch = ids.size(0), T = ids.size(1);
    if (padding.shape() != Shape<2>{batch, cached + T}) {
      throw ShapeError(detail::concat(
          "GPTModel: padding has shape ", to_string(padding.shape()), " but must be (", batch, ", ",
          cached + T, "): a flag for each of the ", cached, " cached and ", T, " new tokens"));
    }
    positions = Tensor<Index, 2>({batch, T});
    for (Index b = 0; b < batch; ++b) {
      Index count = 0;
      for (Index j = 0; j < cached + T; ++j) {
        if (j >= cached) positions(b, j - cached) = padding(b, j) ? 0 : count;
        if (!padding(b, j)) ++count;
      }
    }
    mask.key_padding = padding;
    Tensor<Scalar, 3> x = tok_emb_.forward(ids);
    const Tensor<Scalar, 3> rows = pos_emb_.forward(positions.view());
    for (Index i = 0; i < x.numel(); ++i) x.data()[i] += rows.data()[i];
    return x;
  }

  /// drop_emb, then the blocks: the hidden states before final_norm. Fills the cache's ids,
  /// drop_emb and blocks when given one.
  Tensor<Scalar, 3> trunk(const TensorView<const Index, 2>& ids, Cache* cache,
                          const TensorView<const bool, 2>& padding = {}) const {
    check_ids(ids);
    if (ids.size(1) > config_.context_length) {
      throw ShapeError(
          detail::concat("GPTModel: ids have ", ids.size(1), " tokens but context_length is ",
                         config_.context_length, "; crop them to the last ", config_.context_length,
                         " tokens first, as the book's generation does (idx[:, -context_size:])"));
    }
    const bool drop = dropping();
    std::unique_lock<std::mutex> turn(mutex_.mutex, std::defer_lock);
    if (drop) turn.lock();
    LayerMask<Scalar> mask;
    Tensor<Index, 2> positions;
    Tensor<Scalar, 3> x = embed_padded(ids, padding, 0, mask, positions);
    if (cache != nullptr) {
      cache->positions = std::move(positions);
      cache->ids = Tensor<Index, 2>(ids);
      cache->drop_emb.reset();
      cache->blocks.resize(trf_blocks_.size());
    }
    if (drop) {
      detail::dropout_recording(x.view(), static_cast<Scalar>(config_.drop_rate),
                                dropout_generator_, cache != nullptr ? &cache->drop_emb : nullptr);
    }
    for (std::size_t l = 0; l < trf_blocks_.size(); ++l) {
      const Block& block = trf_blocks_[l];
      // The block continues the model's sequence of draws and hands it back.
      if (drop) block.dropout_generator() = dropout_generator_;
      x = cache != nullptr ? block.forward(x.view(), cache->blocks[l], mask)
                           : block.forward(x.view(), mask);
      if (drop) dropout_generator_ = block.dropout_generator();
    }
    return x;
  }

  /// The blocks with their KV caches: the new positions' hidden states before final_norm.
  /// Checks everything before the first cache advances.
  Tensor<Scalar, 3> trunk_cached(const TensorView<const Index, 2>& ids, GPTKVCache<Scalar>& cache,
                                 const TensorView<const bool, 2>& padding = {}) const {
    if (dropping()) {
      throw std::invalid_argument(detail::concat(
          "GPTModel: forward with a KV cache is for generation, without dropout, but the model "
          "is in training mode with drop_rate ",
          config_.drop_rate, "; call eval() first"));
    }
    if (cache.n_layers() != config_.n_layers) {
      throw ShapeError(detail::concat("GPTModel: the KV cache has ", cache.n_layers(),
                                      " layers but the model has ", config_.n_layers,
                                      " blocks; make it with make_kv_cache"));
    }
    if (ids.size(0) != cache.batch()) {
      throw ShapeError(detail::concat("GPTModel: the KV cache was made for a batch of ",
                                      cache.batch(), " but ids have a batch of ", ids.size(0)));
    }
    check_ids(ids);
    const Index position0 = cache.size(), T = ids.size(1);
    if (position0 + T > config_.context_length) {
      throw std::out_of_range(detail::concat(
          "GPTModel: the KV cache holds ", position0, " positions and ", T,
          " more would pass context_length (", config_.context_length,
          "), the last position pos_emb has a row for; as the book crops the context to its last ",
          config_.context_length, " tokens, reset() the cache and prefill with those"));
    }
    if (position0 + T > cache.capacity()) {
      throw std::out_of_range(detail::concat("GPTModel: the KV cache holds ", position0, " of ",
                                             cache.capacity(), " positions and cannot take ", T,
                                             " more; reset() it or make a larger one"));
    }
    LayerMask<Scalar> mask;
    Tensor<Index, 2> positions;
    Tensor<Scalar, 3> x = embed_padded(ids, padding, position0, mask, positions);
    for (std::size_t l = 0; l < trf_blocks_.size(); ++l) {
      x = trf_blocks_[l].forward(x.view(), cache.layer(static_cast<Index>(l)), mask);
    }
    return x;
  }

  /// out_head(final_norm(hidden[:, -1, :])), (B, vocab_size).
  Tensor<Scalar, 2> last_logits(const Tensor<Scalar, 3>& hidden) const {
    const Index B = hidden.size(0), T = hidden.size(1), E = hidden.size(2);
    const TensorView<const Scalar, 2> last(hidden.data() + (T - 1) * E, {B, E}, {T * E, 1});
    return out_head_.forward(final_norm_.forward(last).view());
  }

  Config config_;
  Embedding<Scalar> tok_emb_;
  Embedding<Scalar> pos_emb_;
  std::vector<Block> trf_blocks_;
  LayerNorm<Scalar> final_norm_;
  Linear<Scalar> out_head_;
  // PyTorch's global generator for this model: the dropout masks of training forwards.
  mutable Generator dropout_generator_;
  mutable detail::CopyableMutex mutex_;
  bool training_ = true;  // PyTorch modules start in training mode
};

}  // namespace attn

#endif  // ATTN_MODELS_GPT_MODEL_HPP
