// MInference vertical-slash (Jiang et al., NeurIPS 2024; microsoft/MInference): the last last_q
// queries are scored exactly against every key (causal, f32 softmax); column sums give "vertical"
// scores, sums along diagonals give "slash" scores. The first 30 columns and last 100 diagonals
// are forced; the top vertical_size columns (>= 30) become token columns and the top slash_size
// diagonals (>= 50) become the key blocks they cross in every query block (as the index kernel
// merges slash lines into 64-wide ranges). Budgets are absolute token counts, per head or shared.
// Input q [Hq, Lq, D], k [Hkv, Lk, D]; output token columns + block rows (64 x 64 by default).
#pragma once

#include "sieve/attention/selector.h"

#include <cstdint>
#include <vector>

namespace sieve::attention {

struct VerticalSlashConfig {
  /// Probe rows: the last last_q queries (64 in MInference).
  int64_t last_q = 64;
  /// Vertical (column) budget in tokens: one value for every head or one per query head.
  /// (1000, 6096) is the default XAttention's benchmark uses for MInference.
  std::vector<int64_t> vertical_size = {1000};
  /// Slash (diagonal) budget in tokens, one value or one per query head.
  std::vector<int64_t> slash_size = {6096};
  /// Always-kept first columns and last diagonals (30 and 100 in MInference).
  int64_t force_columns = 30;
  int64_t force_diagonals = 100;
};

class VerticalSlashSelector final : public PatternSelector {
 public:
  explicit VerticalSlashSelector(VerticalSlashConfig config = {});
  std::string name() const override { return "vslash"; }
  void set(std::string_view key, std::string_view value) override;
  std::map<std::string, std::string> settings() const override;
  void validate_config() const override;
  const VerticalSlashConfig& config() const { return config_; }

 protected:
  SparsePattern estimate(const TensorView& q, const TensorView& k, const AttentionOptions& opts,
                         const AttentionShape& shape) const override;

 private:
  VerticalSlashConfig config_;
};

}  // namespace sieve::attention
