// attn/attn.hpp: the umbrella header. Include this to get every public part of attn.
#ifndef ATTN_ATTN_HPP
#define ATTN_ATTN_HPP

#include "attn/config.hpp"
#include "attn/tensor/eigen_interop.hpp"
#include "attn/tensor/shape.hpp"
#include "attn/tensor/tensor.hpp"
#include "attn/tensor/tensor_view.hpp"
#include "attn/tensor/view_ops.hpp"
#include "attn/version.hpp"

#endif  // ATTN_ATTN_HPP
