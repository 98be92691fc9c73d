#include "sieve/core/error.h"

#include <cstdio>
#include <cstdlib>

namespace sieve::detail {

void throw_error(const char* /*file*/, int /*line*/, const std::string& message) {
  // The message is for users: it names the problem, not the source location.
  throw Error(message);
}

void assert_fail(const char* file, int line, const char* expr) {
  std::fprintf(stderr, "sieve: internal assertion failed: %s (%s:%d)\n", expr, file, line);
  std::abort();
}

}  // namespace sieve::detail
