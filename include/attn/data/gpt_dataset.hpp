// attn/data/gpt_dataset.hpp: GPTDatasetV1 (book section 2.6), the sliding window that turns one
// long run of token ids into (input, target) pairs for next-token prediction. Where the book keeps
// two lists of small tensors, this keeps the ids once and hands out strided views of them: window
// i starts at ids[i * stride], so the windows are the rows of one (N, max_length) view with
// strides (stride, 1), and the targets are the same view moved by one token.
#ifndef ATTN_DATA_GPT_DATASET_HPP
#define ATTN_DATA_GPT_DATASET_HPP

#include <utility>
#include <vector>

#include "attn/config.hpp"
#include "attn/tensor/shape.hpp"
#include "attn/tensor/tensor_view.hpp"
#include "attn/tensor/view_ops.hpp"

namespace attn {

/// The book's GPTDatasetV1 over token ids already encoded (the tokenizer lives in the attn::text
/// component): for i in range(0, len(ids) - max_length, stride), window i is
/// input = ids[i : i + max_length] and target = ids[i + 1 : i + max_length + 1].
///
/// The dataset owns one buffer, the ids; every window is a view into it (no copy). Views stay
/// valid while the dataset lives and is not assigned to; moving the dataset keeps them valid
/// (the buffer moves with it), copying makes a second buffer that the old views do not see.
class GPTDatasetV1 {
 public:
  /// @param token_ids the encoded text (moved in; pass std::move(ids) to avoid a copy).
  /// @throws std::invalid_argument if max_length or stride is not positive, or there are fewer
  ///         than max_length + 1 ids (the book's range would be empty: no window has a target).
  GPTDatasetV1(std::vector<Index> token_ids, Index max_length, Index stride)
      : token_ids_(std::move(token_ids)), max_length_(max_length), stride_(stride) {
    validate();
    // len(range(0, n - max_length, stride)) with n - max_length >= 1, without overflow.
    size_ = 1 + (static_cast<Index>(token_ids_.size()) - max_length_ - 1) / stride_;
  }

  /// Number of windows, len(dataset).
  Index size() const { return size_; }
  Index max_length() const { return max_length_; }
  Index stride() const { return stride_; }
  const std::vector<Index>& token_ids() const { return token_ids_; }

  /// Every input window as one (size(), max_length) view with strides (stride, 1): row i is
  /// input(i). Windows overlap when stride < max_length and skip ids when stride > max_length.
  TensorView<const Index, 2> inputs() const { return windows(0); }

  /// The targets, (size(), max_length), strides (stride, 1): inputs() moved by one token.
  TensorView<const Index, 2> targets() const { return windows(1); }

  /// Window i's input, ids[i * stride, i * stride + max_length), a view.
  /// @throws IndexError (std::out_of_range) unless 0 <= i < size().
  TensorView<const Index, 1> input(Index i) const { return row(inputs(), i, "input"); }

  /// Window i's target, ids[i * stride + 1, i * stride + max_length + 1), a view.
  /// @throws IndexError (std::out_of_range) unless 0 <= i < size().
  TensorView<const Index, 1> target(Index i) const { return row(targets(), i, "target"); }

 private:
  void validate() const {
    if (max_length_ <= 0) {
      throw std::invalid_argument(
          detail::concat("GPTDatasetV1: max_length (", max_length_, ") must be positive"));
    }
    if (stride_ <= 0) {
      throw std::invalid_argument(
          detail::concat("GPTDatasetV1: stride (", stride_, ") must be positive"));
    }
    const auto count = static_cast<Index>(token_ids_.size());
    if (count <= max_length_) {
      throw std::invalid_argument(detail::concat(
          "GPTDatasetV1: ", count, " token ids are too few for max_length (", max_length_,
          "): a window and its target need at least max_length + 1 (", max_length_ + 1, ") ids"));
    }
  }

  TensorView<const Index, 2> windows(Index offset) const {
    return TensorView<const Index, 2>(token_ids_.data() + offset, {size_, max_length_},
                                      {stride_, 1});
  }

  TensorView<const Index, 1> row(const TensorView<const Index, 2>& all, Index i,
                                 const char* what) const {
    if (i < 0 || i >= size_) {
      throw IndexError(detail::concat("GPTDatasetV1::", what, ": index ", i,
                                      " is out of range for a dataset of ", size_, " windows"));
    }
    return select(all, 0, i);
  }

  std::vector<Index> token_ids_;
  Index max_length_;
  Index stride_;
  Index size_ = 0;
};

}  // namespace attn

#endif  // ATTN_DATA_GPT_DATASET_HPP
