// Recall of a device pattern: the exact softmax mass (f32 scores, f64 sums) a pattern keeps on
// sampled query rows; the GPU counterpart of metrics.h's pattern_recall with row_stride.
#include "block_reduce.cuh"
#include "estimation_gpu.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace sieve::attention::cuda::est {

namespace {

__device__ __forceinline__ float load(const void* p, bool bf16, int64_t i) {
  return bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i])
              : __half2float(static_cast<const __half*>(p)[i]);
}

__device__ bool contains(const PatternRef& p, int head, int qb, int pos, int j) {
  if (p.band > 0 && j <= pos && j > pos - p.band) return true;
  const int row = head * p.nqb + qb, kb = j / p.block_k;
  int lo = p.block_indptr[row], hi = p.block_indptr[row + 1];
  while (lo < hi) {
    const int mid = (lo + hi) >> 1;
    if (p.block_indices[mid] < kb) lo = mid + 1; else hi = mid;
  }
  if (lo < p.block_indptr[row + 1] && p.block_indices[lo] == kb) return true;
  if (p.column_indptr) {
    lo = p.column_indptr[head];
    hi = p.column_indptr[head + 1];
    const int end = hi;
    while (lo < hi) {
      const int mid = (lo + hi) >> 1;
      if (p.columns[mid] < j) lo = mid + 1; else hi = mid;
    }
    if (lo < end && p.columns[lo] == j) return true;
  }
  return false;
}

__global__ void recall_kernel(const void* q, const void* k, bool bf16, int64_t qhs, int64_t qrs, int64_t khs,
                              int64_t krs, int D, int group, Geometry geo, float scale, PatternRef p,
                              int row_stride, int rows_per_head, float* scratch, double* out) {
  __shared__ float qs[128];
  __shared__ float fs[32];
  __shared__ double ds[32];
  const int e = blockIdx.x % rows_per_head, h = blockIdx.x / rows_per_head;
  const int i = geo.seq_q - 1 - e * row_stride;  // the last row, then every row_stride-th before it
  const int pos = i + geo.q_offset;
  const int vis = geo.causal ? min(pos + 1, geo.seq_k) : geo.seq_k;
  for (int d = threadIdx.x; d < D; d += blockDim.x) qs[d] = load(q, bf16, int64_t(h) * qhs + int64_t(i) * qrs + d);
  __syncthreads();
  float* s = scratch + int64_t(blockIdx.x) * geo.seq_k;
  const int64_t kb = int64_t(h / group) * khs;
  float m = -INFINITY;
  for (int j = threadIdx.x; j < vis; j += blockDim.x) {
    float dot = 0.f;
    for (int d = 0; d < D; ++d) dot = fmaf(qs[d], load(k, bf16, kb + int64_t(j) * krs + d), dot);
    s[j] = scale * dot;
    m = fmaxf(m, s[j]);
  }
  m = block_reduce(m, [](float a, float b) { return fmaxf(a, b); }, fs);
  double tot = 0, kept = 0;
  const int ph = h / p.head_div, qb = i / p.block_q;
  for (int j = threadIdx.x; j < vis; j += blockDim.x) {
    const double x = exp(double(s[j] - m));
    tot += x;
    if (contains(p, ph, qb, pos, j)) kept += x;
  }
  tot = block_sum(tot, ds);
  kept = block_sum(kept, ds);
  if (threadIdx.x == 0) out[blockIdx.x] = tot > 0 ? kept / tot : 1.0;
}

}  // namespace

cudaError_t sampled_recall(const void* q, const void* k, bool bf16, int64_t q_head_stride, int64_t q_row_stride,
                           int64_t k_head_stride, int64_t k_row_stride, int D, int heads_q, int group,
                           const Geometry& geo, float scale, const PatternRef& p, int row_stride,
                           int rows_per_head, float* scratch, double* out, cudaStream_t stream) {
  if (D > 128) return cudaErrorInvalidValue;
  recall_kernel<<<heads_q * rows_per_head, 256, 0, stream>>>(q, k, bf16, q_head_stride, q_row_stride, k_head_stride,
                                                             k_row_stride, D, group, geo, scale, p, row_stride,
                                                             rows_per_head, scratch, out);
  return cudaGetLastError();
}

}  // namespace sieve::attention::cuda::est
