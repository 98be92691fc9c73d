// The FlashAttention-2 chunk step written once over a SIMD traits type V and a register-blocking
// config C; each kernel_<isa>.cpp defines V and C and includes this file (see kernel.h for the
// buffer layouts). Everything here is a template over TU-local types or `static`, inside an
// anonymous namespace: every ISA translation unit gets private copies, so code compiled with
// AVX-512 flags can never be merged by the linker into the AVX2 or scalar paths.
//
// Per chunk of n keys for a tile of rows (queries):
//   1. convert the chunk's K and V rows to f32 (K stays bf16 on the dot-product path);
//   2. S^T = K_chunk . Q^T with an (kMK keys x kNVQ vectors of query lanes) register block;
//      queries are the vector lanes, so the row max and row sum of the softmax are plain
//      vertical vector operations, no horizontal reductions;
//   3. masks (per key an interval of kept rows), online softmax in the log2 domain with exp2;
//   4. O = alpha * O + P V with a (kMR rows x kNVD vectors of head_dim) register block.
// V must provide: reg, W, zero, set1, bcast, load, store, fma (a*b+c), mul, add, sub, max/min with
// the x86 NaN rule (max(a, b) = a > b ? a : b), round (nearest), pow2i (2^n for integral n in
// [-127, 127], 2^-127 -> +0), neg_inf_to_zero, mask_rows, load_cvt; and for the bf16 dot-product
// path preg, load_pairs, bcast_pair, dp (acc + odd products, then + even products).
#pragma once

#include "kernel.h"

namespace sieve::attention::cpu {
namespace {

template <int N>
struct Int {
  static constexpr int value = N;
};

// Calls f(Int<n>{}) for a runtime n in [1, N]: selects the tail variant of a register block.
template <int N, class F>
inline void with_int(int n, F&& f) {
  if constexpr (N >= 1) {
    if (n == N) {
      f(Int<N>{});
    } else {
      with_int<N - 1>(n, f);
    }
  }
}

template <class T>
inline T tmin(T a, T b) {
  return a < b ? a : b;
}

// 2^x for x <= 0 (also correct up to x = 127): 2^round(x) * p(x - round(x)), p the degree-7
// Taylor polynomial of 2^f = e^(f ln 2) on [-0.5, 0.5] (relative error 7e-9, below f32 rounding).
// x = -inf (masked scores) gives exactly 0 because x is clamped to -127 and 2^-127 is built as +0;
// NaN stays NaN (the clamps return their second operand when either is NaN).
template <class V>
inline typename V::reg vexp2(typename V::reg x) {
  using reg = typename V::reg;
  x = V::max(V::set1(-127.0f), x);
  x = V::min(V::set1(127.0f), x);
  const reg n = V::round(x);
  const reg f = V::sub(x, n);
  reg p = V::set1(1.5252733804059838e-05f);
  p = V::fma(p, f, V::set1(1.5403530393381606e-04f));
  p = V::fma(p, f, V::set1(1.3333558146428441e-03f));
  p = V::fma(p, f, V::set1(9.618129107628477e-03f));
  p = V::fma(p, f, V::set1(5.5504108664821576e-02f));
  p = V::fma(p, f, V::set1(2.402265069591007e-01f));
  p = V::fma(p, f, V::set1(6.931471805599453e-01f));
  p = V::fma(p, f, V::set1(1.0f));
  return V::mul(p, V::pow2i(n));
}

// S^T[t][lane] for NK keys x (NVQ * W) query lanes: acc += k[t][d] * qp[d][lane] over d.
template <class V, int NK, int NVQ>
inline void s_block_f32(const float* qp, const float* kc, int64_t ldk, int64_t head_dim,
                        float* s) {
  using reg = typename V::reg;
  constexpr int PW = NVQ * V::W;
  reg acc[NK][NVQ];
#pragma GCC unroll 16
  for (int t = 0; t < NK; ++t)
#pragma GCC unroll 8
    for (int v = 0; v < NVQ; ++v) acc[t][v] = V::zero();
  for (int64_t d = 0; d < head_dim; ++d) {
    reg q[NVQ];
#pragma GCC unroll 8
    for (int v = 0; v < NVQ; ++v) q[v] = V::load(qp + d * PW + v * V::W);
#pragma GCC unroll 16
    for (int t = 0; t < NK; ++t) {
      const reg kb = V::bcast(kc + t * ldk + d);
#pragma GCC unroll 8
      for (int v = 0; v < NVQ; ++v) acc[t][v] = V::fma(kb, q[v], acc[t][v]);
    }
  }
#pragma GCC unroll 16
  for (int t = 0; t < NK; ++t)
#pragma GCC unroll 8
    for (int v = 0; v < NVQ; ++v) V::store(s + t * kScoreLd + v * V::W, acc[t][v]);
}

// Same on bf16 pairs: lane i of a pair register holds (q[i][2e], q[i][2e+1]); the key pair is
// broadcast; the raw dot products are scaled to the log2 domain on the way out.
template <class V, int NK, int NVQ>
inline void s_block_dp(const uint16_t* qp, const uint16_t* kc, int64_t ldk, int64_t head_dim,
                       float* s, float scale) {
  using reg = typename V::reg;
  using preg = typename V::preg;
  constexpr int PW = NVQ * V::W;
  reg acc[NK][NVQ];
#pragma GCC unroll 16
  for (int t = 0; t < NK; ++t)
#pragma GCC unroll 8
    for (int v = 0; v < NVQ; ++v) acc[t][v] = V::zero();
  for (int64_t e = 0; e < head_dim / 2; ++e) {
    preg q[NVQ];
#pragma GCC unroll 8
    for (int v = 0; v < NVQ; ++v) q[v] = V::load_pairs(qp + (e * PW + v * V::W) * 2);
#pragma GCC unroll 16
    for (int t = 0; t < NK; ++t) {
      const preg kb = V::bcast_pair(kc + t * ldk + 2 * e);
#pragma GCC unroll 8
      for (int v = 0; v < NVQ; ++v) acc[t][v] = V::dp(acc[t][v], kb, q[v]);
    }
  }
  const reg sc = V::set1(scale);
#pragma GCC unroll 16
  for (int t = 0; t < NK; ++t)
#pragma GCC unroll 8
    for (int v = 0; v < NVQ; ++v) V::store(s + t * kScoreLd + v * V::W, V::mul(acc[t][v], sc));
}

template <class V, class C, bool kDp>
void compute_scores(const TileInfo& ti, const TileScratch& sc, int n) {
  constexpr int PW = C::kNVQ * V::W;
  const int64_t D = ti.head_dim;
  for (int p0 = 0; p0 < ti.rows_pad; p0 += PW) {
    for (int t0 = 0; t0 < n; t0 += C::kMK) {
      const int nk = tmin(C::kMK, n - t0);
      float* s = sc.s + int64_t(t0) * kScoreLd + p0;
      if constexpr (kDp) {
        const int64_t ldk = D + 2 * kRowPad;
        const uint16_t* qp = static_cast<const uint16_t*>(sc.qp) + int64_t(p0) * D;
        const uint16_t* kc = static_cast<const uint16_t*>(sc.kc) + t0 * ldk;
        with_int<C::kMK>(nk, [&](auto NK) {
          s_block_dp<V, decltype(NK)::value, C::kNVQ>(qp, kc, ldk, D, s, ti.score_scale);
        });
      } else {
        const int64_t ldk = D + kRowPad;
        const float* qp = static_cast<const float*>(sc.qp) + int64_t(p0) * D;
        const float* kc = static_cast<const float*>(sc.kc) + t0 * ldk;
        with_int<C::kMK>(nk, [&](auto NK) {
          s_block_f32<V, decltype(NK)::value, C::kNVQ>(qp, kc, ldk, D, s);
        });
      }
    }
  }
}

// Applies the chunk's row intervals (-inf outside [lo, hi)) and the online-softmax update:
// m' = max(m, max_t s), alpha = 2^(m - m'), p = 2^(s - m'), l' = alpha l + sum_t p. A row that has
// seen no key keeps m = -inf; it is shifted by 0 instead of -inf so that no inf - inf appears.
template <class V>
void online_softmax(const TileInfo& ti, const TileScratch& sc, const ChunkKeys& ck) {
  using reg = typename V::reg;
  const reg neg_inf = V::set1(-__builtin_inff());
  for (int b = 0; b < ti.rows_pad; b += V::W) {
    float* s = sc.s + b;
    reg mx = neg_inf;
    if (ck.lo != nullptr) {
      for (int t = 0; t < ck.n; ++t) {
        const int lo = ck.lo[t], hi = ck.hi[t];
        reg x;
        if (lo <= b && hi >= b + V::W) {
          x = V::load(s + t * kScoreLd);
        } else if (hi <= b || lo >= b + V::W) {
          x = neg_inf;
          V::store(s + t * kScoreLd, x);
        } else {
          x = V::mask_rows(V::load(s + t * kScoreLd), b, lo, hi);
          V::store(s + t * kScoreLd, x);
        }
        mx = V::max(mx, x);
      }
    } else {
      for (int t = 0; t < ck.n; ++t) mx = V::max(mx, V::load(s + t * kScoreLd));
    }
    const reg m_old = V::load(sc.m + b);
    const reg m_new = V::max(m_old, mx);
    const reg m_use = V::neg_inf_to_zero(m_new);
    const reg alpha = vexp2<V>(V::sub(m_old, m_use));
    reg sum = V::zero();
    for (int t = 0; t < ck.n; ++t) {
      const reg p = vexp2<V>(V::sub(V::load(s + t * kScoreLd), m_use));
      V::store(s + t * kScoreLd, p);
      sum = V::add(sum, p);
    }
    V::store(sc.l + b, V::fma(V::load(sc.l + b), alpha, sum));
    V::store(sc.m + b, m_new);
    V::store(sc.alpha + b, alpha);
  }
}

// O[r][dv] = alpha[r] O[r][dv] + sum_t P^T[t][r] V[t][dv] for NR rows x (NV * W) columns.
template <class V, int NR, int NV>
inline void pv_block(float* o, int64_t ldo, const float* p, const float* alpha, const float* vc,
                     int64_t ldv, int n) {
  using reg = typename V::reg;
  reg acc[NR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < NR; ++r) {
    const reg a = V::set1(alpha[r]);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = V::mul(V::load(o + r * ldo + v * V::W), a);
  }
  for (int t = 0; t < n; ++t) {
    reg x[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) x[v] = V::load(vc + t * ldv + v * V::W);
#pragma GCC unroll 16
    for (int r = 0; r < NR; ++r) {
      const reg pb = V::bcast(p + t * kScoreLd + r);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(pb, x[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < NR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) V::store(o + r * ldo + v * V::W, acc[r][v]);
}

template <class V, class C>
void accumulate_pv(const TileInfo& ti, const TileScratch& sc, int n) {
  const int64_t ld = ti.head_dim + kRowPad;
  const int nvec = int(ti.head_dim / V::W);
  for (int v0 = 0; v0 < nvec; v0 += C::kNVD) {
    const int nv = tmin(C::kNVD, nvec - v0);
    for (int r0 = 0; r0 < ti.rows; r0 += C::kMR) {
      const int nr = tmin(C::kMR, ti.rows - r0);
      float* o = sc.o + r0 * ld + v0 * V::W;
      const float* vc = sc.vc + v0 * V::W;
      with_int<C::kMR>(nr, [&](auto NR) {
        with_int<C::kNVD>(nv, [&](auto NV) {
          pv_block<V, decltype(NR)::value, decltype(NV)::value>(o, ld, sc.s + r0, sc.alpha + r0,
                                                                 vc, ld, n);
        });
      });
    }
  }
}

template <class V, class C, bool kDp>
void process_chunk(const TileInfo& ti, const TileScratch& sc, const KvInfo& kv,
                   const ChunkKeys& ck) {
  const int64_t D = ti.head_dim, ld = D + kRowPad;
  const int64_t esize = kv.dtype == DType::kF32 ? 4 : 2;  // no call into shared inline code
  const char* kbase = static_cast<const char*>(kv.k);
  const char* vbase = static_cast<const char*>(kv.v);
  for (int t = 0; t < ck.n; ++t) {
    const int64_t j = ck.keys[t];
    if constexpr (kDp) {
      __builtin_memcpy(static_cast<uint16_t*>(sc.kc) + t * (D + 2 * kRowPad),
                       kbase + j * kv.k_row_stride * esize, size_t(D) * 2);
    } else {
      V::load_cvt(static_cast<float*>(sc.kc) + t * ld, kbase + j * kv.k_row_stride * esize,
                  kv.dtype, D);
    }
    V::load_cvt(sc.vc + t * ld, vbase + j * kv.v_row_stride * esize, kv.dtype, D);
  }
  compute_scores<V, C, kDp>(ti, sc, ck.n);
  online_softmax<V>(ti, sc, ck);
  accumulate_pv<V, C>(ti, sc, ck.n);
}

}  // namespace
}  // namespace sieve::attention::cpu
