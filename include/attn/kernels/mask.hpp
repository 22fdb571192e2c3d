// attn/kernels/mask.hpp: attention masks, stage 2 of the shared attention kernel.
//
// One semantics everywhere: `true` means masked out. A masked logit becomes -inf before the
// softmax, so it gets exactly zero weight (never a magic -10000).
#ifndef ATTN_KERNELS_MASK_HPP
#define ATTN_KERNELS_MASK_HPP

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <utility>

#include "attn/config.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/tensor_view.hpp"

namespace attn {

/// Which keys each query may not attend to. Cheap to copy: explicit masks and padding are views.
///
/// A mask is one of three kinds (none, causal, an explicit (T, S) matrix), optionally narrowed
/// to a causal band (sliding_window) and, per sequence of the batch, to the keys that are not
/// padding (with_key_lengths, with_key_padding). The kernels resolve the padding of each
/// (batch, head) with for_leading before they apply the mask.
class Mask {
 public:
  enum class Kind { none, causal, matrix };

  /// Every query sees every key.
  static Mask none() { return Mask(Kind::none, 0, {}); }

  /// Query i sees keys j <= i + offset; offset 0 is the book's mask and PyTorch's `is_causal`
  /// (top-left aligned when T != S). A positive offset lets queries see that many keys ahead,
  /// e.g. offset S - T for the last T queries of an S-token sequence (a KV cache's chunk).
  static Mask causal(Index offset = 0) { return Mask(Kind::causal, offset, {}); }

  /// The book's MultiHeadAttentionWithSWA band: query i sees keys j with
  /// 0 <= i + offset - j < window, the causal mask narrowed to the last `window` keys.
  /// window >= T is the causal mask; window 1 lets each query see only its own key.
  /// @throws std::invalid_argument if window < 1.
  static Mask sliding_window(Index window, Index offset = 0) {
    if (window < 1) {
      throw std::invalid_argument(
          detail::concat("Mask::sliding_window: window (", window, ") must be at least 1"));
    }
    Mask mask(Kind::causal, offset, {});
    mask.window_ = window;
    return mask;
  }

  /// An explicit (T, S) boolean matrix, true = masked out, shared by every batch and head.
  /// The view must outlive every use of the Mask.
  static Mask matrix(const TensorView<const bool, 2>& masked) {
    return Mask(Kind::matrix, 0, masked);
  }

  /// This mask, and in sequence b of the batch the keys j >= lengths[b] masked too: right
  /// padding given as lengths. lengths is (B), B the first leading dim of q (1 for a rank-2 q);
  /// each length >= 0; a length of S or more masks none of the S keys, so a decoder can pass
  /// its sequences' lengths as they are while the keys grow. The view must outlive every use of
  /// the Mask.
  Mask with_key_lengths(const TensorView<const Index, 1>& lengths) const {
    Mask mask = *this;
    mask.key_lengths_ = lengths;
    mask.key_padding_ = {};
    return mask;
  }

  /// This mask, and in sequence b the keys j with padding(b, j) true masked too: padding as a
  /// (B, S) bool matrix, true = padding (masked out), the convention of attn and of PyTorch's
  /// `key_padding_mask` in nn.MultiheadAttention. The view must outlive every use of the Mask.
  Mask with_key_padding(const TensorView<const bool, 2>& padding) const {
    Mask mask = *this;
    mask.key_padding_ = padding;
    mask.key_lengths_ = {};
    return mask;
  }

  Kind kind() const { return kind_; }
  Index causal_offset() const { return causal_offset_; }
  /// The sliding window's width, 0 without one.
  Index window() const { return window_; }
  /// True when the mask differs between sequences of the batch (key lengths or padding).
  bool has_key_padding() const { return padding_batches() > 0; }
  /// The padding's batch size B, 0 without padding.
  Index padding_batches() const {
    if (key_lengths_.data() != nullptr) return key_lengths_.size(0);
    if (key_padding_.data() != nullptr) return key_padding_.size(0);
    return 0;
  }

  /// The mask of leading position n of `count` (flat over (B, H, ...), B first): the padding of
  /// its sequence b = n / (count / B) resolved, so that apply and the tile queries below see it.
  Mask for_leading(Index n, Index count) const {
    const Index batches = padding_batches();
    if (batches == 0) return *this;
    Mask mask = *this;
    const Index b = n / std::max<Index>(count / batches, 1);
    if (key_lengths_.data() != nullptr) mask.key_limit_ = key_lengths_(b);
    if (key_padding_.data() != nullptr) mask.padding_row_ = &key_padding_(b, 0);
    mask.padding_stride_ = key_padding_.data() != nullptr ? key_padding_.strides()[1] : 0;
    mask.key_lengths_ = {};
    mask.key_padding_ = {};
    return mask;
  }

  /// True when query `i` may not attend to key `j` (in sequence `batch` when there is padding).
  bool masked(Index i, Index j, Index batch = 0) const {
    if (has_key_padding()) return for_leading(batch, padding_batches()).masked(i, j);
    if (j >= key_limit_ || (padding_row_ != nullptr && padding_row_[j * padding_stride_])) {
      return true;
    }
    switch (kind_) {
      case Kind::causal:
        return j > i + causal_offset_ || (window_ > 0 && i + causal_offset_ - j >= window_);
      case Kind::matrix:
        return matrix_(i, j);
      case Kind::none:
        break;
    }
    return false;
  }

  /// @throws ShapeError if an explicit mask is not (queries, keys), or the padding's keys
  ///         differ from `keys`; std::out_of_range for a negative key length.
  void check_shape(Index queries, Index keys, const char* who) const {
    if (kind_ == Kind::matrix && (matrix_.size(0) != queries || matrix_.size(1) != keys)) {
      throw ShapeError(detail::concat(who, ": mask has shape ", to_string(matrix_.shape()),
                                      " but the attention scores are (", queries, ", ", keys,
                                      ") (T, S)"));
    }
    if (key_padding_.data() != nullptr && key_padding_.size(1) != keys) {
      throw ShapeError(detail::concat(
          who, ": key padding has shape ", to_string(key_padding_.shape()), " but there are ", keys,
          " keys; it must be (B, S) = (", key_padding_.size(0), ", ", keys, ")"));
    }
    for (Index b = 0; key_lengths_.data() != nullptr && b < key_lengths_.size(0); ++b) {
      if (key_lengths_(b) < 0) {
        throw std::out_of_range(detail::concat(who, ": key length ", key_lengths_(b),
                                               " of sequence ", b,
                                               " is negative; a length counts the sequence's "
                                               "keys from the first (S = ",
                                               keys, ")"));
      }
    }
  }

  /// @throws ShapeError unless the padding has one row per sequence: `batch` is q's first
  ///         leading dim (1 for a rank-2 q).
  void check_batch(Index batch, const char* who) const {
    if (has_key_padding() && padding_batches() != batch) {
      throw ShapeError(detail::concat(who, ": key padding is given for ", padding_batches(),
                                      " sequences but q has a batch of ", batch,
                                      " (its first leading dim)"));
    }
  }

  /// Sets masked entries of a score block to -inf. The block's top-left element is
  /// (query row0, key col0) of the full (T, S) scores, so tiles of a larger problem mask right.
  /// With padding, call it on for_leading's mask.
  template <typename Derived>
  void apply(Eigen::MatrixBase<Derived>& scores, Index row0 = 0, Index col0 = 0) const {
    using Scalar = typename Derived::Scalar;
    const Scalar minus_inf = -std::numeric_limits<Scalar>::infinity();
    const Index cols = scores.cols();
    if (kind_ == Kind::matrix || padding_row_ != nullptr) {
      for (Index i = 0; i < scores.rows(); ++i) {
        for (Index j = 0; j < cols; ++j) {
          if (masked(row0 + i, col0 + j)) scores(i, j) = minus_inf;
        }
      }
      return;
    }
    for (Index i = 0; i < scores.rows(); ++i) {
      // The visible keys of a row are one contiguous run [first, end); the rest is -inf.
      const auto [first, end] = visible_keys(row0 + i, col0, cols);
      scores.row(i).head(first).setConstant(minus_inf);
      scores.row(i).tail(cols - end).setConstant(minus_inf);
    }
  }

  /// The same for a transposed block, keys by queries: element (j, i) is (key col0 + j, query
  /// row0 + i). A causal band hides a contiguous head and tail of each key's row of queries.
  template <typename Derived>
  void apply_transposed(Eigen::MatrixBase<Derived>& scores_t, Index row0 = 0,
                        Index col0 = 0) const {
    using Scalar = typename Derived::Scalar;
    const Scalar minus_inf = -std::numeric_limits<Scalar>::infinity();
    if (kind_ == Kind::matrix || padding_row_ != nullptr) {
      auto scores = scores_t.transpose();
      apply(scores, row0, col0);
      return;
    }
    const Index rows = scores_t.cols();
    for (Index j = 0; j < scores_t.rows(); ++j) {
      const Index key = col0 + j;
      if (key >= key_limit_) {
        scores_t.row(j).setConstant(minus_inf);
        continue;
      }
      if (kind_ != Kind::causal) continue;
      // Query row0 + i sees the key when key <= row0 + i + offset (causal) and, with a
      // window, row0 + i + offset - key < window.
      const Index hidden = std::clamp<Index>(key - causal_offset_ - row0, 0, rows);
      scores_t.row(j).head(hidden).setConstant(minus_inf);
      if (window_ > 0) {
        const Index seen_until = std::clamp<Index>(key + window_ - causal_offset_ - row0, 0, rows);
        scores_t.row(j).tail(rows - seen_until).setConstant(minus_inf);
      }
    }
  }

  /// True when every query in [row0, row0 + rows) sees every key in [col0, col0 + cols):
  /// the fused kernel skips masking such tiles.
  bool tile_is_unmasked(Index row0, Index rows, Index col0, Index cols) const {
    if (padding_row_ != nullptr || kind_ == Kind::matrix || col0 + cols > key_limit_) return false;
    if (kind_ == Kind::none) return true;
    const bool causal_clear = col0 + cols - 1 <= row0 + causal_offset_;
    const bool window_clear = window_ == 0 || row0 + rows - 1 + causal_offset_ - col0 < window_;
    return causal_clear && window_clear;
  }

  /// The first key any query in [row0, row0 + rows) may see (clamped to [0, keys]): with a
  /// sliding window the key tiles before it are skipped, so the cost grows as T * window.
  Index key_begin(Index row0, Index keys) const {
    if (kind_ != Kind::causal || window_ == 0) return 0;
    return std::clamp<Index>(row0 + causal_offset_ - window_ + 1, 0, keys);
  }

  /// One past the last key any query in [row0, row0 + rows) may see, clamped to [0, keys]:
  /// for a causal mask and for key lengths the key tiles beyond it are skipped entirely.
  Index key_end(Index row0, Index rows, Index keys) const {
    const Index limit = std::min(keys, key_limit_);
    if (kind_ != Kind::causal) return std::max<Index>(limit, 0);
    return std::clamp<Index>(row0 + rows + causal_offset_, 0, std::max<Index>(limit, 0));
  }

 private:
  Mask(Kind kind, Index offset, TensorView<const bool, 2> matrix)
      : kind_(kind), causal_offset_(offset), matrix_(matrix) {}

  /// For query `query`, the keys of [col0, col0 + cols) it sees, as [first, end) relative to
  /// col0 (causal or none kinds, padding given as a length).
  std::pair<Index, Index> visible_keys(Index query, Index col0, Index cols) const {
    Index first = 0, end = std::clamp<Index>(key_limit_ - col0, 0, cols);
    if (kind_ == Kind::causal) {
      end = std::min(end, std::clamp<Index>(query + causal_offset_ + 1 - col0, 0, cols));
      if (window_ > 0)
        first = std::clamp<Index>(query + causal_offset_ - window_ + 1 - col0, 0, cols);
    }
    return {first, std::max(first, end)};
  }

  Kind kind_;
  Index causal_offset_;
  Index window_ = 0;
  TensorView<const bool, 2> matrix_;
  TensorView<const Index, 1> key_lengths_;  // per sequence, before for_leading
  TensorView<const bool, 2> key_padding_;   // per sequence, before for_leading
  // After for_leading: the sequence's key length, or its row of the padding.
  Index key_limit_ = std::numeric_limits<Index>::max();
  const bool* padding_row_ = nullptr;
  Index padding_stride_ = 0;
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

/// PyTorch's boolean `attn_mask` (F.scaled_dot_product_attention, nn.MultiheadAttention) means
/// true = may attend, the opposite of attn's true = masked out: this converts one, of any rank,
/// to attn's convention, e.g. a (T, S) matrix for Mask::matrix. (PyTorch's `key_padding_mask`
/// already means true = ignore: pass it to Mask::with_key_padding as it is.)
template <int Rank>
Tensor<bool, Rank> masked_from_pytorch_attn_mask(const TensorView<const bool, Rank>& attend) {
  Tensor<bool, Rank> masked(attend);
  for (Index i = 0; i < masked.numel(); ++i) masked.data()[i] = !masked.data()[i];
  return masked;
}

/// The same PyTorch boolean `attn_mask` as an additive float mask (0 where it attends, -inf
/// where not), for AttentionOptions::additive_mask: how a (B or 1, H or 1, T, S) boolean mask
/// that differs between batches or heads reaches the kernel.
template <typename Scalar, int Rank>
Tensor<Scalar, Rank> additive_from_pytorch_attn_mask(const TensorView<const bool, Rank>& attend) {
  const Tensor<bool, Rank> copy(attend);
  Tensor<Scalar, Rank> additive(attend.shape());
  for (Index i = 0; i < copy.numel(); ++i) {
    additive.data()[i] = copy.data()[i] ? Scalar(0) : -std::numeric_limits<Scalar>::infinity();
  }
  return additive;
}

}  // namespace attn

#endif  // ATTN_KERNELS_MASK_HPP
