// check_finite: every NaN / +-inf bit pattern of f32, bf16 and f16 is found, with its index and
// kind in the message; the largest finite values, subnormals and signed zeros pass; strided views
// are walked by their strides (elements outside the view are not read).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "sieve/core/error.h"
#include "sieve/core/tensor.h"

using namespace sieve;

namespace {

// Element i of t set to the raw bit pattern `bits` (the low 16 bits for bf16 / f16).
void set_bits(const Tensor& t, int64_t i, uint32_t bits) {
  char* p = static_cast<char*>(t.data()) + i * dtype_size(t.dtype());
  if (t.dtype() == DType::kF32) {
    std::memcpy(p, &bits, 4);
  } else {
    const auto b = static_cast<uint16_t>(bits);
    std::memcpy(p, &b, 2);
  }
}

std::string error_of(const TensorView& t) {
  try {
    check_finite(t, "tensor 'x'");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct Patterns {
  DType dtype;
  uint32_t finite[6];  // max, -max, smallest subnormal, -0, 1, -1
  uint32_t nan, quiet_nan, pos_inf, neg_inf;
};

const Patterns kPatterns[] = {
    {DType::kF32,
     {0x7f7fffffu, 0xff7fffffu, 0x00000001u, 0x80000000u, 0x3f800000u, 0xbf800000u},
     0x7f800001u, 0xffc00000u, 0x7f800000u, 0xff800000u},
    {DType::kBF16, {0x7f7fu, 0xff7fu, 0x0001u, 0x8000u, 0x3f80u, 0xbf80u}, 0x7f81u, 0xffc0u, 0x7f80u,
     0xff80u},
    {DType::kF16, {0x7bffu, 0xfbffu, 0x0001u, 0x8000u, 0x3c00u, 0xbc00u}, 0x7c01u, 0xfe00u, 0x7c00u,
     0xfc00u},
};

TEST(CheckFinite, FindsEveryNonFiniteKindAtItsIndex) {
  for (const Patterns& p : kPatterns) {
    SCOPED_TRACE(dtype_name(p.dtype));
    const Tensor t(p.dtype, {2, 3, 4});
    for (int64_t i = 0; i < t.numel(); ++i) set_bits(t, i, p.finite[i % 6]);
    EXPECT_EQ(error_of(t), "");
    // element [1, 2, 3] (flat 23) and an earlier one at [0, 1, 2] (flat 6): the first is reported
    const struct {
      uint32_t bits;
      const char* kind;
    } cases[] = {{p.nan, "NaN"}, {p.quiet_nan, "NaN"}, {p.pos_inf, "+inf"}, {p.neg_inf, "-inf"}};
    for (const auto& c : cases) {
      set_bits(t, 23, c.bits);
      EXPECT_EQ(error_of(t),
                std::string("tensor 'x' has a non-finite value (") + c.kind +
                    ") at [1, 2, 3]; inputs must be finite");
      set_bits(t, 6, p.pos_inf);
      EXPECT_NE(error_of(t).find("(+inf) at [0, 1, 2]"), std::string::npos) << error_of(t);
      set_bits(t, 6, p.finite[0]);
      set_bits(t, 23, p.finite[5]);
    }
    EXPECT_EQ(error_of(t), "");
  }
}

TEST(CheckFinite, WalksStridedViewsOnly) {
  // a [4, 6] f32 buffer viewed as its [4, 3] left half: NaNs in the right half are not part of it
  const Tensor buf(DType::kF32, {4, 6});
  for (int64_t i = 0; i < buf.numel(); ++i) set_bits(buf, i, (i % 6) < 3 ? 0x3f800000u : 0x7fc00000u);
  TensorView left = buf.view();
  left.shape[1] = 3;
  EXPECT_EQ(error_of(left), "");
  set_bits(buf, 2 * 6 + 1, 0xff800000u);  // row 2, column 1
  EXPECT_EQ(error_of(left), "tensor 'x' has a non-finite value (-inf) at [2, 1]; inputs must be finite");
  EXPECT_EQ(error_of(TensorView{}), "");  // empty: nothing to check
}

}  // namespace
