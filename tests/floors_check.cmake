# ctest architecture.floors: the tree shows the architecture in floors, and a header includes
# only headers of its own floor or below.
#   floor 0  attn/config.hpp, version.hpp, threads.hpp, isa.hpp, autocast.hpp, checks.hpp,
#            tensor/, random/, state/
#   floor 1  kernels/ (and kernels/detail/)
#   floor 2  layers/ (and layers/detail/)
#   floor 3  models/, optim/, losses/, data/, and the components io/ (nlohmann), viz/ (stb)
#            and text/ (PCRE2 and nlohmann: the GPT-2 tokenizer)
#   attn/attn.hpp, the umbrella of the core, may include floors 0-3 but never io/ or viz/.
# A component is a leaf: only io/ includes io/, only viz/ includes viz/, so the core never needs
# nlohmann or stb. A header, or an include, in no floor fails too (a new folder must be placed),
# and attn/detail/ must not exist (each floor keeps its own detail/), and a floor's detail/ is
# its own: no header of another floor includes it (what two floors share is a header of the
# lower one, e.g. attn/checks.hpp, kernels/gemm.hpp).
# attn/layers/state_dict.hpp may stay as a deprecated forwarding header to
# attn/state/state_dict.hpp: a downward include, allowed by the rule itself.
#   cmake -DATTN_INCLUDE_DIR=<include> -P floors_check.cmake
cmake_minimum_required(VERSION 3.21)

# _attn_floor(<path relative to include/> <out floor> <out component>): floor 0-3, "umbrella",
# or "" for a path in no floor; component io, viz, text or "".
function(_attn_floor path out_floor out_component)
  set(floor "")
  set(component "")
  if(path STREQUAL "attn/attn.hpp")
    set(floor umbrella)
  elseif(path MATCHES "^attn/(config|version|threads|isa|autocast|checks)\\.hpp$"
         OR path MATCHES "^attn/(tensor|random|state)/")
    set(floor 0)
  elseif(path MATCHES "^attn/kernels/")
    set(floor 1)
  elseif(path MATCHES "^attn/layers/")
    set(floor 2)
  elseif(path MATCHES "^attn/(models|optim|losses|data)/")
    set(floor 3)
  elseif(path MATCHES "^attn/(io|viz|text)/")
    set(floor 3)
    set(component "${CMAKE_MATCH_1}")
  endif()
  set(${out_floor} "${floor}" PARENT_SCOPE)
  set(${out_component} "${component}" PARENT_SCOPE)
endfunction()

if(NOT IS_DIRECTORY "${ATTN_INCLUDE_DIR}/attn")
  message(FATAL_ERROR "no attn/ under ATTN_INCLUDE_DIR='${ATTN_INCLUDE_DIR}'")
endif()
file(GLOB_RECURSE _headers RELATIVE "${ATTN_INCLUDE_DIR}" "${ATTN_INCLUDE_DIR}/attn/*")
list(SORT _headers)
set(_failures "")
foreach(_header IN LISTS _headers)
  _attn_floor("${_header}" _floor _component)
  if(_header MATCHES "^attn/detail/")
    string(APPEND _failures "\n  ${_header}: attn/detail/ must not exist; a private helper "
                            "lives in the detail/ of its floor (kernels/detail/, layers/detail/)")
    continue()
  elseif(_floor STREQUAL "")
    string(APPEND _failures "\n  ${_header}: in no floor (place its folder in floors_check.cmake)")
    continue()
  endif()

  # One list element per line, so line numbers stay right ([ ] and ; would split or join them).
  file(READ "${ATTN_INCLUDE_DIR}/${_header}" _text)
  string(REPLACE ";" "<semicolon>" _text "${_text}")
  string(REPLACE "[" "<" _text "${_text}")
  string(REPLACE "]" ">" _text "${_text}")
  string(REPLACE "\n" ";" _lines "${_text}")
  set(_number 0)
  foreach(_line IN LISTS _lines)
    math(EXPR _number "${_number} + 1")
    if(NOT _line MATCHES "^[ \t]*#[ \t]*include[ \t]*[<\"](attn/[^>\"]*)[>\"]")
      continue()
    endif()
    set(_included "${CMAKE_MATCH_1}")
    _attn_floor("${_included}" _included_floor _included_component)
    set(_where "\n  ${_header}:${_number}: includes ${_included}")
    if(_included STREQUAL "attn/attn.hpp")
      string(APPEND _failures "${_where}: the umbrella is for users, never included by attn")
    elseif(_included_floor STREQUAL "")
      string(APPEND _failures "${_where}, which is in no floor")
    elseif(_included_component AND NOT _included_component STREQUAL _component)
      string(APPEND _failures "${_where}: a component is a leaf, only ${_included_component}/ "
                              "includes ${_included_component}/ (the core needs Eigen only)")
    elseif(_floor STREQUAL "umbrella")
      # The umbrella may include every floor of the core (0-3); components were refused above.
    elseif(_included_floor GREATER _floor)
      string(APPEND _failures "${_where}: floor ${_floor} includes floor ${_included_floor}")
    elseif(_included MATCHES "/detail/" AND NOT _included_floor STREQUAL _floor)
      string(APPEND _failures "${_where}: another floor's detail/ (floor ${_included_floor}); "
                              "what floors share goes in a header of the lower floor")
    endif()
  endforeach()
endforeach()

list(LENGTH _headers _count)
if(_failures)
  message(FATAL_ERROR "A header includes only its own floor or below:${_failures}")
endif()
message(STATUS "${_count} headers under attn/, every include on its own floor or below")
