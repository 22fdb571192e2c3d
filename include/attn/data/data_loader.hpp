// attn/data/data_loader.hpp: DataLoader, the batcher of book section 2.6 (torch.utils.data.
// DataLoader over a GPTDatasetV1, as the book's create_dataloader builds it): batch_size windows
// at a time, in order or shuffled in PyTorch's order, the last short batch kept or dropped.
#ifndef ATTN_DATA_DATA_LOADER_HPP
#define ATTN_DATA_DATA_LOADER_HPP

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include "attn/config.hpp"
#include "attn/data/gpt_dataset.hpp"
#include "attn/random/generator.hpp"
#include "attn/random/randperm.hpp"
#include "attn/tensor/shape.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/tensor_view.hpp"
#include "attn/tensor/view_ops.hpp"

namespace attn {

/// One batch: inputs and targets, each (B, max_length), B = batch_size except perhaps for the
/// last batch. Unshuffled, both are views into the dataset's ids (strides (stride, 1), no copy);
/// shuffled, the batch owns a gathered copy (contiguous rows), shared by copies of the Batch, so
/// its views live as long as some copy of it does. Destructures as `const auto& [x, y] = batch`.
class Batch {
 public:
  /// A batch of views into memory someone else owns (the dataset).
  Batch(const TensorView<const Index, 2>& inputs, const TensorView<const Index, 2>& targets)
      : inputs_(inputs), targets_(targets) {}

  /// A batch owning its windows: `windows` is (2, B, max_length), inputs then targets.
  explicit Batch(Tensor<Index, 3> windows)
      : storage_(std::make_shared<const Tensor<Index, 3>>(std::move(windows))),
        inputs_(select(storage_->view(), 0, 0)),
        targets_(select(storage_->view(), 0, 1)) {}

  const TensorView<const Index, 2>& inputs() const { return inputs_; }
  const TensorView<const Index, 2>& targets() const { return targets_; }
  /// Number of windows in this batch (B).
  Index size() const { return inputs_.size(0); }
  /// True when the batch holds its own copy (shuffled), false for views into the dataset.
  bool owns_data() const { return storage_ != nullptr; }

  /// get<0>() is inputs(), get<1>() targets(): what structured bindings call.
  template <std::size_t I>
  const TensorView<const Index, 2>& get() const {
    static_assert(I < 2, "A Batch holds two views: inputs (0) and targets (1).");
    if constexpr (I == 0) {
      return inputs_;
    } else {
      return targets_;
    }
  }

 private:
  std::shared_ptr<const Tensor<Index, 3>> storage_;
  TensorView<const Index, 2> inputs_;
  TensorView<const Index, 2> targets_;
};

/// torch.utils.data.DataLoader(dataset, batch_size, shuffle, drop_last=drop_last,
/// generator=torch.Generator().manual_seed(s)) over a GPTDatasetV1, single-process.
///
/// Each pass (each call of begin(), as each `for` over the loader or each iter(loader) in
/// Python) is an epoch. It first draws the 64-bit base seed PyTorch's iterator draws from the
/// loader's generator (two 32-bit draws, unused here, drawn so the sequence stays PyTorch's), then
/// with shuffle the epoch's order, randperm(size, generator) as RandomSampler draws it. So
/// `DataLoader(dataset, 8, true, false, Generator(123))` yields, epoch after epoch, the batches of
/// `DataLoader(dataset, 8, shuffle=True, generator=torch.Generator().manual_seed(123))`.
/// The loader owns its Generator (a copy of the one passed) and keeps a reference to the dataset,
/// which must outlive it and every unshuffled Batch.
class DataLoader {
 public:
  class Iterator;

  /// @param batch_size windows per batch. @param shuffle visit windows in a random order drawn
  /// anew each epoch. @param drop_last drop the last batch when it is short (torch's drop_last).
  /// @param generator the shuffle's randomness (PyTorch's default seed if omitted; PyTorch
  /// would seed from its global generator).
  /// @throws std::invalid_argument if batch_size is not positive.
  explicit DataLoader(const GPTDatasetV1& dataset, Index batch_size = 1, bool shuffle = false,
                      bool drop_last = false, Generator generator = Generator())
      : dataset_(&dataset),
        batch_size_(batch_size),
        shuffle_(shuffle),
        drop_last_(drop_last),
        generator_(generator) {
    if (batch_size <= 0) {
      throw std::invalid_argument(
          detail::concat("DataLoader: batch_size (", batch_size, ") must be positive"));
    }
  }
  /// A temporary dataset would leave the loader's views dangling.
  explicit DataLoader(GPTDatasetV1&& dataset, Index batch_size = 1, bool shuffle = false,
                      bool drop_last = false, Generator generator = Generator()) = delete;

  /// Number of batches per epoch, len(loader): ceil(N / batch_size), or floor with drop_last.
  Index size() const {
    const Index windows = dataset_->size();
    return drop_last_ ? windows / batch_size_ : (windows + batch_size_ - 1) / batch_size_;
  }

  const GPTDatasetV1& dataset() const { return *dataset_; }
  Index batch_size() const { return batch_size_; }
  bool shuffle() const { return shuffle_; }
  bool drop_last() const { return drop_last_; }
  /// The loader's generator, advanced by every epoch begun so far.
  Generator& generator() { return generator_; }

  /// The window order of the current epoch: 0, 1, ... unshuffled, else the epoch's permutation
  /// (empty before the first shuffled epoch begins).
  std::vector<Index> order() const {
    if (shuffle_) return order_;
    std::vector<Index> identity(static_cast<std::size_t>(dataset_->size()));
    for (std::size_t i = 0; i < identity.size(); ++i) identity[i] = static_cast<Index>(i);
    return identity;
  }

  /// Starts an epoch (draws from the generator, see the class comment) and returns its first
  /// batch. Iterators of an earlier epoch then read the new epoch's order.
  Iterator begin();
  Iterator end() const;

  /// Batch b of the current epoch: windows order[b * batch_size, ...).
  /// @throws IndexError unless 0 <= b < size(), or for a shuffled loader before an epoch began.
  Batch batch(Index b) const {
    if (b < 0 || b >= size()) {
      throw IndexError(detail::concat("DataLoader::batch: index ", b,
                                      " is out of range for a loader of ", size(), " batches"));
    }
    if (shuffle_ && order_.empty()) {
      throw IndexError("DataLoader::batch: a shuffled loader has no order before begin()");
    }
    const Index first = b * batch_size_;
    const Index count = std::min(batch_size_, dataset_->size() - first);
    if (!shuffle_) {
      // Consecutive windows are consecutive rows of the dataset's strided views: no copy.
      return Batch(slice(dataset_->inputs(), 0, first, first + count),
                   slice(dataset_->targets(), 0, first, first + count));
    }
    const Index length = dataset_->max_length();
    auto windows = Tensor<Index, 3>::uninitialized({2, count, length});
    for (Index j = 0; j < count; ++j) {
      const Index window = order_[static_cast<std::size_t>(first + j)];
      const auto input = dataset_->input(window);
      const auto target = dataset_->target(window);
      std::copy_n(input.data(), length, &windows(0, j, 0));
      std::copy_n(target.data(), length, &windows(1, j, 0));
    }
    return Batch(std::move(windows));
  }

 private:
  const GPTDatasetV1* dataset_;
  Index batch_size_;
  bool shuffle_;
  bool drop_last_;
  Generator generator_;
  std::vector<Index> order_;
};

/// An input iterator over one epoch's batches; dereferencing builds the Batch (a view, or a
/// gather when shuffled).
class DataLoader::Iterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = Batch;
  using difference_type = std::ptrdiff_t;
  using pointer = void;
  using reference = Batch;

  Iterator(const DataLoader* loader, Index index) : loader_(loader), index_(index) {}

  Batch operator*() const { return loader_->batch(index_); }
  Iterator& operator++() {
    ++index_;
    return *this;
  }
  Iterator operator++(int) {
    Iterator before = *this;
    ++index_;
    return before;
  }
  /// The batch index within the epoch.
  Index index() const { return index_; }
  friend bool operator==(const Iterator& a, const Iterator& b) {
    return a.loader_ == b.loader_ && a.index_ == b.index_;
  }
  friend bool operator!=(const Iterator& a, const Iterator& b) { return !(a == b); }

 private:
  const DataLoader* loader_;
  Index index_;
};

inline DataLoader::Iterator DataLoader::begin() {
  // PyTorch's _BaseDataLoaderIter draws its base seed first: torch.empty((), dtype=torch.int64)
  // .random_(generator=loader.generator), one random64() = two 32-bit draws.
  generator_.next_u32();
  generator_.next_u32();
  if (shuffle_) order_ = randperm(dataset_->size(), generator_);
  return Iterator(this, 0);
}

inline DataLoader::Iterator DataLoader::end() const {
  return Iterator(this, size());
}

}  // namespace attn

// Batch is tuple-like, for `for (const auto& [inputs, targets] : loader)`.
namespace std {
template <>
struct tuple_size<attn::Batch> : integral_constant<size_t, 2> {};
template <size_t I>
struct tuple_element<I, attn::Batch> {
  using type = const attn::TensorView<const attn::Index, 2>;
};
}  // namespace std

#endif  // ATTN_DATA_DATA_LOADER_HPP
