// attn/kernels/mask.hpp: attention masks, stage 2 of the shared attention kernel.
//
// One semantics everywhere: `true` means masked out. A masked logit becomes -inf before the
// softmax, so it gets exactly zero weight (never a magic -10000).
#ifndef ATTN_KERNELS_MASK_HPP
#define ATTN_KERNELS_MASK_HPP

#include <algorithm>
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

  /// Sets masked entries of a score block to -inf. The block's top-left element is
  /// (query row0, key col0) of the full (T, S) scores, so tiles of a larger problem mask right.
  template <typename Derived>
  void apply(Eigen::MatrixBase<Derived>& scores, Index row0 = 0, Index col0 = 0) const {
    using Scalar = typename Derived::Scalar;
    const Scalar minus_inf = -std::numeric_limits<Scalar>::infinity();
    if (kind_ == Kind::none) return;
    for (Index i = 0; i < scores.rows(); ++i) {
      if (kind_ == Kind::causal) {
        // Keys after row0 + i + offset form one contiguous tail of the row.
        const Index first = std::max<Index>(0, row0 + i + causal_offset_ + 1 - col0);
        if (first < scores.cols()) scores.row(i).tail(scores.cols() - first).setConstant(minus_inf);
      } else {
        for (Index j = 0; j < scores.cols(); ++j) {
          if (matrix_(row0 + i, col0 + j)) scores(i, j) = minus_inf;
        }
      }
    }
  }

  /// The same for a transposed block, keys by queries: element (j, i) is (key col0 + j, query
  /// row0 + i). A causal mask hides a contiguous head of each key's row of queries.
  template <typename Derived>
  void apply_transposed(Eigen::MatrixBase<Derived>& scores_t, Index row0 = 0,
                        Index col0 = 0) const {
    using Scalar = typename Derived::Scalar;
    if (kind_ == Kind::causal) {
      // Query row0 + i sees key col0 + j when col0 + j <= row0 + i + offset.
      for (Index j = 0; j < scores_t.rows(); ++j) {
        const Index hidden =
            std::clamp<Index>(col0 + j - causal_offset_ - row0, 0, scores_t.cols());
        scores_t.row(j).head(hidden).setConstant(-std::numeric_limits<Scalar>::infinity());
      }
    } else {
      auto scores = scores_t.transpose();
      apply(scores, row0, col0);
    }
  }
  /// True when no key in [col0, col0 + cols) is masked for any query in [row0, row0 + rows):
  /// the fused kernel skips masking such tiles.
  bool tile_is_unmasked(Index row0, Index col0, Index cols) const {
    if (kind_ == Kind::none) return true;
    if (kind_ == Kind::causal) return col0 + cols - 1 <= row0 + causal_offset_;
    return false;
  }

  /// One past the last key any query in [row0, row0 + rows) may see, clamped to [0, keys]:
  /// for a causal mask the key tiles beyond it are skipped entirely.
  Index key_end(Index row0, Index rows, Index keys) const {
    if (kind_ != Kind::causal) return keys;
    return std::clamp<Index>(row0 + rows + causal_offset_, 0, keys);
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
