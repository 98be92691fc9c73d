// PatternSelector: the shared settings (SelectorCommon), input checks, the dense fallback, the
// GQA-group union (share_kv_head) and validation of what a selector returns.
#include "sieve/attention/selector.h"

#include "sieve/core/error.h"

#include <algorithm>
#include <charconv>
#include <string>

namespace sieve::attention {

int64_t parse_setting_int(std::string_view selector, std::string_view key, std::string_view value) {
  int64_t v = 0;
  const char* end = value.data() + value.size();
  const auto [ptr, ec] = std::from_chars(value.data(), end, v);
  SIEVE_CHECK(!value.empty() && ec == std::errc() && ptr == end,
              "selector '{}': setting '{}' needs an integer, got '{}'", selector, key, value);
  return v;
}

bool parse_setting_bool(std::string_view selector, std::string_view key, std::string_view value) {
  if (value == "true" || value == "1" || value == "yes" || value == "on") return true;
  if (value == "false" || value == "0" || value == "no" || value == "off") return false;
  SIEVE_FAIL("selector '{}': setting '{}' needs true or false, got '{}'", selector, key, value);
}

void PatternSelector::set(std::string_view key, std::string_view value) {
  const std::string n = name();
  if (key == "block_q" || key == "block_k") {
    const int64_t v = parse_setting_int(n, key, value);
    SIEVE_CHECK(v >= 1 && v <= 65536, "selector '{}': {} must be in [1, 65536], got {}", n, key, v);
    (key == "block_q" ? common_.block_q : common_.block_k) = int(v);
  } else if (key == "dense_below") {
    const int64_t v = parse_setting_int(n, key, value);
    SIEVE_CHECK(v >= 0, "selector '{}': dense_below must be >= 0, got {}", n, v);
    common_.dense_below = v;
  } else if (key == "share_kv_head") {
    common_.share_kv_head = parse_setting_bool(n, key, value);
  } else {
    std::string known;
    for (const auto& [k, v] : settings()) known += (known.empty() ? "" : ", ") + k;
    SIEVE_FAIL("selector '{}': unknown setting '{}' (known: {})", n, key, known);
  }
}

std::map<std::string, std::string> PatternSelector::settings() const {
  return {{"block_q", std::to_string(common_.block_q)},
          {"block_k", std::to_string(common_.block_k)},
          {"dense_below", std::to_string(common_.dense_below)},
          {"share_kv_head", common_.share_kv_head ? "true" : "false"}};
}

void PatternSelector::validate_config() const {
  SIEVE_CHECK(common_.block_q >= 1 && common_.block_k >= 1,
              "selector '{}': block sizes must be positive (block_q {}, block_k {})", name(),
              common_.block_q, common_.block_k);
  SIEVE_CHECK(common_.dense_below >= 0, "selector '{}': dense_below must be >= 0", name());
}

namespace {

// One pattern per KV head: the union of the patterns of its query heads (blocks and columns;
// the band is a single scalar and is kept as is).
SparsePattern union_over_groups(const SparsePattern& p, int64_t group) {
  SparsePattern u = p;
  u.num_heads = int(p.num_heads / group);
  u.per_kv_head = true;
  u.block_indptr.assign(1, 0);
  u.block_indices.clear();
  const int64_t nqb = p.num_q_blocks();
  std::vector<int32_t> merged;
  for (int64_t g = 0; g < u.num_heads; ++g) {
    for (int64_t qb = 0; qb < nqb; ++qb) {
      merged.clear();
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        const int64_t r = p.row(h, qb);
        merged.insert(merged.end(), p.block_indices.begin() + p.block_indptr[r],
                      p.block_indices.begin() + p.block_indptr[r + 1]);
      }
      std::sort(merged.begin(), merged.end());
      merged.erase(std::unique(merged.begin(), merged.end()), merged.end());
      u.block_indices.insert(u.block_indices.end(), merged.begin(), merged.end());
      u.block_indptr.push_back(int32_t(u.block_indices.size()));
    }
  }
  if (p.has_columns()) {
    u.column_indptr.assign(1, 0);
    u.columns.clear();
    for (int64_t g = 0; g < u.num_heads; ++g) {
      merged.clear();
      for (int64_t h = g * group; h < (g + 1) * group; ++h)
        merged.insert(merged.end(), p.columns.begin() + p.column_indptr[h],
                      p.columns.begin() + p.column_indptr[h + 1]);
      std::sort(merged.begin(), merged.end());
      merged.erase(std::unique(merged.begin(), merged.end()), merged.end());
      u.columns.insert(u.columns.end(), merged.begin(), merged.end());
      u.column_indptr.push_back(int32_t(u.columns.size()));
    }
  }
  return u;
}

}  // namespace

SparsePattern PatternSelector::select(const TensorView& q, const TensorView& k,
                                      const AttentionOptions& opts) const {
  validate_config();
  // v has k's shape by contract; k stands in for it so that one check serves every selector.
  const AttentionShape shape = check_attention_inputs(q, k, k);
  const bool share = common_.share_kv_head;
  if (shape.seq_len_k < common_.dense_below) {
    return SparsePattern::dense(int(share ? shape.num_heads_kv : shape.num_heads_q), shape.seq_len_q,
                                shape.seq_len_k, common_.block_q, common_.block_k, opts.causal,
                                share);
  }
  SparsePattern p = estimate(q, k, opts, shape);
  const int64_t expect_heads = p.per_kv_head ? shape.num_heads_kv : shape.num_heads_q;
  SIEVE_CHECK(p.seq_len_q == shape.seq_len_q && p.seq_len_k == shape.seq_len_k &&
                  p.num_heads == expect_heads && p.causal == opts.causal,
              "selector '{}' returned a pattern for {} heads, lengths {}x{}, causal {}; the input "
              "has {} heads, lengths {}x{}, causal {}",
              name(), p.num_heads, p.seq_len_q, p.seq_len_k, p.causal, expect_heads,
              shape.seq_len_q, shape.seq_len_k, opts.causal);
  SIEVE_CHECK(p.block_q == common_.block_q && p.block_k == common_.block_k,
              "selector '{}' returned {}x{} blocks but is configured for {}x{}", name(), p.block_q,
              p.block_k, common_.block_q, common_.block_k);
  p.validate();
  if (share && !p.per_kv_head && shape.group_size() > 1) p = union_over_groups(p, shape.group_size());
  if (share && !p.per_kv_head) p.per_kv_head = true;  // group size 1: the same heads either way
  return p;
}

}  // namespace sieve::attention
