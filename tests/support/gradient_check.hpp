// Gradient checks by central differences in double precision: for loss = sum(f(x) * R) with a
// fixed random R, every analytic gradient (input and parameters) is compared, entry by entry,
// with (loss(p + h) - loss(p - h)) / (2h), h = 1e-6 (2h being the step actually taken, since
// p + h and p - h round).
// The problem scale is the loss's. The numeric gradient is off by the rounding of two loss
// evaluations, about eps * Lambda / h, Lambda the size of the loss's terms (for sum(f(x) * R),
// Lambda = ||f(x)||_F ||R||_F >= sum |f_o(x) R_o|), plus the truncation error h^2 |d3 loss| / 6,
// about 1e-12 Lambda here and negligible. So every entry must satisfy
//     |analytic - numeric| <= kGradientCheckFactor * eps * Lambda / h,
// whatever the size of the gradient: a gradient that is zero in exact arithmetic (an attention
// layer's key bias) is held to the same absolute bound, where a relative error would compare
// noise with noise. Failures report the relative error against the largest numeric entry too.
#ifndef ATTN_TESTS_SUPPORT_GRADIENT_CHECK_HPP
#define ATTN_TESTS_SUPPORT_GRADIENT_CHECK_HPP

#include <gtest/gtest.h>

#include <algorithm>
#include <attn/attn.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "support/normwise.hpp"

namespace attn_test {

inline constexpr double kFiniteDifferenceStep = 1e-6;
inline constexpr double kGradientCheckFactor = 16;

/// Numeric gradient of `loss` with respect to the n values at `values`.
inline std::vector<double> numeric_gradient(double* values, attn::Index n,
                                            const std::function<double()>& loss) {
  std::vector<double> gradient(static_cast<std::size_t>(n));
  for (attn::Index i = 0; i < n; ++i) {
    const double saved = values[i];
    values[i] = saved + kFiniteDifferenceStep;
    const double up_at = values[i], up = loss();
    values[i] = saved - kFiniteDifferenceStep;
    const double down_at = values[i], down = loss();
    values[i] = saved;
    gradient[static_cast<std::size_t>(i)] = (up - down) / (up_at - down_at);
  }
  return gradient;
}

/// Lambda of loss = sum(out * R): ||out||_F ||R||_F.
template <typename Out, typename Weights>
double product_loss_scale(const Out& out, const Weights& R) {
  return frobenius(out) * frobenius(R);
}

/// Passes when every |analytic - numeric| <= kGradientCheckFactor * eps * loss_scale / h.
inline ::testing::AssertionResult gradients_agree(const double* analytic,
                                                  const std::vector<double>& numeric,
                                                  double loss_scale, const std::string& what) {
  double diff = 0, largest = 0;
  for (std::size_t i = 0; i < numeric.size(); ++i) {
    const double d = std::abs(analytic[i] - numeric[i]);
    diff = std::max(diff, std::isnan(d) ? std::numeric_limits<double>::infinity() : d);
    largest = std::max(largest, std::abs(numeric[i]));
  }
  const double tolerance =
      kGradientCheckFactor * epsilon<double>() * loss_scale / kFiniteDifferenceStep;
  if (diff <= tolerance) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": max abs error " << diff << " > tolerance " << tolerance << " = "
         << kGradientCheckFactor << " eps x loss scale " << loss_scale << " / h "
         << kFiniteDifferenceStep << "; relative to max |numeric| " << largest << ": "
         << diff / largest;
}

template <int Rank>
attn::Tensor<double, Rank> random_tensor(const attn::Shape<Rank>& shape,
                                         attn::Generator& generator) {
  attn::Tensor<double, Rank> tensor(shape);
  for (attn::Index i = 0; i < tensor.numel(); ++i)
    tensor.data()[i] = generator.uniform<double>(-1, 1);
  return tensor;
}

/// Checks dL/dx and every parameter gradient of a layer with forward(x, cache) and
/// backward(cache, grad_out). The layer must be deterministic (eval mode or no dropout).
template <typename Layer, int Rank>
void check_layer_by_finite_differences(Layer& layer, attn::Tensor<double, Rank> x) {
  attn::Generator generator(77);
  const auto out = layer.forward(x.view());
  const auto R = random_tensor<Rank>(out.shape(), generator);
  const double loss_scale = product_loss_scale(out, R);
  const auto loss = [&] {
    const auto y = layer.forward(x.view());
    double sum = 0;
    for (attn::Index i = 0; i < y.numel(); ++i) sum += y.data()[i] * R.data()[i];
    return sum;
  };
  attn::zero_grad(layer);
  typename Layer::Cache cache;
  layer.forward(x.view(), cache);
  const auto grad_x = layer.backward(cache, R.view());
  EXPECT_TRUE(
      gradients_agree(grad_x.data(), numeric_gradient(x.data(), x.numel(), loss), loss_scale, "x"));
  const auto analytic = attn::gradients(layer);
  layer.visit_state([&](const attn::StateEntry<double>& entry) {
    if (entry.kind != attn::StateEntry<double>::Kind::parameter) return;
    EXPECT_TRUE(gradients_agree(analytic.at(entry.name).values.data(),
                                numeric_gradient(entry.data, entry.numel(), loss), loss_scale,
                                entry.name));
  });
}

}  // namespace attn_test

#endif  // ATTN_TESTS_SUPPORT_GRADIENT_CHECK_HPP
