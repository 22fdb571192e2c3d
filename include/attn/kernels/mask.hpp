// attn/kernels/mask.hpp: attention masks, stage 2 of the shared attention kernel.
//
// One semantics everywhere: `true` means masked out. A masked logit becomes -inf before the
// softmax, so it gets exactly zero weight (never a magic -10000).
#ifndef ATTN_KERNELS_MASK_HPP
#define ATTN_KERNELS_MASK_HPP

#include <limits>

#include "attn/config.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/tensor_view.hpp"

namespace attn {

/// Which keys each query may not attend to. Cheap to copy: an explicit mask is a view.
class Mask {
 public:
  enum class Kind { none, causal, matrix };

  /// Every query sees every key.
  static Mask none() { return Mask(Kind::none, 0, {}); }

  /// Query i sees keys j <= i + offset; offset 0 is the book's mask and PyTorch's `is_causal`
  /// (top-left aligned when T != S). A positive offset lets queries see that many keys ahead,
  /// e.g. offset S - T for the last T queries of an S-token sequence.
  static Mask causal(Index offset = 0) { return Mask(Kind::causal, offset, {}); }

  /// An explicit (T, S) boolean matrix, true = masked out, shared by every batch and head.
  /// The view must outlive every use of the Mask.
  static Mask matrix(const TensorView<const bool, 2>& masked) {
    return Mask(Kind::matrix, 0, masked);
  }

  Kind kind() const { return kind_; }
  Index causal_offset() const { return causal_offset_; }
  const TensorView<const bool, 2>& matrix_view() const { return matrix_; }

  /// True when query `i` may not attend to key `j`.
  bool masked(Index i, Index j) const {
    switch (kind_) {
      case Kind::causal:
        return j > i + causal_offset_;
      case Kind::matrix:
        return matrix_(i, j);
      case Kind::none:
        break;
    }
    return false;
  }

  /// @throws ShapeError if an explicit mask is not (queries, keys).
  void check_shape(Index queries, Index keys, const char* who) const {
    if (kind_ == Kind::matrix && (matrix_.size(0) != queries || matrix_.size(1) != keys)) {
      throw ShapeError(detail::concat(who, ": mask has shape ", to_string(matrix_.shape()),
                                      " but the attention scores are (", queries, ", ", keys,
                                      ") (T, S)"));
    }
  }

  /// Sets masked entries of a (T, S) score block to -inf. `row0` is the block's first query.
  template <typename Derived>
  void apply(Eigen::MatrixBase<Derived>& scores, Index row0 = 0) const {
    using Scalar = typename Derived::Scalar;
    const Scalar minus_inf = -std::numeric_limits<Scalar>::infinity();
    if (kind_ == Kind::none) return;
    for (Index i = 0; i < scores.rows(); ++i) {
      if (kind_ == Kind::causal) {
        // Keys after i + offset form one contiguous tail of the row.
        const Index first = std::max<Index>(0, row0 + i + causal_offset_ + 1);
        if (first < scores.cols()) scores.row(i).tail(scores.cols() - first).setConstant(minus_inf);
      } else {
        for (Index j = 0; j < scores.cols(); ++j) {
          if (matrix_(row0 + i, j)) scores(i, j) = minus_inf;
        }
      }
    }
  }

 private:
  Mask(Kind kind, Index offset, TensorView<const bool, 2> matrix)
      : kind_(kind), causal_offset_(offset), matrix_(matrix) {}

  Kind kind_;
  Index causal_offset_;
  TensorView<const bool, 2> matrix_;
};

/// The book's causal mask as a matrix: `torch.triu(torch.ones(T, S), diagonal=1)`, true above
/// the diagonal (masked out).
inline Tensor<bool, 2> causal_mask(Index queries, Index keys) {
  Tensor<bool, 2> mask({queries, keys});
  for (Index i = 0; i < queries; ++i) {
    for (Index j = i + 1; j < keys; ++j) mask(i, j) = true;
  }
  return mask;
}

}  // namespace attn

#endif  // ATTN_KERNELS_MASK_HPP
