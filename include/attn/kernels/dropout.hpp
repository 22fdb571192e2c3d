// attn/kernels/dropout.hpp: inverted dropout, stage 4 of the shared attention kernel.
//
// In training, each element is kept with probability 1 - p and scaled by 1 / (1 - p), so the
// expected value is unchanged and evaluation needs no rescaling (Srivastava et al., 2014).
// Randomness comes only from the Generator passed in.
#ifndef ATTN_KERNELS_DROPOUT_HPP
#define ATTN_KERNELS_DROPOUT_HPP

#include <cmath>

#include "attn/config.hpp"
#include "attn/random/generator.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/tensor_view.hpp"

namespace attn {
namespace detail {

/// @throws std::invalid_argument unless 0 <= p < 1 (p = 1 would drop everything and divide by 0).
template <typename Scalar>
void validate_dropout(Scalar p, const char* who) {
  if (!(p >= Scalar(0) && p < Scalar(1))) {
    throw std::invalid_argument(concat(who, ": dropout (", p, ") must be a probability in [0, 1)"));
  }
}

/// Drops each element of an Eigen matrix with probability p, scaling the kept ones, row by row.
/// The draws are PyTorch's: nn.Dropout on CPU fills a mask with bernoulli_(1 - p), which keeps
/// an element when a double uniform (53 bits from two 32-bit draws, whatever the tensor's type)
/// is below 1 - p, in memory order. So Generator(s) gives torch.manual_seed(s)'s masks.
template <typename Derived>
void dropout_inplace(Eigen::MatrixBase<Derived>& values, typename Derived::Scalar p,
                     Generator& generator) {
  using Scalar = typename Derived::Scalar;
  const Scalar keep_scale = Scalar(1) / (Scalar(1) - p);
  const double keep_probability = 1.0 - static_cast<double>(p);
  for (Index i = 0; i < values.rows(); ++i) {
    for (Index j = 0; j < values.cols(); ++j) {
      const bool keep = generator.uniform<double>() < keep_probability;
      values(i, j) = keep ? values(i, j) * keep_scale : Scalar(0);
    }
  }
}

/// The backward of dropout_inplace: replays the same draws (a copy of the generator as it was
/// before the forward) and applies the same mask and scale to the gradient.
template <typename Derived>
void dropout_backward_inplace(Eigen::MatrixBase<Derived>& gradient, typename Derived::Scalar p,
                              Generator& replay) {
  dropout_inplace(gradient, p, replay);
}

}  // namespace detail

/// Inverted dropout of a 2-D view in place: each element is zeroed with probability p and the
/// rest are multiplied by 1 / (1 - p). With `training == false` it does nothing (eval mode).
/// @param values   (rows, cols), unit-stride columns.
/// @param p        drop probability in [0, 1).
/// @param generator the only source of randomness: the same seed gives the same mask.
/// @throws std::invalid_argument if p is outside [0, 1) or NaN.
template <typename Scalar>
void dropout(const TensorView<Scalar, 2>& values, Scalar p, bool training, Generator& generator) {
  detail::validate_dropout(p, "dropout");
  if (!training || p == Scalar(0)) return;
  auto matrix = as_matrix(values);
  detail::dropout_inplace(matrix, p, generator);
}

}  // namespace attn

#endif  // ATTN_KERNELS_DROPOUT_HPP
