// The `dense` selector: every causal block, no estimation. It is the control every sparse method is
// compared with, and the pattern that makes block_sparse_attention compute full attention.
// Input q [Hq, Lq, D], k [Hkv, Lk, D]; output SparsePattern::dense over block_q x block_k tiles
// (one pattern per KV head when share_kv_head is set). Settings: the common keys only.
#pragma once

#include "sieve/attention/selector.h"

namespace sieve::attention {

class DenseSelector final : public PatternSelector {
 public:
  std::string name() const override { return "dense"; }

 protected:
  SparsePattern estimate(const TensorView& q, const TensorView& k, const AttentionOptions& opts,
                         const AttentionShape& shape) const override;
};

}  // namespace sieve::attention
