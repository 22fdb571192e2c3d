// attn/state/gradient.hpp: where a layer keeps one parameter's gradient. It is allocated, as
// zeros, at its first use (a backward, an optimiser built over the layer, an accessor), not when
// the layer is built: a model loaded for inference never holds a second copy of its weights'
// size. (GPT-2 124M in float32: 652 MB of gradients that decoding never reads.)
#ifndef ATTN_STATE_GRADIENT_HPP
#define ATTN_STATE_GRADIENT_HPP

#include "attn/config.hpp"
#include "attn/tensor/shape.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn {

/// A parameter's gradient of shape `shape`, allocated as zeros by the first get().
template <typename Scalar, int Rank>
class Gradient {
 public:
  explicit Gradient(const Shape<Rank>& shape) : shape_(shape) {}

  /// The gradient, allocated (zeros) by the first call of either const-ness. (A const layer may
  /// be read by several threads at once; a gradient is for one training thread.)
  Tensor<Scalar, Rank>& get() {
    allocate();
    return tensor_;
  }
  const Tensor<Scalar, Rank>& get() const {
    allocate();
    return tensor_;
  }

  bool allocated() const { return allocated_; }
  /// The values when allocated, else null (nothing accumulated yet: all zeros).
  const Scalar* data_if_allocated() const { return allocated_ ? tensor_.data() : nullptr; }
  Scalar* data_if_allocated() { return allocated_ ? tensor_.data() : nullptr; }
  const Shape<Rank>& shape() const { return shape_; }

 private:
  void allocate() const {
    if (allocated_) return;
    tensor_ = Tensor<Scalar, Rank>(shape_);
    allocated_ = true;
  }

  Shape<Rank> shape_;
  mutable Tensor<Scalar, Rank> tensor_;
  mutable bool allocated_ = false;
};

}  // namespace attn

#endif  // ATTN_STATE_GRADIENT_HPP
