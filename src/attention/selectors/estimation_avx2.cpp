// AVX2 + FMA variants of the selector estimation kernels (compiled with -mavx2 -mfma by the
// *_avx2.cpp naming rule; only called when the CPU reports both features).
#include "estimation.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include <cmath>
#include <limits>

namespace sieve::attention::estimation {

namespace {

inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 sh = _mm_movehdup_ps(lo);
  lo = _mm_add_ps(lo, sh);
  sh = _mm_movehl_ps(sh, lo);
  lo = _mm_add_ss(lo, sh);
  return _mm_cvtss_f32(lo);
}

// Dot products of `R` rows of A with `C` rows of B over k (k8 = k rounded down to 8).
template <int R, int C>
inline void micro(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                  int64_t k, float alpha) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < C; ++j) acc[r][j] = _mm256_setzero_ps();
  const int64_t k8 = k & ~int64_t(7);
  for (int64_t p = 0; p < k8; p += 8) {
    __m256 av[R];
    for (int r = 0; r < R; ++r) av[r] = _mm256_loadu_ps(a + r * lda + p);
    for (int j = 0; j < C; ++j) {
      const __m256 bv = _mm256_loadu_ps(b + j * ldb + p);
      for (int r = 0; r < R; ++r) acc[r][j] = _mm256_fmadd_ps(av[r], bv, acc[r][j]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int j = 0; j < C; ++j) {
      float s = hsum(acc[r][j]);
      for (int64_t p = k8; p < k; ++p) s += a[r * lda + p] * b[j * ldb + p];
      c[r * ldc + j] = alpha * s;
    }
  }
}

void gemm_nt_avx2(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                  int64_t m, int64_t n, int64_t k, float alpha) {
  // B is streamed in panels that stay in L2 while every row pair of A passes over them.
  const int64_t panel_bytes = 256 * 1024;
  int64_t nb = panel_bytes / (k * int64_t(sizeof(float)));
  nb = nb < 4 ? 4 : (nb & ~int64_t(3));
  for (int64_t j0 = 0; j0 < n; j0 += nb) {
    const int64_t j1 = j0 + nb < n ? j0 + nb : n;
    int64_t i = 0;
    for (; i + 2 <= m; i += 2) {
      int64_t j = j0;
      for (; j + 4 <= j1; j += 4)
        micro<2, 4>(a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc, k, alpha);
      for (; j < j1; ++j)
        micro<2, 1>(a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc, k, alpha);
    }
    for (; i < m; ++i) {
      int64_t j = j0;
      for (; j + 4 <= j1; j += 4)
        micro<1, 4>(a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc, k, alpha);
      for (; j < j1; ++j)
        micro<1, 1>(a + i * lda, lda, b + j * ldb, ldb, c + i * ldc + j, ldc, k, alpha);
    }
  }
}

// exp on 8 lanes: Cephes-style range reduction x = n ln2 + r and a degree-6 polynomial
// (relative error ~2e-7 on [-87, 88]); inputs below -87.3 give 0.
inline __m256 exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3f);
  const __m256 hi = _mm256_set1_ps(88.3762626647949f);
  const __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  __m256 fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
  fx = _mm256_floor_ps(fx);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 x2 = _mm256_mul_ps(x, x);
  y = _mm256_fmadd_ps(y, x2, _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  __m256i e = _mm256_cvttps_epi32(fx);
  e = _mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(127)), 23);
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
  return _mm256_andnot_ps(underflow, y);
}

double exp_shift_sum_avx2(float* x, int64_t n, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  double sum = hsum(acc);
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - shift);
    sum += x[i];
  }
  return sum;
}

}  // namespace

const Kernels* avx2_kernels() {
  static const Kernels k{&gemm_nt_avx2, &exp_shift_sum_avx2, "avx2"};
  return &k;
}

}  // namespace sieve::attention::estimation

#else
namespace sieve::attention::estimation {
const Kernels* avx2_kernels() { return nullptr; }
}  // namespace sieve::attention::estimation
#endif
