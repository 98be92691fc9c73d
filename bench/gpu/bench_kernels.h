// Device helpers of bench_attention_cuda (bench_kernels.cu): random inputs, bitwise comparison and
// the tile-shape sweep of the flash kernel. Plain C++ interface so that the benchmark's host code is
// compiled by the C++ compiler (fmt and nvcc do not mix).
#pragma once

#include "sieve/attention/cuda/flash_params.h"

#include <cuda_runtime.h>

#include <cstdint>

namespace sieve::bench {

/// Fills n bf16 values with approximately N(0, sigma) noise (never zeros).
void fill_random_bf16(void* p, int64_t n, uint64_t seed, float sigma);
/// Split-key experiment (--exec-split): merges a later pass's partial attention (o_b [heads,
/// rows_b, d] bf16, lse_b [heads, rows_b]) into rows row0.. of an earlier one (o_a [heads, rows_a,
/// d], lse_a [heads, rows_a]) in place, weighting each by exp(lse - max); with update_lse the
/// merged rows of lse_a become the log-sum-exp of both (for a further merge into an earlier pass).
void merge_lse_bf16(void* o_a, float* lse_a, const void* o_b, const float* lse_b, int heads,
                    int64_t rows_a, int64_t rows_b, int64_t row0, int d, bool update_lse,
                    cudaStream_t stream);
/// Counts differing 16-bit words of a and b, and NaN words of a: {mismatches, nans}.
void count_mismatch_u16(const void* a, const void* b, int64_t n, unsigned long long out[2]);

struct VariantInfo {
  const char* name = "";
  int regs = 0, local_bytes = 0, ctas_per_sm = 0;
};
/// Number of compiled tile-shape variants (0 unless built with SIEVE_GPU_BENCH_VARIANTS).
int num_variants();
VariantInfo variant_info(int i);
/// Launches variant i (bf16, head dim 128) with the given parameters.
cudaError_t launch_variant(int i, const attention::cuda::FlashParams& p, cudaStream_t stream);

}  // namespace sieve::bench
