// attn/tensor/tensor.hpp: Tensor<Scalar, Rank>, the owning counterpart of TensorView: contiguous,
// row-major, SIMD-aligned storage that hands out views of itself.
#ifndef ATTN_TENSOR_TENSOR_HPP
#define ATTN_TENSOR_TENSOR_HPP

#include <algorithm>
#include <initializer_list>
#include <type_traits>

#include "attn/config.hpp"
#include "attn/tensor/buffer_pool.hpp"
#include "attn/tensor/shape.hpp"
#include "attn/tensor/tensor_view.hpp"

namespace attn {

/// An owning, contiguous, row-major tensor. Its storage is 64-byte aligned, for Eigen's
/// vectorised kernels, and large buffers come from attn's buffer pool (buffer_pool.hpp).
/// Elements start at zero.
template <typename Scalar, int Rank>
class Tensor {
  static_assert(!std::is_const_v<Scalar>, "Tensor owns its elements; use a mutable Scalar type.");
  static_assert(Rank >= 1, "Tensor needs a rank of at least 1.");

 public:
  using value_type = Scalar;
  static constexpr int rank = Rank;

  Tensor() = default;

  /// A zero-filled tensor. @throws ShapeError if an extent is negative.
  explicit Tensor(const Shape<Rank>& shape) : Tensor(shape, Scalar(0)) {}

  /// A tensor filled with `value`. @throws ShapeError if an extent is negative.
  Tensor(const Shape<Rank>& shape, Scalar value) : shape_(shape) {
    detail::check_extents(shape_, "Tensor");
    storage_ = detail::Buffer<Scalar>(attn::numel(shape_));
    fill(value);
  }

  /// A tensor whose elements are left unset, for outputs that a kernel overwrites entirely:
  /// skips the pass over memory that zero-filling costs on large buffers.
  /// @throws ShapeError if an extent is negative.
  static Tensor uninitialized(const Shape<Rank>& shape) {
    Tensor tensor;
    detail::check_extents(shape, "Tensor");
    tensor.shape_ = shape;
    tensor.storage_ = detail::Buffer<Scalar>(attn::numel(shape));
    return tensor;
  }

  /// A tensor with the given elements in row-major order, as PyTorch prints them.
  /// @throws ShapeError if the number of values differs from the shape's element count.
  Tensor(const Shape<Rank>& shape, std::initializer_list<Scalar> values) : Tensor(shape) {
    if (static_cast<Index>(values.size()) != numel()) {
      throw ShapeError(detail::concat("Tensor: shape ", to_string(shape_), " holds ", numel(),
                                      " elements but ", values.size(), " values were given"));
    }
    Index i = 0;
    for (Scalar value : values) data()[i++] = value;
  }

  /// A contiguous copy of any view of the same rank (its strides may be anything).
  explicit Tensor(const TensorView<const Scalar, Rank>& source) : Tensor(source.shape()) {
    Index flat = 0;
    copy_from(source, 0, 0, flat);
  }

  TensorView<Scalar, Rank> view() { return {data(), shape_}; }
  TensorView<const Scalar, Rank> view() const { return {data(), shape_}; }
  operator TensorView<Scalar, Rank>() { return view(); }  // NOLINT(google-explicit-constructor)
  operator TensorView<const Scalar, Rank>() const {       // NOLINT(google-explicit-constructor)
    return view();
  }

  Scalar* data() { return storage_.data(); }
  const Scalar* data() const { return storage_.data(); }
  const Shape<Rank>& shape() const { return shape_; }
  Index size(int dim) const { return shape_[detail::normalize_dim(dim, Rank, "size")]; }
  Index numel() const { return static_cast<Index>(storage_.size()); }

  template <typename... Indices>
  Scalar& operator()(Indices... indices) {
    return view()(indices...);
  }
  template <typename... Indices>
  const Scalar& operator()(Indices... indices) const {
    return view()(indices...);
  }

  /// Bounds-checked access. @throws IndexError.
  template <typename... Indices>
  Scalar& at(Indices... indices) {
    return view().at(indices...);
  }
  template <typename... Indices>
  const Scalar& at(Indices... indices) const {
    return view().at(indices...);
  }

  void fill(Scalar value) { std::fill_n(data(), numel(), value); }

  /// Element-wise sum with a tensor of the same shape (how gradients from several paths add).
  /// @throws ShapeError if the shapes differ.
  Tensor& operator+=(const Tensor& other) {
    if (other.shape_ != shape_) {
      throw ShapeError(detail::concat("Tensor::operator+=: shape ", to_string(other.shape_),
                                      " does not match ", to_string(shape_)));
    }
    using Vector = Eigen::Matrix<Scalar, Eigen::Dynamic, 1>;
    Eigen::Map<Vector>(data(), numel()) += Eigen::Map<const Vector>(other.data(), numel());
    return *this;
  }

 private:
  void copy_from(const TensorView<const Scalar, Rank>& source, int dim, Index offset, Index& flat) {
    for (Index i = 0; i < source.shape()[dim]; ++i) {
      const Index at = offset + i * source.strides()[dim];
      if (dim + 1 == Rank) {
        data()[flat++] = source.data()[at];
      } else {
        copy_from(source, dim + 1, at, flat);
      }
    }
  }

  Shape<Rank> shape_{};
  detail::Buffer<Scalar> storage_;
};

namespace detail {

/// The elements of a view laid out contiguously: the view itself when it already is contiguous
/// (no copy), else an owned row-major copy. For code that needs plain (rows, cols) memory.
template <typename Scalar, int Rank>
class Contiguous {
 public:
  explicit Contiguous(const TensorView<const Scalar, Rank>& view) : view_(view) {
    if (!view.is_contiguous()) {
      copy_ = Tensor<Scalar, Rank>(view);
      view_ = copy_.view();
    }
  }
  Contiguous(const Contiguous&) = delete;  // view_ may point into copy_
  Contiguous& operator=(const Contiguous&) = delete;

  const Scalar* data() const { return view_.data(); }
  const TensorView<const Scalar, Rank>& view() const { return view_; }

 private:
  Tensor<Scalar, Rank> copy_;
  TensorView<const Scalar, Rank> view_;
};

}  // namespace detail
}  // namespace attn

#endif  // ATTN_TENSOR_TENSOR_HPP
