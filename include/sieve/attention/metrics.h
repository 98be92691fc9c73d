// Quality and cost metrics of a pattern against exact dense attention.
//
// recall: for each query row, the fraction of its true softmax mass (dense, causal) that falls
// inside the pattern; reported per head as mean, min and 1st percentile, and overall.
// rel_error = ||O_sparse - O_dense||_2 / ||O_dense||_2 over the whole output; cosine likewise.
// Percentiles: p01 is the value at rank floor(0.01 (n - 1)) of the sorted row recalls (per head,
// and over all evaluated rows of all heads for the overall p01).
#pragma once

#include "sieve/attention/params.h"
#include "sieve/attention/sparse_pattern.h"

#include <vector>

namespace sieve::attention {

struct HeadRecall {
  double mean = 0, min = 0, p01 = 0;
  double token_density = 0;  // kept causal pairs / causal pairs of this head's pattern
};

struct PatternMetrics {
  double block_density = 0;  // selected tiles / causal tiles
  double token_density = 0;  // kept causal pairs / causal pairs
  double recall_mean = 0, recall_min = 0, recall_p01 = 0;
  std::vector<HeadRecall> per_head;  // per query head
  double rel_error = 0, cosine = 0;
};

/// Recall of `pattern` against the exact softmax of q, k (f64 scores, computed here).
/// `row_stride` > 1 evaluates every row_stride-th query row only (documented approximation for
/// very long inputs; 1 = exact over all rows).
PatternMetrics pattern_recall(const TensorView& q, const TensorView& k, const SparsePattern& pattern,
                              const AttentionOptions& opts, int64_t row_stride = 1);

/// Fills rel_error and cosine of `approx` against `exact` (same shape, any dtypes).
void output_error(const TensorView& approx, const TensorView& exact, PatternMetrics& m);

/// Query rows evaluated with a row stride, ascending: seq_len_q - 1, seq_len_q - 1 - row_stride,
/// ... >= 0. Counting back from the last row always keeps it (late rows carry the needles).
std::vector<int64_t> strided_rows(int64_t seq_len_q, int64_t row_stride);

/// Exact f64 dense attention output on some query rows: out[(h * rows.size() + r) * head_dim + e].
struct ExactRows {
  std::vector<int64_t> rows;
  std::vector<double> out;
};

/// pattern_recall for several patterns in one pass over the exact f64 scores (the O(L^2 D) part is
/// shared, as `sieve attn --method all` needs). Fills the densities too. With `v` and `exact`
/// given, also writes the exact dense output of the evaluated rows (same pass, for output_error).
std::vector<PatternMetrics> pattern_recall(const TensorView& q, const TensorView& k,
                                           const std::vector<const SparsePattern*>& patterns,
                                           const AttentionOptions& opts, int64_t row_stride = 1,
                                           const TensorView* v = nullptr,
                                           ExactRows* exact = nullptr);

/// rel_error and cosine of `approx` [Hq, Lq, D] restricted to exact.rows, against exact.out.
void output_error(const TensorView& approx, const ExactRows& exact, PatternMetrics& m);

}  // namespace sieve::attention
