// tokenizer.json "pre_tokenizer": cuts normalized text into the words the BPE model sees.
#include "sieve/core/error.h"
#include "sieve/engine/unicode.h"
#include "tokenizer_internal.h"

namespace sieve::engine::tok {

namespace {

namespace uc = unicode;

// GPT-2's split pattern, used by ByteLevel when use_regex is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// What happens to the matched delimiters when a piece is split (tokenizers'
// SplitDelimiterBehavior).
enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

Behavior parse_behavior(const std::string& name, std::string_view where) {
  if (name == "Removed") return Behavior::kRemoved;
  if (name == "Isolated") return Behavior::kIsolated;
  if (name == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::kMergedWithNext;
  if (name == "Contiguous") return Behavior::kContiguous;
  SIEVE_FAIL("tokenizer.json: {}: unknown split behavior '{}'", where, name);
}

using Matches = std::vector<std::pair<Span, bool>>;

// Matches of a per-character predicate: every matching character is its own match.
template <typename Predicate>
Matches find_char_matches(std::string_view text, Predicate&& pred) {
  Matches out;
  if (text.empty()) {
    out.push_back({{0, 0}, false});
    return out;
  }
  std::size_t last = 0;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t begin = i;
    if (pred(uc::next_code_point(text, i))) {
      if (last < begin) out.push_back({{last, begin}, false});
      out.push_back({{begin, i}, true});
      last = i;
    }
  }
  if (last < text.size()) out.push_back({{last, text.size()}, false});
  return out;
}

// Applies a split behavior to a cover of `piece` and appends the non-empty sub-pieces.
void split_piece(const Piece& piece, Matches matches, Behavior behavior, bool invert,
                 std::vector<Piece>& out) {
  if (invert) {
    for (auto& m : matches) m.second = !m.second;
  }
  std::vector<std::pair<Span, bool>> parts;  // (span, remove)
  switch (behavior) {
    case Behavior::kIsolated:
      for (const auto& [span, is_match] : matches) parts.push_back({span, false});
      break;
    case Behavior::kRemoved:
      parts = std::move(matches);
      break;
    case Behavior::kContiguous: {
      bool previous_match = false;
      for (const auto& [span, is_match] : matches) {
        if (is_match == previous_match && !parts.empty()) {
          parts.back().first.end = span.end;
        } else {
          parts.push_back({span, false});
        }
        previous_match = is_match;
      }
      break;
    }
    case Behavior::kMergedWithPrevious: {
      bool previous_match = false;
      for (const auto& [span, is_match] : matches) {
        if (is_match && !previous_match && !parts.empty()) {
          parts.back().first.end = span.end;
        } else {
          parts.push_back({span, false});
        }
        previous_match = is_match;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool previous_match = false;
      for (auto it = matches.rbegin(); it != matches.rend(); ++it) {
        const auto& [span, is_match] = *it;
        if (is_match && !previous_match && !parts.empty()) {
          parts.back().first.begin = span.begin;
        } else {
          parts.push_back({span, false});
        }
        previous_match = is_match;
      }
      std::reverse(parts.begin(), parts.end());
      break;
    }
  }
  for (const auto& [span, remove] : parts) {
    if (remove || span.begin == span.end) continue;
    out.push_back({piece.text.substr(span.begin, span.end - span.begin),
                   piece.at_origin && span.begin == 0});
  }
}

// Runs `split` over every piece, replacing the list by the concatenated results.
template <typename SplitFn>
void split_all(std::vector<Piece>& pieces, SplitFn&& split) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (const Piece& piece : pieces) split(piece, out);
  pieces = std::move(out);
}

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps)
      : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    for (const auto& step : steps_) step->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

// Optional leading space, optional GPT-2 split, then every byte becomes its printable character.
class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Regex>(kGpt2Pattern, false);
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_all(pieces, [&](const Piece& piece, std::vector<Piece>& out) {
      Piece p = piece;
      if (add_prefix_space_ && !p.text.empty() && p.text[0] != ' ') p.text.insert(0, 1, ' ');
      if (regex_) {
        split_piece(p, find_matches(*regex_, p.text), Behavior::kIsolated, false, out);
      } else if (!p.text.empty()) {
        out.push_back(std::move(p));
      }
    });
    std::string mapped;
    for (Piece& p : pieces) {
      mapped.clear();
      for (char c : p.text) mapped += uc::byte_to_unicode(static_cast<uint8_t>(c));
      p.text.swap(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(std::unique_ptr<Regex> pattern, Behavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_all(pieces, [&](const Piece& piece, std::vector<Piece>& out) {
      split_piece(piece, find_matches(*pattern_, piece.text), behavior_, invert_, out);
    });
  }

 private:
  std::unique_ptr<Regex> pattern_;
  Behavior behavior_;
  bool invert_;
};

// Splits on single characters chosen by a predicate (Digits, Punctuation, WhitespaceSplit, ...).
class CharSplitPreTokenizer final : public PreTokenizer {
 public:
  using Predicate = bool (*)(char32_t, char32_t);
  CharSplitPreTokenizer(Predicate pred, char32_t arg, Behavior behavior)
      : pred_(pred), arg_(arg), behavior_(behavior) {}
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_all(pieces, [&](const Piece& piece, std::vector<Piece>& out) {
      const auto matches = find_char_matches(piece.text, [&](char32_t c) { return pred_(c, arg_); });
      split_piece(piece, matches, behavior_, false, out);
    });
  }

 private:
  Predicate pred_;
  char32_t arg_;
  Behavior behavior_;
};

// SentencePiece's word boundary: spaces become `replacement` (▁), optionally prepended, and
// optionally each piece is cut before every ▁.
class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  MetaspacePreTokenizer(char32_t replacement, Prepend prepend, bool split)
      : replacement_(replacement), prepend_(prepend), split_(split) {
    uc::append_utf8(replacement_utf8_, replacement);
  }
  void pre_tokenize(std::vector<Piece>& pieces) const override {
    split_all(pieces, [&](const Piece& piece, std::vector<Piece>& out) {
      Piece p{std::string(), piece.at_origin};
      p.text.reserve(piece.text.size() + 8);
      for (char c : piece.text) {
        if (c == ' ') {
          p.text += replacement_utf8_;
        } else {
          p.text += c;
        }
      }
      const bool starts_with = p.text.compare(0, replacement_utf8_.size(), replacement_utf8_) == 0;
      const bool prepend = !p.text.empty() && !starts_with &&
                           (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && p.at_origin));
      if (prepend) p.text.insert(0, replacement_utf8_);
      if (split_) {
        const char32_t r = replacement_;
        const auto matches = find_char_matches(p.text, [r](char32_t c) { return c == r; });
        split_piece(p, matches, Behavior::kMergedWithNext, false, out);
      } else if (!p.text.empty()) {
        out.push_back(std::move(p));
      }
    });
  }

 private:
  char32_t replacement_;
  std::string replacement_utf8_;
  Prepend prepend_;
  bool split_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& spec) {
  if (spec.is_null()) return nullptr;
  SIEVE_CHECK(spec.is_object(), "tokenizer.json: 'pre_tokenizer' must be an object or null");
  const std::string type = get_string(spec, "type", "pre_tokenizer");
  const std::string where = "pre_tokenizer " + type;
  if (type == "Sequence") {
    return std::make_unique<SequencePreTokenizer>(
        make_stages<PreTokenizer>(spec, "pretokenizers", where, make_pre_tokenizer));
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPreTokenizer>(get_bool(spec, "add_prefix_space", true, where),
                                                   get_bool(spec, "use_regex", true, where));
  }
  if (type == "Split") {
    return std::make_unique<SplitPreTokenizer>(
        make_pattern(require(spec, "pattern", where), where),
        parse_behavior(get_string(spec, "behavior", where), where),
        get_bool(spec, "invert", false, where));
  }
  if (type == "Metaspace") {
    const char32_t replacement = get_char(spec, "replacement", where);
    auto prepend = MetaspacePreTokenizer::Prepend::kAlways;
    if (spec.contains("prepend_scheme")) {
      const std::string scheme = get_string(spec, "prepend_scheme", where);
      if (scheme == "first") {
        prepend = MetaspacePreTokenizer::Prepend::kFirst;
      } else if (scheme == "never") {
        prepend = MetaspacePreTokenizer::Prepend::kNever;
      } else {
        SIEVE_CHECK(scheme == "always", "tokenizer.json: {}: unknown prepend_scheme '{}'", where,
                    scheme);
      }
    } else if (!get_bool(spec, "add_prefix_space", true, where)) {  // older files
      prepend = MetaspacePreTokenizer::Prepend::kNever;
    }
    return std::make_unique<MetaspacePreTokenizer>(replacement, prepend,
                                                   get_bool(spec, "split", true, where));
  }
  if (type == "Digits") {
    const bool individual = get_bool(spec, "individual_digits", false, where);
    return std::make_unique<CharSplitPreTokenizer>(
        [](char32_t c, char32_t) { return uc::is_numeric(c); }, 0,
        individual ? Behavior::kIsolated : Behavior::kContiguous);
  }
  if (type == "WhitespaceSplit") {
    return std::make_unique<CharSplitPreTokenizer>(
        [](char32_t c, char32_t) { return uc::is_whitespace(c); }, 0, Behavior::kRemoved);
  }
  if (type == "Punctuation") {
    const std::string behavior =
        spec.contains("behavior") ? get_string(spec, "behavior", where) : "Isolated";
    return std::make_unique<CharSplitPreTokenizer>(
        [](char32_t c, char32_t) { return uc::is_punctuation(c); }, 0,
        parse_behavior(behavior, where));
  }
  if (type == "CharDelimiterSplit") {
    return std::make_unique<CharSplitPreTokenizer>(
        [](char32_t c, char32_t d) { return c == d; },
        get_char(spec, "delimiter", where), Behavior::kRemoved);
  }
  if (type == "Whitespace") {
    // tokenizers uses the Rust regex `\w+|[^\w\s]+`, where \w is Alphabetic, M, Nd, Pc and
    // Join_Control; written out for PCRE2.
    constexpr std::string_view kWord = R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D})";
    const std::string pattern = "[" + std::string(kWord) + "]+|[^" + std::string(kWord) +
                                R"(\p{White_Space}]+)";
    return std::make_unique<SplitPreTokenizer>(std::make_unique<Regex>(pattern, false),
                                               Behavior::kRemoved, true);
  }
  SIEVE_FAIL("tokenizer.json: unsupported pre_tokenizer type '{}' (supported: Sequence, "
             "ByteLevel, Split, Metaspace, Digits, Whitespace, WhitespaceSplit, Punctuation, "
             "CharDelimiterSplit)", type);
}

}  // namespace sieve::engine::tok
