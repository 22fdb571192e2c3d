# The README's lean install, from the source tree: configure without tests, examples and
# benchmarks, (build,) install. Installing a configured but unbuilt attn::compiled must stop
# before copying anything and say to build first; the header-only lean install (no build step)
# must install a package find_package finds (packaging.lean_install_consumer uses it).
#   cmake -DSOURCE_DIR=<attn> -DBINARY_DIR=<dir> -DGENERATOR=<gen> -DCXX=<compiler>
#         -P lean_install.cmake
cmake_minimum_required(VERSION 3.21)
file(REMOVE_RECURSE "${BINARY_DIR}")
set(_lean -DCMAKE_BUILD_TYPE=Release -DATTN_BUILD_TESTS=OFF -DATTN_BUILD_EXAMPLES=OFF
          -DATTN_BUILD_BENCHMARKS=OFF "-DCMAKE_CXX_COMPILER=${CXX}")

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _status OUTPUT_VARIABLE _output
                  ERROR_VARIABLE _output)
  set(_status "${_status}" PARENT_SCOPE)
  set(_output "${_output}" PARENT_SCOPE)
  message("-- ${what}: status ${_status}\n${_output}")
endfunction()

# 1. With attn::compiled, configured and installed without building: a clear stop.
run("configure with attn::compiled" "${CMAKE_COMMAND}" -S "${SOURCE_DIR}"
    -B "${BINARY_DIR}/compiled" -G "${GENERATOR}" ${_lean} -DATTN_COMPILED=ON)
if(NOT _status EQUAL 0)
  message(FATAL_ERROR "configuring the lean build failed")
endif()
run("install before building" "${CMAKE_COMMAND}" --install "${BINARY_DIR}/compiled"
    --prefix "${BINARY_DIR}/compiled-prefix")
if(_status EQUAL 0 OR NOT _output MATCHES "has not been built yet; build first")
  message(FATAL_ERROR "installing an unbuilt attn::compiled must fail saying to build first")
endif()
if(EXISTS "${BINARY_DIR}/compiled-prefix/include/attn")
  message(FATAL_ERROR "the failed install must not have copied the headers")
endif()

# 2. Header-only: configure, install, nothing to build.
run("configure header-only" "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${BINARY_DIR}/headers"
    -G "${GENERATOR}" ${_lean} -DATTN_COMPILED=OFF)
run("install header-only" "${CMAKE_COMMAND}" --install "${BINARY_DIR}/headers"
    --prefix "${BINARY_DIR}/prefix")
if(NOT _status EQUAL 0 OR NOT EXISTS "${BINARY_DIR}/prefix/include/attn/attn.hpp")
  message(FATAL_ERROR "the header-only lean install failed")
endif()
