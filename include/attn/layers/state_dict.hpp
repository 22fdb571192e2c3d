// attn/layers/state_dict.hpp: moved to attn/state/state_dict.hpp in 0.2; this forwarding header
// keeps old includes working for one minor version and will then be removed.
#ifndef ATTN_LAYERS_STATE_DICT_HPP
#define ATTN_LAYERS_STATE_DICT_HPP

#include "attn/state/state_dict.hpp"

#endif  // ATTN_LAYERS_STATE_DICT_HPP
