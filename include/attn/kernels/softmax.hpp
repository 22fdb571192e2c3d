// attn/kernels/softmax.hpp: row-wise softmax, stage 3 of the shared attention kernel.
//
// `softmax` subtracts each row's maximum before exponentiating, so logits of any size give
// finite weights. `softmax_naive` is the book's first version, exp(x) / sum(exp(x)): readable,
// but it overflows for logits above ~88 (float) and gives NaN for a row of -inf. Only the stable
// one is used by the kernels.
#ifndef ATTN_KERNELS_SOFTMAX_HPP
#define ATTN_KERNELS_SOFTMAX_HPP

#include <cmath>
#include <limits>
#include <type_traits>

#include "attn/config.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/tensor_view.hpp"

namespace attn {
namespace detail {

/// row = exp(row - shift), with exp(-inf) exactly 0 whatever the compile flags. Eigen 3.4's
/// vectorised exp clamps its argument (to about -88 in float, -709 in double), so a masked
/// logit, -inf, would get the weight 2.9e-39 (5.6e-309 in double) instead of 0. The factor
/// clamp(x - lowest, 0, 1) is 0 for x = -inf, 1 for every finite x and NaN for NaN; it keeps the
/// whole expression vectorised, which a select() would not in Eigen 3.4. `shift` is one value
/// for the whole row, or an array of the row's shape with one value per element.
template <typename Row, typename Shift>
void exp_shifted_inplace(Row&& row, const Shift& shift) {
  using Scalar = typename std::decay_t<Row>::Scalar;
  constexpr Scalar lowest = std::numeric_limits<Scalar>::lowest();
  const auto x = row.array() - shift;
  row = (x.exp() * (x - lowest).max(Scalar(0)).min(Scalar(1))).matrix();
}

/// Turns one row of logits into its stable softmax, in place, and returns the row's log-sum-exp
/// (the log of the softmax's denominator), which cross-entropy needs as well. A row whose logits
/// are all -inf (every key masked out) becomes all zeros, with log-sum-exp -inf, rather than
/// 0/0 = NaN. NaN logits give a NaN row.
template <typename Row>
typename std::decay_t<Row>::Scalar softmax_row_inplace(Row&& row) {
  using Scalar = typename std::decay_t<Row>::Scalar;
  const Scalar max = row.maxCoeff();
  if (max == -std::numeric_limits<Scalar>::infinity()) {
    row.setZero();
    return max;
  }
  exp_shifted_inplace(row, max);
  const Scalar sum = row.sum();
  row /= sum;
  return max + std::log(sum);
}

/// Stable softmax of every row of an Eigen matrix, in place (see softmax_row_inplace).
template <typename Derived>
void softmax_rows_inplace(Eigen::MatrixBase<Derived>& rows) {
  if (rows.cols() == 0) return;
  for (Index i = 0; i < rows.rows(); ++i) softmax_row_inplace(rows.row(i));
}

/// Softmax backward, in place: given the softmax output P and the gradient dP with respect to
/// it, turns dP into the gradient with respect to the logits,
///   dS = P * (dP - rowsum(dP * P)),
/// the closed form of the Jacobian-vector product: O(rows * cols), no per-row Jacobian.
template <typename DerivedP, typename DerivedG>
void softmax_backward_rows_inplace(const Eigen::MatrixBase<DerivedP>& probabilities,
                                   Eigen::MatrixBase<DerivedG>& gradient) {
  for (Index i = 0; i < gradient.rows(); ++i) {
    const auto dot = gradient.row(i).dot(probabilities.row(i));
    gradient.row(i) = (probabilities.row(i).array() * (gradient.row(i).array() - dot)).matrix();
  }
}

template <typename In, typename Out>
void check_softmax_shapes(const TensorView<In, 2>& logits, const TensorView<Out, 2>& out,
                          const char* who) {
  static_assert(std::is_same_v<std::remove_const_t<In>, Out>,
                "softmax: logits and out must have the same element type.");
  if (logits.shape() != out.shape()) {
    throw ShapeError(concat(who, ": out has shape ", to_string(out.shape()),
                            " but logits have shape ", to_string(logits.shape())));
  }
}

}  // namespace detail

/// Numerically stable softmax over the last dimension of a 2-D view:
/// out[i, j] = exp(x[i, j] - max_j x[i, :]) / sum_j exp(x[i, j] - max_j x[i, :]).
/// `out` may be the same memory as `logits`. A fully masked (all -inf) row gives zeros.
/// @param logits (rows, cols), any strides Eigen can map (unit-stride columns).
/// @param out    (rows, cols), written.
/// @throws ShapeError if the shapes differ or a view cannot be mapped.
template <typename In, typename Out>
void softmax(const TensorView<In, 2>& logits, const TensorView<Out, 2>& out) {
  detail::check_softmax_shapes(logits, out, "softmax");
  auto result = as_matrix(out);
  result = as_matrix(logits);
  detail::softmax_rows_inplace(result);
}

/// The book's first softmax, exp(x) / sum(exp(x)) per row, without the max subtraction.
/// Unstable: overflows to inf/NaN for large logits and gives NaN for an all -inf row.
/// Kept for teaching; attention never uses it.
/// @throws ShapeError if the shapes differ or a view cannot be mapped.
template <typename In, typename Out>
void softmax_naive(const TensorView<In, 2>& logits, const TensorView<Out, 2>& out) {
  using Scalar = Out;
  detail::check_softmax_shapes(logits, out, "softmax_naive");
  auto result = as_matrix(out);
  result = as_matrix(logits);
  for (Index i = 0; i < result.rows(); ++i) detail::exp_shifted_inplace(result.row(i), Scalar(0));
  for (Index i = 0; i < result.rows(); ++i) result.row(i) /= result.row(i).sum();
}

}  // namespace attn

#endif  // ATTN_KERNELS_SOFTMAX_HPP
