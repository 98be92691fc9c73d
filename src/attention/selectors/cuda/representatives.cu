// Device kernels that build the query and key representatives of the GPU selectors: RRAttention's
// stride representatives (mean + variance of the non-outlier keys, the outliers themselves, or the
// round-robin sampled key), round-robin sampled queries with the exact log-sum-exp of their own
// stride, and UniSparse's average pooling. Mirrors selectors/rr_attention.cpp and unisparse.cpp
// operation by operation (f32, same formulas); sums over the head dimension are tree reductions
// here, sequential there, so values agree to f32 rounding (see docs/cuda.md).
#include "estimation_gpu.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace sieve::attention::cuda::est {

namespace {

constexpr int kMaxStride = 64;  // keys of one stride staged in shared memory (f32, D <= 128)

__device__ __forceinline__ float load(const void* p, bool bf16, int64_t i) {
  return bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i])
              : __half2float(static_cast<const __half*>(p)[i]);
}

// Eight 16-bit values of one 16-byte load as f32.
__device__ __forceinline__ void unpack8(const uint4& v, bool bf16, float (&out)[8]) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const uint16_t lo = uint16_t(w[e] & 0xffffu), hi = uint16_t(w[e] >> 16);
    if (bf16) {
      out[2 * e] = __bfloat162float(__ushort_as_bfloat16(lo));
      out[2 * e + 1] = __bfloat162float(__ushort_as_bfloat16(hi));
    } else {
      out[2 * e] = __half2float(__ushort_as_half(lo));
      out[2 * e + 1] = __half2float(__ushort_as_half(hi));
    }
  }
}

__device__ __forceinline__ uint4 load16(const void* p, int64_t i) {
  return *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(p) + i);
}

// Elements [i, i + 8) as f32; vec: one 16-byte load (16-byte aligned row start, i % 8 == 0).
__device__ __forceinline__ void load8(const void* p, bool bf16, bool vec, int64_t i,
                                      float (&out)[8]) {
  if (vec) {
    unpack8(load16(p, i), bf16, out);
  } else {
#pragma unroll
    for (int e = 0; e < 8; ++e) out[e] = load(p, bf16, i + e);
  }
}

// A representative value: f32 into dst32[i], or bf16 (round to nearest even) into dst16[i].
__device__ __forceinline__ void store_rep(float* dst32, __nv_bfloat16* dst16, int64_t i, float v) {
  if (dst16)
    dst16[i] = __float2bfloat16_rn(v);
  else
    dst32[i] = v;
}

// The round-robin sampled query of query head h in query stride t of Sq rows (rr_attention.cpp's
// rule; the stride's last row when it is partial): its row, position and visible key strides (of
// nks strides of S keys). Shared by rr_queries_kernel and fused_queries.
struct SampledQuery {
  int row, pos, vis;
};
__device__ __forceinline__ SampledQuery sampled_query(const Geometry& geo, bool rotate, int Sq,
                                                      int S, int h, int t, int nks) {
  SampledQuery r;
  const int off = rotate ? (h + t) % Sq : h % Sq;
  r.row = min(t * Sq + off, min(t * Sq + Sq, geo.seq_q) - 1);
  r.pos = r.row + geo.q_offset;
  r.vis = geo.causal ? min(max(r.pos / S + 1, 0), nks) : nks;
  return r;
}

// Log-sum-exp of a query's scores held by an aligned segment of `width` lanes (a power of two
// <= 32), at most two per lane (-inf: none): the max and the f64 sum of exp(score - max) by xor
// butterflies within the segment. Lanes of other segments hold other queries. With one score per
// lane (b = -inf) over a segment of S lanes it adds exactly what the whole warp adds when every
// lane outside the segment holds -inf (x + 0 = x), so rr_queries_kernel and fused_queries agree
// bit for bit.
__device__ __forceinline__ float segment_lse(float a, float b, int width) {
  float mx = fmaxf(a, b);
  for (int o = width / 2; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  double sum = 0;
  if (a != -INFINITY) sum += exp(double(a - mx));
  if (b != -INFINITY) sum += exp(double(b - mx));
  for (int o = width / 2; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  return mx + float(log(sum));
}

// Key rows staged in shared memory are padded by 8 elements (16 bytes), so that the 16-byte
// chunks of S different rows read by S lanes at once (fused_queries' dot products) fall in
// different banks.
constexpr int kKeyPad = 8;

// Query heads a fused warp stages at once: two pair rounds of 32 lanes (64 / S queries).
__host__ __device__ constexpr int fused_chunk(int S) { return 64 / S; }

__device__ __forceinline__ void store8(float* dst, __nv_bfloat16* dst16, int64_t at,
                                       const float (&v)[8]);

// rr_queries_kernel's outputs for the sampled query of every query head of KV head z's group
// whose own stride is key stride u (RRQueryFusion; with a query stride of several key strides,
// the heads whose sampled row falls in another key stride are left to that stride's warp), from
// the stride's keys that this warp staged
// (ks, rows of P elements). The same operations in the same order as rr_queries_kernel, so the
// same values bit for bit:
// - the chunk's query rows go to s_q [QC][D + 4] f32 (QC = fused_chunk(S)) and, as bf16 or f32,
//   to qrep with the moment half 0.5 * scale * q^2;
// - lane l scores pairs p = l + 32 it (it < 2): query p / S of the chunk against key p % S, each
//   dot product sequential over the dimensions, so the S lanes of one query form an aligned
//   segment for segment_lse.
// (Inlined into rr_key_reps_kernel, so that its compile-time S and D reach the divisions.)
__device__ __forceinline__ void fused_queries(const RRQueryFusion& fq, bool bf16, bool vec,
                                              const RRParams& rr, int S, int D, int z, int u,
                                              const uint16_t* ks, int P, float* s_q) {
  const int lane = threadIdx.x, W = rr.W, QC = fused_chunk(S), QP = D + 4;
  const Geometry& geo = fq.geo;
  const int Sq = rr.Sq, nqs = (geo.seq_q + Sq - 1) / Sq, nks = (geo.seq_k + S - 1) / S;
  const int first = u * S - geo.q_offset;  // the first query row whose own key stride is u
  if (first < 0) return;                   // the whole warp
  const int t = first / Sq;                // its query stride (q_offset % Sq == 0)
  if (t >= nqs) return;
  auto* qrep16 = static_cast<__nv_bfloat16*>(fq.qrep16);
  // query head i of the chunk at i0: its index in the batch, row, position and visible strides
  struct Row : SampledQuery {
    int hl;
    bool mine;  // the sampled row's own key stride is u
  };
  const auto row_of = [&](int i) {
    Row r;
    r.hl = z * fq.group + i;
    static_cast<SampledQuery&>(r) = sampled_query(geo, rr.rotate, Sq, S, fq.h + r.hl, t, nks);
    r.mine = r.pos / S == u;
    return r;
  };
  const int per_row = D / 8;
  for (int i0 = 0; i0 < fq.group; i0 += QC) {
    const int nc = min(QC, fq.group - i0);
    for (int idx = lane; idx < nc * per_row; idx += 32) {
      const int i = idx / per_row, c = (idx % per_row) * 8;
      const Row r = row_of(i0 + i);
      if (!r.mine) continue;
      const int64_t qb = int64_t(fq.h + r.hl) * fq.q_head_stride + int64_t(r.row) * fq.q_row_stride;
      float v[8];
      load8(fq.q, bf16, vec, qb + c, v);
#pragma unroll
      for (int e = 0; e < 8; ++e) s_q[i * QP + c + e] = v[e];
      const int64_t at = (int64_t(r.hl) * nqs + t) * W;
      store8(fq.qrep, qrep16, at + c, v);
      if (rr.moments) {  // (fused: key means, the moment half exists)
        float m[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) m[e] = 0.5f * fq.scale * v[e] * v[e];
        store8(fq.qrep, qrep16, at + D + c, m);
      }
      if (c == 0) fq.visible[int64_t(r.hl) * nqs + t] = r.vis;
    }
    __syncwarp();
    if (geo.causal) {
#pragma unroll
      for (int it = 0; it < 2; ++it) {
        const int p = lane + 32 * it, i = p / S, j = p % S;
        float sc = -INFINITY;
        Row r{};
        if (i < nc) r = row_of(i0 + i);
        if (i < nc && r.mine) {
          // own stride: key stride vis - 1 = u, keys [u S, pos] (rr_queries_fusable)
          const int cnt = min(min(r.pos + 1, geo.seq_k) - (r.vis - 1) * S, kMaxStride);
          if (r.vis > 0 && j < cnt) {
            const uint16_t* kr = ks + j * P;
            const float* qr = s_q + i * QP;
            float acc = 0.f;
            for (int c = 0; c < D; c += 8) {
              float kv[8];
              unpack8(*reinterpret_cast<const uint4*>(kr + c), bf16, kv);
              // the query's 8 values by two 16-byte loads (rows of D + 4 floats stay aligned)
              const float4 qa = *reinterpret_cast<const float4*>(qr + c);
              const float4 qb = *reinterpret_cast<const float4*>(qr + c + 4);
              const float qv[8] = {qa.x, qa.y, qa.z, qa.w, qb.x, qb.y, qb.z, qb.w};
#pragma unroll
              for (int e = 0; e < 8; ++e) acc += qv[e] * kv[e];
            }
            sc = fq.scale * acc;
          }
        }
        const float lse = segment_lse(sc, -INFINITY, S);
        if (i < nc && r.mine && j == 0 && r.vis > 0) fq.own[int64_t(r.hl) * nqs + t] = lse;
      }
    }
    __syncwarp();
  }
}

// One warp per stride u of KV head `head` (+ blockIdx.y in a batch of KV heads), blockDim.y
// strides per CTA, each warp with its own S x (D + kKeyPad) slice of 16-bit keys in shared memory
// (loaded by 16-byte vectors); lane l owns dimensions l, l + 32, ... . No CTA barriers: a stride costs a few warp
// shuffles, not a CTA. The arithmetic per value is the CPU's (and the earlier one-CTA-per-stride
// kernel's) in the same order: the mean and the rest's sums sequential over the keys, each
// squared distance a per-lane sum over dimensions l, l + 32, ... then the warp butterfly.
// kS, kD: the stride and head dimension at compile time (0: rr.S and D_arg at run time); kType:
// the input type at compile time (1 bf16, 2 f16; 0: bf16_arg at run time). The default shapes
// have their instances: with runtime values every row / chunk index of the staging loop was an
// integer division and every widened key a select between two conversions, and the kernel was
// issue-bound (session 17, ncu).
template <int kS, int kD, int kType>
__global__ void rr_key_reps_kernel(const void* k, bool bf16_arg, bool vec, int64_t head_stride,
                                   int64_t row_stride, int D_arg, int seq_k, int head,
                                   int query_head, RRParams rr, float* krep, float* log_w,
                                   __nv_bfloat16* krep16, int units, RRQueryFusion fq, bool vec_q) {
  const int D = kD > 0 ? kD : D_arg;
  const bool bf16 = kType == 0 ? bf16_arg : kType == 1;
  // [blockDim.y][S][D + kKeyPad] 16-bit inputs, then (fq.q set) [blockDim.y][fused_chunk][D + 4]
  // f32 query rows
  extern __shared__ __align__(16) uint16_t keys_s[];
  const int lane = threadIdx.x, S = kS > 0 ? kS : rr.S, R = rr.reps, W = rr.W, P = D + kKeyPad;
  const int u = blockIdx.x * blockDim.y + threadIdx.y;
  if (u >= units) return;  // the whole warp
  const int r0 = u * S, r1 = min(r0 + S, seq_k), count = r1 - r0;
  const bool sm = rr.slot_major;
  {  // KV head z of a batch: one key set after another
    const int64_t z = blockIdx.y, n = int64_t(units) * R;
    head += int(z);
    if (krep16)
      krep16 += z * (sm ? int64_t(units) * (W + (R - 1) * D) : n * W);
    else
      krep += z * n * W;
    log_w += z * n;
  }
  // slot t of this stride: its first value and its log weight (StrideProblem::W2's layout)
  const auto rep_at = [&](int t) -> int64_t {
    if (!sm) return (int64_t(u) * R + t) * W;
    return t == 0 ? int64_t(u) * W : int64_t(units) * W + (int64_t(t - 1) * units + u) * D;
  };
  const auto logw_at = [&](int t) { return sm ? t * units + u : u * R + t; };
  const int64_t hbase = int64_t(head) * head_stride;
  if (!rr.mean_keys) {  // the key at the head's round-robin offset stands for the stride
    const int off = rr.rotate ? (query_head + u) % S : query_head % S;
    const int row = min(r0 + off, r1 - 1);
    for (int d = lane; d < D; d += 32)
      store_rep(krep, krep16, int64_t(u) * W + d,
                load(k, bf16, hbase + int64_t(row) * row_stride + d));
    if (lane == 0) log_w[u] = float(log(double(count)));
    return;
  }
  // Kept as the inputs' 16-bit values (half the shared memory of f32: more CTAs per SM) and
  // widened on every read, which is exact, so the arithmetic is that of f32 copies.
  uint16_t* ks = keys_s + threadIdx.y * S * P;
  const auto keys = [&](int j, int e) -> float {
    const uint16_t u = ks[j * P + e];
    return bf16 ? __uint_as_float(uint32_t(u) << 16) : __half2float(__ushort_as_half(u));
  };
  {  // the stride's keys into this warp's slice: 8 16-byte loads per lane in flight
    const int per_row = D / 8, chunks = count * per_row;
    constexpr int kBatch = 8;
    const auto* k16 = static_cast<const uint16_t*>(k);
    for (int i0 = lane; i0 < chunks; i0 += 32 * kBatch) {
      uint4 raw[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int i = i0 + 32 * b, j = i / per_row, c = (i % per_row) * 8;
        if (vec && i < chunks) raw[b] = load16(k, hbase + int64_t(r0 + j) * row_stride + c);
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        const int i = i0 + 32 * b, j = i / per_row, c = (i % per_row) * 8;
        if (i >= chunks) continue;
        if (vec) {
          *reinterpret_cast<uint4*>(ks + j * P + c) = raw[b];
        } else {
          const int64_t src = hbase + int64_t(r0 + j) * row_stride + c;
#pragma unroll
          for (int e = 0; e < 8; ++e) ks[j * P + c + e] = k16[src + e];
        }
      }
    }
    __syncwarp();
  }
  constexpr int kMaxDims = 4;  // D <= 128: dimensions lane + 32 i, i < D / 32
  // loops over the stride's keys: unrolled over kS keys (up to `count`) when kS is known
  constexpr int kJ = kS > 0 ? kS : kMaxStride, kUnrollJ = kS > 0 ? kS : 1;
  const int nd = D / 32;
  const int m = rr.outliers;
  const int outl = min(m, count);
  uint64_t is_out = 0;  // bit j: key j is an outlier
  if (outl > 0) {
    float mean[kMaxDims] = {};  // per dimension sequential over the keys
#pragma unroll kUnrollJ
    for (int j = 0; j < kJ; ++j) {
      if (j >= count) break;
#pragma unroll
      for (int i = 0; i < kMaxDims; ++i)
        if (i < nd) mean[i] += keys(j, lane + 32 * i);
    }
#pragma unroll
    for (int i = 0; i < kMaxDims; ++i)
      if (i < nd) mean[i] *= 1.0f / float(count);
    // squared distance to the mean of key j: lane j % 32 keeps it (d0: j < 32, d1: j >= 32);
    // distances are >= 0, -1 marks an absent key. Eight keys at a time: their per-lane sums,
    // then one transposing warp reduction of the eight (below).
    float d0 = -1.f, d1 = -1.f;
    constexpr int kKeys = 8;
#pragma unroll(kS > 0 ? (kS + kKeys - 1) / kKeys : 1)
    for (int j0 = 0; j0 < count; j0 += kKeys) {
      float acc[kKeys];
#pragma unroll
      for (int b = 0; b < kKeys; ++b) {
        acc[b] = 0.f;
        const int j = min(j0 + b, count - 1);
#pragma unroll
        for (int i = 0; i < kMaxDims; ++i)
          if (i < nd) {
            const float x = keys(j, lane + 32 * i) - mean[i];
            acc[b] += x * x;
          }
      }
      // The eight warp sums by a transposing reduction: at xor 16, 8 and 4 each lane keeps
      // half of its keys and adds its partner's values for them (one shuffle per kept key), so
      // that lane l ends with key (l >> 2) & 7 summed over lanes with l's low two bits; xor 2
      // and 1 finish it. Every addition is the one the eight full xor butterflies made (own +
      // partner at the same level; a + b == b + a), so the sums are theirs bit for bit, for 9
      // shuffles instead of 40. Then lane j0 + b fetches key b's sum from lane 4 b.
      const bool hi4 = (lane & 16) != 0, hi3 = (lane & 8) != 0, hi2 = (lane & 4) != 0;
      float t4[4], t2[2];
#pragma unroll
      for (int b = 0; b < 4; ++b)
        t4[b] = (hi4 ? acc[b + 4] : acc[b]) +
                __shfl_xor_sync(0xffffffffu, hi4 ? acc[b] : acc[b + 4], 16);
#pragma unroll
      for (int b = 0; b < 2; ++b)
        t2[b] = (hi3 ? t4[b + 2] : t4[b]) +
                __shfl_xor_sync(0xffffffffu, hi3 ? t4[b] : t4[b + 2], 8);
      float t1 = (hi2 ? t2[1] : t2[0]) + __shfl_xor_sync(0xffffffffu, hi2 ? t2[0] : t2[1], 4);
      t1 += __shfl_xor_sync(0xffffffffu, t1, 2);
      t1 += __shfl_xor_sync(0xffffffffu, t1, 1);
      const int b = (lane - j0) & (kKeys - 1);
      const float v = __shfl_sync(0xffffffffu, t1, 4 * b);
      if (lane >= (j0 & 31) && lane < (j0 & 31) + kKeys && j0 + b < count)
        (j0 < 32 ? d0 : d1) = v;
    }
    // the outl farthest keys, ties: the earlier key. Each key's rank in that order (farther
    // first, then lower index) from all distances broadcast once; pick t is the key of rank t,
    // as repeated arg-max picks would give. Every lane writes its dimensions of pick t to slot
    // 1 + t.
    int rank0 = 0, rank1 = 0;  // ranks of keys lane and lane + 32
    const bool present0 = lane < count, present1 = lane + 32 < count;
    if (outl == 1) {
      // One outlier (the usual setting): the rank-0 key by an arg-max butterfly over (distance,
      // key) in the same order, farther first, then the lower key. Absent keys read -2 and NaN
      // distances -1, so the order is total and every lane ends with the same key: a present
      // one (the earliest, if every present distance is NaN).
      const auto val = [](bool present, float d) { return !present ? -2.f : d == d ? d : -1.f; };
      float bv = val(present0, d0);
      int bk = lane;
      if (val(present1, d1) > bv) bv = val(present1, d1), bk = lane + 32;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        const int ok = __shfl_xor_sync(0xffffffffu, bk, o);
        if (ov > bv || (ov == bv && ok < bk)) bv = ov, bk = ok;
      }
      rank0 = bk == lane ? 0 : 1;
      rank1 = bk == lane + 32 ? 0 : 1;
    } else {
#pragma unroll kUnrollJ
      for (int j = 0; j < kJ; ++j) {
        if (j >= count) break;
        const float dj = __shfl_sync(0xffffffffu, j < 32 ? d0 : d1, j & 31);
        rank0 += dj > d0 || (dj == d0 && j < lane);
        rank1 += dj > d1 || (dj == d1 && j < lane + 32);
      }
    }
    for (int t = 0; t < outl; ++t) {
      const uint32_t b0 = __ballot_sync(0xffffffffu, present0 && rank0 == t);
      const uint32_t b1 = __ballot_sync(0xffffffffu, present1 && rank1 == t);
      // (no key of rank t only with NaN distances: any present key, never out of range)
      const int bj = b0 != 0 ? __ffs(int(b0)) - 1 : b1 != 0 ? 32 + __ffs(int(b1)) - 1 : t;
      is_out |= uint64_t(1) << bj;
      const int64_t slot = rep_at(1 + t);
      for (int d = lane; d < D; d += 32) {
        store_rep(krep, krep16, slot + d, keys(bj, d));
        if (rr.moments && !sm) store_rep(krep, krep16, slot + D + d, 0.f);
      }
      if (lane == 0) log_w[logw_at(1 + t)] = 0.f;
    }
  }
  // unused outlier slots: zero with weight -inf
  for (int t = outl; t < m; ++t) {
    const int64_t slot = rep_at(1 + t);
    for (int d = lane; d < D; d += 32) {
      store_rep(krep, krep16, slot + d, 0.f);
      if (rr.moments && !sm) store_rep(krep, krep16, slot + D + d, 0.f);
    }
    if (lane == 0) log_w[logw_at(1 + t)] = -INFINITY;
  }
  // slot 0: mean and per-dimension variance of the remaining keys (scalar_var: their mean over
  // the dimensions in every column of the variance half)
  const int rest = count - outl;
  const float inv = rest > 0 ? 1.0f / float(rest) : 0.f;
  {  // dimensions lane + 32 i side by side (independent chains)
    float mu[kMaxDims] = {}, var[kMaxDims] = {};
    if (rest > 0) {
#pragma unroll kUnrollJ
      for (int j = 0; j < kJ; ++j) {
        if (j >= count) break;
        if ((is_out >> j) & 1) continue;
#pragma unroll
        for (int i = 0; i < kMaxDims; ++i)
          if (i < nd) {
            const float x = keys(j, lane + 32 * i);
            mu[i] += x;
            var[i] += x * x;
          }
      }
#pragma unroll
      for (int i = 0; i < kMaxDims; ++i) {
        mu[i] *= inv;
        var[i] = fmaxf(0.0f, var[i] * inv - mu[i] * mu[i]);
      }
      if (rr.scalar_var) {
        float vs = 0.f;
#pragma unroll
        for (int i = 0; i < kMaxDims; ++i)
          if (i < nd) vs += var[i];
        for (int o = 16; o > 0; o >>= 1) vs += __shfl_xor_sync(0xffffffffu, vs, o);
#pragma unroll
        for (int i = 0; i < kMaxDims; ++i) var[i] = vs / float(D);
      }
    }
#pragma unroll
    for (int i = 0; i < kMaxDims; ++i)
      if (i < nd) {
        const int d = lane + 32 * i;
        store_rep(krep, krep16, rep_at(0) + d, mu[i]);
        if (rr.moments) store_rep(krep, krep16, rep_at(0) + D + d, var[i]);
      }
  }
  if (lane == 0) log_w[logw_at(0)] = rest > 0 ? float(log(double(rest))) : -INFINITY;
  if (fq.q != nullptr) {
    float* s_q = reinterpret_cast<float*>(keys_s + blockDim.y * S * P) +
                 threadIdx.y * fused_chunk(S) * (D + 4);
    fused_queries(fq, bf16, vec_q, rr, S, D, int(blockIdx.y), u, ks, P, s_q);
  }
}

// One warp per sampled query t of query head h + blockIdx.y, kQueriesPerCta per CTA: the lanes
// write the representative (dims lane, lane + 32, ...), then each lane scores one key of the
// query's own stride (two for strides over 32; dot product in dimension order) and the warp
// reduces the log-sum-exp. Measured slower on the H200 (docs/results/gpu-attention.md, sessions
// 11-12): each lane's whole key row in registers (123 against 89 us at 32K), the stride's keys
// staged in shared memory per query head (134 us), and one warp per KV head scoring the staged
// stride for all its query heads (107 us).
constexpr int kQueriesPerCta = 4;
__global__ void rr_queries_kernel(const void* q, const void* k, bool bf16, bool vec,
                                  int64_t q_head_stride, int64_t q_row_stride,
                                  int64_t k_head_stride, int64_t k_row_stride, int D, Geometry geo,
                                  int h, int hk, int group, float scale, RRParams rr, int nqs,
                                  float* qrep, int* visible, float* own, __nv_bfloat16* qrep16) {
  __shared__ float s_q[kQueriesPerCta][128];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int t = blockIdx.x * kQueriesPerCta + warp, S = rr.S, Sq = rr.Sq, W = rr.W;
  if (t >= nqs) return;  // the whole warp
  const int nks = (geo.seq_k + S - 1) / S;
  {  // head z of a batch of query heads: [heads][nqs] outputs
    const int z = int(blockIdx.y);
    h += z;
    hk += z / group;
    if (qrep16)
      qrep16 += int64_t(z) * nqs * W;
    else
      qrep += int64_t(z) * nqs * W;
    visible += int64_t(z) * nqs;
    own += int64_t(z) * nqs;
  }
  const SampledQuery sq = sampled_query(geo, rr.rotate, Sq, S, h, t, nks);
  const int64_t qb = int64_t(h) * q_head_stride + int64_t(sq.row) * q_row_stride;
  for (int d = lane; d < D; d += 32) {
    const float qv = load(q, bf16, qb + d);
    s_q[warp][d] = qv;
    store_rep(qrep, qrep16, int64_t(t) * W + d, qv);
    if (rr.moments && rr.mean_keys)
      store_rep(qrep, qrep16, int64_t(t) * W + D + d, 0.5f * scale * qv * qv);
  }
  __syncwarp();
  const int pos = sq.pos, vis = sq.vis;
  if (lane == 0) visible[t] = vis;
  if (!geo.causal || vis <= 0) return;
  // the query's own stride: exact log-sum-exp over its visible keys (at most S <= 64)
  const int k0 = (vis - 1) * S, k1 = min(pos + 1, geo.seq_k);
  const int cnt = min(k1 - k0, kMaxStride);
  const int64_t kb = int64_t(hk) * k_head_stride;
  float sc[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int jj = 0; jj < 2; ++jj) {
    const int j = lane + 32 * jj;
    if (j >= cnt) continue;
    const int64_t kr = kb + int64_t(k0 + j) * k_row_stride;
    float acc = 0.f;
    for (int c = 0; c < D; c += 8) {
      float v[8];
      load8(k, bf16, vec, kr + c, v);
#pragma unroll
      for (int e = 0; e < 8; ++e) acc += s_q[warp][c + e] * v[e];
    }
    sc[jj] = scale * acc;
  }
  const float lse = segment_lse(sc[0], sc[1], 32);
  if (lane == 0) own[t] = lse;
}

// Eight values at dst[at..] as f32, or as bf16 (round to nearest even, one 16-byte store) into
// dst16 when it is non-null.
__device__ __forceinline__ void store8(float* dst, __nv_bfloat16* dst16, int64_t at,
                                       const float (&v)[8]) {
  if (dst16) {
    uint32_t w[4];
#pragma unroll
    for (int e = 0; e < 4; ++e)
      w[e] = uint32_t(__bfloat16_as_ushort(__float2bfloat16_rn(v[2 * e]))) |
             (uint32_t(__bfloat16_as_ushort(__float2bfloat16_rn(v[2 * e + 1]))) << 16);
    *reinterpret_cast<uint4*>(dst16 + at) = make_uint4(w[0], w[1], w[2], w[3]);
  } else {
#pragma unroll
    for (int e = 0; e < 8; ++e) dst[at + e] = v[e];
  }
}

// Output of one pooled group of n rows starting at `first`: the mean from the row sums in acc
// (which it resets), then the second half: scale/2 * mean^2 (queries), or the variance (kKeyVar:
// keys with moments, re-reading the rows): pool_kernel's operations after its row sums (that
// kernel keeps its own copy: inlining this twice there took it from 44 to 56 registers).
template <bool kKeyVar, int kVarUnroll = 4>  // rows of the variance loop unrolled
__device__ __forceinline__ void finish_group(const void* __restrict__ x, bool bf16, bool vec,
                                             int64_t first, int64_t row_stride, int n,
                                             float (&acc)[8],
                                             bool moments, float scale, int D, float* dst,
                                             __nv_bfloat16* dst16, int64_t out) {
  float mean[8];
  const float inv = 1.0f / float(n);
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    mean[e] = acc[e] * inv;
    acc[e] = 0.f;
  }
  store8(dst, dst16, out, mean);
  if (!moments) return;
  float second[8] = {};
  if constexpr (!kKeyVar) {
#pragma unroll
    for (int e = 0; e < 8; ++e) second[e] = 0.5f * scale * mean[e] * mean[e];
  } else {
#pragma unroll kVarUnroll
    for (int jj = 0; jj < n; ++jj) {
      float w[8];
      load8(x, bf16, vec, first + int64_t(jj) * row_stride, w);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float y = w[e] - mean[e];
        second[e] += y * y;
      }
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) second[e] = second[e] / float(n);
  }
  store8(dst, dst16, out + D, second);
}

// Pooled groups u = blockIdx.x * blockDim.y + threadIdx.y, D / 8 threads (x) each owning 8
// consecutive dimensions (16-byte loads and stores): several groups per CTA, so short groups
// (c = 4: 1 KiB of bf16 input) do not each pay a CTA. Sums run over the group's rows in order,
// per dimension, as the CPU's mean_rows.
__global__ void pool_kernel(const void* x, bool bf16, bool vec, int64_t head_stride,
                            int64_t row_stride, int D, int len, int head, int c, int groups,
                            bool is_key, bool moments, float scale, float* dst,
                            __nv_bfloat16* dst16) {
  const int u = blockIdx.x * blockDim.y + threadIdx.y, d0 = 8 * threadIdx.x;
  if (u >= groups) return;
  const int r0 = u * c, r1 = min(r0 + c, len), n = r1 - r0;
  const int W = moments ? 2 * D : D;
  head += int(blockIdx.y);  // head z of a batch: dst [heads][groups][W]
  const int64_t out = (int64_t(blockIdx.y) * groups + u) * W + d0;
  const int64_t base = int64_t(head) * head_stride + d0;
  float mean[8] = {};
#pragma unroll 4
  for (int j = r0; j < r1; ++j) {
    float v[8];
    load8(x, bf16, vec, base + int64_t(j) * row_stride, v);
#pragma unroll
    for (int e = 0; e < 8; ++e) mean[e] += v[e];
  }
  const float inv = n > 0 ? 1.0f / float(n) : 0.0f;
#pragma unroll
  for (int e = 0; e < 8; ++e) mean[e] *= inv;
  store8(dst, dst16, out, mean);
  if (!moments) return;
  float second[8] = {};
  if (!is_key) {
#pragma unroll
    for (int e = 0; e < 8; ++e) second[e] = 0.5f * scale * mean[e] * mean[e];
  } else {
#pragma unroll 4
    for (int j = r0; j < r1; ++j) {
      float v[8];
      load8(x, bf16, vec, base + int64_t(j) * row_stride, v);
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        const float y = v[e] - mean[e];
        second[e] += y * y;
      }
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) second[e] = second[e] / float(n);
  }
  store8(dst, dst16, out + D, second);
}

// One pass over the rows for every level's pooling where the group sizes nest (each c divides
// the largest, cmax): thread (x, y) owns 8 dimensions of one cmax-row group and keeps one f32 sum
// per output, each run over its own group's rows in row order and finished (mean, then the second
// half) at the group's last row, so every value is pool_kernel's bit for bit (same operations in
// the same order). Keys with moments re-read the group just finished for the variance (L1/L2
// hits, as pool_kernel's second loop). Four rows' 16-byte loads are issued before any is summed;
// __launch_bounds__ keeps the default levels without spills: queries <= 64 registers (4 CTAs
// of 256 threads per SM), keys with moments <= 80 (3 CTAs).
template <int NO, bool kKeyVar>  // kKeyVar: keys with moments (the variance pass)
__global__ void __launch_bounds__(256, NO <= 2 ? (kKeyVar ? 3 : 4) : (kKeyVar ? 2 : 3))
    pool_levels_kernel(const void* __restrict__ x, bool bf16, int64_t head_stride,
                       int64_t row_stride, int D, int len, int head, int cmax, int groups,
                       PoolOutputs po, bool moments, float scale) {
  const int u = blockIdx.x * blockDim.y + threadIdx.y, d0 = 8 * threadIdx.x;
  if (u >= groups) return;
  const int r0 = u * cmax, r1 = min(r0 + cmax, len);
  const int W = moments ? 2 * D : D;
  head += int(blockIdx.y);
  const int64_t base = int64_t(head) * head_stride + d0;
  float acc[NO][8];
  int rows[NO], gi[NO];  // rows summed into output o's open group, that group's index
#pragma unroll
  for (int o = 0; o < NO; ++o) {
    rows[o] = 0;
    gi[o] = r0 / po.c[o];  // r0 is a multiple of cmax, hence of every c: groups start with it
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[o][e] = 0.f;
  }
  constexpr int kBatch = 4;
  for (int j0 = r0; j0 < r1; j0 += kBatch) {
    uint4 raw[kBatch];
#pragma unroll
    for (int b = 0; b < kBatch; ++b)
      if (j0 + b < r1) raw[b] = load16(x, base + int64_t(j0 + b) * row_stride);
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int j = j0 + b;
      if (j < r1) {
        float v[8];
        unpack8(raw[b], bf16, v);
#pragma unroll
        for (int o = 0; o < NO; ++o) {
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[o][e] += v[e];
          const int n = ++rows[o];
          if (n == po.c[o] || j + 1 == r1) {  // output o's group ends at row j: rows [j + 1 - n, j]
            const int64_t out = (int64_t(blockIdx.y) * po.groups[o] + gi[o]) * W + d0;
            finish_group<kKeyVar, 2>(x, bf16, true, base + int64_t(j + 1 - n) * row_stride,
                                     row_stride, n, acc[o], moments, scale, D, po.dst[o],
                                     static_cast<__nv_bfloat16*>(po.dst16[o]), out);
            rows[o] = 0;
            ++gi[o];
          }
        }
      }
    }
  }
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

// Whether every row of a tensor starts 16-byte aligned (16-byte vector loads of 8 elements).
bool rows_aligned(const void* p, int64_t head_stride, int64_t row_stride) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0 && head_stride % 8 == 0 && row_stride % 8 == 0;
}

}  // namespace

bool rr_queries_fusable(const Geometry& geo, const RRParams& rr, int D) {
  const int S = rr.S, Sq = rr.Sq;
  if (!rr.mean_keys || (S != 8 && S != 16 && S != 32) || D > 128 || D % 32 != 0) return false;
  // query strides of whole key strides, starting on a query-stride boundary
  if (Sq < S || Sq % S != 0 || geo.q_offset < 0 || geo.q_offset % Sq != 0) return false;
  const int nks = (geo.seq_k + S - 1) / S;
  // every query row's own key stride (row + q_offset) / S exists; causal: each sampled query's
  // own keys [u S, pos] are keys of that stride
  return geo.seq_q > 0 && (geo.seq_q - 1 + geo.q_offset) / S < nks &&
         (!geo.causal || geo.seq_q + geo.q_offset <= geo.seq_k);
}

cudaError_t rr_key_reps(const void* k, bool bf16, int64_t head_stride, int64_t row_stride, int D,
                        int seq_k, int head, int query_head, const RRParams& rr, float* krep,
                        float* log_w, cudaStream_t stream, int heads, void* krep16,
                        const RRQueryFusion* fused) {
  if (rr.S > kMaxStride || D > 128 || D % 32 != 0 || heads < 1 || (heads > 1 && !rr.mean_keys) ||
      (rr.slot_major && krep16 == nullptr))
    return cudaErrorInvalidValue;
  if (fused != nullptr && (fused->q == nullptr || fused->group < 1 || fused->geo.seq_k != seq_k ||
                           !rr_queries_fusable(fused->geo, rr, D)))
    return cudaErrorInvalidValue;
  const int units = (seq_k + rr.S - 1) / rr.S;
  // strides (warps) per CTA: 16-bit keys, 4 KiB per stride at the default 16 and D = 128
  const int per_cta = rr.mean_keys ? std::clamp(64 / rr.S, 1, 8) : 4;
  size_t smem = rr.mean_keys ? size_t(per_cta) * rr.S * (D + kKeyPad) * sizeof(uint16_t) : 0;
  RRQueryFusion fq;
  bool vec_q = false;
  if (fused != nullptr) {
    fq = *fused;
    vec_q = rows_aligned(fq.q, fq.q_head_stride, fq.q_row_stride);
    smem += size_t(per_cta) * fused_chunk(rr.S) * (D + 4) * sizeof(float);
  }
  const auto kernel = [&] {
    if (rr.S == 16 && D == 128)
      return bf16 ? rr_key_reps_kernel<16, 128, 1> : rr_key_reps_kernel<16, 128, 2>;
    if (rr.S == 16 && D == 64)
      return bf16 ? rr_key_reps_kernel<16, 64, 1> : rr_key_reps_kernel<16, 64, 2>;
    return rr_key_reps_kernel<0, 0, 0>;
  }();
  if (smem > 48 * 1024) {  // stride 8 with fused queries: 50 KiB at D = 128
    const cudaError_t e =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (e != cudaSuccess) return e;
  }
  kernel<<<dim3(unsigned((units + per_cta - 1) / per_cta), unsigned(heads)),
           dim3(32u, unsigned(per_cta)), smem, stream>>>(
      k, bf16, rows_aligned(k, head_stride, row_stride), head_stride, row_stride, D, seq_k, head,
      query_head, rr, krep, log_w, static_cast<__nv_bfloat16*>(krep16), units, fq, vec_q);
  return cudaGetLastError();
}

cudaError_t rr_queries(const void* q, const void* k, bool bf16, int64_t q_head_stride,
                       int64_t q_row_stride, int64_t k_head_stride, int64_t k_row_stride, int D,
                       const Geometry& geo, int h, int hk, float scale, const RRParams& rr,
                       float* qrep, int* visible, float* own, cudaStream_t stream, int heads,
                       int group, void* qrep16) {
  if (D > 128 || D % 32 != 0 || heads < 1 || group < 1 || rr.S > kMaxStride || rr.Sq < 1)
    return cudaErrorInvalidValue;
  const int nqs = (geo.seq_q + rr.Sq - 1) / rr.Sq;
  const unsigned ctas = unsigned((nqs + kQueriesPerCta - 1) / kQueriesPerCta);
  rr_queries_kernel<<<dim3(ctas, unsigned(heads)), 32 * kQueriesPerCta, 0, stream>>>(
      q, k, bf16, rows_aligned(k, k_head_stride, k_row_stride), q_head_stride, q_row_stride,
      k_head_stride, k_row_stride, D, geo, h, hk, group, scale, rr, nqs, qrep, visible, own,
      static_cast<__nv_bfloat16*>(qrep16));
  return cudaGetLastError();
}

cudaError_t pool_rows(const void* t, bool bf16, int64_t head_stride, int64_t row_stride, int D,
                      int len, int head, int c, bool is_key, bool moments, float scale, float* dst,
                      cudaStream_t stream, int heads, void* dst16) {
  if (D % 8 != 0 || D > 256 || len <= 0 || heads < 1)
    return len <= 0 ? cudaSuccess : cudaErrorInvalidValue;
  const int groups = (len + c - 1) / c;
  const int lanes = D / 8, per_cta = 256 / lanes;  // groups per CTA
  // 16-byte stores need 16-byte aligned output rows (W * 2 bytes, W a multiple of 8)
  const bool vec = rows_aligned(t, head_stride, row_stride);
  if (dst16 != nullptr && reinterpret_cast<uintptr_t>(dst16) % 16 != 0) return cudaErrorInvalidValue;
  pool_kernel<<<dim3(unsigned((groups + per_cta - 1) / per_cta), unsigned(heads)),
                dim3(unsigned(lanes), unsigned(per_cta)), 0, stream>>>(
      t, bf16, vec, head_stride, row_stride, D, len, head, c, groups, is_key, moments, scale, dst,
      static_cast<__nv_bfloat16*>(dst16));
  return cudaGetLastError();
}

cudaError_t pool_levels(const void* t, bool bf16, int64_t head_stride, int64_t row_stride, int D,
                        int len, int head, PoolOutputs po, bool is_key, bool moments, float scale,
                        cudaStream_t stream, int heads) {
  if (len <= 0) return cudaSuccess;
  if (po.n < 1 || po.n > PoolOutputs::kMax || D % 8 != 0 || D > 256 || heads < 1 ||
      !rows_aligned(t, head_stride, row_stride))
    return cudaErrorNotSupported;
  int cmax = 0;
  for (int o = 0; o < po.n; ++o) {
    if (po.c[o] < 1) return cudaErrorNotSupported;
    cmax = std::max(cmax, po.c[o]);
  }
  for (int o = 0; o < po.n; ++o) {
    if (cmax % po.c[o] != 0) return cudaErrorNotSupported;  // the levels do not nest
    if ((po.dst16[o] == nullptr) == (po.dst[o] == nullptr)) return cudaErrorInvalidValue;
    if (reinterpret_cast<uintptr_t>(po.dst16[o]) % 16 != 0) return cudaErrorInvalidValue;
    po.groups[o] = (len + po.c[o] - 1) / po.c[o];
  }
  const int groups = (len + cmax - 1) / cmax;
  const int lanes = D / 8, per_cta = 256 / lanes;
  const dim3 grid{unsigned((groups + per_cta - 1) / per_cta), unsigned(heads)};
  const dim3 block{unsigned(lanes), unsigned(per_cta)};
  const auto launch = [&](auto kernel) {
    kernel<<<grid, block, 0, stream>>>(t, bf16, head_stride, row_stride, D, len, head, cmax,
                                       groups, po, moments, scale);
  };
  const bool var = is_key && moments;
  switch (po.n) {
    case 1: launch(var ? pool_levels_kernel<1, true> : pool_levels_kernel<1, false>); break;
    case 2: launch(var ? pool_levels_kernel<2, true> : pool_levels_kernel<2, false>); break;
    case 3: launch(var ? pool_levels_kernel<3, true> : pool_levels_kernel<3, false>); break;
    default: launch(var ? pool_levels_kernel<4, true> : pool_levels_kernel<4, false>); break;
  }
  return cudaGetLastError();
}

cudaError_t pooled_visible(const Geometry& geo, int nqc, int cq, int ck, int nkc, int* visible,
                           cudaStream_t stream) {
  if (nqc <= 0) return cudaSuccess;
  pooled_visible_kernel<<<(nqc + 255) / 256, 256, 0, stream>>>(geo, nqc, cq, ck, nkc, visible);
  return cudaGetLastError();
}

}  // namespace sieve::attention::cuda::est
