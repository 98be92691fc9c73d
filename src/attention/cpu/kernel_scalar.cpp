// Portable path (no SIMD intrinsics, baseline flags): any head_dim, CPUs without AVX2, and the
// fallback for head dims that are not a multiple of the vector width. Same algorithm and the
// same exp2 polynomial as the SIMD paths, one lane wide.
#include <cmath>
#include <cstring>

#include "kernel.h"
#include "sieve/core/dtype.h"

namespace sieve::attention::cpu {
namespace {

struct Scalar {
  using reg = float;
  static constexpr int W = 1;
  static reg zero() { return 0.0f; }
  static reg set1(float x) { return x; }
  static reg bcast(const float* p) { return *p; }
  static reg load(const float* p) { return *p; }
  static void store(float* p, reg x) { *p = x; }
  static reg fma(reg a, reg b, reg c) { return a * b + c; }
  static reg mul(reg a, reg b) { return a * b; }
  static reg add(reg a, reg b) { return a + b; }
  static reg sub(reg a, reg b) { return a - b; }
  static reg max(reg a, reg b) { return a > b ? a : b; }  // x86 rule: b when either is NaN
  static reg min(reg a, reg b) { return a < b ? a : b; }
  static reg round(reg x) { return std::nearbyint(x); }
  static reg pow2i(reg n) {
    if (!(n == n)) return n;  // NaN
    return f32_from_bits(uint32_t(int32_t(n) + 127) << 23);
  }
  static reg neg_inf_to_zero(reg x) { return x == -INFINITY ? 0.0f : x; }
  static reg mask_rows(reg s, int base, int lo, int hi) {
    return base >= lo && base < hi ? s : -INFINITY;
  }
  static void load_cvt(float* dst, const void* src, DType t, int64_t n) {
    if (t == DType::kF32) {
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    }
    for (int64_t i = 0; i < n; ++i) dst[i] = load_as_f32(src, t, i);
  }
};

struct ScalarConfig {
  static constexpr int kMK = 4, kNVQ = 4, kMR = 4, kNVD = 4;
};

}  // namespace
}  // namespace sieve::attention::cpu

#include "kernel_impl.h"

namespace sieve::attention::cpu {

const KernelOps* scalar_ops() {
  static const KernelOps ops{"scalar", Scalar::W, ScalarConfig::kNVQ * Scalar::W, false,
                             &process_chunk<Scalar, ScalarConfig, false>};
  return &ops;
}

}  // namespace sieve::attention::cpu
