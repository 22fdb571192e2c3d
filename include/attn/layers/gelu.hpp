// attn/layers/gelu.hpp: GELU, the book's activation of the feed-forward network (section 4.3):
// the tanh approximation of x * Phi(x) that GPT-2 was trained with (Hendrycks and Gimpel, 2016).
#ifndef ATTN_LAYERS_GELU_HPP
#define ATTN_LAYERS_GELU_HPP

#include <cmath>
#include <type_traits>

#include "attn/config.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/threads.hpp"

namespace attn {

/// GELU(x) = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), element-wise, with no
/// parameters, in the book's order of operations. sqrt(2 / pi) is taken in the layer's precision,
/// as the book's torch.sqrt(torch.tensor(2.0 / torch.pi)) takes it for the default dtype: the
/// float square root of float(2 / pi) (0.79788452f, one ulp below float(sqrt(2 / pi))) for
/// float, and the double one for double. Same in training and eval mode.
template <typename ScalarType>
class GELU {
 public:
  using Scalar = ScalarType;

  /// sqrt(2 / pi) as the book computes it in this precision.
  static Scalar sqrt_2_over_pi() {
    return std::sqrt(static_cast<Scalar>(2.0 / 3.14159265358979323846));
  }

  /// The layer has no mode; these exist so that code switching every layer need not know.
  void train(bool /*training*/ = true) {}
  void eval() {}

  /// @param x any rank and strides (a view that is not contiguous is copied first).
  /// @return GELU(x), a tensor of x's shape.
  template <typename T, int Rank>
  Tensor<Scalar, Rank> forward(const TensorView<T, Rank>& x) const {
    static_assert(std::is_same_v<std::remove_const_t<T>, Scalar>,
                  "GELU: input and layer must share one element type.");
    const detail::Contiguous<Scalar, Rank> in(x);
    auto y = Tensor<Scalar, Rank>::uninitialized(x.shape());
    apply(in.data(), x.numel(), y.data());
    return y;
  }

  /// Backward of forward(x): returns dL/dx = dL/dy * GELU'(x). GELU keeps nothing from the
  /// forward: pass the same x. With t = tanh(u), u = sqrt(2 / pi) (x + 0.044715 x^3):
  ///   GELU'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2 / pi) (1 + 3 * 0.044715 x^2).
  /// @throws ShapeError if grad_y's shape differs from x's.
  template <typename T, int Rank>
  Tensor<Scalar, Rank> backward(const TensorView<T, Rank>& x,
                                const detail::ConstView<Scalar, Rank>& grad_y) const {
    static_assert(std::is_same_v<std::remove_const_t<T>, Scalar>,
                  "GELU: input and layer must share one element type.");
    if (grad_y.shape() != x.shape()) {
      throw ShapeError(detail::concat("GELU::backward: grad_y has shape ",
                                      to_string(grad_y.shape()), " but x has shape ",
                                      to_string(x.shape())));
    }
    const detail::Contiguous<Scalar, Rank> in(x), dy(grad_y);
    auto grad_x = Tensor<Scalar, Rank>::uninitialized(x.shape());
    apply_backward(in.data(), dy.data(), x.numel(), grad_x.data());
    return grad_x;
  }

  /// y[i] = GELU(x[i]) for i < n, on contiguous memory (y may be x).
  static void apply(const Scalar* x, Index n, Scalar* y);
  /// grad_x[i] = grad_y[i] * GELU'(x[i]) for i < n, on contiguous memory (grad_x may alias
  /// grad_y).
  static void apply_backward(const Scalar* x, const Scalar* grad_y, Index n, Scalar* grad_x);

 private:
  // Element passes over this many values or more run on every thread.
  static constexpr Index threaded_values = Index{1} << 15;
  static constexpr double cubic = 0.044715;
};

template <typename ScalarType>
void GELU<ScalarType>::apply(const Scalar* x, Index n, Scalar* y) {
  using Values = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  const Scalar c = sqrt_2_over_pi(), a = static_cast<Scalar>(cubic);
  detail::for_each_thread_row_block(n, threaded_values, [&](Index, Index first, Index count) {
    const Eigen::Map<const Values> in(x + first, count);
    Eigen::Map<Values> out(y + first, count);
    // 0.5 * x * (1 + tanh(c * (x + 0.044715 * x^3))), left to right as the book writes it
    out = (Scalar(0.5) * in) * (Scalar(1) + (c * (in + a * (in * in * in))).tanh());
  });
}

template <typename ScalarType>
void GELU<ScalarType>::apply_backward(const Scalar* x, const Scalar* grad_y, Index n,
                                      Scalar* grad_x) {
  using Values = Eigen::Array<Scalar, Eigen::Dynamic, 1>;
  const Scalar c = sqrt_2_over_pi(), a = static_cast<Scalar>(cubic);
  detail::for_each_thread_row_block(n, threaded_values, [&](Index, Index first, Index count) {
    const Eigen::Map<const Values> in(x + first, count), dy(grad_y + first, count);
    const Values t = (c * (in + a * (in * in * in))).tanh();
    Eigen::Map<Values>(grad_x + first, count) =
        dy * (Scalar(0.5) * (Scalar(1) + t) +
              Scalar(0.5) * in * (Scalar(1) - t * t) * c * (Scalar(1) + Scalar(3) * a * in * in));
  });
}

}  // namespace attn

#endif  // ATTN_LAYERS_GELU_HPP
