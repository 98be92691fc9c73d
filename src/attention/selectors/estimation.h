// Internal building blocks shared by the CPU selectors (not a public header).
//
// - f32 staging: rows of a [heads, len, dim] view converted to f32 once (bf16/f16 -> f32 exact).
// - kernels: C = alpha * A * B^T on row-major f32 panels and a fused exp(x - shift) with sum, each
//   with an AVX2+FMA variant chosen at run time (estimation_avx2.cpp) and a portable fallback.
// - selection: XAttention's find_blocks rule (forced blocks first, then descending scores until
//   the cumulative mass reaches the required share), shared by xattn, rr and unisparse.
// - PatternBuilder: per (head, query block) key-block rows with the sink and diagonal blocks
//   forced and causally clipped, optional token columns and band, assembled into a SparsePattern.
// - settings parsing helpers with error messages that name the selector, key and value.
#pragma once

#include "sieve/attention/params.h"
#include "sieve/attention/sparse_pattern.h"
#include "sieve/core/threading.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sieve::attention::estimation {

// ---- f32 staging -----------------------------------------------------------------------------

/// Converts rows [r0, r1) of head `head` of a [H, L, D] view (D contiguous) into dst (ld = D).
void load_rows_f32(const TensorView& t, int64_t head, int64_t r0, int64_t r1, float* dst);
/// Converts one row.
inline void load_row_f32(const TensorView& t, int64_t head, int64_t row, float* dst) {
  load_rows_f32(t, head, row, row + 1, dst);
}
/// All rows of one head in f32, converted in parallel (dst is resized to len x D).
void load_head_f32(const TensorView& t, int64_t head, std::vector<float>& dst);
/// dst[D] = mean of `rows` consecutive f32 rows starting at src (ld = D).
void mean_rows(const float* src, int64_t rows, int64_t dim, float* dst);

// ---- kernels -----------------------------------------------------------------------------------

struct Kernels {
  /// C[M x N] (ldc) = alpha * A[M x K] (lda) * B[N x K]^T (ldb). Single-threaded.
  void (*gemm_nt)(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                  int64_t m, int64_t n, int64_t k, float alpha);
  /// x[i] = exp(x[i] - shift) for i < n (x[i] = -inf gives 0); returns the sum in f64.
  double (*exp_shift_sum)(float* x, int64_t n, float shift);
  const char* isa;
};
/// The fastest variant this CPU supports (chosen once).
const Kernels& kernels();

/// In-place softmax of x[0, n); entries may be -inf (not all). Returns nothing; sums to 1.
void softmax_inplace(float* x, int64_t n);

// ---- selection ---------------------------------------------------------------------------------

/// XAttention's find_blocks rule on one row of block scores.
/// The forced ids count toward the cumulative sum first; the others follow in descending score
/// order (ties: lower id first) while the cumulative sum stays below `share * sum(scores)`, so the
/// block that crosses the threshold is included. `forced` must be ids < n. Appends to `out`.
/// Prefixes are nested: a larger share never drops a block (density is monotone in share).
void select_cumulative(const float* scores, int64_t n, double share,
                       const std::vector<int32_t>& forced, std::vector<int32_t>& out);

/// Number of entries of x[0, n), in descending order, needed for their sum to reach
/// share * sum(x) (FlexPrefill's score_cover_topk). At least 1 when n > 0.
int64_t cover_count(const float* x, int64_t n, double share);

/// Indices of the k largest x (ties: lower index first), in descending score order.
std::vector<int32_t> top_k_indices(const float* x, int64_t n, int64_t k);

// ---- pattern assembly --------------------------------------------------------------------------

/// Geometry of a (possibly chunked, bottom-right aligned) causal prefill at block granularity.
struct BlockGeometry {
  int64_t seq_len_q = 0, seq_len_k = 0, q_offset = 0;
  int block_q = 128, block_k = 128;
  bool causal = true;
  int64_t num_q_blocks = 0, num_k_blocks = 0;

  BlockGeometry(const AttentionShape& shape, int block_q, int block_k, bool causal);
  /// Absolute position of query row i.
  int64_t pos(int64_t i) const { return i + q_offset; }
  int64_t q_begin(int64_t qb) const { return qb * block_q; }
  int64_t q_end(int64_t qb) const;
  /// One past the last key block any row of query block qb may see (0 when none).
  int64_t visible_k_blocks(int64_t qb) const;
  /// One past the last key any row of query block qb may see.
  int64_t visible_keys(int64_t qb) const;
  /// The sink block and the diagonal blocks (key blocks holding the positions of qb's rows),
  /// clipped to the visible range; sorted, unique.
  std::vector<int32_t> forced_blocks(int64_t qb) const;
};

/// Collects rows, columns and band, then writes a validated SparsePattern.
class PatternBuilder {
 public:
  PatternBuilder(const BlockGeometry& geo, int num_heads);
  const BlockGeometry& geometry() const { return geo_; }
  /// Sets row (head, qb) from ids in any order with duplicates; forced blocks are added and
  /// invisible blocks dropped. Thread-safe for distinct rows.
  void set_row(int head, int64_t qb, std::vector<int32_t> blocks);
  /// Sets the token columns of a head (any order, duplicates allowed, out-of-range dropped).
  /// Columns inside the sink block are dropped (that block is always kept).
  void set_columns(int head, std::vector<int32_t> columns);
  /// Local band width in tokens (0 = none).
  void set_band(int64_t band) { band_ = band; }
  /// Assembles and validates the pattern.
  SparsePattern finish();

 private:
  BlockGeometry geo_;
  int num_heads_;
  std::vector<std::vector<int32_t>> rows_;
  std::vector<std::vector<int32_t>> columns_;
  bool has_columns_ = false;
  int64_t band_ = 0;
};

// ---- stride-level estimation ------------------------------------------------------------------

/// Block scores from a softmax at reduced resolution: the estimator shared by xattn, rr and
/// unisparse. Query representative r (row r of qrep [nqr x dim]) stands for query rows
/// [r*sq, (r+1)*sq). Keys come in units of sk keys, each unit u with `reps` representatives
/// (rows u*reps .. u*reps+reps-1 of krep [num_units*reps x dim]).
/// For each r: row = alpha * qrep[r] . krep[e] for the e < visible(r) * reps entries of its
/// visible units, then fix(r, row, visible(r)) may adjust it (log weights, a partial unit), then
/// a softmax over those entries. The score of key block kb for query block qb is the sum, over
/// qb's representatives, of the mass on entries of units inside kb. emit(qb, scores, nvis) gets
/// it once per query block, from worker threads (nvis = geo.visible_k_blocks(qb)).
/// Requires sq | block_q and sk | block_k. Parallel over groups of query blocks (~64 rows/GEMM).
/// rest_dim in (0, dim): the representatives after the first of each unit are zero beyond their
/// first rest_dim values (rr's outlier keys have no variance half), so their products run over
/// rest_dim columns only: the same values (the skipped terms are exact zeros), less arithmetic.
template <class Visible, class Fix, class Emit>
void stride_block_scores(const BlockGeometry& geo, const float* qrep, int64_t nqr, int64_t sq,
                         const float* krep, int64_t num_units, int64_t sk, int64_t reps,
                         int64_t dim, float alpha, Visible visible, Fix fix, Emit emit,
                         int64_t rest_dim = 0) {
  const bool split = reps > 1 && rest_dim > 0 && rest_dim < dim;
  const int64_t qr_per_block = geo.block_q / sq, units_per_block = geo.block_k / sk;
  const int64_t qb_per_task = std::max<int64_t>(1, 64 / qr_per_block);
  const int64_t num_tasks = (geo.num_q_blocks + qb_per_task - 1) / qb_per_task;
  const Kernels& kern = kernels();
#pragma omp parallel num_threads(num_threads())
  {
    std::vector<float> scores, block, slot;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < num_tasks; ++task) {
      const int64_t qb0 = task * qb_per_task;
      const int64_t qb1 = std::min(geo.num_q_blocks, qb0 + qb_per_task);
      const int64_t r0 = std::min(nqr, geo.q_begin(qb0) / sq);
      const int64_t r1 = std::min(nqr, (geo.q_end(qb1 - 1) + sq - 1) / sq);
      int64_t n = 0;  // entries per row of this task
      for (int64_t r = r0; r < r1; ++r)
        n = std::max<int64_t>(n, std::min(num_units, visible(r)) * reps);
      if (n > 0) {
        scores.resize(size_t((r1 - r0) * n));
        if (!split) {
          kern.gemm_nt(qrep + r0 * dim, dim, krep, dim, scores.data(), n, r1 - r0, n, dim, alpha);
        } else {  // one product per slot (every reps-th row of krep), scattered into the rows
          const int64_t nu = n / reps, m = r1 - r0;
          slot.resize(size_t(m * nu));
          for (int64_t t = 0; t < reps; ++t) {
            kern.gemm_nt(qrep + r0 * dim, dim, krep + t * dim, reps * dim, slot.data(), nu, m, nu,
                         t == 0 ? dim : rest_dim, alpha);
            for (int64_t i = 0; i < m; ++i)
              for (int64_t u = 0; u < nu; ++u)
                scores[size_t(i * n + u * reps + t)] = slot[size_t(i * nu + u)];
          }
        }
      }
      for (int64_t qb = qb0; qb < qb1; ++qb) {
        const int64_t nvis = geo.visible_k_blocks(qb);
        block.assign(size_t(nvis), 0.0f);
        const int64_t rb0 = std::max(r0, geo.q_begin(qb) / sq);
        const int64_t rb1 = std::min(r1, (geo.q_end(qb) + sq - 1) / sq);
        for (int64_t r = rb0; r < rb1 && n > 0; ++r) {
          const int64_t v = std::min(num_units, visible(r));
          if (v <= 0) continue;
          float* row = &scores[size_t((r - r0) * n)];
          fix(r, row, v);
          softmax_inplace(row, v * reps);
          // Entries of key block kb are the contiguous range [kb, kb + 1) * per_block.
          const int64_t per_block = units_per_block * reps, used = v * reps;
          for (int64_t kb = 0; kb < nvis && kb * per_block < used; ++kb) {
            const float* x = row + kb * per_block;
            const int64_t cnt = std::min(per_block, used - kb * per_block);
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int64_t e = 0; e < cnt; ++e) acc += x[e];
            block[size_t(kb)] += acc;
          }
        }
        emit(qb, block.data(), nvis);
      }
    }
  }
}

// ---- last-rows probe (vertical-slash family) ---------------------------------------------------

/// Exact softmax of the last `rows` query rows of head h (causal) against all keys, reduced to
/// column sums and diagonal sums, as MInference's and FlexPrefill's probes do.
struct Probe {
  int64_t rows = 0;              // probed rows: query rows [Lq - rows, Lq)
  std::vector<double> vertical;  // [Lk] sum over probed rows of p(i, j)
  std::vector<double> slash;     // [Lk] sum over probed rows of p(i, pos(i) - o), o = 0..Lk-1
};
/// @param kf32 all keys of the KV head in f32 [Lk x D] (load_head_f32)
Probe probe_last_rows(const TensorView& q, int64_t head, const float* kf32,
                      const BlockGeometry& geo, int64_t dim, float scale, int64_t rows);

// ---- settings parsing --------------------------------------------------------------------------

/// A finite number; the whole value must parse (integers: parse_setting_int in selector.h).
double parse_double(std::string_view selector, std::string_view key, std::string_view value);
/// Comma-separated positive integers, e.g. "8,32,128".
std::vector<int64_t> parse_int_list(std::string_view selector, std::string_view key,
                                    std::string_view value);
/// Shortest round-trip text of a double ("0.9", "1e-05").
std::string format_double(double v);
std::string format_int_list(const std::vector<int64_t>& v);

/// Throws unless lo < v <= hi (an interval open on the left, like tau in (0, 1]).
void check_open_closed(std::string_view selector, std::string_view key, double v, double lo,
                       double hi);

}  // namespace sieve::attention::estimation
