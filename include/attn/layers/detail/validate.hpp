// attn/layers/detail/validate.hpp: the argument checks shared by the layers' constructors and
// forward functions, so each message is written once. Private: users never include this directly.
#ifndef ATTN_LAYERS_DETAIL_VALIDATE_HPP
#define ATTN_LAYERS_DETAIL_VALIDATE_HPP

#include <cmath>
#include <string>
#include <type_traits>

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

/// Inside a layer class (with `Scalar` and a `forward`): overloads of forward and
/// forward_with_weights for a view of any other rank or element type, which fail to compile with
/// one static_assert naming the layer and the input it takes, instead of pages of overload
/// candidates. They drop out of overload resolution for the views the layer takes. (A macro,
/// because a static_assert's message must be a literal.)
#define ATTN_LAYER_INPUT_CHECKS(layer, rank, shape)                                  \
  template <typename T, int R, typename... Rest>                                     \
  std::enable_if_t<R != (rank) || !std::is_same_v<std::remove_const_t<T>, Scalar>,   \
                   Tensor<Scalar, (rank)>>                                           \
  forward(const TensorView<T, R>& /*x*/, Rest&&... /*rest*/) const {                 \
    static_assert(R == (rank), layer ": x must be a rank-" #rank " view " shape);    \
    static_assert(std::is_same_v<std::remove_const_t<T>, Scalar>,                    \
                  layer ": x must have the layer's element type (float or double)"); \
    return {};                                                                       \
  }                                                                                  \
  template <typename T, int R>                                                       \
  std::enable_if_t<R != (rank) || !std::is_same_v<std::remove_const_t<T>, Scalar>>   \
  forward_with_weights(const TensorView<T, R>& x) const {                            \
    forward(x);                                                                      \
  }

#endif  // ATTN_LAYERS_DETAIL_VALIDATE_HPP
