// attn/layers/layer_mask.hpp: LayerMask, what a batch of sequences of different lengths adds to
// an attention layer's own causal (or sliding-window) mask, with PyTorch's semantics:
//
//   key_lengths (B)           in sequence b only keys j < key_lengths[b] are seen (right padding)
//   key_padding (B, S) bool   true = padding, never attended: nn.MultiheadAttention's
//                             key_padding_mask (Hugging Face's attention_mask is its negation)
//   additive (B|1, H|1, T, S) added to the scaled scores before the softmax, -inf forbids a
//                             pair: F.scaled_dot_product_attention's float attn_mask (a boolean
//                             one converts with additive_from_pytorch_attn_mask)
//
// S is the number of keys (T in a forward without a KV cache). At most one of key_lengths and
// key_padding. A query whose keys are all masked gets a zero output row and zero gradients
// (PyTorch's softmax gives NaN there). The views must live through the forward; a training
// forward copies what its backward needs into the layer's Cache.
#ifndef ATTN_LAYERS_LAYER_MASK_HPP
#define ATTN_LAYERS_LAYER_MASK_HPP

#include <stdexcept>

#include "attn/config.hpp"
#include "attn/kernels/mask.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/tensor_view.hpp"

namespace attn {

template <typename Scalar>
struct LayerMask {
  TensorView<const Index, 1> key_lengths;
  TensorView<const bool, 2> key_padding;
  TensorView<const Scalar, 4> additive;

  bool empty() const {
    return key_lengths.data() == nullptr && key_padding.data() == nullptr &&
           additive.data() == nullptr;
  }

  /// `base` (the layer's causal or windowed mask) with this mask's key padding.
  /// @throws std::invalid_argument naming `who` if both key_lengths and key_padding are given.
  Mask on(const Mask& base, const char* who) const {
    if (key_lengths.data() != nullptr && key_padding.data() != nullptr) {
      throw std::invalid_argument(detail::concat(
          who,
          ": a LayerMask takes key_lengths or key_padding, not both (lengths are right "
          "padding; give any other padding as key_padding)"));
    }
    if (key_lengths.data() != nullptr) return base.with_key_lengths(key_lengths);
    if (key_padding.data() != nullptr) return base.with_key_padding(key_padding);
    return base;
  }
};

namespace detail {

/// A LayerMask's tensors copied: what a training Cache keeps, so that backward does not depend
/// on the caller's tensors living on.
template <typename Scalar>
struct OwnedLayerMask {
  Tensor<Index, 1> key_lengths;
  Tensor<bool, 2> key_padding;
  Tensor<Scalar, 4> additive;

  OwnedLayerMask() = default;
  explicit OwnedLayerMask(const LayerMask<Scalar>& mask) {
    if (mask.key_lengths.data() != nullptr) key_lengths = Tensor<Index, 1>(mask.key_lengths);
    if (mask.key_padding.data() != nullptr) key_padding = Tensor<bool, 2>(mask.key_padding);
    if (mask.additive.data() != nullptr) additive = Tensor<Scalar, 4>(mask.additive);
  }

  LayerMask<Scalar> view() const {
    LayerMask<Scalar> mask;
    if (key_lengths.numel() != 0) mask.key_lengths = key_lengths.view();
    if (key_padding.numel() != 0) mask.key_padding = key_padding.view();
    if (additive.numel() != 0) mask.additive = additive.view();
    return mask;
  }
};

}  // namespace detail
}  // namespace attn

#endif  // ATTN_LAYERS_LAYER_MASK_HPP
