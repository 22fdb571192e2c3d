// attn/tensor/eigen_interop.hpp: hands views to Eigen as Maps, so kernels run Eigen's GEMMs
// directly on tensor memory. No function here ever copies: a view Eigen cannot map is an error.
#ifndef ATTN_TENSOR_EIGEN_INTEROP_HPP
#define ATTN_TENSOR_EIGEN_INTEROP_HPP

#include <type_traits>

#include "attn/config.hpp"
#include "attn/tensor/tensor_view.hpp"

namespace attn {

/// A dynamic row-major Eigen matrix: the layout of every 2-D block in attn.
template <typename Scalar>
using RowMatrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// The Map type `as_matrix` returns: const when T is const, row-major, any row stride.
template <typename T>
using MatrixMap =
    Eigen::Map<std::conditional_t<std::is_const_v<T>, const RowMatrix<std::remove_const_t<T>>,
                                  RowMatrix<std::remove_const_t<T>>>,
               Eigen::Unaligned, Eigen::OuterStride<>>;

/// The Map type `as_vector` returns: a column vector with any element stride.
template <typename T>
using VectorMap = Eigen::Map<
    std::conditional_t<std::is_const_v<T>, const Eigen::Matrix<std::remove_const_t<T>, -1, 1>,
                       Eigen::Matrix<std::remove_const_t<T>, -1, 1>>,
    Eigen::Unaligned, Eigen::InnerStride<>>;

/// True when Eigen can map the view's (tokens, features) blocks, its last two dims, without a
/// copy: unit-stride columns and rows that do not overlap (see as_matrix).
template <typename T, int Rank>
bool rows_mappable(const TensorView<T, Rank>& view) {
  static_assert(Rank >= 1, "rows_mappable needs at least one dim.");
  const Index cols = view.shape()[Rank - 1];
  const bool unit_columns = view.strides()[Rank - 1] == 1 || cols <= 1;
  if constexpr (Rank == 1) {
    return unit_columns;
  } else {
    return unit_columns && (view.strides()[Rank - 2] >= cols || view.shape()[Rank - 2] <= 1);
  }
}

/// An Eigen::Map over a 2-D view, aliasing its memory (writes through the Map show in the view).
/// Maps without a copy when the columns are unit-stride and rows do not overlap: contiguous
/// tensors, row slices, column slices and heads from `split_heads` all qualify. A transposed view
/// (unit-stride rows) does not; map the untransposed view and use Eigen's `.transpose()`.
/// @throws ShapeError naming the shape and strides when the view cannot be mapped.
template <typename T>
MatrixMap<T> as_matrix(const TensorView<T, 2>& view) {
  const Index rows = view.shape()[0];
  const Index cols = view.shape()[1];
  if (!rows_mappable(view)) {
    throw ShapeError(detail::concat(
        "as_matrix: the view of shape ", to_string(view.shape()), " with strides ",
        to_string(view.strides()),
        " cannot be mapped; Eigen needs unit-stride columns and non-overlapping rows"));
  }
  const Index outer = rows <= 1 ? cols : view.strides()[0];
  return MatrixMap<T>(view.data(), rows, cols, Eigen::OuterStride<>(outer));
}

/// An Eigen::Map over a 1-D view (any stride), aliasing its memory.
template <typename T>
VectorMap<T> as_vector(const TensorView<T, 1>& view) {
  return VectorMap<T>(view.data(), view.shape()[0], Eigen::InnerStride<>(view.strides()[0]));
}

}  // namespace attn

#endif  // ATTN_TENSOR_EIGEN_INTEROP_HPP
