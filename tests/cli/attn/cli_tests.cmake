# `sieve attn` end-to-end tests (label cpu): a gtest executable that runs the built binary with bad
# input (one-line error, non-zero exit) and small --json runs. Included from tests/CMakeLists.txt.
if(NOT TARGET sieve)
  return()
endif()
sieve_add_gtest(test_attn_cli SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_attn_cli.cpp
                LIBS sieve::all nlohmann_json::nlohmann_json LABELS cpu)
target_compile_definitions(test_attn_cli PRIVATE SIEVE_BINARY="$<TARGET_FILE:sieve>")
add_dependencies(test_attn_cli sieve)
