// XAttention (Xu et al., ICML 2025; mit-han-lab/x-attention): block-sparse attention from strided
// antidiagonal scoring. For query stride i and key stride j (S rows each) the score is the
// antidiagonal sum sum_t q[iS+S-1-t] . k[jS+t], scaled by 1/(sqrt(D) S); a row softmax over key
// strides (causal by stride) is summed into block_q x block_k blocks and each (head, query block)
// keeps the fewest blocks whose mass reaches tau of the row (find_blocks_chunked: sink and diagonal
// first, the crossing block included). Estimation costs ~1/(2S) of dense causal attention.
// Input q [Hq, Lq, D], k [Hkv, Lk, D]; output a block pattern.
#pragma once

#include "sieve/attention/selector.h"

namespace sieve::attention {

struct XAttentionConfig {
  /// Antidiagonal stride S (8 for accuracy, 16 for speed in the paper's code). Divides the blocks.
  int stride = 8;
  /// Cumulative threshold tau in (0, 1] (code default 0.8, 0.9 in most experiments).
  double tau = 0.9;
};

class XAttentionSelector final : public PatternSelector {
 public:
  explicit XAttentionSelector(XAttentionConfig config = {});
  std::string name() const override { return "xattn"; }
  void set(std::string_view key, std::string_view value) override;
  std::map<std::string, std::string> settings() const override;
  void validate_config() const override;
  const XAttentionConfig& config() const { return config_; }

 protected:
  SparsePattern estimate(const TensorView& q, const TensorView& k, const AttentionOptions& opts,
                         const AttentionShape& shape) const override;

 private:
  XAttentionConfig config_;
};

}  // namespace sieve::attention
