// GPU ports of the peer selectors (sample, xattn, vslash, flexprefill) against their CPU selectors
// on the same inputs: planted (make_synthetic) and random, odd and chunked lengths, bf16 and f16,
// head dims 64 and 128, causal and not. The GPU computes the same f32 scores (tensor cores on the
// 16-bit inputs: exact products, f32 sums in another order) and the same rules, so patterns may
// differ only where a column's cumulative mass sits at the threshold: few columns per head, counted
// and bounded below (docs/cuda.md). The GPU pattern then runs through the GPU executor against the
// f64 reference. Skipped without a GPU.
#include "../../src/attention/selectors/cuda/peers_gpu.h"
#include "../../src/attention/selectors/estimation.h"
#include "cuda_test_util.h"

#include "sieve/attention/cuda/selectors.h"
#include "sieve/attention/metrics.h"
#include "sieve/attention/selector.h"
#include "sieve/attention/synthetic.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace sieve::test {
namespace {

namespace cu = attention::cuda;
namespace est = attention::cuda::est;
using attention::AttentionOptions;
using attention::SparsePattern;

std::vector<int32_t> slice(const std::vector<int32_t>& v, const std::vector<int32_t>& indptr,
                           int64_t i) {
  return {v.begin() + indptr[size_t(i)], v.begin() + indptr[size_t(i) + 1]};
}

int64_t sym_diff(const std::vector<int32_t>& x, const std::vector<int32_t>& y) {
  std::vector<int32_t> d;
  std::set_symmetric_difference(x.begin(), x.end(), y.begin(), y.end(), std::back_inserter(d));
  return int64_t(d.size());
}

struct Diff {
  int64_t rows = 0, differing_rows = 0, worst_row_blocks = 0;
  int64_t columns_cpu = 0, differing_columns = 0, worst_head_columns = 0;
};

Diff compare(const SparsePattern& cpu, const SparsePattern& gpu) {
  Diff d;
  d.rows = int64_t(cpu.block_indptr.size()) - 1;
  for (int64_t r = 0; r < d.rows; ++r) {
    const int64_t n = sym_diff(slice(cpu.block_indices, cpu.block_indptr, r),
                               slice(gpu.block_indices, gpu.block_indptr, r));
    d.differing_rows += n > 0 ? 1 : 0;
    d.worst_row_blocks = std::max(d.worst_row_blocks, n);
  }
  if (cpu.has_columns() && gpu.has_columns())
    for (int64_t h = 0; h < cpu.num_heads; ++h) {
      const int64_t n = sym_diff(slice(cpu.columns, cpu.column_indptr, h),
                                 slice(gpu.columns, gpu.column_indptr, h));
      d.differing_columns += n;
      d.worst_head_columns = std::max(d.worst_head_columns, n);
      d.columns_cpu += cpu.column_indptr[size_t(h) + 1] - cpu.column_indptr[size_t(h)];
    }
  return d;
}

// How block rows may differ: sample's rows are fixed blocks (identical unless the dense fallback
// flips); xattn's come from the cumulative rule over f32 block masses summed in another order, so
// only blocks at the threshold move (the rule of test_gpu_selectors.cpp's rr / unisparse).
// vslash's come from slash lines: an offset at the top-k cut that swaps with its neighbour in
// f32 moves at most the two blocks its line crosses in every query block (block_q = block_k).
// flexprefill's rows add its top vertical blocks (a swap at the cut moves one block in each row of
// a head), slash lines and, for query-aware heads, pooled blocks at the global cumulative cut.
enum class Rows { kExact, kThreshold, kLines, kFlex };

// CPU select() on host tensors vs select_on_device() on device copies, then the GPU pattern
// through the GPU executor.
void check_peer(const std::string& name, const std::vector<std::string>& settings, const Inputs& in,
                const AttentionOptions& opts, const std::string& what, Rows rule = Rows::kExact) {
  SCOPED_TRACE(what + " selector " + name);
  auto sel = attention::make_selector(name, settings);
  CpuGpuPatterns r;
  ASSERT_NO_FATAL_FAILURE(select_on_cpu_and_gpu(*sel, in, opts, r));
  const SparsePattern& cpu = r.cpu;
  const SparsePattern& gpu = r.gpu;
  EXPECT_EQ(gpu.band, cpu.band);
  EXPECT_EQ(gpu.has_columns(), cpu.has_columns());
  ASSERT_EQ(gpu.block_indptr.size(), cpu.block_indptr.size());
  ASSERT_EQ(gpu.column_indptr.size(), cpu.column_indptr.size());
  const Diff d = compare(cpu, gpu);
  std::printf(
      "[%s] %s: %ld/%ld rows differ (max %ld blocks), %ld of %ld cpu columns differ (worst head "
      "%ld), "
      "density cpu %.4f gpu %.4f\n",
      what.c_str(), name.c_str(), long(d.differing_rows), long(d.rows), long(d.worst_row_blocks),
      long(d.differing_columns), long(d.columns_cpu), long(d.worst_head_columns),
      cpu.block_density(), gpu.block_density());
  if (rule == Rows::kExact) {
    // sample: the sink and diagonal blocks, or every block for a dense-fallback head; the fallback
    // compares (kept columns + band) / keys with dense_share, so it flips only with a threshold
    // column.
    EXPECT_EQ(d.differing_rows, 0) << "block rows differ (dense fallback decided differently)";
  } else if (rule == Rows::kThreshold) {
    EXPECT_LE(double(d.differing_rows), 0.03 * double(d.rows) + 1) << "too many rows differ";
    EXPECT_LE(d.worst_row_blocks, 2) << "a row differs by more than threshold blocks";
  } else if (rule == Rows::kLines) {
    EXPECT_LE(d.worst_row_blocks, 4) << "a row differs by more than two swapped slash lines";
  } else {
    // at most one head's rows (a swapped vertical block) plus rows at the pooled cut
    const int64_t per_head = d.rows / std::max<int64_t>(1, cpu.num_heads);
    EXPECT_LE(double(d.differing_rows), 0.03 * double(d.rows) + double(per_head))
        << "too many rows differ";
    EXPECT_LE(d.worst_row_blocks, 4) << "a row differs by more than a swapped block or line";
  }
  // Columns: f32 masses in another summation order move only the columns at the cumulative cut.
  EXPECT_LE(double(d.differing_columns), 0.01 * double(d.columns_cpu) + double(cpu.num_heads))
      << "too many columns differ";
  EXPECT_LE(d.worst_head_columns, std::max<int64_t>(4, d.columns_cpu / cpu.num_heads / 50))
      << "a head's columns differ by more than threshold columns";

  // The GPU pattern through the GPU executor equals the f64 reference on that pattern (the
  // executor tiles 128-row query blocks; vslash's default 64-row blocks stop here).
  if (gpu.block_q % 128 != 0) return;
  expect_pattern_output_matches_reference(in, opts, gpu, what + " " + name);
  // The selector's own device pattern, whose column capacity (heads x keys) exceeds its list (fa3
  // stages that many rows of token columns), gives the bits of the uploaded copy.
  const attention::cuda::DevicePatternView own_view = r.dp.view();
  const GpuRun own = run_gpu_on(in.q, in.k, in.v, in.q.dtype(), opts, &own_view);
  const GpuRun copy = run_gpu(in.q, in.k, in.v, in.q.dtype(), opts, &gpu);
  EXPECT_EQ(std::memcmp(own.out.data(), copy.out.data(), size_t(own.out.nbytes())), 0)
      << "outputs of the device pattern and its uploaded copy differ";
  EXPECT_EQ(std::memcmp(own.lse.data(), copy.lse.data(), size_t(own.lse.nbytes())), 0)
      << "LSEs of the device pattern and its uploaded copy differ";
}

class GpuPeerSelectors : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cu::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(GpuPeerSelectors, SampleMatchesCpu) {
  const uint64_t seed = fresh_seed();
  const std::string s = " seed " + std::to_string(seed);
  AttentionOptions causal;
  // planted heads: columns + window, mostly sparse (the suite's structure)
  check_peer("sample", {"dense_below=0"}, planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed),
             causal, "planted" + s);
  check_peer("sample", {"dense_below=0", "alpha=0.9", "chunk=8", "sample_ratio=0.1"},
             planted_inputs(DType::kF16, 4, 2, 1531, 64, seed + 1), causal, "planted f16 d64" + s);
  // random heads are diffuse: without the fallback every column is in play, with it they go dense
  check_peer("sample", {"dense_below=0", "dense_share=1"},
             random_inputs(DType::kBF16, 4, 2, 1537, 1537, 128, seed + 2), causal, "random" + s);
  check_peer("sample", {"dense_below=0"},
             random_inputs(DType::kBF16, 2, 1, 1100, 1100, 64, seed + 3), causal,
             "random dense fallback" + s);
  // chunked prefill (queries bottom-right aligned after 800 keys) and non-causal
  check_peer("sample", {"dense_below=0", "dense_share=1", "window_ratio=0.02"},
             random_inputs(DType::kF16, 4, 1, 700, 1500, 128, seed + 4), causal, "chunked" + s);
  AttentionOptions full;
  full.causal = false;
  check_peer("sample", {"dense_below=0", "window_ratio=0", "alpha=0.95"},
             planted_inputs(DType::kBF16, 2, 2, 1300, 64, seed + 5), full, "non-causal" + s);
  // below dense_below: the dense pattern
  check_peer("sample", {}, random_inputs(DType::kBF16, 2, 1, 1000, 1000, 64, seed + 6), causal,
             "short" + s);
}

// One selector input of the equality tests below, selected on the device under a switch value
// (selector: the test's selector when null).
struct SwitchCase {
  std::vector<std::string> settings;
  Inputs in;
  bool causal;
  const char* what;
  const char* selector = nullptr;
};
template <class Compare>
void for_each_switch_case(const char* selector, const std::vector<SwitchCase>& cases,
                          uint64_t seed, const char* variable, const Compare& compare) {
  for (const SwitchCase& c : cases) {
    const char* name = c.selector != nullptr ? c.selector : selector;
    SCOPED_TRACE(std::string(name) + " " + c.what + " seed " + std::to_string(seed));
    auto sel = attention::make_selector(name, c.settings);
    AttentionOptions opts;
    opts.causal = c.causal;
    const cu::DeviceTensor dq = cu::DeviceTensor::from_host(c.in.q);
    const cu::DeviceTensor dk = cu::DeviceTensor::from_host(c.in.k);
    compare(c, [&](const char* value) {
      const ScopedEnv env(variable, value);
      return cu::select_on_device(*sel, dq, dk, opts).download();
    });
  }
}

// The switch equality tests below: under each case, the pattern selected with `variable` set to
// `value` must equal the one selected with `reference` in every field (the paths compute the same
// values, or values apart by rounding that no threshold of these continuous inputs falls within).
void expect_switch_patterns_equal(const char* selector, const std::vector<SwitchCase>& cases,
                                  uint64_t seed, const char* variable, const char* reference,
                                  const char* value, const char* tag) {
  for_each_switch_case(selector, cases, seed, variable,
                       [&](const SwitchCase& c, const auto& select_with) {
    const SparsePattern ref = select_with(reference);
    const SparsePattern got = select_with(value);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    ASSERT_NO_THROW(got.validate());
    EXPECT_EQ(got.band, ref.band);
    EXPECT_EQ(got.block_indptr, ref.block_indptr);
    EXPECT_EQ(got.block_indices, ref.block_indices);
    EXPECT_EQ(got.column_indptr, ref.column_indptr);
    EXPECT_EQ(got.columns, ref.columns);
    std::printf("[%s] %s %s: %zu blocks, %zu columns, density %.4f\n", tag,
                c.selector != nullptr ? c.selector : selector, c.what, ref.block_indices.size(),
                ref.columns.size(), ref.block_density());
  });
}

// Stage 2 of sample finds each head's kept columns by a radix select over the masses' bits
// (sample.cu select_pass_kernel); SIEVE_SAMPLE_STAGE2=sort sorts every column of every head.
// Both apply the same cumulative rule and tie order, summing in different orders, so they differ
// only if an f64 sum lands exactly at the requirement (never with these continuous masses): the
// patterns must be identical. Cases: the planted structure, diffuse random heads without the
// fallback (many kept columns), alpha low enough that the window alone covers it (no columns),
// chunked prefill, non-causal, and 16 heads at 8192 keys (4 CTAs per head in each pass).
std::vector<SwitchCase> sample_switch_cases(uint64_t seed) {
  return {
      {{"dense_below=0"}, planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed), true, "planted"},
      {{"dense_below=0", "alpha=0.9", "chunk=8", "sample_ratio=0.1"},
       planted_inputs(DType::kF16, 4, 2, 1531, 64, seed + 1), true, "planted f16 d64"},
      {{"dense_below=0", "dense_share=1"},
       random_inputs(DType::kBF16, 4, 2, 1537, 1537, 128, seed + 2), true, "random, no fallback"},
      {{"dense_below=0", "alpha=0.05"}, planted_inputs(DType::kBF16, 2, 1, 2048, 128, seed + 3),
       true, "window covers alpha"},
      {{"dense_below=0", "dense_share=1", "window_ratio=0.02"},
       random_inputs(DType::kF16, 4, 1, 700, 1500, 128, seed + 4), true, "chunked"},
      {{"dense_below=0", "window_ratio=0", "alpha=0.95"},
       planted_inputs(DType::kBF16, 2, 2, 1300, 64, seed + 5), false, "non-causal"},
      {{"dense_below=0"}, planted_inputs(DType::kBF16, 16, 4, 8192, 128, seed + 6), true,
       "16 heads, 8192 keys"},
  };
}
TEST_F(GpuPeerSelectors, SampleSelectEqualsSort) {
  const uint64_t seed = fresh_seed();
  expect_switch_patterns_equal("sample", sample_switch_cases(seed), seed, "SIEVE_SAMPLE_STAGE2",
                               "sort", "select", "stage 2");
}

// Sample's mass sweep skips the key tiles that hold no non-covered key of the CTA's rows and
// takes the covered mass by difference (the default); SIEVE_SAMPLE_MASS=full visits every tile
// and sums the covered probabilities. The column masses are the same values (FastRowEpilogue-
// ExactColumnMasses checks them bit for bit) and the covered mass moves by f32 rounding only, so
// the patterns differ only if a cumulative sum lands within that rounding of the requirement
// (never with these continuous masses): they must be identical.
TEST_F(GpuPeerSelectors, SampleMassSkipEqualsFull) {
  const uint64_t seed = fresh_seed();
  expect_switch_patterns_equal("sample", sample_switch_cases(seed), seed, "SIEVE_SAMPLE_MASS",
                               "full", "skip", "mass skip");
}

// rr's key-representative kernel also writes the sampled queries where the strides line up
// (representatives.cu fused_queries; SIEVE_RR_QUERIES=separate launches rr_queries instead). Both
// compute every value with the same operations in the same order, so the patterns must be
// identical. Cases: strides 16, 8 (over 48 KiB of shared memory at D 128) and 32; groups of 1,
// 2, 4 and 32 query heads (8 chunks of 4); partial last strides; chunked prefill with the query
// offset a whole number of strides (fused) and not (both separate); non-causal; plain means;
// query strides of 32 and 64 rows against 16-key strides (each sampled query written by the warp
// of its own key stride), cut short at the end, with offsets of whole query strides and not.
TEST_F(GpuPeerSelectors, RRFusedQueriesEqualSeparate) {
  const uint64_t seed = fresh_seed();
  const std::vector<SwitchCase> cases = {
      {{"dense_below=0"}, planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed), true, "planted"},
      {{"dense_below=0", "stride=8", "outliers=3"},
       random_inputs(DType::kBF16, 4, 1, 1100, 1100, 128, seed + 1), true, "S8 d128 group 4"},
      {{"dense_below=0", "stride=32", "block_q=256", "block_k=256"},
       planted_inputs(DType::kF16, 4, 2, 1300, 64, seed + 2), true, "S32 f16 d64"},
      {{"dense_below=0", "tau=0.9"}, random_inputs(DType::kBF16, 32, 1, 1100, 1100, 64, seed + 3),
       true, "group 32"},
      {{"dense_below=0"}, random_inputs(DType::kBF16, 4, 2, 704, 1504, 128, seed + 4), true,
       "chunked, offset 800 (fused)"},
      {{"dense_below=0"}, random_inputs(DType::kF16, 4, 2, 700, 1507, 128, seed + 5), true,
       "chunked, offset 807 (separate)"},
      {{"dense_below=0"}, planted_inputs(DType::kBF16, 2, 2, 1300, 64, seed + 6), false,
       "non-causal"},
      {{"dense_below=0", "outliers=0", "moments=false"},
       planted_inputs(DType::kF16, 2, 1, 1537, 64, seed + 7), true, "plain means"},
      {{"dense_below=0", "outliers=1", "variance=scalar"},
       planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed + 8), true, "scalar variance"},
      {{"dense_below=0", "query_stride=32", "outliers=1"},
       planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed + 9), true, "query stride 32"},
      {{"dense_below=0", "query_stride=64"}, planted_inputs(DType::kF16, 4, 2, 1300, 64, seed + 10),
       true, "query stride 64, partial"},
      {{"dense_below=0", "query_stride=32"},
       random_inputs(DType::kBF16, 4, 2, 704, 1504, 128, seed + 11), true,
       "query stride 32, offset 800 (fused)"},
      {{"dense_below=0", "query_stride=32"},
       random_inputs(DType::kBF16, 4, 2, 720, 1504, 128, seed + 12), true,
       "query stride 32, offset 784 (separate)"},
      {{"dense_below=0", "query_stride=32"}, planted_inputs(DType::kBF16, 2, 2, 1300, 64, seed + 13),
       false, "query stride 32, non-causal"},
  };
  expect_switch_patterns_equal("rr", cases, seed, "SIEVE_RR_QUERIES", "separate", "fused",
                               "rr queries");
}

// Row shapes of the two equality tests below: rr at its defaults on the planted input, 250 key
// blocks per row (500 rows: not a multiple of 8; register-sort width 8), every visible block
// (tau 1), and non-causal rows.
std::vector<SwitchCase> rr_row_cases(uint64_t seed) {
  return {
      {{"dense_below=0"}, planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed), true, "planted"},
      {{"dense_below=0", "outliers=1", "stride=2", "block_q=8", "block_k=8", "tau=0.9"},
       planted_inputs(DType::kBF16, 2, 1, 2000, 64, seed + 1), true, "250 blocks, 500 rows"},
      {{"dense_below=0", "tau=1"}, random_inputs(DType::kBF16, 4, 2, 1537, 1537, 128, seed + 2),
       true, "tau 1"},
      {{"dense_below=0"}, planted_inputs(DType::kF16, 2, 2, 1300, 64, seed + 3), false,
       "non-causal"},
  };
}

// rr's block sums select the rows in the same kernel where rows have at most 256 key blocks
// (estimation.cu select_row_sorted from the warp kernel's sums in shared memory;
// SIEVE_RR_SELECT=separate writes the scores and runs select_rows). Both apply the same code to
// the same f32 values, so the patterns must be identical: under both block-sum kernels (the warp
// kernel, rr's default, and the CTA kernel, where the selection stays select_rows' launch), at 1
// to 250 key blocks per row (register-sort widths 1 to 8), causal and not, with an outlier and
// a query stride of 32, and with tau 1 (every visible block).
TEST_F(GpuPeerSelectors, RRFusedSelectionEqualsSeparate) {
  const uint64_t seed = fresh_seed();
  std::vector<SwitchCase> cases = rr_row_cases(seed);
  cases.push_back({{"dense_below=0", "outliers=1", "query_stride=32", "tau=0.98"},
                   planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed + 4), true,
                   "outlier, query stride 32"});
  cases.push_back({{"dense_below=0", "stride=4", "block_q=16", "block_k=16"},
                   random_inputs(DType::kF16, 2, 2, 1100, 1100, 64, seed + 5), true,
                   "69 blocks f16"});
  for (const char* kernel : {"warp", "cta"}) {
    SCOPED_TRACE(std::string("SIEVE_BLOCK_SCORES=") + kernel);
    const ScopedEnv env("SIEVE_BLOCK_SCORES", kernel);
    expect_switch_patterns_equal("rr", cases, seed, "SIEVE_RR_SELECT", "separate", "fused",
                                 "rr selection");
  }
}

// The block CSR of every GPU selector is assembled in one kernel (estimation.cu
// csr_lookback_kernel: offsets by a decoupled look-back over tiles of 8 rows, then each row's
// copy); SIEVE_CSR=two runs the single-CTA scan and the gather kernel. Integer sums and copies:
// the patterns must be identical. Cases: rr's row shapes above, 4096 rows (512 tiles: look-back
// windows past 32 tiles), and unisparse's and xattn's patterns.
TEST_F(GpuPeerSelectors, OnePassCsrEqualsTwoKernels) {
  const uint64_t seed = fresh_seed();
  std::vector<SwitchCase> cases = rr_row_cases(seed);
  cases.push_back({{"dense_below=0", "block_q=64", "block_k=64", "stride=8"},
                   random_inputs(DType::kBF16, 32, 8, 8192, 8192, 64, seed + 4), true,
                   "4096 rows"});
  cases.push_back({{"dense_below=0"}, planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed + 5),
                   true, "unisparse", "unisparse"});
  cases.push_back({{"dense_below=0"}, planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed + 6),
                   true, "xattn", "xattn"});
  expect_switch_patterns_equal("rr", cases, seed, "SIEVE_CSR", "two", "one", "csr");
}

// The xattn cases, run once per score kernel (`tag` names the kernel in the trace).
void xattn_cases(const std::string& tag) {
  const uint64_t seed = fresh_seed();
  const std::string s = tag + " seed " + std::to_string(seed);
  AttentionOptions causal;
  const Rows t = Rows::kThreshold;
  check_peer("xattn", {"dense_below=0"}, planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed),
             causal, "planted" + s, t);
  check_peer("xattn", {"dense_below=0", "tau=0.95"},
             random_inputs(DType::kBF16, 4, 2, 1537, 1537, 128, seed + 1), causal, "random" + s, t);
  // f16, D 64, stride 16 (8 entries per block), a partial last stride
  check_peer("xattn", {"dense_below=0", "stride=16"},
             planted_inputs(DType::kF16, 2, 1, 1533, 64, seed + 2), causal,
             "planted f16 d64 S16" + s, t);
  // stride 2 (64 entries per block), 64-token blocks (32 per block), chunked prefill
  check_peer("xattn", {"dense_below=0", "stride=2", "tau=0.8"},
             random_inputs(DType::kBF16, 2, 2, 600, 1100, 64, seed + 3), causal, "chunked S2" + s,
             t);
  check_peer("xattn", {"dense_below=0", "block_q=128", "block_k=64", "stride=4"},
             planted_inputs(DType::kBF16, 4, 1, 1300, 128, seed + 4), causal, "block_k 64" + s, t);
  // stride 32 (8 entries per 256-key block): past the TMA kernel's 16 offsets, so on Hopper the
  // cp.async wgmma kernel runs
  check_peer("xattn", {"dense_below=0", "block_q=256", "block_k=256", "stride=32"},
             planted_inputs(DType::kBF16, 2, 1, 2100, 128, seed + 6), causal, "S32" + s, t);
  AttentionOptions full;
  full.causal = false;
  check_peer("xattn", {"dense_below=0"}, planted_inputs(DType::kF16, 2, 2, 1111, 128, seed + 5),
             full, "non-causal" + s, t);
}

TEST_F(GpuPeerSelectors, XAttentionMatchesCpu) { xattn_cases(""); }

// On Hopper, xattn scores on the TMA kernel (sm90a/xattn_tma.cu) wherever it fits, else on the
// cp.async wgmma kernel (sm90a/xattn_wgmma.cu: stride 32 above, S > 16); SIEVE_XATTN_KERNEL=wgmma
// forces the latter, tma256 / tma192 the TMA kernel's 128 x 256 / 192 x 192 tiles (elsewhere the
// variable is ignored and these tests rerun the mma.sync path). All sum the same wgmma products
// in the same order per accumulator and share the statistics code (the TMA kernel also loads
// keys past every row's visibility, which all mask), so the statistics and therefore the
// patterns must be identical, not merely close.

TEST_F(GpuPeerSelectors, XAttentionWgmmaKernelMatchesCpu) {
  const ScopedEnv env("SIEVE_XATTN_KERNEL", "wgmma");
  xattn_cases(" wgmma");
}

TEST_F(GpuPeerSelectors, XAttentionTmaKernelEqualsWgmma) {
  const uint64_t seed = fresh_seed();
  const std::vector<SwitchCase> cases = {
      {{"dense_below=0"}, planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed), true, "planted"},
      // partial last stride (1533 = 95 * 16 + 13), f16, D 64, 8 entries per block
      {{"dense_below=0", "stride=16"}, planted_inputs(DType::kF16, 2, 1, 1533, 64, seed + 1), true,
       "f16 d64 S16"},
      // chunked prefill: fewer query than key strides, 32 entries per block; S divides the query
      // length, not the key length (one Q map for all offsets, one K map per offset)
      {{"dense_below=0", "stride=2", "tau=0.8"},
       random_inputs(DType::kBF16, 2, 2, 600, 1101, 64, seed + 2), true, "chunked S2"},
      {{"dense_below=0"}, planted_inputs(DType::kF16, 2, 2, 1111, 128, seed + 3), false,
       "non-causal"},
      // 320 visible 128 x 256 tiles (336 of 192 x 192): each persistent CTA of the TMA kernel
      // scores 2-3 of them, diagonal (one key part) and full ones, so its ring runs on across
      // tiles
      {{"dense_below=0", "tau=0.95"}, random_inputs(DType::kBF16, 16, 4, 8192, 128, seed + 4),
       true, "several tiles per CTA"},
  };
  for_each_switch_case("xattn", cases, seed, "SIEVE_XATTN_KERNEL", [](const SwitchCase&,
                                                                       const auto& select_with) {
    const SparsePattern wgmma = select_with("wgmma");
    for (const char* tile : {"tma256", "tma192"}) {
      SCOPED_TRACE(tile);
      const SparsePattern tma = select_with(tile);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      EXPECT_EQ(tma.block_indptr, wgmma.block_indptr);
      EXPECT_EQ(tma.block_indices, wgmma.block_indices);
    }
  });
}

TEST_F(GpuPeerSelectors, VerticalSlashMatchesCpu) {
  const uint64_t seed = fresh_seed();
  const std::string s = " seed " + std::to_string(seed);
  AttentionOptions causal;
  const Rows t = Rows::kLines;
  // budgets below the length so that the top-k cuts matter
  check_peer("vslash", {"dense_below=0", "vertical_size=100", "slash_size=200"},
             planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed), causal, "planted" + s, t);
  check_peer("vslash",
             {"dense_below=0", "vertical_size=64", "slash_size=128", "last_q=100", "block_q=128",
              "block_k=128"},
             random_inputs(DType::kF16, 4, 2, 1537, 1537, 64, seed + 1), causal,
             "random f16 d64" + s, t);
  // two probe row tiles, chunked prefill, per-head budgets
  check_peer("vslash",
             {"dense_below=0", "last_q=200", "vertical_size=40,50,60,70",
              "slash_size=60,80,100,300", "block_q=128", "block_k=64"},
             random_inputs(DType::kBF16, 4, 1, 700, 1500, 128, seed + 2), causal,
             "chunked per-head" + s, t);
  AttentionOptions full;
  full.causal = false;
  check_peer("vslash",
             {"dense_below=0", "vertical_size=80", "slash_size=90", "force_columns=5",
              "force_diagonals=7"},
             planted_inputs(DType::kF16, 2, 2, 1111, 128, seed + 3), full, "non-causal" + s, t);
}

TEST_F(GpuPeerSelectors, FlexPrefillMatchesCpu) {
  const uint64_t seed = fresh_seed();
  const std::string s = " seed " + std::to_string(seed);
  AttentionOptions causal;
  const Rows t = Rows::kFlex;
  // default tau: the Jensen-Shannon test decides per head
  check_peer("flexprefill", {"dense_below=0", "min_budget=256"},
             planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed), causal, "planted" + s, t);
  // tau 1 > sqrt(ln 2): every head query-aware (pooled block attention, min budgets)
  check_peer("flexprefill", {"dense_below=0", "tau=1", "gamma=0.9", "min_budget=128"},
             planted_inputs(DType::kF16, 4, 2, 1531, 64, seed + 1), causal,
             "planted f16 d64 query-aware" + s, t);
  // tau 0: no head query-aware (vertical and slash budgets), a budget cap
  check_peer("flexprefill", {"dense_below=0", "tau=0", "min_budget=128", "max_budget=512"},
             random_inputs(DType::kBF16, 4, 2, 1537, 1537, 128, seed + 2), causal,
             "random vertical-slash" + s, t);
  check_peer("flexprefill", {"dense_below=0", "tau=1", "gamma=0.8", "min_budget=0"},
             random_inputs(DType::kBF16, 4, 4, 1300, 1300, 64, seed + 3), causal,
             "random query-aware" + s, t);
  // chunked prefill (queries bottom-right aligned after 800 keys), 64-token key blocks
  check_peer("flexprefill", {"dense_below=0", "tau=1", "block_k=64", "min_budget=128"},
             random_inputs(DType::kF16, 4, 1, 700, 1500, 128, seed + 4), causal, "chunked" + s, t);
  AttentionOptions full;
  full.causal = false;
  check_peer("flexprefill", {"dense_below=0", "min_budget=128"},
             planted_inputs(DType::kBF16, 2, 2, 1111, 64, seed + 5), full, "non-causal" + s, t);
  // below dense_below (max(256, min_budget) + 1): the dense pattern
  check_peer("flexprefill", {}, random_inputs(DType::kBF16, 2, 1, 1000, 1000, 64, seed + 6), causal,
             "short" + s, Rows::kExact);
}

// ---- flex_select's rules, exactly -------------------------------------------------------------
// est::flex_select on probe sums and pooled shares that are dyadic (k * 2^-e, small k, many ties
// and zeros), so every f64 sum is exact in any order: its rows must equal, block for block, the
// CPU selector's rules applied here with the CPU's building blocks (cover_count, top_k_indices,
// the pooled cut of flex_prefill.cpp, forced and visible blocks of BlockGeometry). tau 0 makes no
// head query-aware, tau 2 (> sqrt(ln 2)) every head. The pooled entries past a row's visible blocks
// hold 1e30 (flex_select must not read them). Lengths cover walks in several shared-memory tiles
// and more than 1024 key blocks.
struct FlexCase {
  int seq_q, seq_k, block_q, block_k;
  bool causal;
  int heads, group;
  bool aware;
  double gamma;
  int min_blocks, max_blocks;  // max 0: nkb
  int ties;                    // pooled shares k * 2^-e with k < ties
};

template <class T>
std::shared_ptr<T> on_device(const std::vector<T>& v) {
  void* p = nullptr;
  SIEVE_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(v.size(), 1) * sizeof(T)));
  std::shared_ptr<T> d(static_cast<T*>(p), [](T* q) { cudaFree(q); });
  if (!v.empty())
    SIEVE_CUDA_CHECK(cudaMemcpy(p, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

// The CPU rules from the probe sums on (flex_prefill.cpp steps 3-6), rows [heads * nqb]; cut
// counts the pooled entries kept and the positive ones (query-aware heads).
struct PooledCut {
  int64_t kept = 0, positive = 0;
};
std::vector<std::vector<int32_t>> flex_rows_on_cpu(const attention::estimation::BlockGeometry& geo,
                                                   const FlexCase& c, const est::FlexSettings& s,
                                                   const std::vector<double>& vertical,
                                                   const std::vector<double>& slash,
                                                   const std::vector<float>& attn, PooledCut& cut) {
  namespace cpu = attention::estimation;
  const int64_t Lk = geo.seq_len_k, bk = geo.block_k, nqb = geo.num_q_blocks;
  const int64_t nkb = geo.num_k_blocks;
  const double rows = double(s.probe_rows);
  const auto clamp_blocks = [&](int64_t b) {
    return std::clamp<int64_t>(std::clamp<int64_t>(b, s.min_blocks, s.max_blocks), 0, nkb);
  };
  std::vector<std::vector<int32_t>> out(size_t(c.heads * nqb));
  for (int h = 0; h < c.heads; ++h) {
    const auto tokens = [&](const std::vector<double>& x, std::vector<float>& tok,
                            std::vector<float>& pooled) {
      tok.resize(size_t(Lk));
      pooled.resize(size_t(nkb));
      for (int64_t j = 0; j < Lk; ++j) tok[size_t(j)] = float(x[size_t(h * Lk + j)] / rows);
      for (int64_t kb = 0; kb < nkb; ++kb) {
        const int64_t a = kb * bk, b = std::min(Lk, a + bk);
        double sum = 0;
        for (int64_t j = a; j < b; ++j) sum += x[size_t(h * Lk + j)] / rows;
        pooled[size_t(kb)] = float(sum / double(b - a));
      }
    };
    std::vector<float> vtok, stok, vblock, sblock;
    tokens(vertical, vtok, vblock);
    tokens(slash, stok, sblock);
    int64_t num_v = clamp_blocks(cpu::cover_count(vtok.data(), Lk, s.gamma) / bk + 1);
    int64_t num_s = clamp_blocks(cpu::cover_count(stok.data(), Lk, s.gamma) / bk + 1);
    if (c.aware) num_v = num_s = clamp_blocks(s.min_blocks);
    vblock[0] = sblock[0] = std::numeric_limits<float>::infinity();
    const std::vector<int32_t> vsel = cpu::top_k_indices(vblock.data(), nkb, num_v);
    const std::vector<int32_t> ssel = cpu::top_k_indices(sblock.data(), nkb, num_s);
    std::vector<std::vector<int32_t>> extra(static_cast<size_t>(nqb));
    if (c.aware) {
      std::vector<float> share(size_t(nqb * nkb), 0.f);  // zero past the visible blocks
      double rows_with_keys = 0;
      for (int64_t qb = 0; qb < nqb; ++qb) {
        const int64_t nvis = geo.visible_k_blocks(qb);
        for (int64_t kb = 0; kb < nvis; ++kb)
          share[size_t(qb * nkb + kb)] = attn[size_t((h * nqb + qb) * nkb + kb)];
        rows_with_keys += nvis > 0 ? 1 : 0;
      }
      std::vector<int32_t> order(share.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(),
                       [&](int32_t x, int32_t y) { return share[size_t(x)] > share[size_t(y)]; });
      const double required = s.gamma * rows_with_keys;
      double cum = 0;
      for (int32_t id : order) {
        if (cum >= required || share[size_t(id)] <= 0) break;
        extra[size_t(id / nkb)].push_back(int32_t(id % nkb));
        cum += share[size_t(id)];
        ++cut.kept;
      }
      for (float x : share) cut.positive += x > 0 ? 1 : 0;
    }
    for (int64_t qb = 0; qb < nqb; ++qb) {
      std::vector<int32_t> b = extra[size_t(qb)];
      b.insert(b.end(), vsel.begin(), vsel.end());
      const int64_t diag = std::clamp<int64_t>(geo.pos(geo.q_end(qb) - 1), 0, Lk - 1) / bk;
      for (int32_t x : ssel)
        if (diag - x >= 0) b.push_back(int32_t(diag - x));
      for (int32_t f : geo.forced_blocks(qb)) b.push_back(f);
      const int64_t nvis = geo.visible_k_blocks(qb);
      std::erase_if(b, [&](int32_t x) { return x < 0 || x >= nvis; });
      std::sort(b.begin(), b.end());
      b.erase(std::unique(b.begin(), b.end()), b.end());
      out[size_t(h * nqb + qb)] = std::move(b);
    }
  }
  return out;
}

void check_flex_rules(const FlexCase& c, uint64_t seed) {
  attention::AttentionShape shape;
  shape.num_heads_q = c.heads;
  shape.num_heads_kv = c.heads / c.group;
  shape.seq_len_q = c.seq_q;
  shape.seq_len_k = c.seq_k;
  shape.head_dim = 64;
  const attention::estimation::BlockGeometry geo(shape, c.block_q, c.block_k, c.causal);
  est::Geometry g;
  g.seq_q = c.seq_q;
  g.seq_k = c.seq_k;
  g.q_offset = int(shape.q_offset());
  g.block_q = c.block_q;
  g.block_k = c.block_k;
  g.nqb = int(geo.num_q_blocks);
  g.nkb = int(geo.num_k_blocks);
  g.causal = c.causal;
  const int D = int(shape.head_dim), H = c.heads, nqb = g.nqb, nkb = g.nkb;
  SCOPED_TRACE("flex_select L " + std::to_string(c.seq_q) + "/" + std::to_string(c.seq_k) +
               " nkb " + std::to_string(nkb) + " aware " + std::to_string(c.aware) + " seed " +
               std::to_string(seed));
  est::FlexSettings s;
  s.gamma = c.gamma;
  s.tau = c.aware ? 2.0 : 0.0;
  s.min_blocks = c.min_blocks;
  s.max_blocks = c.max_blocks > 0 ? c.max_blocks : nkb;
  s.probe_rows = 128;
  Rng rng(seed);
  // probe sums: rows * k * 2^-20, a few large k among small ones (moderate budgets)
  const auto probe = [&] {
    std::vector<double> x(size_t(H) * size_t(c.seq_k));
    for (double& v : x) {
      const int k =
          rng.uniform() < 0.05 ? 32 + int(rng.uniform() * 32) % 32 : int(rng.uniform() * 4) % 4;
      v = double(s.probe_rows) * std::ldexp(double(k), -20);
    }
    return x;
  };
  const std::vector<double> vertical = probe(), slash = probe();
  // pooled shares: row qb's visible entries k * 2^-e, e such that a row sums to 1-2 on average
  // (the total ~1.5 x rows, so the cut at gamma x rows falls inside the sorted entries)
  std::vector<float> attn(size_t(H) * nqb * nkb, 1e30f);
  for (int h = 0; h < H; ++h)
    for (int qb = 0; qb < nqb; ++qb) {
      const int64_t nvis = geo.visible_k_blocks(qb);
      const int e = int(std::floor(std::log2(double(nvis) * (c.ties - 1)))) - 1;
      for (int64_t kb = 0; kb < nvis; ++kb)
        attn[(size_t(h) * nqb + size_t(qb)) * nkb + size_t(kb)] =
            std::ldexp(float(int(rng.uniform() * c.ties) % c.ties), -e);
    }
  std::vector<float> qmean(size_t(H) * D), kpool(size_t(H / c.group) * nkb * D);
  for (float& v : qmean) v = float(0.1 * rng.normal());
  for (float& v : kpool) v = float(0.1 * rng.normal());
  const auto d_vertical = on_device(vertical), d_slash = on_device(slash);
  const auto d_attn = on_device(attn), d_qmean = on_device(qmean), d_kpool = on_device(kpool);
  const auto d_scratch = on_device(std::vector<unsigned char>(est::flex_select_bytes(g, H)));
  const auto d_counts = on_device(std::vector<int>(size_t(H) * nqb));
  const auto d_lists = on_device(std::vector<int>(size_t(H) * nqb * nkb));
  const auto d_aware = on_device(std::vector<int>(size_t(H)));
  ASSERT_EQ(est::flex_select(g, H, c.group, D, 0.125f, s, d_vertical.get(), d_slash.get(),
                             d_qmean.get(), d_kpool.get(), d_attn.get(), d_scratch.get(),
                             d_counts.get(), d_lists.get(), d_aware.get(), nullptr),
            cudaSuccess);
  std::vector<int> counts(size_t(H) * nqb), lists(size_t(H) * nqb * nkb),
      aware(static_cast<size_t>(H));
  SIEVE_CUDA_CHECK(cudaMemcpy(counts.data(), d_counts.get(), counts.size() * sizeof(int),
                              cudaMemcpyDeviceToHost));
  SIEVE_CUDA_CHECK(
      cudaMemcpy(lists.data(), d_lists.get(), lists.size() * sizeof(int), cudaMemcpyDeviceToHost));
  SIEVE_CUDA_CHECK(
      cudaMemcpy(aware.data(), d_aware.get(), aware.size() * sizeof(int), cudaMemcpyDeviceToHost));
  for (int h = 0; h < H; ++h) EXPECT_EQ(aware[size_t(h)], c.aware ? 1 : 0) << "head " << h;
  PooledCut cut;
  const auto want = flex_rows_on_cpu(geo, c, s, vertical, slash, attn, cut);
  if (c.aware) {  // the data put the pooled cut inside the sorted entries
    EXPECT_GT(cut.kept, 0);
    EXPECT_LT(cut.kept, cut.positive);
  }
  int64_t differing = 0, kept = 0;
  for (size_t r = 0; r < want.size(); ++r) {
    const std::vector<int32_t> got(lists.begin() + int64_t(r) * nkb,
                                   lists.begin() + int64_t(r) * nkb + counts[r]);
    kept += int64_t(want[r].size());
    if (got != want[r] && ++differing <= 3)
      ADD_FAILURE() << "row " << r << ": gpu keeps " << got.size() << " blocks, cpu "
                    << want[r].size();
  }
  EXPECT_EQ(differing, 0);
  std::printf(
      "[flex rules] L %d/%d nkb %d aware %d: %zu rows, %.3f blocks per row, pooled cut %ld of %ld "
      "positive, %ld differ\n",
      c.seq_q, c.seq_k, nkb, int(c.aware), want.size(), double(kept) / double(want.size()),
      long(cut.kept), long(cut.positive), long(differing));
}

TEST_F(GpuPeerSelectors, FlexSelectRulesExactWithTies) {
  const uint64_t seed = fresh_seed();
  const FlexCase cases[] = {
      {2048, 2048, 128, 128, true, 4, 2, false, 0.9, 1, 0, 4},
      {2048, 2048, 128, 128, true, 4, 2, true, 0.7, 2, 0, 4},
      {700, 1500, 128, 64, true, 3, 3, true, 0.5, 3, 10, 64},
      {1111, 1111, 128, 128, false, 2, 1, true, 0.6, 1, 0, 2},
      // 1094 key blocks: token walks in two tiles, the pooled walk in eleven
      {70000, 70000, 64, 64, true, 2, 1, true, 0.7, 1, 0, 16},
      {70000, 70000, 64, 64, true, 2, 1, false, 0.95, 1, 0, 16},
  };
  for (size_t i = 0; i < std::size(cases); ++i) check_flex_rules(cases[i], seed + i);
}

// On Hopper the score kernels of sample / vslash / flexprefill (row_mass) and xattn run on wgmma;
// SIEVE_GPU_SELECT_MMA=1 selects their mma.sync kernels (those every other GPU runs), checked here
// on one case each so that both paths stay tested on an H200.
TEST_F(GpuPeerSelectors, MmaSyncKernelsMatchCpu) {
  const ScopedEnv env("SIEVE_GPU_SELECT_MMA", "1");
  const uint64_t seed = fresh_seed();
  const std::string s = " mma.sync seed " + std::to_string(seed);
  AttentionOptions causal;
  check_peer("sample", {"dense_below=0", "alpha=0.9", "chunk=8", "sample_ratio=0.1"},
             planted_inputs(DType::kF16, 4, 2, 1531, 64, seed), causal, "planted f16 d64" + s);
  check_peer("xattn", {"dense_below=0"}, planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed + 1),
             causal, "planted" + s, Rows::kThreshold);
  check_peer("vslash", {"dense_below=0", "vertical_size=100", "slash_size=200"},
             planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed + 2), causal, "planted" + s,
             Rows::kLines);
}

// The Hopper row kernel (row_softmax.cuh) runs its lean epilogue (kLean) by default and the
// earlier one under SIEVE_ROWS_EPI=default: the same f32 / f64 operations per value in the same
// order, in fewer instructions. So the patterns of sample, vslash and flexprefill must be equal,
// not merely close.
// Off Hopper the variable is ignored and both selections run the same kernel.
std::vector<SwitchCase> row_kernel_cases(uint64_t seed) {
  return {
      {{"dense_below=0"}, planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed), true, "planted",
       "sample"},
      {{"dense_below=0", "alpha=0.9", "chunk=8", "sample_ratio=0.1"},
       planted_inputs(DType::kF16, 4, 2, 1531, 64, seed + 1), true, "planted f16 d64", "sample"},
      // group 4, chunked prefill, two row tiles (sample_ratio 0.3 of 700 rows)
      {{"dense_below=0", "dense_share=1", "window_ratio=0.02", "sample_ratio=0.3"},
       random_inputs(DType::kF16, 4, 1, 700, 1500, 128, seed + 2), true, "chunked group 4",
       "sample"},
      {{"dense_below=0", "window_ratio=0", "alpha=0.95"},
       planted_inputs(DType::kBF16, 4, 2, 1300, 64, seed + 3), false, "non-causal", "sample"},
      {{"dense_below=0", "vertical_size=100", "slash_size=200"},
       planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed + 4), true, "planted", "vslash"},
      {{"dense_below=0", "last_q=200", "vertical_size=40,50,60,70", "slash_size=60,80,100,300",
        "block_q=128", "block_k=64"},
       random_inputs(DType::kBF16, 4, 1, 700, 1500, 128, seed + 5), true, "chunked per-head",
       "vslash"},
      {{"dense_below=0", "min_budget=256"}, planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed + 6),
       true, "planted", "flexprefill"},
      {{"dense_below=0", "tau=1", "block_k=64", "min_budget=128"},
       random_inputs(DType::kF16, 4, 1, 700, 1500, 64, seed + 7), true, "chunked group 4 d64",
       "flexprefill"},
  };
}
TEST_F(GpuPeerSelectors, FastRowEpilogueEqualsDefault) {
  const uint64_t seed = fresh_seed();
  expect_switch_patterns_equal(nullptr, row_kernel_cases(seed), seed, "SIEVE_ROWS_EPI", "default",
                               "fast", "fast rows");
}

// On Hopper the statistics sweep and the probes' mass sweep hold 64 listed rows a CTA (sample.cu
// cta_rows); SIEVE_ROWS_CTA=128 runs them at 128. Other CTAs, other key splits: the row statistics
// combine different partial sums, so a row's max is the same and its 1 / sum may move by f32
// rounding; the patterns then differ only where a mass lands within that rounding of a threshold
// or of another column's mass (never with these continuous masses): they must be identical.
TEST_F(GpuPeerSelectors, RowKernel64RowsEquals128) {
  const uint64_t seed = fresh_seed();
  expect_switch_patterns_equal(nullptr, row_kernel_cases(seed), seed, "SIEVE_ROWS_CTA", "128",
                               "64", "64 / 128 rows");
}

// The same at the level of row_mass's sums. With at most 128 listed rows every (head, key) column
// gets at most two f64 atomics (one per CTA row tile covering the key tile: one of 128 rows, or
// two of 64 for the probes on Hopper; two adds to 0 commute), so the column masses are
// deterministic and must be bit-identical between the two epilogues; so are sample's
// counted rows. The covered mass (one atomic per key split) and the probe's diagonal sums (one per
// key tile crossing the diagonal) are added in a run-dependent order: equal to 1e-12 relative,
// while one f32 rounding apart anywhere in a row (its max, sum or a probability) moves them by
// ~1e-8 or more.
TEST_F(GpuPeerSelectors, FastRowEpilogueExactColumnMasses) {
  const uint64_t seed = fresh_seed();
  struct Case {
    Inputs in;
    int seq_q, seq_k, q_offset, D, block_k;
    bool bf16, causal, probe;
    std::vector<int> rows;
    int band;
    const char* what;
  };
  const auto spread = [](int n, int step, int first) {
    std::vector<int> r(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) r[size_t(i)] = first + i * step;
    return r;
  };
  const auto last = [](int n, int seq_q) {
    std::vector<int> r(static_cast<size_t>(n));
    std::iota(r.begin(), r.end(), seq_q - n);
    return r;
  };
  const std::vector<Case> cases = {
      {planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed), 2048, 2048, 0, 128, 128, true, true,
       false, spread(120, 17, 3), 100, "sample planted bf16 d128"},
      {random_inputs(DType::kF16, 4, 1, 700, 1500, 128, seed + 1), 700, 1500, 800, 128, 64, false,
       true, false, spread(128, 5, 60), 30, "sample chunked group 4 f16 d128"},
      {planted_inputs(DType::kF16, 4, 2, 1300, 64, seed + 2), 1300, 1300, 0, 64, 128, false, false,
       false, spread(100, 13, 0), 0, "sample non-causal f16 d64"},
      {planted_inputs(DType::kBF16, 4, 2, 2048, 128, seed + 3), 2048, 2048, 0, 128, 128, true,
       true, true, last(100, 2048), 0, "probe planted bf16 d128"},
      {random_inputs(DType::kBF16, 4, 2, 1537, 1537, 64, seed + 4), 1537, 1537, 0, 64, 64, true,
       true, true, last(64, 1537), 0, "probe random bf16 d64"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.what) + " seed " + std::to_string(seed));
    const int H = int(c.in.q.size(0)), Hkv = int(c.in.k.size(0));
    const cu::DeviceTensor dq = cu::DeviceTensor::from_host(c.in.q);
    const cu::DeviceTensor dk = cu::DeviceTensor::from_host(c.in.k);
    est::HeadInputs hin;
    hin.q = dq.view().data;
    hin.k = dk.view().data;
    hin.bf16 = c.bf16;
    hin.q_head_stride = int64_t(c.seq_q) * c.D;
    hin.q_row_stride = c.D;
    hin.k_head_stride = int64_t(c.seq_k) * c.D;
    hin.k_row_stride = c.D;
    hin.D = c.D;
    hin.heads_q = H;
    hin.group = H / Hkv;
    hin.scale = 1.f / std::sqrt(float(c.D));
    ASSERT_TRUE(est::rows_fit(hin));
    est::Geometry geo;
    geo.seq_q = c.seq_q;
    geo.seq_k = c.seq_k;
    geo.q_offset = c.q_offset;
    geo.block_q = 128;
    geo.block_k = c.block_k;
    geo.nqb = (c.seq_q + 127) / 128;
    geo.nkb = (c.seq_k + c.block_k - 1) / c.block_k;
    geo.causal = c.causal;
    const int n = int(c.rows.size());
    const size_t cols = size_t(H) * size_t(c.seq_k);
    const auto d_rows = on_device(c.rows);
    const auto d_col = on_device(std::vector<double>(cols));
    const auto d_slash = on_device(std::vector<double>(cols));
    const auto d_cov = on_device(std::vector<double>(size_t(H)));
    const auto d_cnt = on_device(std::vector<double>(size_t(H)));
    const auto d_scratch =
        on_device(std::vector<unsigned char>(est::row_mass_bytes(H, n, c.seq_k)));
    est::RowProblem pb;
    pb.rows = d_rows.get();
    pb.n_rows = n;
    pb.band = c.band;
    pb.col = d_col.get();
    pb.slash = c.probe ? d_slash.get() : nullptr;
    pb.covered = c.probe ? nullptr : d_cov.get();
    pb.counted = c.probe ? nullptr : d_cnt.get();
    struct Sums {
      std::vector<double> col, slash, covered, counted;
    };
    const auto download = [](const double* p, size_t count) {
      std::vector<double> v(count);
      SIEVE_CUDA_CHECK(cudaMemcpy(v.data(), p, count * sizeof(double), cudaMemcpyDeviceToHost));
      return v;
    };
    const auto run = [&](const char* epi, bool skip_covered = false) {
      const ScopedEnv env("SIEVE_ROWS_EPI", epi);
      pb.skip_covered = skip_covered;
      EXPECT_EQ(est::row_mass(hin, geo, pb, c.probe, d_scratch.get(), nullptr), cudaSuccess);
      EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      Sums s;
      s.col = download(d_col.get(), cols);
      if (c.probe) {
        s.slash = download(d_slash.get(), cols);
      } else {
        s.covered = download(d_cov.get(), size_t(H));
        s.counted = download(d_cnt.get(), size_t(H));
      }
      return s;
    };
    const Sums base = run("default");
    const Sums fast = run("fast");
    // the sums are not trivially empty: each row's probabilities add up to 1
    const double total = std::accumulate(base.col.begin(), base.col.end(), 0.0) +
                         std::accumulate(base.covered.begin(), base.covered.end(), 0.0);
    EXPECT_NEAR(total, double(H) * n, 1e-3 * double(H) * n);
    int64_t col_bits_differ = 0;
    for (size_t j = 0; j < cols; ++j)
      if (std::memcmp(&base.col[j], &fast.col[j], sizeof(double)) != 0 && ++col_bits_differ <= 3)
        ADD_FAILURE() << "column " << j << ": default " << base.col[j] << " fast " << fast.col[j];
    EXPECT_EQ(col_bits_differ, 0);
    EXPECT_EQ(fast.counted, base.counted);
    const auto near = [](const std::vector<double>& a, const std::vector<double>& b,
                         const char* what) {
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i)
        ASSERT_LE(std::abs(a[i] - b[i]), 1e-12 * std::abs(a[i]) + 1e-300)
            << what << " " << i << ": default " << a[i] << " fast " << b[i];
    };
    near(base.covered, fast.covered, "covered head");
    near(base.slash, fast.slash, "diagonal offset");
    if (!c.probe) {
      // sample's mass sweep without the covered tiles (pb.skip_covered, the default): the same
      // column masses bit for bit (the tiles it skips hold none), in both epilogues; the covered
      // mass by difference within f32 rounding of the summed one (1e-5 per counted row: a row's
      // probabilities add up to 1 within ~1e-6)
      for (const char* epi : {"default", "fast"}) {
        SCOPED_TRACE(std::string("skip covered, epilogue ") + epi);
        const Sums skip = run(epi, true);
        EXPECT_EQ(std::memcmp(skip.col.data(), base.col.data(), cols * sizeof(double)), 0)
            << "column masses differ";
        EXPECT_EQ(skip.counted, base.counted);
        for (int h = 0; h < H; ++h)
          EXPECT_NEAR(skip.covered[size_t(h)], base.covered[size_t(h)],
                      1e-5 * base.counted[size_t(h)])
              << "head " << h;
      }
    }
    std::printf("[fast rows, sums] %s: %d rows, total mass %.6f, %s\n", c.what, n, total,
                est::use_wgmma() ? "wgmma" : "mma.sync (variable ignored)");
  }
}

// ---- sample's stage 2 on given masses, exactly ----------------------------------------------
// est::sample_stage2 on column masses k * 2^-10 (small integers k: every f64 sum is exact in any
// order, and many masses are equal) against the cumulative rule written here (sample_attention.cpp
// stage 2: positives by descending mass, ties by ascending key, kept while covered + kept <
// required; dense past dense_share). Heads: the cut inside a run of 300 equal masses spread over
// the 4 chunks of a pass (151 kept; and 150 with the requirement exactly at a tie's end), the
// structure covering the requirement, every positive needed (zeros and negatives never kept), a
// dense fallback, random masses of 64 values, one large column. Both stage-2 paths must give the
// reference; with NaN masses (never kept, as the CPU's `col > 0`) only the default path, which
// treats them so (the sort path orders them first).
struct Stage2Reference {
  std::vector<int32_t> column_indptr, columns;
  std::vector<bool> dense;
  std::vector<int64_t> kept;
};
Stage2Reference stage2_on_cpu(int H, int seq_k, int block_k, const std::vector<double>& col,
                              const std::vector<double>& covered,
                              const std::vector<double>& required, int band, double dense_share) {
  Stage2Reference r;
  r.column_indptr.push_back(0);
  for (int h = 0; h < H; ++h) {
    const double* m = col.data() + size_t(h) * size_t(seq_k);
    std::vector<int32_t> order;
    for (int32_t j = 0; j < seq_k; ++j)
      if (m[j] > 0) order.push_back(j);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return m[a] > m[b]; });
    double cum = covered[size_t(h)];
    std::vector<int32_t> keep;
    for (int32_t j : order) {
      if (!(cum < required[size_t(h)])) break;
      keep.push_back(j);
      cum += m[j];
    }
    const bool dense = (double(keep.size()) + double(band)) / double(seq_k) > dense_share;
    r.dense.push_back(dense);
    r.kept.push_back(int64_t(keep.size()));
    std::sort(keep.begin(), keep.end());
    if (!dense)
      for (int32_t j : keep)
        if (j >= block_k) r.columns.push_back(j);
    r.column_indptr.push_back(int32_t(r.columns.size()));
  }
  return r;
}

TEST_F(GpuPeerSelectors, SampleStage2RuleOnTies) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  constexpr int H = 6, L = 8192, kBlock = 64, kBand = 64;
  constexpr double kUnit = 0x1.0p-10, kDenseShare = 0.5;
  Rng rng(seed);
  const auto small = [&](int n) { return int(rng.uniform() * n) % n; };
  std::vector<double> col(size_t(H) * L), covered(H, 0.25), target(H);
  const auto at = [&](int h, int j) -> double& { return col[size_t(h) * L + size_t(j)]; };
  // heads 0 and 4: masses 0..3 units, 300 columns of 8 units at random places
  for (int h : {0, 4}) {
    for (int j = 0; j < L; ++j) at(h, j) = small(4) * kUnit;
    for (int placed = 0; placed < 300;) {
      const int j = small(L);
      if (at(h, j) != 8 * kUnit) {
        at(h, j) = 8 * kUnit;
        ++placed;
      }
    }
  }
  target[0] = 0.25 + 150.5 * 8 * kUnit;  // ties j < 150.5 kept: 151
  target[4] = 0.25 + 150 * 8 * kUnit;    // exactly at the end of tie 150: 150
  // head 1: the structure covers the requirement
  for (int j = 0; j < L; ++j) at(1, j) = small(16) * kUnit;
  covered[1] = 1.0;
  target[1] = 0.75;
  // head 2: 100 positive columns among zeros and negatives, all needed
  for (int j = 0; j < L; ++j) at(2, j) = small(3) == 0 ? -double(small(5)) * kUnit : 0.0;
  for (int n = 0; n < 100; ++n) at(2, small(L)) = (1 + small(8)) * kUnit;
  target[2] = 100.0;
  // head 3: uniform masses, 60 % of them needed: dense
  for (int j = 0; j < L; ++j) at(3, j) = kUnit;
  target[3] = 0.25 + 0.6 * L * kUnit;
  // head 5: 64 values, a third of the mass; one large column first
  double total5 = 0;
  for (int j = 0; j < L; ++j) total5 += (at(5, j) = small(64) * kUnit);
  at(5, 4321) = 1.0;
  target[5] = 0.25 + std::ldexp(std::floor(std::ldexp(total5 / 3, 10)), -10);
  // required = alpha * counted exactly: alpha 0.5, counted 2 x target
  std::vector<double> counted(H), required(H);
  for (int h = 0; h < H; ++h) {
    counted[size_t(h)] = 2 * target[size_t(h)];
    required[size_t(h)] = 0.5 * counted[size_t(h)];
  }
  est::Geometry g;
  g.seq_q = 128;
  g.seq_k = L;
  g.q_offset = 0;
  g.block_q = kBlock;
  g.block_k = kBlock;
  g.nqb = 2;
  g.nkb = L / kBlock;
  g.causal = false;
  const auto run = [&](const std::vector<double>& masses, const char* mode,
                       const Stage2Reference& want) {
    SCOPED_TRACE(mode);
    const est::Stage2Way way =
        std::string(mode) == "sort" ? est::Stage2Way::kSort : est::Stage2Way::kSelect;
    const auto d_col = on_device(masses), d_cov = on_device(covered), d_cnt = on_device(counted);
    const auto d_scratch =
        on_device(std::vector<unsigned char>(est::sample_stage2_bytes(H, L, way), 0xab));
    const int rows = H * g.nqb;
    const auto d_block_indptr = on_device(std::vector<int>(size_t(rows) + 1, -7));
    const auto d_blocks = on_device(std::vector<int>(size_t(rows) * g.nkb, -7));
    const auto d_indptr = on_device(std::vector<int>(H + 1));
    const auto d_columns = on_device(std::vector<int>(size_t(H) * L));
    ASSERT_EQ(est::sample_stage2(g, H, d_col.get(), d_cov.get(), d_cnt.get(), 0.5, kBand,
                                 kDenseShare, way, d_scratch.get(), d_block_indptr.get(),
                                 d_blocks.get(), d_indptr.get(), d_columns.get(), nullptr),
              cudaSuccess);
    std::vector<int> indptr(H + 1), block_indptr(size_t(rows) + 1);
    SIEVE_CUDA_CHECK(cudaMemcpy(indptr.data(), d_indptr.get(), indptr.size() * sizeof(int),
                                cudaMemcpyDeviceToHost));
    SIEVE_CUDA_CHECK(cudaMemcpy(block_indptr.data(), d_block_indptr.get(),
                                block_indptr.size() * sizeof(int), cudaMemcpyDeviceToHost));
    std::vector<int> blocks(size_t(std::max(block_indptr[size_t(rows)], 0)));
    SIEVE_CUDA_CHECK(cudaMemcpy(blocks.data(), d_blocks.get(), blocks.size() * sizeof(int),
                                cudaMemcpyDeviceToHost));
    std::vector<int> columns(static_cast<size_t>(indptr[H]));
    SIEVE_CUDA_CHECK(cudaMemcpy(columns.data(), d_columns.get(), columns.size() * sizeof(int),
                                cudaMemcpyDeviceToHost));
    EXPECT_EQ(std::vector<int32_t>(indptr.begin(), indptr.end()), want.column_indptr);
    EXPECT_EQ(std::vector<int32_t>(columns.begin(), columns.end()), want.columns);
    // the block CSR: non-causal, so a dense row lists every key block; any other row the sink
    // block and its diagonal block (64-row query blocks on 64-key blocks: {0} and {0, 1})
    ASSERT_EQ(block_indptr[0], 0);
    for (int h = 0; h < H; ++h)
      for (int qb = 0; qb < g.nqb; ++qb) {
        const size_t r = size_t(h) * g.nqb + size_t(qb);
        std::vector<int> want_row;
        if (want.dense[size_t(h)])
          for (int kb = 0; kb < g.nkb; ++kb) want_row.push_back(kb);
        else
          want_row = qb == 0 ? std::vector<int>{0} : std::vector<int>{0, qb};
        ASSERT_LE(block_indptr[r], block_indptr[r + 1]) << "head " << h << " query block " << qb;
        EXPECT_EQ(std::vector<int>(blocks.begin() + block_indptr[r],
                                   blocks.begin() + block_indptr[r + 1]),
                  want_row)
            << "head " << h << " query block " << qb;
      }
  };
  const Stage2Reference want =
      stage2_on_cpu(H, L, kBlock, col, covered, required, kBand, kDenseShare);
  // the cases the data are meant to build
  EXPECT_EQ(want.kept[0], 151);  // 151 of the 300 equal masses
  EXPECT_EQ(want.kept[4], 150);
  EXPECT_EQ(want.kept[1], 0);
  EXPECT_TRUE(want.dense[3]);
  EXPECT_GT(want.kept[5], 1);
  for (const char* mode : {"select", "sort"}) run(col, mode, want);
  // NaN masses (some of the 0-unit columns of head 0, and of head 5) are never kept
  std::vector<double> with_nan = col;
  for (int h : {0, 5})
    for (int j = 0; j < L; j += 97)
      if (with_nan[size_t(h) * L + size_t(j)] == 0) with_nan[size_t(h) * L + size_t(j)] = NAN;
  run(with_nan, "select",
      stage2_on_cpu(H, L, kBlock, with_nan, covered, required, kBand, kDenseShare));
  std::printf("[stage 2 rule] kept per head:");
  for (int64_t k : want.kept) std::printf(" %ld", long(k));
  std::printf("\n");
}

TEST_F(GpuPeerSelectors, UnportedSettingsStayOnTheCpu) {
  auto shared = attention::make_selector("sample", {"share_kv_head=true"});
  EXPECT_FALSE(cu::has_device_selector(*shared));
  const cu::DeviceTensor q(DType::kBF16, {2, 256, 64});
  EXPECT_THROW(cu::select_on_device(*shared, q, q, AttentionOptions{}), Error);
  EXPECT_TRUE(cu::has_device_selector(*attention::make_selector("sample")));
  EXPECT_TRUE(cu::has_device_selector(*attention::make_selector("xattn")));
  EXPECT_TRUE(cu::has_device_selector(*attention::make_selector("vslash")));
  EXPECT_TRUE(cu::has_device_selector(*attention::make_selector("flexprefill")));
  EXPECT_FALSE(
      cu::has_device_selector(*attention::make_selector("flexprefill", {"share_kv_head=true"})));
  // stride 1: 128 entries per key block, more than the kernel's 64-entry tile
  EXPECT_FALSE(cu::has_device_selector(*attention::make_selector("xattn", {"stride=1"})));
}

}  // namespace
}  // namespace sieve::test
