// Whole-file reads for the inputs a user names on the command line (prompt and text files,
// tokenizer.json): one checked function, so a missing file, a folder in a file's place and a read
// error each give one clear sieve::Error.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace sieve {

/// The bytes of the file at `path`. Throws sieve::Error prefixed by `what` (for example "prompt
/// file") when the path does not exist, is a directory, cannot be opened or cannot be read to its
/// end.
std::string read_whole_file(const std::filesystem::path& path, std::string_view what);

}  // namespace sieve
