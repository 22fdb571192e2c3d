// attn/layers/detail/validate.hpp: the argument checks shared by the layers' constructors and
// forward functions, so each message is written once. Private: users never include this directly.
#ifndef ATTN_LAYERS_DETAIL_VALIDATE_HPP
#define ATTN_LAYERS_DETAIL_VALIDATE_HPP

#include <cmath>
#include <string>

#include "attn/config.hpp"
#include "attn/tensor/shape.hpp"

namespace attn::detail {

/// @throws std::invalid_argument "<who>: <name> (<value>) must be positive".
inline void require_positive(const char* who, const char* name, Index value) {
  if (value <= 0) {
    throw std::invalid_argument(concat(who, ": ", name, " (", value, ") must be positive"));
  }
}

/// @throws ShapeError unless the input's last extent is `expected` (e.g. d_in).
template <std::size_t Rank>
void require_features(const char* who, const std::array<Index, Rank>& input_shape, Index expected,
                      const char* name) {
  if (input_shape[Rank - 1] != expected) {
    throw ShapeError(concat(who, ": input has shape ", to_string(input_shape),
                            " but its last dim must be ", name, " (", expected, ")"));
  }
}

/// @throws ShapeError "<who>: <name> has shape (...) but must be (...)" unless they agree.
template <std::size_t Rank>
void require_shape(const char* who, const char* name, const std::array<Index, Rank>& shape,
                   const std::array<Index, Rank>& expected) {
  if (shape != expected) {
    throw ShapeError(concat(who, ": ", name, " has shape ", to_string(shape), " but must be ",
                            to_string(expected)));
  }
}

/// @throws ShapeError if the input has more tokens than the layer's context_length.
inline void require_context(const char* who, Index tokens, Index context_length) {
  if (tokens > context_length) {
    throw ShapeError(
        concat(who, ": input has ", tokens, " tokens but context_length is ", context_length));
  }
}

}  // namespace attn::detail

#endif  // ATTN_LAYERS_DETAIL_VALIDATE_HPP
