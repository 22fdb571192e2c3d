# Flags for attn's own targets (tests, examples, benchmarks, fuzzers, attn::compiled's sources).
# Never applied to the interface of an exported target: users choose their own flags.

# attn_warnings(<target>): -Wall -Wextra -Wpedantic -Wshadow, always; -Werror only with
# ATTN_WARNINGS_AS_ERRORS (ON in every preset, OFF for a plain build, so a new compiler's false
# positive cannot stop a user's build).
function(attn_warnings target)
  if(MSVC)
    target_compile_options(${target} PRIVATE /W4)
    if(ATTN_WARNINGS_AS_ERRORS)
      target_compile_options(${target} PRIVATE /WX)
    endif()
  else()
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow)
    if(ATTN_WARNINGS_AS_ERRORS)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
endfunction()

# attn_target_defaults(<target> [NATIVE] [LIBS <attn targets>...]): links the attn targets given
# (default attn::attn) and OpenMP when ATTN_OPENMP found it, and sets our warnings; NATIVE adds
# -march=native when ATTN_NATIVE (examples and benchmarks only) and links attn_compiled_native,
# the hot kernels compiled once with the same flag. A NATIVE target built without -march=native
# links the dispatched attn::compiled when there is one, as a distribution's build would. Either
# way it compiles no hot kernel itself, which keeps builds short.
function(attn_target_defaults target)
  cmake_parse_arguments(ARG "NATIVE" "" "LIBS" ${ARGN})
  if(NOT ARG_LIBS)
    set(ARG_LIBS attn::attn)
  endif()
  target_link_libraries(${target} PRIVATE ${ARG_LIBS})
  if(ATTN_WITH_OPENMP)
    target_link_libraries(${target} PRIVATE OpenMP::OpenMP_CXX)
  endif()
  attn_warnings(${target})
  if(ARG_NATIVE AND NOT ATTN_NATIVE AND TARGET attn::compiled)
    target_link_libraries(${target} PRIVATE attn::compiled)
  endif()
  if(ARG_NATIVE AND ATTN_NATIVE)
    attn_native(${target})
    target_link_libraries(${target} PRIVATE attn_compiled_native)
  endif()
endfunction()

# attn_native(<target>): compile for this machine's CPU (-march=native).
function(attn_native target)
  if(MSVC)
    return()
  endif()
  target_compile_options(${target} PRIVATE -march=native)
  attn_gcc12_avx512_workaround(${target})
endfunction()

# attn_gcc12_avx512_workaround(<target>): GCC 12's own avx512fintrin.h trips
# -W(maybe-)uninitialized inside Eigen's AVX-512 kernels (GCC bug 105593, fixed in GCC 13): a
# false positive in a system header, silenced for targets that may compile AVX-512 code.
function(attn_gcc12_avx512_workaround target)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized -Wno-uninitialized)
  endif()
endfunction()
