// Exact reference attention in f64, for tests and metrics (never a fast path).
//
// out[h,i,:] = sum_j softmax_j(scale * q[h,i]·k[g(h),j]) v[g(h),j] over keys j that are causally
// visible and, when a mask is given, mask(h, i, j) is true. Rows with no visible key produce zeros
// and lse = -inf.
#pragma once

#include "sieve/attention/params.h"
#include "sieve/attention/sparse_pattern.h"

#include <functional>
#include <vector>

namespace sieve::attention {

struct ReferenceResult {
  std::vector<double> out;  // [num_heads_q, seq_len_q, head_dim]
  std::vector<double> lse;  // [num_heads_q, seq_len_q]
};

/// mask(h_q, i, j) -> keep; empty function means all (causal) keys.
using KeyMask = std::function<bool(int64_t head_q, int64_t i, int64_t j)>;

ReferenceResult reference_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                                    const AttentionOptions& opts, const KeyMask& mask = {});

/// The mask that keeps exactly what `pattern` keeps (maps query heads to KV heads when the
/// pattern is per KV head).
KeyMask mask_from_pattern(const SparsePattern& pattern, int64_t num_heads_q, int64_t num_heads_kv);

}  // namespace sieve::attention
