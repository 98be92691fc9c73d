// tokenizer.json "decoder": turns token strings back into text.
#include "sieve/core/error.h"
#include "sieve/engine/unicode.h"
#include "tokenizer_internal.h"

namespace sieve::engine::tok {

namespace {

namespace uc = unicode;

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

// Byte-level characters back to bytes, then one lossy UTF-8 string for all tokens (so a character
// split over several tokens is reassembled). A token with a character outside the byte map is
// taken as raw UTF-8 (added tokens such as <|endoftext|> pass through that way).
class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    for (const std::string& token : tokens) {
      const std::size_t mark = bytes.size();
      bool mapped = true;
      for (std::size_t i = 0; i < token.size();) {
        const int b = uc::unicode_to_byte(uc::next_code_point(token, i));
        if (b < 0) {
          mapped = false;
          break;
        }
        bytes.push_back(static_cast<char>(b));
      }
      if (!mapped) {
        bytes.resize(mark);
        bytes += token;
      }
    }
    tokens.assign(1, uc::to_valid_utf8(bytes));
  }
};

// ▁ back to spaces; the first token loses its ▁ when a prefix was prepended while encoding.
class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(char32_t replacement, bool strip_first)
      : replacement_(replacement), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      const std::string& token = tokens[t];
      std::string out;
      out.reserve(token.size());
      for (std::size_t i = 0; i < token.size();) {
        const std::size_t begin = i;
        const char32_t c = uc::next_code_point(token, i);
        if (c == replacement_) {
          if (!(t == 0 && strip_first_)) out.push_back(' ');
        } else {
          out.append(token, begin, i - begin);
        }
      }
      tokens[t] = std::move(out);
    }
  }

 private:
  char32_t replacement_;
  bool strip_first_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::unique_ptr<Regex> pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      std::string out;
      for (const auto& [span, is_match] : find_matches(*pattern_, token)) {
        if (is_match) {
          out += content_;
        } else {
          out.append(token, span.begin, span.end - span.begin);
        }
      }
      token = std::move(out);
    }
  }

 private:
  std::unique_ptr<Regex> pattern_;
  std::string content_;
};

// SentencePiece byte fallback: runs of <0xXX> tokens become the bytes they name when those form
// valid UTF-8, otherwise one U+FFFD per byte.
class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens.size());
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (uc::is_valid_utf8(pending)) {
        out.push_back(pending);
      } else {
        for (std::size_t i = 0; i < pending.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
      }
      pending.clear();
    };
    for (std::string& token : tokens) {
      if (const int byte = parse_byte_token(token); byte >= 0) {
        pending.push_back(static_cast<char>(byte));
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    tokens = std::move(out);
  }

 private:
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  // "<0xHH>" -> HH (Rust's u8::from_str_radix also takes a leading '+', as in "<0x+F>").
  static int parse_byte_token(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    if (t[3] == '+') return hex(t[4]);
    const int hi = hex(t[3]), lo = hex(t[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string joined;
    for (const std::string& t : tokens) joined += t;
    tokens.assign(1, std::move(joined));
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from each token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(char32_t content, std::size_t start, std::size_t stop)
      : content_(content), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) {
      std::vector<std::size_t> bounds;  // byte offset of each character, plus the end
      for (std::size_t i = 0; i < token.size();) {
        bounds.push_back(i);
        uc::next_code_point(token, i);
      }
      const std::size_t n = bounds.size();
      bounds.push_back(token.size());
      auto char_at = [&](std::size_t k) {
        std::size_t i = bounds[k];
        return uc::next_code_point(token, i);
      };
      std::size_t first = 0;
      while (first < std::min(start_, n) && char_at(first) == content_) ++first;
      std::size_t last = n;
      for (std::size_t k = 0; k < stop_ && last > 0 && char_at(last - 1) == content_; ++k) --last;
      token = last > first ? token.substr(bounds[first], bounds[last] - bounds[first]) : "";
    }
  }

 private:
  char32_t content_;
  std::size_t start_, stop_;
};

// Classic BPE end-of-word suffix: the suffix becomes a space, except after the last token.
class BpeSuffixDecoder final : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      std::string out;
      const std::string& token = tokens[t];
      const std::string replacement = t + 1 == tokens.size() ? "" : " ";
      for (std::size_t pos = 0;;) {
        const std::size_t hit = suffix_.empty() ? std::string::npos : token.find(suffix_, pos);
        if (hit == std::string::npos) {
          out.append(token, pos, std::string::npos);
          break;
        }
        out.append(token, pos, hit - pos);
        out += replacement;
        pos = hit + suffix_.size();
      }
      tokens[t] = std::move(out);
    }
  }

 private:
  std::string suffix_;
};

std::size_t get_count(const Json& spec, const char* key, std::string_view where) {
  const Json& v = require(spec, key, where);
  SIEVE_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0),
              "tokenizer.json: {}: '{}' must be a non-negative integer", where, key);
  return v.get<std::size_t>();
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const Json& spec) {
  if (spec.is_null()) return nullptr;
  SIEVE_CHECK(spec.is_object(), "tokenizer.json: 'decoder' must be an object or null");
  const std::string type = get_string(spec, "type", "decoder");
  const std::string where = "decoder " + type;
  if (type == "Sequence") {
    return std::make_unique<SequenceDecoder>(
        make_stages<Decoder>(spec, "decoders", where, make_decoder));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    bool strip_first = true;
    if (spec.contains("prepend_scheme")) {
      strip_first = get_string(spec, "prepend_scheme", where) != "never";
    } else {
      strip_first = get_bool(spec, "add_prefix_space", true, where);
    }
    return std::make_unique<MetaspaceDecoder>(get_char(spec, "replacement", where), strip_first);
  }
  if (type == "Replace") {
    return std::make_unique<ReplaceDecoder>(make_pattern(require(spec, "pattern", where), where),
                                            get_string(spec, "content", where));
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(get_char(spec, "content", where),
                                          get_count(spec, "start", where),
                                          get_count(spec, "stop", where));
  }
  if (type == "BPEDecoder") {
    return std::make_unique<BpeSuffixDecoder>(
        spec.contains("suffix") ? get_string(spec, "suffix", where) : "</w>");
  }
  SIEVE_FAIL("tokenizer.json: unsupported decoder type '{}' (supported: Sequence, ByteLevel, "
             "Metaspace, Replace, ByteFallback, Fuse, Strip, BPEDecoder)", type);
}

}  // namespace sieve::engine::tok
