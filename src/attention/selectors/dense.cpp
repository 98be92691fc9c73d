#include "sieve/attention/selectors/dense.h"

namespace sieve::attention {

SparsePattern DenseSelector::estimate(const TensorView&, const TensorView&,
                                      const AttentionOptions& opts, const AttentionShape& s) const {
  const bool share = common_.share_kv_head;
  return SparsePattern::dense(int(share ? s.num_heads_kv : s.num_heads_q), s.seq_len_q, s.seq_len_k,
                              common_.block_q, common_.block_k, opts.causal, share);
}

}  // namespace sieve::attention
