# attn_target_defaults(<target> [NATIVE]): the flags for attn's own tests, examples and
# benchmarks. Never applied to the exported attn::attn target: users choose their own flags.
function(attn_target_defaults target)
  cmake_parse_arguments(ARG "NATIVE" "" "" ${ARGN})
  target_link_libraries(${target} PRIVATE attn::attn)
  if(MSVC)
    target_compile_options(${target} PRIVATE /W4 /WX)
  else()
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Werror)
  endif()
  if(ARG_NATIVE AND ATTN_NATIVE AND NOT MSVC)
    target_compile_options(${target} PRIVATE -march=native)
  endif()
endfunction()
