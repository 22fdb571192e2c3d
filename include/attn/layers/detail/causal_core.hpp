// attn/layers/detail/causal_core.hpp: what CausalAttention, MultiHeadAttention and
// MultiHeadAttentionCombinedQKV share once their projections are done: the configuration
// checks, train/eval mode, the dropout generator, the book's `mask` buffer entry, and the call
// into the shared kernel with the heads as strided views. The layers derive from it (no virtual
// functions), so its accessors are theirs. Private: users never include this.
#ifndef ATTN_LAYERS_DETAIL_CAUSAL_CORE_HPP
#define ATTN_LAYERS_DETAIL_CAUSAL_CORE_HPP

#include <mutex>
#include <string>

#include "attn/config.hpp"
#include "attn/kernels/dropout.hpp"
#include "attn/kernels/scaled_dot_product_attention.hpp"
#include "attn/layers/detail/validate.hpp"
#include "attn/random/generator.hpp"
#include "attn/state/state_dict.hpp"
#include "attn/tensor/view_ops.hpp"

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

  /// The causal, per-head attention of projected (B, T, d_out) queries, keys and values,
  /// written into context (B, T, d_out). Heads are strided views: no transposed copies.
  /// With a cache, keeps what attend_backward needs; with weights (B, H, T, T), writes the
  /// attention weights there (through the reference path, which materialises them).
  ///
  /// Training-mode dropout draws from the layer's one generator, so concurrent forwards take
  /// turns for the kernel call: each draws one unbroken stretch of the generator's sequence,
  /// and the result is that of the same calls made one after another. Eval mode never locks.
  void attend(const TensorView<const Scalar, 3>& queries, const TensorView<const Scalar, 3>& keys,
              const TensorView<const Scalar, 3>& values, const TensorView<Scalar, 3>& context,
              AttentionCache<Scalar>* cache, const TensorView<Scalar, 4>& weights = {}) const {
    AttentionOptions<Scalar> attention = options();
    if (weights.data() != nullptr) attention.path = AttentionPath::reference;
    std::unique_lock<std::mutex> draws(dropout_mutex_.mutex, std::defer_lock);
    if (attention.training && attention.dropout > Scalar(0)) draws.lock();
    scaled_dot_product_attention<Scalar, 4>(
        split_heads(queries, num_heads_), split_heads(keys, num_heads_),
        split_heads(values, num_heads_), split_heads(context, num_heads_), attention, weights,
        cache);
  }

  /// Backward of attend: writes the (B, T, d_out) gradients of queries, keys and values.
  void attend_backward(
      const TensorView<const Scalar, 3>& queries, const TensorView<const Scalar, 3>& keys,
      const TensorView<const Scalar, 3>& values, const TensorView<const Scalar, 3>& context,
      const TensorView<const Scalar, 3>& grad_context, const TensorView<Scalar, 3>& grad_queries,
      const TensorView<Scalar, 3>& grad_keys, const TensorView<Scalar, 3>& grad_values,
      const AttentionCache<Scalar>& cache) const {
    scaled_dot_product_attention_backward<Scalar, 4>(
        split_heads(queries, num_heads_), split_heads(keys, num_heads_),
        split_heads(values, num_heads_), split_heads(context, num_heads_),
        split_heads(grad_context, num_heads_), split_heads(grad_queries, num_heads_),
        split_heads(grad_keys, num_heads_), split_heads(grad_values, num_heads_), Mask::causal(),
        cache);
  }

 protected:
  /// @throws std::invalid_argument naming the first bad hyper-parameter and its value.
  CausalCore(const char* who, Index d_in, Index d_out, Index context_length, Scalar dropout,
             Index num_heads)
      : who_(who),
        d_in_(d_in),
        d_out_(d_out),
        context_length_(context_length),
        dropout_(dropout),
        num_heads_(num_heads) {
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

  /// @throws ShapeError unless x is (B, T, d_in) with T <= context_length.
  void check_input(const Shape<3>& x) const {
    require_features(who_, x, d_in_, "d_in");
    require_context(who_, x[1], context_length_);
  }

  /// The kernel options of this layer: causal mask, its dropout and mode, its generator.
  AttentionOptions<Scalar> options() const {
    AttentionOptions<Scalar> options;
    options.mask = Mask::causal();
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
  const char* who_;
  Index d_in_, d_out_, context_length_;
  Scalar dropout_;
  Index num_heads_;
  bool training_ = true;  // PyTorch modules start in training mode
  AttentionPath path_ = AttentionPath::automatic;
  // Training-mode forward draws dropout masks from here: it is the one piece of state a const
  // forward changes, so those draws hold dropout_mutex_ (see attend).
  mutable Generator dropout_generator_;
  // A mutex that copies as a new one, so layers stay copyable and movable.
  struct CopyableMutex {
    CopyableMutex() = default;
    CopyableMutex(const CopyableMutex& /*other*/) {}
    CopyableMutex& operator=(const CopyableMutex& /*other*/) { return *this; }
    std::mutex mutex;
  };
  mutable CopyableMutex dropout_mutex_;
};

}  // namespace attn::detail

#endif  // ATTN_LAYERS_DETAIL_CAUSAL_CORE_HPP
