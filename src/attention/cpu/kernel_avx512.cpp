// AVX-512 path (16 lanes), compiled with AVX-512 F/BW/VL/DQ/BF16 flags by file name
// (cmake/SieveWarnings.cmake) and chosen at run time. For bf16 inputs on CPUs with AVX512-BF16,
// S = Q K^T uses VDPBF16PS on the raw bf16 values (exact products, f32 sums); P V stays f32.
// kernel_avx2.cpp's "avx2-wide" variant mirrors this file's operations and blocking for testing on
// machines without AVX-512.
#if defined(__x86_64__) || defined(_M_X64)
// GCC 12's AVX-512 intrinsics use _mm512_undefined_ps() as a pass-through operand, which trips a
// false -Wmaybe-uninitialized once inlined (GCC bug 105593); the warning's location is the header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "kernel.h"

namespace sieve::attention::cpu {
namespace {

struct Avx512 {
  using reg = __m512;
  using preg = __m512i;  // 16 x 32-bit lanes, each a pair of bf16 (element 2i in the low half)
  static constexpr int W = 16;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg set1(float x) { return _mm512_set1_ps(x); }
  static reg bcast(const float* p) { return _mm512_set1_ps(*p); }
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg x) { _mm512_storeu_ps(p, x); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  static reg max(reg a, reg b) { return _mm512_max_ps(a, b); }
  static reg min(reg a, reg b) { return _mm512_min_ps(a, b); }
  static reg round(reg x) { return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static reg pow2i(reg n) {
    const __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  static reg neg_inf_to_zero(reg x) {
    const __mmask16 is_ninf = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-__builtin_inff()), _CMP_EQ_OQ);
    return _mm512_mask_blend_ps(is_ninf, x, _mm512_setzero_ps());
  }
  static reg mask_rows(reg s, int base, int lo, int hi) {
    const __m512i idx = _mm512_add_epi32(
        _mm512_set1_epi32(base),
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    const __mmask16 keep = _mm512_cmpge_epi32_mask(idx, _mm512_set1_epi32(lo)) &
                           _mm512_cmplt_epi32_mask(idx, _mm512_set1_epi32(hi));
    return _mm512_mask_blend_ps(keep, _mm512_set1_ps(-__builtin_inff()), s);
  }
  // n is a multiple of 16.
  static void load_cvt(float* dst, const void* src, DType t, int64_t n) {
    if (t == DType::kF32) {
      const float* s = static_cast<const float*>(src);
      for (int64_t i = 0; i < n; i += 16) _mm512_storeu_ps(dst + i, _mm512_loadu_ps(s + i));
    } else if (t == DType::kBF16) {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; i += 16) {
        const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
      }
    } else {
      const uint16_t* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i))));
    }
  }
  static preg load_pairs(const uint16_t* p) { return _mm512_loadu_si512(p); }
  static preg bcast_pair(const uint16_t* p) {
    int32_t bits;
    __builtin_memcpy(&bits, p, 4);
    return _mm512_set1_epi32(bits);
  }
  static reg dp(reg acc, preg x, preg y) {
    return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(x), reinterpret_cast<__m512bh>(y));
  }
};

// 8 x 2 score accumulators; 6 x 4 output accumulators (+ 4 value loads) of 32 zmm registers.
struct Avx512Config {
  static constexpr int kMK = 8, kNVQ = 2, kMR = 6, kNVD = 4;
};

}  // namespace
}  // namespace sieve::attention::cpu

#include "kernel_impl.h"

namespace sieve::attention::cpu {

const KernelOps* avx512_ops(bool bf16_pairs) {
  static const KernelOps f32{"avx512", Avx512::W, Avx512Config::kNVQ * Avx512::W, false,
                             &process_chunk<Avx512, Avx512Config, false>};
  static const KernelOps dp{"avx512", Avx512::W, Avx512Config::kNVQ * Avx512::W, true,
                            &process_chunk<Avx512, Avx512Config, true>};
  return bf16_pairs ? &dp : &f32;
}

}  // namespace sieve::attention::cpu

#else
#include "kernel.h"
namespace sieve::attention::cpu {
const KernelOps* avx512_ops(bool) { return nullptr; }
}  // namespace sieve::attention::cpu
#endif
