// dense_attention against the f64 reference (reference.cpp, exact two-pass softmax) on every
// kernel path this CPU can run: causal / non-causal, GQA, lengths that are not multiples of the
// tile, seq_len_q < seq_len_k, head dims 64 / 128 and odd ones, f32 / bf16 / f16 inputs and
// outputs, strided views, lse, NaN propagation and input errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "attention_testing.h"
#include "sieve/attention/executor.h"
#include "sieve/attention/reference.h"
#include "sieve/core/threading.h"
#include "tolerance.h"

using namespace sieve;
using namespace sieve::attention;
using sieve::test::compare;
using sieve::test::Tolerance;

namespace {

struct Case {
  int64_t hq, hkv, lq, lk, d;
  bool causal;
  DType in = DType::kF32, out = DType::kF32;
  bool strided = false;
  float q_scale = 1.0f;
  float scale = 0.0f;
};

std::string describe(const Case& c) {
  return "hq " + std::to_string(c.hq) + " hkv " + std::to_string(c.hkv) + " lq " +
         std::to_string(c.lq) + " lk " + std::to_string(c.lk) + " d " + std::to_string(c.d) +
         (c.causal ? " causal" : " non-causal") + " in " + dtype_name(c.in) + " out " +
         dtype_name(c.out) + (c.strided ? " strided" : "");
}

Tolerance out_tolerance(DType out) {
  Tolerance t;
  if (out == DType::kBF16) t.elem_rel = sieve::test::kAttnBf16OutElemRel;
  if (out == DType::kF16) t.elem_rel = sieve::test::kAttnF16OutElemRel;
  return t;
}

// Runs the case on every available ISA and compares out and lse with the reference.
void check_case(const Case& c, uint64_t seed) {
  const auto in = sieve::test::random_qkv(c.hq, c.hkv, c.lq, c.lk, c.d, c.in, seed, c.strided,
                                          c.q_scale);
  const AttentionOptions opts{c.causal, c.scale};
  const ReferenceResult ref = reference_attention(in.q, in.k, in.v, opts);
  for (const std::string& isa : sieve::test::available_isas()) {
    sieve::test::IsaGuard guard(isa);
    Tensor out(c.out, {c.hq, c.lq, c.d}), lse(DType::kF32, {c.hq, c.lq});
    const TensorView lse_view = lse.view();
    dense_attention(in.q, in.k, in.v, out, opts, &lse_view);
    const auto cmp = compare(sieve::test::to_vector(out), ref.out, out_tolerance(c.out));
    EXPECT_TRUE(cmp.ok) << describe(c) << " isa " << isa << ": " << cmp.message();
    const std::vector<double> got_lse = sieve::test::to_vector(lse);
    for (size_t i = 0; i < got_lse.size(); ++i) {
      ASSERT_NEAR(got_lse[i], ref.lse[i], sieve::test::kAttnLseTol * (1 + std::fabs(ref.lse[i])))
          << describe(c) << " isa " << isa << " lse row " << i;
    }
  }
}

}  // namespace

TEST(DenseCpu, F32CausalAndNonCausalHeadDims64And128) {
  for (bool causal : {true, false})
    for (int64_t d : {64, 128}) check_case({2, 2, 300, 300, d, causal}, 11 + d);
}

TEST(DenseCpu, GqaOddLengthsAndShortQueryChunk) {
  check_case({4, 2, 261, 261, 64, true}, 21);
  check_case({6, 2, 77, 333, 128, true}, 22);   // bottom-right: queries at the end of the keys
  check_case({3, 1, 130, 200, 64, false}, 23);
  check_case({2, 1, 1, 1, 64, true}, 24);
  check_case({2, 2, 1, 129, 64, true}, 25);
}

TEST(DenseCpu, LongerSequenceAndPeakySoftmax) {
  check_case({1, 1, 1000, 1000, 64, true}, 31);
  check_case({2, 1, 200, 200, 64, true, DType::kF32, DType::kF32, false, 6.0f}, 32);
  check_case({2, 1, 200, 200, 64, true, DType::kF32, DType::kF32, false, 1.0f, 0.37f}, 33);
}

TEST(DenseCpu, OtherHeadDimsTakeNarrowerPaths) {
  for (int64_t d : {8, 20, 40, 72, 96}) check_case({2, 1, 150, 150, d, true}, 40 + d);
}

TEST(DenseCpu, HalfInputsAndOutputs) {
  for (DType in : {DType::kBF16, DType::kF16}) {
    check_case({2, 1, 200, 200, 128, true, in, DType::kF32}, 51);
    check_case({2, 1, 200, 200, 64, false, in, in}, 52);
    check_case({4, 2, 150, 190, 128, true, in, in}, 53);
  }
}

TEST(DenseCpu, StridedViews) {
  check_case({2, 1, 140, 140, 64, true, DType::kF32, DType::kF32, true}, 61);
  check_case({2, 2, 140, 170, 128, true, DType::kBF16, DType::kF32, true}, 62);
  check_case({2, 1, 70, 70, 40, false, DType::kF16, DType::kF16, true}, 63);
}

TEST(DenseCpu, SameResultForAnyThreadCount) {
  const auto in = sieve::test::random_qkv(3, 1, 300, 300, 64, DType::kF32, 71);
  Tensor a(DType::kF32, {3, 300, 64}), b(DType::kF32, {3, 300, 64});
  set_num_threads(1);
  dense_attention(in.q, in.k, in.v, a, {});
  set_num_threads(0);
  dense_attention(in.q, in.k, in.v, b, {});
  EXPECT_EQ(sieve::test::to_vector(a), sieve::test::to_vector(b));
}

TEST(DenseCpu, NanPropagatesOnlyToRowsThatSeeIt) {
  const int64_t L = 300, D = 64;
  for (const std::string& isa : sieve::test::available_isas()) {
    sieve::test::IsaGuard guard(isa);
    {
      auto in = sieve::test::random_qkv(1, 1, L, L, D, DType::kF32, 81);
      in.q.set(NAN, 0, 5, 3);  // one query row
      Tensor out(DType::kF32, {1, L, D});
      dense_attention(in.q, in.k, in.v, out, {});
      for (int64_t i = 0; i < L; ++i)
        EXPECT_EQ(std::isnan(out.view().get(0, i, 0)), i == 5) << isa << " row " << i;
    }
    {
      auto in = sieve::test::random_qkv(1, 1, L, L, D, DType::kF32, 82);
      in.k.set(NAN, 0, 200, 0);  // key 200: rows >= 200 see it, earlier rows must not
      Tensor out(DType::kF32, {1, L, D});
      dense_attention(in.q, in.k, in.v, out, {});
      for (int64_t i = 0; i < L; ++i)
        EXPECT_EQ(std::isnan(out.view().get(0, i, 7)), i >= 200) << isa << " row " << i;
    }
    {
      auto in = sieve::test::random_qkv(1, 1, L, L, D, DType::kF32, 83);
      in.v.set(NAN, 0, 250, 9);  // a value: rows >= 250 turn NaN; rows of earlier tiles stay finite
      Tensor out(DType::kF32, {1, L, D});
      dense_attention(in.q, in.k, in.v, out, {});
      for (int64_t i = 0; i < L; ++i) {
        if (i >= 250) {
          EXPECT_TRUE(std::isnan(out.view().get(0, i, 9))) << isa << " row " << i;
        } else if (i < 128) {
          EXPECT_FALSE(std::isnan(out.view().get(0, i, 9))) << isa << " row " << i;
        }
      }
    }
  }
}

TEST(DenseCpu, HugeLogitsStayFinite) {
  // scores of size ~1e3: exp overflows without the running max. The f32 scores themselves are
  // only accurate to a few ulps of their size, hence the logit-proportional tolerance.
  const int64_t L = 200, D = 64;
  const auto in = sieve::test::random_qkv(1, 1, L, L, D, DType::kF32, 91, false, 100.0f);
  const ReferenceResult ref = reference_attention(in.q, in.k, in.v, {});
  double max_logit = 0;
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int64_t d = 0; d < D; ++d) s += double(in.q.get(0, i, d)) * in.k.get(0, j, d);
      max_logit = std::max(max_logit, std::fabs(s) / 8.0);
    }
  ASSERT_GT(max_logit, 200.0);
  Tolerance tol;
  tol.max_rel += sieve::test::kAttnPerLogitRel * max_logit;
  for (const std::string& isa : sieve::test::available_isas()) {
    sieve::test::IsaGuard guard(isa);
    Tensor out(DType::kF32, {1, L, D});
    dense_attention(in.q, in.k, in.v, out, {});
    const auto cmp = compare(sieve::test::to_vector(out), ref.out, tol);
    EXPECT_TRUE(cmp.ok) << isa << ": " << cmp.message() << " max logit " << max_logit;
  }
}

TEST(DenseCpu, BadInputsThrowClearErrors) {
  const auto in = sieve::test::random_qkv(4, 2, 16, 16, 64, DType::kF32, 99);
  Tensor out(DType::kF32, {4, 16, 64});
  auto expect_msg = [](auto fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "expected sieve::Error with '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  Tensor wrong_out(DType::kF32, {4, 16, 32});
  expect_msg([&] { dense_attention(in.q, in.k, in.v, wrong_out, {}); }, "must have the shape of q");
  Tensor k3(DType::kF32, {3, 16, 64});
  expect_msg([&] { dense_attention(in.q, k3, k3, out, {}); }, "multiple of num_heads_kv");
  Tensor kd(DType::kF32, {2, 16, 32});
  expect_msg([&] { dense_attention(in.q, kd, kd, out, {}); }, "head_dim");
  Tensor kb(DType::kBF16, {2, 16, 64});
  expect_msg([&] { dense_attention(in.q, kb, kb, out, {}); }, "share a dtype");
  Tensor lse_bad(DType::kF32, {4, 15});
  const TensorView lse_view = lse_bad.view();
  expect_msg([&] { dense_attention(in.q, in.k, in.v, out, {}, &lse_view); }, "lse must be");
  Tensor kshort(DType::kF32, {2, 8, 64});
  expect_msg([&] { dense_attention(in.q, kshort, kshort, out, {}); }, "exceeds seq_len_k");
  expect_msg([&] { dense_attention(in.q, in.k, in.v, out, AttentionOptions{true, -1.0f}); },
             "scale");
  expect_msg([] { set_cpu_kernel_isa("sse9"); }, "unknown ISA");
}
