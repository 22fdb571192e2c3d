// attn/layers/detail/stored_weight.hpp: WeightFormat, and StoredWeight, a layer's weight matrix
// held as Scalar or as bfloat16 only: what Linear and Embedding keep their weights in.
#ifndef ATTN_LAYERS_DETAIL_STORED_WEIGHT_HPP
#define ATTN_LAYERS_DETAIL_STORED_WEIGHT_HPP

#include <algorithm>
#include <mutex>
#include <utility>
#include <vector>

#include "attn/config.hpp"
#include "attn/kernels/bfloat16_matrix.hpp"
#include "attn/tensor/bfloat16.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/threads.hpp"

namespace attn {

/// How a layer stores its weights. `scalar`: as its Scalar (float or double). `bfloat16`: each
/// weight rounded to bfloat16 (as PyTorch's `.to(torch.bfloat16)` rounds it) and kept in 2
/// bytes only: half the memory, and half the memory traffic of a decoding step. Products read
/// the 2-byte weights directly; activations, biases and sums stay in Scalar (under
/// Autocast(Compute::bfloat16) the activations are rounded too: attn/autocast.hpp).
enum class WeightFormat { scalar, bfloat16 };

namespace detail {

/// A (rows, cols) weight in a WeightFormat. In bfloat16 format the Scalar weights are gone; a
/// caller that still asks for them (saving a state_dict, a backward) gets them widened, once,
/// and kept until the format is set again. Changing the weights returns it to scalar format.
template <typename Scalar>
class StoredWeight {
 public:
  /// Zeros, stored as `format`.
  explicit StoredWeight(const Shape<2>& shape, WeightFormat format = WeightFormat::scalar)
      : shape_(shape),
        scalar_(format == WeightFormat::scalar ? Tensor<Scalar, 2>(shape) : Tensor<Scalar, 2>()),
        packed_(format == WeightFormat::scalar ? BFloat16Matrix()
                                               : BFloat16Matrix(shape[0], shape[1])) {}

  // Copies take the source's lock: a const reader may be widening it on another thread.
  StoredWeight(const StoredWeight& other) {
    const std::lock_guard<std::mutex> lock(other.mutex_.mutex);
    shape_ = other.shape_;
    scalar_ = other.scalar_;
    packed_ = other.packed_;
  }
  StoredWeight& operator=(const StoredWeight& other) {
    if (this != &other) *this = StoredWeight(other);
    return *this;
  }
  StoredWeight(StoredWeight&&) noexcept = default;
  StoredWeight& operator=(StoredWeight&&) noexcept = default;
  ~StoredWeight() = default;

  /// Fills every row in order by fill(r, row) (row: cols Scalars to write), storing them as
  /// `format`: a bfloat16 weight is rounded row by row, never held as Scalar.
  template <typename Fill>
  void refill(WeightFormat format, Fill&& fill) {
    if (format == WeightFormat::scalar) {
      packed_ = {};
      if (scalar_.shape() != shape_) scalar_ = Tensor<Scalar, 2>::uninitialized(shape_);
      for (Index r = 0; r < shape_[0]; ++r) fill(r, scalar_.data() + r * shape_[1]);
      return;
    }
    scalar_ = {};
    if (packed_.empty()) packed_ = BFloat16Matrix(shape_[0], shape_[1]);
    constexpr Index panel_rows = BFloat16Packing::panel_rows;
    std::vector<Scalar> rows(static_cast<std::size_t>(panel_rows * shape_[1]));
    for (Index r0 = 0; r0 < shape_[0]; r0 += panel_rows) {  // a panel's rows at a time
      for (Index r = r0; r < std::min(r0 + panel_rows, shape_[0]); ++r) {
        fill(r, rows.data() + (r - r0) * shape_[1]);
      }
      packed_.set_panel(r0 / panel_rows, rows.data());
    }
  }

  const Shape<2>& shape() const { return shape_; }
  WeightFormat format() const {
    return packed_.empty() ? WeightFormat::scalar : WeightFormat::bfloat16;
  }

  /// bfloat16 rounds the weights and keeps them in 2 bytes only (the Scalar ones are freed);
  /// scalar widens them back (they stay rounded).
  void set_format(WeightFormat format) {
    if (format == this->format()) return;
    if (format == WeightFormat::scalar) {
      widen();
      packed_ = {};
    } else {
      packed_ = BFloat16Matrix(TensorView<const Scalar, 2>(scalar_.view()),
                               BFloat16Matrix::Lifetime::weight);
      scalar_ = {};
    }
  }

  /// The weights as Scalar. In bfloat16 format they are widened at the first call (under a
  /// lock: const callers may run on several threads) and kept.
  const Tensor<Scalar, 2>& scalar() const {
    if (format() == WeightFormat::bfloat16) {
      const std::lock_guard<std::mutex> lock(mutex_.mutex);
      widen();
    }
    return scalar_;
  }
  /// Calls use(const Scalar* weights) with the Scalar weights; in bfloat16 format, unless they
  /// were widened already, with a widening that is freed after the call, so that reading a
  /// bfloat16 layer's state (a state_dict, a parameter count) leaves no float copy behind.
  template <typename Use>
  void visit_scalar(Use&& use) const {
    if (format() == WeightFormat::bfloat16) {
      bool widened = false;
      {
        const std::lock_guard<std::mutex> lock(mutex_.mutex);
        widened = scalar_.shape() == shape_;
      }
      if (!widened) {
        use(static_cast<const Scalar*>(widened_copy().data()));
        return;
      }
    }
    use(static_cast<const Scalar*>(scalar_.data()));
  }
  /// The weights as Scalar, for changing them: the format returns to scalar.
  Tensor<Scalar, 2>& mutable_scalar() {
    set_format(WeightFormat::scalar);
    return scalar_;
  }
  /// The bfloat16 weights; empty in scalar format.
  const BFloat16Matrix& packed() const { return packed_; }

 private:
  Tensor<Scalar, 2> widened_copy() const {
    auto widened = Tensor<Scalar, 2>::uninitialized(shape_);
    packed_.widen(widened.data());
    return widened;
  }
  void widen() const {
    if (scalar_.shape() != shape_) scalar_ = widened_copy();
  }

  Shape<2> shape_;
  mutable Tensor<Scalar, 2> scalar_;  // empty in bfloat16 format until widened
  BFloat16Matrix packed_;             // empty in scalar format
  mutable CopyableMutex mutex_;
};

}  // namespace detail
}  // namespace attn

#endif  // ATTN_LAYERS_DETAIL_STORED_WEIGHT_HPP
