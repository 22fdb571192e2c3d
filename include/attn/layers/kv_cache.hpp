// attn/layers/kv_cache.hpp: KVCache, the keys and values a causal attention layer has already
// computed, so that generating text feeds one new token at a time instead of the whole sequence
// (the book's bonus notebook ch04/03_kv-cache, its `use_cache` path).
//
// The caller owns one cache per attention layer: the layer's forward(x, cache) appends the new
// tokens' keys and values and attends over everything cached, with the causal mask offset by
// the tokens already there (query i of a chunk sees keys 0 ... size() + i). Storage is
// allocated once, (batch, kv_heads, slots, head_dim) for keys and for values; nothing is
// reallocated or shifted while generating. With a window W (sliding-window attention) the cache
// is a ring of W slots: position p lives in slot p % W, so memory stays at W positions however
// long the sequence grows, and the oldest position is overwritten in place.
#ifndef ATTN_LAYERS_KV_CACHE_HPP
#define ATTN_LAYERS_KV_CACHE_HPP

#include <algorithm>
#include <stdexcept>

#include "attn/config.hpp"
#include "attn/layers/detail/validate.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/tensor_view.hpp"
#include "attn/tensor/view_ops.hpp"

namespace attn {

template <typename ScalarType>
class KVCache {
 public:
  using Scalar = ScalarType;

  /// Room for `capacity` positions of every sequence of a batch of `batch`, for a layer with
  /// `kv_heads` key/value heads of `head_dim` (MultiHeadAttention: kv_heads = num_heads).
  /// @throws std::invalid_argument if a size is not positive.
  KVCache(Index batch, Index kv_heads, Index head_dim, Index capacity)
      : KVCache(batch, kv_heads, head_dim, capacity, 0) {}

  /// A sliding-window cache: keeps the last `window` positions in a ring, for a layer whose
  /// queries see only the last `window` keys (its set_window). Any number of tokens may pass
  /// through it.
  /// @throws std::invalid_argument if a size or the window is not positive.
  static KVCache with_window(Index batch, Index kv_heads, Index head_dim, Index window) {
    detail::require_positive("KVCache::with_window", "window", window);
    return KVCache(batch, kv_heads, head_dim, window, window);
  }

  Index batch() const { return keys_.size(0); }
  Index kv_heads() const { return keys_.size(1); }
  Index head_dim() const { return keys_.size(3); }
  /// Positions the storage holds: the most tokens without a window, the window with one.
  Index capacity() const { return keys_.size(2); }
  /// The sliding window, 0 without one.
  Index window() const { return window_; }
  /// Tokens seen since the last reset(): the absolute position of the next token.
  Index size() const { return size_; }
  /// Positions held now: size(), or at most the window.
  Index held() const { return std::min(size_, capacity()); }

  /// Forgets every cached token (a new sequence); keeps the storage.
  void reset() { size_ = 0; }

  /// The cached keys and values, (batch, kv_heads, capacity, head_dim). Without a window
  /// position p is slot p; with one, slot p % window.
  TensorView<const Scalar, 4> keys() const { return keys_.view(); }
  TensorView<const Scalar, 4> values() const { return values_.view(); }

  /// @throws ShapeError naming `who` unless a layer with these sizes and a batch of `batch`
  ///         may use this cache (a cache belongs to one layer and one batch until reset()).
  void check_layer(const char* who, Index batch_size, Index kv_heads_, Index head_dim_) const {
    if (kv_heads_ != kv_heads() || head_dim_ != head_dim()) {
      throw ShapeError(detail::concat(who, ": the KV cache holds ", kv_heads(), " kv heads of dim ",
                                      head_dim(), " but this layer has ", kv_heads_, " of dim ",
                                      head_dim_,
                                      "; is it another layer's cache? Each layer needs its own"));
    }
    if (batch_size != batch()) {
      throw ShapeError(detail::concat(who, ": the KV cache was made for a batch of ", batch(),
                                      " but the input has a batch of ", batch_size,
                                      "; make a cache for this batch size"));
    }
  }

  /// @throws std::out_of_range naming `who` if `tokens` more do not fit (without a window).
  void check_room(const char* who, Index tokens) const {
    if (window_ == 0 && size_ + tokens > capacity()) {
      throw std::out_of_range(detail::concat(who, ": the KV cache holds ", size_, " of ",
                                             capacity(), " positions and cannot take ", tokens,
                                             " more; reset() it or make a larger one"));
    }
  }

  /// Stores the keys and values (batch, kv_heads, T, head_dim) of the next T positions (only
  /// the last `window` of them with a window) and advances size(). For the layers: they check
  /// the shapes first (check_layer, check_room).
  void append(const TensorView<const Scalar, 4>& keys, const TensorView<const Scalar, 4>& values) {
    const Index T = keys.size(2), slots = capacity();
    const Index first = window_ > 0 ? std::max<Index>(0, T - slots) : 0;
    for (Index b = 0; b < batch(); ++b) {
      for (Index h = 0; h < kv_heads(); ++h) {
        for (Index t = first; t < T; ++t) {
          const Index slot = window_ > 0 ? (size_ + t) % slots : size_ + t;
          copy_row(keys, keys_, b, h, t, slot);
          copy_row(values, values_, b, h, t, slot);
        }
      }
    }
    size_ += T;
  }

 private:
  KVCache(Index batch, Index kv_heads, Index head_dim, Index capacity, Index window)
      : keys_(checked_shape(batch, kv_heads, head_dim, capacity)),
        values_(keys_.shape()),
        window_(window) {}

  static Shape<4> checked_shape(Index batch, Index kv_heads, Index head_dim, Index capacity) {
    constexpr const char* who = "KVCache";
    detail::require_positive(who, "batch", batch);
    detail::require_positive(who, "kv_heads", kv_heads);
    detail::require_positive(who, "head_dim", head_dim);
    detail::require_positive(who, "capacity", capacity);
    return {batch, kv_heads, capacity, head_dim};
  }

  static void copy_row(const TensorView<const Scalar, 4>& from, Tensor<Scalar, 4>& to, Index b,
                       Index h, Index t, Index slot) {
    const Index D = to.size(3);
    const Scalar* source = &from(b, h, t, 0);
    const Index stride = from.strides()[3];
    Scalar* target = &to(b, h, slot, 0);
    for (Index d = 0; d < D; ++d) target[d] = source[d * stride];
  }

  Tensor<Scalar, 4> keys_, values_;
  Index window_;
  Index size_ = 0;
};

}  // namespace attn

#endif  // ATTN_LAYERS_KV_CACHE_HPP
