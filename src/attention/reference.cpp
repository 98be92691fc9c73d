// Exact f64 attention: two passes per row (max, then exp-sum), no tiling, no SIMD.
#include "sieve/attention/reference.h"

#include "sieve/core/error.h"

#include <cmath>
#include <limits>
#include <memory>

namespace sieve::attention {

ReferenceResult reference_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                                    const AttentionOptions& opts, const KeyMask& mask) {
  const AttentionShape s = check_attention_inputs(q, k, v);
  const int64_t D = s.head_dim, Lq = s.seq_len_q, Lk = s.seq_len_k;
  const double scale = double(effective_scale(opts, D));
  ReferenceResult r;
  r.out.assign(size_t(s.num_heads_q * Lq * D), 0.0);
  r.lse.assign(size_t(s.num_heads_q * Lq), -std::numeric_limits<double>::infinity());
  std::vector<double> qi(static_cast<size_t>(D)), scores(static_cast<size_t>(Lk));
  std::vector<uint8_t> keep(static_cast<size_t>(Lk));
  for (int64_t h = 0; h < s.num_heads_q; ++h) {
    const int64_t g = h / s.group_size();
    for (int64_t i = 0; i < Lq; ++i) {
      const int64_t pos = i + s.q_offset();
      for (int64_t d = 0; d < D; ++d) qi[d] = q.get(h, i, d);
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < Lk; ++j) {
        keep[j] = (!opts.causal || j <= pos) && (!mask || mask(h, i, j));
        if (!keep[j]) continue;
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += qi[d] * double(k.get(g, j, d));
        scores[j] = scale * dot;
        m = std::max(m, scores[j]);
      }
      if (m == -std::numeric_limits<double>::infinity()) continue;  // no visible key: zeros, -inf
      double sum = 0;
      double* o = &r.out[size_t((h * Lq + i) * D)];
      for (int64_t j = 0; j < Lk; ++j) {
        if (!keep[j]) continue;
        const double p = std::exp(scores[j] - m);
        sum += p;
        for (int64_t d = 0; d < D; ++d) o[d] += p * double(v.get(g, j, d));
      }
      for (int64_t d = 0; d < D; ++d) o[d] /= sum;
      r.lse[size_t(h * Lq + i)] = m + std::log(sum);
    }
  }
  return r;
}

KeyMask mask_from_pattern(const SparsePattern& pattern, int64_t num_heads_q, int64_t num_heads_kv) {
  pattern.validate();
  SIEVE_CHECK(num_heads_q > 0 && num_heads_kv > 0 && num_heads_q % num_heads_kv == 0,
              "mask_from_pattern: num_heads_q ({}) must be a positive multiple of num_heads_kv ({})",
              num_heads_q, num_heads_kv);
  const int64_t want = pattern.per_kv_head ? num_heads_kv : num_heads_q;
  SIEVE_CHECK(pattern.num_heads == want,
              "mask_from_pattern: pattern has {} heads but there are {} {} heads", pattern.num_heads,
              want, pattern.per_kv_head ? "KV" : "query");
  const int64_t group = pattern.per_kv_head ? num_heads_q / num_heads_kv : 1;
  auto p = std::make_shared<const SparsePattern>(pattern);
  return [p, group](int64_t head_q, int64_t i, int64_t j) {
    return p->contains(head_q / group, i, j);
  };
}

}  // namespace sieve::attention
