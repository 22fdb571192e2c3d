# ctest dispatch.private_levels: attn::compiled's level objects (attn_add_compiled_library) are
# what they claim. Each exports its entry point and nothing else (every inline Eigen, attn and
# standard-library function localised, so the linker cannot hand one level's code to another or
# to the program) and takes no Eigen or attn symbol from outside, the baseline object holds no VEX or EVEX instruction at all (no ymm, zmm or
# vfmadd: it runs on any x86-64), the avx2 object no zmm register, and the avx2 and avx512
# objects do hold ymm and zmm instructions (so the check can see them); the avx512_bf16 object,
# and no lower one, holds vdpbf16ps (the bfloat16 products).
#   cmake -DOBJDUMP=<objdump> -DNM=<nm> -DLEVELS_DIR=<dir of <level>.o> -DLEVELS=<a;b> -P ...
cmake_minimum_required(VERSION 3.21)
set(_failures "")
foreach(_level IN LISTS LEVELS)
  set(_object "${LEVELS_DIR}/${_level}.o")
  if(NOT EXISTS "${_object}")
    string(APPEND _failures "\n  ${_level}: ${_object} does not exist")
    continue()
  endif()
  execute_process(COMMAND "${NM}" -g --defined-only "${_object}" OUTPUT_VARIABLE _globals
                  RESULT_VARIABLE _result)
  string(REGEX REPLACE "[^\n]* ([^ \n]+)\n" "\\1;" _names "${_globals}")
  if(NOT _result EQUAL 0 OR NOT _names STREQUAL "attn_kernels_${_level};")
    string(APPEND _failures "\n  ${_level}: exports '${_names}', not only attn_kernels_${_level}")
  endif()
  # Nor may it take any Eigen or attn code from outside: all of it is its own, for its level.
  execute_process(COMMAND "${NM}" -u "${_object}" OUTPUT_VARIABLE _undefined)
  string(REGEX MATCHALL "_ZN[0-9]*(5Eigen|4attn)[A-Za-z0-9_]*" _borrowed "${_undefined}")
  if(_borrowed)
    list(GET _borrowed 0 _first)
    string(APPEND _failures "\n  ${_level}: takes ${_first} from outside the object")
  endif()
  execute_process(COMMAND "${OBJDUMP}" -d --no-show-raw-insn "${_object}"
                  OUTPUT_VARIABLE _code RESULT_VARIABLE _result)
  if(NOT _result EQUAL 0)
    string(APPEND _failures "\n  ${_level}: ${OBJDUMP} -d failed")
    continue()
  endif()
  string(REGEX MATCHALL "\t(v[a-z0-9]+) [^\n]*" _vex "${_code}")
  list(LENGTH _vex _vex_count)
  string(REGEX MATCHALL "%ymm" _ymm "${_code}")
  list(LENGTH _ymm _ymm_count)
  string(REGEX MATCHALL "%zmm" _zmm "${_code}")
  list(LENGTH _zmm _zmm_count)
  message(STATUS "${_level}: ${_vex_count} VEX/EVEX instructions, ${_ymm_count} ymm and "
                 "${_zmm_count} zmm operands")
  if(_level STREQUAL "baseline" AND _vex_count GREATER 0)
    list(GET _vex 0 _first)
    string(APPEND _failures "\n  baseline: ${_vex_count} AVX instructions, e.g. '${_first}'")
  endif()
  if(_level STREQUAL "avx2" AND (_zmm_count GREATER 0 OR _ymm_count EQUAL 0))
    string(APPEND _failures "\n  avx2: ${_zmm_count} zmm operands (must be 0), ${_ymm_count} ymm")
  endif()
  if(_level MATCHES "^avx512" AND _zmm_count EQUAL 0)
    string(APPEND _failures "\n  ${_level}: no zmm operand: not compiled for AVX-512?")
  endif()
  # bfloat16 products run on vdpbf16ps in the avx512_bf16 object only.
  string(REGEX MATCHALL "\tvdpbf16ps " _dot "${_code}")
  list(LENGTH _dot _dot_count)
  if(_level STREQUAL "avx512_bf16" AND _dot_count EQUAL 0)
    string(APPEND _failures "\n  avx512_bf16: no vdpbf16ps: the bfloat16 products are missing")
  elseif(NOT _level STREQUAL "avx512_bf16" AND NOT _level STREQUAL "native" AND _dot_count GREATER 0)
    string(APPEND _failures "\n  ${_level}: ${_dot_count} vdpbf16ps, which its CPUs may lack")
  endif()
endforeach()
if(_failures)
  message(FATAL_ERROR "attn::compiled's level objects:${_failures}")
endif()
