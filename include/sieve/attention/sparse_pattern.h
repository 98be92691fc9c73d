// SparsePattern: which (query, key) pairs an executor computes.
//
// Three parts, united (a key is never counted twice when parts overlap):
//   1. block CSR: per (head, query block) a sorted list of key-block ids,
//        block_indptr [num_heads * num_q_blocks + 1], block_indices [nnz];
//      query block qb covers rows [qb*block_q, min((qb+1)*block_q, seq_len_q)),
//      key block kb covers keys [kb*block_k, ...).
//   2. token columns (optional): per head a sorted list of key indices that every query row may
//      attend (vertical stripes), column_indptr [num_heads + 1], columns [nnz_cols].
//   3. local band (optional): key j is kept for query row i when
//      pos(i) - band < j <= pos(i), pos(i) = i + seq_len_k - seq_len_q; band = 0 means none.
// Causal masking still applies on top of every part. Heads are query heads, or KV heads when
// `per_kv_head` is set (one pattern shared by the query heads of a GQA group).
#pragma once

#include <cstdint>
#include <vector>

namespace sieve::attention {

struct SparsePattern {
  int64_t seq_len_q = 0, seq_len_k = 0;
  int block_q = 128, block_k = 128;
  int num_heads = 0;          // query heads, or KV heads when per_kv_head
  bool per_kv_head = false;
  bool causal = true;
  std::vector<int32_t> block_indptr;   // [num_heads * num_q_blocks() + 1]
  std::vector<int32_t> block_indices;  // sorted per row, in [0, num_k_blocks())
  std::vector<int32_t> column_indptr;  // [num_heads + 1] or empty
  std::vector<int32_t> columns;        // sorted per head, in [0, seq_len_k)
  int64_t band = 0;

  int64_t num_q_blocks() const { return (seq_len_q + block_q - 1) / block_q; }
  int64_t num_k_blocks() const { return (seq_len_k + block_k - 1) / block_k; }
  bool has_columns() const { return !column_indptr.empty(); }
  /// Pattern row for (head, query block).
  int64_t row(int64_t head, int64_t qb) const { return head * num_q_blocks() + qb; }

  /// Throws sieve::Error unless sizes agree, lists are sorted and unique, ids are in range and,
  /// when causal, no block lies entirely above the diagonal.
  void validate() const;

  /// The full pattern (every causal block) for the given sizes.
  static SparsePattern dense(int num_heads, int64_t seq_len_q, int64_t seq_len_k, int block_q,
                             int block_k, bool causal, bool per_kv_head = false);

  /// The union of two patterns of the same sizes and block sizes: a pair is kept when either keeps
  /// it. When one is per KV head and the other per query head, the result is per query head (the
  /// KV-head rows serve each query head of their group). Used to ask how much of a selector's
  /// error a known structure would remove (`sieve attn --plus-planted`).
  /// @throws sieve::Error when the sizes, block sizes, causality or head counts do not agree
  static SparsePattern united(const SparsePattern& a, const SparsePattern& b);

  /// Whether (head, query row i, key j) is kept, before causal masking. Slow; for tests/metrics.
  bool contains(int64_t head, int64_t i, int64_t j) const;

  /// Block density: selected (head, q-block, k-block) tiles / causal tiles (tiles with at least
  /// one causally visible key). Columns and band are not counted here; see token_density().
  double block_density() const;
  /// Token density: kept causal (i, j) pairs / causal pairs, columns and band included.
  double token_density() const;
  /// Token density of each pattern head ([num_heads]: query heads, or KV heads when per_kv_head),
  /// e.g. to see which heads a selector kept dense. token_density() is their mean.
  std::vector<double> head_token_densities() const;
};

}  // namespace sieve::attention
