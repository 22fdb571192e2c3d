// attn/layers/detail/causal_core.hpp: what CausalAttention, MultiHeadAttention and
// MultiHeadAttentionCombinedQKV share once their projections are done: the configuration
// checks, train/eval mode, the dropout generator, the book's `mask` buffer entry, and the call
// into the shared kernel with the heads as strided views. The layers derive from it (no virtual
// functions), so its accessors are theirs. Private: users never include this.
#ifndef ATTN_LAYERS_DETAIL_CAUSAL_CORE_HPP
#define ATTN_LAYERS_DETAIL_CAUSAL_CORE_HPP

#include <algorithm>
#include <exception>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "attn/config.hpp"
#include "attn/kernels/dropout.hpp"
#include "attn/kernels/merge_attention.hpp"
#include "attn/kernels/scaled_dot_product_attention.hpp"
#include "attn/layers/detail/validate.hpp"
#include "attn/layers/kv_cache.hpp"
#include "attn/layers/layer_mask.hpp"
#include "attn/random/generator.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/view_ops.hpp"
#include "attn/threads.hpp"

namespace attn::detail {

template <typename ScalarType>
class CausalCore {
 public:
  using Scalar = ScalarType;

  Index d_in() const { return d_in_; }
  Index d_out() const { return d_out_; }
  Index context_length() const { return context_length_; }
  Scalar dropout() const { return dropout_; }

  /// Training mode (the default, as in PyTorch) applies dropout; eval mode does not.
  void train(bool training = true) { training_ = training; }
  void eval() { train(false); }
  bool is_training() const { return training_; }
  /// Draws the dropout masks in training mode; reseed it for reproducible runs (not while a
  /// forward runs on another thread).
  Generator& dropout_generator() const { return dropout_generator_; }
  /// Which kernel implementation forward uses (automatic: fused unless dropout is active).
  void set_attention_path(AttentionPath path) { path_ = path; }
  AttentionPath attention_path() const { return path_; }

  /// Sliding-window attention (the book's MultiHeadAttentionWithSWA): query i sees only keys
  /// j with 0 <= i - j < window, and the fused kernel skips the key tiles outside that band.
  /// 0 (what window() reports without one) returns to plain causal attention.
  /// @throws std::invalid_argument if window is negative.
  void set_window(Index window) {
    if (window < 0) {
      throw std::invalid_argument(
          concat(who_, ": window (", window, ") must be positive, or 0 for no window"));
    }
    window_ = window;
  }
  /// The sliding window, 0 for plain causal attention.
  Index window() const { return window_; }

  /// The causal, per-head attention of projected (B, T, d_out) queries, keys and values,
  /// written into context (B, T, d_out). Heads are strided views: no transposed copies.
  /// With a cache, keeps what attend_backward needs; with weights (B, H, T, T), writes the
  /// attention weights there (through the reference path, which materialises them). `mask`
  /// adds key padding and an additive mask to the layer's own (they must outlive the cache).
  ///
  /// Training-mode dropout draws from the layer's one generator, so concurrent forwards take
  /// turns for the kernel call: each draws one unbroken stretch of the generator's sequence,
  /// and the result is that of the same calls made one after another. Eval mode never locks.
  void attend(const TensorView<const Scalar, 3>& queries, const TensorView<const Scalar, 3>& keys,
              const TensorView<const Scalar, 3>& values, const TensorView<Scalar, 3>& context,
              AttentionCache<Scalar>* cache, const TensorView<Scalar, 4>& weights = {},
              const LayerMask<Scalar>& mask = {}) const {
    AttentionOptions<Scalar> attention = options();
    attention.mask = mask.on(attention.mask, who_);
    attention.additive_mask = mask.additive;
    if (weights.data() != nullptr) attention.path = AttentionPath::reference;
    kernel_taking_turns(split_heads(queries, num_heads_), split_heads(keys, kv_heads_),
                        split_heads(values, kv_heads_), split_heads(context, num_heads_), attention,
                        weights, cache);
  }

  /// attend for inference with a KV cache: appends the (B, T, kv_heads * head_dim) keys and
  /// values of the next T positions to `cache` and attends the queries over every cached
  /// position they may see (query i of the chunk sits at position cache.size() + i).
  ///
  /// The keys a chunk sees are one run of the cache's slots (a cache that keeps every
  /// position), or, in a windowed cache's ring, up to two runs plus the chunk itself. One run
  /// is one kernel call with the causal mask offset by the cached positions. Several runs are
  /// attended one by one and their partials merged with their log-sum-exp (exact:
  /// merge_attention.hpp), so the ring is never copied into order. When decoding leaves threads
  /// idle (few queries, fewer (batch, head) pairs than threads), long runs are also split into
  /// pieces that run on separate threads and are merged the same way ("flash decoding").
  ///
  /// `mask` covers every key the chunk may see, S = cache.size() + T positions from position 0
  /// (key_padding (B, S), key_lengths counted from position 0, additive (B|1, H|1, T, S)); each
  /// run sees its own columns of it.
  void attend_cached(const TensorView<const Scalar, 3>& queries,
                     const TensorView<const Scalar, 3>& keys,
                     const TensorView<const Scalar, 3>& values,
                     const TensorView<Scalar, 3>& context, KVCache<Scalar>& cache,
                     const LayerMask<Scalar>& mask = {}) const {
    const Index batch = queries.size(0), T = queries.size(1);
    cache.check_layer(who_, batch, kv_heads_, d_out_ / num_heads_);
    cache.check_room(who_, T);
    check_cached_mask(mask, batch, T, cache.size() + T);
    if (cache.window() > 0 && cache.window() != window_) {
      throw std::invalid_argument(concat(who_, ": the KV cache keeps a window of ", cache.window(),
                                         " positions but the layer's window is ", window_,
                                         " (0: none); they must agree"));
    }
    const auto q = split_heads(queries, num_heads_);
    const auto k = split_heads(keys, kv_heads_);
    const auto v = split_heads(values, kv_heads_);
    const Index cached = cache.size();
    std::vector<KeyRun> runs;
    if (cache.window() == 0) {
      cache.append(k, v);
      // With a window only the last positions are seen: from cached - window + 1 on.
      const Index first = window_ > 0 ? std::max<Index>(0, cached - window_ + 1) : 0;
      runs.push_back({slice(cache.keys(), 2, first, cached + T),
                      slice(cache.values(), 2, first, cached + T), cached - first, first});
    } else {
      // The ring: position p in slot p % W. The chunk's first query sees positions from
      // cached - W + 1 on; split them where the slots wrap. Keys at positions begin + j:
      // query i (position cached + i) sees them while 0 <= cached + i - begin - j < W.
      const Index W = cache.window();
      const Index first = std::max<Index>(0, cached - W + 1);
      const Index wrap = (first / W + 1) * W;
      for (const auto& [begin, end] :
           {std::pair{first, std::min(cached, wrap)}, std::pair{wrap, cached}}) {
        if (end <= begin) continue;
        const Index slot = begin % W;
        runs.push_back({slice(cache.keys(), 2, slot, slot + end - begin),
                        slice(cache.values(), 2, slot, slot + end - begin), cached - begin, begin});
      }
      runs.push_back({k, v, 0, cached});  // the chunk's own keys
    }
    const bool dropping = training_ && dropout_ > Scalar(0);
    if (dropping && runs.size() > 1) {
      throw std::invalid_argument(concat(
          who_, ": a windowed KV cache attends in pieces merged by log-sum-exp, which dropout (",
          dropout_, ") in training mode would not survive; call eval() for inference"));
    }
    if (!dropping) split_for_threads(runs, q.size(0) * q.size(1), T);
    attend_runs(q, runs, split_heads(context, num_heads_), mask);
    if (cache.window() > 0) cache.append(k, v);  // after the ring's old slots were read
  }

  /// Backward of attend: writes the (B, T, d_out) gradients of queries, keys and values.
  void attend_backward(
      const TensorView<const Scalar, 3>& queries, const TensorView<const Scalar, 3>& keys,
      const TensorView<const Scalar, 3>& values, const TensorView<const Scalar, 3>& context,
      const TensorView<const Scalar, 3>& grad_context, const TensorView<Scalar, 3>& grad_queries,
      const TensorView<Scalar, 3>& grad_keys, const TensorView<Scalar, 3>& grad_values,
      const AttentionCache<Scalar>& cache, const LayerMask<Scalar>& mask = {}) const {
    scaled_dot_product_attention_backward<Scalar, 4>(
        split_heads(queries, num_heads_), split_heads(keys, kv_heads_),
        split_heads(values, kv_heads_), split_heads(context, num_heads_),
        split_heads(grad_context, num_heads_), split_heads(grad_queries, num_heads_),
        split_heads(grad_keys, kv_heads_), split_heads(grad_values, kv_heads_),
        mask.on(options().mask, who_), cache);
  }

 protected:
  /// @throws std::invalid_argument naming the first bad hyper-parameter and its value.
  /// kv_heads: the heads of keys and values, a divisor of num_heads (grouped-query
  /// attention); 0 means num_heads.
  CausalCore(const char* who, Index d_in, Index d_out, Index context_length, Scalar dropout,
             Index num_heads, Index kv_heads = 0)
      : who_(who),
        d_in_(d_in),
        d_out_(d_out),
        context_length_(context_length),
        dropout_(dropout),
        num_heads_(num_heads),
        kv_heads_(kv_heads == 0 ? num_heads : kv_heads) {
    require_positive(who, "d_in", d_in);
    require_positive(who, "d_out", d_out);
    require_positive(who, "context_length", context_length);
    require_positive(who, "num_heads", num_heads);
    if (d_out % num_heads != 0) {
      throw std::invalid_argument(
          concat(who, ": d_out (", d_out, ") must be divisible by num_heads (", num_heads, ")"));
    }
    validate_dropout(dropout, who);
  }

  Index heads() const { return num_heads_; }
  /// The layer's name in messages ("MultiHeadAttention", ...).
  const char* who() const { return who_; }
  Index kv_heads() const { return kv_heads_; }

  /// @throws ShapeError unless x is (B, T, d_in) with T <= context_length.
  void check_input(const Shape<3>& x) const {
    require_features(who_, x, d_in_, "d_in");
    require_context(who_, x[1], context_length_);
  }

  /// The kernel options of this layer: causal mask, its dropout and mode, its generator.
  AttentionOptions<Scalar> options() const {
    AttentionOptions<Scalar> options;
    options.mask = window_ > 0 ? Mask::sliding_window(window_) : Mask::causal();
    options.dropout = dropout_;
    options.training = training_;
    options.generator = &dropout_generator_;
    options.path = path_;
    return options;
  }

  /// The book registers triu(ones(context_length, context_length), 1) as buffer `mask`.
  template <typename Self, typename Visitor>
  static void visit_mask(Self& self, Visitor& visit, const std::string& prefix) {
    visit(causal_mask_entry<StateElement<Self, Scalar>>(prefix + "mask", self.context_length()));
  }

 private:
  /// Keys and values at consecutive positions; query i of the chunk sees key j of the run
  /// while j <= i + offset (and, with a window, i + offset - j < window). Key j of the run sits
  /// at absolute position first_key + j (where a LayerMask's columns are found).
  struct KeyRun {
    TensorView<const Scalar, 4> keys, values;
    Index offset;
    Index first_key;
  };

  /// @throws ShapeError naming the layer unless a decoding mask covers the S keys of the batch.
  void check_cached_mask(const LayerMask<Scalar>& mask, Index batch, Index T, Index S) const {
    const auto refuse = [&](const char* name, const std::string& shape, const std::string& need) {
      throw ShapeError(concat(who_, ": with a KV cache, ", name, " has shape ", shape,
                              " but must be ", need, ": it covers every key the new tokens see, ",
                              S - T, " cached and ", T, " new (S = ", S, ")"));
    };
    if (mask.key_padding.data() != nullptr && mask.key_padding.shape() != Shape<2>{batch, S}) {
      refuse("key_padding", to_string(mask.key_padding.shape()), concat("(", batch, ", ", S, ")"));
    }
    if (mask.additive.data() != nullptr &&
        (mask.additive.size(2) != T || mask.additive.size(3) != S)) {
      refuse("additive", to_string(mask.additive.shape()), concat("(B|1, H|1, ", T, ", ", S, ")"));
    }
  }

  /// The smallest piece split_for_threads cuts: below it a thread's start-up and the merge
  /// cost more than the keys.
  static constexpr Index min_split_keys = 256;

  /// Splits the longest runs in place until every thread has a piece, when the kernel alone
  /// would leave threads idle: one query tile (decoding) and fewer (batch, head) pairs than
  /// twice the threads.
  static void split_for_threads(std::vector<KeyRun>& runs, Index pairs, Index queries) {
    const Index threads = num_threads();
    if (threads < 2 || queries > 128 || pairs >= Index{2} * threads) return;
    const Index wanted = (Index{2} * threads + pairs - 1) / pairs;  // pieces per pair
    std::vector<KeyRun> pieces;
    for (const auto& run : runs) {
      const Index length = run.keys.size(2);
      const Index count = std::clamp<Index>(length / min_split_keys, 1, wanted);
      const Index step = (length + count - 1) / count;
      for (Index begin = 0; begin < length; begin += step) {
        const Index end = std::min(length, begin + step);
        pieces.push_back({slice(run.keys, 2, begin, end), slice(run.values, 2, begin, end),
                          run.offset - begin, run.first_key + begin});
      }
    }
    runs = std::move(pieces);
  }

  /// The kernel call of attend and attend_runs: with training-mode dropout it holds the
  /// layer's dropout mutex, so concurrent forwards draw unbroken stretches of the generator.
  void kernel_taking_turns(const TensorView<const Scalar, 4>& q,
                           const TensorView<const Scalar, 4>& k,
                           const TensorView<const Scalar, 4>& v, const TensorView<Scalar, 4>& out,
                           const AttentionOptions<Scalar>& attention,
                           const TensorView<Scalar, 4>& weights = {},
                           AttentionCache<Scalar>* cache = nullptr) const {
    std::unique_lock<std::mutex> draws(dropout_mutex_.mutex, std::defer_lock);
    if (attention.training && attention.dropout > Scalar(0)) draws.lock();
    scaled_dot_product_attention<Scalar, 4>(q, k, v, out, attention, weights, cache);
  }

  Mask run_mask(Index offset) const {
    return window_ > 0 ? Mask::sliding_window(window_, offset) : Mask::causal(offset);
  }

  /// out = attention of q over the union of the runs: one kernel call for one run, otherwise a
  /// partial per run (concurrently, each on one thread) merged by log-sum-exp.
  void attend_runs(const TensorView<const Scalar, 4>& q, const std::vector<KeyRun>& runs,
                   const TensorView<Scalar, 4>& out, const LayerMask<Scalar>& mask) const {
    AttentionOptions<Scalar> attention = options();
    // The mask's columns of each run; lengths counted from the run's first key.
    std::vector<Tensor<Index, 1>> run_lengths(runs.size());
    std::vector<LayerMask<Scalar>> run_masks(runs.size());
    for (std::size_t r = 0; r < runs.size(); ++r) {
      const Index first = runs[r].first_key, end = first + runs[r].keys.size(2);
      if (mask.key_lengths.data() != nullptr) {
        run_lengths[r] = Tensor<Index, 1>({mask.key_lengths.size(0)});
        for (Index b = 0; b < mask.key_lengths.size(0); ++b) {
          run_lengths[r](b) = std::max<Index>(0, mask.key_lengths(b) - first);
        }
        run_masks[r].key_lengths = run_lengths[r].view();
      }
      if (mask.key_padding.data() != nullptr) {
        run_masks[r].key_padding = slice(mask.key_padding, 1, first, end);
      }
      if (mask.additive.data() != nullptr)
        run_masks[r].additive = slice(mask.additive, 3, first, end);
    }
    const auto run_options = [&](AttentionOptions<Scalar>& piece, std::size_t r) {
      piece.mask = run_masks[r].on(run_mask(runs[r].offset), who_);
      piece.additive_mask = run_masks[r].additive;
    };
    if (runs.size() == 1) {
      run_options(attention, 0);
      kernel_taking_turns(q, runs[0].keys, runs[0].values, out, attention);
      return;
    }
    const auto count = static_cast<Index>(runs.size());
    const Shape<4> out_shape = out.shape();
    std::vector<Tensor<Scalar, 4>> outs(runs.size());
    std::vector<Tensor<Scalar, 3>> lses(runs.size());
    for (Index r = 0; r < count; ++r) {
      outs[r] = Tensor<Scalar, 4>::uninitialized(out_shape);
      lses[r] = Tensor<Scalar, 3>::uninitialized({out_shape[0], out_shape[1], out_shape[2]});
    }
    // attention_partial throws for dropout in training mode: let every piece finish, then
    // rethrow the first error outside the parallel region.
    std::vector<std::exception_ptr> errors(runs.size());
    ATTN_OMP(parallel for schedule(dynamic, 1) num_threads(num_threads()))
    for (Index r = 0; r < count; ++r) {
      try {
        AttentionOptions<Scalar> piece = attention;
        run_options(piece, static_cast<std::size_t>(r));
        piece.path = AttentionPath::fused;  // the path that keeps the log-sum-exp to merge by
        attention_partial<Scalar, 4>(q, runs[r].keys, runs[r].values, outs[r].view(),
                                     lses[r].view(), piece);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    }
    for (const auto& error : errors) {
      if (error) std::rethrow_exception(error);
    }
    std::vector<AttentionPartial<Scalar, 4>> partials;
    for (Index r = 0; r < count; ++r) partials.push_back({outs[r].view(), lses[r].view()});
    merge_attention_partials<Scalar, 4>(partials, out);
  }

  const char* who_;
  Index d_in_, d_out_, context_length_;
  Scalar dropout_;
  Index num_heads_;
  Index kv_heads_;
  Index window_ = 0;      // 0: plain causal
  bool training_ = true;  // PyTorch modules start in training mode
  AttentionPath path_ = AttentionPath::automatic;
  // Training-mode forward draws dropout masks from here: it is the one piece of state a const
  // forward changes, so those draws hold dropout_mutex_ (see attend).
  mutable Generator dropout_generator_;
  mutable CopyableMutex dropout_mutex_;  // attn/threads.hpp
};

}  // namespace attn::detail

#endif  // ATTN_LAYERS_DETAIL_CAUSAL_CORE_HPP
