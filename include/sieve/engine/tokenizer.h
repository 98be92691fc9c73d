// Tokenizer: a Hugging Face tokenizer.json (BPE model) loaded and run in C++.
//
// Reproduces the `tokenizers` pipeline: added tokens are split out of the raw text first
// (leftmost-longest, honouring lstrip/rstrip/single_word/normalized), then normalizer
// (NFC/NFD, Prepend, Replace, Lowercase, Strip, ...), pre-tokenizer (ByteLevel, Split with a PCRE2
// regex, Metaspace, Digits, ...), the BPE model (ranked merges, byte_fallback, unk, ignore_merges)
// and the post-processor (TemplateProcessing BOS/EOS). Covers byte-level BPE (GPT-2, Llama-3,
// Qwen2/3, SmolLM) and SentencePiece-style BPE (Llama-2, Mistral). decode() runs the decoder chain
// (ByteLevel; Replace/ByteFallback/Fuse/Strip; Metaspace). docs/tokenizer.md lists what is
// supported; anything else is refused with a sieve::Error naming it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sieve::engine {

/// @brief One entry of tokenizer.json's "added_tokens".
struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;      // skipped by decode(..., skip_special_tokens = true)
  bool lstrip = false;       // a match swallows the whitespace on its left
  bool rstrip = false;       // ... and on its right
  bool normalized = false;   // matched in the normalized text instead of the raw text
  bool single_word = false;  // only matches when not inside a word
};

class Tokenizer {
 public:
  /// @brief Loads `path`: a tokenizer.json file or a model folder holding one. BOS/EOS come from
  /// tokenizer_config.json and config.json / generation_config.json next to it when present.
  static Tokenizer from_file(const std::filesystem::path& path);
  /// @brief Builds a tokenizer from the text of a tokenizer.json (no BOS/EOS side files).
  static Tokenizer from_json(std::string_view json_text);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  /// @brief Token ids of `text` (UTF-8; ill-formed bytes become U+FFFD first). With
  /// `add_special_tokens` the post-processor adds its template tokens (e.g. BOS).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;

  /// @brief Text of `ids`. Throws sieve::Error for an id outside the vocabulary.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  /// @brief Id of a token string (added tokens first, then the model vocabulary).
  std::optional<int32_t> token_to_id(std::string_view token) const;
  /// @brief Token string of an id as decode() sees it (a `normalized` added token gives its
  /// normalized text, as in `tokenizers`); throws sieve::Error when the id is unknown.
  const std::string& id_to_token(int32_t id) const;

  /// @brief One past the largest id (model vocabulary and added tokens); embedding tables of a
  /// model using this tokenizer need at least this many rows.
  int32_t vocab_size() const;
  /// @brief True when `id` is an added token marked special.
  bool is_special(int32_t id) const;
  const std::vector<AddedToken>& added_tokens() const;

  /// @brief BOS id from tokenizer_config.json / config.json, else the first special token the
  /// post-processor prepends; empty when none is known.
  std::optional<int32_t> bos_id() const;
  /// @brief EOS ids (config.json and generation_config.json may list several); may be empty.
  const std::vector<int32_t>& eos_ids() const;
  bool is_eos(int32_t id) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend class TokenStream;
};

/// @brief Incremental detokenizer for streaming generation: push() returns the new complete text
/// for each id, holding back bytes until they form whole UTF-8 characters (a multi-byte character
/// may span several byte-level or <0xXX> tokens). The concatenation of everything returned equals
/// decode() of all ids whenever the decoded text ends in a complete character.
class TokenStream {
 public:
  explicit TokenStream(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  /// @brief Appends one id; returns the text that became final (possibly empty).
  std::string push(int32_t id);
  /// @brief Returns what is still held back (incomplete characters come out as U+FFFD).
  std::string finish();

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_;
  std::vector<int32_t> window_;  // ids whose decode is (partly) emitted already
  std::size_t emitted_ = 0;       // bytes of decode(window_) already returned
};

}  // namespace sieve::engine
