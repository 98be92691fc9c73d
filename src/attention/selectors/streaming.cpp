#include "sieve/attention/selectors/streaming.h"

#include "sieve/core/error.h"

#include <algorithm>

namespace sieve::attention {

void StreamingSelector::set(std::string_view key, std::string_view value) {
  const std::string n = name();
  if (key == "mode") {
    if (value == "block") config_.mode = StreamingConfig::Mode::kBlock;
    else if (value == "token") config_.mode = StreamingConfig::Mode::kToken;
    else SIEVE_FAIL("selector 'streaming': mode must be block or token, got '{}'", value);
  } else if (key == "sink_blocks") {
    config_.sink_blocks = parse_setting_int(n, key, value);
  } else if (key == "local_blocks") {
    config_.local_blocks = parse_setting_int(n, key, value);
  } else if (key == "sink_tokens") {
    config_.sink_tokens = parse_setting_int(n, key, value);
  } else if (key == "local_tokens") {
    config_.local_tokens = parse_setting_int(n, key, value);
  } else {
    PatternSelector::set(key, value);
    return;
  }
  validate_config();
}

std::map<std::string, std::string> StreamingSelector::settings() const {
  auto s = PatternSelector::settings();
  s["mode"] = config_.mode == StreamingConfig::Mode::kBlock ? "block" : "token";
  s["sink_blocks"] = std::to_string(config_.sink_blocks);
  s["local_blocks"] = std::to_string(config_.local_blocks);
  s["sink_tokens"] = std::to_string(config_.sink_tokens);
  s["local_tokens"] = std::to_string(config_.local_tokens);
  return s;
}

void StreamingSelector::validate_config() const {
  PatternSelector::validate_config();
  SIEVE_CHECK(config_.sink_blocks >= 0 && config_.sink_tokens >= 0,
              "selector 'streaming': sink_blocks ({}) and sink_tokens ({}) must be >= 0",
              config_.sink_blocks, config_.sink_tokens);
  SIEVE_CHECK(config_.local_blocks >= 1 && config_.local_tokens >= 1,
              "selector 'streaming': local_blocks ({}) and local_tokens ({}) must be >= 1 (the "
              "diagonal is always kept)",
              config_.local_blocks, config_.local_tokens);
}

SparsePattern StreamingSelector::estimate(const TensorView&, const TensorView&,
                                          const AttentionOptions& opts,
                                          const AttentionShape& s) const {
  SparsePattern p;
  p.seq_len_q = s.seq_len_q;
  p.seq_len_k = s.seq_len_k;
  p.block_q = common_.block_q;
  p.block_k = common_.block_k;
  p.per_kv_head = common_.share_kv_head;
  p.num_heads = int(p.per_kv_head ? s.num_heads_kv : s.num_heads_q);
  p.causal = opts.causal;
  const int64_t nqb = p.num_q_blocks(), nkb = p.num_k_blocks();
  p.block_indptr.assign(1, 0);
  if (config_.mode == StreamingConfig::Mode::kToken) {
    p.block_indptr.assign(size_t(p.num_heads * nqb + 1), 0);
    p.band = config_.local_tokens;
    const int64_t sink = std::min(config_.sink_tokens, s.seq_len_k);
    p.column_indptr.push_back(0);
    for (int h = 0; h < p.num_heads; ++h) {
      for (int64_t j = 0; j < sink; ++j) p.columns.push_back(int32_t(j));
      p.column_indptr.push_back(int32_t(p.columns.size()));
    }
    return p;
  }
  // Block mode. The "diagonal" key block of a query block is the last one it can see: with
  // bottom-right alignment that is the block of its last row's absolute position (all blocks when
  // not causal, where the local window then trails the end of the keys).
  std::vector<int32_t> row;
  for (int h = 0; h < p.num_heads; ++h) {
    for (int64_t qb = 0; qb < nqb; ++qb) {
      const int64_t last_row = std::min((qb + 1) * p.block_q, s.seq_len_q) - 1;
      const int64_t diag =
          opts.causal ? std::min(nkb - 1, (last_row + s.q_offset()) / p.block_k) : nkb - 1;
      row.clear();
      for (int64_t kb = 0; kb < std::min(config_.sink_blocks, diag + 1); ++kb) row.push_back(int32_t(kb));
      for (int64_t kb = std::max<int64_t>(0, diag - config_.local_blocks + 1); kb <= diag; ++kb)
        if (kb >= config_.sink_blocks) row.push_back(int32_t(kb));
      p.block_indices.insert(p.block_indices.end(), row.begin(), row.end());
      p.block_indptr.push_back(int32_t(p.block_indices.size()));
    }
  }
  return p;
}

}  // namespace sieve::attention
