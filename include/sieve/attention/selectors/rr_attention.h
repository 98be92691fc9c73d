// RRAttention (Liu et al., arXiv 2602.05853): dynamic block-sparse attention via per-head
// round-robin shifts. Confirmed: round-robin query sampling inside each stride S with the sampling
// offset rotating across heads, stride-level aggregation, O(L^2/S^2) estimation, adaptive Top-tau
// block selection, query independence. Reconstructed (named parameters, see
// docs/methods/attention-selectors.md): the offset function, the key aggregation operator and the
// Top-tau rule (XAttention's cumulative rule). Input q [Hq, Lq, D], k [Hkv, Lk, D]; output a block
// pattern of block_q x block_k tiles with the sink and diagonal blocks always kept.
#pragma once

#include "sieve/attention/selector.h"

namespace sieve::attention {

struct RRConfig {
  /// Stride S: one sampled query per S query rows, one aggregated key per S key rows. Must divide
  /// block_q and block_k. Estimation costs ~1/(2 S^2) of dense causal attention.
  /// 16 (the research notes' inferred value): with 5 outliers and tau 0.97 it reaches recall
  /// 0.954 at block density 0.49 on the planted suite at 32K, as S = 8 with 3 outliers does
  /// (0.958 at 0.48), for 0.37x the estimate arithmetic (docs/methods/attention-selectors.md).
  int stride = 16;
  /// Query stride: one sampled query per query_stride query rows (its offset rotating inside
  /// that stride as `offset` says); 0 = `stride`, the paper's single stride. Must divide block_q.
  int query_stride = 0;
  /// Top-tau: per (head, query block) keep the fewest key blocks whose estimated mass reaches
  /// tau of the row total (sink and diagonal counted first). In (0, 1]; 1 keeps every block.
  /// 0.9725 with one outlier (session 25; 0.97 with 0 outliers in sessions 21-24, 0.98 with 5
  /// in sessions 4-20): mean recall 0.958 / 0.953 / 0.958 at 32K / 64K / 128K on the 32-head
  /// H200 suite (docs/methods/attention-selectors.md).
  double tau = 0.9725;
  /// Sampling offset inside stride t for head h: kRotate r = (h + t) mod S (the offset moves
  /// along the sequence and across heads), kHead r = h mod S (fixed per head).
  enum class Offset { kRotate, kHead } offset = Offset::kRotate;
  /// Key aggregation per stride: kMean averages the keys, kSample takes the key at the head's
  /// round-robin offset. Each representative's exp(score) is weighted by the number of keys it
  /// stands for; the query's own (partially visible) stride is scored exactly.
  enum class KeyAgg { kMean, kSample } key_agg = KeyAgg::kMean;
  /// kMean only: the `outliers` keys of each stride farthest from the stride mean are kept as
  /// their own representatives (weight 1) next to the mean of the others, so that single-token
  /// stripes and sinks are not diluted by 1/S. Cost grows by (1 + outliers); still O(L^2/S^2).
  /// 1 since session 25 (0 in sessions 21-24, 5 in sessions 3-20): 3-8 % fewer blocks than the
  /// stride mean alone at the same recall on the GPU suite, for a selector that session 25 made
  /// fit issue 4's 3 % of dense at 32K (docs/methods/attention-selectors.md).
  int outliers = 1;
  /// kMean only: score the mean representative with the diagonal-Gaussian log-sum-exp
  /// correction scale^2/2 sum_d q_d^2 var_d (var over the stride's keys), so that strides whose
  /// keys spread get the mass exp(mean logit) misses. Doubles the GEMM width; still O(L^2/S^2).
  bool moments = true;
  /// With moments: how the spread of a stride's keys enters its mean's score.
  /// kDiagonal: scale^2/2 sum_d q_d^2 var_d, a variance half of D columns (GEMM width 2 D);
  /// kScalar: one variance per stride, the mean over dimensions vbar = sum_d var_d / D, and
  /// scale^2/2 |q|^2 vbar (one extra GEMM column on the CPU, 17-19 % faster there; on the GPU
  /// vbar fills the variance half, the diagonal form's cost). Same density and recall on the
  /// GPU suite, slightly more error on the CPU suite (rel_error 0.134 against 0.125 at 32K), so
  /// diagonal stays the default (docs/methods/attention-selectors.md).
  enum class Variance { kDiagonal, kScalar } variance = Variance::kDiagonal;
  /// Near field in tokens: each sampled query scores the keys of the strides holding the `near`
  /// keys before it exactly (log-sum-exp per stride) instead of by representatives. 0 = only the
  /// query's own stride (causal). Costs near * D per sampled query, O(L near / S) per head.
  int64_t near = 0;
};

class RRSelector final : public PatternSelector {
 public:
  explicit RRSelector(RRConfig config = {});
  std::string name() const override { return "rr"; }
  void set(std::string_view key, std::string_view value) override;
  std::map<std::string, std::string> settings() const override;
  void validate_config() const override;
  const RRConfig& config() const { return config_; }
  /// The sampled-query stride in effect (query_stride, or stride where it is 0).
  int query_stride() const { return config_.query_stride > 0 ? config_.query_stride : config_.stride; }

 protected:
  SparsePattern estimate(const TensorView& q, const TensorView& k, const AttentionOptions& opts,
                         const AttentionShape& shape) const override;

 private:
  RRConfig config_;
};

}  // namespace sieve::attention
