// PatternSelector base and registry: names, settings parsing and errors, the dense fallback below
// dense_below, the share_kv_head union over a GQA group (checked element-wise with contains()
// against the union written out here), and rejection of malformed selector output.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "sieve/attention/selector.h"
#include "sieve/attention/selectors/dense.h"
#include "sieve/core/error.h"
#include "sieve/core/rng.h"

using namespace sieve;
using namespace sieve::attention;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A selector whose per-query-head pattern is random (blocks and columns), for the union test.
class RandomSelector final : public PatternSelector {
 public:
  std::string name() const override { return "random-test"; }
  bool break_sorting = false;

 protected:
  SparsePattern estimate(const TensorView&, const TensorView&, const AttentionOptions& opts,
                         const AttentionShape& s) const override {
    SparsePattern p;
    p.seq_len_q = s.seq_len_q;
    p.seq_len_k = s.seq_len_k;
    p.block_q = common_.block_q;
    p.block_k = common_.block_k;
    p.num_heads = int(s.num_heads_q);
    p.causal = opts.causal;
    p.band = 3;
    Rng rng(5);
    p.block_indptr.push_back(0);
    for (int h = 0; h < p.num_heads; ++h)
      for (int64_t qb = 0; qb < p.num_q_blocks(); ++qb) {
        const int64_t diag = std::min(p.num_k_blocks() - 1,
                                      (std::min((qb + 1) * p.block_q, s.seq_len_q) - 1 +
                                       s.q_offset()) / p.block_k);
        for (int64_t kb = 0; kb <= diag; ++kb)
          if (rng.uniform() < 0.4) p.block_indices.push_back(int32_t(kb));
        p.block_indptr.push_back(int32_t(p.block_indices.size()));
      }
    if (break_sorting) {  // swap the first two ids of the first row that has two
      for (size_t r = 0; r + 1 < p.block_indptr.size(); ++r)
        if (p.block_indptr[r + 1] - p.block_indptr[r] >= 2) {
          std::swap(p.block_indices[p.block_indptr[r]], p.block_indices[p.block_indptr[r] + 1]);
          break;
        }
    }
    p.column_indptr.push_back(0);
    for (int h = 0; h < p.num_heads; ++h) {
      for (int64_t j = 0; j < s.seq_len_k; ++j)
        if (rng.uniform() < 0.05) p.columns.push_back(int32_t(j));
      p.column_indptr.push_back(int32_t(p.columns.size()));
    }
    return p;
  }
};

Tensor zeros(int64_t h, int64_t l, int64_t d) { return Tensor(DType::kF32, {h, l, d}); }

}  // namespace

TEST(SelectorRegistry, NamesAreStableAndIncludeTheControls) {
  const auto names = selector_names();
  ASSERT_GE(names.size(), 2u);
  EXPECT_EQ(names[0], "dense");
  EXPECT_NE(std::find(names.begin(), names.end(), "streaming"), names.end());
  for (const auto& n : names) EXPECT_EQ(make_selector(n)->name(), n);
}

TEST(SelectorRegistry, UnknownNameListsKnownNames) {
  const std::string msg = error_of([] { make_selector("nosuch"); });
  EXPECT_NE(msg.find("unknown attention method 'nosuch'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("dense"), std::string::npos) << msg;
  EXPECT_NE(msg.find("streaming"), std::string::npos) << msg;
}

TEST(SelectorRegistry, CommonSettingsParseAndReject) {
  auto s = make_selector("dense", {"block_q=64", "block_k=32", "dense_below=100", "share_kv_head=yes"});
  EXPECT_EQ(s->common().block_q, 64);
  EXPECT_EQ(s->common().block_k, 32);
  EXPECT_EQ(s->common().dense_below, 100);
  EXPECT_TRUE(s->common().share_kv_head);
  EXPECT_EQ(s->settings().at("block_k"), "32");
  EXPECT_NE(error_of([] { make_selector("dense", {"block_q=0"}); }).find("block_q must be"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_selector("dense", {"block_q=12x"}); }).find("needs an integer, got '12x'"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_selector("dense", {"block_q="}); }).find("needs an integer"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_selector("dense", {"share_kv_head=maybe"}); }).find("true or false"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_selector("dense", {"dense_below=-1"}); }).find(">= 0"),
            std::string::npos);
  EXPECT_NE(error_of([] { make_selector("dense", {"block_q"}); }).find("key=value"), std::string::npos);
  const std::string unknown = error_of([] { make_selector("streaming", {"tau=0.9"}); });
  EXPECT_NE(unknown.find("unknown setting 'tau'"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("local_blocks"), std::string::npos) << unknown;  // lists own keys too
}

// `sieve attn --set` writes "method.key=value"; every other caller of make_selector takes the same
// form for the one method it makes, and a prefix naming another method is an error, not ignored.
TEST(SelectorRegistry, SettingsMayNameTheirMethod) {
  auto s = make_selector("dense", {"dense.block_q=64", "block_k=32"});
  EXPECT_EQ(s->common().block_q, 64);
  EXPECT_EQ(s->common().block_k, 32);
  const std::string other = error_of([] { make_selector("dense", {"rr.block_q=64"}); });
  EXPECT_NE(other.find("is for method 'rr'"), std::string::npos) << other;
  const std::string unknown = error_of([] { make_selector("streaming", {"streaming.tau=0.9"}); });
  EXPECT_NE(unknown.find("unknown setting 'tau'"), std::string::npos) << unknown;
}

TEST(SelectorRegistry, DenseSelectorMatchesDensePatternAndFallback) {
  const Tensor q = zeros(4, 300, 8), k = zeros(2, 300, 8);
  auto s = make_selector("dense", {"block_q=64", "block_k=32"});
  const SparsePattern p = s->select(q, k, {});
  const SparsePattern want = SparsePattern::dense(4, 300, 300, 64, 32, true);
  EXPECT_EQ(p.block_indptr, want.block_indptr);
  EXPECT_EQ(p.block_indices, want.block_indices);
  EXPECT_DOUBLE_EQ(p.block_density(), 1.0);
  // share_kv_head: one pattern per KV head
  const SparsePattern shared = make_selector("dense", {"share_kv_head=true"})->select(q, k, {});
  EXPECT_TRUE(shared.per_kv_head);
  EXPECT_EQ(shared.num_heads, 2);
}

TEST(SelectorRegistry, DenseBelowReturnsDensePattern) {
  const Tensor q = zeros(2, 200, 8), k = zeros(2, 200, 8);
  RandomSelector r;
  r.set("block_q", "16");
  r.set("block_k", "16");
  EXPECT_LT(r.select(q, k, {}).block_density(), 0.9);
  r.set("dense_below", "201");
  const SparsePattern p = r.select(q, k, {});
  EXPECT_DOUBLE_EQ(p.block_density(), 1.0);
  EXPECT_FALSE(p.has_columns());
  r.set("dense_below", "200");  // not below: the method runs
  EXPECT_LT(r.select(q, k, {}).block_density(), 0.9);
}

TEST(SelectorRegistry, ShareKvHeadIsTheUnionOverTheGroup) {
  const int64_t hq = 6, hkv = 2, lq = 70, lk = 90;
  const Tensor q = zeros(hq, lq, 4), k = zeros(hkv, lk, 4);
  RandomSelector r;
  r.set("block_q", "16");
  r.set("block_k", "8");
  const SparsePattern per_q = r.select(q, k, {});
  r.set("share_kv_head", "true");
  const SparsePattern shared = r.select(q, k, {});
  ASSERT_TRUE(shared.per_kv_head);
  ASSERT_EQ(shared.num_heads, hkv);
  for (int64_t g = 0; g < hkv; ++g)
    for (int64_t i = 0; i < lq; ++i)
      for (int64_t j = 0; j < lk; ++j) {
        bool any = false;
        for (int64_t h = g * 3; h < g * 3 + 3; ++h) any = any || per_q.contains(h, i, j);
        ASSERT_EQ(shared.contains(g, i, j), any) << g << " " << i << " " << j;
      }
}

TEST(SelectorRegistry, MalformedSelectorOutputAndInputsAreRejected) {
  RandomSelector r;
  r.set("block_q", "16");
  r.set("block_k", "16");
  r.break_sorting = true;
  EXPECT_NE(error_of([&] { r.select(zeros(2, 200, 8), zeros(2, 200, 8), {}); }).find("sorted"),
            std::string::npos);
  DenseSelector d;
  EXPECT_NE(error_of([&] { d.select(zeros(3, 64, 8), zeros(2, 64, 8), {}); }).find("multiple"),
            std::string::npos);
  EXPECT_NE(error_of([&] { d.select(zeros(2, 64, 8), zeros(2, 64, 4), {}); }).find("head_dim"),
            std::string::npos);
}
