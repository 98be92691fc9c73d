// UniSparse (Liu, Cao, He; arXiv 2512.14082): unified sparse attention via multi-granularity
// compression. Confirmed: "composite tokens" made by average pooling of Q (factor c_q) and K
// (factor c_k), attention computed on the compressed sequences, dynamic block-level selection.
// Reconstructed (named parameters): the set of granularities, how their maps are combined and the
// block Top-p rule. Each granularity c gives a softmax of pooled Q x pooled K (causal by pooled
// position), summed into block scores and normalized per query block; the maps are combined
// (max or mean) and each (head, query block) keeps the fewest blocks reaching top_p of the row.
// Input q [Hq, Lq, D], k [Hkv, Lk, D]; output a block pattern.
#pragma once

#include "sieve/attention/selector.h"

#include <cstdint>
#include <vector>

namespace sieve::attention {

struct UniSparseConfig {
  /// Pooling factors (c_q = c_k = c per granularity); each divides block_q and block_k. The
  /// finest one dominates the cost: ~1/(2 c^2) of dense causal attention.
  std::vector<int64_t> granularities = {16, 64, 128};
  /// Block Top-p threshold in (0, 1].
  double top_p = 0.95;
  /// How per-granularity block maps are combined: kMax keeps a block that any granularity
  /// finds important (sharp stripes from fine pooling, broad regions from coarse); kMean averages.
  enum class Combine { kMax, kMean } combine = Combine::kMax;
};

class UniSparseSelector final : public PatternSelector {
 public:
  explicit UniSparseSelector(UniSparseConfig config = {});
  std::string name() const override { return "unisparse"; }
  void set(std::string_view key, std::string_view value) override;
  std::map<std::string, std::string> settings() const override;
  void validate_config() const override;
  const UniSparseConfig& config() const { return config_; }

 protected:
  SparsePattern estimate(const TensorView& q, const TensorView& k, const AttentionOptions& opts,
                         const AttentionShape& shape) const override;

 private:
  UniSparseConfig config_;
};

}  // namespace sieve::attention
