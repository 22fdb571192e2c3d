// attn/kernels/detail/leading_dims.hpp: walking the leading (batch, head, ...) dims of a rank-R
// view as a flat list of (tokens, dim) matrices: how the kernels treat (B, H, T, D) as B*H
// problems.
#ifndef ATTN_KERNELS_DETAIL_LEADING_DIMS_HPP
#define ATTN_KERNELS_DETAIL_LEADING_DIMS_HPP

#include "attn/config.hpp"
#include "attn/tensor/shape.hpp"
#include "attn/tensor/tensor_view.hpp"

namespace attn::detail {

/// The number of (tokens, dim) matrices in a view: the product of all dims but the last two.
template <int Rank>
Index leading_count(const Shape<Rank>& shape) {
  Index count = 1;
  for (int d = 0; d + 2 < Rank; ++d) count *= shape[d];
  return count;
}

/// The matrix at leading position `flat` (row-major over the leading dims).
template <typename T, int Rank>
TensorView<T, 2> leading_matrix(const TensorView<T, Rank>& view, Index flat) {
  Index offset = 0;
  for (int d = Rank - 3; d >= 0; --d) {
    offset += (flat % view.shape()[d]) * view.strides()[d];
    flat /= view.shape()[d];
  }
  return TensorView<T, 2>(element_pointer(view.data(), offset, view.shape()),
                          {view.shape()[Rank - 2], view.shape()[Rank - 1]},
                          {view.strides()[Rank - 2], view.strides()[Rank - 1]});
}

/// The heads of a view: its last leading dim (1 for a single (tokens, dim) matrix).
template <int Rank>
Index heads_of(const Shape<Rank>& shape) {
  if constexpr (Rank >= 3) {
    return shape[Rank - 3];
  } else {
    return 1;
  }
}

/// Grouped-query attention: the leading position of the keys and values that query position
/// `flat` reads when q has `heads` positions in its last leading dim and k, v have `kv_heads`
/// (a divisor): query head h reads kv head h / (heads / kv_heads), what PyTorch's
/// `repeat_interleave(heads / kv_heads, dim=1)` of k and v would give, without the copies.
inline Index kv_leading(Index flat, Index heads, Index kv_heads) {
  if (heads == kv_heads) return flat;
  return flat / heads * kv_heads + flat % heads / (heads / kv_heads);
}

/// The inverse of kv_leading: the leading position of the g-th query head (g < heads /
/// kv_heads) that reads kv position `kv_flat`, for the backward's loop over a kv head's group.
inline Index query_leading(Index kv_flat, Index g, Index heads, Index kv_heads) {
  return kv_flat / kv_heads * heads + kv_flat % kv_heads * (heads / kv_heads) + g;
}

/// The (T, S) matrix of a (A0, A1, T, S) additive mask broadcast against leading position
/// `flat` of a rank-4 kernel view whose leading dims are (outer, inner): a dim of 1 repeats.
template <typename Scalar>
TensorView<const Scalar, 2> broadcast_matrix(const TensorView<const Scalar, 4>& mask, Index flat,
                                             Index inner) {
  const Index i0 = mask.size(0) == 1 ? 0 : flat / inner;
  const Index i1 = mask.size(1) == 1 ? 0 : flat % inner;
  return TensorView<const Scalar, 2>(
      element_pointer(mask.data(), i0 * mask.strides()[0] + i1 * mask.strides()[1], mask.shape()),
      {mask.size(2), mask.size(3)}, {mask.strides()[2], mask.strides()[3]});
}

/// The rank the kernels' bodies are compiled for: views of rank 2 and 3 gain unit leading dims
/// (as_kernel_rank), so one instantiation per element type serves ranks 2 to 4; a view of higher
/// rank keeps its own.
template <int Rank>
inline constexpr int kernel_rank = Rank < 4 ? 4 : Rank;

/// The view with unit leading dims added in front up to kernel_rank: the same matrices, in the
/// same order.
template <typename T, int Rank>
TensorView<T, kernel_rank<Rank>> as_kernel_rank(const TensorView<T, Rank>& view) {
  if constexpr (Rank == kernel_rank<Rank>) {
    return view;
  } else {
    constexpr int added = kernel_rank<Rank> - Rank;
    Shape<kernel_rank<Rank>> shape{}, strides{};
    for (int d = 0; d < added; ++d) {
      shape[d] = 1;
      strides[d] = 0;  // never stepped along: the dim has one position
    }
    for (int d = 0; d < Rank; ++d) {
      shape[d + added] = view.shape()[d];
      strides[d + added] = view.strides()[d];
    }
    return TensorView<T, kernel_rank<Rank>>(view.data(), shape, strides);
  }
}

}  // namespace attn::detail

#endif  // ATTN_KERNELS_DETAIL_LEADING_DIMS_HPP
