// Internal stages of the tokenizer pipeline (not installed): the regex engine, normalizers,
// pre-tokenizers, the BPE model and decoders, each built from its tokenizer.json object.
// The semantics follow Hugging Face `tokenizers` step by step; tests compare with its output.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sieve::engine::tok {

using Json = nlohmann::json;

/// Typed access to tokenizer.json fields with errors that name the field and the stage.
const Json& require(const Json& object, const char* key, std::string_view where);
std::string get_string(const Json& object, const char* key, std::string_view where);
bool get_bool(const Json& object, const char* key, bool fallback, std::string_view where);
[[noreturn]] void throw_field_error(std::string_view where, std::string_view key,
                                    std::string_view problem);
/// A string field holding exactly one character (Metaspace replacement, Strip content, ...).
char32_t get_char(const Json& object, const char* key, std::string_view where);

/// The stages of a "Sequence" stage: `make` applied to each element of the array `key`
/// (null elements are skipped).
template <typename Stage, typename Make>
std::vector<std::unique_ptr<Stage>> make_stages(const Json& spec, const char* key,
                                                std::string_view where, Make&& make) {
  const Json& list = require(spec, key, where);
  if (!list.is_array()) throw_field_error(where, key, "must be an array");
  std::vector<std::unique_ptr<Stage>> steps;
  for (const Json& item : list) {
    if (auto step = make(item)) steps.push_back(std::move(step));
  }
  return steps;
}

/// A byte range [begin, end) of a string.
struct Span {
  std::size_t begin, end;
};

/// A literal string, or a pattern compiled by PCRE2 with UTF + UCP. Regex patterns are written for Oniguruma (the
/// engine of `tokenizers`); translate_onig_pattern() maps the classes whose meaning differs
/// (\s, \w, \h) so both engines match the same characters. Thread-safe after construction.
class Regex {
 public:
  Regex(std::string_view pattern, bool literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  /// Non-overlapping matches, left to right, with Oniguruma's rule for empty matches.
  std::vector<Span> find_all(std::string_view text) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*, null for a literal
  bool is_literal_ = false;
  std::string literal_;
};

std::string translate_onig_pattern(std::string_view pattern);

/// tokenizers' Pattern JSON ({"String": s} or {"Regex": r}) compiled into a Regex.
std::unique_ptr<Regex> make_pattern(const Json& pattern, std::string_view where);

/// Matches of `re` as a cover of `text`: (span, is_match) in order, as tokenizers'
/// Pattern::find_matches (an empty text gives one empty non-match).
std::vector<std::pair<Span, bool>> find_matches(const Regex& re, std::string_view text);

/// A piece of text on its way through the pipeline. `at_origin`: it starts at offset 0 of the
/// original input (Metaspace prepend_scheme "first" needs this).
struct Piece {
  std::string text;
  bool at_origin = false;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};
/// nullptr for JSON null.
std::unique_ptr<Normalizer> make_normalizer(const Json& spec);

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  /// Replaces `pieces` by their sub-pieces; empty pieces are dropped.
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const Json& spec);

class Decoder {
 public:
  virtual ~Decoder() = default;
  /// tokenizers' decode_chain: maps the token strings to new strings (possibly fewer).
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};
std::unique_ptr<Decoder> make_decoder(const Json& spec);

/// Byte-pair encoding model: vocab, ranked merges, unk / byte_fallback / ignore_merges.
class BpeModel {
 public:
  explicit BpeModel(const Json& spec);

  /// Appends the ids of one pre-token.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  /// nullptr when `id` is not in the vocabulary.
  const std::string* id_to_token(int32_t id) const;
  int32_t max_id() const { return static_cast<int32_t>(id_to_token_.size()) - 1; }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct MergeInfo {
    int32_t rank;
    int32_t new_id;
  };
  using Vocab = std::unordered_map<std::string, int32_t, Hash, std::equal_to<>>;

  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  const MergeInfo* find_merge(int32_t left, int32_t right) const;

  Vocab vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  std::unordered_map<uint64_t, MergeInfo> merges_;
  std::optional<int32_t> unk_id_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  int32_t byte_ids_[256];  // <0xXX> tokens for byte_fallback, -1 when absent

  // Words seen before (as tokenizers does): bounded, thread-safe.
  static constexpr std::size_t kCacheCapacity = 10000;
  static constexpr std::size_t kCacheMaxWordBytes = 256;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, Hash, std::equal_to<>> cache_;
};

}  // namespace sieve::engine::tok
