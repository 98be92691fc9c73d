// Deterministic synthetic Q/K/V with planted attention structure.
//
// Each head gets a mixture of: attention sink (key 0..sink_tokens), local band, vertical stripes
// (a few key positions every query attends), slash lines (fixed relative offsets), needles (a key
// matched by a few late queries) and diffuse background. The same (config, seed) always gives the
// same tensors. `planted_pattern` returns the ground-truth structure for recall-of-planted-mass
// tests. Construction and per-kind weights: src/attention/synthetic.cpp; the logits assume the
// default scale 1/sqrt(head_dim).
#pragma once

#include "sieve/attention/params.h"
#include "sieve/attention/sparse_pattern.h"

#include <cstdint>
#include <string>
#include <vector>

namespace sieve::attention {

struct SyntheticConfig {
  int64_t num_heads_q = 8, num_heads_kv = 2, seq_len = 4096, head_dim = 128;
  DType dtype = DType::kBF16;
  uint64_t seed = 0;
  int64_t sink_tokens = 4;
  int64_t local_window = 256;
  int num_stripes = 8;
  int num_slashes = 4;
  int num_needles = 4;
  /// Strength (logit boost) of planted structure over background (the evaluation suite uses
  /// kSuiteStrength, see below).
  float strength = 8.0f;
  /// Standard deviation of the diffuse background logits.
  float background = 1.0f;
};

/// Strength of the planted-structure suite of `sieve attn` and `sieve attn eval`. The background
/// mass grows linearly with the length while planted logits do not: at strength 8 the best
/// possible block selection (oracle) needs 63 % of the causal blocks at 8K (more at 32K) to hold
/// 95 % of the mass, i.e. the suite is diffuse rather than planted. At 12 the oracle needs ~0.28
/// at 8K and ~0.3-0.4 at 32K (docs/attention.md). Library users and tests keep the default 8.
inline constexpr float kSuiteStrength = 12.0f;

struct PlantedStructure {
  std::vector<int64_t> stripe_keys;      // per KV head concatenated, see stripe_indptr
  std::vector<int64_t> stripe_indptr;    // [num_heads_kv + 1]
  std::vector<int64_t> slash_offsets;    // per KV head, same indptr scheme
  std::vector<int64_t> slash_indptr;
  struct Needle { int64_t head_kv, key, query_begin, query_end; };
  std::vector<Needle> needles;
  std::vector<std::string> head_kind;    // per query head: "local", "stripes", "slash", "needle", "mixed", "diffuse"
};

struct SyntheticWorkload {
  Tensor q, k, v;  // [Hq, L, D], [Hkv, L, D], [Hkv, L, D]
  PlantedStructure planted;
};

/// @throws sieve::Error for inconsistent sizes (GQA divisibility, non-positive lengths)
SyntheticWorkload make_synthetic(const SyntheticConfig& config);

/// The checks make_synthetic makes, without generating anything (callers that write output
/// check first).
/// @throws sieve::Error as make_synthetic would
void check_synthetic_config(const SyntheticConfig& config);

/// The planted structure as a per-KV-head pattern (the ground-truth "planted_mask"): columns for
/// sink, stripe and needle keys, the band local_window, and the key blocks crossed by each slash
/// line. Its recall on make_synthetic's tensors measures how much mass the planting explains.
SparsePattern planted_pattern(const SyntheticConfig& config, const PlantedStructure& planted,
                              int block_q = 128, int block_k = 128);

}  // namespace sieve::attention
