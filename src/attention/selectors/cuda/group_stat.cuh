// Internal: one softmax statistics group in one float, written by every score kernel of the
// stride problems and xattn (estimation.cu, fused_stats.cuh, xattn.cu, sm90a/) and read by
// block_scores (estimation.cu). A group is a row's scores over one key block or 64-entry part;
// its value is log2 of the sum of exp(score) over the group (estimation_gpu.h: GroupStat), i.e.
// the (max, sum of exp(score - max)) pair folded together: m log2(e) + log2(sum). It holds the
// group's unnormalised softmax mass in half the bytes of the pair, so block_scores reads half as
// much (xattn's statistics at 32K: 128 MiB instead of 256). A group without a finite score is
// -inf; NaN (the 0xff fill of clear_stats) reads the same.
#pragma once

#include "estimation_gpu.h"
#include "sieve/attention/cuda/ptx.cuh"

#include <cmath>

namespace sieve::attention::cuda::est {

/// log2(e): score kernels keep their maxima in log2 units (m log2(e)) before group_stat.
constexpr float kLog2e = 1.4426950408889634f;

/// A group of max score m2 and sum of 2^(score - m2), both in log2 units (sum >= 1 when m2 is
/// finite, since the max's own term is 1). -inf for m2 = -inf (no finite score).
__device__ __forceinline__ GroupStat group_stat(float m2, float sum) {
  return m2 + ptx::log2_fast(sum);  // m2 = -inf: -inf whatever the sum
}

/// Whether a group holds a finite score (false for -inf and NaN).
__device__ __forceinline__ bool group_set(GroupStat x) { return x > -INFINITY; }

/// 2^(x - m2): the group's mass at reference m2 (0 for an empty group).
__device__ __forceinline__ float group_mass(GroupStat x, float m2) {
  return group_set(x) ? exp2f(x - m2) : 0.f;
}

}  // namespace sieve::attention::cuda::est
