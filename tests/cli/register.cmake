# Registers the command-line smoke tests (included by tests/CMakeLists.txt before every
# tests/cli/<area>/cli_tests.cmake).
#
# sieve_cli_test(<test name> <check script> <mode> [TIMEOUT s]
#                [EXPECT|NPARAMS|OUT|CV|NTOKENS|COMMAND value]
#                ARGS <sieve arguments>...): runs `cmake -DSIEVE=<sieve> -DMODE=<mode> -D<KEY>=<value>
# -DARGS=<arguments joined by '|'> -P <check script>` with label cpu.
function(sieve_cli_test name script mode)
  cmake_parse_arguments(T "" "TIMEOUT;EXPECT;NPARAMS;OUT;CV;NTOKENS;COMMAND" "ARGS" ${ARGN})
  set(defs -DSIEVE=$<TARGET_FILE:sieve> -DMODE=${mode})
  foreach(key EXPECT NPARAMS OUT CV NTOKENS COMMAND)
    if(DEFINED T_${key})
      list(APPEND defs "-D${key}=${T_${key}}")
    endif()
  endforeach()
  string(REPLACE ";" "|" args "${T_ARGS}")  # a list cannot cross add_test intact
  add_test(NAME ${name} COMMAND ${CMAKE_COMMAND} ${defs} "-DARGS=${args}" -P ${script})
  if(NOT DEFINED T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS cpu TIMEOUT ${T_TIMEOUT})
endfunction()
