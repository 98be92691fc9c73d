// The GPU selection of rr / unisparse / xattn (est::select_rows: the cumulative rule with the sink
// and diagonal blocks forced) against the CPU's select_cumulative on the same block scores. The
// scores are dyadic (k * 2^-e, k < 64, e in [6, 24]), so every f64 sum is exact in any order and
// the two must agree exactly; small k gives many exact ties (zeros included), which the tie rule
// (lower id first) decides. Row lengths cover the per-warp threshold search at every register
// width (1..32 entries per lane, up to 1024 key blocks) and the per-CTA sort above. Skipped
// without a GPU.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "../../src/attention/selectors/cuda/estimation_gpu.h"
#include "../../src/attention/selectors/estimation.h"
#include "cuda_test_util.h"

namespace sieve::test {
namespace {

namespace est = attention::cuda::est;

template <class T>
struct DeviceBuffer {
  T* p = nullptr;
  explicit DeviceBuffer(size_t n) {
    SIEVE_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)));
  }
  ~DeviceBuffer() { cudaFree(p); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

struct Case {
  int64_t seq_q, seq_k;
  int block;
  bool causal;
  int ties;  // largest k: small values give many exact ties
};

void check_selection(const Case& c, double share, uint64_t seed) {
  const int heads = 2;
  attention::AttentionShape shape;
  shape.num_heads_q = heads;
  shape.num_heads_kv = heads;
  shape.seq_len_q = c.seq_q;
  shape.seq_len_k = c.seq_k;
  shape.head_dim = 64;
  const attention::estimation::BlockGeometry cpu_geo(shape, c.block, c.block, c.causal);
  est::Geometry g;
  g.seq_q = int(c.seq_q);
  g.seq_k = int(c.seq_k);
  g.q_offset = int(c.seq_k - c.seq_q);
  g.block_q = c.block;
  g.block_k = c.block;
  g.nqb = int(cpu_geo.num_q_blocks);
  g.nkb = int(cpu_geo.num_k_blocks);
  g.causal = c.causal;
  SCOPED_TRACE("nkb " + std::to_string(g.nkb) + " causal " + std::to_string(c.causal) + " share " +
               std::to_string(share) + " ties<" + std::to_string(c.ties) + " seed " +
               std::to_string(seed));

  Rng rng(seed);
  const int64_t per_head = int64_t(g.nqb) * g.nkb;
  std::vector<float> scores(size_t(heads * per_head));
  for (float& s : scores) {
    const int k = int(rng.uniform() * c.ties) % c.ties;
    const int e = 6 + int(rng.uniform() * 19) % 19;
    s = std::ldexp(float(k), -e);
  }
  DeviceBuffer<float> d_scores(scores.size());
  DeviceBuffer<int> d_counts(size_t(heads * g.nqb)), d_lists(size_t(heads * per_head));
  SIEVE_CUDA_CHECK(
      cudaMemcpy(d_scores.p, scores.data(), scores.size() * 4, cudaMemcpyHostToDevice));
  ASSERT_EQ(
      est::select_rows(g, d_scores.p, share, 0, d_counts.p, d_lists.p, nullptr, heads, per_head),
      cudaSuccess);
  std::vector<int> counts(size_t(heads * g.nqb)), lists(size_t(heads * per_head));
  SIEVE_CUDA_CHECK(
      cudaMemcpy(counts.data(), d_counts.p, counts.size() * 4, cudaMemcpyDeviceToHost));
  SIEVE_CUDA_CHECK(cudaMemcpy(lists.data(), d_lists.p, lists.size() * 4, cudaMemcpyDeviceToHost));

  int64_t differing = 0, kept = 0, visible = 0;
  for (int h = 0; h < heads; ++h)
    for (int qb = 0; qb < g.nqb; ++qb) {
      const float* row = scores.data() + h * per_head + int64_t(qb) * g.nkb;
      const int64_t nvis = cpu_geo.visible_k_blocks(qb);
      std::vector<int32_t> want;
      attention::estimation::select_cumulative(row, nvis, share, cpu_geo.forced_blocks(qb), want);
      std::sort(want.begin(), want.end());
      const int r = h * g.nqb + qb;
      const std::vector<int32_t> got(lists.begin() + int64_t(r) * g.nkb,
                                     lists.begin() + int64_t(r) * g.nkb + counts[size_t(r)]);
      kept += int64_t(want.size());
      visible += nvis;
      if (got != want && ++differing <= 3)
        ADD_FAILURE() << "head " << h << " query block " << qb << ": gpu keeps " << got.size()
                      << " blocks, cpu " << want.size();
    }
  EXPECT_EQ(differing, 0);
  std::printf("[selection] nkb %d share %.2f ties<%d: %ld rows, kept %.3f of visible, %ld differ\n",
              g.nkb, share, c.ties, long(heads * g.nqb),
              double(kept) / double(std::max<int64_t>(visible, 1)), long(differing));
}

TEST(GpuSelection, MatchesCpuRuleExactlyWithTies) {
  SIEVE_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  const Case cases[] = {
      {1600, 1600, 8, true, 64},   // 200 blocks: 1..8 entries per lane
      {1600, 1600, 8, true, 3},    // mostly ties and zeros
      {5600, 5600, 8, true, 64},   // 700 blocks: up to 32 per lane
      {8192, 8192, 8, true, 4},    // 1024 blocks, ties
      {3000, 8192, 8, true, 64},   // chunked prefill (bottom-right aligned)
      {2000, 2000, 8, false, 64},  // not causal: every row sees all 250 blocks
      {12000, 12000, 8, true, 5},  // 1500 blocks: the per-CTA sort
  };
  for (const Case& c : cases)
    for (double share : {0.5, 0.9, 0.98, 1.0}) check_selection(c, share, seed);
}

// est::build_csr against a CSR built on the host from the same per-row counts and lists: no rows,
// one row, row counts below, at and above 128, empty and full rows, and more rows (40001) than the
// scanning CTA has threads (several counts per thread). Outputs are poisoned first, and nothing
// may be written past the last entry.
TEST(GpuSelection, BuildCsrMatchesHostAssembly) {
  SIEVE_REQUIRE_GPU();
  Rng rng(fresh_seed());
  const std::pair<int, int> shapes[] = {{0, 8},      {1, 8},      {127, 16},  {128, 16},
                                        {129, 300},  {8192, 256}, {40001, 7}};
  for (const auto& [rows, nkb] : shapes) {
    SCOPED_TRACE("rows " + std::to_string(rows) + " nkb " + std::to_string(nkb));
    std::vector<int> counts(static_cast<size_t>(rows)), lists(static_cast<size_t>(rows) * nkb, -7);
    for (int r = 0; r < rows; ++r) {
      const double u = rng.uniform();
      counts[size_t(r)] = u < 0.1 ? 0 : u > 0.9 ? nkb : int(rng.uniform() * nkb) % (nkb + 1);
      for (int i = 0; i < counts[size_t(r)]; ++i)
        lists[size_t(r) * size_t(nkb) + size_t(i)] = int(rng.uniform() * 1e6);
    }
    std::vector<int> want_ptr(static_cast<size_t>(rows) + 1, 0), want_idx;
    for (int r = 0; r < rows; ++r) {
      want_ptr[size_t(r) + 1] = want_ptr[size_t(r)] + counts[size_t(r)];
      want_idx.insert(want_idx.end(), lists.begin() + int64_t(r) * nkb,
                      lists.begin() + int64_t(r) * nkb + counts[size_t(r)]);
    }
    DeviceBuffer<int> d_counts(counts.size()), d_lists(lists.size());
    DeviceBuffer<int> d_ptr(static_cast<size_t>(rows) + 1), d_idx(want_idx.size() + 1);
    SIEVE_CUDA_CHECK(
        cudaMemcpy(d_counts.p, counts.data(), counts.size() * 4, cudaMemcpyHostToDevice));
    SIEVE_CUDA_CHECK(
        cudaMemcpy(d_lists.p, lists.data(), lists.size() * 4, cudaMemcpyHostToDevice));
    SIEVE_CUDA_CHECK(cudaMemset(d_ptr.p, 0xff, (size_t(rows) + 1) * 4));
    SIEVE_CUDA_CHECK(cudaMemset(d_idx.p, 0xff, (want_idx.size() + 1) * 4));
    ASSERT_EQ(est::build_csr(rows, nkb, d_counts.p, d_lists.p, d_ptr.p, d_idx.p, nullptr),
              cudaSuccess);
    std::vector<int> got_ptr(static_cast<size_t>(rows) + 1), got_idx(want_idx.size() + 1);
    SIEVE_CUDA_CHECK(
        cudaMemcpy(got_ptr.data(), d_ptr.p, got_ptr.size() * 4, cudaMemcpyDeviceToHost));
    SIEVE_CUDA_CHECK(
        cudaMemcpy(got_idx.data(), d_idx.p, got_idx.size() * 4, cudaMemcpyDeviceToHost));
    EXPECT_EQ(got_ptr, want_ptr);
    EXPECT_EQ(got_idx.back(), -1);  // nothing written past the last entry
    got_idx.pop_back();
    EXPECT_EQ(got_idx, want_idx);
  }
}

}  // namespace
}  // namespace sieve::test
