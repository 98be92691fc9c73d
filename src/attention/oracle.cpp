// Oracle block pattern (see oracle.h): exact per-row softmax over the causal keys, block masses
// accumulated per (head, query block), then a greedy largest-mass-first cut per query block.
#include "sieve/attention/oracle.h"

#include <algorithm>
#include <cmath>

#include "sieve/core/error.h"
#include "sieve/core/threading.h"

namespace sieve::attention {

SparsePattern oracle_pattern(const TensorView& q, const TensorView& k, const AttentionShape& shape,
                             const std::vector<int64_t>& rows, double share, int block) {
  SIEVE_CHECK(share > 0 && share <= 1, "oracle_pattern: share must be in (0, 1], got {}", share);
  SIEVE_CHECK(block >= 1, "oracle_pattern: block must be >= 1, got {}", block);
  SIEVE_CHECK(shape.num_heads_kv >= 1 && shape.num_heads_q % shape.num_heads_kv == 0,
              "oracle_pattern: query heads {} not a multiple of KV heads {}", shape.num_heads_q,
              shape.num_heads_kv);
  for (int64_t i : rows)
    SIEVE_CHECK(i >= 0 && i < shape.seq_len_q, "oracle_pattern: row {} outside [0, {})", i, shape.seq_len_q);
  const int64_t Lq = shape.seq_len_q, Lk = shape.seq_len_k, D = shape.head_dim;
  const int64_t Hq = shape.num_heads_q, group = Hq / shape.num_heads_kv;
  SparsePattern p = SparsePattern::dense(int(Hq), Lq, Lk, block, block, true);
  const int64_t nqb = p.num_q_blocks(), nkb = p.num_k_blocks();
  const double scale = 1.0 / std::sqrt(double(D));
  std::vector<double> mass(size_t(Hq * nqb * nkb), 0.0);
  std::vector<float> kf;
  for (int64_t h = 0; h < Hq; ++h) {
    if (h % group == 0) {
      kf.resize(size_t(Lk * D));
      for (int64_t j = 0; j < Lk; ++j)
        for (int64_t e = 0; e < D; ++e) kf[size_t(j * D + e)] = k.get(h / group, j, e);
    }
#pragma omp parallel for num_threads(num_threads()) schedule(dynamic, 4)
    for (size_t r = 0; r < rows.size(); ++r) {
      const int64_t i = rows[r], pos = i + Lk - Lq, qb = i / block;
      std::vector<float> qi(static_cast<size_t>(D));
      std::vector<double> s(static_cast<size_t>(pos + 1));
      for (int64_t e = 0; e < D; ++e) qi[size_t(e)] = q.get(h, i, e);
      double mx = -1e300;
      for (int64_t j = 0; j <= pos; ++j) {
        const float* kj = &kf[size_t(j * D)];
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t e = 0;
        for (; e + 8 <= D; e += 8)
          for (int t = 0; t < 8; ++t) acc[t] += qi[size_t(e + t)] * kj[e + t];
        double dot = 0;
        for (int t = 0; t < 8; ++t) dot += acc[t];
        for (; e < D; ++e) dot += double(qi[size_t(e)]) * kj[e];
        s[size_t(j)] = scale * dot;
        mx = std::max(mx, s[size_t(j)]);
      }
      double total = 0;
      std::vector<double> blk(static_cast<size_t>(nkb), 0.0);
      for (int64_t j = 0; j <= pos; ++j) {
        const double x = std::exp(s[size_t(j)] - mx);
        total += x;
        blk[size_t(j / block)] += x;
      }
      double* dst = &mass[size_t((h * nqb + qb) * nkb)];
      for (int64_t b = 0; b < nkb; ++b) {
        if (blk[size_t(b)] == 0) continue;
#pragma omp atomic
        dst[b] += blk[size_t(b)] / total;
      }
    }
  }
  SparsePattern out = p;
  out.block_indices.clear();
  out.block_indptr.assign(1, 0);
  for (int64_t h = 0; h < Hq; ++h)
    for (int64_t qb = 0; qb < nqb; ++qb) {
      const int32_t* b0 = p.block_indices.data() + p.block_indptr[size_t(p.row(h, qb))];
      const int32_t* b1 = p.block_indices.data() + p.block_indptr[size_t(p.row(h, qb)) + 1];
      const double* m = &mass[size_t((h * nqb + qb) * nkb)];
      double total = 0;
      for (const int32_t* b = b0; b != b1; ++b) total += m[*b];
      std::vector<int32_t> order(b0, b1);
      const int32_t diag = b1[-1];
      std::stable_sort(order.begin(), order.end(), [&](int32_t x, int32_t y) {
        const bool fx = x == 0 || x == diag, fy = y == 0 || y == diag;
        if (fx != fy) return fx;
        return m[x] > m[y];
      });
      std::vector<int32_t> keep;
      double acc = 0;
      for (int32_t b : order) {
        const bool forced = b == 0 || b == diag;
        if (!forced && acc >= share * total) break;
        keep.push_back(b);
        acc += m[b];
      }
      std::sort(keep.begin(), keep.end());
      out.block_indices.insert(out.block_indices.end(), keep.begin(), keep.end());
      out.block_indptr.push_back(int32_t(out.block_indices.size()));
    }
  out.validate();
  return out;
}

}  // namespace sieve::attention
