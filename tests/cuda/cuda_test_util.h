// Shared helpers of the GPU tests: skip without a device, fresh random inputs, running the CUDA
// executor on host tensors with poisoned outputs, and comparing with the f64 reference.
#pragma once

#include "sieve/attention/cuda/api.h"
#include "sieve/attention/cuda/check.h"
#include "sieve/attention/cuda/device_tensor.h"
#include "sieve/attention/cuda/selectors.h"
#include "sieve/attention/reference.h"
#include "sieve/attention/selector.h"
#include "sieve/attention/synthetic.h"
#include "sieve/core/rng.h"
#include "sieve/core/tensor.h"
#include "tolerance.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>

namespace sieve::test {

/// Skips the current test when no CUDA device is usable (CI compiles but has no GPU).
#define SIEVE_REQUIRE_GPU()                                                       \
  do {                                                                            \
    if (::sieve::attention::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device"; \
  } while (0)

/// An environment variable set for one scope and unset on exit (the GPU kernels read their A/B
/// switches on every call, so a test selects a variant by scoping one of these around the call).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    setenv(name, value, 1);  // NOLINT(concurrency-mt-unsafe)
  }
  ~ScopedEnv() { unsetenv(name_); }  // NOLINT(concurrency-mt-unsafe)
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
};

/// A fresh seed per call (METHOD: fresh inputs for every check); printed by the callers' traces.
inline uint64_t fresh_seed() {
  static std::random_device rd;
  return (uint64_t(rd()) << 32) ^ rd();
}

/// Normal(0, sigma) entries in `dtype` (rounded once; the reference reads the rounded values).
inline Tensor random_tensor(DType dtype, int64_t h, int64_t l, int64_t d, float sigma, Rng& rng) {
  Tensor t(dtype, {h, l, d});
  const TensorView v = t.view();
  for (int64_t i = 0; i < t.numel(); ++i) store_from_f32(v.data, dtype, i, float(rng.normal()) * sigma);
  return t;
}

/// Q [hq, lq, d], K and V [hkv, lk, d] of one test case.
struct Inputs {
  Tensor q, k, v;
};

/// Normal inputs (q, k with sigma 1.6: peaked enough for selectors to choose; v with 1).
inline Inputs random_inputs(DType dt, int64_t hq, int64_t hkv, int64_t lq, int64_t lk, int64_t d,
                            uint64_t seed) {
  Rng rng(seed);
  return {random_tensor(dt, hq, lq, d, 1.6f, rng), random_tensor(dt, hkv, lk, d, 1.6f, rng),
          random_tensor(dt, hkv, lk, d, 1.f, rng)};
}
inline Inputs random_inputs(DType dt, int64_t hq, int64_t hkv, int64_t l, int64_t d, uint64_t seed) {
  return random_inputs(dt, hq, hkv, l, l, d, seed);
}

/// The planted-structure workload (make_synthetic, default strength) of that shape.
inline Inputs planted_inputs(DType dt, int64_t hq, int64_t hkv, int64_t l, int64_t d, uint64_t seed) {
  attention::SyntheticConfig c;
  c.num_heads_q = hq;
  c.num_heads_kv = hkv;
  c.seq_len = l;
  c.head_dim = d;
  c.dtype = dt;
  c.seed = seed;
  attention::SyntheticWorkload w = attention::make_synthetic(c);
  return {w.q, w.k, w.v};
}

inline std::vector<double> to_f64(const TensorView& t) {
  std::vector<double> r(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) r[size_t(i)] = load_as_f32(t.data, t.dtype, i);
  return r;
}

/// Output tolerance of the tensor-core kernel. Beyond the f32 accumulation (kAttnF32MaxRel) and
/// the output rounding (one ulp of the output dtype), P is rounded to the input dtype before the
/// P.V product: |sum_j (p~_j - p_j) v_j| / l <= ulp * max|v|, relative to max|want|.
inline Tolerance gpu_out_tolerance(DType in, DType out, double max_abs_v, double max_abs_want) {
  const double p_ulp = in == DType::kBF16 ? 0x1p-8 : 0x1p-11;
  Tolerance t;
  t.elem_rel = out == DType::kBF16 ? kAttnBf16OutElemRel : out == DType::kF16 ? kAttnF16OutElemRel : 0.0;
  t.max_rel = kAttnF32MaxRel + p_ulp * max_abs_v / std::max(max_abs_want, 1e-30);
  return t;
}

struct GpuRun {
  Tensor out;  // host copy, out dtype
  Tensor lse;  // host copy, f32 [Hq, Lq]
};

/// Uploads q/k/v, poisons out and lse with NaN bytes, runs dense (pattern == nullptr) or
/// block-sparse attention with a pattern already on the device, synchronises and downloads.
inline GpuRun run_gpu_on(const Tensor& q, const Tensor& k, const Tensor& v, DType out_dtype,
                         const attention::AttentionOptions& opts,
                         const attention::cuda::DevicePatternView* pattern) {
  namespace cu = attention::cuda;
  const cu::DeviceTensor dq = cu::DeviceTensor::from_host(q), dk = cu::DeviceTensor::from_host(k),
                         dv = cu::DeviceTensor::from_host(v);
  cu::DeviceTensor dout(out_dtype, {q.size(0), q.size(1), q.size(2)});
  cu::DeviceTensor dlse(DType::kF32, {q.size(0), q.size(1)});
  dout.fill_bytes(0xff);
  dlse.fill_bytes(0xff);
  const TensorView lse_view = dlse.view();
  if (pattern)
    cu::block_sparse_attention(dq, dk, dv, *pattern, dout, opts, &lse_view);
  else
    cu::dense_attention(dq, dk, dv, dout, opts, &lse_view);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return GpuRun{dout.to_host(), dlse.to_host()};
}

/// run_gpu_on with a host pattern (uploaded first; its column capacity is the list's length).
inline GpuRun run_gpu(const Tensor& q, const Tensor& k, const Tensor& v, DType out_dtype,
                      const attention::AttentionOptions& opts,
                      const attention::SparsePattern* pattern = nullptr) {
  if (!pattern) return run_gpu_on(q, k, v, out_dtype, opts, nullptr);
  const attention::cuda::DevicePattern dp = attention::cuda::DevicePattern::upload(*pattern);
  const attention::cuda::DevicePatternView view = dp.view();
  return run_gpu_on(q, k, v, out_dtype, opts, &view);
}

/// Checks a GPU run against the f64 reference: every element written (no NaN), outputs within
/// gpu_out_tolerance, LSE within kAttnLseTol * (1 + |want|) (-inf where no key is kept).
inline void expect_matches_reference(const GpuRun& got, const attention::ReferenceResult& ref,
                                     const Tensor& v, DType in_dtype, const std::string& what) {
  const std::vector<double> out = to_f64(got.out.view());
  double max_v = 0, max_want = 0;
  for (double x : to_f64(v.view())) max_v = std::max(max_v, std::fabs(x));
  for (double x : ref.out) max_want = std::max(max_want, std::fabs(x));
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_FALSE(std::isnan(out[i])) << what << ": output element " << i << " not written (NaN)";
  }
  const Comparison c = compare(out, ref.out, gpu_out_tolerance(in_dtype, got.out.dtype(), max_v, max_want));
  EXPECT_TRUE(c.ok) << what << ": output " << c.message();
  const std::vector<double> lse = to_f64(got.lse.view());
  double worst = 0;
  int64_t worst_i = -1;
  for (size_t i = 0; i < lse.size(); ++i) {
    const double w = ref.lse[i], g = lse[i];
    ASSERT_FALSE(std::isnan(g)) << what << ": lse " << i << " not written (NaN)";
    if (std::isinf(w)) {
      EXPECT_TRUE(std::isinf(g) && g < 0) << what << ": row " << i << " keeps no key, lse " << g;
      continue;
    }
    const double e = std::fabs(g - w) / (1.0 + std::fabs(w));
    if (e > worst) {
      worst = e;
      worst_i = int64_t(i);
    }
  }
  EXPECT_LE(worst, kAttnLseTol) << what << ": lse row " << worst_i << " got " << lse[size_t(std::max<int64_t>(worst_i, 0))]
                                << " want " << ref.lse[size_t(std::max<int64_t>(worst_i, 0))];
}

/// Runs `pattern` through the CUDA executor on `in` and checks the output against the f64
/// reference restricted to the same pattern (mask_from_pattern).
inline void expect_pattern_output_matches_reference(const Inputs& in,
                                                    const attention::AttentionOptions& opts,
                                                    const attention::SparsePattern& pattern,
                                                    const std::string& what) {
  const GpuRun got = run_gpu(in.q, in.k, in.v, in.q.dtype(), opts, &pattern);
  const auto ref = attention::reference_attention(
      in.q, in.k, in.v, opts, attention::mask_from_pattern(pattern, in.q.size(0), in.k.size(0)));
  expect_matches_reference(got, ref, in.v, in.q.dtype(), what);
}

/// A selector's pattern from the CPU (select() on the host tensors) and from the GPU
/// (select_on_device() on device copies dq, dk; dp downloaded to gpu and validated): what every
/// GPU selector test compares.
struct CpuGpuPatterns {
  attention::SparsePattern cpu, gpu;
  attention::cuda::DeviceTensor dq, dk;
  attention::cuda::DevicePattern dp;
};
/// Fills `out` for `sel` on `in`; call through ASSERT_NO_FATAL_FAILURE.
inline void select_on_cpu_and_gpu(const attention::PatternSelector& sel, const Inputs& in,
                                  const attention::AttentionOptions& opts, CpuGpuPatterns& out) {
  namespace cu = attention::cuda;
  out.cpu = sel.select(in.q, in.k, opts);
  out.dq = cu::DeviceTensor::from_host(in.q);
  out.dk = cu::DeviceTensor::from_host(in.k);
  ASSERT_TRUE(cu::has_device_selector(sel));
  out.dp = cu::select_on_device(sel, out.dq, out.dk, opts);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  out.gpu = out.dp.download();
  ASSERT_NO_THROW(out.gpu.validate());
}

}  // namespace sieve::test
