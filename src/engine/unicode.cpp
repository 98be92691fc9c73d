// UTF-8 handling, character classes, NFC/NFD and lowercase for the tokenizer.
#include "sieve/engine/unicode.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <memory>
#include <utility>

#include "sieve/core/error.h"

namespace sieve::engine::unicode {

namespace {

constexpr char32_t kReplacement = 0xFFFD;

// Length of a well-formed sequence starting at s[i], or 0 when s[i..] starts an ill-formed one;
// `bad` receives the length of the maximal ill-formed subpart in that case (Unicode §3.9, D93b).
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::size_t& bad) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  bad = 1;
  if (b0 < 0x80) return 1;
  std::size_t need = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;  // <= U+10FFFF
  } else {
    return 0;  // C0, C1, F5..FF or a stray continuation byte
  }
  for (std::size_t k = 1; k < need; ++k) {
    if (i + k >= s.size()) return 0;
    const auto b = static_cast<unsigned char>(s[i + k]);
    const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) return 0;
    bad = k + 1;
  }
  return need;
}

// Character-class tests through PCRE2's Unicode property tables (the same tables the split
// regexes use). Each pattern matches exactly one character.
class PropertyClass {
 public:
  explicit PropertyClass(const char* pattern) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &error, &offset, nullptr);
    SIEVE_ASSERT(code_ != nullptr);
  }
  ~PropertyClass() { pcre2_code_free(code_); }
  bool contains(char32_t c) const {
    std::string s;
    append_utf8(s, c);
    thread_local std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
        pcre2_match_data_create(1, nullptr), &pcre2_match_data_free);
    return pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0,
                       PCRE2_NO_UTF_CHECK, data.get(), nullptr) >= 0;
  }

 private:
  pcre2_code* code_ = nullptr;
};

bool ascii_alnum(char32_t c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

}  // namespace

char32_t next_code_point(std::string_view s, std::size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  std::size_t n = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
  char32_t cp = b0 & (0x7F >> n);
  for (std::size_t k = 1; k < n && i + k < s.size(); ++k) {
    cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  }
  i += n;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_valid_utf8(std::string_view s) {
  std::size_t bad = 0;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i, bad);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string to_valid_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  std::size_t bad = 0;
  for (std::size_t i = 0; i < bytes.size();) {
    const std::size_t n = utf8_sequence(bytes, i, bad);
    if (n == 0) {
      append_utf8(out, kReplacement);
      i += bad;
    } else {
      out.append(bytes.substr(i, n));
      i += n;
    }
  }
  return out;
}

bool is_whitespace(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

bool is_alphanumeric(char32_t c) {
  if (c < 0x80) return ascii_alnum(c);
  static const PropertyClass cls("[\\p{Alphabetic}\\p{N}]");
  return cls.contains(c);
}

bool is_numeric(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  static const PropertyClass cls("\\p{N}");
  return cls.contains(c);
}

bool is_punctuation(char32_t c) {
  if (c < 0x80) return c > 0x20 && c < 0x7F && !ascii_alnum(c);  // ASCII punctuation/symbols
  static const PropertyClass cls("\\p{P}");
  return cls.contains(c);
}

bool is_word_character(char32_t c) {
  if (c < 0x80) return ascii_alnum(c) || c == '_';
  static const PropertyClass cls("[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]");
  return cls.contains(c);
}

bool is_mark(char32_t c) {
  if (c < 0x300) return false;
  static const PropertyClass cls("\\p{M}");
  return cls.contains(c);
}

uint8_t combining_class(char32_t c) {
  if (c < 0x300) return 0;
  const auto* begin = tables::kCombiningClasses;
  const auto* end = begin + tables::kCombiningClassesSize;
  const auto* it = std::upper_bound(begin, end, c, [](char32_t v, const tables::CombiningRange& r) {
    return v < r.first;
  });
  if (it == begin) return 0;
  --it;
  return c <= it->last ? it->ccc : 0;
}

namespace {

// Hangul syllable constants (Unicode §3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount;
constexpr char32_t kSCount = kLCount * kNCount;

void decompose(char32_t c, std::u32string& out) {
  if (c >= kSBase && c < kSBase + kSCount) {
    const char32_t s = c - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  if (c < 0xC0) {
    out.push_back(c);
    return;
  }
  const auto* begin = tables::kDecompositions;
  const auto* end = begin + tables::kDecompositionsSize;
  const auto* it = std::lower_bound(begin, end, c, [](const tables::Decomposition& d, char32_t v) {
    return d.cp < v;
  });
  if (it == end || it->cp != c) {
    out.push_back(c);
    return;
  }
  decompose(it->first, out);
  if (it->second) decompose(it->second, out);
}

char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount) {
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  }
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase &&
      b < kTBase + kTCount) {
    return a + (b - kTBase);
  }
  const auto* begin = tables::kCompositions;
  const auto* end = begin + tables::kCompositionsSize;
  const auto* it = std::lower_bound(begin, end, std::pair{a, b},
                                    [](const tables::Composition& c, std::pair<char32_t, char32_t> v) {
                                      return c.first != v.first ? c.first < v.first
                                                                : c.second < v.second;
                                    });
  return (it != end && it->first == a && it->second == b) ? it->composite : 0;
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char ch) { return static_cast<unsigned char>(ch) < 0x80; });
}

// Full canonical decomposition followed by the canonical ordering of combining marks.
std::u32string decompose_string(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) decompose(next_code_point(s, i), out);
  // Stable sort of each run of non-starters by combining class.
  for (std::size_t i = 0; i < out.size();) {
    if (combining_class(out[i]) == 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < out.size() && combining_class(out[j]) != 0) ++j;
    std::stable_sort(out.begin() + static_cast<std::ptrdiff_t>(i),
                     out.begin() + static_cast<std::ptrdiff_t>(j),
                     [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
  return out;
}

std::string encode_string(const std::u32string& cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t c : cps) append_utf8(out, c);
  return out;
}

}  // namespace

std::string nfd(std::string_view s) {
  if (is_ascii(s)) return std::string(s);
  return encode_string(decompose_string(s));
}

std::string nfc(std::string_view s) {
  if (is_ascii(s)) return std::string(s);
  std::u32string cps = decompose_string(s);
  // Canonical composition: a character composes with the last starter unless blocked by an
  // intervening character of equal or higher combining class (or any starter).
  std::size_t starter = std::u32string::npos;
  uint8_t last_ccc = 0;
  std::size_t out = 0;
  for (std::size_t i = 0; i < cps.size(); ++i) {
    const char32_t c = cps[i];
    const uint8_t ccc = combining_class(c);
    if (starter != std::u32string::npos &&
        (out == starter + 1 || (last_ccc != 0 && last_ccc < ccc))) {
      if (const char32_t composite = compose_pair(cps[starter], c)) {
        cps[starter] = composite;
        continue;
      }
    }
    if (ccc == 0) {
      starter = out;
      last_ccc = 0;
    } else {
      last_ccc = ccc;
    }
    cps[out++] = c;
  }
  cps.resize(out);
  return encode_string(cps);
}

std::string lowercase(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const char32_t c = next_code_point(s, i);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
      continue;
    }
    if (c == 0x130) {  // the one character whose lowercase is two code points
      append_utf8(out, 0x69);
      append_utf8(out, 0x307);
      continue;
    }
    const auto* begin = tables::kLowercase;
    const auto* end = begin + tables::kLowercaseSize;
    const auto* it = std::upper_bound(begin, end, c, [](char32_t v, const tables::CaseRun& r) {
      return v < r.first;
    });
    char32_t lower = c;
    if (it != begin) {
      --it;
      if (c <= it->last && (c - it->first) % static_cast<char32_t>(it->stride) == 0) {
        lower = static_cast<char32_t>(static_cast<int32_t>(c) + it->delta);
      }
    }
    append_utf8(out, lower);
  }
  return out;
}

namespace {

struct ByteMap {
  std::array<std::string, 256> to_unicode;
  std::array<int16_t, 324> to_byte;  // code points 0..323 cover the whole map

  ByteMap() {
    to_byte.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      // Printable Latin-1 bytes stand for themselves; the rest get 256, 257, ... in order.
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
      append_utf8(to_unicode[b], cp);
      to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap map;
  return map;
}

}  // namespace

const std::string& byte_to_unicode(uint8_t b) { return byte_map().to_unicode[b]; }

int unicode_to_byte(char32_t c) {
  const auto& map = byte_map();
  return c < map.to_byte.size() ? map.to_byte[c] : -1;
}

}  // namespace sieve::engine::unicode
