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
  struct Granularity {
    int64_t c_q = 16, c_k = 16;  ///< query and key pooling factors (divide block_q / block_k)
    bool operator==(const Granularity&) const = default;
  };
  /// Granularities, written "cq:ck" (or "c" for cq = ck = c) in settings, comma-separated. Each
  /// costs ~1/(c_q c_k) of the dense QK^T product. A pooled query never spans two query blocks:
  /// c_q above block_q pools whole query blocks (UniSparseSelector::levels()).
  /// Default: 128:4 (one composite query per 128-row block against fine 4-token key groups, so
  /// single-token stripes survive; 64:4 where block_q is 64) and 64:16 (two composite queries
  /// per block against 16-token key groups: finer query detail than 128:4 at a quarter of its
  /// cost). 128:4 replaced 64:4 in session 9 and 64:16 replaced 16:16 in session 10, each at
  /// about the same recall and density on the planted suite and the real dumps and at a lower
  /// cost (64:16: a little less recall at 8K and +0.09 points of perplexity on codelm-b;
  /// docs/methods/attention-selectors.md).
  std::vector<Granularity> granularities = {{128, 4}, {64, 16}};
  /// Block Top-p threshold in (0, 1].
  double top_p = 0.97;
  /// How per-granularity block maps are combined: kMax keeps a block that any granularity
  /// finds important (sharp stripes from fine pooling, broad regions from coarse); kMean averages.
  enum class Combine { kMax, kMean } combine = Combine::kMax;
  /// Score pooled keys with the diagonal-Gaussian log-sum-exp correction
  /// scale^2/2 sum_d q_d^2 var_d (variance of the keys pooled together), so that spread-out
  /// groups keep the mass exp(mean logit) misses. Doubles the GEMM width.
  bool moments = true;
};

class UniSparseSelector final : public PatternSelector {
 public:
  explicit UniSparseSelector(UniSparseConfig config = {});
  std::string name() const override { return "unisparse"; }
  void set(std::string_view key, std::string_view value) override;
  std::map<std::string, std::string> settings() const override;
  void validate_config() const override;
  const UniSparseConfig& config() const { return config_; }
  /// The granularities as estimated: c_q capped at block_q (a pooled query stays inside its
  /// query block, which keeps the selection query independent).
  std::vector<UniSparseConfig::Granularity> levels() const;

 protected:
  SparsePattern estimate(const TensorView& q, const TensorView& k, const AttentionOptions& opts,
                         const AttentionShape& shape) const override;

 private:
  UniSparseConfig config_;
};

}  // namespace sieve::attention
