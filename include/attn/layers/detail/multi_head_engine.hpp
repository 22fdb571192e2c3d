// attn/layers/detail/multi_head_engine.hpp: everything MultiHeadAttention,
// MultiHeadAttentionCombinedQKV and GroupedQueryAttention share: they compute the same function
// (GQA with fewer key/value heads) and differ only in how their parameters are named and
// initialised, so each is a thin front end deriving from this. Queries, keys and values come
// from one (d_out + 2 * kv_dim, d_in) projection (kv_dim = kv_heads * head_dim, d_out for MHA),
// so x is read once in one GEMM; the heads are strided views into its output, the kernel writes
// each head's context into its columns of one (B, T, d_out) buffer, and out_proj reads that
// buffer. Private.
#ifndef ATTN_LAYERS_DETAIL_MULTI_HEAD_ENGINE_HPP
#define ATTN_LAYERS_DETAIL_MULTI_HEAD_ENGINE_HPP

#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "attn/config.hpp"
#include "attn/kernels/rope.hpp"
#include "attn/layers/context_with_weights.hpp"
#include "attn/layers/detail/causal_core.hpp"
#include "attn/layers/detail/validate.hpp"
#include "attn/layers/kv_cache.hpp"
#include "attn/layers/linear.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/view_ops.hpp"

namespace attn::detail {

template <typename ScalarType>
class MultiHeadEngine : public CausalCore<ScalarType> {
  using Core = CausalCore<ScalarType>;

 public:
  using Scalar = ScalarType;

  Index num_heads() const { return this->heads(); }
  Index head_dim() const { return this->d_out() / this->heads(); }
  /// Width of the keys (and of the values): kv_heads * head_dim, d_out without grouping.
  Index kv_dim() const { return this->kv_heads() * head_dim(); }

  /// Rotary position embeddings (RoPE, kernels/rope.hpp) on queries and keys, at their
  /// absolute positions (a KV cache's offset included), as Llama-style models use them:
  /// compute_rope_params(head_dim, theta_base, context_length); positions beyond
  /// context_length are refused.
  /// @throws std::invalid_argument as compute_rope_params (an odd head_dim, theta_base <= 0).
  void set_rope(Scalar theta_base = Scalar(10000), Index context_length = 4096) {
    rope_ = compute_rope_params<Scalar>(head_dim(), theta_base, context_length);
  }
  /// RoPE with the tables given, of any floating type, as the book passes its cos and sin to
  /// the layer: e.g. compute_rope_params<float>(...)'s (the book's default dtype is float32) to
  /// a double layer, which then rotates by exactly those values widened, as PyTorch's float64
  /// x * float32 cos does. Rows are positions (context_length of them), columns head_dim.
  /// @throws ShapeError if cos and sin differ in shape or do not have head_dim columns.
  template <typename T>
  void set_rope(const TensorView<const T, 2>& cos, const TensorView<const T, 2>& sin) {
    static_assert(std::is_floating_point_v<T>, "RoPE tables are float or double.");
    if (cos.shape() != sin.shape() || cos.size(1) != head_dim()) {
      throw ShapeError(concat(this->who(), ": RoPE tables cos ", to_string(cos.shape()),
                              " and sin ", to_string(sin.shape()),
                              " must both be (context_length, head_dim = ", head_dim(), ")"));
    }
    RopeParams<Scalar> tables{Tensor<Scalar, 2>::uninitialized(cos.shape()),
                              Tensor<Scalar, 2>::uninitialized(cos.shape())};
    for (Index p = 0; p < cos.size(0); ++p) {
      for (Index i = 0; i < cos.size(1); ++i) {
        tables.cos(p, i) = static_cast<Scalar>(cos(p, i));
        tables.sin(p, i) = static_cast<Scalar>(sin(p, i));
      }
    }
    rope_ = std::move(tables);
  }
  template <typename T>
  void set_rope(const RopeParams<T>& tables) {
    set_rope(TensorView<const T, 2>(tables.cos.view()), TensorView<const T, 2>(tables.sin.view()));
  }
  bool has_rope() const { return rope_.has_value(); }

  /// What a training forward keeps for backward: the input, the (B, T, d_out + 2 kv_dim)
  /// projection, the (B, T, d_out) context before the output projection, and the kernel's cache
  /// (log-sum-exp per row, or the dropout generator's state).
  struct Cache {
    Tensor<Scalar, 3> x, projected, context;
    AttentionCache<Scalar> attention;
    OwnedLayerMask<Scalar> mask;  // the forward's LayerMask, copied
  };

  /// @param x (B, T, d_in), T <= context_length. @return (B, T, d_out).
  /// A KV cache for this layer, for `batch` sequences, that follows the layer's window: with a
  /// window (set_window), a ring of its last `window` positions that any number of tokens may
  /// pass through; without one, room for `capacity` positions (0: context_length). Set the
  /// window first: a cache keeps the window it was made with.
  /// @throws std::invalid_argument if batch is not positive, capacity is negative, or capacity
  ///         is 0 for a layer without a context_length (GroupedQueryAttention, no window).
  KVCache<Scalar> make_kv_cache(Index batch, Index capacity = 0) const {
    if (capacity < 0) {
      throw std::invalid_argument(
          concat(this->who(), "::make_kv_cache: capacity (", capacity, ") must not be negative"));
    }
    if (this->window() > 0) {
      return KVCache<Scalar>::with_window(batch, this->kv_heads(), head_dim(), this->window());
    }
    if (capacity == 0 && this->context_length() == std::numeric_limits<Index>::max()) {
      throw std::invalid_argument(concat(this->who(),
                                         "::make_kv_cache: the layer has no context_length and "
                                         "no window; pass the capacity, the most tokens a "
                                         "sequence will hold"));
    }
    return KVCache<Scalar>(batch, this->kv_heads(), head_dim(),
                           capacity == 0 ? this->context_length() : capacity);
  }

  /// @throws ShapeError if x does not fit.
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x) const { return run(x, nullptr); }

  /// Forward that fills `cache` for backward. Same result as forward(x).
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x, Cache& cache) const {
    return run(x, &cache);
  }

  /// forward(x) of a batch of sequences of different lengths: `mask` (layers/layer_mask.hpp)
  /// adds key padding and an additive mask to the layer's causal one, as PyTorch's
  /// key_padding_mask and float attn_mask do.
  /// @throws ShapeError if the mask's shapes do not fit x; std::out_of_range for a negative
  ///         key length; std::invalid_argument for key_lengths and key_padding together.
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x,
                            const LayerMask<Scalar>& mask) const {
    return run(x, nullptr, {}, mask);
  }
  /// forward(x, mask) that fills `cache` for backward, which then applies the same mask (the
  /// cache keeps a copy of it).
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x, Cache& cache,
                            const LayerMask<Scalar>& mask) const {
    return run(x, &cache, {}, mask);
  }

  /// Inference with a KV cache (the book's use_cache): x (B, T, d_in) holds the next T tokens
  /// of each sequence, after the cache.size() already cached; their keys and values are
  /// appended to `cache` and each query attends to every earlier position (within the window,
  /// if set_window). Prefill with the prompt, then one token at a time: the outputs equal one
  /// forward over the whole sequence. T <= context_length per call; without a window the cache's
  /// capacity bounds the sequence. A `mask` (layers/layer_mask.hpp) covers every key the new
  /// tokens see, S = cache.size() + T positions from the first: key_padding (B, S), key_lengths,
  /// additive (B|1, H|1, T, S) (the rows of the new tokens only).
  /// @throws ShapeError if x or the mask does not fit or the cache was made for another layer
  ///         or batch; std::out_of_range when the cache is full; std::invalid_argument if the
  ///         cache's window differs from the layer's.
  Tensor<Scalar, 3> forward(const TensorView<const Scalar, 3>& x, KVCache<Scalar>& cache,
                            const LayerMask<Scalar>& mask = {}) const {
    this->check_input(x.shape());
    Tensor<Scalar, 3> projected = qkv_.forward(x);
    rotate(projected.view(), cache.size());
    auto context = Tensor<Scalar, 3>::uninitialized({x.size(0), x.size(1), this->d_out()});
    const auto p = projected.view();
    this->attend_cached(part(p, 0), part(p, 1), part(p, 2), context.view(), cache, mask);
    return out_.forward(context.view());
  }

  /// Stores both projections' weights as `format` (Linear::set_weight_format).
  void set_weight_format(WeightFormat format) {
    qkv_.set_weight_format(format);
    out_.set_weight_format(format);
  }

  ATTN_LAYER_INPUT_CHECKS("MultiHeadAttention(CombinedQKV) or GroupedQueryAttention", 3,
                          "(batch, tokens, d_in)")

  /// Forward that also returns the (B, H, T, T) attention weights of every head, the book's
  /// `attn_weights`, with the projections' biases included.
  ContextWithWeights<Scalar, 3, 4> forward_with_weights(
      const TensorView<const Scalar, 3>& x) const {
    this->check_input(x.shape());  // before the (B, H, T, T) weights are allocated
    const Index T = x.size(1);
    ContextWithWeights<Scalar, 3, 4> result{{}, Tensor<Scalar, 4>({x.size(0), num_heads(), T, T})};
    result.context = run(x, nullptr, result.weights.view());
    return result;
  }

  /// Backward of forward(x, cache): returns dL/dx (B, T, d_in) and accumulates (+=) the
  /// gradients of every parameter (see the layer's visit_state).
  /// @param grad_out (B, T, d_out), dL/dout.
  Tensor<Scalar, 3> backward(const Cache& cache, const TensorView<const Scalar, 3>& grad_out) {
    require_filled_cache(this->who(), "forward(x, cache)", cache.x.shape() != Shape<3>{});
    // out = out_proj(context)  ->  d context, and out_proj's gradients
    const Tensor<Scalar, 3> grad_context = out_.backward(cache.context.view(), grad_out);
    // context = attention(q, k, v)  ->  dq, dk, dv, side by side like the projection
    auto grad_projected = Tensor<Scalar, 3>::uninitialized(cache.projected.shape());
    const auto p = cache.projected.view();
    const auto g = grad_projected.view();
    this->attend_backward(part(p, 0), part(p, 1), part(p, 2), cache.context.view(),
                          grad_context.view(), part(g, 0), part(g, 1), part(g, 2), cache.attention,
                          cache.mask.view());
    // q = rope(q'), k = rope(k')  ->  dq' and dk', the rotations transposed
    if (rope_) {
      apply_rope_backward<Scalar, 4>(split_heads(part(g, 0), num_heads()), *rope_, 0);
      apply_rope_backward<Scalar, 4>(split_heads(part(g, 1), this->kv_heads()), *rope_, 0);
    }
    // projected = x W_qkv^T + b  ->  dx, and the projection's gradients
    return qkv_.backward(cache.x.view(), grad_projected.view());
  }

 protected:
  /// Parameters start at zero; the front end initialises them in its PyTorch order.
  /// @throws std::invalid_argument as CausalCore.
  /// kv_heads: as CausalCore (0: num_heads); out_bias: whether out_proj has a bias.
  MultiHeadEngine(const char* who, Index d_in, Index d_out, Index context_length, Scalar dropout,
                  Index num_heads, bool qkv_bias, Index kv_heads = 0, bool out_bias = true)
      : Core(who, d_in, d_out, context_length, dropout, num_heads, kv_heads),
        qkv_(Linear<Scalar>::zeros(d_in, d_out + 2 * kv_dim(), qkv_bias)),
        out_(Linear<Scalar>::zeros(d_out, d_out, out_bias)) {}

  Linear<Scalar>& qkv() { return qkv_; }
  Linear<Scalar>& out() { return out_; }

  /// Where part 0 (queries, d_out wide), 1 (keys) or 2 (values, kv_dim wide each) begins in
  /// the stacked projection, and one past its end.
  Index part_begin(Index part) const {
    return part == 0 ? 0 : this->d_out() + (part - 1) * kv_dim();
  }
  Index part_end(Index part) const {
    return part == 0 ? this->d_out() : part_begin(part) + kv_dim();
  }

  /// The columns of part 0, 1 or 2 in a (B, T, d_out + 2 kv_dim) projection or its gradient.
  template <typename T>
  TensorView<T, 3> part(const TensorView<T, 3>& projected, Index which) const {
    return slice(projected, 2, part_begin(which), part_end(which));
  }

  /// The rows of part 0, 1 or 2 in the stacked weight, each (width, d_in) as nn.Linear stores it.
  TensorView<Scalar, 2> weight_part(Index part) {
    return slice(qkv_.weight().view(), 0, part_begin(part), part_end(part));
  }
  /// The matching bias entries; empty without qkv_bias.
  TensorView<Scalar, 1> bias_part(Index part) {
    if (!qkv_.has_bias()) return {};
    return slice(qkv_.bias().view(), 0, part_begin(part), part_end(part));
  }

  /// Initialises the parameters as three separate nn.Linear's and then out_proj would be: weight
  /// then bias, for the queries, keys and values in turn (MultiHeadAttention's and
  /// GroupedQueryAttention's order, so Generator(s) gives torch.manual_seed(s)'s weights).
  void reset_split_parameters(Generator& generator) {
    const Scalar bound = Linear<Scalar>::init_bound(this->d_in());
    const auto draw = [&](const auto& view) {
      for (Index i = 0; i < view.numel(); ++i) {
        view.data()[i] = generator.template uniform<Scalar>(-bound, bound);
      }
    };
    for (Index which = 0; which < 3; ++which) {
      draw(weight_part(which));
      draw(bias_part(which));
    }
    out_.reset_parameters(generator);
  }

  /// The stacked projection's entries as three nn.Linear's (MultiHeadAttention's and
  /// GroupedQueryAttention's names): "<names[p]>weight" (width, d_in) and, with qkv_bias,
  /// "<names[p]>bias" (width), width d_out for the queries and kv_dim for keys and values.
  template <typename Self, typename Visitor>
  static void visit_split_qkv(Self& self, Visitor& visit, const std::string& prefix,
                              const char* const (&names)[3]) {
    // The stacked Linear's own entries (weight, then bias), each cut into its three row blocks:
    // their data and their gradients, which stay unallocated until something needs them.
    // They are cut inside the Linear's visit, when its last entry arrives: a const visit of
    // bfloat16 weights widens them for that visit only.
    using Entry = StateEntry<StateElement<Self, Scalar>>;
    std::vector<Entry> stacked;
    const std::size_t entries = self.qkv_.has_bias() ? 2 : 1;
    self.qkv_.visit_state([&](const Entry& stacked_entry) {
      stacked.push_back(stacked_entry);
      if (stacked.size() < entries) return;
      for (Index part = 0; part < 3; ++part) {
        const Index row0 = self.part_begin(part), width = self.part_end(part) - row0;
        for (const Entry& entry : stacked) {
          const bool weight = entry.shape.size() == 2;
          const Index offset = weight ? row0 * self.d_in() : row0;
          visit(parameter_entry(
              prefix + names[part] + (weight ? "weight" : "bias"),
              weight ? std::vector<Index>{width, self.d_in()} : std::vector<Index>{width},
              entry.data + offset, entry.grad.offset_by(offset)));
        }
      }
    });
  }

  /// The stacked projection as one nn.Linear (MultiHeadAttentionCombinedQKV's `qkv`).
  template <typename Self, typename Visitor>
  static void visit_stacked_qkv(Self& self, Visitor& visit, const std::string& prefix) {
    self.qkv_.visit_state(visit, prefix);
  }

  /// The output projection under `out_name`.
  template <typename Self, typename Visitor>
  static void visit_out(Self& self, Visitor& visit, const std::string& prefix,
                        const char* out_name) {
    self.out_.visit_state(visit, prefix + out_name);
  }

  /// The output projection under `out_name`, then the book's mask buffer.
  template <typename Self, typename Visitor>
  static void visit_out_and_mask(Self& self, Visitor& visit, const std::string& prefix,
                                 const char* out_name) {
    visit_out(self, visit, prefix, out_name);
    Core::visit_mask(self, visit, prefix);
  }

 private:
  Tensor<Scalar, 3> run(const TensorView<const Scalar, 3>& x, Cache* cache,
                        const TensorView<Scalar, 4>& weights = {},
                        const LayerMask<Scalar>& mask = {}) const {
    this->check_input(x.shape());
    Tensor<Scalar, 3> projected = qkv_.forward(x);  // (B, T, d_out + 2 kv_dim), one GEMM
    rotate(projected.view(), 0);
    auto context = Tensor<Scalar, 3>::uninitialized({x.size(0), x.size(1), this->d_out()});
    const auto p = projected.view();
    // A training forward attends with the cache's copy of the mask: the kernel's cache keeps a
    // view of the additive mask, and backward needs the padding again.
    if (cache != nullptr) cache->mask = OwnedLayerMask<Scalar>(mask);
    this->attend(part(p, 0), part(p, 1), part(p, 2), context.view(),
                 cache != nullptr ? &cache->attention : nullptr, weights,
                 cache != nullptr ? cache->mask.view() : mask);
    Tensor<Scalar, 3> out = out_.forward(context.view());
    if (cache != nullptr) {
      cache->x = Tensor<Scalar, 3>(x);
      cache->projected = std::move(projected);
      cache->context = std::move(context);
    }
    return out;
  }

  /// With RoPE: rotates the queries and keys of a projection in place, its first token at
  /// absolute position `position`. (The cache keeps the rotated keys, the training cache the
  /// rotated projection, which is what the attention's backward needs.)
  void rotate(const TensorView<Scalar, 3>& projected, Index position) const {
    if (!rope_) return;
    apply_rope<Scalar, 4>(split_heads(part(projected, 0), num_heads()), *rope_, position);
    apply_rope<Scalar, 4>(split_heads(part(projected, 1), this->kv_heads()), *rope_, position);
  }

  Linear<Scalar> qkv_;
  Linear<Scalar> out_;
  std::optional<RopeParams<Scalar>> rope_;
};

}  // namespace attn::detail

#endif  // ATTN_LAYERS_DETAIL_MULTI_HEAD_ENGINE_HPP
