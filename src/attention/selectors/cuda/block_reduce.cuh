// Internal: block-wide reduction, exclusive scan and compaction of one value per thread, and the
// sink / diagonal blocks of a pattern row, shared by the GPU selector kernels (sample.cu,
// flexprefill.cu). blockDim.x must be a multiple of 32 and at most 1024; scratch holds 32 values
// of T in shared memory. Every thread gets the result; the calls synchronise the block (all
// threads must reach them).
#pragma once

#include "estimation_gpu.h"

#include <cuda_runtime.h>

namespace sieve::attention::cuda::est {

struct AddOp {
  template <class T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};

/// op over the block's values (warp butterflies, then the warps' results in warp order).
template <class T, class Op>
__device__ T block_reduce(T v, Op op, T* scratch) {
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, nw = int(blockDim.x) >> 5;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = scratch[0];
  for (int i = 1; i < nw; ++i) r = op(r, scratch[i]);
  __syncthreads();
  return r;
}

template <class T>
__device__ T block_sum(T v, T* scratch) {
  return block_reduce(v, AddOp{}, scratch);
}

/// Exclusive prefix (thread order) of one value per thread; the block total in *total.
template <class T>
__device__ T block_exclusive_scan(T v, T* scratch, T* total) {
  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5, nw = int(blockDim.x) >> 5;
  T x = v;
  for (int o = 1; o < 32; o <<= 1) {
    const T y = __shfl_up_sync(0xffffffffu, x, o);
    if (lane >= o) x += y;
  }
  __syncthreads();
  if (lane == 31) scratch[warp] = x;
  __syncthreads();
  T base = 0, all = 0;
  for (int i = 0; i < nw; ++i) {
    if (i < warp) base += scratch[i];
    all += scratch[i];
  }
  __syncthreads();
  *total = all;
  return base + x - v;
}

/// The calling thread's contiguous chunk [i0, i1) of v[0, n), the sum of the entries before it
/// (first, a block-wide exclusive scan) and of all of them (total). Every thread of the block
/// calls it.
struct CountChunk {
  int i0, i1, first, total;
};
template <class T>
__device__ inline CountChunk block_count_chunk(const T* v, int n, int* scratch) {
  CountChunk c;
  const int per = (n + int(blockDim.x) - 1) / int(blockDim.x);
  c.i0 = min(n, int(threadIdx.x) * per);
  c.i1 = min(c.i0 + per, n);
  int local = 0;
  for (int i = c.i0; i < c.i1; ++i) local += int(v[i]);
  c.first = block_exclusive_scan(local, scratch, &c.total);
  return c;
}

/// out[i] = v[0] + ... + v[i - 1] for i = 0..n (out holds n + 1 entries): CSR offsets of counts,
/// or the number of set marks below each index. Tiles of 4 x blockDim.x entries, thread t holding
/// entries 4t.. 4t + 3 of a tile (neighbouring threads read and write neighbouring entries), one
/// block scan per tile and a running carry. This replaced each thread's one contiguous
/// n / blockDim.x chunk, read twice with serial strided loads (H200, ncu: the CSR scan 9.8 -> 7.7
/// us at 8192 rows, at most 103 -> 33 us at 32768; vslash's per-head scan over the keys,
/// vs_mark_kernel, 54-326 -> 36-125 us at 32K-128K). 16 entries per thread was slower for the
/// marks (vs_mark_kernel 34-120 -> 41-154 us: a warp's writes 64 bytes apart).
/// docs/results/gpu-attention.md, session 13 jobs B and D.
template <class T>
__device__ inline void block_exclusive_prefix(const T* v, int n, int* out, int* scratch) {
  constexpr int K = 4;
  const int span = int(blockDim.x) * K;
  int carry = 0;
  for (int base = 0; base < n; base += span) {
    const int i0 = base + int(threadIdx.x) * K;
    int x[K], local = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      x[k] = i0 + k < n ? int(v[i0 + k]) : 0;
      local += x[k];
    }
    int total = 0;
    int pos = carry + block_exclusive_scan(local, scratch, &total);
#pragma unroll
    for (int k = 0; k < K; ++k)
      if (i0 + k < n) {
        out[i0 + k] = pos;
        pos += x[k];
      }
    carry += total;
  }
  if (threadIdx.x == 0) out[n] = carry;
}

/// The indices i < n with mark[i] set, ascending, into out; returns their number. For short
/// ranges (a pattern row's key blocks: each thread's contiguous chunk of about one to four marks,
/// one block scan); block_compact_tiled for long ones.
__device__ inline int block_compact(const unsigned char* mark, int n, int* out, int* scratch) {
  const CountChunk c = block_count_chunk(mark, n, scratch);
  int pos = c.first;
  for (int i = c.i0; i < c.i1; ++i)
    if (mark[i]) out[pos++] = i;
  return c.total;
}

/// The indices i in [begin, end) with mark[i] set, ascending, into out[0..); returns their number.
/// For long ranges (a head's keys): thread t tests marks 16 t.. 16 t + 15 of each tile of
/// 16 x blockDim.x, one block scan per tile and a running carry, so neighbouring threads read
/// neighbouring marks. (block_compact's one contiguous chunk per thread, read twice with serial
/// strided loads, took up to 220-261 us for 128K keys in sample's / vslash's columns_kernel on
/// the H200, 10-87 us this way; on a pattern row of <= 1024 key blocks, vs_rows_kernel, the
/// chunks stay faster: 29.6 / 216 us at 32K / 128K against 35.0 / 257 us tiled; session 13 jobs
/// C-E.)
__device__ inline int block_compact_tiled(const unsigned char* mark, int begin, int end, int* out,
                                          int* scratch) {
  constexpr int K = 16;
  const int span = int(blockDim.x) * K;
  int carry = 0;
  for (int base = begin; base < end; base += span) {
    const int i0 = base + int(threadIdx.x) * K;
    bool m[K];
    int local = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      m[k] = i0 + k < end && mark[i0 + k] != 0;
      local += m[k] ? 1 : 0;
    }
    int total = 0;
    int pos = carry + block_exclusive_scan(local, scratch, &total);
#pragma unroll
    for (int k = 0; k < K; ++k)
      if (m[k]) out[pos++] = i0 + k;
    carry += total;
  }
  return carry;
}

/// Key blocks query block qb sees: up to its last row's position when causal (bottom-right
/// aligned by q_offset), every block otherwise. Also on the host (flexprefill's item counts).
__host__ __device__ inline int visible_blocks(const Geometry& g, int qb) {
  if (!g.causal) return g.nkb;
  const int q_end = (qb + 1) * g.block_q < g.seq_q ? (qb + 1) * g.block_q : g.seq_q;
  const int last = q_end - 1 + g.q_offset + 1;
  const int vk = last < 0 ? 0 : last < g.seq_k ? last : g.seq_k;
  return (vk + g.block_k - 1) / g.block_k;
}

/// The diagonal blocks of query block qb other than the sink block, first..last (estimation.cpp's
/// forced_blocks without block 0), clipped to its nvis visible blocks: empty when last < first.
struct BlockRange {
  int first, last;
};
__device__ inline BlockRange diagonal_blocks(const Geometry& g, int qb, int nvis) {
  const int q0 = qb * g.block_q, q1 = min(q0 + g.block_q, g.seq_q) - 1;
  const int first = min(max(q0 + g.q_offset, 0), g.seq_k - 1) / g.block_k;
  const int last = min(max(q1 + g.q_offset, 0), g.seq_k - 1) / g.block_k;
  return {max(first, 1), min(last, nvis - 1)};
}

/// Marks the sink block and the diagonal blocks of query block qb (estimation.cpp's
/// forced_blocks), clipped to its nvis visible key blocks; call from one thread.
__device__ inline void mark_forced(const Geometry& g, int qb, int nvis, unsigned char* mark) {
  if (nvis <= 0) return;
  mark[0] = 1;
  const BlockRange d = diagonal_blocks(g, qb, nvis);
  for (int kb = d.first; kb <= d.last; ++kb) mark[kb] = 1;
}

}  // namespace sieve::attention::cuda::est
