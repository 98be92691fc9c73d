// read_whole_file: the bytes of a file, or one sieve::Error naming what was asked for and why.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "sieve/core/error.h"
#include "sieve/core/text_file.h"

using namespace sieve;
namespace fs = std::filesystem;

namespace {

std::string error_of(const fs::path& p) {
  try {
    (void)read_whole_file(p, "--file");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(TextFile, ReadsEveryByte) {
  const fs::path dir = fs::temp_directory_path() / "sieve_text_file_test";
  fs::create_directories(dir);
  const std::string bytes = std::string("line 1\nline 2\r\n") + '\0' + "\xff tail";
  std::ofstream(dir / "a.bin", std::ios::binary) << bytes;
  EXPECT_EQ(read_whole_file(dir / "a.bin", "--file"), bytes);
  std::ofstream(dir / "empty.txt").close();
  EXPECT_EQ(read_whole_file(dir / "empty.txt", "--file"), "");
  fs::remove_all(dir);
}

TEST(TextFile, MissingFolderAndUnreadableAreErrors) {
  const fs::path dir = fs::temp_directory_path() / "sieve_text_file_errors";
  fs::create_directories(dir);
  const std::string missing = error_of(dir / "nope.txt");
  EXPECT_NE(missing.find("--file: '"), std::string::npos) << missing;
  EXPECT_NE(missing.find("nope.txt' does not exist"), std::string::npos) << missing;
  const std::string folder = error_of(dir);
  EXPECT_NE(folder.find("is a folder, not a file"), std::string::npos) << folder;
  const fs::path locked = dir / "locked.txt";
  std::ofstream(locked) << "x";
  fs::permissions(locked, fs::perms::none);
  if (!std::ifstream(locked).good()) {  // root reads it anyway; only then is there no error
    const std::string unreadable = error_of(locked);
    EXPECT_NE(unreadable.find("cannot open"), std::string::npos) << unreadable;
  }
  fs::permissions(locked, fs::perms::owner_all);
  fs::remove_all(dir);
}
