// attn/tensor/bfloat16.hpp: bfloat16 as bits, the top half of a float's: rounding a value to it
// as PyTorch does, and widening it back exactly. Linear's bfloat16 weights and the safetensors
// reader's BF16 tensors both use these.
#ifndef ATTN_TENSOR_BFLOAT16_HPP
#define ATTN_TENSOR_BFLOAT16_HPP

#include <cstdint>
#include <cstring>

#include "attn/config.hpp"

namespace attn {

/// The bfloat16 nearest to `value` (ties to even; NaN stays NaN), as PyTorch's
/// `.to(torch.bfloat16)` rounds it, as its 16 bits.
inline std::uint16_t bfloat16_bits(float value) {
  return Eigen::bfloat16(value).value;
}

/// bfloat16 bits widened to float, exactly: they are the top half of the float's bits.
inline float bfloat16_to_float(std::uint16_t bits) {
  const std::uint32_t wide = static_cast<std::uint32_t>(bits) << 16;
  float value = 0;
  std::memcpy(&value, &wide, sizeof value);
  return value;
}

/// `value` rounded to bfloat16 (through float, as PyTorch rounds a double) and widened back.
template <typename Scalar>
Scalar round_to_bfloat16(Scalar value) {
  return static_cast<Scalar>(bfloat16_to_float(bfloat16_bits(static_cast<float>(value))));
}

}  // namespace attn

#endif  // ATTN_TENSOR_BFLOAT16_HPP
