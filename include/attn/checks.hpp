// attn/checks.hpp: the argument checks that layers and models share (a size must be positive,
// a rate a probability, a shape the expected one...), so each message is written once. Floor 0:
// every floor above may use them. Private helpers (attn::detail); users never call them.
#ifndef ATTN_CHECKS_HPP
#define ATTN_CHECKS_HPP

#include <array>
#include <cmath>
#include <stdexcept>
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

/// @throws std::invalid_argument "<who>: <name> (<value>) must be divisible by <by_name> (<by>)",
///         for a positive `by` (check it with require_positive first).
inline void require_divisible(const char* who, const char* name, Index value, const char* by_name,
                              Index by) {
  if (value % by != 0) {
    throw std::invalid_argument(
        concat(who, ": ", name, " (", value, ") must be divisible by ", by_name, " (", by, ")"));
  }
}

/// @throws std::invalid_argument "<who>: <name> (<p>) must be a probability in [0, 1)" (NaN too).
inline void require_drop_probability(const char* who, const char* name, double p) {
  if (!(p >= 0 && p < 1)) {
    throw std::invalid_argument(
        concat(who, ": ", name, " (", p, ") must be a probability in [0, 1)"));
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

/// @throws std::invalid_argument "<who>::backward: the cache is empty..." unless `filled`:
///         backward replays what `forward` (e.g. "forward(x, cache)") kept in the training
///         cache, so it needs one that forward filled.
inline void require_filled_cache(const char* who, const char* forward, bool filled) {
  if (!filled) {
    throw std::invalid_argument(concat(who, "::backward: the cache is empty; call ", forward,
                                       " with it first (backward replays what that forward kept; "
                                       "a KVCache is for inference and has no backward)"));
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

#endif  // ATTN_CHECKS_HPP
