// attn/tensor/tensor_view.hpp: TensorView<T, Rank>, a non-owning window (pointer + shape +
// strides) onto memory that someone else owns. Every kernel and layer in attn reads and writes
// through views, so that reshapes, transposes, head splits and slices cost nothing.
#ifndef ATTN_TENSOR_TENSOR_VIEW_HPP
#define ATTN_TENSOR_TENSOR_VIEW_HPP

#include <type_traits>

#include "attn/config.hpp"
#include "attn/tensor/shape.hpp"

namespace attn {

/// A strided, non-owning view of a Rank-dimensional tensor.
///
/// Strides are counted in elements and default to row-major (the last dimension contiguous), so
/// a view of shape (batch, tokens, d_in) reads as in PyTorch. `TensorView<const T, Rank>` is
/// read-only. A mutable view converts implicitly to a const one; the reverse does not compile.
/// Copying a view copies the window, never the data; a view must not outlive its memory.
template <typename T, int Rank>
class TensorView {
  static_assert(Rank >= 1, "TensorView needs a rank of at least 1.");
  static_assert(std::is_arithmetic_v<std::remove_const_t<T>>,
                "TensorView holds arithmetic element types (float, double, int, bool, ...).");

 public:
  using element_type = T;
  using value_type = std::remove_const_t<T>;
  static constexpr int rank = Rank;

  /// An empty view: null data, every extent 0.
  TensorView() = default;

  /// A row-major view of `shape` starting at `data`.
  /// @throws ShapeError if an extent is negative.
  TensorView(T* data, const Shape<Rank>& shape)
      : TensorView(data, shape, contiguous_strides(shape)) {}

  /// A view with explicit strides (in elements; zero and negative strides are allowed).
  /// @throws ShapeError if an extent is negative.
  TensorView(T* data, const Shape<Rank>& shape, const Shape<Rank>& strides)
      : data_(data), shape_(shape), strides_(strides) {
    detail::check_extents(shape_, "TensorView");
  }

  /// Mutable to const: `TensorView<float, R>` converts to `TensorView<const float, R>`.
  template <typename U, typename = std::enable_if_t<std::is_same_v<T, const U>>>
  TensorView(const TensorView<U, Rank>& other)  // NOLINT(google-explicit-constructor)
      : data_(other.data()), shape_(other.shape()), strides_(other.strides()) {}

  T* data() const { return data_; }
  const Shape<Rank>& shape() const { return shape_; }
  const Shape<Rank>& strides() const { return strides_; }
  Index size(int dim) const { return shape_[detail::normalize_dim(dim, Rank, "size")]; }
  Index stride(int dim) const { return strides_[detail::normalize_dim(dim, Rank, "stride")]; }
  Index numel() const { return attn::numel(shape_); }
  bool empty() const { return numel() == 0; }

  /// True when the elements are laid out row-major with no gaps (extent-1 dims are ignored).
  bool is_contiguous() const {
    Index expected = 1;
    for (int d = Rank - 1; d >= 0; --d) {
      if (shape_[d] != 1 && strides_[d] != expected) return false;
      expected *= shape_[d];
    }
    return true;
  }

  /// Element access without bounds checks in release builds (ATTN_ASSERT in debug builds).
  template <typename... Indices>
  T& operator()(Indices... indices) const {
    static_assert(sizeof...(Indices) == Rank,
                  "TensorView::operator() needs exactly one index per dimension.");
    const Shape<Rank> index{static_cast<Index>(indices)...};
    Index offset = 0;
    for (int d = 0; d < Rank; ++d) {
      ATTN_ASSERT(index[d] >= 0 && index[d] < shape_[d]);
      offset += index[d] * strides_[d];
    }
    return data_[offset];
  }

  /// Bounds-checked element access.
  /// @throws IndexError naming the dimension, the index and the extent.
  template <typename... Indices>
  T& at(Indices... indices) const {
    static_assert(sizeof...(Indices) == Rank,
                  "TensorView::at needs exactly one index per dimension.");
    const Shape<Rank> index{static_cast<Index>(indices)...};
    Index offset = 0;
    for (int d = 0; d < Rank; ++d) {
      if (index[d] < 0 || index[d] >= shape_[d]) {
        throw IndexError(detail::concat("TensorView::at: index ", index[d],
                                        " is out of range for dim ", d, " of extent ", shape_[d],
                                        " (shape ", to_string(shape_), ")"));
      }
      offset += index[d] * strides_[d];
    }
    return data_[offset];
  }

 private:
  T* data_ = nullptr;
  Shape<Rank> shape_{};
  Shape<Rank> strides_{};
};

namespace detail {
/// A read-only view parameter that takes part in no template deduction, so mutable views and
/// tensors convert to it (Scalar and Rank are deduced from the function's other arguments).
template <typename Scalar, int Rank>
using ConstView = typename std::enable_if<true, TensorView<const Scalar, Rank>>::type;
}  // namespace detail

}  // namespace attn

#endif  // ATTN_TENSOR_TENSOR_VIEW_HPP
