// Device kernels of the XAttention port (peers_gpu.h): antidiagonal stride scores on tensor cores
// straight from the 16-bit inputs, reduced to one statistics group (group_stat.cuh) per (query
// stride, key block) that block_scores (estimation.cu) turns into block masses. Mirrors
// selectors/xattention.cpp: the same operands (key strides laid side by side against the query
// stride in reverse row order, zero past the end), scale / S, causal by stride.
#include "group_stat.cuh"
#include "peers_gpu.h"

#include "sieve/attention/cuda/check.h"
#include "sieve/attention/cuda/ptx.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdlib>
#include <string_view>

namespace sieve::attention::cuda::est {

namespace {

constexpr int kTile = 64, kThreads = 128;  // 64 query strides x 64 key strides, 4 warps x 16 rows

__global__ void xattn_visible_kernel(Geometry g, int S, int nqs, int nks, int* visible) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < nqs) visible[i] = xattn_visible_at(g, S, nks, i);
}

// One CTA: query strides i0.. i0 + 63 x key strides e0.. e0 + 63 of query head h0 + blockIdx.z.
// The inner dimension runs over t = 0.. S - 1 in chunks of D: query row iS + S - 1 - t against
// key row jS + t, both chunks loaded by cp.async (double-buffered, 16-byte chunk c of row r at
// c ^ (r & 7)). The scores then go through shared memory (reusing the operand buffers) to the
// per-block statistics.
template <class T, int D>
__global__ void __launch_bounds__(kThreads)
    xattn_stats_kernel(HeadInputs in, Geometry g, int S, int nqs, int nks, int h0,
                       const int* visible, GroupStat* stats) {
  constexpr int kRowBytes = 2 * D, kChunks = D / 8, kSteps = D / 16, kBuf = kTile * kRowBytes;
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ int s_vis[kTile];
  const uint32_t s_a = ptx::smem_addr(smem), s_b = s_a + uint32_t(2 * kBuf);
  const int z = int(blockIdx.z), h = h0 + z, hk = h / in.group;
  const int e0 = int(blockIdx.x) * kTile, i0 = int(blockIdx.y) * kTile;
  const int nkb = g.nkb, eb = g.block_k / S, nblk = kTile / eb, kb0 = e0 / eb;
  stats += int64_t(z) * nqs * nkb;
  if (threadIdx.x < kTile) {
    const int i = i0 + int(threadIdx.x);
    s_vis[threadIdx.x] = i < nqs ? visible[i] : 0;
  }
  __syncthreads();
  int maxv = 0;
  for (int r = 0; r < kTile; ++r) maxv = max(maxv, s_vis[r]);
  if (e0 >= maxv) {  // no row sees these strides: empty groups
    for (int x = int(threadIdx.x); x < kTile * nblk; x += kThreads) {
      const int r = x / nblk, b = x % nblk;
      if (i0 + r < nqs && kb0 + b < nkb)
        stats[int64_t(i0 + r) * nkb + kb0 + b] = -INFINITY;
    }
    return;
  }
  const T* q = static_cast<const T*>(in.q) + int64_t(h) * in.q_head_stride;
  const T* k = static_cast<const T*>(in.k) + int64_t(hk) * in.k_head_stride;
  const auto load = [&](int t, int buf) {
    const uint32_t da = s_a + uint32_t(buf * kBuf), db = s_b + uint32_t(buf * kBuf);
    for (int x = int(threadIdx.x); x < kTile * kChunks; x += kThreads) {
      const int r = x / kChunks, c = x % kChunks;
      const uint32_t off = uint32_t((r * kChunks + (c ^ (r & 7))) * 16);
      const int qi = i0 + r, qrow = qi * S + S - 1 - t;
      const bool qa = qi < nqs && qrow < g.seq_q;
      ptx::cp_async_16(da + off, qa ? q + int64_t(qrow) * in.q_row_stride + c * 8 : q, qa);
      const int ke = e0 + r, krow = ke * S + t;
      const bool kv = ke < nks && krow < g.seq_k;
      ptx::cp_async_16(db + off, kv ? k + int64_t(krow) * in.k_row_stride + c * 8 : k, kv);
    }
  };
  load(0, 0);
  ptx::cp_async_commit();

  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int gr = lane >> 2, tq = lane & 3;
  const int ar = lane & 15, br = (lane & 7) + ((lane >> 4) << 3);
  const uint32_t a_off = uint32_t((warp * 16 + ar) * kRowBytes + 16 * ((lane >> 4) ^ (ar & 7)));
  const uint32_t b_off = uint32_t(br * kRowBytes + 16 * (((lane >> 3) & 1) ^ (br & 7)));
  float acc[8][4] = {};
  for (int t = 0; t < S; ++t) {
    if (t + 1 < S) load(t + 1, (t + 1) & 1);
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();
    __syncthreads();
    const uint32_t sa = s_a + uint32_t((t & 1) * kBuf), sb = s_b + uint32_t((t & 1) * kBuf);
#pragma unroll
    for (int kk = 0; kk < kSteps; ++kk) {
      uint32_t a[4];
      ptx::ldmatrix_x4(sa + (a_off ^ uint32_t(32 * kk)), a);
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t b[4];
        ptx::ldmatrix_x4(sb + ((b_off + uint32_t(np * 16 * kRowBytes)) ^ uint32_t(32 * kk)), b);
        ptx::mma_16816<T>(acc[2 * np], a, b[0], b[1]);
        ptx::mma_16816<T>(acc[2 * np + 1], a, b[2], b[3]);
      }
    }
    __syncthreads();  // this buffer is free again
  }
  // The operand buffers are free (last barrier above): scores of the tile, -inf where not visible.
  float(*st)[kTile + 1] = reinterpret_cast<float(*)[kTile + 1]>(smem);
  const float alpha = in.scale / float(S);
#pragma unroll
  for (int n = 0; n < 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int rl = warp * 16 + gr + (e >> 1) * 8, el = n * 8 + 2 * tq + (e & 1);
      st[rl][el] = e0 + el < s_vis[rl] ? alpha * acc[n][e] : -INFINITY;
    }
  __syncthreads();
  for (int x = int(threadIdx.x); x < kTile * nblk; x += kThreads) {
    const int r = x / nblk, b = x % nblk;
    if (i0 + r >= nqs || kb0 + b >= nkb) continue;
    float m = -INFINITY;
    for (int j = b * eb; j < (b + 1) * eb; ++j) m = fmaxf(m, st[r][j]);
    float sum = 0.f;
    if (m != -INFINITY)
      for (int j = b * eb; j < (b + 1) * eb; ++j) sum += expf(st[r][j] - m);
    stats[int64_t(i0 + r) * nkb + kb0 + b] = group_stat(m * kLog2e, sum);
  }
}

// operands: 2 buffers x (query + key chunk); the score tile reuses them (64 x 65 floats)
constexpr int smem_bytes(int D) { return 4 * kTile * 2 * D; }
static_assert(smem_bytes(64) >= int(sizeof(float)) * kTile * (kTile + 1), "score tile fits");

template <class T, int D>
cudaError_t launch_stats(const HeadInputs& in, const Geometry& g, int S, int h0, int heads,
                         const int* visible, GroupStat* stats, cudaStream_t stream) {
  const int nqs = (g.seq_q + S - 1) / S, nks = (g.seq_k + S - 1) / S;
  const dim3 grid(unsigned((nks + kTile - 1) / kTile), unsigned((nqs + kTile - 1) / kTile),
                  unsigned(heads));
  xattn_stats_kernel<T, D><<<grid, kThreads, size_t(smem_bytes(D)), stream>>>(in, g, S, nqs, nks,
                                                                              h0, visible, stats);
  return cudaGetLastError();
}

// Shared memory above the default 48 KB (D 128), set once per plan rather than per launch.
template <class T, int D>
cudaError_t prepare_stats() {
  return cudaFuncSetAttribute(xattn_stats_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              smem_bytes(D));
}

}  // namespace

bool use_wgmma() {
  const char* env = std::getenv("SIEVE_GPU_SELECT_MMA");  // NOLINT(concurrency-mt-unsafe)
  return (env == nullptr || *env == '\0' || *env == '0') && cuda::detail::device_is_sm90();
}

bool xattn_fits(int S, int block_k) {
  if (S < 1 || block_k % S != 0) return false;
  const int eb = block_k / S;
  return eb >= 1 && eb <= kTile && kTile % eb == 0;
}

cudaError_t xattn_visible(const Geometry& geo, int S, int nqs, int nks, int* visible,
                          cudaStream_t stream) {
  if (nqs <= 0) return cudaSuccess;
  xattn_visible_kernel<<<(nqs + 255) / 256, 256, 0, stream>>>(geo, S, nqs, nks, visible);
  return cudaGetLastError();
}

cudaError_t xattn_plan(const HeadInputs& in, const Geometry& geo, int S, XattnPlan* plan) {
  if (!rows_fit(in) || !xattn_fits(S, geo.block_k)) return cudaErrorInvalidValue;
  using K = XattnPlan::Kernel;
  plan->kernel = K::kMmaSync;
  if (use_wgmma() && xattn_wgmma_fits(in, S, geo.block_k)) {
    const char* env = std::getenv("SIEVE_XATTN_KERNEL");  // NOLINT(concurrency-mt-unsafe)
    const bool force_wgmma = env != nullptr && std::string_view(env) == "wgmma";
    if (!force_wgmma && xattn_tma_fits(in, geo, S)) {
      plan->kernel = K::kTma;
      plan->tma_tile = env != nullptr && std::string_view(env) == "tma256"
                           ? XattnPlan::TmaTile::k128x256
                           : XattnPlan::TmaTile::k192x192;
      return xattn_tma_prepare(in, geo, S, plan);
    }
    plan->kernel = K::kWgmma;
    return xattn_wgmma_prepare(in, geo, S);
  }
  if (in.bf16)
    return in.D == 64 ? prepare_stats<__nv_bfloat16, 64>() : prepare_stats<__nv_bfloat16, 128>();
  return in.D == 64 ? prepare_stats<__half, 64>() : prepare_stats<__half, 128>();
}

cudaError_t xattn_stats(const XattnPlan& plan, const HeadInputs& in, const Geometry& geo, int S,
                        int h0, int heads, const int* visible, GroupStat* stats,
                        cudaStream_t stream) {
  if (!rows_fit(in) || !xattn_fits(S, geo.block_k)) return cudaErrorInvalidValue;
  if (geo.seq_q <= 0 || geo.seq_k <= 0 || heads <= 0) return cudaSuccess;
  switch (plan.kernel) {
    case XattnPlan::Kernel::kTma:
      return xattn_stats_tma(plan, in, geo, S, h0, heads, stats, stream);
    case XattnPlan::Kernel::kWgmma:
      return xattn_stats_wgmma(in, geo, S, h0, heads, visible, stats, stream);
    case XattnPlan::Kernel::kMmaSync: break;
  }
  if (in.bf16)
    return in.D == 64
               ? launch_stats<__nv_bfloat16, 64>(in, geo, S, h0, heads, visible, stats, stream)
               : launch_stats<__nv_bfloat16, 128>(in, geo, S, h0, heads, visible, stats, stream);
  return in.D == 64 ? launch_stats<__half, 64>(in, geo, S, h0, heads, visible, stats, stream)
                    : launch_stats<__half, 128>(in, geo, S, h0, heads, visible, stats, stream);
}

}  // namespace sieve::attention::cuda::est
