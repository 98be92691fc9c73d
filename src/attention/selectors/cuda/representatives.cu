// Device kernels that build the query and key representatives of the GPU selectors: RRAttention's
// stride representatives (mean + variance of the non-outlier keys, the outliers themselves, or the
// round-robin sampled key), round-robin sampled queries with the exact log-sum-exp of their own
// stride, and UniSparse's average pooling. Mirrors selectors/rr_attention.cpp and unisparse.cpp
// operation by operation (f32, same formulas); sums over the head dimension are tree reductions
// here, sequential there, so values agree to f32 rounding (see docs/cuda.md).
#include "estimation_gpu.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

namespace sieve::attention::cuda::est {

namespace {

constexpr int kMaxStride = 64;  // keys of one stride staged in shared memory (f32, D <= 128)

__device__ __forceinline__ float load(const void* p, bool bf16, int64_t i) {
  return bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i])
              : __half2float(static_cast<const __half*>(p)[i]);
}

// Sum over the block (blockDim.x == D threads, D in {64, 128}).
__device__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = 0.f;
  for (int i = 0; i < nw; ++i) r += scratch[i];
  __syncthreads();
  return r;
}

// One CTA (D threads) per stride u of KV head `head`.
__global__ void rr_key_reps_kernel(const void* k, bool bf16, int64_t head_stride, int64_t row_stride, int D,
                                   int seq_k, int head, int query_head, RRParams rr, float* krep,
                                   float* log_w) {
  __shared__ float keys[kMaxStride][128];
  __shared__ float dist[kMaxStride];
  __shared__ int order[kMaxStride];
  __shared__ float scratch[32];
  const int u = blockIdx.x, d = threadIdx.x, S = rr.S, R = rr.reps, W = rr.W;
  const int r0 = u * S, r1 = min(r0 + S, seq_k), count = r1 - r0;
  const int64_t hbase = int64_t(head) * head_stride;
  if (!rr.mean_keys) {  // the key at the head's round-robin offset stands for the stride
    const int off = rr.rotate ? (query_head + u) % S : query_head % S;
    const int row = min(r0 + off, r1 - 1);
    krep[int64_t(u) * W + d] = load(k, bf16, hbase + int64_t(row) * row_stride + d);
    if (d == 0) log_w[u] = float(log(double(count)));
    return;
  }
  for (int j = 0; j < count; ++j) keys[j][d] = load(k, bf16, hbase + int64_t(r0 + j) * row_stride + d);
  const int m = rr.outliers;
  const int outl = min(m, count);
  float* base = krep + int64_t(u) * R * W;
  if (outl > 0) {
    float mean = 0.f;
    for (int j = 0; j < count; ++j) mean += keys[j][d];
    mean *= 1.0f / float(count);
    for (int j = 0; j < count; ++j) {
      const float x = keys[j][d] - mean;
      const float d2 = block_sum(x * x, scratch);
      if (d == 0) dist[j] = d2;
    }
    __syncthreads();
    if (d == 0) {  // the outl farthest keys, ties: the earlier key
      for (int t = 0; t < outl; ++t) {
        int best = -1;
        for (int j = 0; j < count; ++j) {
          bool taken = false;
          for (int s = 0; s < t; ++s) taken |= order[s] == j;
          if (!taken && (best < 0 || dist[j] > dist[best])) best = j;
        }
        order[t] = best;
      }
    }
    __syncthreads();
  }
  // slots 1..m: the outliers (zero variance), unused slots zero with weight -inf
  for (int t = 0; t < m; ++t) {
    float* slot = base + int64_t(1 + t) * W;
    slot[d] = t < outl ? keys[order[t]][d] : 0.f;
    if (rr.moments) slot[D + d] = 0.f;
    if (d == 0) log_w[u * R + 1 + t] = t < outl ? 0.f : -INFINITY;
  }
  // slot 0: mean and per-dimension variance of the remaining keys
  const int rest = count - outl;
  float mu = 0.f, var = 0.f;
  if (rest > 0) {
    for (int j = 0; j < count; ++j) {
      bool out = false;
      for (int t = 0; t < outl; ++t) out |= order[t] == j;
      if (out) continue;
      mu += keys[j][d];
      var += keys[j][d] * keys[j][d];
    }
    const float inv = 1.0f / float(rest);
    mu *= inv;
    var = fmaxf(0.0f, var * inv - mu * mu);
  }
  base[d] = mu;
  if (rr.moments) base[D + d] = var;
  if (d == 0) log_w[u * R] = rest > 0 ? float(log(double(rest))) : -INFINITY;
}

// One CTA (D threads) per query stride t of query head h.
__global__ void rr_queries_kernel(const void* q, const void* k, bool bf16, int64_t q_head_stride,
                                  int64_t q_row_stride, int64_t k_head_stride, int64_t k_row_stride, int D,
                                  Geometry geo, int h, int hk, float scale, RRParams rr, float* qrep,
                                  int* visible, float* own) {
  __shared__ float scores[256];
  __shared__ float scratch[32];
  const int t = blockIdx.x, d = threadIdx.x, S = rr.S, W = rr.W;
  const int nks = (geo.seq_k + S - 1) / S;
  {  // head z of a batch of query heads: [heads][nqs] outputs
    const int z = int(blockIdx.y);
    const int64_t nqs = gridDim.x;
    h += z;
    qrep += z * nqs * W;
    visible += z * nqs;
    own += z * nqs;
  }
  const int off = rr.rotate ? (h + t) % S : h % S;
  const int row = min(t * S + off, min(t * S + S, geo.seq_q) - 1);
  const float qv = load(q, bf16, int64_t(h) * q_head_stride + int64_t(row) * q_row_stride + d);
  qrep[int64_t(t) * W + d] = qv;
  if (rr.moments && rr.mean_keys) qrep[int64_t(t) * W + D + d] = 0.5f * scale * qv * qv;
  const int pos = row + geo.q_offset;
  const int vis = geo.causal ? min(max(pos / S + 1, 0), nks) : nks;
  if (d == 0) visible[t] = vis;
  if (!geo.causal || vis <= 0) return;
  // the query's own stride: exact log-sum-exp over its visible keys
  const int k0 = (vis - 1) * S, k1 = min(pos + 1, geo.seq_k);
  const int cnt = min(k1 - k0, 256);
  const int64_t kb = int64_t(hk) * k_head_stride;
  for (int j = 0; j < cnt; ++j) {
    const float dot = block_sum(qv * load(k, bf16, kb + int64_t(k0 + j) * k_row_stride + d), scratch);
    if (d == 0) scores[j] = scale * dot;
  }
  if (d == 0) {
    float mx = -INFINITY;
    for (int j = 0; j < cnt; ++j) mx = fmaxf(mx, scores[j]);
    double sum = 0;
    for (int j = 0; j < cnt; ++j) sum += exp(double(scores[j] - mx));
    own[t] = mx + float(log(sum));
  }
}

// One CTA (D threads) per pooled group u of c rows.
__global__ void pool_kernel(const void* x, bool bf16, int64_t head_stride, int64_t row_stride, int D, int len,
                            int head, int c, bool is_key, bool moments, float scale, float* dst) {
  const int u = blockIdx.x, d = threadIdx.x;
  const int r0 = u * c, r1 = min(r0 + c, len), n = r1 - r0;
  const int W = moments ? 2 * D : D;
  head += int(blockIdx.y);  // head z of a batch: dst [heads][groups][W]
  dst += int64_t(blockIdx.y) * gridDim.x * W;
  const int64_t base = int64_t(head) * head_stride + d;
  float mean = 0.f;
  for (int j = r0; j < r1; ++j) mean += load(x, bf16, base + int64_t(j) * row_stride);
  mean *= n > 0 ? 1.0f / float(n) : 0.0f;
  float* out = dst + int64_t(u) * W;
  out[d] = mean;
  if (!moments) return;
  if (!is_key) {
    out[D + d] = 0.5f * scale * mean * mean;
    return;
  }
  float v = 0.f;
  for (int j = r0; j < r1; ++j) {
    const float y = load(x, bf16, base + int64_t(j) * row_stride) - mean;
    v += y * y;
  }
  out[D + d] = v / float(n);
}

__global__ void pooled_visible_kernel(Geometry geo, int nqc, int cq, int ck, int nkc, int* visible) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= nqc) return;
  if (!geo.causal) {
    visible[t] = nkc;
    return;
  }
  const int last = min(t * cq + cq - 1, geo.seq_q - 1) + geo.q_offset;
  visible[t] = min(max(last / ck + 1, 0), nkc);
}

}  // namespace

cudaError_t rr_key_reps(const void* k, bool bf16, int64_t head_stride, int64_t row_stride, int D, int seq_k,
                        int head, int query_head, const RRParams& rr, float* krep, float* log_w,
                        cudaStream_t stream) {
  if (rr.S > kMaxStride || D > 128 || D % 32 != 0) return cudaErrorInvalidValue;
  const int units = (seq_k + rr.S - 1) / rr.S;
  rr_key_reps_kernel<<<units, D, 0, stream>>>(k, bf16, head_stride, row_stride, D, seq_k, head, query_head,
                                              rr, krep, log_w);
  return cudaGetLastError();
}

cudaError_t rr_queries(const void* q, const void* k, bool bf16, int64_t q_head_stride, int64_t q_row_stride,
                       int64_t k_head_stride, int64_t k_row_stride, int D, const Geometry& geo, int h, int hk,
                       float scale, const RRParams& rr, float* qrep, int* visible, float* own,
                       cudaStream_t stream, int heads) {
  if (D > 128 || D % 32 != 0 || heads < 1) return cudaErrorInvalidValue;
  const int nqs = (geo.seq_q + rr.S - 1) / rr.S;
  rr_queries_kernel<<<dim3(unsigned(nqs), unsigned(heads)), D, 0, stream>>>(
      q, k, bf16, q_head_stride, q_row_stride, k_head_stride, k_row_stride, D, geo, h, hk, scale, rr, qrep,
      visible, own);
  return cudaGetLastError();
}

cudaError_t pool_rows(const void* t, bool bf16, int64_t head_stride, int64_t row_stride, int D, int len,
                      int head, int c, bool is_key, bool moments, float scale, float* dst, cudaStream_t stream,
                      int heads) {
  if (D > 1024 || len <= 0 || heads < 1) return len <= 0 ? cudaSuccess : cudaErrorInvalidValue;
  pool_kernel<<<dim3(unsigned((len + c - 1) / c), unsigned(heads)), D, 0, stream>>>(
      t, bf16, head_stride, row_stride, D, len, head, c, is_key, moments, scale, dst);
  return cudaGetLastError();
}

cudaError_t pooled_visible(const Geometry& geo, int nqc, int cq, int ck, int nkc, int* visible,
                           cudaStream_t stream) {
  if (nqc <= 0) return cudaSuccess;
  pooled_visible_kernel<<<(nqc + 255) / 256, 256, 0, stream>>>(geo, nqc, cq, ck, nkc, visible);
  return cudaGetLastError();
}

}  // namespace sieve::attention::cuda::est
