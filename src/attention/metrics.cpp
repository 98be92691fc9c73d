// Recall of patterns against the exact softmax (f64) and output error.
//
// One pass per KV head: K (and V) are widened to f64 once; every (query head, tile of 8 evaluated
// rows) computes its f64 scores, softmax and the prefix sums of the probabilities, from which the
// mass inside a pattern row is a handful of interval sums. The dot products and the optional exact
// output are register-blocked loops compiled for x86-64-v3 (AVX2+FMA) and a baseline, chosen at
// load time (GCC target_clones), so the f64 reference stays affordable at 32K.
#include "sieve/attention/metrics.h"

#include "sieve/core/error.h"
#include "sieve/core/progress.h"
#include "sieve/core/threading.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

// The vector helpers below are internal and always inlined; the ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace sieve::attention {

namespace {

constexpr int kTileRows = 4;   // query rows per register tile
constexpr int kTileKeys = 8;   // keys per register tile
constexpr int kRowsPerItem = 8;  // query rows per work item (two register tiles)

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define SIEVE_METRICS_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SIEVE_METRICS_CLONES
#endif

typedef double v4d __attribute__((vector_size(32)));

inline v4d load4(const double* p) {
  v4d v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
inline void store4(double* p, v4d v) { __builtin_memcpy(p, &v, sizeof(v)); }
inline v4d splat(double x) { return v4d{x, x, x, x}; }

// s[r * ld + j] = sum_d qd[r * D + d] * k[j, d] for r < kTileRows, j in [0, n), n a multiple of
// kTileKeys. K is packed in key tiles: kp[((j / 8) * D + d) * 8 + j % 8] (zero padded), so the
// loop over d streams through memory. A 4 x 8 register tile.
SIEVE_METRICS_CLONES
void scores_tile(const double* qd, const double* kp, int64_t D, int64_t n, double* s, int64_t ld) {
  static_assert(kTileRows == 4 && kTileKeys == 8);
  for (int64_t j0 = 0; j0 < n; j0 += kTileKeys) {
    v4d a00 = {}, a01 = {}, a10 = {}, a11 = {}, a20 = {}, a21 = {}, a30 = {}, a31 = {};
    for (int64_t d = 0; d < D; ++d) {
      const double* kt = kp + (j0 * D + d * kTileKeys);
      const v4d k0 = load4(kt), k1 = load4(kt + 4);
      const v4d q0 = splat(qd[d]), q1 = splat(qd[D + d]), q2 = splat(qd[2 * D + d]),
                q3 = splat(qd[3 * D + d]);
      a00 += q0 * k0, a01 += q0 * k1, a10 += q1 * k0, a11 += q1 * k1;
      a20 += q2 * k0, a21 += q2 * k1, a30 += q3 * k0, a31 += q3 * k1;
    }
    store4(s + j0, a00), store4(s + j0 + 4, a01);
    store4(s + ld + j0, a10), store4(s + ld + j0 + 4, a11);
    store4(s + 2 * ld + j0, a20), store4(s + 2 * ld + j0 + 4, a21);
    store4(s + 3 * ld + j0, a30), store4(s + 3 * ld + j0 + 4, a31);
  }
}

// out[r * D + e] = sum_{j < n} p[r * ld + j] * vd[j * D + e] for r < kTileRows: 4 rows x 8 values
// per register tile, a scalar loop for a head_dim tail.
SIEVE_METRICS_CLONES
void weighted_values(const double* p, int64_t ld, const double* vd, int64_t D, int64_t n,
                     double* out) {
  static_assert(kTileRows == 4);
  int64_t e0 = 0;
  for (; e0 + 8 <= D; e0 += 8) {
    v4d a00 = {}, a01 = {}, a10 = {}, a11 = {}, a20 = {}, a21 = {}, a30 = {}, a31 = {};
    for (int64_t j = 0; j < n; ++j) {
      const v4d v0 = load4(vd + j * D + e0), v1 = load4(vd + j * D + e0 + 4);
      const v4d p0 = splat(p[j]), p1 = splat(p[ld + j]), p2 = splat(p[2 * ld + j]),
                p3 = splat(p[3 * ld + j]);
      a00 += p0 * v0, a01 += p0 * v1, a10 += p1 * v0, a11 += p1 * v1;
      a20 += p2 * v0, a21 += p2 * v1, a30 += p3 * v0, a31 += p3 * v1;
    }
    store4(out + e0, a00), store4(out + e0 + 4, a01);
    store4(out + D + e0, a10), store4(out + D + e0 + 4, a11);
    store4(out + 2 * D + e0, a20), store4(out + 2 * D + e0 + 4, a21);
    store4(out + 3 * D + e0, a30), store4(out + 3 * D + e0 + 4, a31);
  }
  for (; e0 < D; ++e0)
    for (int r = 0; r < kTileRows; ++r) {
      double acc = 0;
      for (int64_t j = 0; j < n; ++j) acc += p[r * ld + j] * vd[j * D + e0];
      out[r * D + e0] = acc;
    }
}

double percentile01(std::vector<double> v) {
  if (v.empty()) return 0;
  const size_t rank = size_t(std::floor(0.01 * double(v.size() - 1)));
  std::nth_element(v.begin(), v.begin() + rank, v.end());
  return v[rank];
}

// Mass of one pattern row: prob prefix sums P (P[j] = sum of p over keys < j), keys [0, lim).
double kept_mass(const SparsePattern& p, int64_t head, int64_t i, int64_t lim, const double* P,
                 std::vector<std::pair<int64_t, int64_t>>& iv) {
  iv.clear();
  const int64_t r = p.row(head, i / p.block_q);
  for (int32_t t = p.block_indptr[size_t(r)]; t < p.block_indptr[size_t(r) + 1]; ++t) {
    const int64_t a = int64_t(p.block_indices[size_t(t)]) * p.block_k;
    const int64_t b = std::min(a + p.block_k, lim);
    if (a < b) iv.emplace_back(a, b);
  }
  if (p.band > 0) {
    const int64_t pos = i + p.seq_len_k - p.seq_len_q;
    const int64_t a = std::max<int64_t>(0, pos - p.band + 1), b = std::min(pos + 1, lim);
    if (a < b) {
      iv.emplace_back(a, b);
      std::inplace_merge(iv.begin(), iv.end() - 1, iv.end());
    }
  }
  // Merge overlapping intervals in place (sorted by start).
  size_t m = 0;
  for (size_t t = 0; t < iv.size(); ++t) {
    if (m > 0 && iv[t].first <= iv[m - 1].second) iv[m - 1].second = std::max(iv[m - 1].second, iv[t].second);
    else iv[m++] = iv[t];
  }
  iv.resize(m);
  double mass = 0;
  for (const auto& [a, b] : iv) mass += P[b] - P[a];
  if (p.has_columns()) {
    size_t t = 0;
    for (int32_t c = p.column_indptr[size_t(head)]; c < p.column_indptr[size_t(head) + 1]; ++c) {
      const int64_t j = p.columns[size_t(c)];
      if (j >= lim) break;
      while (t < iv.size() && iv[t].second <= j) ++t;
      if (t < iv.size() && iv[t].first <= j) continue;  // already inside a block or the band
      mass += P[j + 1] - P[j];
    }
  }
  return mass;
}

}  // namespace

std::vector<int64_t> strided_rows(int64_t seq_len_q, int64_t row_stride) {
  SIEVE_CHECK(row_stride >= 1, "row_stride must be >= 1, got {}", row_stride);
  std::vector<int64_t> rows;
  for (int64_t i = seq_len_q - 1; i >= 0; i -= row_stride) rows.push_back(i);
  std::reverse(rows.begin(), rows.end());
  return rows;
}

std::vector<PatternMetrics> pattern_recall(const TensorView& q, const TensorView& k,
                                           const std::vector<const SparsePattern*>& patterns,
                                           const AttentionOptions& opts, int64_t row_stride,
                                           const TensorView* v, ExactRows* exact) {
  const AttentionShape s = check_attention_inputs(q, k, v ? *v : k);
  const int64_t Hq = s.num_heads_q, D = s.head_dim, Lq = s.seq_len_q, Lk = s.seq_len_k;
  const int64_t group = s.group_size();
  for (const SparsePattern* p : patterns) {
    SIEVE_CHECK(p != nullptr, "pattern_recall: null pattern");
    p->validate();
    const int64_t heads = p->per_kv_head ? s.num_heads_kv : Hq;
    SIEVE_CHECK(p->seq_len_q == Lq && p->seq_len_k == Lk && p->num_heads == heads && p->causal == opts.causal,
                "pattern ({} {} heads, lengths {}x{}, causal {}) does not match the inputs ({} heads, "
                "lengths {}x{}, causal {})",
                p->num_heads, p->per_kv_head ? "KV" : "query", p->seq_len_q, p->seq_len_k, p->causal,
                heads, Lq, Lk, opts.causal);
  }
  const std::vector<int64_t> rows = strided_rows(Lq, row_stride);
  const int64_t nrows = int64_t(rows.size());
  const int64_t n_items_per_head = (nrows + kRowsPerItem - 1) / kRowsPerItem;
  const double scale = effective_scale(opts, D);
  const size_t np = patterns.size();
  // recall[pattern][h * nrows + r]
  std::vector<std::vector<double>> recall(np, std::vector<double>(size_t(Hq * nrows)));
  if (exact) {
    SIEVE_CHECK(v != nullptr, "pattern_recall: the exact output needs v");
    exact->rows = rows;
    exact->out.assign(size_t(Hq * nrows * D), 0.0);
  }
  const int64_t Lpad = (Lk + kTileKeys - 1) / kTileKeys * kTileKeys;
  Progress progress("exact f64 attention", Hq * n_items_per_head);
  std::vector<double> kt(size_t(D * Lpad)), vd(v ? size_t(Lk * D) : 0);
  for (int64_t g = 0; g < s.num_heads_kv; ++g) {
    // Widen K (packed in key tiles, zero padded) and V of this KV head to f64.
#pragma omp parallel for num_threads(num_threads())
    for (int64_t j = 0; j < Lpad; ++j)
      for (int64_t d = 0; d < D; ++d)
        kt[size_t(((j / kTileKeys) * D + d) * kTileKeys + j % kTileKeys)] =
            j < Lk ? double(k.get(g, j, d)) : 0.0;
    if (v) {
#pragma omp parallel for num_threads(num_threads())
      for (int64_t j = 0; j < Lk; ++j)
        for (int64_t e = 0; e < D; ++e) vd[size_t(j * D + e)] = double(v->get(g, j, e));
    }
#pragma omp parallel num_threads(num_threads())
    {
      std::vector<double> qd(size_t(kTileRows * D)), sc(size_t(kRowsPerItem * (Lpad + 1)));
      std::vector<double> out(size_t(kTileRows * D));
      std::vector<std::pair<int64_t, int64_t>> iv;
      const int64_t ld = Lpad + 1;
#pragma omp for schedule(dynamic, 1)
      for (int64_t item = 0; item < group * n_items_per_head; ++item) {
        const int64_t h = g * group + item / n_items_per_head;
        const int64_t r0 = (item % n_items_per_head) * kRowsPerItem;
        const int64_t nr = std::min<int64_t>(kRowsPerItem, nrows - r0);
        int64_t lim[kRowsPerItem], lim_max = 0;
        for (int64_t r = 0; r < kRowsPerItem; ++r) {
          const int64_t i = rows[size_t(r0 + std::min(r, nr - 1))];
          lim[r] = opts.causal ? std::min(i + s.q_offset() + 1, Lk) : Lk;
          lim_max = std::max(lim_max, lim[r]);
        }
        const int64_t n = (lim_max + kTileKeys - 1) / kTileKeys * kTileKeys;
        for (int64_t t0 = 0; t0 < kRowsPerItem; t0 += kTileRows) {
          for (int64_t r = 0; r < kTileRows; ++r) {
            const int64_t i = rows[size_t(r0 + std::min(t0 + r, nr - 1))];
            for (int64_t d = 0; d < D; ++d) qd[size_t(r * D + d)] = scale * double(q.get(h, i, d));
          }
          scores_tile(qd.data(), kt.data(), D, n, sc.data() + t0 * ld, ld);
        }
        // Softmax per row (keys beyond lim get probability 0).
        double z[kRowsPerItem];
        for (int64_t r = 0; r < kRowsPerItem; ++r) {
          double* row = sc.data() + r * ld;
          double mx = -std::numeric_limits<double>::infinity();
          for (int64_t j = 0; j < lim[r]; ++j) mx = std::max(mx, row[j]);
          double sum = 0;
          for (int64_t j = 0; j < lim[r]; ++j) sum += (row[j] = std::exp(row[j] - mx));
          for (int64_t j = lim[r]; j < n; ++j) row[j] = 0.0;
          z[r] = sum;
        }
        if (exact) {
          for (int64_t t0 = 0; t0 < kRowsPerItem; t0 += kTileRows) {
            weighted_values(sc.data() + t0 * ld, ld, vd.data(), D, lim_max, out.data());
            for (int64_t r = t0; r < std::min<int64_t>(t0 + kTileRows, nr); ++r)
              for (int64_t e = 0; e < D; ++e)
                exact->out[size_t(((h * nrows) + r0 + r) * D + e)] = out[size_t((r - t0) * D + e)] / z[r];
          }
        }
        // Normalised prefix sums in place: row[j] becomes P[j] = mass of keys < j.
        for (int64_t r = 0; r < nr; ++r) {
          double* row = sc.data() + r * ld;
          double acc = 0;
          for (int64_t j = 0; j < lim[r]; ++j) {
            const double pj = row[j] / z[r];
            row[j] = acc;
            acc += pj;
          }
          row[lim[r]] = acc;
          const int64_t i = rows[size_t(r0 + r)];
          for (size_t pi = 0; pi < np; ++pi) {
            const SparsePattern& p = *patterns[pi];
            const int64_t ph = p.per_kv_head ? g : h;
            const double m = kept_mass(p, ph, i, lim[r], row, iv);
            recall[pi][size_t(h * nrows + r0 + r)] = std::clamp(m / acc, 0.0, 1.0);
          }
        }
        progress.advance();
      }
    }
  }
  progress.finish();

  std::vector<PatternMetrics> result(np);
  for (size_t pi = 0; pi < np; ++pi) {
    PatternMetrics& m = result[pi];
    m.block_density = patterns[pi]->block_density();
    const std::vector<double> head_density = patterns[pi]->head_token_densities();
    // token_density() is the mean of the head densities: derived here, not counted again
    m.token_density = head_density.empty() ? 0.0
                                           : std::accumulate(head_density.begin(), head_density.end(), 0.0) /
                                                 double(head_density.size());
    const int64_t heads_per_pattern_head = Hq / std::max<int64_t>(1, int64_t(head_density.size()));
    const std::vector<double>& rec = recall[pi];
    double total = 0, mn = 1;
    for (int64_t h = 0; h < Hq; ++h) {
      const std::vector<double> hv(rec.begin() + h * nrows, rec.begin() + (h + 1) * nrows);
      HeadRecall hr;
      double sum = 0;
      hr.min = 1;
      for (double x : hv) {
        sum += x;
        hr.min = std::min(hr.min, x);
      }
      hr.mean = nrows ? sum / double(nrows) : 0;
      hr.p01 = percentile01(hv);
      hr.token_density = head_density[size_t(h / heads_per_pattern_head)];
      m.per_head.push_back(hr);
      total += sum;
      mn = std::min(mn, hr.min);
    }
    m.recall_mean = rec.empty() ? 0 : total / double(rec.size());
    m.recall_min = mn;
    m.recall_p01 = percentile01(rec);
  }
  return result;
}

PatternMetrics pattern_recall(const TensorView& q, const TensorView& k, const SparsePattern& pattern,
                              const AttentionOptions& opts, int64_t row_stride) {
  return pattern_recall(q, k, std::vector<const SparsePattern*>{&pattern}, opts, row_stride)[0];
}

namespace {
void finish_error(double diff2, double exact2, double approx2, double dot, PatternMetrics& m) {
  m.rel_error = exact2 > 0 ? std::sqrt(diff2 / exact2) : (diff2 > 0 ? INFINITY : 0.0);
  m.cosine = exact2 > 0 && approx2 > 0 ? dot / std::sqrt(exact2 * approx2) : (exact2 == approx2 ? 1.0 : 0.0);
}
}  // namespace

void output_error(const TensorView& approx, const TensorView& exact, PatternMetrics& m) {
  SIEVE_CHECK(approx.ndim == exact.ndim, "output_error: approx {} and exact {} differ in rank",
              approx.describe(), exact.describe());
  for (int i = 0; i < approx.ndim; ++i)
    SIEVE_CHECK(approx.shape[i] == exact.shape[i], "output_error: approx {} and exact {} differ in shape",
                approx.describe(), exact.describe());
  std::array<int64_t, kMaxDims> sh{1, 1, 1, 1};
  const int off = kMaxDims - approx.ndim;
  for (int i = 0; i < approx.ndim; ++i) sh[off + i] = approx.shape[i];
  auto index = [&](const TensorView& t, int64_t a, int64_t b, int64_t c, int64_t d) {
    const int64_t idx[kMaxDims] = {a, b, c, d};
    int64_t o = 0;
    for (int i = 0; i < t.ndim; ++i) o += idx[off + i] * t.strides[i];
    return load_as_f32(t.data, t.dtype, o);
  };
  double diff2 = 0, e2 = 0, a2 = 0, dot = 0;
  for (int64_t a = 0; a < sh[0]; ++a)
    for (int64_t b = 0; b < sh[1]; ++b)
      for (int64_t c = 0; c < sh[2]; ++c)
        for (int64_t d = 0; d < sh[3]; ++d) {
          const double x = index(approx, a, b, c, d), y = index(exact, a, b, c, d);
          diff2 += (x - y) * (x - y);
          e2 += y * y;
          a2 += x * x;
          dot += x * y;
        }
  finish_error(diff2, e2, a2, dot, m);
}

void output_error(const TensorView& approx, const ExactRows& exact, PatternMetrics& m) {
  check_ndim(approx, 3, "approx [num_heads_q, seq_len_q, head_dim]");
  const int64_t H = approx.shape[0], D = approx.shape[2], nrows = int64_t(exact.rows.size());
  SIEVE_CHECK(int64_t(exact.out.size()) == H * nrows * D,
              "output_error: exact rows hold {} values, expected {} heads x {} rows x {}",
              exact.out.size(), H, nrows, D);
  double diff2 = 0, e2 = 0, a2 = 0, dot = 0;
  for (int64_t h = 0; h < H; ++h)
    for (int64_t r = 0; r < nrows; ++r) {
      const int64_t i = exact.rows[size_t(r)];
      SIEVE_CHECK(i >= 0 && i < approx.shape[1], "output_error: row {} outside approx {}", i,
                  approx.describe());
      for (int64_t e = 0; e < D; ++e) {
        const double x = approx.get(h, i, e), y = exact.out[size_t((h * nrows + r) * D + e)];
        diff2 += (x - y) * (x - y);
        e2 += y * y;
        a2 += x * x;
        dot += x * y;
      }
    }
  finish_error(diff2, e2, a2, dot, m);
}

}  // namespace sieve::attention
