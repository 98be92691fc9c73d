// Internal: exact attention of a block of new queries over a KvCache, honouring a tree mask among
// the new tokens and a sliding window by RoPE position. Used for decode steps, speculative tree
// blocks and windowed layers; causal prefill blocks go through sieve::attention executors.
#pragma once

#include "sieve/engine/kv_cache.h"
#include "sieve/engine/tree_mask.h"

#include <cstdint>
#include <span>

namespace sieve::engine::detail {

struct CacheAttentionArgs {
  const float* q = nullptr;       // [num_new, num_heads * head_dim], RoPE applied
  float* out = nullptr;           // [num_new, num_heads * head_dim]
  int64_t num_heads = 0;
  const KvCache* cache = nullptr;  // holds the new rows at [first_new, first_new + num_new)
  int64_t layer = 0;
  int64_t first_new = 0;
  int64_t num_new = 0;
  const TreeMask* maybe_tree = nullptr;  // null: causal among the new tokens
  int64_t window = 0;                    // 0: none; else key visible when pos_q - pos_k < window
  float scale = 1.0f;
};

/// Softmax(scale * q k^T) v over the visible keys, f32 throughout (scores, max, sum).
void cache_attention(const CacheAttentionArgs& a);

}  // namespace sieve::engine::detail
