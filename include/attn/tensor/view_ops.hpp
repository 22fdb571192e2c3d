// attn/tensor/view_ops.hpp: operations that make a new view of the same memory: reshape,
// transpose, permute, slice, select and the attention head split. None of them copies data;
// each only recomputes shape and strides, as torch.Tensor.view / transpose / narrow / select do.
#ifndef ATTN_TENSOR_VIEW_OPS_HPP
#define ATTN_TENSOR_VIEW_OPS_HPP

#include <array>

#include "attn/config.hpp"
#include "attn/tensor/shape.hpp"
#include "attn/tensor/tensor_view.hpp"

namespace attn {
namespace detail {
// Rank is deduced from the view alone, so `permute(view, {2, 0, 1})` works with a braced list.
template <int Rank>
using DimOrder = std::array<int, static_cast<std::size_t>(Rank)>;
}  // namespace detail

/// Reinterprets a contiguous view with a new shape of the same element count. One extent may be
/// -1; it is inferred, as in PyTorch.
/// @throws ShapeError if the view is not contiguous, the counts differ, or -1 cannot be inferred.
template <int NewRank, typename T, int Rank>
TensorView<T, NewRank> reshape(const TensorView<T, Rank>& view, Shape<NewRank> shape) {
  if (!view.is_contiguous()) {
    throw ShapeError(detail::concat("reshape: the view of shape ", to_string(view.shape()),
                                    " with strides ", to_string(view.strides()),
                                    " is not contiguous; only contiguous views can be reshaped"));
  }
  int inferred = -1;
  Index known = 1;
  for (int d = 0; d < NewRank; ++d) {
    if (shape[d] == -1 && inferred < 0) {
      inferred = d;
    } else if (shape[d] < 0) {
      throw ShapeError(detail::concat("reshape: target shape ", to_string(shape),
                                      " may hold at most one -1 and no other negative extent"));
    } else {
      known *= shape[d];
    }
  }
  if (inferred >= 0) {
    if (known == 0 || view.numel() % known != 0) {
      throw ShapeError(detail::concat("reshape: cannot infer the -1 in ", to_string(shape),
                                      " for a view of shape ", to_string(view.shape())));
    }
    shape[inferred] = view.numel() / known;
  }
  if (numel(shape) != view.numel()) {
    throw ShapeError(detail::concat("reshape: target shape ", to_string(shape), " holds ",
                                    numel(shape), " elements but the view of shape ",
                                    to_string(view.shape()), " holds ", view.numel()));
  }
  return TensorView<T, NewRank>(view.data(), shape);
}

/// Reorders the dimensions: result dim d is input dim `order[d]` (torch.Tensor.permute).
/// @throws IndexError if `order` is not a permutation of 0..Rank-1.
template <typename T, int Rank>
TensorView<T, Rank> permute(const TensorView<T, Rank>& view, const detail::DimOrder<Rank>& order) {
  std::array<bool, Rank> seen{};
  Shape<Rank> shape{};
  Shape<Rank> strides{};
  for (int d = 0; d < Rank; ++d) {
    const int source = order[d];
    if (source < 0 || source >= Rank || seen[source]) {
      throw IndexError(detail::concat("permute: order entry ", d, " is ", source,
                                      "; the order must be a permutation of 0..", Rank - 1));
    }
    seen[source] = true;
    shape[d] = view.shape()[source];
    strides[d] = view.strides()[source];
  }
  return TensorView<T, Rank>(view.data(), shape, strides);
}

/// Swaps two dimensions (torch.Tensor.transpose); negative dims count from the end.
/// @throws IndexError if a dim is out of range.
template <typename T, int Rank>
TensorView<T, Rank> transpose(const TensorView<T, Rank>& view, int dim0, int dim1) {
  detail::DimOrder<Rank> order{};
  for (int d = 0; d < Rank; ++d) order[d] = d;
  const int a = detail::normalize_dim(dim0, Rank, "transpose");
  const int b = detail::normalize_dim(dim1, Rank, "transpose");
  order[a] = b;
  order[b] = a;
  return permute(view, order);
}

/// The half-open range [begin, end) of dimension `dim` (torch.Tensor.narrow(dim, begin,
/// end-begin)).
/// @throws IndexError if the range does not lie inside the dimension.
template <typename T, int Rank>
TensorView<T, Rank> slice(const TensorView<T, Rank>& view, int dim, Index begin, Index end) {
  const int d = detail::normalize_dim(dim, Rank, "slice");
  if (begin < 0 || end < begin || end > view.shape()[d]) {
    throw IndexError(detail::concat("slice: range [", begin, ", ", end, ") is not inside dim ", d,
                                    " of extent ", view.shape()[d], " (shape ",
                                    to_string(view.shape()), ")"));
  }
  Shape<Rank> shape = view.shape();
  shape[d] = end - begin;
  // An empty slice keeps the base pointer so it never points past (or offsets) the allocation.
  T* data = detail::element_pointer(view.data(), begin * view.strides()[d], shape);
  return TensorView<T, Rank>(data, shape, view.strides());
}

/// Index `index` of dimension `dim`, dropping that dimension (torch.Tensor.select).
/// @throws IndexError if the index is outside the dimension.
template <typename T, int Rank>
TensorView<T, Rank - 1> select(const TensorView<T, Rank>& view, int dim, Index index) {
  static_assert(Rank >= 2, "select on a rank-1 view would give a scalar; use at() instead.");
  const int d = detail::normalize_dim(dim, Rank, "select");
  if (index < 0 || index >= view.shape()[d]) {
    throw IndexError(detail::concat("select: index ", index, " is out of range for dim ", d,
                                    " of extent ", view.shape()[d], " (shape ",
                                    to_string(view.shape()), ")"));
  }
  Shape<Rank - 1> shape{};
  Shape<Rank - 1> strides{};
  for (int source = 0, target = 0; source < Rank; ++source) {
    if (source == d) continue;
    shape[target] = view.shape()[source];
    strides[target] = view.strides()[source];
    ++target;
  }
  return TensorView<T, Rank - 1>(
      detail::element_pointer(view.data(), index * view.strides()[d], view.shape()), shape,
      strides);
}

/// The multi-head split (B, T, H*D) -> (B, H, T, D) as a strided view: what the book writes as
/// `x.view(b, T, H, D).transpose(1, 2)`, without the copy. The last dimension must be unit-stride
/// so that head h occupies columns [h*D, (h+1)*D) of each token.
/// @throws ShapeError if `num_heads` is not positive or does not divide the last extent, or the
///         last dimension is not unit-stride.
template <typename T>
TensorView<T, 4> split_heads(const TensorView<T, 3>& view, Index num_heads) {
  const Index width = view.shape()[2];
  if (num_heads <= 0 || width % num_heads != 0) {
    throw ShapeError(detail::concat("split_heads: the last extent (", width,
                                    ") of the view of shape ", to_string(view.shape()),
                                    " must be divisible by num_heads (", num_heads, ")"));
  }
  if (view.strides()[2] != 1 && width > 1) {
    throw ShapeError(detail::concat("split_heads: the last dim of the view of shape ",
                                    to_string(view.shape()), " has stride ", view.strides()[2],
                                    "; it must be 1"));
  }
  const Index head_dim = width / num_heads;
  const Shape<4> shape{view.shape()[0], num_heads, view.shape()[1], head_dim};
  const Shape<4> strides{view.strides()[0], head_dim, view.strides()[1], 1};
  return TensorView<T, 4>(view.data(), shape, strides);
}

}  // namespace attn

#endif  // ATTN_TENSOR_VIEW_OPS_HPP
