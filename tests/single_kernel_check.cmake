# ctest: every rung of the ladder goes through the one shared kernel. No layer header may hold
# softmax, masking or exponentials of its own (comments aside), and each rung must reach
# scaled_dot_product_attention, directly or through CausalCore / CausalAttention.
# Run as: cmake -DATTN_INCLUDE_DIR=<include> -P single_kernel_check.cmake
set(_forbidden "softmax|exp\\(|infinity|maxCoeff|masked_fill|Mask::apply|\\.apply\\(")
set(_failures "")
file(GLOB _layers "${ATTN_INCLUDE_DIR}/attn/layers/*.hpp"
                  "${ATTN_INCLUDE_DIR}/attn/layers/detail/*.hpp")
foreach(_header IN LISTS _layers)
  file(STRINGS "${_header}" _lines)
  foreach(_line IN LISTS _lines)
    if(NOT _line MATCHES "^ *//" AND _line MATCHES "${_forbidden}")
      string(APPEND _failures "\n  ${_header}: ${_line}")
    endif()
  endforeach()
endforeach()

set(_routes
  "simplified_self_attention.hpp=scaled_dot_product_attention\\("
  "self_attention_v1.hpp=scaled_dot_product_attention\\("
  "self_attention_v2.hpp=scaled_dot_product_attention\\("
  "causal_attention.hpp=core_\\.attend\\("
  "multi_head_attention.hpp=impl_\\.forward\\("
  "multi_head_attention_combined_qkv.hpp=impl_\\.forward\\("
  "multi_head_attention_wrapper.hpp=\\.forward_into\\(")
foreach(_route IN LISTS _routes)
  string(REPLACE "=" ";" _pair "${_route}")
  list(GET _pair 0 _file)
  list(GET _pair 1 _pattern)
  file(READ "${ATTN_INCLUDE_DIR}/attn/layers/${_file}" _text)
  if(NOT _text MATCHES "${_pattern}")
    string(APPEND _failures "\n  layers/${_file} does not reach the shared kernel")
  endif()
endforeach()
set(_engines
  "causal_core.hpp=scaled_dot_product_attention\\(=does not call the shared kernel"
  "stacked_qkv_attention.hpp=core_\\.attend\\(=does not reach the shared kernel")
foreach(_engine IN LISTS _engines)
  string(REPLACE "=" ";" _triple "${_engine}")
  list(GET _triple 0 _file)
  list(GET _triple 1 _pattern)
  list(GET _triple 2 _complaint)
  set(_path "${ATTN_INCLUDE_DIR}/attn/layers/detail/${_file}")
  if(NOT EXISTS "${_path}")
    string(APPEND _failures "\n  layers/detail/${_file} is missing")
    continue()
  endif()
  file(READ "${_path}" _text)
  if(NOT _text MATCHES "${_pattern}")
    string(APPEND _failures "\n  layers/detail/${_file} ${_complaint}")
  endif()
endforeach()

if(_failures)
  message(FATAL_ERROR "The ladder must use the one shared kernel:${_failures}")
endif()
message(STATUS "every rung goes through scaled_dot_product_attention")
