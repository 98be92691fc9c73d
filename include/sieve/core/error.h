// sieve::Error and the SIEVE_CHECK family.
//
// Library code throws sieve::Error (a std::runtime_error) at API boundaries with a message that
// names the problem; tools catch it once, print one line and exit non-zero. SIEVE_ASSERT is for
// internal invariants only.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace sieve {

/// @brief The one exception type the library throws for bad input, corrupt files and misuse.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
[[noreturn]] void throw_error(const char* file, int line, const std::string& message);
[[noreturn]] void assert_fail(const char* file, int line, const char* expr);
}  // namespace detail

}  // namespace sieve

/// Throws sieve::Error with a fmt-formatted message when `cond` is false.
/// Example: SIEVE_CHECK(d == 64 || d == 128, "head_dim must be 64 or 128, got {}", d);
#define SIEVE_CHECK(cond, ...)                                                 \
  do {                                                                         \
    if (!(cond)) [[unlikely]] {                                                \
      ::sieve::detail::throw_error(__FILE__, __LINE__, ::fmt::format(__VA_ARGS__)); \
    }                                                                          \
  } while (0)

/// Throws sieve::Error unconditionally.
#define SIEVE_FAIL(...) ::sieve::detail::throw_error(__FILE__, __LINE__, ::fmt::format(__VA_ARGS__))

/// Internal invariant; aborts with a message. Not for validating user input.
#define SIEVE_ASSERT(cond)                                                  \
  do {                                                                      \
    if (!(cond)) [[unlikely]] ::sieve::detail::assert_fail(__FILE__, __LINE__, #cond); \
  } while (0)
