// Normwise comparisons against a scale that comes from the problem, the rule for every check of
// a result that carries rounding error:
//
//     ||actual - expected||_F <= tolerance * scale,
//
// where `scale` bounds the size of the quantity from what it is computed from (||V|| for an
// attention output, |scale| ||dO|| ||V|| ||Q|| for the key gradient, ||W|| ||x|| + ||b|| for a
// Linear output; tests/support/attention_bounds.hpp has the attention kernel's), never from the
// reference alone. A reference that is zero in exact arithmetic (the key-bias gradient of every
// attention layer, dK when S = 1) holds nothing but rounding noise, and a relative error against
// it compares noise with noise, differently on every machine; such quantities are checked on
// purpose with `negligible`: small in absolute terms against their problem scale.
//
// The tolerance is a small multiple of the type's machine epsilon times a size factor:
// rounding_tolerance (support/rounding.hpp).
// A real bug (a wrong sign, a missing term, a wrong index) moves a result by O(scale), orders of
// magnitude above eps * scale, so the checks keep their teeth.
#ifndef ATTN_TESTS_SUPPORT_NORMWISE_HPP
#define ATTN_TESTS_SUPPORT_NORMWISE_HPP

#include <gtest/gtest.h>

#include <algorithm>
#include <attn/attn.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "support/rounding.hpp"

namespace attn_test {

// ---- Values and norms --------------------------------------------------------------------------

/// The values of a tensor, view (any strides, in index order) or vector, as doubles.
template <typename T, int Rank>
std::vector<double> values_of(const attn::TensorView<T, Rank>& view) {
  const attn::Tensor<std::remove_const_t<T>, Rank> copy(view);
  return std::vector<double>(copy.data(), copy.data() + copy.numel());
}
template <typename T, int Rank>
std::vector<double> values_of(const attn::Tensor<T, Rank>& tensor) {
  return values_of(tensor.view());
}
template <typename T>
std::vector<double> values_of(const std::vector<T>& values) {
  return std::vector<double>(values.begin(), values.end());
}

template <typename T, int Rank>
std::vector<attn::Index> shape_of(const attn::TensorView<T, Rank>& view) {
  return std::vector<attn::Index>(view.shape().begin(), view.shape().end());
}
template <typename T, int Rank>
std::vector<attn::Index> shape_of(const attn::Tensor<T, Rank>& tensor) {
  return shape_of(tensor.view());
}
template <typename T>
std::vector<attn::Index> shape_of(const std::vector<T>& values) {
  return {static_cast<attn::Index>(values.size())};
}

inline double frobenius(const std::vector<double>& values) {
  double sum = 0;
  for (double value : values) sum += value * value;
  return std::sqrt(sum);
}
template <typename X>
double frobenius(const X& x) {
  return frobenius(values_of(x));
}

/// The Euclidean norm of each row (the last dimension) of a tensor or view.
template <typename X>
std::vector<double> row_norms(const X& x) {
  const std::vector<double> values = values_of(x);
  const auto shape = shape_of(x);
  const std::size_t cols = shape.empty() ? 1 : static_cast<std::size_t>(shape.back());
  std::vector<double> norms;
  for (std::size_t start = 0; cols > 0 && start < values.size(); start += cols) {
    double sum = 0;
    for (std::size_t c = 0; c < cols; ++c) sum += values[start + c] * values[start + c];
    norms.push_back(std::sqrt(sum));
  }
  return norms;
}
template <typename X>
double max_row_norm(const X& x) {
  const auto norms = row_norms(x);
  return norms.empty() ? 0.0 : *std::max_element(norms.begin(), norms.end());
}
template <typename X>
double sum_row_norms(const X& x) {
  double sum = 0;
  for (double norm : row_norms(x)) sum += norm;
  return sum;
}

// ---- Comparisons -------------------------------------------------------------------------------

namespace detail {

inline ::testing::AssertionResult normwise_result(const std::vector<double>& actual,
                                                  const std::vector<double>& expected, double scale,
                                                  double tolerance, const std::string& what,
                                                  bool vanishing) {
  double sum = 0, max_abs = 0;
  std::size_t worst = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double diff = std::abs(actual[i] - expected[i]);
    const double d = std::isnan(diff) ? std::numeric_limits<double>::infinity() : diff;
    sum += d * d;
    if (d > max_abs || i == 0) {
      max_abs = d;
      worst = i;
    }
  }
  const double error = std::sqrt(sum);
  if (error <= tolerance * scale) return ::testing::AssertionSuccess();
  auto failure = ::testing::AssertionFailure() << what;
  if (vanishing) {
    failure << " (zero in exact arithmetic): ||actual||_F " << error;
  } else {
    failure << ": normwise error ||actual - expected||_F " << error << " (||expected||_F "
            << frobenius(expected) << ")";
  }
  failure << " > tolerance " << tolerance << " x problem scale " << scale << " = "
          << tolerance * scale << ", error / scale " << error / scale << "; max abs error "
          << max_abs;
  if (!actual.empty()) {
    failure << " at flat index " << worst << ": " << actual[worst];
    if (!vanishing) failure << " vs expected " << expected[worst];
  }
  return failure;
}

}  // namespace detail

/// Passes when ||actual - expected||_F <= tolerance * scale (a NaN anywhere fails). `actual` and
/// `expected` are tensors, views or vectors of the same shape; the failure message reports the
/// normwise error, the problem scale, the tolerance and the worst element.
template <typename A, typename E>
::testing::AssertionResult close_normwise(const A& actual, const E& expected, double scale,
                                          double tolerance, const std::string& what = "values") {
  const auto actual_shape = shape_of(actual), expected_shape = shape_of(expected);
  if (actual_shape != expected_shape) {
    const auto text = [](const std::vector<attn::Index>& shape) {
      std::string result = "(";
      for (std::size_t i = 0; i < shape.size(); ++i) {
        result += (i ? ", " : "") + std::to_string(shape[i]);
      }
      return result + ")";
    };
    return ::testing::AssertionFailure()
           << what << ": shape " << text(actual_shape) << " != expected " << text(expected_shape);
  }
  return detail::normwise_result(values_of(actual), values_of(expected), scale, tolerance, what,
                                 false);
}

/// For a quantity that is zero in exact arithmetic: passes when ||actual||_F <= tolerance * scale,
/// `scale` the size the quantity's terms have (what it would be without the exact cancellation).
template <typename A>
::testing::AssertionResult negligible(const A& actual, double scale, double tolerance,
                                      const std::string& what = "values") {
  const std::vector<double> values = values_of(actual);
  return detail::normwise_result(values, std::vector<double>(values.size(), 0.0), scale, tolerance,
                                 what, true);
}

}  // namespace attn_test

#endif  // ATTN_TESTS_SUPPORT_NORMWISE_HPP
