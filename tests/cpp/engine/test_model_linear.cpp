// linear(): every SIMD path this processor has (scalar, AVX2, AVX-512 BF16) against an f64
// reference, over shapes that hit every tail (tokens vs the 6-token tile, outputs vs the panel
// width, depth vs the vector width and the 256-deep packing chunk).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "sieve/core/error.h"
#include "sieve/core/rng.h"
#include "sieve/engine/linear.h"

namespace sieve::engine {
namespace {

struct Shape {
  int64_t tokens, out, in;
};

// |got - want| <= tol * sum_k |x_k w_k|: the scale of f32 rounding in a length-k dot product.
void check(LinearIsa isa, DType dtype, const Shape& s, bool bias) {
  Rng rng(uint64_t(s.tokens * 1000003 + s.out * 1009 + s.in));
  std::vector<float> x(size_t(s.tokens * s.in)), b(size_t(s.out));
  for (auto& v : x) v = float(rng.normal());
  for (auto& v : b) v = float(rng.normal());
  std::vector<float> wf(size_t(s.out * s.in));
  std::vector<BF16> wb(wf.size());
  for (size_t i = 0; i < wf.size(); ++i) {
    wb[i] = f32_to_bf16(float(rng.normal()));
    wf[i] = dtype == DType::kBF16 ? bf16_to_f32(wb[i]) : float(rng.normal());
  }
  const Matrix m{dtype == DType::kBF16 ? static_cast<const void*>(wb.data()) : wf.data(), dtype,
                 s.out, s.in};
  // The AVX-512 BF16 path multiplies bf16-rounded x; its reference does the same.
  const bool round_x = isa == LinearIsa::kAvx512 && dtype == DType::kBF16;
  std::vector<float> y(size_t(s.tokens * s.out), NAN);
  set_linear_isa(isa);
  linear(x.data(), s.tokens, m, y.data(), bias ? b.data() : nullptr);
  set_linear_isa(LinearIsa::kAuto);
  for (int64_t t = 0; t < s.tokens; ++t) {
    for (int64_t j = 0; j < s.out; ++j) {
      double want = bias ? b[size_t(j)] : 0.0, mag = std::fabs(want);
      for (int64_t k = 0; k < s.in; ++k) {
        const float xv = x[size_t(t * s.in + k)];
        const double xk = round_x ? double(bf16_to_f32(f32_to_bf16(xv))) : double(xv);
        want += xk * double(wf[size_t(j * s.in + k)]);
        mag += std::fabs(xk * double(wf[size_t(j * s.in + k)]));
      }
      const double got = y[size_t(t * s.out + j)];
      ASSERT_NEAR(got, want, 4e-7 * mag * std::sqrt(double(s.in)) + 1e-6)
          << linear_isa_name() << " " << dtype_name(dtype) << " tokens " << s.tokens << " out "
          << s.out << " in " << s.in << " at (" << t << ", " << j << ")";
    }
  }
}

const Shape kShapes[] = {{1, 1, 1},   {1, 17, 7},   {2, 33, 64},  {3, 16, 300},  {4, 15, 8},
                         {5, 32, 31}, {6, 48, 256}, {7, 17, 257}, {13, 65, 513}, {100, 40, 96},
                         {97, 3, 600}};

TEST(Linear, AllPathsMatchF64Reference) {
  for (LinearIsa isa : {LinearIsa::kScalar, LinearIsa::kAvx2, LinearIsa::kAvx512}) {
    if (!linear_isa_supported(isa)) continue;
    for (DType dt : {DType::kF32, DType::kBF16}) {
      for (const Shape& s : kShapes) check(isa, dt, s, s.out % 2 == 1);
    }
  }
}

// linear_many equals one linear() per target (same kernels, so bit for bit), for the shared GEMV
// loop (few tokens) and the per-matrix GEMM (many tokens), with and without bias.
TEST(Linear, ManyEqualsOneByOne) {
  Rng rng(5);
  const int64_t k = 72;
  const int64_t rows[3] = {130, 8, 64};
  std::vector<std::vector<float>> w(3), b(3);
  for (int m = 0; m < 3; ++m) {
    w[size_t(m)].resize(size_t(rows[m] * k));
    b[size_t(m)].resize(size_t(rows[m]));
    for (auto& v : w[size_t(m)]) v = float(rng.normal());
    for (auto& v : b[size_t(m)]) v = float(rng.normal());
  }
  for (int64_t tokens : {1, 3, 9}) {
    std::vector<float> x(size_t(tokens * k));
    for (auto& v : x) v = float(rng.normal());
    std::vector<std::vector<float>> y(3), want(3);
    std::vector<LinearTarget> targets;
    for (int m = 0; m < 3; ++m) {
      y[size_t(m)].assign(size_t(tokens * rows[m]), NAN);
      want[size_t(m)].assign(size_t(tokens * rows[m]), NAN);
      const Matrix mat{w[size_t(m)].data(), DType::kF32, rows[m], k};
      const float* bias = m == 1 ? nullptr : b[size_t(m)].data();
      targets.push_back({mat, y[size_t(m)].data(), bias});
      linear(x.data(), tokens, mat, want[size_t(m)].data(), bias);
    }
    linear_many(x.data(), tokens, targets);
    for (int m = 0; m < 3; ++m) EXPECT_EQ(y[size_t(m)], want[size_t(m)]) << tokens << " tokens, target " << m;
  }
}

TEST(Linear, RejectsF16AndEmptyOperands) {
  std::vector<float> x(4), y(4);
  std::vector<F16> w(4);
  EXPECT_THROW(linear(x.data(), 1, Matrix{w.data(), DType::kF16, 2, 2}, y.data()), Error);
  EXPECT_THROW(linear(x.data(), 1, Matrix{nullptr, DType::kF32, 2, 2}, y.data()), Error);
  EXPECT_THROW(linear(x.data(), 1, Matrix{x.data(), DType::kF32, 0, 2}, y.data()), Error);
}

TEST(Linear, IsaSelection) {
  EXPECT_TRUE(linear_isa_supported(LinearIsa::kScalar));
  set_linear_isa(LinearIsa::kScalar);
  EXPECT_STREQ(linear_isa_name(), "scalar");
  set_linear_isa(LinearIsa::kAuto);
  if (!linear_isa_supported(LinearIsa::kAvx512)) {
    EXPECT_THROW(set_linear_isa(LinearIsa::kAvx512), Error);
  }
}

}  // namespace
}  // namespace sieve::engine
