// PCRE2 regex engine for the tokenizer's Split / Replace patterns.
//
// `tokenizers` compiles patterns with Oniguruma. With UTF + UCP, PCRE2 agrees with it on \p{..},
// \d and case-insensitive groups, but not on \s (Oniguruma: White_Space, which includes U+0085),
// \w (Oniguruma: L, M, N, Pc) or \h (Oniguruma: a hex digit), so those are rewritten. `^`/`$` are
// line anchors in Oniguruma's default syntax, hence PCRE2_MULTILINE.
#include "tokenizer_internal.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>

#include "sieve/core/error.h"

namespace sieve::engine::tok {

namespace {

pcre2_code* as_code(void* p) { return static_cast<pcre2_code*>(p); }

std::size_t char_length(std::string_view s, std::size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  return b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
}

// Per-thread match state: a match block and a JIT stack large enough for long inputs.
struct MatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
  MatchState() { pcre2_jit_stack_assign(context, nullptr, jit_stack); }
  ~MatchState() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

MatchState& match_state() {
  thread_local MatchState state;
  return state;
}

}  // namespace

std::string translate_onig_pattern(std::string_view p) {
  static constexpr std::string_view kWord = "\\p{L}\\p{M}\\p{N}\\p{Pc}";
  std::string out;
  out.reserve(p.size() + 16);
  bool in_class = false;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[++i];
      switch (e) {
        case 's': out += "\\p{White_Space}"; break;
        case 'S': out += "\\P{White_Space}"; break;
        case 'w': out += in_class ? std::string(kWord) : "[" + std::string(kWord) + "]"; break;
        case 'W':
          // A negated class cannot be nested in a class; PCRE2's own \W is the closest there.
          out += in_class ? std::string("\\W") : "[^" + std::string(kWord) + "]";
          break;
        case 'h': out += in_class ? "0-9a-fA-F" : "[0-9a-fA-F]"; break;
        case 'H': out += in_class ? "\\x00-/:-@G-`g-\\x{10FFFF}" : "[^0-9a-fA-F]"; break;
        default:
          out += '\\';
          out += e;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      const std::size_t close = p.find(":]", i + 2);
      if (close != std::string_view::npos) {  // POSIX class [:alpha:]
        out.append(p.substr(i, close + 2 - i));
        i = close + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

Regex::Regex(std::string_view pattern, bool literal) {
  if (literal) {  // plain substring search; an empty literal never matches
    literal_ = std::string(pattern);
    is_literal_ = true;
    return;
  }
  const std::string translated = translate_onig_pattern(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  const uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()),
                                   translated.size(), options, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    SIEVE_FAIL("tokenizer: cannot compile regex '{}': {} at offset {}", pattern,
               reinterpret_cast<const char*>(message), offset);
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // the interpreter is the fallback if JIT fails
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(as_code(code_)); }

std::vector<Span> Regex::find_all(std::string_view text) const {
  std::vector<Span> matches;
  if (is_literal_) {
    if (literal_.empty()) return matches;
    for (std::size_t pos = text.find(literal_); pos != std::string_view::npos;
         pos = text.find(literal_, pos + literal_.size())) {
      matches.push_back({pos, pos + literal_.size()});
    }
    return matches;
  }
  MatchState& state = match_state();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t start = 0;
  std::optional<std::size_t> last_match_end;
  while (start <= text.size()) {
    const int rc = pcre2_match(as_code(code_), subject, text.size(), start, PCRE2_NO_UTF_CHECK,
                               state.data, state.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof(message));
      SIEVE_FAIL("tokenizer: regex match failed on a {}-byte piece: {}", text.size(),
                 reinterpret_cast<const char*>(message));
    }
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data);
    const std::size_t begin = ovector[0], end = ovector[1];
    // Oniguruma's iterator: an empty match right where the previous match ended is skipped by
    // advancing one character; any other match is taken and the search resumes at its end.
    if (begin == end && last_match_end && *last_match_end == end) {
      if (start >= text.size()) break;
      start += char_length(text, start);
      continue;
    }
    matches.push_back({begin, end});
    last_match_end = end;
    start = end;
    if (begin == end && start >= text.size()) break;
  }
  return matches;
}

std::unique_ptr<Regex> make_pattern(const Json& pattern, std::string_view where) {
  SIEVE_CHECK(pattern.is_object(), "tokenizer.json: {}: 'pattern' must be an object with 'String' "
              "or 'Regex'", where);
  if (pattern.contains("String") && pattern["String"].is_string()) {
    return std::make_unique<Regex>(pattern["String"].get<std::string>(), true);
  }
  if (pattern.contains("Regex") && pattern["Regex"].is_string()) {
    return std::make_unique<Regex>(pattern["Regex"].get<std::string>(), false);
  }
  SIEVE_FAIL("tokenizer.json: {}: 'pattern' needs a 'String' or 'Regex' string", where);
}

std::vector<std::pair<Span, bool>> find_matches(const Regex& re, std::string_view text) {
  std::vector<std::pair<Span, bool>> out;
  if (text.empty()) {
    out.push_back({{0, 0}, false});
    return out;
  }
  std::size_t prev = 0;
  for (const Span& m : re.find_all(text)) {
    if (prev != m.begin) out.push_back({{prev, m.begin}, false});
    out.push_back({m, true});
    prev = m.end;
  }
  if (prev != text.size()) out.push_back({{prev, text.size()}, false});
  return out;
}

}  // namespace sieve::engine::tok
