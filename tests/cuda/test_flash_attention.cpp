// CUDA executor (flash_kernel.cuh) against the f64 reference: dense causal / non-causal, GQA,
// chunked prefill, strided views, random block-sparse patterns with columns and band, every head
// dim and dtype, odd lengths; outputs poisoned before each run. Skipped without a GPU.
#include "cuda_test_util.h"

#include "sieve/attention/cuda/check.h"
#include "sieve/core/error.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace sieve::test {
namespace {

namespace cu = attention::cuda;
using attention::AttentionOptions;
using attention::SparsePattern;

const char* name(DType t) { return dtype_name(t); }

// Every test runs three times: on the mma.sync kernel, on the wgmma kernel (compute capability
// 9.0 wherever the pattern's block_k fits it, mma.sync elsewhere), and on "auto" (on 9.0: the
// warp-specialised fa3 kernel for head dim 128 and patterns of 128-key multiples, its instance
// that gathers token columns included; wgmma for the rest).
bool device_is_sm90() {
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  return major == 9 && minor == 0;
}

std::string g_family = "auto";  // the running test's kernel family

// A pattern whose block_k the forced wgmma family cannot tile (64-key blocks at head dim 64) runs
// on mma.sync for the duration of one case, as "auto" would.
struct FamilyFor {
  FamilyFor(DType dt, int64_t d, int64_t block_k) {
    if (g_family != "wgmma") return;
    try {
      (void)cu::kernel_info(dt, d, block_k);
    } catch (const Error&) {
      cu::set_kernel_preference("mma");
    }
  }
  ~FamilyFor() { cu::set_kernel_preference(g_family); }
};

class CudaFlash : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (cu::device_count() == 0) GTEST_SKIP() << "no CUDA device";
    g_family = GetParam();
    if (g_family == "wgmma" && !device_is_sm90())
      GTEST_SKIP() << "wgmma needs compute capability 9.0";
    cu::set_kernel_preference(g_family);
  }
  void TearDown() override {
    if (cu::device_count() > 0) cu::set_kernel_preference("auto");
  }
};
INSTANTIATE_TEST_SUITE_P(Kernels, CudaFlash, ::testing::Values("mma", "wgmma", "auto"),
                         [](const ::testing::TestParamInfo<const char*>& i) {
                           return std::string(i.param);
                         });

// Random pattern: every causally visible block kept with probability keep; `ncols` random columns
// per head (they may fall into kept blocks or the band: the executor must not count them twice).
SparsePattern random_pattern(int heads, int64_t lq, int64_t lk, int bq, int bk, bool causal,
                             bool per_kv, double keep, int64_t band, int ncols, Rng& rng) {
  SparsePattern p = SparsePattern::dense(heads, lq, lk, bq, bk, causal, per_kv);
  std::vector<int32_t> indptr{0}, indices;
  for (int64_t r = 0; r + 1 < int64_t(p.block_indptr.size()); ++r) {
    for (int32_t t = p.block_indptr[r]; t < p.block_indptr[r + 1]; ++t)
      if (rng.uniform() < keep) indices.push_back(p.block_indices[t]);
    indptr.push_back(int32_t(indices.size()));
  }
  p.block_indptr = indptr;
  p.block_indices = indices;
  p.band = band;
  if (ncols > 0) {
    p.column_indptr = {0};
    for (int h = 0; h < heads; ++h) {
      std::vector<int32_t> c;
      for (int i = 0; i < ncols; ++i) c.push_back(int32_t(rng.below(uint64_t(lk))));
      std::sort(c.begin(), c.end());
      c.erase(std::unique(c.begin(), c.end()), c.end());
      p.columns.insert(p.columns.end(), c.begin(), c.end());
      p.column_indptr.push_back(int32_t(p.columns.size()));
    }
  }
  p.validate();
  return p;
}

struct Case {
  DType dtype;
  int64_t d;
  DType out;
  bool causal;
  int64_t hq, hkv, lq, lk;
};

void check_dense(const Case& c, uint64_t seed) {
  Rng rng(seed);
  const std::string what = fmt::format("dense {} d={} out={} causal={} hq={} hkv={} lq={} lk={} seed={}",
                                       name(c.dtype), c.d, name(c.out), c.causal, c.hq, c.hkv, c.lq,
                                       c.lk, seed);
  SCOPED_TRACE(what);
  const Tensor q = random_tensor(c.dtype, c.hq, c.lq, c.d, 1.6f, rng);
  const Tensor k = random_tensor(c.dtype, c.hkv, c.lk, c.d, 1.6f, rng);
  const Tensor v = random_tensor(c.dtype, c.hkv, c.lk, c.d, 1.0f, rng);
  AttentionOptions opts;
  opts.causal = c.causal;
  const GpuRun got = run_gpu(q, k, v, c.out, opts);
  expect_matches_reference(got, attention::reference_attention(q, k, v, opts), v, c.dtype, what);
}

TEST_P(CudaFlash, DenseEveryDtypeHeadDimOutputAndMask) {
  Rng pick(fresh_seed());
  for (DType dt : {DType::kBF16, DType::kF16})
    for (int64_t d : {64, 128})
      for (bool f32_out : {false, true})
        for (bool causal : {true, false}) {
          const int64_t l = 1 + int64_t(pick.below(330));  // odd, partial tiles
          check_dense({dt, d, f32_out ? DType::kF32 : dt, causal, 4, 2, l, l}, fresh_seed());
        }
}

TEST_P(CudaFlash, DenseLengthsAroundTileEdges) {
  for (int64_t l : {1, 2, 63, 64, 65, 127, 128, 129, 257})
    check_dense({DType::kBF16, 128, DType::kBF16, true, 2, 1, l, l}, fresh_seed());
}

TEST_P(CudaFlash, ChunkedPrefillSeesTheWholeCache) {
  check_dense({DType::kBF16, 128, DType::kF32, true, 4, 1, 77, 301}, fresh_seed());
  check_dense({DType::kF16, 64, DType::kF16, true, 3, 3, 130, 260}, fresh_seed());
  check_dense({DType::kBF16, 64, DType::kBF16, false, 2, 2, 5, 200}, fresh_seed());
}

TEST_P(CudaFlash, StridedTokenMajorViews) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  Rng rng(seed);
  const int64_t hq = 4, hkv = 2, l = 211, d = 128;
  // [L, H, D] storage viewed as [H, L, D] (strides H*D between rows): the Hugging Face layout.
  auto token_major = [](const Tensor& t) {
    const int64_t h = t.size(0), l = t.size(1), d = t.size(2);
    Tensor s(t.dtype(), {l, h, d});
    for (int64_t a = 0; a < h; ++a)
      for (int64_t i = 0; i < l; ++i)
        std::memcpy(s.view().ptr(i, a), t.view().ptr(a, i), size_t(d * dtype_size(t.dtype())));
    return s;
  };
  auto as_hld = [](TensorView v) {
    TensorView r = v;
    r.shape = {v.shape[1], v.shape[0], v.shape[2], 0};
    r.strides = {v.strides[1], v.strides[0], 1, 0};
    return r;
  };
  const Tensor q = random_tensor(DType::kBF16, hq, l, d, 1.6f, rng);
  const Tensor k = random_tensor(DType::kBF16, hkv, l, d, 1.6f, rng);
  const Tensor v = random_tensor(DType::kBF16, hkv, l, d, 1.0f, rng);
  const cu::DeviceTensor dq = cu::DeviceTensor::from_host(token_major(q));
  const cu::DeviceTensor dk = cu::DeviceTensor::from_host(token_major(k));
  const cu::DeviceTensor dv = cu::DeviceTensor::from_host(token_major(v));
  cu::DeviceTensor dout(DType::kBF16, {l, hq, d});
  cu::DeviceTensor dlse(DType::kF32, {hq, l});
  dout.fill_bytes(0xff);
  dlse.fill_bytes(0xff);
  const TensorView lse_view = dlse.view();
  AttentionOptions opts;
  cu::dense_attention(as_hld(dq.view()), as_hld(dk.view()), as_hld(dv.view()), as_hld(dout.view()),
                      opts, &lse_view);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const Tensor out_tm = dout.to_host();
  GpuRun got{Tensor(DType::kBF16, {hq, l, d}), dlse.to_host()};
  for (int64_t a = 0; a < hq; ++a)
    for (int64_t i = 0; i < l; ++i)
      std::memcpy(got.out.view().ptr(a, i), out_tm.view().ptr(i, a), size_t(d * 2));
  expect_matches_reference(got, attention::reference_attention(q, k, v, opts), v, DType::kBF16,
                           "strided");
}

// The output as a view into a larger buffer ([H][L + pad][D]; rows L.. of each head lie outside
// the view): those rows stay untouched, which fa3's 64-row TMA stores must honour (clipped at the
// view's length, not at the 128-row tile), and the view's rows match the reference. The lengths
// end inside the first and inside the second 64 rows of a query tile; dense and block-sparse.
TEST_P(CudaFlash, OutputViewPaddingStaysUntouched) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  Rng rng(seed);
  const int64_t hq = 4, hkv = 2, d = 128, pad = 100;
  for (int64_t l : {40, 200})
    for (bool sparse : {false, true}) {
      const std::string what = fmt::format("l={} sparse={}", l, sparse);
      SCOPED_TRACE(what);
      const Tensor q = random_tensor(DType::kBF16, hq, l, d, 1.6f, rng);
      const Tensor k = random_tensor(DType::kBF16, hkv, l, d, 1.6f, rng);
      const Tensor v = random_tensor(DType::kBF16, hkv, l, d, 1.0f, rng);
      const SparsePattern pat =
          random_pattern(int(hq), l, l, 128, 128, true, false, 0.7, 0, 0, rng);
      const cu::DeviceTensor dq = cu::DeviceTensor::from_host(q);
      const cu::DeviceTensor dk = cu::DeviceTensor::from_host(k);
      const cu::DeviceTensor dv = cu::DeviceTensor::from_host(v);
      cu::DeviceTensor dout(DType::kBF16, {hq, l + pad, d});
      cu::DeviceTensor dlse(DType::kF32, {hq, l});
      dout.fill_bytes(0xff);
      dlse.fill_bytes(0xff);
      TensorView out_view = dout.view();
      out_view.shape[1] = l;
      const TensorView lse_view = dlse.view();
      AttentionOptions opts;
      opts.causal = true;
      if (sparse) {
        const cu::DevicePattern dp = cu::DevicePattern::upload(pat);
        cu::block_sparse_attention(dq.view(), dk.view(), dv.view(), dp.view(), out_view, opts,
                                   &lse_view);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      } else {
        cu::dense_attention(dq.view(), dk.view(), dv.view(), out_view, opts, &lse_view);
        ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      }
      const Tensor all = dout.to_host();
      int64_t touched = 0;
      for (int64_t a = 0; a < hq; ++a)
        for (int64_t i = l; i < l + pad; ++i) {
          const auto* b = static_cast<const unsigned char*>(all.view().ptr(a, i));
          touched += std::count_if(b, b + d * 2, [](unsigned char x) { return x != 0xff; });
        }
      EXPECT_EQ(touched, 0) << "bytes written past the output view's rows";
      GpuRun got{Tensor(DType::kBF16, {hq, l, d}), dlse.to_host()};
      for (int64_t a = 0; a < hq; ++a)
        for (int64_t i = 0; i < l; ++i)
          std::memcpy(got.out.view().ptr(a, i), all.view().ptr(a, i), size_t(d * 2));
      const auto ref = sparse ? attention::reference_attention(
                                    q, k, v, opts, attention::mask_from_pattern(pat, hq, hkv))
                              : attention::reference_attention(q, k, v, opts);
      expect_matches_reference(got, ref, v, DType::kBF16, what);
    }
}

struct SparseCase {
  DType dtype;
  int64_t d;
  int bq, bk;
  bool per_kv, causal;
  double keep;
  int64_t band;
  int ncols;
  int64_t lq, lk;
};

void check_sparse(const SparseCase& c, uint64_t seed) {
  Rng rng(seed);
  const int64_t hq = 4, hkv = 2;
  const std::string what = fmt::format(
      "sparse {} d={} bq={} bk={} per_kv={} causal={} keep={} band={} cols={} lq={} lk={} seed={}",
      name(c.dtype), c.d, c.bq, c.bk, c.per_kv, c.causal, c.keep, c.band, c.ncols, c.lq, c.lk, seed);
  SCOPED_TRACE(what);
  const Tensor q = random_tensor(c.dtype, hq, c.lq, c.d, 1.6f, rng);
  const Tensor k = random_tensor(c.dtype, hkv, c.lk, c.d, 1.6f, rng);
  const Tensor v = random_tensor(c.dtype, hkv, c.lk, c.d, 1.0f, rng);
  const SparsePattern pat = random_pattern(int(c.per_kv ? hkv : hq), c.lq, c.lk, c.bq, c.bk, c.causal,
                                           c.per_kv, c.keep, c.band, c.ncols, rng);
  AttentionOptions opts;
  opts.causal = c.causal;
  const FamilyFor family(c.dtype, c.d, c.bk);
  const GpuRun got = run_gpu(q, k, v, c.dtype, opts, &pat);
  const auto ref = attention::reference_attention(q, k, v, opts,
                                                  attention::mask_from_pattern(pat, hq, hkv));
  expect_matches_reference(got, ref, v, c.dtype, what);
}

TEST_P(CudaFlash, SparseBlocksColumnsAndBand) {
  const SparseCase cases[] = {
      {DType::kBF16, 128, 128, 128, false, true, 0.4, 0, 0, 517, 517},
      {DType::kBF16, 128, 128, 64, true, true, 0.3, 100, 24, 600, 600},
      {DType::kF16, 128, 256, 128, false, true, 0.5, 37, 40, 700, 700},
      {DType::kBF16, 64, 128, 64, false, true, 0.3, 200, 16, 389, 389},
      {DType::kF16, 64, 128, 256, true, true, 0.6, 0, 30, 450, 450},
      {DType::kBF16, 128, 128, 128, false, true, 0.5, 64, 20, 200, 466},  // chunked prefill
      {DType::kBF16, 128, 128, 128, false, false, 0.4, 50, 10, 333, 333},  // not causal
      {DType::kBF16, 64, 128, 64, false, true, 0.0, 1, 0, 300, 300},       // band of 1: diagonal
  };
  for (const SparseCase& c : cases) check_sparse(c, fresh_seed());
}

// Wide bands and many columns: most band tiles lie inside every row's band and most column tiles
// hold only keys below every row's band, so the executor computes them without the score mask
// (tile_masked); the rest (diagonal, band edges, columns in kept blocks or past the list end) keep
// it. Causal and not, chunked prefill, GQA-shared patterns, odd lengths.
TEST_P(CudaFlash, SparseUnmaskedBandAndColumnTiles) {
  const SparseCase cases[] = {
      {DType::kBF16, 128, 128, 128, false, true, 0.0, 400, 900, 1500, 1500},
      {DType::kF16, 64, 128, 64, true, true, 0.1, 333, 800, 1301, 1301},
      {DType::kBF16, 128, 128, 128, false, false, 0.05, 256, 700, 1200, 1200},  // not causal
      {DType::kBF16, 128, 128, 128, true, true, 0.1, 300, 1000, 700, 1601},     // chunked prefill
      {DType::kF16, 128, 256, 128, false, true, 0.0, 517, 600, 1111, 1111},
  };
  for (const SparseCase& c : cases) check_sparse(c, fresh_seed());
}

// Block CSR + band without token columns at head dim 128 and 128-key blocks: the patterns the fa3
// kernel takes under "auto" on compute capability 9.0 (band tiles inside and at the edges of the
// band, empty rows, several passes over its K/V stage ring). Causal and not, chunked prefill,
// GQA-shared patterns, 256-key blocks, odd lengths.
TEST_P(CudaFlash, SparseBlocksAndBandWithoutColumns) {
  const SparseCase cases[] = {
      {DType::kBF16, 128, 128, 128, false, true, 0.3, 300, 0, 1100, 1100},
      {DType::kF16, 128, 128, 128, true, true, 0.5, 129, 0, 901, 901},
      {DType::kBF16, 128, 256, 256, false, false, 0.4, 200, 0, 777, 777},  // not causal
      {DType::kBF16, 128, 128, 128, false, true, 0.2, 64, 0, 333, 1201},   // chunked prefill
      {DType::kF16, 128, 256, 128, true, true, 0.0, 517, 0, 1111, 1111},   // band only
  };
  for (const SparseCase& c : cases) check_sparse(c, fresh_seed());
}

// Sets SIEVE_FA3_COLUMNS for one scope: "gather" runs token columns on fa3's column instance,
// unset (the default) on the grid kernel with the staged copy of the listed keys.
struct Fa3Columns {
  explicit Fa3Columns(const char* v) {
    if (v) setenv("SIEVE_FA3_COLUMNS", v, 1);  // NOLINT(concurrency-mt-unsafe)
    else unsetenv("SIEVE_FA3_COLUMNS");        // NOLINT(concurrency-mt-unsafe)
  }
  ~Fa3Columns() { unsetenv("SIEVE_FA3_COLUMNS"); }  // NOLINT(concurrency-mt-unsafe)
};

// fa3 forced (what "auto" picks on 9.0 for token columns at head dim 128), under both ways of
// reading column tiles: the column instance (the producer's thread 0 alone on the contiguous
// tiles, all 128 threads gathering the column tiles) and the grid kernel on staged columns (one
// TMA copy per column tile, plain or masked per entry). Column tiles only, columns after blocks
// and band, many column tiles per row so the K/V ring wraps with column tiles, entries inside
// kept blocks or the band (skipped), GQA-shared patterns, not causal, chunked prefill, odd
// lengths. Runs once, under auto.
TEST_P(CudaFlash, Fa3ColumnInstanceGathersTokenColumns) {
  if (g_family != "auto" || !device_is_sm90()) GTEST_SKIP() << "fa3 runs on compute capability 9.0";
  const SparseCase cases[] = {
      {DType::kBF16, 128, 128, 128, false, true, 0.0, 0, 700, 901, 901},   // columns only
      {DType::kF16, 128, 128, 128, true, true, 0.3, 200, 500, 1201, 1201},
      {DType::kBF16, 128, 256, 128, false, false, 0.2, 77, 300, 640, 640},  // not causal
      {DType::kBF16, 128, 128, 256, false, true, 0.4, 0, 900, 500, 1333},   // chunked prefill
  };
  for (const char* way : {"gather", static_cast<const char*>(nullptr)}) {
    SCOPED_TRACE(way ? way : "staged");
    const Fa3Columns columns(way);
    for (const SparseCase& c : cases) {
      cu::set_kernel_preference("fa3");  // check_sparse restores the test's family after each case
      ASSERT_EQ(cu::kernel_info(DType::kBF16, 128, c.bk, true).name, std::string("fa3"));
      check_sparse(c, fresh_seed());
    }
  }
}

// The two ways of reading token columns on fa3 (above) walk the same tiles and compute the same
// scores, masks and online softmax: outputs and LSEs must be identical bit for bit. Many columns
// with kept blocks among them (staged tiles masked next to computed blocks), list ends inside a
// tile, bands, a band of one key, GQA-shared patterns, not causal, chunked prefill, both dtypes.
TEST_P(CudaFlash, Fa3StagedColumnsEqualGatheredBitwise) {
  if (g_family != "auto" || !device_is_sm90()) GTEST_SKIP() << "fa3 runs on compute capability 9.0";
  const SparseCase cases[] = {
      {DType::kBF16, 128, 128, 128, false, true, 0.3, 0, 900, 1301, 1301},
      {DType::kF16, 128, 128, 128, true, true, 0.5, 150, 700, 1100, 1100},
      {DType::kBF16, 128, 128, 128, false, true, 0.05, 1, 1000, 1500, 1500},  // band of one key
      {DType::kBF16, 128, 256, 128, false, false, 0.3, 90, 500, 777, 777},    // not causal
      {DType::kF16, 128, 128, 256, true, true, 0.2, 300, 800, 600, 1700},     // chunked prefill
      {DType::kBF16, 128, 128, 128, false, true, 1.0, 64, 400, 900, 900},     // every block kept
  };
  for (const SparseCase& c : cases) {
    const uint64_t seed = fresh_seed();
    Rng rng(seed);
    const int64_t hq = 4, hkv = 2;
    SCOPED_TRACE(fmt::format("bq={} bk={} per_kv={} causal={} keep={} band={} cols={} lq={} lk={} "
                             "seed={}",
                             c.bq, c.bk, c.per_kv, c.causal, c.keep, c.band, c.ncols, c.lq, c.lk,
                             seed));
    const Tensor q = random_tensor(c.dtype, hq, c.lq, c.d, 1.6f, rng);
    const Tensor k = random_tensor(c.dtype, hkv, c.lk, c.d, 1.6f, rng);
    const Tensor v = random_tensor(c.dtype, hkv, c.lk, c.d, 1.0f, rng);
    const SparsePattern pat = random_pattern(int(c.per_kv ? hkv : hq), c.lq, c.lk, c.bq, c.bk,
                                             c.causal, c.per_kv, c.keep, c.band, c.ncols, rng);
    AttentionOptions opts;
    opts.causal = c.causal;
    cu::set_kernel_preference("fa3");
    const auto run_with = [&](const char* way) {
      const Fa3Columns columns(way);
      return run_gpu(q, k, v, c.dtype, opts, &pat);
    };
    const GpuRun gathered = run_with("gather"), staged = run_with(nullptr);
    cu::set_kernel_preference(g_family);
    ASSERT_EQ(staged.out.nbytes(), gathered.out.nbytes());
    EXPECT_EQ(std::memcmp(staged.out.data(), gathered.out.data(), size_t(staged.out.nbytes())), 0);
    EXPECT_EQ(std::memcmp(staged.lse.data(), gathered.lse.data(), size_t(staged.lse.nbytes())), 0);
  }
}

// Causal patterns whose band covers many of the columns: a CTA's column list stops before the
// first key that lies, for each of its rows, inside the band or after the row (make_tile_iter), so
// here most CTAs gather few or no column tiles although the pattern has columns. Wide bands, a band
// of one key, a band longer than the keys (no column tile at all), chunked prefill (the cut moves
// with the query offset), GQA-shared patterns, both dtypes; on every family, fa3's column instance
// under auto.
TEST_P(CudaFlash, ColumnsInsideTheBandAreNotGathered) {
  const SparseCase cases[] = {
      {DType::kBF16, 128, 128, 128, false, true, 0.1, 700, 600, 1000, 1000},
      {DType::kF16, 128, 128, 128, true, true, 0.2, 1, 500, 777, 777},       // band of one key
      {DType::kBF16, 128, 128, 128, false, true, 0.0, 2000, 400, 900, 900},  // band > keys
      {DType::kBF16, 128, 128, 128, true, true, 0.1, 900, 800, 300, 1400},   // chunked prefill
      {DType::kF16, 128, 128, 256, false, true, 0.3, 129, 1000, 1100, 1100},
  };
  for (const SparseCase& c : cases) check_sparse(c, fresh_seed());
}

// Dense = the executor with the full pattern: identical tile sequence, so identical bits.
TEST_P(CudaFlash, FullPatternAndFullBandEqualDenseBitwise) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  const int64_t hq = 4, hkv = 2, l = 389, d = 128;
  const auto [q, k, v] = random_inputs(DType::kBF16, hq, hkv, l, d, seed);
  AttentionOptions opts;
  const GpuRun dense = run_gpu(q, k, v, DType::kBF16, opts);
  const SparsePattern full = SparsePattern::dense(int(hq), l, l, 128, 128, true);
  const GpuRun sparse = run_gpu(q, k, v, DType::kBF16, opts, &full);
  EXPECT_EQ(std::memcmp(dense.out.data(), sparse.out.data(), size_t(dense.out.nbytes())), 0);
  EXPECT_EQ(std::memcmp(dense.lse.data(), sparse.lse.data(), size_t(dense.lse.nbytes())), 0);
  SparsePattern band = full;  // no blocks, a band wider than the sequence
  band.block_indices.clear();
  std::fill(band.block_indptr.begin(), band.block_indptr.end(), 0);
  band.band = l + 5;
  const GpuRun banded = run_gpu(q, k, v, DType::kBF16, opts, &band);
  EXPECT_EQ(std::memcmp(dense.out.data(), banded.out.data(), size_t(dense.out.nbytes())), 0);
}

// The fa3 grid kernel's CTAs own SIEVE_FA3_TPC work tiles (query heads of one query block, default
// 4): the same tile walk and arithmetic per tile whatever the count, so the outputs and LSEs are
// bitwise those of one tile per CTA. 6 query heads make the last CTA of a head group own fewer
// tiles (T = 4) or as many (T = 3); 1157 rows, bf16, a causal block pattern (density 0.3, a
// 150-token band, empty rows), and dense.
TEST_P(CudaFlash, Fa3TilesPerCtaGiveTheSameBits) {
  if (g_family != "auto" || !device_is_sm90()) GTEST_SKIP() << "fa3 runs on compute capability 9.0";
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  const int64_t hq = 6, hkv = 2, l = 1157, d = 128;
  const auto [q, k, v] = random_inputs(DType::kBF16, hq, hkv, l, d, seed);
  Rng rng(seed + 1);
  const SparsePattern pat = random_pattern(int(hq), l, l, 128, 128, true, false, 0.3, 150, 0, rng);
  AttentionOptions opts;
  struct Unset {
    ~Unset() { unsetenv("SIEVE_FA3_TPC"); }  // NOLINT(concurrency-mt-unsafe)
  } unset;
  setenv("SIEVE_FA3_TPC", "1", 1);  // NOLINT(concurrency-mt-unsafe)
  const GpuRun one_sparse = run_gpu(q, k, v, DType::kBF16, opts, &pat);
  const GpuRun one_dense = run_gpu(q, k, v, DType::kBF16, opts);
  for (const char* t : {"3", "4", "8"}) {
    setenv("SIEVE_FA3_TPC", t, 1);  // NOLINT(concurrency-mt-unsafe)
    const GpuRun sparse = run_gpu(q, k, v, DType::kBF16, opts, &pat);
    const GpuRun dense = run_gpu(q, k, v, DType::kBF16, opts);
    EXPECT_EQ(std::memcmp(one_sparse.out.data(), sparse.out.data(), size_t(sparse.out.nbytes())), 0) << t;
    EXPECT_EQ(std::memcmp(one_sparse.lse.data(), sparse.lse.data(), size_t(sparse.lse.nbytes())), 0) << t;
    EXPECT_EQ(std::memcmp(one_dense.out.data(), dense.out.data(), size_t(dense.out.nbytes())), 0) << t;
    EXPECT_EQ(std::memcmp(one_dense.lse.data(), dense.lse.data(), size_t(dense.lse.nbytes())), 0) << t;
  }
}

TEST_P(CudaFlash, RowsWithoutKeysGiveZerosAndMinusInfinity) {
  check_sparse({DType::kBF16, 128, 128, 128, false, true, 0.2, 0, 0, 640, 640}, fresh_seed());
  Rng rng(fresh_seed());
  const Tensor q = random_tensor(DType::kBF16, 2, 256, 64, 1.f, rng);
  const Tensor k = random_tensor(DType::kBF16, 2, 256, 64, 1.f, rng);
  const Tensor v = random_tensor(DType::kBF16, 2, 256, 64, 1.f, rng);
  SparsePattern empty = SparsePattern::dense(2, 256, 256, 128, 128, true);
  empty.block_indices.clear();
  std::fill(empty.block_indptr.begin(), empty.block_indptr.end(), 0);
  const GpuRun got = run_gpu(q, k, v, DType::kF32, AttentionOptions{}, &empty);
  for (int64_t i = 0; i < got.out.numel(); ++i) ASSERT_EQ(got.out.data_as<float>()[i], 0.f) << i;
  for (int64_t i = 0; i < got.lse.numel(); ++i) {
    const float x = got.lse.data_as<float>()[i];
    ASSERT_TRUE(std::isinf(x) && x < 0) << i << ": " << x;
  }
}

TEST_P(CudaFlash, PatternRoundTripsThroughDeviceMemory) {
  Rng rng(fresh_seed());
  const SparsePattern p = random_pattern(3, 500, 700, 128, 64, true, false, 0.5, 17, 9, rng);
  const SparsePattern back = cu::DevicePattern::upload(p).download();
  EXPECT_EQ(back.block_indptr, p.block_indptr);
  EXPECT_EQ(back.block_indices, p.block_indices);
  EXPECT_EQ(back.column_indptr, p.column_indptr);
  EXPECT_EQ(back.columns, p.columns);
  EXPECT_EQ(back.band, p.band);
}

TEST_P(CudaFlash, AutoPicksFa3OrWgmmaOnHopper) {
  const std::string pref = GetParam();
  const bool hopper = device_is_sm90();
  const std::string sm90 = pref == "mma" || !hopper ? "mma.sync" : "wgmma";
  const std::string fa3 = pref == "auto" && hopper ? "fa3" : sm90;
  EXPECT_EQ(cu::kernel_info(DType::kBF16, 128).name, fa3);
  EXPECT_EQ(cu::kernel_info(DType::kF16, 128, 256).name, fa3);
  // token columns run fa3's column instance; fa3 takes neither 64-key blocks nor head dim 64
  EXPECT_EQ(cu::kernel_info(DType::kBF16, 128, 128, true).name, fa3);
  EXPECT_EQ(cu::kernel_info(DType::kBF16, 128, 64).name, sm90);
  EXPECT_EQ(cu::kernel_info(DType::kBF16, 64).name, sm90);
  // head dim 64 runs wgmma with BLOCK_N 128: a pattern of 64-key blocks falls back to mma.sync
  // (forced wgmma refuses it)
  if (pref == "wgmma")
    EXPECT_THROW(cu::kernel_info(DType::kBF16, 64, 64), Error);
  else
    EXPECT_EQ(cu::kernel_info(DType::kBF16, 64, 64).name, std::string("mma.sync"));
  if (hopper) {
    cu::set_kernel_preference("fa3");
    EXPECT_EQ(cu::kernel_info(DType::kBF16, 128, 128).name, std::string("fa3"));
    EXPECT_EQ(cu::kernel_info(DType::kBF16, 128, 128, true).name, std::string("fa3"));
    EXPECT_THROW(cu::kernel_info(DType::kBF16, 128, 64, true), Error);
    EXPECT_THROW(cu::kernel_info(DType::kBF16, 64), Error);
    cu::set_kernel_preference("fa3grid");  // the same kernel under the grid schedule's name
    EXPECT_EQ(cu::kernel_info(DType::kBF16, 128, 128).name, std::string("fa3grid"));
    EXPECT_EQ(cu::kernel_info(DType::kBF16, 128, 128, true).name, std::string("fa3grid"));
  }
}

// Preference names are parsed on the host (no device needed). The persistent fa3 schedule
// ("fa3persistent[:N]") and the CTA count suffix that only it used were removed: both are unknown
// names now, and the error lists the accepted ones.
TEST(CudaKernelPreference, RejectsUnknownNamesListingTheAcceptedOnes) {
  for (const char* bad : {"fa3persistent", "fa3persistent:4", "fa3:5", "auto:2", "wgmma:3", ""}) {
    try {
      cu::set_kernel_preference(bad);
      ADD_FAILURE() << "'" << bad << "' accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("(auto, mma, wgmma, fa3, fa3grid)"), std::string::npos) << msg;
    }
  }
  for (const char* good : {"mma", "mma.sync", "wgmma", "fa3", "fa3grid", "auto"})
    EXPECT_NO_THROW(cu::set_kernel_preference(good)) << good;
}

TEST_P(CudaFlash, RejectsWhatTheKernelCannotRun) {
  Rng rng(1);
  const Tensor hq = random_tensor(DType::kBF16, 2, 64, 64, 1.f, rng);
  const cu::DeviceTensor q = cu::DeviceTensor::from_host(hq);
  cu::DeviceTensor out(DType::kBF16, {2, 64, 64});
  AttentionOptions o;
  EXPECT_THROW(cu::dense_attention(hq, q, q, out, o), Error);  // host q
  const cu::DeviceTensor q96(DType::kBF16, {2, 64, 96}), o96(DType::kBF16, {2, 64, 96});
  EXPECT_THROW(cu::dense_attention(q96, q96, q96, o96, o), Error);  // head dim 96
  const cu::DeviceTensor q32(DType::kF32, {2, 64, 64}), o32(DType::kF32, {2, 64, 64});
  EXPECT_THROW(cu::dense_attention(q32, q32, q32, o32, o), Error);  // f32 inputs
  const SparsePattern bq64 = SparsePattern::dense(2, 64, 64, 64, 64, true);
  const cu::DevicePattern dp = cu::DevicePattern::upload(bq64);
  EXPECT_THROW(cu::block_sparse_attention(q, q, q, dp.view(), out, o), Error);  // block_q 64
  const SparsePattern heads3 = SparsePattern::dense(3, 64, 64, 128, 128, true);
  EXPECT_THROW(cu::block_sparse_attention(q, q, q, cu::DevicePattern::upload(heads3).view(), out, o),
               Error);
}

}  // namespace
}  // namespace sieve::test
