# Runs one `sieve generate` (or -DCOMMAND=perplexity) command line and checks its outcome (cmake -P
# script, no Python needed).
#   -DSIEVE=<path to sieve> -DMODE=ids|error -DARGS=<arguments separated by '|'>
#   [-DEXPECT=<substring of the error line (error) or of stderr (ids)>]
#   [-DNTOKENS=<ids: the number of generated token ids stdout must hold>]
cmake_minimum_required(VERSION 3.25)
include(${CMAKE_CURRENT_LIST_DIR}/../common.cmake)
if(NOT DEFINED COMMAND)
  set(COMMAND generate)
endif()
sieve_run_cli(${COMMAND})
# ids: without a tokenizer the generated ids are printed space-separated on stdout
string(STRIP "${out}" ids)
string(REPLACE " " ";" ids "${ids}")
list(LENGTH ids n)
if(DEFINED NTOKENS AND NOT n EQUAL NTOKENS)
  message(FATAL_ERROR "expected ${NTOKENS} token ids on stdout, got ${n}: ${out}")
endif()
foreach(id IN LISTS ids)
  if(NOT id MATCHES "^[0-9]+$")
    message(FATAL_ERROR "stdout holds '${id}', not a token id: ${out}")
  endif()
endforeach()
if(DEFINED EXPECT AND NOT EXPECT STREQUAL "")
  string(FIND "${err}" "${EXPECT}" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "stderr lacks '${EXPECT}':\n${err}")
  endif()
endif()
