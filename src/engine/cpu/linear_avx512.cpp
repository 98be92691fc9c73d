// AVX-512 bodies of linear(). f32 weights: FMA GEMV and a packed 6x32 GEMM. bf16 weights:
// _mm512_dpbf16_ps (AVX-512 BF16), which multiplies bf16 pairs and accumulates in f32; x is
// rounded to bf16 (nearest even) once per call, as llama.cpp does for bf16 weights.
// GCC 12 warns that _mm512_undefined_* in its own reduce/mask intrinsics "may be used
// uninitialized"; the value is never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "gemm_blocking.h"
#include "linear_kernels.h"
#include "sieve/core/threading.h"

namespace sieve::engine::detail {

namespace {

constexpr int kNr = 32;   // output features per panel (two zmm)
constexpr int kMr = 6;    // tokens per micro-tile (12 accumulators)
constexpr int kKc = 256;  // panel depth
constexpr int kMc = 240;  // tokens per block (x block 240 KiB f32 / 120 KiB bf16, in L2)

inline __mmask16 tail16(int64_t r) { return r >= 16 ? __mmask16(0xffff) : __mmask16((1u << r) - 1); }
inline __mmask32 tail32(int64_t r) {
  return r >= 32 ? __mmask32(0xffffffffu) : __mmask32((uint32_t(1) << r) - 1);
}

// ---------------------------------------------------------------- f32 weights

void gemv_f32(const float* x, int64_t num_tokens, const float* w, int64_t n, int64_t k,
              int64_t row0, int64_t row1, float* y) {
  for (int64_t j = row0; j < row1; ++j) {
    const float* row = w + j * k;
    for (int64_t t = 0; t < num_tokens; ++t) {
      const float* xr = x + t * k;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      int64_t i = 0;
      for (; i + 64 <= k; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(row + i), _mm512_loadu_ps(xr + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(row + i + 16), _mm512_loadu_ps(xr + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(row + i + 32), _mm512_loadu_ps(xr + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(row + i + 48), _mm512_loadu_ps(xr + i + 48), a3);
      }
      for (; i < k; i += 16) {
        const __mmask16 m = tail16(k - i);
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, row + i), _mm512_maskz_loadu_ps(m, xr + i), a0);
      }
      y[t * n + j] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    }
  }
}

template <int MR>
void micro_f32(const float* x, int64_t ldx, const float* bp, int kc, float* c, int64_t ldc,
               bool add, int nr) {
  __m512 acc0[MR], acc1[MR];
  #pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
  for (int kk = 0; kk < kc; ++kk) {
    const __m512 b0 = _mm512_load_ps(bp + kk * kNr);
    const __m512 b1 = _mm512_load_ps(bp + kk * kNr + 16);
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(x[i * ldx + kk]);
      acc0[i] = _mm512_fmadd_ps(a, b0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(a, b1, acc1[i]);
    }
  }
  const __mmask16 m0 = tail16(nr), m1 = tail16(nr - 16 > 0 ? nr - 16 : 0);
  #pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float* cr = c + i * ldc;
    if (add) {
      acc0[i] = _mm512_add_ps(acc0[i], _mm512_maskz_loadu_ps(m0, cr));
      acc1[i] = _mm512_add_ps(acc1[i], _mm512_maskz_loadu_ps(m1, cr + 16));
    }
    _mm512_mask_storeu_ps(cr, m0, acc0[i]);
    _mm512_mask_storeu_ps(cr + 16, m1, acc1[i]);
  }
}

struct GemmF32 {
  static constexpr int kNr = detail::kNr, kMr = detail::kMr, kKc = detail::kKc, kMc = detail::kMc;
  static constexpr int kPackSize = kKc * kNr;
  using Packed = float;
  const float* x;
  const float* w;
  float* y;
  int64_t n, k;

  // bp[kk * 32 + jj] = w[n0 + jj, k0 + kk]; columns jj >= nr are zero.
  void pack(float* bp, int64_t n0, int nr, int64_t k0, int kc) const {
    for (int jj = 0; jj < kNr; ++jj) {
      const float* row = w + (n0 + jj) * k + k0;
      for (int kk = 0; kk < kc; ++kk) bp[kk * kNr + jj] = jj < nr ? row[kk] : 0.0f;
    }
  }
  template <int MR>
  void tile(const float* bp, int64_t t, int64_t n0, int nr, int64_t k0, int kc, bool add) const {
    micro_f32<MR>(x + t * k + k0, k, bp, kc, y + t * n + n0, n, add, nr);
  }
};

// ---------------------------------------------------------------- bf16 weights

/// x [T, k] f32 -> bf16 [T, kp] (round to nearest even), zero padded to kp.
std::vector<uint16_t> to_bf16(const float* x, int64_t num_tokens, int64_t k, int64_t kp) {
  std::vector<uint16_t> xb(size_t(num_tokens * kp), 0);
  for (int64_t t = 0; t < num_tokens; ++t) {
    for (int64_t i = 0; i < k; ++i) xb[size_t(t * kp + i)] = f32_to_bf16(x[t * k + i]).bits;
  }
  return xb;
}

void gemv_bf16(const float* x, int64_t num_tokens, const uint16_t* w, int64_t n, int64_t k,
               int64_t row0, int64_t row1, float* y) {
  // x is rounded to bf16 once per call; callers hand over blocks of many rows, so this is a small
  // fraction of the row work.
  const int64_t kp = (k + 31) / 32 * 32;
  const std::vector<uint16_t> xb = to_bf16(x, num_tokens, k, kp);
  for (int64_t j = row0; j < row1; ++j) {
    const uint16_t* row = w + j * k;
    for (int64_t t = 0; t < num_tokens; ++t) {
      const uint16_t* xr = xb.data() + t * kp;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0;
      int64_t i = 0;
      for (; i + 64 <= k; i += 64) {
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_loadu_si512(row + i),
                              (__m512bh)_mm512_loadu_si512(xr + i));
        a1 = _mm512_dpbf16_ps(a1, (__m512bh)_mm512_loadu_si512(row + i + 32),
                              (__m512bh)_mm512_loadu_si512(xr + i + 32));
      }
      for (; i < k; i += 32) {
        const __m512i wv = _mm512_maskz_loadu_epi16(tail32(k - i), row + i);
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)wv, (__m512bh)_mm512_loadu_si512(xr + i));
      }
      y[t * n + j] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    }
  }
}

// bp holds k-pairs: bp[(kk / 2) * 64 + jj * 2 + (kk & 1)] = w[n0 + jj, k0 + kk].
template <int MR>
void micro_bf16(const uint16_t* x, int64_t ldx, const uint16_t* bp, int pairs, float* c,
                int64_t ldc, bool add, int nr) {
  __m512 acc0[MR], acc1[MR];
  #pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
  for (int q = 0; q < pairs; ++q) {
    const __m512bh b0 = (__m512bh)_mm512_load_si512(bp + q * 2 * kNr);
    const __m512bh b1 = (__m512bh)_mm512_load_si512(bp + q * 2 * kNr + kNr);
    #pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      uint32_t pair;
      std::memcpy(&pair, x + i * ldx + 2 * q, 4);
      const __m512bh a = (__m512bh)_mm512_set1_epi32(int(pair));
      acc0[i] = _mm512_dpbf16_ps(acc0[i], a, b0);
      acc1[i] = _mm512_dpbf16_ps(acc1[i], a, b1);
    }
  }
  const __mmask16 m0 = tail16(nr), m1 = tail16(nr - 16 > 0 ? nr - 16 : 0);
  #pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
    float* cr = c + i * ldc;
    if (add) {
      acc0[i] = _mm512_add_ps(acc0[i], _mm512_maskz_loadu_ps(m0, cr));
      acc1[i] = _mm512_add_ps(acc1[i], _mm512_maskz_loadu_ps(m1, cr + 16));
    }
    _mm512_mask_storeu_ps(cr, m0, acc0[i]);
    _mm512_mask_storeu_ps(cr + 16, m1, acc1[i]);
  }
}

struct GemmBf16 {
  static constexpr int kNr = detail::kNr, kMr = detail::kMr, kKc = detail::kKc, kMc = detail::kMc;
  static constexpr int kPackSize = kKc * kNr;
  using Packed = uint16_t;
  const uint16_t* xb;  // x rounded to bf16, [num_tokens, kp]
  int64_t kp;
  const uint16_t* w;
  float* y;
  int64_t n, k;

  // k-pairs: bp[(kk / 2) * 64 + jj * 2 + (kk & 1)] = w[n0 + jj, k0 + kk]; zero outside.
  void pack(uint16_t* bp, int64_t n0, int nr, int64_t k0, int kc) const {
    const int pairs = (kc + 1) / 2;
    for (int jj = 0; jj < kNr; ++jj) {
      const uint16_t* row = w + (n0 + jj) * k + k0;
      for (int kk = 0; kk < 2 * pairs; ++kk) {
        bp[(kk / 2) * 2 * kNr + jj * 2 + (kk & 1)] = (jj < nr && kk < kc) ? row[kk] : 0;
      }
    }
  }
  template <int MR>
  void tile(const uint16_t* bp, int64_t t, int64_t n0, int nr, int64_t k0, int kc,
            bool add) const {
    micro_bf16<MR>(xb + t * kp + k0, kp, bp, (kc + 1) / 2, y + t * n + n0, n, add, nr);
  }
};

}  // namespace

void gemv_rows_avx512(const float* x, int64_t num_tokens, const Matrix& w, int64_t row0,
                      int64_t row1, float* y) {
  if (w.dtype == DType::kF32) {
    gemv_f32(x, num_tokens, static_cast<const float*>(w.data), w.rows, w.cols, row0, row1, y);
  } else {
    gemv_bf16(x, num_tokens, static_cast<const uint16_t*>(w.data), w.rows, w.cols, row0, row1, y);
  }
}

void gemm_avx512(const float* x, int64_t num_tokens, const Matrix& w, float* y) {
  const int team = team_size(w.rows * w.cols * num_tokens);
  if (w.dtype == DType::kF32) {
    GemmF32 kern{x, static_cast<const float*>(w.data), y, w.rows, w.cols};
    gemm_blocked(kern, num_tokens, w.rows, w.cols, team);
  } else {
    const int64_t kp = (w.cols + 1) / 2 * 2;  // pairs: pad x with one zero column when odd
    const std::vector<uint16_t> xb = to_bf16(x, num_tokens, w.cols, kp);
    GemmBf16 kern{xb.data(), kp, static_cast<const uint16_t*>(w.data), y, w.rows, w.cols};
    gemm_blocked(kern, num_tokens, w.rows, w.cols, team);
  }
}

}  // namespace sieve::engine::detail
