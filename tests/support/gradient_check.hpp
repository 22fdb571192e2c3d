// Gradient checks by central differences in double precision: for loss = sum(f(x) * R) with a
// fixed random R, every analytic gradient (input and parameters) is compared with
// (loss(p + h) - loss(p - h)) / 2h, h = 1e-6. The error reported is normwise relative:
// max |analytic - numeric| / max(max |numeric|, 1e-3), at most 1e-6.
#ifndef ATTN_TESTS_SUPPORT_GRADIENT_CHECK_HPP
#define ATTN_TESTS_SUPPORT_GRADIENT_CHECK_HPP

#include <gtest/gtest.h>

#include <algorithm>
#include <attn/attn.hpp>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

namespace attn_test {

inline constexpr double kGradientCheckTolerance = 1e-6;

/// Numeric gradient of `loss` with respect to the n values at `values`.
inline std::vector<double> numeric_gradient(double* values, attn::Index n,
                                            const std::function<double()>& loss) {
  constexpr double h = 1e-6;
  std::vector<double> gradient(static_cast<std::size_t>(n));
  for (attn::Index i = 0; i < n; ++i) {
    const double saved = values[i];
    values[i] = saved + h;
    const double up = loss();
    values[i] = saved - h;
    const double down = loss();
    values[i] = saved;
    gradient[static_cast<std::size_t>(i)] = (up - down) / (2 * h);
  }
  return gradient;
}

inline ::testing::AssertionResult gradients_agree(const double* analytic,
                                                  const std::vector<double>& numeric,
                                                  const std::string& what) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < numeric.size(); ++i) {
    diff = std::max(diff, std::abs(analytic[i] - numeric[i]));
    scale = std::max(scale, std::abs(numeric[i]));
  }
  // Relative to the largest numeric entry; gradients that are zero in exact arithmetic (the
  // key bias: softmax ignores a per-query constant) are compared absolutely, to 1e-9.
  const double error = diff / std::max(scale, 1e-3);
  if (error <= kGradientCheckTolerance) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": relative error " << error << " (max abs "
                                       << diff << ", max |numeric| " << scale << ")";
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
  const auto out_shape = layer.forward(x.view()).shape();
  const auto R = random_tensor<Rank>(out_shape, generator);
  const auto loss = [&] {
    const auto out = layer.forward(x.view());
    double sum = 0;
    for (attn::Index i = 0; i < out.numel(); ++i) sum += out.data()[i] * R.data()[i];
    return sum;
  };
  attn::zero_grad(layer);
  typename Layer::Cache cache;
  layer.forward(x.view(), cache);
  const auto grad_x = layer.backward(cache, R.view());
  EXPECT_TRUE(gradients_agree(grad_x.data(), numeric_gradient(x.data(), x.numel(), loss), "x"));
  const auto analytic = attn::gradients(layer);
  layer.visit_state([&](const attn::StateEntry<double>& entry) {
    if (entry.kind != attn::StateEntry<double>::Kind::parameter) return;
    EXPECT_TRUE(gradients_agree(analytic.at(entry.name).values.data(),
                                numeric_gradient(entry.data, entry.numel(), loss), entry.name));
  });
}

}  // namespace attn_test

#endif  // ATTN_TESTS_SUPPORT_GRADIENT_CHECK_HPP
