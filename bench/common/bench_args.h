// Command-line numbers of the benchmark programs (bench/cpu, bench/gpu): the whole text must parse,
// otherwise sieve::Error names the flag and the text, so a typo ends the program with one line
// instead of an uncaught std::invalid_argument from std::stoll.
#pragma once

#include "sieve/core/error.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

namespace sieve::bench {

inline int64_t arg_int(std::string_view flag, std::string_view text) {
  int64_t v = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  SIEVE_CHECK(!text.empty() && ec == std::errc() && ptr == end, "{} needs an integer, got '{}'",
              flag, text);
  return v;
}

inline double arg_double(std::string_view flag, std::string_view text) {
  const std::string s(text);
  char* end = nullptr;
  const double v = s.empty() ? 0.0 : std::strtod(s.c_str(), &end);
  SIEVE_CHECK(!s.empty() && end == s.c_str() + s.size() && std::isfinite(v),
              "{} needs a finite number, got '{}'", flag, text);
  return v;
}

/// Comma-separated items; empty items are skipped, so "" is the empty list.
template <class T, class Parse>
std::vector<T> arg_list(std::string_view flag, std::string_view text, Parse parse) {
  std::vector<T> out;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    if (!item.empty()) out.push_back(parse(flag, item));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
  }
  return out;
}
inline std::vector<int64_t> arg_int_list(std::string_view flag, std::string_view text) {
  return arg_list<int64_t>(flag, text, arg_int);
}
inline std::vector<double> arg_double_list(std::string_view flag, std::string_view text) {
  return arg_list<double>(flag, text, arg_double);
}
inline std::vector<std::string> arg_string_list(std::string_view text) {
  return arg_list<std::string>({}, text,
                               [](std::string_view, std::string_view s) { return std::string(s); });
}

/// parse_options' result for --help / -h: the usage was printed, the program ends with status 0.
inline constexpr int kHelpShown = -1;

/// Calls handler(flag, value) for each "--flag value" pair of argv (the handler throws on a flag
/// it does not know or a value it cannot use). Returns 0; kHelpShown after printing `usage` on
/// stdout for --help or -h; or, when a flag lacks its value or the handler throws, prints
/// "<program>: <error>" as one line on stderr and returns 2. Callers end with
/// `if (rc != 0) return rc == kHelpShown ? 0 : rc;`.
template <class Handler>
int parse_options(const char* program, const char* usage, int argc, char** argv,
                  Handler&& handler) {
  try {
    for (int i = 1; i < argc; i += 2) {
      const std::string flag = argv[i];
      if (flag == "--help" || flag == "-h") {
        std::fputs(usage, stdout);
        return kHelpShown;
      }
      SIEVE_CHECK(i + 1 < argc, "{} needs a value", flag);
      handler(flag, std::string(argv[i + 1]));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 2;
  }
  return 0;
}

}  // namespace sieve::bench
