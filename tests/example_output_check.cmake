# Runs an example program and checks its standard output against an expected file: every line of
# EXPECTED must appear in the output, in order (lines of the output not in EXPECTED, such as
# timings, are allowed between them). The expected lines are PyTorch's output for the book's
# code, so this compares the example with the book's numbers to the 4 printed decimals.
#   cmake -DPROGRAM=<exe> -DEXPECTED=<file> -P example_output_check.cmake
cmake_policy(SET CMP0007 NEW)  # keep empty lines as list elements
execute_process(COMMAND "${PROGRAM}" OUTPUT_VARIABLE output RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} exited with ${status}")
endif()
file(READ "${EXPECTED}" expected)
# CMake lists split on ';' but not inside [brackets]: make both texts list-safe first.
foreach(text output expected)
  string(REPLACE ";" "<semicolon>" safe "${${text}}")
  string(REPLACE "[" "<" safe "${safe}")
  string(REPLACE "]" ">" safe "${safe}")
  string(REPLACE "\n" ";" ${text}_lines "${safe}")
endforeach()
set(position 0)
list(LENGTH output_lines count)
foreach(line IN LISTS expected_lines)
  if(line STREQUAL "")
    continue()
  endif()
  set(found FALSE)
  while(position LESS count)
    list(GET output_lines ${position} actual)
    math(EXPR position "${position} + 1")
    if(actual STREQUAL line)
      set(found TRUE)
      break()
    endif()
  endwhile()
  if(NOT found)
    message(FATAL_ERROR "expected line not found (in order) in the output of ${PROGRAM} "
                        "(brackets shown as < >):\n  ${line}\nfull output:\n${output}")
  endif()
endforeach()
message(STATUS "every expected line of ${EXPECTED} found")
