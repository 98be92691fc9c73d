// Element types and exact conversions between f32, bf16 and f16.
//
// bf16 and f16 are stored as uint16_t bit patterns wrapped in tiny structs. Conversions to f32 are
// exact; conversions from f32 round to nearest even, keep NaN a NaN and saturate to +-inf as IEEE
// does. SIEVE_HOST_DEVICE lets the same code run in CUDA kernels.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#if defined(__CUDACC__)
#define SIEVE_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define SIEVE_HOST_DEVICE inline
#endif

namespace sieve {

enum class DType : uint8_t { kF32, kBF16, kF16 };

/// Size of one element in bytes.
constexpr int64_t dtype_size(DType t) { return t == DType::kF32 ? 4 : 2; }
/// "f32", "bf16" or "f16".
const char* dtype_name(DType t);
/// Parses "f32"/"float32", "bf16"/"bfloat16", "f16"/"float16"; throws sieve::Error otherwise.
DType parse_dtype(std::string_view name);

struct BF16 {
  uint16_t bits = 0;
};
struct F16 {
  uint16_t bits = 0;
};

SIEVE_HOST_DEVICE uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
SIEVE_HOST_DEVICE float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

SIEVE_HOST_DEVICE float bf16_to_f32(BF16 h) { return f32_from_bits(uint32_t(h.bits) << 16); }

SIEVE_HOST_DEVICE BF16 f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return BF16{uint16_t((u >> 16) | 0x40u)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return BF16{uint16_t(u >> 16)};
}

SIEVE_HOST_DEVICE float f16_to_f32(F16 h) {
  const uint32_t sign = uint32_t(h.bits & 0x8000u) << 16;
  const uint32_t exp = (h.bits >> 10) & 0x1fu;
  uint32_t mant = h.bits & 0x3ffu;
  if (exp == 0) {
    if (mant == 0) return f32_from_bits(sign);
    // subnormal: value = mant * 2^-24, exact in f32
    float v = float(mant) * 5.9604644775390625e-08f;
    return sign ? -v : v;
  }
  if (exp == 31) return f32_from_bits(sign | 0x7f800000u | (mant << 13));
  return f32_from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
}

SIEVE_HOST_DEVICE F16 f32_to_f16(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t au = u & 0x7fffffffu;
  if (au > 0x7f800000u) return F16{uint16_t(sign | 0x7e00u)};  // NaN
  if (au >= 0x477ff000u) return F16{uint16_t(sign | 0x7c00u)};  // rounds to >= 65520: inf
  if (au < 0x38800000u) {  // result is subnormal or zero: round(|f| * 2^24) to nearest even
    const uint32_t e = au >> 23;
    if (e < 102) return F16{sign};  // below half of the smallest subnormal
    const uint32_t m = (au & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14..24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return F16{uint16_t(sign | r)};
  }
  uint32_t r = au - (112u << 23);          // rebias exponent
  r += 0xfffu + ((r >> 13) & 1u);          // round to nearest even at bit 13
  return F16{uint16_t(sign | (r >> 13))};
}

/// Loads element i of a buffer of type t as f32.
SIEVE_HOST_DEVICE float load_as_f32(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::kF32: return static_cast<const float*>(p)[i];
    case DType::kBF16: return bf16_to_f32(static_cast<const BF16*>(p)[i]);
    default: return f16_to_f32(static_cast<const F16*>(p)[i]);
  }
}
/// Stores f32 value v as element i of a buffer of type t (rounding to nearest even).
SIEVE_HOST_DEVICE void store_from_f32(void* p, DType t, int64_t i, float v) {
  switch (t) {
    case DType::kF32: static_cast<float*>(p)[i] = v; break;
    case DType::kBF16: static_cast<BF16*>(p)[i] = f32_to_bf16(v); break;
    default: static_cast<F16*>(p)[i] = f32_to_f16(v); break;
  }
}

}  // namespace sieve
