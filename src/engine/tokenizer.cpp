// Tokenizer: loading tokenizer.json, added tokens, the encode/decode pipeline, post-processing,
// BOS/EOS discovery and the streaming detokenizer.
#include "sieve/engine/tokenizer.h"

#include <algorithm>
#include <unordered_set>

#include "sieve/core/error.h"
#include "sieve/core/text_file.h"
#include "sieve/engine/unicode.h"
#include "tokenizer_internal.h"

namespace sieve::engine {

namespace tok {

const Json& require(const Json& object, const char* key, std::string_view where) {
  SIEVE_CHECK(object.is_object() && object.contains(key), "tokenizer.json: {}: missing field '{}'",
              where, key);
  return object[key];
}

std::string get_string(const Json& object, const char* key, std::string_view where) {
  const Json& v = require(object, key, where);
  SIEVE_CHECK(v.is_string(), "tokenizer.json: {}: field '{}' must be a string", where, key);
  return v.get<std::string>();
}

bool get_bool(const Json& object, const char* key, bool fallback, std::string_view where) {
  if (!object.contains(key) || object[key].is_null()) return fallback;
  SIEVE_CHECK(object[key].is_boolean(), "tokenizer.json: {}: field '{}' must be true or false",
              where, key);
  return object[key].get<bool>();
}

char32_t get_char(const Json& object, const char* key, std::string_view where) {
  const std::string s = get_string(object, key, where);
  std::size_t i = 0;
  if (s.empty() || !unicode::is_valid_utf8(s) || (unicode::next_code_point(s, i), i != s.size())) {
    throw_field_error(where, key, "must be one character");
  }
  i = 0;
  return unicode::next_code_point(s, i);
}

void throw_field_error(std::string_view where, std::string_view key, std::string_view problem) {
  SIEVE_FAIL("tokenizer.json: {}: field '{}' {}", where, key, problem);
}

}  // namespace tok

namespace {

namespace uc = unicode;
using tok::Json;

// Byte trie over added-token contents for leftmost-longest matching.
class TokenTrie {
 public:
  void insert(std::string_view text, int32_t token_index) {
    if (text.empty()) return;
    int32_t node = 0;
    for (char ch : text) {
      const auto c = static_cast<uint8_t>(ch);
      auto& kids = nodes_[static_cast<std::size_t>(node)].children;
      auto it = std::find_if(kids.begin(), kids.end(), [c](const auto& k) { return k.first == c; });
      if (it == kids.end()) {
        nodes_.push_back({});
        const auto child = static_cast<int32_t>(nodes_.size() - 1);
        nodes_[static_cast<std::size_t>(node)].children.push_back({c, child});
        node = child;
      } else {
        node = it->second;
      }
    }
    auto& slot = nodes_[static_cast<std::size_t>(node)].token;
    if (slot < 0) slot = token_index;  // a duplicate content keeps its first entry
    first_bytes_[static_cast<uint8_t>(text[0])] = true;
  }
  bool empty() const { return nodes_.size() == 1; }

  // Longest token starting at `pos`: (token index, length) or (-1, 0).
  std::pair<int32_t, std::size_t> longest_at(std::string_view text, std::size_t pos) const {
    if (!first_bytes_[static_cast<uint8_t>(text[pos])]) return {-1, 0};
    int32_t node = 0;
    std::pair<int32_t, std::size_t> best{-1, 0};
    for (std::size_t i = pos; i < text.size(); ++i) {
      const auto c = static_cast<uint8_t>(text[i]);
      const auto& kids = nodes_[static_cast<std::size_t>(node)].children;
      auto it = std::find_if(kids.begin(), kids.end(), [c](const auto& k) { return k.first == c; });
      if (it == kids.end()) break;
      node = it->second;
      if (nodes_[static_cast<std::size_t>(node)].token >= 0) {
        best = {nodes_[static_cast<std::size_t>(node)].token, i + 1 - pos};
      }
    }
    return best;
  }

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> children;
    int32_t token = -1;
  };
  std::vector<Node> nodes_{Node{}};
  bool first_bytes_[256] = {};
};

char32_t last_code_point(std::string_view s) {
  std::size_t i = s.size() - 1;
  while (i > 0 && (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80) --i;
  return uc::next_code_point(s, i);
}

// One item of a post-processing template: the encoded sequence, or fixed special-token ids.
struct TemplateItem {
  bool is_sequence = false;
  std::vector<int32_t> ids;
};
using Template = std::vector<TemplateItem>;

// A segment of the input during encoding: text still to tokenize, or one added token.
struct Segment {
  std::string text;
  bool at_origin = false;
  int32_t token_id = -1;
};

Json parse_json(std::string_view text, std::string_view what) {
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& e) {
    SIEVE_FAIL("tokenizer: {} is not valid JSON: {}", what, e.what());
  }
}

}  // namespace

struct Tokenizer::Impl {
  std::vector<AddedToken> added;
  // What decode() emits for each added token: its content, or for a `normalized` token the
  // normalizer's output when that differs (tokenizers >= 0.22 does this so the decoder can invert
  // e.g. a ByteLevel normalizer). Skipping special tokens compares this text with the contents of
  // the special tokens, so a normalized special token whose text changed is not skipped (as there).
  std::vector<std::string> decode_text;
  std::unordered_set<std::string> special_contents;
  std::unordered_map<std::string, int32_t> added_by_content;  // -> index into `added`
  std::unordered_map<int32_t, int32_t> added_by_id;           // -> index into `added`
  TokenTrie raw_trie, normalized_trie;

  std::unique_ptr<tok::Normalizer> normalizer;
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer;
  std::unique_ptr<tok::BpeModel> model;
  std::unique_ptr<tok::Decoder> decoder;
  std::vector<Template> post_processors;  // applied in order when adding special tokens

  int32_t vocab_size = 0;
  std::optional<int32_t> bos;
  std::vector<int32_t> eos;

  void load(const Json& root);
  void load_added_tokens(const Json& list);
  void load_post_processor(const Json& spec);
  void split_added(const std::vector<Segment>& in, const TokenTrie& trie, std::vector<Segment>& out)
      const;
  const std::string* token_of(int32_t id) const;
};

void Tokenizer::Impl::load(const Json& root) {
  SIEVE_CHECK(root.is_object(), "tokenizer.json: the top level must be an object");
  SIEVE_CHECK(root.contains("model") && root["model"].is_object(),
              "tokenizer.json: missing 'model' object");
  const Json& model_spec = root["model"];
  std::string type;
  if (model_spec.contains("type")) {
    SIEVE_CHECK(model_spec["type"].is_string(), "tokenizer.json: model.type must be a string");
    type = model_spec["type"].get<std::string>();
  } else if (model_spec.contains("merges")) {
    type = "BPE";  // early files omit the tag
  }
  SIEVE_CHECK(type == "BPE", "tokenizer.json: model type '{}' is not supported (only BPE; "
              "WordPiece, Unigram and WordLevel models are not implemented)",
              type.empty() ? "<missing>" : type);
  model = std::make_unique<tok::BpeModel>(model_spec);
  vocab_size = model->max_id() + 1;

  normalizer = tok::make_normalizer(root.value("normalizer", Json()));
  pre_tokenizer = tok::make_pre_tokenizer(root.value("pre_tokenizer", Json()));
  decoder = tok::make_decoder(root.value("decoder", Json()));
  if (root.contains("added_tokens")) load_added_tokens(root["added_tokens"]);
  load_post_processor(root.value("post_processor", Json()));

  // BOS fallback: the special token a template puts before the sequence.
  for (const Template& t : post_processors) {
    if (!t.empty() && !t.front().is_sequence && !t.front().ids.empty()) bos = t.front().ids.front();
  }
}

void Tokenizer::Impl::load_added_tokens(const Json& list) {
  if (list.is_null()) return;
  SIEVE_CHECK(list.is_array(), "tokenizer.json: 'added_tokens' must be an array");
  for (std::size_t i = 0; i < list.size(); ++i) {
    const Json& t = list[i];
    const std::string where = fmt::format("added_tokens[{}]", i);
    SIEVE_CHECK(t.is_object(), "tokenizer.json: {} must be an object", where);
    const Json& id = tok::require(t, "id", where);
    SIEVE_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 &&
                    id.get<int64_t>() < (int64_t{1} << 31) - 1,
                "tokenizer.json: {}: 'id' must be a non-negative integer", where);
    AddedToken token;
    token.id = id.get<int32_t>();
    token.content = tok::get_string(t, "content", where);
    SIEVE_CHECK(uc::is_valid_utf8(token.content), "tokenizer.json: {}: content is not UTF-8", where);
    token.special = tok::get_bool(t, "special", false, where);
    token.lstrip = tok::get_bool(t, "lstrip", false, where);
    token.rstrip = tok::get_bool(t, "rstrip", false, where);
    token.normalized = tok::get_bool(t, "normalized", true, where);  // serde default
    token.single_word = tok::get_bool(t, "single_word", false, where);
    const auto index = static_cast<int32_t>(added.size());
    added_by_content.emplace(token.content, index);
    added_by_id[token.id] = index;
    vocab_size = std::max(vocab_size, token.id + 1);
    if (token.normalized) {
      std::string pattern = token.content;
      if (normalizer) normalizer->normalize(pattern);
      normalized_trie.insert(pattern, index);
      decode_text.push_back(pattern);
    } else {
      raw_trie.insert(token.content, index);
      decode_text.push_back(token.content);
    }
    if (token.special) special_contents.insert(token.content);
    added.push_back(std::move(token));
  }
}

void Tokenizer::Impl::load_post_processor(const Json& spec) {
  if (spec.is_null()) return;
  SIEVE_CHECK(spec.is_object(), "tokenizer.json: 'post_processor' must be an object or null");
  const std::string type = tok::get_string(spec, "type", "post_processor");
  const std::string where = "post_processor " + type;
  if (type == "Sequence") {
    const Json& list = tok::require(spec, "processors", where);
    SIEVE_CHECK(list.is_array(), "tokenizer.json: {}: 'processors' must be an array", where);
    for (const Json& item : list) load_post_processor(item);
    return;
  }
  if (type == "ByteLevel") return;  // only adjusts offsets
  if (type == "TemplateProcessing") {
    const Json& single = tok::require(spec, "single", where);
    const Json& specials = spec.value("special_tokens", Json::object());
    SIEVE_CHECK(single.is_array(), "tokenizer.json: {}: 'single' must be an array", where);
    Template t;
    for (const Json& item : single) {
      if (item.contains("Sequence")) {
        t.push_back({true, {}});
      } else if (item.contains("SpecialToken")) {
        const std::string name = tok::get_string(item["SpecialToken"], "id", where);
        SIEVE_CHECK(specials.contains(name), "tokenizer.json: {}: special token '{}' is not in "
                    "'special_tokens'", where, name);
        const Json& ids = tok::require(specials[name], "ids", where);
        SIEVE_CHECK(ids.is_array(), "tokenizer.json: {}: special_tokens['{}'].ids must be an array",
                    where, name);
        TemplateItem special;
        for (const Json& id : ids) {
          SIEVE_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 &&
                          id.get<int64_t>() < (int64_t{1} << 31) - 1,
                      "tokenizer.json: {}: special_tokens['{}'] has an invalid id", where, name);
          special.ids.push_back(id.get<int32_t>());
        }
        t.push_back(std::move(special));
      } else {
        SIEVE_FAIL("tokenizer.json: {}: template items must be 'Sequence' or 'SpecialToken'", where);
      }
    }
    post_processors.push_back(std::move(t));
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    auto id_of = [&](const char* key) {
      const Json& pair = tok::require(spec, key, where);
      SIEVE_CHECK(pair.is_array() && pair.size() == 2 && pair[1].is_number_integer(),
                  "tokenizer.json: {}: '{}' must be [token, id]", where, key);
      return pair[1].get<int32_t>();
    };
    post_processors.push_back({{false, {id_of("cls")}}, {true, {}}, {false, {id_of("sep")}}});
    return;
  }
  SIEVE_FAIL("tokenizer.json: unsupported post_processor type '{}' (supported: "
             "TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence)", type);
}

// Cuts the text segments of `in` around added-token matches (tokenizers' find_matches).
void Tokenizer::Impl::split_added(const std::vector<Segment>& in, const TokenTrie& trie,
                                  std::vector<Segment>& out) const {
  for (const Segment& seg : in) {
    if (seg.token_id >= 0 || trie.empty() || seg.text.empty()) {
      out.push_back(seg);
      continue;
    }
    const std::string_view s = seg.text;
    std::size_t start_offset = 0;
    auto emit_text = [&](std::size_t b, std::size_t e) {
      out.push_back({std::string(s.substr(b, e - b)), seg.at_origin && b == 0, -1});
    };
    for (std::size_t pos = 0; pos < s.size();) {
      const auto [index, length] = trie.longest_at(s, pos);
      if (index < 0) {
        ++pos;
        continue;
      }
      const AddedToken& token = added[static_cast<std::size_t>(index)];
      std::size_t start = pos, stop = pos + length;
      pos = stop;  // the match iterator resumes after the match, not after stripped spaces
      if (token.single_word) {
        const bool start_ok = start == 0 || !uc::is_word_character(last_code_point(s.substr(0, start)));
        std::size_t after = stop;
        const bool stop_ok =
            stop == s.size() || !uc::is_word_character(uc::next_code_point(s, after));
        if (!start_ok || !stop_ok) continue;
      }
      if (token.lstrip) {
        std::size_t new_start = start;
        while (new_start > 0) {
          std::size_t b = new_start - 1;
          while (b > 0 && (static_cast<uint8_t>(s[b]) & 0xC0) == 0x80) --b;
          std::size_t probe = b;
          if (!uc::is_whitespace(uc::next_code_point(s, probe))) break;
          new_start = b;
        }
        start = std::max(new_start, start_offset);
      }
      if (token.rstrip) {
        while (stop < s.size()) {
          std::size_t next = stop;
          if (!uc::is_whitespace(uc::next_code_point(s, next))) break;
          stop = next;
        }
      }
      if (start_offset < start) emit_text(start_offset, start);
      out.push_back({std::string(s.substr(start, stop - start)), false, token.id});
      start_offset = stop;
    }
    if (start_offset < s.size()) emit_text(start_offset, s.size());
  }
}

const std::string* Tokenizer::Impl::token_of(int32_t id) const {
  if (const auto it = added_by_id.find(id); it != added_by_id.end()) {
    return &decode_text[static_cast<std::size_t>(it->second)];
  }
  return model->id_to_token(id);
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_json(std::string_view json_text) {
  auto impl = std::make_unique<Impl>();
  impl->load(parse_json(json_text, "tokenizer.json"));
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_file(const std::filesystem::path& path) {
  std::filesystem::path file = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) file = path / "tokenizer.json";
  SIEVE_CHECK(std::filesystem::is_regular_file(file, ec), "tokenizer: '{}' does not exist",
              file.string());
  auto impl = std::make_unique<Impl>();
  try {
    impl->load(parse_json(read_whole_file(file, "tokenizer"), "'" + file.string() + "'"));
  } catch (const Error& e) {
    SIEVE_FAIL("{} (in '{}')", e.what(), file.string());
  }
  Tokenizer tokenizer(std::move(impl));
  Impl& m = *tokenizer.impl_;

  // BOS/EOS from the files next to tokenizer.json, most specific first.
  const std::filesystem::path dir = file.parent_path();
  auto side_file = [&](const char* name) -> Json {
    const std::filesystem::path p = dir / name;
    if (!std::filesystem::is_regular_file(p, ec)) return Json();
    return parse_json(read_whole_file(p, "tokenizer"), "'" + p.string() + "'");
  };
  auto token_id = [&](const Json& v) -> std::optional<int32_t> {
    const Json& content = v.is_object() ? v.value("content", Json()) : v;
    if (!content.is_string()) return std::nullopt;
    return tokenizer.token_to_id(content.get<std::string>());
  };
  auto add_eos = [&](int32_t id) {
    if (std::find(m.eos.begin(), m.eos.end(), id) == m.eos.end()) m.eos.push_back(id);
  };
  auto add_eos_ids = [&](const Json& v) {
    if (v.is_number_integer()) add_eos(v.get<int32_t>());
    if (v.is_array()) {
      for (const Json& x : v) {
        if (x.is_number_integer()) add_eos(x.get<int32_t>());
      }
    }
  };
  std::optional<int32_t> bos;
  const Json tokenizer_config = side_file("tokenizer_config.json");
  if (tokenizer_config.is_object()) {
    if (tokenizer_config.contains("bos_token")) bos = token_id(tokenizer_config["bos_token"]);
    if (tokenizer_config.contains("eos_token")) {
      if (auto id = token_id(tokenizer_config["eos_token"])) add_eos(*id);
    }
  }
  for (const char* name : {"config.json", "generation_config.json"}) {
    const Json config = side_file(name);
    if (!config.is_object()) continue;
    if (!bos && config.contains("bos_token_id") && config["bos_token_id"].is_number_integer()) {
      bos = config["bos_token_id"].get<int32_t>();
    }
    if (config.contains("eos_token_id")) add_eos_ids(config["eos_token_id"]);
  }
  if (bos) m.bos = bos;
  return tokenizer;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& m = *impl_;
  std::string input = uc::is_valid_utf8(text) ? std::string(text) : uc::to_valid_utf8(text);

  // 1. Added tokens matched in the raw text; 2. normalize the rest; 3. added tokens matched in
  // the normalized text.
  std::vector<Segment> raw{{std::move(input), true, -1}};
  std::vector<Segment> segments;
  m.split_added(raw, m.raw_trie, segments);
  if (m.normalizer) {
    for (Segment& s : segments) {
      if (s.token_id < 0) m.normalizer->normalize(s.text);
    }
  }
  std::vector<Segment> final_segments;
  m.split_added(segments, m.normalized_trie, final_segments);

  // 4. Pre-tokenize and run the model on each remaining piece.
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<tok::Piece> pieces;
  for (Segment& s : final_segments) {
    if (s.token_id >= 0) {
      ids.push_back(s.token_id);
      continue;
    }
    if (s.text.empty()) continue;
    pieces.clear();
    pieces.push_back({std::move(s.text), s.at_origin});
    if (m.pre_tokenizer) m.pre_tokenizer->pre_tokenize(pieces);
    for (const tok::Piece& p : pieces) m.model->tokenize(p.text, ids);
  }

  // 5. Post-processing templates.
  if (add_special_tokens) {
    for (const Template& t : m.post_processors) {
      std::vector<int32_t> next;
      next.reserve(ids.size() + 4);
      for (const TemplateItem& item : t) {
        const auto& src = item.is_sequence ? ids : item.ids;
        next.insert(next.end(), src.begin(), src.end());
      }
      ids = std::move(next);
    }
  }
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids) {
    const std::string* token = m.token_of(id);
    SIEVE_CHECK(token != nullptr, "tokenizer: token id {} is out of range (vocabulary size {})", id,
                m.vocab_size);
    if (skip_special_tokens && m.added_by_id.count(id) && m.special_contents.count(*token)) continue;
    tokens.push_back(*token);
  }
  if (!m.decoder) {
    std::string out;
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  m.decoder->decode_chain(tokens);
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (const auto it = impl_->added_by_content.find(std::string(token));
      it != impl_->added_by_content.end()) {
    return impl_->added[static_cast<std::size_t>(it->second)].id;
  }
  return impl_->model->token_to_id(token);
}

const std::string& Tokenizer::id_to_token(int32_t id) const {
  const std::string* token = impl_->token_of(id);
  SIEVE_CHECK(token != nullptr, "tokenizer: token id {} is out of range (vocabulary size {})", id,
              impl_->vocab_size);
  return *token;
}

int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

bool Tokenizer::is_special(int32_t id) const {
  const auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[static_cast<std::size_t>(it->second)].special;
}

const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added; }

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }

const std::vector<int32_t>& Tokenizer::eos_ids() const { return impl_->eos; }

bool Tokenizer::is_eos(int32_t id) const {
  return std::find(impl_->eos.begin(), impl_->eos.end(), id) != impl_->eos.end();
}

// ---------------------------------------------------------------------------------------------

TokenStream::TokenStream(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(&tokenizer), skip_special_(skip_special_tokens) {}

std::string TokenStream::push(int32_t id) {
  window_.push_back(id);
  const std::string text = tokenizer_->decode(window_, skip_special_);
  // A trailing U+FFFD may be a character whose remaining bytes are still to come.
  if (text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0) return {};
  std::string out = text.size() > emitted_ ? text.substr(emitted_) : std::string();
  emitted_ = std::max(emitted_, text.size());
  // Keep a few ids of context (decoders treat the first token specially) and drop the rest, at a
  // cut whose decode is a suffix of the full text (never inside a run of <0xXX> byte tokens,
  // which ByteFallback decodes as a whole).
  constexpr std::size_t kMaxWindow = 16, kKeep = 4;
  if (window_.size() > kMaxWindow) {
    for (std::size_t cut = window_.size() - kKeep; cut > 0; --cut) {
      const std::span<const int32_t> kept(window_.data() + cut, window_.size() - cut);
      const std::string kept_text = tokenizer_->decode(kept, skip_special_);
      if (kept_text.size() <= text.size() &&
          text.compare(text.size() - kept_text.size(), kept_text.size(), kept_text) == 0) {
        window_.erase(window_.begin(), window_.begin() + static_cast<std::ptrdiff_t>(cut));
        emitted_ = kept_text.size();
        break;
      }
    }
  }
  return out;
}

std::string TokenStream::finish() {
  const std::string text = tokenizer_->decode(window_, skip_special_);
  std::string out = text.size() > emitted_ ? text.substr(emitted_) : std::string();
  window_.clear();
  emitted_ = 0;
  return out;
}

}  // namespace sieve::engine
