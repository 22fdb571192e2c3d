// attn/layers/detail/validate.hpp: the layers' compile-time input checks (ATTN_LAYER_INPUT_CHECKS)
// and, through attn/checks.hpp, the argument checks every floor shares. Private: users never
// include this directly.
#ifndef ATTN_LAYERS_DETAIL_VALIDATE_HPP
#define ATTN_LAYERS_DETAIL_VALIDATE_HPP

#include <cmath>
#include <string>
#include <type_traits>

#include "attn/checks.hpp"
#include "attn/config.hpp"
#include "attn/tensor/shape.hpp"

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
