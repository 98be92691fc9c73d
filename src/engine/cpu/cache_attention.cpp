#include "cache_attention.h"

#include "linear_kernels.h"

#include <cmath>
#include <limits>
#include <vector>

namespace sieve::engine::detail {

void cache_attention(const CacheAttentionArgs& a) {
  const KvCache& cache = *a.cache;
  const int64_t d = cache.head_dim();
  const int64_t group = a.num_heads / cache.num_kv_heads();
  const int64_t rows = a.first_new + a.num_new;  // keys a query may see lie below this row
  const int64_t ld = a.num_heads * d;
  const std::span<const int64_t> pos = cache.positions();
  const int64_t work = a.num_heads * a.num_new;

#pragma omp parallel num_threads(team_size(work * rows * d))
  {
    std::vector<float> scores(static_cast<size_t>(rows));
    std::vector<int32_t> keys(static_cast<size_t>(rows));
    std::vector<float> acc(static_cast<size_t>(d));
#pragma omp for schedule(dynamic, 1)
    for (int64_t w = 0; w < work; ++w) {
      const int64_t h = w / a.num_new, i = w % a.num_new;
      const int64_t hk = h / group;
      const float* q = a.q + i * ld + h * d;
      const int64_t pq = pos[size_t(a.first_new + i)];
      // Collect visible keys: every cached row (window permitting), then the new tokens the
      // mask allows.
      int64_t nk = 0;
      for (int64_t j = 0; j < rows; ++j) {
        if (j >= a.first_new) {
          const int64_t m = j - a.first_new;
          const bool seen = a.maybe_tree ? a.maybe_tree->get(i, m) : m <= i;
          if (!seen) continue;
        }
        if (a.window > 0 && pq - pos[size_t(j)] >= a.window) continue;
        keys[size_t(nk++)] = int32_t(j);
      }
      float* o = a.out + i * ld + h * d;
      if (nk == 0) {
        for (int64_t c = 0; c < d; ++c) o[c] = 0.0f;
        continue;
      }
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t r = 0; r < nk; ++r) {
        const float* k = cache.key_row(a.layer, hk, keys[size_t(r)]);
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t c = 0; c < d; ++c) s += q[c] * k[c];
        s *= a.scale;
        scores[size_t(r)] = s;
        mx = s > mx ? s : mx;
      }
      float sum = 0.0f;
      for (int64_t r = 0; r < nk; ++r) {
        const float e = std::exp(scores[size_t(r)] - mx);
        scores[size_t(r)] = e;
        sum += e;
      }
      for (int64_t c = 0; c < d; ++c) acc[size_t(c)] = 0.0f;
      for (int64_t r = 0; r < nk; ++r) {
        const float* v = cache.value_row(a.layer, hk, keys[size_t(r)]);
        const float p = scores[size_t(r)];
        float* ac = acc.data();
#pragma omp simd
        for (int64_t c = 0; c < d; ++c) ac[c] += p * v[c];
      }
      const float inv = 1.0f / sum;
      for (int64_t c = 0; c < d; ++c) o[c] = acc[size_t(c)] * inv;
    }
  }
}

}  // namespace sieve::engine::detail
