# ctest: every rung of the ladder goes through the one shared kernel. No layer header may hold
# softmax, masking or exponentials of its own (comments aside), and each rung must reach
# scaled_dot_product_attention, directly or through the shared engines in layers/detail/.
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

# Each rung and each shared engine, with the call that takes it one step towards the kernel:
# the rungs derive from or call an engine, the engines call scaled_dot_product_attention.
set(_kernel "scaled_dot_product_attention(<[^>]*>)?\\(")
set(_routes
  "simplified_self_attention.hpp=${_kernel}"
  "self_attention_v1.hpp=public detail::SelfAttention<"
  "self_attention_v2.hpp=public detail::SelfAttention<"
  "causal_attention.hpp=projections_\\.forward_into\\(static_cast<const Core&>"
  "multi_head_attention.hpp=public detail::MultiHeadEngine<"
  "multi_head_attention_combined_qkv.hpp=public detail::MultiHeadEngine<"
  "multi_head_attention_wrapper.hpp=\\.forward_into\\("
  "detail/self_attention.hpp=forward_into\\(UnmaskedAttention<"
  "detail/separate_projections.hpp=${_kernel}"
  "detail/causal_core.hpp=${_kernel}"
  "detail/multi_head_engine.hpp=this->attend\\(")
foreach(_route IN LISTS _routes)
  string(FIND "${_route}" "=" _at)
  string(SUBSTRING "${_route}" 0 ${_at} _file)
  math(EXPR _at "${_at} + 1")
  string(SUBSTRING "${_route}" ${_at} -1 _pattern)
  set(_path "${ATTN_INCLUDE_DIR}/attn/layers/${_file}")
  if(NOT EXISTS "${_path}")
    string(APPEND _failures "\n  layers/${_file} is missing")
    continue()
  endif()
  file(READ "${_path}" _text)
  if(NOT _text MATCHES "${_pattern}")
    string(APPEND _failures "\n  layers/${_file} does not reach the shared kernel")
  endif()
endforeach()

if(_failures)
  message(FATAL_ERROR "The ladder must use the one shared kernel:${_failures}")
endif()
message(STATUS "every rung goes through scaled_dot_product_attention")
