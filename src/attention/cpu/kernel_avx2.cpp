// AVX2 + FMA + F16C path (8 lanes), compiled with -mavx2 -mfma -mf16c by file name
// (cmake/SieveWarnings.cmake) and chosen at run time. Also the "avx2-wide" test aid: the 16-lane
// AVX-512 register blocking and its bf16 pair layout, emulated with pairs of AVX2 registers, so
// that the wide tiling is exercised on machines without AVX-512.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

#include "kernel.h"

namespace sieve::attention::cpu {
namespace {

struct Avx2 {
  using reg = __m256;
  static constexpr int W = 8;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg set1(float x) { return _mm256_set1_ps(x); }
  static reg bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg x) { _mm256_storeu_ps(p, x); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
  static reg min(reg a, reg b) { return _mm256_min_ps(a, b); }
  static reg round(reg x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static reg pow2i(reg n) {
    const __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  static reg neg_inf_to_zero(reg x) {
    const reg is_ninf = _mm256_cmp_ps(x, _mm256_set1_ps(-__builtin_inff()), _CMP_EQ_OQ);
    return _mm256_andnot_ps(is_ninf, x);
  }
  static reg mask_rows(reg s, int base, int lo, int hi) {
    const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(base), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i keep = _mm256_and_si256(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(lo - 1)),
                                          _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), idx));
    return _mm256_blendv_ps(_mm256_set1_ps(-__builtin_inff()), s, _mm256_castsi256_ps(keep));
  }
  // n is a multiple of 8.
  static void load_cvt(float* dst, const void* src, DType t, int64_t n) {
    if (t == DType::kF32) {
      const float* s = static_cast<const float*>(src);
      for (int64_t i = 0; i < n; i += 8) _mm256_storeu_ps(dst + i, _mm256_loadu_ps(s + i));
    } else if (t == DType::kBF16) {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; i += 8) {
        const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
      }
    } else {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
    }
  }
};

struct Avx2Config {
  // 6 x 2 accumulators + 2 loads + 1 broadcast = 15 of 16 ymm registers.
  static constexpr int kMK = 6, kNVQ = 2, kMR = 6, kNVD = 2;
};

// 16 lanes as two AVX2 registers, mirroring the AVX-512 traits operation by operation.
struct Avx2Wide {
  struct reg {
    __m256 a, b;
  };
  using preg = reg;  // 16 x 32-bit lanes, each a pair of bf16 (element 2i in the low half)
  static constexpr int W = 16;
  static reg zero() { return {Avx2::zero(), Avx2::zero()}; }
  static reg set1(float x) { return {Avx2::set1(x), Avx2::set1(x)}; }
  static reg bcast(const float* p) { return {Avx2::bcast(p), Avx2::bcast(p)}; }
  static reg load(const float* p) { return {Avx2::load(p), Avx2::load(p + 8)}; }
  static void store(float* p, reg x) {
    Avx2::store(p, x.a);
    Avx2::store(p + 8, x.b);
  }
  static reg fma(reg x, reg y, reg z) { return {Avx2::fma(x.a, y.a, z.a), Avx2::fma(x.b, y.b, z.b)}; }
  static reg mul(reg x, reg y) { return {Avx2::mul(x.a, y.a), Avx2::mul(x.b, y.b)}; }
  static reg add(reg x, reg y) { return {Avx2::add(x.a, y.a), Avx2::add(x.b, y.b)}; }
  static reg sub(reg x, reg y) { return {Avx2::sub(x.a, y.a), Avx2::sub(x.b, y.b)}; }
  static reg max(reg x, reg y) { return {Avx2::max(x.a, y.a), Avx2::max(x.b, y.b)}; }
  static reg min(reg x, reg y) { return {Avx2::min(x.a, y.a), Avx2::min(x.b, y.b)}; }
  static reg round(reg x) { return {Avx2::round(x.a), Avx2::round(x.b)}; }
  static reg pow2i(reg x) { return {Avx2::pow2i(x.a), Avx2::pow2i(x.b)}; }
  static reg neg_inf_to_zero(reg x) { return {Avx2::neg_inf_to_zero(x.a), Avx2::neg_inf_to_zero(x.b)}; }
  static reg mask_rows(reg s, int base, int lo, int hi) {
    return {Avx2::mask_rows(s.a, base, lo, hi), Avx2::mask_rows(s.b, base + 8, lo, hi)};
  }
  static void load_cvt(float* dst, const void* src, DType t, int64_t n) { Avx2::load_cvt(dst, src, t, n); }
  static preg load_pairs(const uint16_t* p) {
    return {_mm256_castsi256_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))),
            _mm256_castsi256_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16)))};
  }
  static preg bcast_pair(const uint16_t* p) {
    int32_t bits;
    __builtin_memcpy(&bits, p, 4);
    const __m256 x = _mm256_castsi256_ps(_mm256_set1_epi32(bits));
    return {x, x};
  }
  // VDPBF16PS semantics: acc + x_odd * y_odd, then + x_even * y_even; bf16 products are exact
  // in f32, so two FMAs reproduce the instruction's roundings.
  static __m256 dp8(__m256 acc, __m256 x, __m256 y) {
    const __m256i hi_mask = _mm256_set1_epi32(int32_t(0xffff0000u));
    const __m256i xi = _mm256_castps_si256(x), yi = _mm256_castps_si256(y);
    acc = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(xi, hi_mask)),
                          _mm256_castsi256_ps(_mm256_and_si256(yi, hi_mask)), acc);
    return _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(xi, 16)),
                           _mm256_castsi256_ps(_mm256_slli_epi32(yi, 16)), acc);
  }
  static reg dp(reg acc, preg x, preg y) { return {dp8(acc.a, x.a, y.a), dp8(acc.b, x.b, y.b)}; }
};

// The AVX-512 register blocking (kernel_avx512.cpp), kept identical here.
struct WideConfig {
  static constexpr int kMK = 8, kNVQ = 2, kMR = 6, kNVD = 4;
};

}  // namespace
}  // namespace sieve::attention::cpu

#include "kernel_impl.h"

namespace sieve::attention::cpu {

const KernelOps* avx2_ops() {
  static const KernelOps ops{"avx2", Avx2::W, Avx2Config::kNVQ * Avx2::W, false,
                             &process_chunk<Avx2, Avx2Config, false>};
  return &ops;
}

const KernelOps* avx2_wide_ops(bool bf16_pairs) {
  static const KernelOps f32{"avx2-wide", Avx2Wide::W, WideConfig::kNVQ * Avx2Wide::W, false,
                             &process_chunk<Avx2Wide, WideConfig, false>};
  static const KernelOps dp{"avx2-wide", Avx2Wide::W, WideConfig::kNVQ * Avx2Wide::W, true,
                            &process_chunk<Avx2Wide, WideConfig, true>};
  return bf16_pairs ? &dp : &f32;
}

}  // namespace sieve::attention::cpu

#else
#include "kernel.h"
namespace sieve::attention::cpu {
const KernelOps* avx2_ops() { return nullptr; }
const KernelOps* avx2_wide_ops(bool) { return nullptr; }
}  // namespace sieve::attention::cpu
#endif
