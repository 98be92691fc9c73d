# Shared checks of the command-line smoke tests (the tests' cmake -P scripts include this file).

# A failing command: non-zero exit status, nothing on stdout, and exactly one line on stderr that
# starts with "sieve: error: " and (when EXPECT is defined and not empty) contains EXPECT.
function(sieve_check_error_line rc out err expect)
  if(rc EQUAL 0)
    message(FATAL_ERROR "expected a non-zero exit, got 0; stdout:\n${out}")
  endif()
  string(STRIP "${err}" line)
  if(line MATCHES "\n")
    message(FATAL_ERROR "expected one error line, got:\n${err}")
  endif()
  if(NOT line MATCHES "^sieve: error: ")
    message(FATAL_ERROR "error line does not start with 'sieve: error: ': ${line}")
  endif()
  if(NOT expect STREQUAL "")
    string(FIND "${line}" "${expect}" pos)
    if(pos EQUAL -1)
      message(FATAL_ERROR "error line lacks '${expect}': ${line}")
    endif()
  endif()
  if(NOT out STREQUAL "")
    message(FATAL_ERROR "a failing command printed to stdout:\n${out}")
  endif()
endfunction()

# Runs `${SIEVE} <command> ${ARGS}` (ARGS separated by '|') into rc, out and err. MODE error: checks
# the one error line (EXPECT) and ends the script; any other mode: fails on a non-zero exit.
macro(sieve_run_cli command)
  string(REPLACE "|" ";" _sieve_args "${ARGS}")
  execute_process(COMMAND ${SIEVE} ${command} ${_sieve_args} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(MODE STREQUAL "error")
    sieve_check_error_line("${rc}" "${out}" "${err}" "${EXPECT}")
    return()
  endif()
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "exit code ${rc}; stderr:\n${err}")
  endif()
endmacro()
