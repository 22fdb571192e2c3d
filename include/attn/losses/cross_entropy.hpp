// attn/losses/cross_entropy.hpp: cross-entropy over logits, as F.cross_entropy with mean
// reduction: the loss of next-token prediction.
#ifndef ATTN_LOSSES_CROSS_ENTROPY_HPP
#define ATTN_LOSSES_CROSS_ENTROPY_HPP

#include <cmath>

#include "attn/config.hpp"
#include "attn/kernels/softmax.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/tensor.hpp"

namespace attn {

/// The mean cross-entropy of N rows of logits against their target classes, and its gradient:
///   loss = mean_i (logsumexp(logits_i) - logits_i[target_i])
///   dloss/dlogits = (softmax(logits) - onehot(target)) / N
/// @param logits  (N, C), any strides Eigen can map.
/// @param targets (N), class indices in [0, C).
/// @param grad    optional (N, C) output of the gradient; an empty view skips it.
/// @throws ShapeError if the shapes disagree; IndexError naming a target outside [0, C).
template <typename T, typename Scalar = std::remove_const_t<T>>
Scalar cross_entropy(const TensorView<T, 2>& logits, const TensorView<const Index, 1>& targets,
                     const TensorView<Scalar, 2>& grad = {}) {
  const Index rows = logits.size(0), classes = logits.size(1);
  if (targets.size(0) != rows) {
    throw ShapeError(detail::concat("cross_entropy: logits have shape ", to_string(logits.shape()),
                                    " but targets have shape ", to_string(targets.shape())));
  }
  const bool want_grad = grad.data() != nullptr;
  if (want_grad && grad.shape() != logits.shape()) {
    throw ShapeError(detail::concat("cross_entropy: grad has shape ", to_string(grad.shape()),
                                    " but logits have shape ", to_string(logits.shape())));
  }
  for (Index i = 0; i < rows; ++i) {
    if (targets(i) < 0 || targets(i) >= classes) {
      throw IndexError(detail::concat("cross_entropy: target ", targets(i), " of row ", i,
                                      " is outside [0, ", classes, ")"));
    }
  }
  if (rows == 0) return Scalar(0);
  RowMatrix<Scalar> probabilities = as_matrix(logits);
  double total = 0;
  for (Index i = 0; i < rows; ++i) {
    const Scalar target_logit = probabilities(i, targets(i));
    // -log softmax(logits)[target] = logsumexp(logits) - logits[target]; the row becomes the
    // softmax, which the gradient needs.
    const Scalar log_sum = detail::softmax_row_inplace(probabilities.row(i));
    total += static_cast<double>(log_sum - target_logit);
  }
  if (want_grad) {
    auto g = as_matrix(grad);
    g = probabilities / static_cast<Scalar>(rows);
    for (Index i = 0; i < rows; ++i) g(i, targets(i)) -= Scalar(1) / static_cast<Scalar>(rows);
  }
  return static_cast<Scalar>(total / static_cast<double>(rows));
}

}  // namespace attn

#endif  // ATTN_LOSSES_CROSS_ENTROPY_HPP
