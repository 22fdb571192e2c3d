# Configures tests/packaging/consumer afresh (no build) and checks the outcome: for the tests
# that are about find_package(attn) itself, a build would add time and prove nothing more.
#   cmake -DSOURCE_DIR=<consumer> -DBINARY_DIR=<dir> -DGENERATOR=<gen> -DCXX=<compiler>
#         [-DOPTIONS=<-Dx=y|-Dz=w...>]  ('|'-separated cache options)
#         [-DEXPECT_FAILURE_REGEX=<regex>]  (configure must fail, its output must match)
#         -P configure_consumer.cmake
cmake_minimum_required(VERSION 3.21)
file(REMOVE_RECURSE "${BINARY_DIR}")
string(REPLACE "|" ";" _options "${OPTIONS}")
execute_process(
  COMMAND "${CMAKE_COMMAND}" -S "${SOURCE_DIR}" -B "${BINARY_DIR}" -G "${GENERATOR}"
          "-DCMAKE_CXX_COMPILER=${CXX}" ${_options}
  RESULT_VARIABLE _status OUTPUT_VARIABLE _output ERROR_VARIABLE _output)
message("${_output}")
if(DEFINED EXPECT_FAILURE_REGEX)
  if(_status EQUAL 0)
    message(FATAL_ERROR "configuring the consumer should have failed, but succeeded")
  endif()
  if(NOT _output MATCHES "${EXPECT_FAILURE_REGEX}")
    message(FATAL_ERROR "configuring the consumer failed, but not with '${EXPECT_FAILURE_REGEX}'")
  endif()
  message(STATUS "configuring the consumer failed as it should ('${EXPECT_FAILURE_REGEX}')")
elseif(NOT _status EQUAL 0)
  message(FATAL_ERROR "configuring the consumer failed")
endif()
