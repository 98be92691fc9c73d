// tokenizer.json "normalizer": the text transformations applied before pre-tokenization.
#include <algorithm>

#include "sieve/core/error.h"
#include "sieve/engine/unicode.h"
#include "tokenizer_internal.h"

namespace sieve::engine::tok {

namespace {

namespace uc = unicode;

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  void normalize(std::string& text) const override {
    for (const auto& step : steps_) step->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

class NfcNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = uc::nfc(text); }
};

class NfdNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = uc::nfd(text); }
};

class LowercaseNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = uc::lowercase(text); }
};

// Removes leading and/or trailing whitespace.
class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    std::size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < text.size()) {
        std::size_t next = begin;
        if (!uc::is_whitespace(uc::next_code_point(text, next))) break;
        begin = next;
      }
    }
    if (right_) {
      std::size_t last_non_space = begin;
      for (std::size_t i = begin; i < text.size();) {
        if (!uc::is_whitespace(uc::next_code_point(text, i))) last_non_space = i;
      }
      end = std::max(begin, last_non_space);
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

// Removes combining marks (meant to follow NFD).
class StripAccentsNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
      const std::size_t start = i;
      if (!uc::is_mark(uc::next_code_point(text, i))) out.append(text, start, i - start);
    }
    text = std::move(out);
  }
};

// Replaces every match of a pattern (literal or regex) by a fixed string.
class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::unique_ptr<Regex> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void normalize(std::string& text) const override {
    const auto matches = pattern_->find_all(text);
    if (matches.empty()) return;
    std::string out;
    out.reserve(text.size());
    std::size_t prev = 0;
    for (const Span& m : matches) {
      out.append(text, prev, m.begin - prev);
      out += content_;
      prev = m.end;
    }
    out.append(text, prev, std::string::npos);
    text = std::move(out);
  }

 private:
  std::unique_ptr<Regex> pattern_;
  std::string content_;
};

// Prepends a string to non-empty text (Llama-2's "▁").
class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

// Maps every byte to its GPT-2 byte-level character.
class ByteLevelNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size() * 2);
    for (char c : text) out += uc::byte_to_unicode(static_cast<uint8_t>(c));
    text = std::move(out);
  }
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const Json& spec) {
  if (spec.is_null()) return nullptr;
  SIEVE_CHECK(spec.is_object(), "tokenizer.json: 'normalizer' must be an object or null");
  const std::string type = get_string(spec, "type", "normalizer");
  const std::string where = "normalizer " + type;
  if (type == "Sequence") {
    return std::make_unique<SequenceNormalizer>(
        make_stages<Normalizer>(spec, "normalizers", where, make_normalizer));
  }
  if (type == "NFC") return std::make_unique<NfcNormalizer>();
  if (type == "NFD") return std::make_unique<NfdNormalizer>();
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Strip") {
    return std::make_unique<StripNormalizer>(get_bool(spec, "strip_left", true, where),
                                             get_bool(spec, "strip_right", true, where));
  }
  if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
  if (type == "Replace") {
    return std::make_unique<ReplaceNormalizer>(make_pattern(require(spec, "pattern", where), where),
                                               get_string(spec, "content", where));
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(get_string(spec, "prepend", where));
  if (type == "ByteLevel") return std::make_unique<ByteLevelNormalizer>();
  SIEVE_FAIL("tokenizer.json: unsupported normalizer type '{}' (supported: Sequence, NFC, NFD, "
             "Lowercase, Strip, StripAccents, Replace, Prepend, ByteLevel)", type);
}

}  // namespace sieve::engine::tok
