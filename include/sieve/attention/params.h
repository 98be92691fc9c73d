// Attention problem description shared by every executor and selector.
//
// Layout convention (canonical, see docs/architecture.md):
//   q:   [num_heads_q,  seq_len_q, head_dim]
//   k,v: [num_heads_kv, seq_len_k, head_dim]     head_dim contiguous (stride 1)
//   out: [num_heads_q,  seq_len_q, head_dim]
//   lse: [num_heads_q,  seq_len_q] f32, natural-log log-sum-exp of the scaled scores (optional)
// GQA: num_heads_q % num_heads_kv == 0; query head h reads KV head h / (num_heads_q / num_heads_kv).
// Causal masking is bottom-right aligned (as FlashAttention-2): query i sits at absolute position
// i + (seq_len_k - seq_len_q), so prefill (seq_len_q == seq_len_k) is the usual lower triangle and a
// chunk of new queries against a longer KV cache sees every cached key.
#pragma once

#include "sieve/core/tensor.h"

#include <cmath>
#include <cstdint>

namespace sieve::attention {

struct AttentionOptions {
  bool causal = true;
  /// Softmax scale; 0 means 1/sqrt(head_dim).
  float scale = 0.0f;
};

struct AttentionShape {
  int64_t num_heads_q = 0, num_heads_kv = 0, seq_len_q = 0, seq_len_k = 0, head_dim = 0;
  int64_t group_size() const { return num_heads_q / num_heads_kv; }
  /// Offset of query row 0 in absolute positions (bottom-right causal alignment).
  int64_t q_offset() const { return seq_len_k - seq_len_q; }
};

/// Validates q/k/v (and out/lse when given) against the layout above and returns the shape.
/// Throws sieve::Error naming the offending tensor and dimension.
AttentionShape check_attention_inputs(const TensorView& q, const TensorView& k, const TensorView& v,
                                      const TensorView* maybe_out = nullptr,
                                      const TensorView* maybe_lse = nullptr);

inline float effective_scale(const AttentionOptions& o, int64_t head_dim) {
  return o.scale > 0.0f ? o.scale : 1.0f / std::sqrt(float(head_dim));
}

}  // namespace sieve::attention
