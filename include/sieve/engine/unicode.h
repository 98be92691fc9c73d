// UTF-8 and Unicode helpers used by the tokenizer (sieve/engine/tokenizer.h).
//
// Code point iteration, lossy UTF-8 repair (one U+FFFD per maximal ill-formed subpart, as Rust's
// String::from_utf8_lossy and Python's errors="replace" do), the GPT-2 byte <-> printable
// character map of byte-level BPE, canonical normalization (NFC/NFD), per-character lowercase and
// the character classes Hugging Face `tokenizers` tests (Rust char::is_whitespace,
// is_alphanumeric, is_numeric, is_punctuation). The data tables are generated from the Unicode
// Character Database by `scripts/make_tokenizer_fixtures.py tables` (src/engine/unicode_tables.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sieve::engine::unicode {

/// @brief Decodes the code point starting at byte `i` of valid UTF-8 and advances `i` past it.
char32_t next_code_point(std::string_view s, std::size_t& i);

/// @brief Appends the UTF-8 encoding of `cp` (a scalar value) to `out`.
void append_utf8(std::string& out, char32_t cp);

/// @brief True when `s` is well-formed UTF-8 (no surrogates, overlongs or values > U+10FFFF).
bool is_valid_utf8(std::string_view s);

/// @brief `bytes` with every maximal ill-formed subpart replaced by U+FFFD (W3C/Unicode practice).
std::string to_valid_utf8(std::string_view bytes);

/// @brief Rust char::is_whitespace: the White_Space property.
bool is_whitespace(char32_t c);
/// @brief Rust char::is_alphanumeric: Alphabetic or general category N*.
bool is_alphanumeric(char32_t c);
/// @brief Rust char::is_numeric: general category Nd, Nl or No.
bool is_numeric(char32_t c);
/// @brief `tokenizers`' punctuation test: ASCII punctuation or general category P*.
bool is_punctuation(char32_t c);
/// @brief Rust regex \w: Alphabetic, M*, Nd, Pc or Join_Control (single_word added tokens).
bool is_word_character(char32_t c);
/// @brief General category M* (what StripAccents removes after NFD).
bool is_mark(char32_t c);

/// @brief Canonical combining class (0 for starters).
uint8_t combining_class(char32_t c);

/// @brief Canonical decomposition (NFD) of valid UTF-8.
std::string nfd(std::string_view s);
/// @brief Canonical composition (NFC) of valid UTF-8.
std::string nfc(std::string_view s);
/// @brief Per-character full lowercase mapping (Rust char::to_lowercase, no final-sigma context).
std::string lowercase(std::string_view s);

/// @brief GPT-2 byte-level map: the UTF-8 of the printable code point standing for byte `b`.
const std::string& byte_to_unicode(uint8_t b);
/// @brief Inverse of byte_to_unicode: the byte a code point stands for, or -1.
int unicode_to_byte(char32_t c);

namespace tables {
struct CombiningRange {
  char32_t first, last;
  uint8_t ccc;
};
struct Decomposition {
  char32_t cp, first, second;  // second == 0: a singleton decomposition
};
struct Composition {
  char32_t first, second, composite;
};
struct CaseRun {
  char32_t first, last;  // code points first, first + stride, ... <= last
  int32_t stride, delta;  // each maps to cp + delta
};
extern const CombiningRange kCombiningClasses[];
extern const std::size_t kCombiningClassesSize;
extern const Decomposition kDecompositions[];
extern const std::size_t kDecompositionsSize;
extern const Composition kCompositions[];
extern const std::size_t kCompositionsSize;
extern const CaseRun kLowercase[];
extern const std::size_t kLowercaseSize;
}  // namespace tables

}  // namespace sieve::engine::unicode
