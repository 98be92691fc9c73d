// FlexPrefill (Lai et al., ICLR 2025; bytedance/FlexPrefill): context-aware sparse attention.
// The last block of queries is scored exactly (causal f32 softmax); its mean column scores
// ("vertical") and diagonal scores ("slash") give budgets: the fewest tokens covering gamma of
// each, in blocks (// block + 1), clamped to [min_budget, max_budget]. A head is "query-aware" when
// the square-root Jensen-Shannon divergence between the pooled estimate
// softmax(mean(last q) . meanpool(K)) and the block-pooled vertical scores is below tau: it then
// also gets pooled block attention softmax(meanpool(Q) . meanpool(K)) for every query block, kept
// globally until the cumulative mass reaches gamma * rows, with vertical/slash budgets at
// min_budget. Otherwise the top vertical blocks and slash diagonals are expanded to blocks. The
// first block and the diagonal are forced. Input q [Hq, Lq, D], k [Hkv, Lk, D]; output blocks.
#pragma once

#include "sieve/attention/selector.h"

#include <cstdint>

namespace sieve::attention {

struct FlexPrefillConfig {
  /// Cumulative coverage gamma in (0, 1] (0.95 in the RULER scripts, 0.9 in the README).
  double gamma = 0.95;
  /// Jensen-Shannon threshold: sqrt(JSD) < tau marks a query-aware head (0.1).
  double tau = 0.1;
  /// Budget clamp in tokens (1024 in the RULER scripts); max_budget 0 means none.
  int64_t min_budget = 1024;
  int64_t max_budget = 0;
};

class FlexPrefillSelector final : public PatternSelector {
 public:
  explicit FlexPrefillSelector(FlexPrefillConfig config = {});
  std::string name() const override { return "flexprefill"; }
  void set(std::string_view key, std::string_view value) override;
  std::map<std::string, std::string> settings() const override;
  void validate_config() const override;
  const FlexPrefillConfig& config() const { return config_; }

 protected:
  SparsePattern estimate(const TensorView& q, const TensorView& k, const AttentionOptions& opts,
                         const AttentionShape& shape) const override;

 private:
  FlexPrefillConfig config_;
};

}  // namespace sieve::attention
