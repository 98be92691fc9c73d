#include <gtest/gtest.h>

#include <cmath>

#include "sieve/core/rng.h"
#include "sieve/core/tensor.h"

using namespace sieve;

TEST(Rng, Reproducible) {
  Rng a(7, 3), b(7, 3), c(7, 4);
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.next();
    EXPECT_EQ(x, b.next());
    EXPECT_NE(x, c.next());
  }
}

// Moments of the normal generator against closed-form values within 5 standard errors.
TEST(Rng, NormalMoments) {
  Rng r(1);
  const int n = 200000;
  double s1 = 0, s2 = 0, s4 = 0;
  for (int i = 0; i < n; ++i) {
    const double x = r.normal();
    s1 += x;
    s2 += x * x;
    s4 += x * x * x * x;
  }
  EXPECT_NEAR(s1 / n, 0.0, 5 * std::sqrt(1.0 / n));
  EXPECT_NEAR(s2 / n, 1.0, 5 * std::sqrt(2.0 / n));
  EXPECT_NEAR(s4 / n, 3.0, 5 * std::sqrt(96.0 / n));
}

TEST(Rng, BelowIsUniform) {
  Rng r(2);
  int counts[7] = {};
  const int n = 70000;
  for (int i = 0; i < n; ++i) counts[r.below(7)]++;
  for (int c : counts) EXPECT_NEAR(c, n / 7.0, 5 * std::sqrt(n / 7.0));
}

TEST(Tensor, ShapeErrorsAreClear) {
  Tensor t(DType::kBF16, {2, 3, 4});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_TRUE(t.view().is_contiguous());
  try {
    check_ndim(t, 2, "mask");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mask must have 2 dimensions"), std::string::npos);
  }
  Tensor f = Tensor::from(t, DType::kF32);
  EXPECT_EQ(f.dtype(), DType::kF32);
  EXPECT_EQ(f.size(2), 4);
}
