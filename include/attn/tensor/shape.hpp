// attn/tensor/shape.hpp: Shape<Rank>, the extents (or strides) of a tensor, and the arithmetic
// every view needs: element counts, row-major strides, and printing for error messages.
#ifndef ATTN_TENSOR_SHAPE_HPP
#define ATTN_TENSOR_SHAPE_HPP

#include <array>
#include <ostream>
#include <string>

#include "attn/config.hpp"

namespace attn {

/// Extents of a tensor, outermost first, as PyTorch prints them: (batch, tokens, d_in).
/// The same type holds strides, counted in elements.
template <int Rank>
using Shape = std::array<Index, Rank>;

/// Number of elements a shape holds (1 for rank 0 would be meaningless here; Rank >= 1).
template <std::size_t Rank>
constexpr Index numel(const std::array<Index, Rank>& shape) {
  Index count = 1;
  for (Index extent : shape) count *= extent;
  return count;
}

/// Row-major (C order) strides for a shape: the last dimension is contiguous.
template <std::size_t Rank>
constexpr std::array<Index, Rank> contiguous_strides(const std::array<Index, Rank>& shape) {
  std::array<Index, Rank> strides{};
  Index step = 1;
  for (std::size_t d = Rank; d-- > 0;) {
    strides[d] = step;
    step *= shape[d];
  }
  return strides;
}

/// "(2, 3, 4)": the format used in every error message.
template <std::size_t Rank>
std::string to_string(const std::array<Index, Rank>& shape) {
  std::string text = "(";
  for (std::size_t d = 0; d < Rank; ++d) {
    if (d > 0) text += ", ";
    text += std::to_string(shape[d]);
  }
  return text + ")";
}

namespace detail {

/// data + offset, except for a view with no elements, which keeps its base pointer: an empty
/// tensor may own no storage (a null pointer), and offsetting a null pointer is undefined.
template <typename T, std::size_t N>
T* element_pointer(T* data, Index offset, const std::array<Index, N>& shape) {
  for (Index extent : shape) {
    if (extent == 0) return data;
  }
  return data + offset;
}

}  // namespace detail

namespace detail {

template <std::size_t Rank>
void check_extents(const std::array<Index, Rank>& shape, const char* who) {
  for (Index extent : shape) {
    if (extent < 0) {
      throw ShapeError(concat(who, ": shape ", to_string(shape), " has a negative extent"));
    }
  }
}

/// Turns a possibly negative dimension (-1 = last, as in PyTorch) into 0..Rank-1, or throws.
inline int normalize_dim(int dim, int rank, const char* who) {
  const int normalized = dim < 0 ? dim + rank : dim;
  if (normalized < 0 || normalized >= rank) {
    throw IndexError(concat(who, ": dim ", dim, " is out of range for a tensor of rank ", rank));
  }
  return normalized;
}

}  // namespace detail
}  // namespace attn

#endif  // ATTN_TENSOR_SHAPE_HPP
