// AVX2 + FMA bodies of linear(): a GEMV for few tokens and a packed 6x16 GEMM for many.
// bf16 weights are widened to f32 exactly (shift into the high half), so results equal the f32
// path on the same weight values up to summation order.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "gemm_blocking.h"
#include "linear_kernels.h"
#include "sieve/core/threading.h"

namespace sieve::engine::detail {

namespace {

constexpr int kNr = 16;    // output features per packed panel (two ymm)
constexpr int kMr = 6;     // tokens per micro-tile (12 accumulators)
constexpr int kKc = 256;   // depth of a packed panel: 16 KiB of f32, stays in L1
constexpr int kMc = 96;    // tokens per block: kMc x kKc f32 of x stays in L2

inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const BF16* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
inline float to_f32(float v) { return v; }
inline float to_f32(BF16 v) { return bf16_to_f32(v); }

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <class W>
inline float dot(const float* x, const W* w, int64_t k) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= k; i += 32) {
    a0 = _mm256_fmadd_ps(load8(w + i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(load8(w + i + 8), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(load8(w + i + 16), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(load8(w + i + 24), _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= k; i += 8) a0 = _mm256_fmadd_ps(load8(w + i), _mm256_loadu_ps(x + i), a0);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; i < k; ++i) s += x[i] * to_f32(w[i]);
  return s;
}

template <class W>
void gemv(const float* x, int64_t num_tokens, const W* w, int64_t n, int64_t k, int64_t row0,
          int64_t row1, float* y) {
  for (int64_t j = row0; j < row1; ++j) {
    const W* row = w + j * k;
    for (int64_t t = 0; t < num_tokens; ++t) y[t * n + j] = dot(x + t * k, row, k);
  }
}

// c[i, 0:nr] (+)= sum_kk x[i, kk] * bp[kk, 0:16] for i < MR.
template <int MR>
void micro(const float* x, int64_t ldx, const float* bp, int kc, float* c, int64_t ldc, bool add,
           int nr) {
  __m256 acc0[MR], acc1[MR];
  #pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc0[i] = acc1[i] = _mm256_setzero_ps();
  for (int kk = 0; kk < kc; ++kk) {
    const __m256 b0 = _mm256_load_ps(bp + kk * kNr);
    const __m256 b1 = _mm256_load_ps(bp + kk * kNr + 8);
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(x + i * ldx + kk);
      acc0[i] = _mm256_fmadd_ps(a, b0, acc0[i]);
      acc1[i] = _mm256_fmadd_ps(a, b1, acc1[i]);
    }
  }
  #pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float* cr = c + i * ldc;
    if (nr == kNr) {
      if (add) {
        acc0[i] = _mm256_add_ps(acc0[i], _mm256_loadu_ps(cr));
        acc1[i] = _mm256_add_ps(acc1[i], _mm256_loadu_ps(cr + 8));
      }
      _mm256_storeu_ps(cr, acc0[i]);
      _mm256_storeu_ps(cr + 8, acc1[i]);
    } else {
      alignas(32) float tmp[kNr];
      _mm256_store_ps(tmp, acc0[i]);
      _mm256_store_ps(tmp + 8, acc1[i]);
      for (int jj = 0; jj < nr; ++jj) cr[jj] = add ? cr[jj] + tmp[jj] : tmp[jj];
    }
  }
}

template <class W>
struct GemmKernel {
  static constexpr int kNr = detail::kNr, kMr = detail::kMr, kKc = detail::kKc, kMc = detail::kMc;
  static constexpr int kPackSize = kKc * kNr;
  using Packed = float;
  const float* x;
  const W* w;
  float* y;
  int64_t n, k;

  // bp[kk * 16 + jj] = w[n0 + jj, k0 + kk] as f32; columns jj >= nr are zero.
  void pack(float* bp, int64_t n0, int nr, int64_t k0, int kc) const {
    for (int jj = 0; jj < nr; ++jj) {
      const W* row = w + (n0 + jj) * k + k0;
      for (int kk = 0; kk < kc; ++kk) bp[kk * kNr + jj] = to_f32(row[kk]);
    }
    for (int jj = nr; jj < kNr; ++jj) {
      for (int kk = 0; kk < kc; ++kk) bp[kk * kNr + jj] = 0.0f;
    }
  }
  template <int MR>
  void tile(const float* bp, int64_t t, int64_t n0, int nr, int64_t k0, int kc, bool add) const {
    micro<MR>(x + t * k + k0, k, bp, kc, y + t * n + n0, n, add, nr);
  }
};

}  // namespace

void gemv_rows_avx2(const float* x, int64_t num_tokens, const Matrix& w, int64_t row0,
                    int64_t row1, float* y) {
  if (w.dtype == DType::kF32) {
    gemv(x, num_tokens, static_cast<const float*>(w.data), w.rows, w.cols, row0, row1, y);
  } else {
    gemv(x, num_tokens, static_cast<const BF16*>(w.data), w.rows, w.cols, row0, row1, y);
  }
}

void gemm_avx2(const float* x, int64_t num_tokens, const Matrix& w, float* y) {
  const int team = team_size(w.rows * w.cols * num_tokens);
  if (w.dtype == DType::kF32) {
    GemmKernel<float> kern{x, static_cast<const float*>(w.data), y, w.rows, w.cols};
    gemm_blocked(kern, num_tokens, w.rows, w.cols, team);
  } else {
    GemmKernel<BF16> kern{x, static_cast<const BF16*>(w.data), y, w.rows, w.cols};
    gemm_blocked(kern, num_tokens, w.rows, w.cols, team);
  }
}

}  // namespace sieve::engine::detail
