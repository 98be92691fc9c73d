// SparsePattern: validation, the dense pattern, membership and densities.
#include "sieve/attention/sparse_pattern.h"

#include "sieve/core/error.h"

#include <algorithm>
#include <iterator>
#include <vector>

namespace sieve::attention {

namespace {

// Absolute position of the last query row of query block qb (bottom-right causal alignment).
int64_t last_pos_of_block(const SparsePattern& p, int64_t qb) {
  const int64_t last_row = std::min((qb + 1) * p.block_q, p.seq_len_q) - 1;
  return last_row + (p.seq_len_k - p.seq_len_q);
}

// Number of key blocks with at least one key visible to query block qb (all when not causal).
int64_t visible_k_blocks(const SparsePattern& p, int64_t qb) {
  if (!p.causal) return p.num_k_blocks();
  const int64_t last = last_pos_of_block(p, qb);
  if (last < 0) return 0;
  return std::min(p.num_k_blocks(), last / p.block_k + 1);
}

// Checks one CSR structure: indptr shape and monotonicity, per-row sorted unique ids in [0, hi).
void check_csr(const std::vector<int32_t>& indptr, const std::vector<int32_t>& ids, int64_t rows,
               int64_t hi, const char* what, const char* row_name) {
  SIEVE_CHECK(int64_t(indptr.size()) == rows + 1,
              "SparsePattern: {}_indptr has {} entries, expected {} ({} {}s + 1)", what,
              indptr.size(), rows + 1, rows, row_name);
  SIEVE_CHECK(indptr[0] == 0, "SparsePattern: {}_indptr[0] must be 0, got {}", what, indptr[0]);
  SIEVE_CHECK(int64_t(indptr.back()) == int64_t(ids.size()),
              "SparsePattern: {}_indptr ends at {} but there are {} {} entries", what,
              indptr.back(), ids.size(), what);
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t b = indptr[r], e = indptr[r + 1];
    SIEVE_CHECK(b <= e, "SparsePattern: {}_indptr decreases at {} {} ({} > {})", what, row_name,
                r, b, e);
    for (int32_t t = b; t < e; ++t) {
      SIEVE_CHECK(ids[t] >= 0 && ids[t] < hi,
                  "SparsePattern: {} id {} out of range [0, {}) in {} {}", what, ids[t], hi,
                  row_name, r);
      SIEVE_CHECK(t == b || ids[t - 1] < ids[t],
                  "SparsePattern: {} ids of {} {} must be sorted and unique ({} then {})", what,
                  row_name, r, ids[t - 1], ids[t]);
    }
  }
}

}  // namespace

void SparsePattern::validate() const {
  SIEVE_CHECK(seq_len_q > 0 && seq_len_k > 0,
              "SparsePattern: seq_len_q ({}) and seq_len_k ({}) must be positive", seq_len_q,
              seq_len_k);
  SIEVE_CHECK(seq_len_q <= seq_len_k, "SparsePattern: seq_len_q ({}) exceeds seq_len_k ({})",
              seq_len_q, seq_len_k);
  SIEVE_CHECK(block_q > 0 && block_k > 0,
              "SparsePattern: block sizes must be positive, got block_q {} block_k {}", block_q,
              block_k);
  SIEVE_CHECK(num_heads > 0, "SparsePattern: num_heads must be positive, got {}", num_heads);
  SIEVE_CHECK(band >= 0, "SparsePattern: band must be >= 0, got {}", band);
  const int64_t rows = int64_t(num_heads) * num_q_blocks();
  check_csr(block_indptr, block_indices, rows, num_k_blocks(), "block", "row");
  if (causal) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t qb = r % num_q_blocks();
      const int64_t visible = visible_k_blocks(*this, qb);
      for (int32_t t = block_indptr[r]; t < block_indptr[r + 1]; ++t) {
        SIEVE_CHECK(block_indices[t] < visible,
                    "SparsePattern: key block {} lies entirely above the causal diagonal for "
                    "head {} query block {} (its first key {} > last query position {})",
                    block_indices[t], r / num_q_blocks(), qb, int64_t(block_indices[t]) * block_k,
                    last_pos_of_block(*this, qb));
      }
    }
  }
  if (has_columns()) {
    check_csr(column_indptr, columns, num_heads, seq_len_k, "column", "head");
  } else {
    SIEVE_CHECK(columns.empty(),
                "SparsePattern: {} columns given but column_indptr is empty", columns.size());
  }
}

SparsePattern SparsePattern::dense(int num_heads, int64_t seq_len_q, int64_t seq_len_k,
                                   int block_q, int block_k, bool causal, bool per_kv_head) {
  SparsePattern p;
  p.seq_len_q = seq_len_q;
  p.seq_len_k = seq_len_k;
  p.block_q = block_q;
  p.block_k = block_k;
  p.num_heads = num_heads;
  p.per_kv_head = per_kv_head;
  p.causal = causal;
  SIEVE_CHECK(num_heads > 0 && seq_len_q > 0 && seq_len_k > 0 && block_q > 0 && block_k > 0,
              "SparsePattern::dense: sizes must be positive (heads {}, seq_len_q {}, seq_len_k {}, "
              "block_q {}, block_k {})",
              num_heads, seq_len_q, seq_len_k, block_q, block_k);
  const int64_t nqb = p.num_q_blocks();
  p.block_indptr.reserve(size_t(num_heads * nqb + 1));
  p.block_indptr.push_back(0);
  for (int h = 0; h < num_heads; ++h) {
    for (int64_t qb = 0; qb < nqb; ++qb) {
      const int64_t n = visible_k_blocks(p, qb);
      for (int64_t kb = 0; kb < n; ++kb) p.block_indices.push_back(int32_t(kb));
      SIEVE_CHECK(p.block_indices.size() <= size_t(INT32_MAX),
                  "SparsePattern::dense: more than 2^31 blocks; use larger blocks");
      p.block_indptr.push_back(int32_t(p.block_indices.size()));
    }
  }
  return p;
}

bool SparsePattern::contains(int64_t head, int64_t i, int64_t j) const {
  const int64_t pos = i + seq_len_k - seq_len_q;
  if (band > 0 && j <= pos && j > pos - band) return true;
  const int64_t r = row(head, i / block_q);
  const auto bb = block_indices.begin() + block_indptr[r];
  const auto be = block_indices.begin() + block_indptr[r + 1];
  if (std::binary_search(bb, be, int32_t(j / block_k))) return true;
  if (has_columns()) {
    const auto cb = columns.begin() + column_indptr[head];
    const auto ce = columns.begin() + column_indptr[head + 1];
    if (std::binary_search(cb, ce, int32_t(j))) return true;
  }
  return false;
}

double SparsePattern::block_density() const {
  int64_t total = 0;
  for (int64_t qb = 0; qb < num_q_blocks(); ++qb) total += visible_k_blocks(*this, qb);
  total *= num_heads;
  return total > 0 ? double(block_indices.size()) / double(total) : 0.0;
}

std::vector<double> SparsePattern::head_token_densities() const {
  // Per (head, query block): mark keys kept by blocks or columns, prefix-sum them, then count each
  // row's causal keys and the band keys not already marked in O(1).
  const int64_t off = seq_len_k - seq_len_q;
  std::vector<uint8_t> kept(static_cast<size_t>(seq_len_k));
  std::vector<int64_t> prefix(static_cast<size_t>(seq_len_k) + 1);
  std::vector<double> density(static_cast<size_t>(num_heads), 0.0);
  for (int64_t h = 0; h < num_heads; ++h) {
    double kept_pairs = 0, causal_pairs = 0;
    for (int64_t qb = 0; qb < num_q_blocks(); ++qb) {
      std::fill(kept.begin(), kept.end(), 0);
      const int64_t r = row(h, qb);
      for (int32_t t = block_indptr[r]; t < block_indptr[r + 1]; ++t) {
        const int64_t k0 = int64_t(block_indices[t]) * block_k;
        const int64_t k1 = std::min(k0 + block_k, seq_len_k);
        std::fill(kept.begin() + k0, kept.begin() + k1, 1);
      }
      if (has_columns()) {
        for (int32_t t = column_indptr[h]; t < column_indptr[h + 1]; ++t) kept[columns[t]] = 1;
      }
      for (int64_t j = 0; j < seq_len_k; ++j) prefix[j + 1] = prefix[j] + kept[j];
      const int64_t i_end = std::min((qb + 1) * block_q, seq_len_q);
      for (int64_t i = qb * block_q; i < i_end; ++i) {
        const int64_t pos = i + off;
        const int64_t limit = causal ? std::min(pos + 1, seq_len_k) : seq_len_k;  // keys [0, limit)
        causal_pairs += double(limit);
        int64_t n = prefix[limit];
        if (band > 0) {
          // band keys (pos - band, pos], restricted to [0, limit), not already marked
          const int64_t lo = std::max<int64_t>(0, pos - band + 1);
          const int64_t hi = std::min(pos + 1, limit);
          if (hi > lo) n += (hi - lo) - (prefix[hi] - prefix[lo]);
        }
        kept_pairs += double(n);
      }
    }
    density[size_t(h)] = causal_pairs > 0 ? kept_pairs / causal_pairs : 0.0;
  }
  return density;
}

double SparsePattern::token_density() const {
  // Every head has the same causal pairs, so the mean over heads is the ratio of the sums.
  const std::vector<double> d = head_token_densities();
  double sum = 0;
  for (double x : d) sum += x;
  return d.empty() ? 0.0 : sum / double(d.size());
}

SparsePattern SparsePattern::united(const SparsePattern& a, const SparsePattern& b) {
  SIEVE_CHECK(a.seq_len_q == b.seq_len_q && a.seq_len_k == b.seq_len_k && a.block_q == b.block_q &&
                  a.block_k == b.block_k && a.causal == b.causal,
              "united: patterns differ in sizes ({}x{} vs {}x{}), blocks ({}x{} vs {}x{}) or "
              "causality", a.seq_len_q, a.seq_len_k, b.seq_len_q, b.seq_len_k, a.block_q, a.block_k,
              b.block_q, b.block_k);
  a.validate();
  b.validate();
  const int heads = std::max(a.num_heads, b.num_heads);
  const int small = std::min(a.num_heads, b.num_heads);
  SIEVE_CHECK(small > 0 && heads % small == 0 &&
                  (a.num_heads == b.num_heads || (a.num_heads < b.num_heads ? a.per_kv_head
                                                                            : b.per_kv_head)),
              "united: head counts {} and {} do not match (a per-KV-head pattern may serve a "
              "multiple of its heads)", a.num_heads, b.num_heads);
  const int64_t ga = heads / a.num_heads, gb = heads / b.num_heads;
  SparsePattern u;
  u.seq_len_q = a.seq_len_q;
  u.seq_len_k = a.seq_len_k;
  u.block_q = a.block_q;
  u.block_k = a.block_k;
  u.causal = a.causal;
  u.num_heads = heads;
  u.per_kv_head = a.per_kv_head && b.per_kv_head;
  u.band = std::max(a.band, b.band);  // bands are nested: the wider one is their union
  u.block_indptr.assign(1, 0);
  std::vector<int32_t> merged;
  const auto row_of = [](const SparsePattern& p, int64_t h, int64_t qb) {
    const int64_t r = p.row(h, qb);
    return std::pair(p.block_indices.begin() + p.block_indptr[size_t(r)],
                     p.block_indices.begin() + p.block_indptr[size_t(r) + 1]);
  };
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t qb = 0; qb < u.num_q_blocks(); ++qb) {
      const auto [a0, a1] = row_of(a, h / ga, qb);
      const auto [b0, b1] = row_of(b, h / gb, qb);
      merged.clear();
      std::set_union(a0, a1, b0, b1, std::back_inserter(merged));
      u.block_indices.insert(u.block_indices.end(), merged.begin(), merged.end());
      u.block_indptr.push_back(int32_t(u.block_indices.size()));
    }
  }
  if (a.has_columns() || b.has_columns()) {
    u.column_indptr.assign(1, 0);
    const auto cols_of = [](const SparsePattern& p, int64_t h) {
      if (!p.has_columns()) return std::pair(p.columns.end(), p.columns.end());
      return std::pair(p.columns.begin() + p.column_indptr[size_t(h)],
                       p.columns.begin() + p.column_indptr[size_t(h) + 1]);
    };
    for (int64_t h = 0; h < heads; ++h) {
      const auto [a0, a1] = cols_of(a, h / ga);
      const auto [b0, b1] = cols_of(b, h / gb);
      merged.clear();
      std::set_union(a0, a1, b0, b1, std::back_inserter(merged));
      u.columns.insert(u.columns.end(), merged.begin(), merged.end());
      u.column_indptr.push_back(int32_t(u.columns.size()));
    }
  }
  u.validate();
  return u;
}

}  // namespace sieve::attention
