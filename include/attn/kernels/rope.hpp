// attn/kernels/rope.hpp: rotary position embeddings (RoPE; Su et al., "RoFormer", 2021), the
// position encoding of Llama that "Build a Large Language Model (From Scratch)" introduces in
// ch05/07_gpt_to_llama. It is applied to the queries and keys of each head before the shared
// attention kernel, in place of GPT-2's learned position embedding.
//
// Token p's head vector is split into pairs of coordinates, and each pair is rotated by the angle
// p * theta_base^(-2i / D), so a query-key dot product depends only on how far apart the two
// tokens are. The pairing is the book's, as in Hugging Face's Llama ("rotate_half"): coordinate i
// pairs with coordinate i + D/2 (the two halves of the head), not the interleaved (2i, 2i + 1) of
// the RoFormer paper and Meta's reference code; weights trained one way need their q and k
// projection rows permuted for the other. With x1, x2 the halves of x:
//
//     out = x * cos + cat(-x2, x1) * sin,   cos, sin rows of compute_rope_params' tables.
//
// Shape letters as in kernels/scaled_dot_product_attention.hpp: T tokens, D head dim.
#ifndef ATTN_KERNELS_ROPE_HPP
#define ATTN_KERNELS_ROPE_HPP

#include <cmath>
#include <type_traits>
#include <utility>

#include "attn/config.hpp"
#include "attn/kernels/detail/leading_dims.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/shape.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/tensor_view.hpp"

namespace attn {

/// The cos and sin tables of RoPE, each (context_length, head_dim): row p holds the angles of
/// absolute position p, its second half repeating its first. A plain aggregate, so
/// `auto [cos, sin] = compute_rope_params<float>(64);` unpacks it.
template <typename Scalar>
struct RopeParams {
  Tensor<Scalar, 2> cos;
  Tensor<Scalar, 2> sin;

  Index head_dim() const { return cos.size(1); }
  Index context_length() const { return cos.size(0); }
};

namespace detail {

/// @throws ShapeError for an odd or non-positive head_dim or a non-positive context_length,
///         std::invalid_argument for a theta_base that is not positive and finite.
template <typename Scalar>
void validate_rope_params(Index head_dim, Scalar theta_base, Index context_length) {
  constexpr const char* who = "compute_rope_params";
  if (head_dim <= 0 || head_dim % 2 != 0) {
    throw ShapeError(concat(who, ": head_dim (", head_dim,
                            ") must be positive and even (RoPE rotates pairs of coordinates)"));
  }
  if (context_length <= 0) {
    throw ShapeError(concat(who, ": context_length (", context_length, ") must be positive"));
  }
  if (!(theta_base > Scalar(0)) || !std::isfinite(theta_base)) {
    throw std::invalid_argument(
        concat(who, ": theta_base (", theta_base, ") must be positive and finite"));
  }
}

/// All the checks of apply_rope and apply_rope_backward, in one place. `x` is the operand
/// (named `name` in messages), `tokens` and `head_dim` its last two extents.
template <typename Scalar, int Rank>
void validate_rope(const char* who, const char* name, const TensorView<Scalar, Rank>& x,
                   const TensorView<const Scalar, 2>& cos, const TensorView<const Scalar, 2>& sin,
                   Index position) {
  const Index tokens = x.shape()[Rank - 2], head_dim = x.shape()[Rank - 1];
  if (cos.shape() != sin.shape()) {
    throw ShapeError(concat(who, ": cos has shape ", to_string(cos.shape()), " but sin has shape ",
                            to_string(sin.shape()), "; the two tables must have the same shape"));
  }
  if (head_dim != cos.shape()[1]) {
    throw ShapeError(concat(who, ": ", name, " has shape ", to_string(x.shape()),
                            ", its last dim (head_dim ", head_dim,
                            ") must equal the columns of cos (", cos.shape()[1], ", cos has shape ",
                            to_string(cos.shape()), ")"));
  }
  if (head_dim % 2 != 0) {
    throw ShapeError(concat(who, ": ", name, " has shape ", to_string(x.shape()),
                            ", its head_dim (", head_dim,
                            ") must be even (RoPE rotates its two halves)"));
  }
  if (position < 0) {
    throw IndexError(concat(who, ": position (", position, ") must not be negative"));
  }
  if (position > cos.shape()[0] - tokens) {
    throw IndexError(concat(who, ": position (", position, ") + tokens (", tokens, ") of ", name,
                            " = ", position + tokens, " exceeds context_length (", cos.shape()[0],
                            "), the rows of cos and sin"));
  }
  const std::pair<const char*, TensorView<const Scalar, 2>> tables[] = {{"cos", cos}, {"sin", sin}};
  for (const auto& [table, view] : tables) {
    // Only read, so any row stride will do (a broadcast row too).
    if (view.strides()[1] != 1 && view.shape()[1] > 1) {
      throw ShapeError(concat(who, ": ", table, " has shape ", to_string(view.shape()),
                              " and strides ", to_string(view.strides()),
                              "; its last dim must be unit-stride"));
    }
  }
  if (!rows_mappable(x)) {
    throw ShapeError(concat(who, ": ", name, " has shape ", to_string(x.shape()), " and strides ",
                            to_string(x.strides()),
                            "; it is rotated in place, so its last dim must be unit-stride and its "
                            "rows must not overlap (a transposed or broadcast view?)"));
  }
}

/// Rotates each (token, head) row of x in place: by the angles of rows position + t of the
/// tables (forward), or by their transpose (backward, `transpose` true). Rank-4 views only
/// (as_kernel_rank), so ranks 2 to 4 share one body per Scalar.
template <typename Scalar>
void rope_rows(const TensorView<Scalar, 4>& x, const TensorView<const Scalar, 2>& cos,
               const TensorView<const Scalar, 2>& sin, Index position, bool transpose) {
  using Array = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  using Map = Eigen::Map<Array>;
  using ConstMap = Eigen::Map<const Array>;
  const Index tokens = x.shape()[2], half = x.shape()[3] / 2;
  if (half == 0) return;
  // Each half's new values read both old halves, so the first is kept before it is overwritten;
  // one buffer per call, not per row.
  Array saved(half);
  const Index matrices = leading_count<4>(x.shape());
  for (Index m = 0; m < matrices; ++m) {
    const TensorView<Scalar, 2> block = leading_matrix(x, m);
    for (Index t = 0; t < tokens; ++t) {
      Scalar* row = block.data() + t * block.strides()[0];
      const Scalar* c = cos.data() + (position + t) * cos.strides()[0];
      const Scalar* s = sin.data() + (position + t) * sin.strides()[0];
      // Eigen's packet arithmetic over whole halves: vectorised whatever the compiler's
      // auto-vectoriser makes of the aliasing between the halves of one row.
      Map x1(row, half), x2(row + half, half);
      const ConstMap c1(c, half), c2(c + half, half), s1(s, half), s2(s + half, half);
      saved = x1;
      if (!transpose) {
        // out = x * cos + cat(-x2, x1) * sin, in PyTorch's order of operations.
        x1 = x1 * c1 - x2 * s1;
        x2 = x2 * c2 + saved * s2;
      } else {
        // The transpose of that map, d out / d x applied to a gradient g: each table half meets
        // the coordinate it multiplied, so it holds for any tables; for RoPE's own (equal
        // halves) it is the rotation by the negative angles.
        x1 = x1 * c1 + x2 * s2;
        x2 = x2 * c2 - saved * s1;
      }
    }
  }
}

}  // namespace detail

/// RoPE's cos and sin tables, as the book's compute_rope_params computes them:
///   inv_freq[i] = 1 / theta_base^(2i / head_dim),  i < head_dim / 2
///   angle(p, i) = angle(p, i + head_dim / 2) = p * inv_freq[i],  p < context_length
/// Every step runs in Scalar, in PyTorch's order, so the float tables follow PyTorch's float32
/// ones (not float64 angles rounded at the end): a float angle p * inv_freq carries an absolute
/// error of about p eps, as PyTorch's does.
/// @return (context_length, head_dim) tables cos(angle) and sin(angle).
/// @throws ShapeError if head_dim is odd or not positive, or context_length is not positive;
///         std::invalid_argument if theta_base is not positive and finite.
template <typename Scalar>
RopeParams<Scalar> compute_rope_params(Index head_dim, Scalar theta_base = Scalar(10000),
                                       Index context_length = 4096) {
  static_assert(std::is_floating_point_v<Scalar>,
                "compute_rope_params computes float or double tables.");
  detail::validate_rope_params(head_dim, theta_base, context_length);
  const Index half = head_dim / 2;
  RopeParams<Scalar> params{Tensor<Scalar, 2>::uninitialized({context_length, head_dim}),
                            Tensor<Scalar, 2>::uninitialized({context_length, head_dim})};
  Eigen::Array<Scalar, Eigen::Dynamic, 1> inv_freq(half);
  for (Index i = 0; i < half; ++i) {
    const Scalar exponent = static_cast<Scalar>(2 * i) / static_cast<Scalar>(head_dim);
    inv_freq[i] = Scalar(1) / std::pow(theta_base, exponent);
  }
  for (Index p = 0; p < context_length; ++p) {
    Scalar* cos_row = params.cos.data() + p * head_dim;
    Scalar* sin_row = params.sin.data() + p * head_dim;
    for (Index i = 0; i < half; ++i) {
      const Scalar angle = static_cast<Scalar>(p) * inv_freq[i];
      cos_row[i] = cos_row[i + half] = std::cos(angle);
      sin_row[i] = sin_row[i + half] = std::sin(angle);
    }
  }
  return params;
}

/// Applies RoPE to x in place: token t of x is at absolute position `position + t` and is
/// rotated by row position + t of the tables, so a KV cache passes the number of tokens it
/// already holds. Halves convention (rotate_half): coordinate i pairs with i + D/2.
///   x = x * cos[position + t] + cat(-x2, x1) * sin[position + t]
/// @param x        (..., T, D), rotated in place; may be strided (heads from `split_heads`) as
///                 long as its last dim is unit-stride and its rows do not overlap.
/// @param cos, sin (context_length, D) tables, e.g. compute_rope_params'; any row stride,
///                 unit-stride columns. Any tables work; RoPE's have equal halves.
/// @param position the absolute position of x's first token, 0 <= position <= context_length - T.
/// @throws ShapeError if cos and sin differ in shape, D differs from their columns or is odd, or
///         a view's last dim is not unit-stride; IndexError (std::out_of_range) if position is
///         negative or position + T exceeds context_length.
template <typename Scalar, int Rank>
void apply_rope(const TensorView<Scalar, Rank>& x, const detail::ConstView<Scalar, 2>& cos,
                const detail::ConstView<Scalar, 2>& sin, Index position = 0) {
  static_assert(Rank >= 2, "apply_rope needs an (..., tokens, head_dim) view.");
  static_assert(std::is_floating_point_v<Scalar> && !std::is_const_v<Scalar>,
                "apply_rope rotates a mutable float or double view in place.");
  detail::validate_rope("apply_rope", "x", x, cos, sin, position);
  detail::rope_rows<Scalar>(detail::as_kernel_rank(x), cos, sin, position, false);
}

/// The backward of apply_rope, in place: given the gradient of the loss with respect to
/// apply_rope's output, leaves the gradient with respect to its input, the transpose of the
/// forward's map (for RoPE's tables, the rotation by the negative angles):
///   grad1 = grad1 * cos1 + grad2 * sin2,   grad2 = grad2 * cos2 - grad1 * sin1
/// with 1 and 2 the halves of a row and of the table rows. Overwrites, does not accumulate.
/// @param grad     (..., T, D), the forward's x shape; strides as for apply_rope.
/// @param cos, sin, position the forward's.
/// @throws as apply_rope.
template <typename Scalar, int Rank>
void apply_rope_backward(const TensorView<Scalar, Rank>& grad,
                         const detail::ConstView<Scalar, 2>& cos,
                         const detail::ConstView<Scalar, 2>& sin, Index position = 0) {
  static_assert(Rank >= 2, "apply_rope_backward needs an (..., tokens, head_dim) view.");
  static_assert(std::is_floating_point_v<Scalar> && !std::is_const_v<Scalar>,
                "apply_rope_backward rotates a mutable float or double view in place.");
  detail::validate_rope("apply_rope_backward", "grad", grad, cos, sin, position);
  detail::rope_rows<Scalar>(detail::as_kernel_rank(grad), cos, sin, position, true);
}

/// apply_rope with the tables of compute_rope_params.
template <typename Scalar, int Rank>
void apply_rope(const TensorView<Scalar, Rank>& x, const RopeParams<Scalar>& params,
                Index position = 0) {
  apply_rope<Scalar, Rank>(x, params.cos, params.sin, position);
}

/// apply_rope_backward with the tables of compute_rope_params.
template <typename Scalar, int Rank>
void apply_rope_backward(const TensorView<Scalar, Rank>& grad, const RopeParams<Scalar>& params,
                         Index position = 0) {
  apply_rope_backward<Scalar, Rank>(grad, params.cos, params.sin, position);
}

}  // namespace attn

#endif  // ATTN_KERNELS_ROPE_HPP
