// The BPE model of tokenizer.json: vocab + ranked merges (Sennrich et al. 2016, as run by
// Hugging Face `tokenizers`). A word starts as one symbol per character (or <0xXX> byte tokens /
// unk when the character is not in the vocabulary); then the adjacent pair with the lowest merge
// rank (leftmost on ties) is merged until no pair has a merge. Symbols form a linked list and
// candidate pairs sit in a min-heap; stale heap entries are detected by re-checking the pair.
#include <algorithm>
#include <queue>

#include "sieve/core/error.h"
#include "sieve/engine/unicode.h"
#include "tokenizer_internal.h"

namespace sieve::engine::tok {

namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// Splits a merge entry: "a b" (older files) or ["a", "b"] (newer files).
std::pair<std::string, std::string> parse_merge(const Json& merge, std::size_t rank) {
  if (merge.is_string()) {
    const std::string s = merge.get<std::string>();
    const std::size_t space = s.find(' ');
    SIEVE_CHECK(space != std::string::npos && s.find(' ', space + 1) == std::string::npos,
                "tokenizer.json: model.merges[{}] = '{}' must be two tokens separated by one space",
                rank, s);
    return {s.substr(0, space), s.substr(space + 1)};
  }
  SIEVE_CHECK(merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string(),
              "tokenizer.json: model.merges[{}] must be a string \"a b\" or a pair [\"a\", \"b\"]",
              rank);
  return {merge[0].get<std::string>(), merge[1].get<std::string>()};
}

struct Symbol {
  int32_t id;
  int32_t prev, next;  // neighbours in the linked list, -1 at the ends
  bool removed;
};

struct Candidate {
  int32_t rank, pos, new_id;
  // Min-heap order: lowest rank first, then leftmost position.
  bool operator<(const Candidate& o) const {
    return rank != o.rank ? rank > o.rank : pos > o.pos;
  }
};

}  // namespace

BpeModel::BpeModel(const Json& spec) {
  constexpr std::string_view where = "model (BPE)";
  const Json& vocab = require(spec, "vocab", where);
  SIEVE_CHECK(vocab.is_object(), "tokenizer.json: model.vocab must be an object token -> id");
  constexpr int64_t kMaxId = (int64_t{1} << 31) - 2;
  int64_t max_id = -1;
  for (const auto& [token, id] : vocab.items()) {
    SIEVE_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() <= kMaxId,
                "tokenizer.json: model.vocab['{}'] must be a non-negative integer id", token);
    max_id = std::max(max_id, id.get<int64_t>());
  }
  SIEVE_CHECK(max_id < (int64_t{64} << 20), "tokenizer.json: model.vocab id {} is implausibly large",
              max_id);
  id_to_token_.resize(static_cast<std::size_t>(max_id + 1));
  has_id_.assign(static_cast<std::size_t>(max_id + 1), false);
  vocab_.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    const auto i = id.get<int32_t>();
    vocab_.emplace(token, i);
    id_to_token_[static_cast<std::size_t>(i)] = token;
    has_id_[static_cast<std::size_t>(i)] = true;
  }

  auto optional_string = [&](const char* key) -> std::string {
    if (!spec.contains(key) || spec[key].is_null()) return {};
    SIEVE_CHECK(spec[key].is_string(), "tokenizer.json: model.{} must be a string or null", key);
    return spec[key].get<std::string>();
  };
  continuing_subword_prefix_ = optional_string("continuing_subword_prefix");
  end_of_word_suffix_ = optional_string("end_of_word_suffix");
  if (const std::string unk = optional_string("unk_token"); !unk.empty()) {
    const auto it = vocab_.find(unk);
    SIEVE_CHECK(it != vocab_.end(), "tokenizer.json: model.unk_token '{}' is not in model.vocab", unk);
    unk_id_ = it->second;
  }
  fuse_unk_ = get_bool(spec, "fuse_unk", false, where);
  byte_fallback_ = get_bool(spec, "byte_fallback", false, where);
  ignore_merges_ = get_bool(spec, "ignore_merges", false, where);
  // dropout is a training-time regulariser; inference (dropout null or 0) is deterministic.
  if (spec.contains("dropout") && !spec["dropout"].is_null()) {
    SIEVE_CHECK(spec["dropout"].is_number() && spec["dropout"].get<double>() == 0.0,
                "tokenizer.json: model.dropout = {} is not supported (only null or 0)",
                spec["dropout"].dump());
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }

  const Json& merges = require(spec, "merges", where);
  SIEVE_CHECK(merges.is_array(), "tokenizer.json: model.merges must be an array");
  merges_.reserve(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const auto [a, b] = parse_merge(merges[rank], rank);
    const auto ia = vocab_.find(a);
    const auto ib = vocab_.find(b);
    SIEVE_CHECK(ia != vocab_.end(), "tokenizer.json: model.merges[{}]: token '{}' is not in the "
                "vocab", rank, a);
    SIEVE_CHECK(ib != vocab_.end(), "tokenizer.json: model.merges[{}]: token '{}' is not in the "
                "vocab", rank, b);
    std::string merged = a;
    const std::size_t skip =
        b.compare(0, continuing_subword_prefix_.size(), continuing_subword_prefix_) == 0
            ? continuing_subword_prefix_.size() : 0;
    merged.append(b, skip, std::string::npos);
    const auto im = vocab_.find(merged);
    SIEVE_CHECK(im != vocab_.end(), "tokenizer.json: model.merges[{}]: merged token '{}' is not in "
                "the vocab", rank, merged);
    // A repeated pair keeps its last rank, as in tokenizers (a map insert per merge).
    merges_[pair_key(ia->second, ib->second)] = {static_cast<int32_t>(rank), im->second};
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= id_to_token_.size() ||
      !has_id_[static_cast<std::size_t>(id)]) {
    return nullptr;
  }
  return &id_to_token_[static_cast<std::size_t>(id)];
}

const BpeModel::MergeInfo* BpeModel::find_merge(int32_t left, int32_t right) const {
  const auto it = merges_.find(pair_key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kCacheMaxWordBytes;
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (const auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const std::size_t first = out.size();
  merge_word(word, out);
  if (cacheable) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity) {
      cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + static_cast<std::ptrdiff_t>(first), out.end()));
    }
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  // 1. Initial symbols: one per character, with tokenizers' prefix/suffix, byte-fallback and
  //    unk rules (a pending unk is only flushed by the next known character or the end).
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int32_t id) {
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, -1, false});
    if (n > 0) symbols[static_cast<std::size_t>(n - 1)].next = n;
  };
  int32_t pending_unk = -1;
  std::string piece;
  for (std::size_t i = 0; i < word.size();) {
    const std::size_t begin = i;
    unicode::next_code_point(word, i);
    piece.clear();
    if (begin > 0) piece += continuing_subword_prefix_;
    piece.append(word.substr(begin, i - begin));
    if (i == word.size()) piece += end_of_word_suffix_;

    if (const auto it = vocab_.find(piece); it != vocab_.end()) {
      if (pending_unk >= 0) add(pending_unk);
      pending_unk = -1;
      add(it->second);
      continue;
    }
    if (byte_fallback_ &&
        std::all_of(piece.begin(), piece.end(),
                    [&](char c) { return byte_ids_[static_cast<uint8_t>(c)] >= 0; })) {
      for (char c : piece) add(byte_ids_[static_cast<uint8_t>(c)]);
      continue;
    }
    if (unk_id_) {
      if (pending_unk >= 0 && !fuse_unk_) add(pending_unk);
      pending_unk = *unk_id_;
    }
    // Without unk the character is dropped, as tokenizers does.
  }
  if (pending_unk >= 0) add(pending_unk);

  // 2. Merge by rank.
  std::priority_queue<Candidate> heap;
  for (std::size_t p = 0; p + 1 < symbols.size(); ++p) {
    if (const MergeInfo* m = find_merge(symbols[p].id, symbols[p + 1].id)) {
      heap.push({m->rank, static_cast<int32_t>(p), m->new_id});
    }
  }
  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    Symbol& left = symbols[static_cast<std::size_t>(top.pos)];
    if (left.removed || left.next < 0) continue;
    Symbol& right = symbols[static_cast<std::size_t>(left.next)];
    const MergeInfo* current = find_merge(left.id, right.id);
    if (current == nullptr || current->new_id != top.new_id) continue;  // stale entry
    left.id = top.new_id;
    right.removed = true;
    left.next = right.next;
    if (left.next >= 0) symbols[static_cast<std::size_t>(left.next)].prev = top.pos;
    if (left.prev >= 0) {
      if (const MergeInfo* m = find_merge(symbols[static_cast<std::size_t>(left.prev)].id, left.id)) {
        heap.push({m->rank, left.prev, m->new_id});
      }
    }
    if (left.next >= 0) {
      if (const MergeInfo* m = find_merge(left.id, symbols[static_cast<std::size_t>(left.next)].id)) {
        heap.push({m->rank, top.pos, m->new_id});
      }
    }
  }
  for (const Symbol& s : symbols) {
    if (!s.removed) out.push_back(s.id);
  }
}

}  // namespace sieve::engine::tok
