#include "sieve/core/text_file.h"

#include "sieve/core/error.h"

#include <fstream>
#include <sstream>
#include <system_error>

namespace sieve {

std::string read_whole_file(const std::filesystem::path& path, std::string_view what) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  SIEVE_CHECK(std::filesystem::exists(status), "{}: '{}' does not exist", what, path.string());
  SIEVE_CHECK(!std::filesystem::is_directory(status), "{}: '{}' is a folder, not a file", what,
              path.string());
  std::ifstream in(path, std::ios::binary);
  SIEVE_CHECK(in.good(), "{}: cannot open '{}'", what, path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  // rdbuf() of an empty file sets failbit on ss without reading anything: only a bad stream on
  // either side is a read error
  SIEVE_CHECK(!in.bad() && !ss.bad(), "{}: cannot read '{}'", what, path.string());
  return ss.str();
}

}  // namespace sieve
