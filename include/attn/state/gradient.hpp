// attn/state/gradient.hpp: where a layer keeps one parameter's gradient. It is allocated, as
// zeros, at its first use (a backward, an optimiser built over the layer, an accessor), not when
// the layer is built: a model loaded for inference never holds a second copy of its weights'
// size. (GPT-2 124M in float32: 652 MB of gradients that decoding never reads.)
#ifndef ATTN_STATE_GRADIENT_HPP
#define ATTN_STATE_GRADIENT_HPP

#include <atomic>
#include <mutex>
#include <utility>

#include "attn/config.hpp"
#include "attn/tensor/shape.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn {

/// A parameter's gradient of shape `shape`, allocated as zeros by the first get().
template <typename Scalar, int Rank>
class Gradient {
 public:
  explicit Gradient(const Shape<Rank>& shape) : shape_(shape) {}
  Gradient(const Gradient& other)
      : shape_(other.shape_), tensor_(other.tensor_), allocated_(other.allocated()) {}
  Gradient(Gradient&& other) noexcept
      : shape_(other.shape_), tensor_(std::move(other.tensor_)), allocated_(other.allocated()) {
    other.allocated_.store(false, std::memory_order_release);  // its tensor went with the move
  }
  Gradient& operator=(const Gradient& other) {
    if (this != &other) {
      shape_ = other.shape_;
      tensor_ = other.tensor_;
      allocated_.store(other.allocated(), std::memory_order_release);
    }
    return *this;
  }
  Gradient& operator=(Gradient&& other) noexcept {
    if (this != &other) {
      shape_ = other.shape_;
      tensor_ = std::move(other.tensor_);
      allocated_.store(other.allocated(), std::memory_order_release);
      other.allocated_.store(false, std::memory_order_release);
    }
    return *this;
  }
  ~Gradient() = default;

  /// The gradient, allocated (zeros) by the first call of either const-ness; threads that read
  /// a const layer's gradient at once allocate it once.
  Tensor<Scalar, Rank>& get() {
    allocate();
    return tensor_;
  }
  const Tensor<Scalar, Rank>& get() const {
    allocate();
    return tensor_;
  }

  bool allocated() const { return allocated_.load(std::memory_order_acquire); }
  /// The values when allocated, else null (nothing accumulated yet: all zeros).
  const Scalar* data_if_allocated() const { return allocated() ? tensor_.data() : nullptr; }
  Scalar* data_if_allocated() { return allocated() ? tensor_.data() : nullptr; }

 private:
  void allocate() const {
    if (allocated()) return;
    static std::mutex allocating;  // rare (once per parameter): one lock serves every gradient
    const std::lock_guard<std::mutex> lock(allocating);
    if (allocated_.load(std::memory_order_relaxed)) return;
    tensor_ = Tensor<Scalar, Rank>(shape_);
    allocated_.store(true, std::memory_order_release);
  }

  Shape<Rank> shape_;
  mutable Tensor<Scalar, Rank> tensor_;
  mutable std::atomic<bool> allocated_{false};
};

}  // namespace attn

#endif  // ATTN_STATE_GRADIENT_HPP
