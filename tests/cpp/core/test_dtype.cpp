// dtype conversions against exact f64 arithmetic (independent of the code under test):
// every bf16/f16 bit pattern round-trips, and f32 -> half rounding equals the nearest
// representable value computed by exhaustive search in double.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "sieve/core/dtype.h"
#include "sieve/core/error.h"

using namespace sieve;

namespace {
// Value of an f16 bit pattern computed with ldexp in double (independent of f16_to_f32).
double f16_value(uint16_t b) {
  const int s = b >> 15, e = (b >> 10) & 31, m = b & 1023;
  double v;
  if (e == 0) v = std::ldexp(double(m), -24);
  else if (e == 31) v = m ? std::numeric_limits<double>::quiet_NaN() : INFINITY;
  else v = std::ldexp(double(1024 + m), e - 25);
  return s ? -v : v;
}
double bf16_value(uint16_t b) {
  const int s = b >> 15, e = (b >> 7) & 255, m = b & 127;
  double v;
  if (e == 0) v = std::ldexp(double(m), -133);
  else if (e == 255) v = m ? std::numeric_limits<double>::quiet_NaN() : INFINITY;
  else v = std::ldexp(double(128 + m), e - 134);
  return s ? -v : v;
}
}  // namespace

TEST(Dtype, F16ToF32ExactForAllPatterns) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const double want = f16_value(uint16_t(b));
    const float got = f16_to_f32(F16{uint16_t(b)});
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << b;
    } else {
      ASSERT_EQ(double(got), want) << "pattern " << b;
    }
  }
}

TEST(Dtype, BF16ToF32ExactForAllPatterns) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const double want = bf16_value(uint16_t(b));
    const float got = bf16_to_f32(BF16{uint16_t(b)});
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << b;
    } else {
      ASSERT_EQ(double(got), want) << "pattern " << b;
    }
  }
}

TEST(Dtype, RoundTripAllPatterns) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = f16_to_f32(F16{uint16_t(b)});
    if (!std::isnan(f)) {
      ASSERT_EQ(f32_to_f16(f).bits, b);
    }
    const float g = bf16_to_f32(BF16{uint16_t(b)});
    if (!std::isnan(g)) {
      ASSERT_EQ(f32_to_bf16(g).bits, b);
    }
  }
}

// Round-to-nearest-even checked against the two neighbouring representable values in double.
TEST(Dtype, RoundingToNearestEven) {
  uint64_t state = 12345;
  auto next = [&] { state = state * 6364136223846793005ull + 1442695040888963407ull; return uint32_t(state >> 32); };
  for (int it = 0; it < 200000; ++it) {
    uint32_t bits = next();
    float f;
    std::memcpy(&f, &bits, 4);
    if (!std::isfinite(f)) continue;
    // f16
    {
      const uint16_t h = f32_to_f16(f).bits;
      const double got = f16_value(h), x = f;
      if (std::fabs(x) < 65520.0) {
        // neighbours: the next pattern up and down in magnitude
        const uint16_t up = uint16_t((h & 0x7fff) + 1) | (h & 0x8000);
        const double err = std::fabs(got - x);
        if ((h & 0x7fff) < 0x7bff) {
          ASSERT_LE(err, std::fabs(f16_value(up) - x)) << f;
        }
        if ((h & 0x7fff) > 0) {
          const uint16_t dn = uint16_t((h & 0x7fff) - 1) | (h & 0x8000);
          ASSERT_LE(err, std::fabs(f16_value(dn) - x)) << f;
          if (err == std::fabs(f16_value(dn) - x) && err > 0) {
            ASSERT_EQ(h & 1, 0) << "tie not even " << f;
          }
        }
      } else {
        ASSERT_TRUE(std::isinf(got)) << f;
      }
    }
    // bf16
    {
      const uint16_t h = f32_to_bf16(f).bits;
      const double got = bf16_value(h), x = f;
      if (std::isinf(got)) continue;  // overflow of values near FLT_MAX
      const double err = std::fabs(got - x);
      const uint16_t up = uint16_t((h & 0x7fff) + 1) | (h & 0x8000);
      ASSERT_LE(err, std::fabs(bf16_value(up) - x)) << f;
      if ((h & 0x7fff) > 0) {
        const uint16_t dn = uint16_t((h & 0x7fff) - 1) | (h & 0x8000);
        ASSERT_LE(err, std::fabs(bf16_value(dn) - x)) << f;
      }
    }
  }
}

TEST(Dtype, NaNStaysNaN) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(nan))));
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(nan))));
  EXPECT_TRUE(std::isinf(f16_to_f32(f32_to_f16(1e6f))));
}

TEST(Dtype, ParseNames) {
  EXPECT_EQ(parse_dtype("bf16"), DType::kBF16);
  EXPECT_EQ(parse_dtype("float32"), DType::kF32);
  EXPECT_EQ(parse_dtype("f16"), DType::kF16);
  EXPECT_THROW(parse_dtype("int8"), Error);
}
