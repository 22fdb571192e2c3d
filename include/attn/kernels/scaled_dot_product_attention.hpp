// attn/kernels/scaled_dot_product_attention.hpp: the one masked scaled-dot-product attention
// kernel that every rung of the ladder calls (Vaswani et al., 2017, eq. 1):
//
//     out = dropout(softmax(mask(scale * q k^T))) v
//
// Shape letters, used in every kernel comment:
//   B batch, H heads (any leading dims, written "..."), T query tokens, S key/value tokens,
//   D query/key head dim, Dv value head dim; Hkv the heads of k and v when they are fewer than
//   q's (grouped-query attention: a divisor of H).
//
// Two implementations sit behind this one entry point: the reference path
// (kernels/reference_attention.hpp) materialises the (T, S) scores and runs the book's five
// stages; the fused path (kernels/fused_attention.hpp) tiles queries and keys with an online
// softmax and never holds the scores. AttentionPath::automatic picks the fused path unless the
// caller asks for the attention weights, which only the reference path returns, or for dropout:
// the reference path draws PyTorch's dropout masks (Generator(s) gives torch.manual_seed(s)'s),
// the fused path draws positional masks of the same distribution (kernels/dropout.hpp) that its
// backward recomputes, so training with dropout stays O(T) in memory there.
#ifndef ATTN_KERNELS_SCALED_DOT_PRODUCT_ATTENTION_HPP
#define ATTN_KERNELS_SCALED_DOT_PRODUCT_ATTENTION_HPP

#include <cmath>
#include <optional>
#include <type_traits>
#include <vector>

#include "attn/autocast.hpp"
#include "attn/config.hpp"
#include "attn/kernels/detail/leading_dims.hpp"
#include "attn/kernels/dropout.hpp"
#include "attn/kernels/fused_attention.hpp"
#include "attn/kernels/mask.hpp"
#include "attn/kernels/reference_attention.hpp"
#include "attn/random/generator.hpp"
#include "attn/tensor/tensor_view.hpp"

namespace attn {

/// Which implementation runs. Both compute the same function (tested to agree).
enum class AttentionPath {
  automatic,  ///< fused, unless attention weights or active dropout ask for the reference path
  reference,  ///< materialised scores, the book's stages: readable, O(T * S) memory
  fused,      ///< tiled online softmax: fast, O(T * Dv) memory; no weights output; positional
              ///< dropout masks (not PyTorch's)
};

/// What the kernel does besides the dot products.
template <typename Scalar>
struct AttentionOptions {
  /// Which keys each query may not see; `true` = masked out.
  Mask mask = Mask::none();
  /// Optional, added to the scaled scores before the mask: PyTorch's float `attn_mask` of
  /// F.scaled_dot_product_attention, (B or 1, H or 1, T, S), broadcast against q's leading dims
  /// aligned on the right (for a rank-3 q (B, T, D): (1, B or 1, T, S)). -inf entries mask a
  /// pair; NaN and +inf are refused. An empty view adds nothing. The view must outlive the
  /// backward, which reads it again.
  TensorView<const Scalar, 4> additive_mask;
  /// Multiplies q k^T; unset means 1 / sqrt(D). The simplified rung passes 1.
  std::optional<Scalar> scale;
  /// Probability of dropping an attention weight, applied only when `training` is true.
  Scalar dropout = Scalar(0);
  bool training = false;
  /// Draws the dropout mask; required when training with dropout > 0.
  Generator* generator = nullptr;
  AttentionPath path = AttentionPath::automatic;
  /// The arithmetic of the fused kernel's products, QK^T and PV (and the backward's): Scalar,
  /// or bfloat16 as torch.autocast's (operands rounded to bfloat16, sums in float; vdpbf16ps on
  /// an AVX512_BF16 CPU). The softmax, its sums and the output stay Scalar, and a single query
  /// (decoding) multiplies in Scalar. The default is the calling thread's Autocast scope
  /// (attn/autocast.hpp), so layers follow it. The reference path always computes in Scalar.
  Compute compute = autocast_compute();
};

/// What a training forward keeps so that scaled_dot_product_attention_backward can run:
/// which path ran, the scale, the per-row log-sum-exp (fused path: O(T) per head), and a copy of
/// the dropout generator as it was before the forward (reference path with dropout), from which
/// the backward replays the same dropout mask instead of storing it.
template <typename Scalar>
struct AttentionCache {
  bool fused = false;
  bool bfloat16_products = false;  ///< fused path: the forward's products were bfloat16's
  Scalar scale = Scalar(1);
  Scalar dropout = Scalar(0);  ///< the dropout that was applied (0 when none)
  std::vector<Scalar> log_sum_exp;
  Generator dropout_replay;        ///< reference path: the generator before the forward's draws
  std::uint64_t dropout_seed = 0;  ///< fused path: the seed of its PositionalDropout
  TensorView<const Scalar, 4> additive_mask;  ///< the forward's additive mask (a view), if any
};

namespace detail {

template <int Rank>
void check_same_leading(const Shape<Rank>& expected, const Shape<Rank>& actual, const char* name,
                        const char* reference = "q") {
  for (int d = 0; d + 2 < Rank; ++d) {
    if (expected[d] != actual[d]) {
      throw ShapeError(concat("scaled_dot_product_attention: ", name, " has shape ",
                              to_string(actual), " but ", reference, " has shape ",
                              to_string(expected), "; the leading (batch, head) dims must match"));
    }
  }
}

/// k's leading dims against q's: equal, except that k may have fewer heads (its last leading
/// dim), a divisor of q's: grouped-query attention.
template <int Rank>
void check_kv_leading(const Shape<Rank>& q, const Shape<Rank>& k) {
  for (int d = 0; d + 2 < Rank; ++d) {
    const bool heads = d == Rank - 3;
    if (q[d] == k[d] || (heads && k[d] > 0 && q[d] % k[d] == 0)) continue;
    throw ShapeError(concat("scaled_dot_product_attention: k has shape ", to_string(k),
                            " but q has shape ", to_string(q),
                            "; the leading (batch, head) dims must match, except that k and v "
                            "may have fewer heads, a divisor of q's (grouped-query attention: ",
                            q[d], " query heads, ", k[d], " kv heads)"));
  }
}

/// @throws ShapeError naming the argument unless Eigen can map its (tokens, dim) blocks.
template <typename T, int Rank>
void require_rows_mappable(const char* who, const char* name, const TensorView<T, Rank>& view) {
  if (!rows_mappable(view)) {
    throw ShapeError(concat(who, ": ", name, " has shape ", to_string(view.shape()),
                            " and strides ", to_string(view.strides()),
                            "; its last dim must be unit-stride and its rows must not overlap "
                            "(a transposed view?): pass a contiguous copy, attn::Tensor(view)"));
  }
}

/// @throws ShapeError unless the additive mask broadcasts against q's leading dims (aligned on
///         the right, as PyTorch broadcasts) and ends in (T, S); std::invalid_argument for a NaN
///         or +inf entry.
template <typename Scalar, int Rank>
void check_additive_mask(const TensorView<const Scalar, 4>& mask, const Shape<Rank>& q, Index S) {
  constexpr const char* who = "scaled_dot_product_attention";
  if (mask.data() == nullptr && mask.numel() == 0) return;
  if constexpr (Rank > 4) {
    throw ShapeError(concat(who, ": an additive mask needs q of rank 2 to 4, not ", Rank));
  } else {
    const Index T = q[Rank - 2];
    bool fits = mask.size(2) == T && mask.size(3) == S;
    for (int d = 0; d < 2; ++d) {
      const int qd = Rank - 4 + d;  // q's dim aligned with the mask's dim d, if any
      const Index against = qd >= 0 ? q[qd] : 1;
      fits = fits && (mask.size(d) == 1 || mask.size(d) == against);
    }
    if (!fits) {
      throw ShapeError(concat(who, ": additive mask has shape ", to_string(mask.shape()),
                              " but must broadcast to q's leading dims and end in (T, S) = (", T,
                              ", ", S, ") (q ", to_string(q), ")"));
    }
    require_rows_mappable(who, "additive mask", mask);
    for (Index a = 0; a < mask.size(0); ++a) {
      for (Index b = 0; b < mask.size(1); ++b) {
        const auto values = as_matrix(broadcast_matrix(mask, a * mask.size(1) + b, mask.size(1)));
        if (values.array().isNaN().any() ||
            (values.array() == std::numeric_limits<Scalar>::infinity()).any()) {
          throw std::invalid_argument(concat(who, ": additive mask [", a, ", ", b,
                                             "] holds NaN or +inf; only finite values and "
                                             "-inf (masked) are allowed"));
        }
      }
    }
  }
}

/// All the checks of the kernel's public entry point, in one place.
template <typename Scalar, int Rank>
Scalar validate_attention(const Shape<Rank>& q, const Shape<Rank>& k, const Shape<Rank>& v,
                          const Shape<Rank>& out, const Shape<Rank>* weights,
                          const AttentionOptions<Scalar>& options) {
  constexpr const char* who = "scaled_dot_product_attention";
  check_kv_leading<Rank>(q, k);
  check_same_leading<Rank>(k, v, "v", "k");
  check_same_leading<Rank>(q, out, "out");
  const Index T = q[Rank - 2], D = q[Rank - 1], S = k[Rank - 2], Dv = v[Rank - 1];
  if (k[Rank - 1] != D) {
    throw ShapeError(concat(who, ": q has head dim ", D, " but k has head dim ", k[Rank - 1],
                            " (q ", to_string(q), ", k ", to_string(k), ")"));
  }
  if (v[Rank - 2] != S) {
    throw ShapeError(concat(who, ": k has ", S, " tokens but v has ", v[Rank - 2], " (k ",
                            to_string(k), ", v ", to_string(v), ")"));
  }
  if (out[Rank - 2] != T || out[Rank - 1] != Dv) {
    throw ShapeError(concat(who, ": out has shape ", to_string(out), " but must end in (", T, ", ",
                            Dv, ") (T, Dv)"));
  }
  if (weights != nullptr) {
    check_same_leading<Rank>(q, *weights, "weights");
    if ((*weights)[Rank - 2] != T || (*weights)[Rank - 1] != S) {
      throw ShapeError(concat(who, ": weights has shape ", to_string(*weights),
                              " but must end in (", T, ", ", S, ") (T, S)"));
    }
  }
  options.mask.check_shape(T, S, who);
  options.mask.check_batch(Rank > 2 ? q[0] : 1, who);
  check_additive_mask<Scalar, Rank>(options.additive_mask, q, S);
  validate_dropout(options.dropout, who);
  if (options.training && options.dropout > Scalar(0) && options.generator == nullptr) {
    throw std::invalid_argument(
        concat(who, ": dropout (", options.dropout, ") in training mode needs a Generator"));
  }
  if (options.path == AttentionPath::fused) {
    if (weights != nullptr) {
      throw std::invalid_argument(concat(who,
                                         ": the fused path does not return attention "
                                         "weights; use AttentionPath::reference"));
    }
  }
  const Scalar scale =
      options.scale.has_value() ? *options.scale : Scalar(1) / std::sqrt(static_cast<Scalar>(D));
  if (!std::isfinite(scale)) {
    throw std::invalid_argument(concat(who, ": scale (", scale, ") must be finite"));
  }
  return scale;
}

}  // namespace detail

/// Masked scaled-dot-product attention over views: the one kernel every rung calls.
///
/// For every leading (batch, head) position:
///   out = dropout(softmax(mask(scale * q k^T))) v
/// T may differ from S (cross-attention). Views may be strided (heads from `split_heads`, slices
/// of a fused projection) as long as each (tokens, dim) block has unit-stride columns.
///
/// Masked logits are -inf. A query whose keys are all masked gets a zero output row (and zero
/// weights); PyTorch returns NaN there. Dropout (inverted) applies to the weights in training
/// mode only; returned weights are after dropout, as nn.MultiheadAttention returns them.
///
/// @param q       (..., T, D)
/// @param k       (..., S, D)
/// @param v       (..., S, Dv)
/// @param out     (..., T, Dv), written (not accumulated). Must not overlap the inputs.
/// @param options mask, scale (default 1/sqrt(D)), dropout and training flag, generator, path.
/// @param weights optional (..., T, S) output of the attention weights; an empty view skips it.
/// @param cache   optional: filled with what scaled_dot_product_attention_backward needs.
/// @throws ShapeError if the shapes disagree (the message names the argument and the shapes),
///         std::invalid_argument for a bad dropout or scale, for dropout without a Generator,
///         or for weights requested from AttentionPath::fused.
template <typename Scalar, int Rank>
void scaled_dot_product_attention(const detail::ConstView<Scalar, Rank>& q,
                                  const detail::ConstView<Scalar, Rank>& k,
                                  const detail::ConstView<Scalar, Rank>& v,
                                  const TensorView<Scalar, Rank>& out,
                                  const AttentionOptions<Scalar>& options = {},
                                  const TensorView<Scalar, Rank>& weights = {},
                                  AttentionCache<Scalar>* cache = nullptr) {
  static_assert(Rank >= 2, "scaled_dot_product_attention needs (..., tokens, dim) views.");
  static_assert(std::is_floating_point_v<Scalar> && !std::is_const_v<Scalar>,
                "scaled_dot_product_attention: out must be a mutable float or double view.");
  constexpr const char* who = "scaled_dot_product_attention";
  const bool want_weights = weights.data() != nullptr || weights.numel() != 0;
  const Shape<Rank>& weights_shape = weights.shape();
  const Scalar scale =
      detail::validate_attention<Scalar, Rank>(q.shape(), k.shape(), v.shape(), out.shape(),
                                               want_weights ? &weights_shape : nullptr, options);
  detail::require_rows_mappable(who, "q", q);
  detail::require_rows_mappable(who, "k", k);
  detail::require_rows_mappable(who, "v", v);
  detail::require_rows_mappable(who, "out", out);
  if (want_weights) detail::require_rows_mappable(who, "weights", weights);

  const bool apply_dropout = options.training && options.dropout > Scalar(0);
  const bool fused = options.path == AttentionPath::fused ||
                     (options.path == AttentionPath::automatic && !want_weights && !apply_dropout);
  // The fused path's dropout: one seed per forward, drawn here (PositionalDropout).
  std::optional<detail::PositionalDropout<Scalar>> positional;
  std::uint64_t dropout_seed = 0;
  if (fused && apply_dropout) {
    dropout_seed = detail::draw_dropout_seed(*options.generator);
    positional.emplace(options.dropout, dropout_seed);
  }
  if (cache != nullptr) {
    cache->fused = fused;
    cache->bfloat16_products = options.compute == Compute::bfloat16;
    cache->scale = scale;
    cache->dropout = apply_dropout ? options.dropout : Scalar(0);
    cache->dropout_seed = dropout_seed;
    if (apply_dropout && !fused) cache->dropout_replay = *options.generator;
    cache->log_sum_exp.assign(fused ? static_cast<std::size_t>(q.numel() / q.shape()[Rank - 1]) : 0,
                              Scalar(0));
    cache->additive_mask = options.additive_mask;
  }
  // The bodies run on rank-4 views (as_kernel_rank), so ranks 2 to 4 share one instantiation.
  using detail::as_kernel_rank;
  const auto masking =
      detail::score_masking(as_kernel_rank(q), options.mask, options.additive_mask);
  if (fused) {
    detail::fused_attention(as_kernel_rank(q), as_kernel_rank(k), as_kernel_rank(v),
                            as_kernel_rank(out), scale, options.compute == Compute::bfloat16,
                            masking, positional ? &*positional : nullptr,
                            cache != nullptr ? cache->log_sum_exp.data() : nullptr);
  } else {
    const auto weights_view = as_kernel_rank(weights);
    detail::reference_attention(as_kernel_rank(q), as_kernel_rank(k), as_kernel_rank(v),
                                as_kernel_rank(out), scale, masking,
                                apply_dropout ? options.dropout : Scalar(0), options.generator,
                                want_weights ? &weights_view : nullptr);
  }
}

/// Gradients of scaled_dot_product_attention with respect to q, k and v, given the gradient of
/// the loss with respect to its output, from what the forward kept in `cache` (the same path,
/// mask, scale and dropout mask are used). Stages mirror the forward in reverse:
///   5. dv = P'^T dout, dP' = dout v^T   4. dP = dropout mask applied to dP'
///   3. dS = P (dP - rowsum(dP P))       1. dq = scale dS k, dk = scale dS^T q
/// Masked pairs get no gradient; a fully masked query's row gives zero gradients.
/// @param q, k, v, out the forward's operands and output, unchanged since the forward.
/// @param grad_out     (..., T, Dv) gradient with respect to out.
/// @param grad_q, grad_k, grad_v written (not accumulated), shaped like q, k, v; may be strided.
/// @param mask         the forward's mask (scale and dropout are taken from the cache).
/// @throws ShapeError if a gradient's shape differs from its operand's, or the cache does not
///         fit these shapes.
template <typename Scalar, int Rank>
void scaled_dot_product_attention_backward(
    const detail::ConstView<Scalar, Rank>& q, const detail::ConstView<Scalar, Rank>& k,
    const detail::ConstView<Scalar, Rank>& v, const detail::ConstView<Scalar, Rank>& out,
    const detail::ConstView<Scalar, Rank>& grad_out, const TensorView<Scalar, Rank>& grad_q,
    const TensorView<Scalar, Rank>& grad_k, const TensorView<Scalar, Rank>& grad_v,
    const Mask& mask, const AttentionCache<Scalar>& cache) {
  constexpr const char* who = "scaled_dot_product_attention_backward";
  AttentionOptions<Scalar> shapes_only;  // dropout and scale come from the cache
  shapes_only.mask = mask;
  shapes_only.additive_mask = cache.additive_mask;
  detail::validate_attention<Scalar, Rank>(q.shape(), k.shape(), v.shape(), out.shape(), nullptr,
                                           shapes_only);
  const std::pair<const char*, std::pair<Shape<Rank>, Shape<Rank>>> pairs[] = {
      {"grad_out", {grad_out.shape(), out.shape()}},
      {"grad_q", {grad_q.shape(), q.shape()}},
      {"grad_k", {grad_k.shape(), k.shape()}},
      {"grad_v", {grad_v.shape(), v.shape()}}};
  for (const auto& [name, shapes] : pairs) {
    if (shapes.first != shapes.second) {
      throw ShapeError(detail::concat(who, ": ", name, " has shape ", to_string(shapes.first),
                                      " but must be ", to_string(shapes.second)));
    }
  }
  const std::pair<const char*, TensorView<const Scalar, Rank>> operands[] = {{"q", q},
                                                                             {"k", k},
                                                                             {"v", v},
                                                                             {"out", out},
                                                                             {"grad_out", grad_out},
                                                                             {"grad_q", grad_q},
                                                                             {"grad_k", grad_k},
                                                                             {"grad_v", grad_v}};
  for (const auto& [name, view] : operands) detail::require_rows_mappable(who, name, view);
  using detail::as_kernel_rank;  // one instantiation of the bodies for ranks 2 to 4
  const auto masking = detail::score_masking(as_kernel_rank(q), mask, cache.additive_mask);
  if (cache.fused) {
    const auto rows = static_cast<std::size_t>(q.numel() / q.shape()[Rank - 1]);
    if (cache.log_sum_exp.size() != rows) {
      throw ShapeError(detail::concat(who, ": the cache holds ", cache.log_sum_exp.size(),
                                      " rows but q has ", rows, "; pass the forward's cache"));
    }
    std::optional<detail::PositionalDropout<Scalar>> positional;
    if (cache.dropout > Scalar(0)) positional.emplace(cache.dropout, cache.dropout_seed);
    detail::fused_attention_backward(
        as_kernel_rank(q), as_kernel_rank(k), as_kernel_rank(v), as_kernel_rank(out),
        as_kernel_rank(grad_out), as_kernel_rank(grad_q), as_kernel_rank(grad_k),
        as_kernel_rank(grad_v), cache.scale, cache.bfloat16_products, masking,
        positional ? &*positional : nullptr, cache.log_sum_exp.data());
  } else {
    Generator replay = cache.dropout_replay;
    detail::reference_attention_backward(as_kernel_rank(q), as_kernel_rank(k), as_kernel_rank(v),
                                         as_kernel_rank(grad_out), as_kernel_rank(grad_q),
                                         as_kernel_rank(grad_k), as_kernel_rank(grad_v),
                                         cache.scale, masking, cache.dropout, &replay);
  }
}

}  // namespace attn

#endif  // ATTN_KERNELS_SCALED_DOT_PRODUCT_ATTENTION_HPP
