// Device kernels of the SampleAttention and vertical-slash ports (peers_gpu.h): chunked row
// sampling, the exact softmax of listed query rows on tensor cores reduced to column masses
// (sample) or to column and diagonal sums (vslash's probe), sample's cumulative column selection
// with the dense fallback and vslash's top-k (CUB segmented sorts per head). Mirrors
// selectors/sample_attention.cpp and vertical_slash.cpp step by step; docs/cuda.md lists the
// differences.
#include "peers_gpu.h"

#include "block_reduce.cuh"
#include "sieve/attention/cuda/ptx.cuh"

#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>

namespace sieve::attention::cuda::est {

namespace {

constexpr int kRows = 128, kKeys = 64, kThreads = 256;  // 8 warps x 16 rows, 64-key tiles

// ---- row sampling
// ---------------------------------------------------------------------------------

// Chunk c covers rows [end(c) - chunk, end(c)); the part not already in chunk c - 1 starts at
// max(end(c) - chunk, end(c - 1)) (ends are non-decreasing), so the union is the CPU's merged list.
__host__ __device__ inline int64_t chunk_end(int64_t c, int64_t seq_q, int64_t chunk,
                                             int64_t num_chunks) {
  const int64_t e = (c + 1) * seq_q / num_chunks;
  return e > chunk ? e : chunk;
}
__host__ __device__ inline int64_t chunk_begin(int64_t c, int64_t seq_q, int64_t chunk,
                                               int64_t num_chunks) {
  const int64_t b = chunk_end(c, seq_q, chunk, num_chunks) - chunk;
  if (c == 0) return b;
  const int64_t prev = chunk_end(c - 1, seq_q, chunk, num_chunks);
  return b > prev ? b : prev;
}

__global__ void sampled_rows_kernel(int seq_q, int chunk, int num_chunks, int* rows) {
  __shared__ int scratch[32];
  const int per = (num_chunks + int(blockDim.x) - 1) / int(blockDim.x);
  const int c0 = int(threadIdx.x) * per, c1 = min(c0 + per, num_chunks);
  int local = 0;
  for (int c = c0; c < c1; ++c)
    local += int(chunk_end(c, seq_q, chunk, num_chunks) - chunk_begin(c, seq_q, chunk, num_chunks));
  int total;
  int pos = block_exclusive_scan(local, scratch, &total);
  for (int c = c0; c < c1; ++c)
    for (int64_t r = chunk_begin(c, seq_q, chunk, num_chunks);
         r < chunk_end(c, seq_q, chunk, num_chunks); ++r)
      rows[pos++] = int(r);
}

// ---- stage 1: sampled rows x keys on tensor cores
// ------------------------------------------------

// What query row i sees and what counts as covered for it (sample_attention.cpp's take()):
// keys [0, v); covered: the sink block [0, block_k), its query block's diagonal blocks
// [lo_f, hi_f) (forced_blocks without block 0) and the band [lo_b, hi_b).
struct RowInfo {
  int v = 0, lo_f = 0, hi_f = 0, lo_b = 0, hi_b = 0;
};
__device__ RowInfo row_info(const Geometry& g, int i, int band) {
  RowInfo r;
  const int p = i + g.q_offset;
  r.v = g.causal ? min(max(p + 1, 0), g.seq_k) : g.seq_k;
  const int qb = i / g.block_q;
  const int q0 = qb * g.block_q, q1 = min(q0 + g.block_q, g.seq_q) - 1;
  const int vk = g.causal ? min(max(q1 + g.q_offset + 1, 0), g.seq_k) : g.seq_k;
  const int nvis = (vk + g.block_k - 1) / g.block_k;
  if (nvis > 0) {
    const int first = min(max(q0 + g.q_offset, 0), g.seq_k - 1) / g.block_k;
    const int last = min(max(q1 + g.q_offset, 0), g.seq_k - 1) / g.block_k;
    const int a = max(first, 1), b = min(last, nvis - 1);
    if (b >= a) {
      r.lo_f = a * g.block_k;
      r.hi_f = (b + 1) * g.block_k;
    }
  }
  if (band > 0) {
    r.lo_b = p - band + 1;
    r.hi_b = p + 1;
  }
  return r;
}

// Key tiles per split (grid z) of a row tile: enough CTAs to fill the GPU (~4 per SM) also when
// few rows are listed (vslash's probe: 64 rows per head), at least 8 tiles per split.
int tiles_per_split(int n_rows, int heads, int seq_k) {
  const int row_tiles = (n_rows + kRows - 1) / kRows, tiles = (seq_k + kKeys - 1) / kKeys;
  const int want = std::max(1, (4 * 132 + row_tiles * heads - 1) / std::max(1, row_tiles * heads));
  const int per = std::max(8, (tiles + want - 1) / want);
  return std::min(per, std::max(tiles, 1));
}

enum Mode : int { kStats = 0, kSampleMass = 1, kProbeMass = 2 };

// Sums of cs[n][c] (column n * 8 + 2 * tq + c of an m16n8 accumulator layout) over the 8 lanes of
// equal tq, written to dst [64]: a butterfly that halves the values held at each of the three
// levels (14 shuffles instead of 48); lane (gr, tq) ends with columns n * 8 + 2 * tq + {0, 1} of
// n = 4 * bit0(gr) + 2 * bit1(gr) + bit2(gr).
__device__ __forceinline__ void warp_column_sums(const float (&cs)[8][2], float* dst, int lane) {
  float v[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) v[i] = cs[i >> 1][i & 1];
  const bool b0 = (lane >> 2) & 1, b1 = (lane >> 3) & 1, b2 = (lane >> 4) & 1;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const float send = b0 ? v[i] : v[i + 8];
    const float keep = b0 ? v[i + 8] : v[i];
    v[i] = keep + __shfl_xor_sync(0xffffffffu, send, 4);
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float send = b1 ? v[i] : v[i + 4];
    const float keep = b1 ? v[i + 4] : v[i];
    v[i] = keep + __shfl_xor_sync(0xffffffffu, send, 8);
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const float send = b2 ? v[i] : v[i + 2];
    const float keep = b2 ? v[i + 2] : v[i];
    v[i] = keep + __shfl_xor_sync(0xffffffffu, send, 16);
  }
  const int n = (b0 ? 4 : 0) + (b1 ? 2 : 0) + (b2 ? 1 : 0), tq = lane & 3;
  dst[n * 8 + 2 * tq] = v[0];
  dst[n * 8 + 2 * tq + 1] = v[1];
}

// One CTA = 128 listed rows of query head blockIdx.y against the keys of split blockIdx.z that
// any of them sees, 64 keys per step (cp.async double buffer, XOR-swizzled rows: 16-byte chunk c
// of row r at c ^ (r & 7)).
// Scores are kept in log2 units (scale * log2 e folded into one multiply) so that every
// probability is one ex2.approx (~2 ulp), and tiles that lie wholly inside the row's visible keys
// and wholly inside or outside its covered ranges skip the per-key tests.
//  - kStats: per (row, split) the max and sum of 2^(s - max) (online) into part_m / part_l;
//  - kSampleMass: the probabilities (row max and 1 / sum from row_max / row_inv), split into the
//    covered mass (per head) and column mass (f64 atomics);
//  - kProbeMass: every probability to its column and to its diagonal offset pos(i) - j
//    (probe_last_rows; the listed rows are consecutive, so a tile's offsets span < 192 values).
template <class T, int D, int kMode>
__global__ void __launch_bounds__(kThreads)
    row_softmax_kernel(HeadInputs in, Geometry g, RowProblem pb, int split_tiles,
                       const float* row_max, const float* row_inv, float* part_m, double* part_l) {
  constexpr int kRowBytes = 2 * D, kChunks = D / 8, kSteps = D / 16, kSlash = kRows + 2 * kKeys;
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ float s_col[kThreads / 32][kKeys];
  __shared__ float s_slash[kSlash];
  __shared__ int s_v[kRows];
  __shared__ double s_red[32];
  const uint32_t s_q = ptx::smem_addr(smem), s_k = s_q + uint32_t(kRows * kRowBytes);
  const int h = int(blockIdx.y), hk = h / in.group, split = int(blockIdx.z),
            splits = int(gridDim.z);
  const int t0 = (int(gridDim.x) - 1 - int(blockIdx.x)) * kRows;  // rows seeing the most keys first
  const int n_rows = pb.n_rows;
  const int* rows = pb.rows;
  const T* q = static_cast<const T*>(in.q) + int64_t(h) * in.q_head_stride;
  const T* k = static_cast<const T*>(in.k) + int64_t(hk) * in.k_head_stride;
  for (int i = int(threadIdx.x); i < kRows * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks;
    const bool ok = t0 + r < n_rows;
    const T* src = ok ? q + int64_t(rows[t0 + r]) * in.q_row_stride + c * 8 : q;
    ptx::cp_async_16(s_q + uint32_t((r * kChunks + (c ^ (r & 7))) * 16), src, ok);
  }
  if (threadIdx.x < kRows) {
    const int t = t0 + int(threadIdx.x);
    s_v[threadIdx.x] = t < n_rows ? row_info(g, rows[t], pb.band).v : 0;
  }
  __syncthreads();
  int maxv = 0, nrows = 0;
  for (int i = 0; i < kRows; ++i) {
    maxv = max(maxv, s_v[i]);
    nrows += s_v[i] > 0 ? 1 : 0;
  }
  const int tile0 = split * split_tiles;
  const int ntiles = max(0, min((maxv + kKeys - 1) / kKeys, tile0 + split_tiles) - tile0);
  const auto load_keys = [&](int kt, uint32_t dst) {
    for (int i = int(threadIdx.x); i < kKeys * kChunks; i += kThreads) {
      const int r = i / kChunks, c = i % kChunks, j = kt * kKeys + r;
      const bool ok = j < g.seq_k;
      const T* src = ok ? k + int64_t(j) * in.k_row_stride + c * 8 : k;
      ptx::cp_async_16(dst + uint32_t((r * kChunks + (c ^ (r & 7))) * 16), src, ok);
    }
  };
  if (ntiles > 0) load_keys(tile0, s_k);
  ptx::cp_async_commit();
  ptx::cp_async_wait<0>();
  __syncthreads();

  const int lane = int(threadIdx.x) & 31, warp = int(threadIdx.x) >> 5;
  const int gr = lane >> 2, tq = lane & 3;
  // this thread's rows: warp * 16 + gr and + 8
  int trow[2], tpos[2];
  RowInfo ri[2];
  float m[2], inv[2];
  double l[2] = {0.0, 0.0}, cov[2] = {0.0, 0.0};
  for (int rr = 0; rr < 2; ++rr) {
    const int local = warp * 16 + gr + rr * 8;
    trow[rr] = t0 + local;
    const bool ok = trow[rr] < n_rows;
    ri[rr] = ok ? row_info(g, rows[trow[rr]], pb.band) : RowInfo{};
    tpos[rr] = ok ? rows[trow[rr]] + g.q_offset : 0;
    m[rr] = -INFINITY;
    inv[rr] = 0.f;
    if (kMode != kStats && ok) {
      m[rr] = row_max[int64_t(h) * n_rows + trow[rr]];
      inv[rr] = row_inv[int64_t(h) * n_rows + trow[rr]];
    }
  }
  // smallest listed position of the tile (probe mode: offsets are relative to it)
  const int pos_lo = rows[min(t0, n_rows - 1)] + g.q_offset;
  // A fragments of the warp's 16 rows for every k step, kept in registers.
  uint32_t a[kSteps][4];
  {
    const int ar = lane & 15;
    const uint32_t a_off = uint32_t((warp * 16 + ar) * kRowBytes + 16 * ((lane >> 4) ^ (ar & 7)));
#pragma unroll
    for (int kk = 0; kk < kSteps; ++kk) ptx::ldmatrix_x4(s_q + (a_off ^ uint32_t(32 * kk)), a[kk]);
  }
  const int br = (lane & 7) + ((lane >> 4) << 3);
  const uint32_t b_off = uint32_t(br * kRowBytes + 16 * (((lane >> 3) & 1) ^ (br & 7)));
  // scores in log2 units (scale * log2 e folded in): one ex2 per probability
  const float scale2 = in.scale * 1.4426950408889634f;
  double* hcol = pb.col + int64_t(h) * g.seq_k;

  for (int i = 0; i < ntiles; ++i) {
    if (i + 1 < ntiles) load_keys(tile0 + i + 1, s_k + uint32_t(((i + 1) & 1) * kKeys * kRowBytes));
    ptx::cp_async_commit();
    ptx::cp_async_wait<1>();
    if (kMode == kProbeMass)
      for (int x = int(threadIdx.x); x < kSlash; x += kThreads) s_slash[x] = 0.f;
    __syncthreads();
    const uint32_t sb = s_k + uint32_t((i & 1) * kKeys * kRowBytes);
    float acc[8][4] = {};
#pragma unroll
    for (int kk = 0; kk < kSteps; ++kk) {
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        uint32_t b[4];
        ptx::ldmatrix_x4(sb + ((b_off + uint32_t(np * 16 * kRowBytes)) ^ uint32_t(32 * kk)), b);
        ptx::mma_16816<T>(acc[2 * np], a[kk], b[0], b[1]);
        ptx::mma_16816<T>(acc[2 * np + 1], a[kk], b[2], b[3]);
      }
    }
    const int jt = (tile0 + i) * kKeys;
    const int j0 = jt + 2 * tq;  // + n * 8 + c
    if constexpr (kMode == kStats) {
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        const bool full = jt + kKeys <= ri[rr].v;  // every key of the tile visible to the row
        float tmax = -INFINITY;
#pragma unroll
        for (int n = 0; n < 8; ++n)
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            const int j = j0 + n * 8 + c;
            const float s = full || j < ri[rr].v ? scale2 * acc[n][2 * rr + c] : -INFINITY;
            acc[n][2 * rr + c] = s;
            tmax = fmaxf(tmax, s);
          }
        if (tmax == -INFINITY) continue;
        if (tmax > m[rr]) {
          if (m[rr] != -INFINITY) l[rr] *= double(ptx::exp2_fast(m[rr] - tmax));
          m[rr] = tmax;
        }
        float sum = 0.f;
#pragma unroll
        for (int n = 0; n < 8; ++n)
#pragma unroll
          for (int c = 0; c < 2; ++c) sum += ptx::exp2_fast(acc[n][2 * rr + c] - m[rr]);
        l[rr] += double(sum);
      }
    } else {
      float cs[8][2] = {};
      float cv[2] = {0.f, 0.f};
#pragma unroll
      for (int rr = 0; rr < 2; ++rr) {
        const RowInfo& r = ri[rr];
        const int je = jt + kKeys;
        // Where the whole tile lies for this row: fully visible, and (sample) fully outside or
        // fully inside one covered range; only the other tiles test every key.
        const bool full = je <= r.v;
        const bool outside =
            jt >= g.block_k && (je <= r.lo_f || jt >= r.hi_f) && (je <= r.lo_b || jt >= r.hi_b);
        const bool inside =
            je <= g.block_k || (jt >= r.lo_f && je <= r.hi_f) || (jt >= r.lo_b && je <= r.hi_b);
        const float mr = m[rr], ir = inv[rr];
        if (kMode == kSampleMass && full && (outside || inside)) {
          float t = 0.f;
#pragma unroll
          for (int n = 0; n < 8; ++n)
#pragma unroll
            for (int c = 0; c < 2; ++c) {
              const float p = ptx::exp2_fast(fmaf(scale2, acc[n][2 * rr + c], -mr)) * ir;
              if (outside)
                cs[n][c] += p;
              else
                t += p;
            }
          cv[rr] += t;
        } else {
#pragma unroll
          for (int n = 0; n < 8; ++n)
#pragma unroll
            for (int c = 0; c < 2; ++c) {
              const int j = j0 + n * 8 + c;
              if (j >= r.v) continue;
              const float p = ptx::exp2_fast(fmaf(scale2, acc[n][2 * rr + c], -mr)) * ir;
              if constexpr (kMode == kSampleMass) {
                const bool is_cov =
                    j < g.block_k || (j >= r.lo_f && j < r.hi_f) || (j >= r.lo_b && j < r.hi_b);
                if (is_cov)
                  cv[rr] += p;
                else
                  cs[n][c] += p;
              } else {
                cs[n][c] += p;
                // offset o = pos - j >= 0; slot o - (pos_lo - jt - 63) in [0, kSlash)
                if (j <= tpos[rr]) atomicAdd(&s_slash[tpos[rr] - j - pos_lo + jt + kKeys - 1], p);
              }
            }
        }
        cov[rr] += double(cv[rr]);
      }
      // column sums over the warp's 16 rows (lanes of equal tq), then over the 8 warps
      warp_column_sums(cs, s_col[warp], lane);
      __syncthreads();
      if (threadIdx.x < kKeys) {
        float x = 0.f;
        for (int w = 0; w < kThreads / 32; ++w) x += s_col[w][threadIdx.x];
        const int j = jt + int(threadIdx.x);
        if (x > 0.f && j < g.seq_k) atomicAdd(hcol + j, double(x));
      }
      if (kMode == kProbeMass) {
        double* hs = pb.slash + int64_t(h) * g.seq_k;
        for (int x = int(threadIdx.x); x < kSlash; x += kThreads) {
          const int o = x + pos_lo - jt - (kKeys - 1);
          if (s_slash[x] > 0.f && o >= 0 && o < g.seq_k) atomicAdd(hs + o, double(s_slash[x]));
        }
      }
    }
    __syncthreads();  // this key buffer (and s_col, s_slash) are free again
  }

  if constexpr (kMode == kStats) {
#pragma unroll
    for (int rr = 0; rr < 2; ++rr) {
      float mm = m[rr];
      mm = fmaxf(mm, __shfl_xor_sync(0xffffffffu, mm, 1));
      mm = fmaxf(mm, __shfl_xor_sync(0xffffffffu, mm, 2));
      double ll = m[rr] == -INFINITY ? 0.0 : l[rr] * exp2(double(m[rr]) - double(mm));
      ll += __shfl_xor_sync(0xffffffffu, ll, 1);
      ll += __shfl_xor_sync(0xffffffffu, ll, 2);
      if (tq == 0 && trow[rr] < n_rows) {
        const int64_t at = (int64_t(h) * n_rows + trow[rr]) * splits + split;
        part_m[at] = mm;
        part_l[at] = ll;
      }
    }
  } else if constexpr (kMode == kSampleMass) {
    const double c = block_sum(cov[0] + cov[1], s_red);
    if (threadIdx.x == 0) {
      if (c > 0.0) atomicAdd(pb.covered + h, c);
      if (split == 0) atomicAdd(pb.counted + h, double(nrows));
    }
  }
}

// Row max (log2 units) and 1 / sum of 2^(s - max) over the splits' partial statistics.
__global__ void combine_rows_kernel(int n, int splits, const float* part_m, const double* part_l,
                                    float* row_max, float* row_inv) {
  const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= n) return;
  float m = -INFINITY;
  for (int s = 0; s < splits; ++s) m = fmaxf(m, part_m[int64_t(i) * splits + s]);
  double l = 0;
  if (m != -INFINITY)
    for (int s = 0; s < splits; ++s) {
      const float ms = part_m[int64_t(i) * splits + s];
      if (ms != -INFINITY) l += part_l[int64_t(i) * splits + s] * exp2(double(ms) - double(m));
    }
  row_max[i] = m;
  row_inv[i] = l > 0.0 ? float(1.0 / l) : 0.f;
}

template <class T, int D, int kMode>
cudaError_t launch_rows(const HeadInputs& in, const Geometry& g, const RowProblem& pb,
                        int split_tiles, int splits, const float* row_max, const float* row_inv,
                        float* part_m, double* part_l, cudaStream_t stream) {
  const int smem = (kRows + 2 * kKeys) * 2 * D;
  auto* kernel = &row_softmax_kernel<T, D, kMode>;
  const cudaError_t e =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e != cudaSuccess) return e;
  const dim3 grid(unsigned((pb.n_rows + kRows - 1) / kRows), unsigned(in.heads_q),
                  unsigned(splits));
  kernel<<<grid, kThreads, size_t(smem), stream>>>(in, g, pb, split_tiles, row_max, row_inv, part_m,
                                                   part_l);
  return cudaGetLastError();
}

struct RowScratch {
  float *part_m, *row_max, *row_inv;
  double* part_l;
};
RowScratch row_scratch(void* base, int heads, int n_rows, int splits) {
  const size_t n = size_t(heads) * size_t(n_rows);
  auto* b = static_cast<unsigned char*>(base);
  RowScratch s;
  s.part_l = reinterpret_cast<double*>(b);
  b += (n * splits * sizeof(double) + 255) / 256 * 256;
  s.part_m = reinterpret_cast<float*>(b);
  b += (n * splits * sizeof(float) + 255) / 256 * 256;
  s.row_max = reinterpret_cast<float*>(b);
  b += (n * sizeof(float) + 255) / 256 * 256;
  s.row_inv = reinterpret_cast<float*>(b);
  return s;
}

template <class T, int D>
cudaError_t row_mass_typed(const HeadInputs& in, const Geometry& g, const RowProblem& pb,
                           bool probe, void* scratch, cudaStream_t stream) {
  const int per = tiles_per_split(pb.n_rows, in.heads_q, g.seq_k);
  const int splits = std::max(1, ((g.seq_k + kKeys - 1) / kKeys + per - 1) / per);
  const RowScratch s = row_scratch(scratch, in.heads_q, pb.n_rows, splits);
  cudaError_t e = launch_rows<T, D, kStats>(in, g, pb, per, splits, nullptr, nullptr, s.part_m,
                                            s.part_l, stream);
  if (e != cudaSuccess) return e;
  const int n = in.heads_q * pb.n_rows;
  combine_rows_kernel<<<(n + 255) / 256, 256, 0, stream>>>(n, splits, s.part_m, s.part_l, s.row_max,
                                                           s.row_inv);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  return probe ? launch_rows<T, D, kProbeMass>(in, g, pb, per, splits, s.row_max, s.row_inv,
                                               nullptr, nullptr, stream)
               : launch_rows<T, D, kSampleMass>(in, g, pb, per, splits, s.row_max, s.row_inv,
                                                nullptr, nullptr, stream);
}

// ---- stage 2: cumulative column selection
// ---------------------------------------------------------

// Stage 2 sorts every head's columns at once: all masses by descending value (stable), then by
// head (stable, the few head bits only), which leaves each head's columns in descending order with
// ties in ascending key order: two device-wide radix sorts instead of one CTA per head.
struct Stage2Layout {
  size_t keys = 0, ids_a = 0, ids_b = 0, ids_out = 0, hk_in = 0, hk_out = 0, flags = 0, dense = 0,
         ncol = 0, temp = 0, total = 0;
  size_t temp_bytes = 0;
};
size_t align256(size_t x) { return (x + 255) / 256 * 256; }

int bits_for(int n) {
  int b = 0;
  while ((1 << b) < n) ++b;
  return std::max(b, 1);
}

Stage2Layout stage2_layout(int heads, int seq_k) {
  const size_t n = size_t(heads) * size_t(seq_k);
  Stage2Layout s;
  size_t at = 0;
  const auto take = [&](size_t& field, size_t bytes) {
    field = at;
    at += align256(std::max<size_t>(bytes, 1));
  };
  take(s.keys, n * sizeof(double));
  take(s.ids_a, n * sizeof(int));
  take(s.ids_b, n * sizeof(int));
  take(s.ids_out, n * sizeof(int));
  take(s.hk_in, n * sizeof(int));
  take(s.hk_out, n * sizeof(int));
  take(s.flags, n);
  take(s.dense, size_t(heads) * sizeof(int));
  take(s.ncol, size_t(heads) * sizeof(int));
  size_t by_value = 0, by_head = 0;
  cub::DeviceRadixSort::SortPairsDescending(
      nullptr, by_value, static_cast<const double*>(nullptr), static_cast<double*>(nullptr),
      static_cast<const int*>(nullptr), static_cast<int*>(nullptr), int(n));
  cub::DeviceRadixSort::SortPairs(nullptr, by_head, static_cast<const int*>(nullptr),
                                  static_cast<int*>(nullptr), static_cast<const int*>(nullptr),
                                  static_cast<int*>(nullptr), int(n), 0, bits_for(heads));
  s.temp_bytes = std::max(by_value, by_head);
  take(s.temp, s.temp_bytes);
  s.total = at;
  return s;
}

__global__ void iota_kernel(int64_t n, int* ids) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step)
    ids[i] = int(i);
}

// head of each flat column id (the second sort's key)
__global__ void head_keys_kernel(int64_t n, int seq_k, const int* ids, int* heads) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step)
    heads[i] = ids[i] / seq_k;
}

// The sorted masses and the key index inside the head, from the sorted flat ids.
__global__ void gather_sorted_kernel(int64_t n, int seq_k, const double* col, const int* ids,
                                     double* keys, int* local) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step) {
    keys[i] = col[ids[i]];
    local[i] = ids[i] % seq_k;
  }
}

__global__ void segments_kernel(int heads, int seq_k, int* offsets, int* ids) {
  const int64_t n = int64_t(heads) * seq_k;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n || i <= heads; i += step) {
    if (i < n) ids[i] = int(i % seq_k);
    if (i <= heads) offsets[i] = int(i * seq_k);
  }
}

// One CTA per head: how many sorted columns the cumulative rule keeps, the dense fallback, and the
// kept columns marked in flags.
__global__ void threshold_kernel(int seq_k, int block_k, const double* sorted, const int* ids,
                                 const double* covered, const double* counted, double alpha,
                                 int band, double dense_share, unsigned char* flags, int* dense,
                                 int* ncol) {
  __shared__ double dscratch[32];
  __shared__ int iscratch[32];
  const int h = int(blockIdx.x);
  const double* s = sorted + int64_t(h) * seq_k;
  const int* id = ids + int64_t(h) * seq_k;
  const double required = alpha * counted[h], base = covered[h];
  const int per = (seq_k + int(blockDim.x) - 1) / int(blockDim.x);
  const int i0 = int(threadIdx.x) * per, i1 = min(i0 + per, seq_k);
  double local = 0;
  for (int i = i0; i < i1; ++i)
    if (s[i] > 0) local += s[i];
  double all;
  double prefix = block_exclusive_scan(local, dscratch, &all);
  int cnt = 0;
  for (int i = i0; i < i1; ++i) {
    if (!(s[i] > 0)) break;  // positives come first
    if (base + prefix < required) ++cnt;
    prefix += s[i];
  }
  const int count = block_sum(cnt, iscratch);
  const bool is_dense = (double(count) + double(band)) / double(max(1, seq_k)) > dense_share;
  int kept = 0;
  if (!is_dense)
    for (int i = int(threadIdx.x); i < count; i += int(blockDim.x)) {
      flags[int64_t(h) * seq_k + id[i]] = 1;
      kept += id[i] >= block_k ? 1 : 0;
    }
  kept = block_sum(kept, iscratch);
  if (threadIdx.x == 0) {
    dense[h] = is_dense ? 1 : 0;
    ncol[h] = is_dense ? 0 : kept;
  }
}

// One CTA per head: column_indptr and the kept columns >= block_k in ascending order.
__global__ void columns_kernel(int heads, int seq_k, int block_k, const unsigned char* flags,
                               const int* ncol, int* indptr, int* columns) {
  __shared__ int scratch[32];
  const int h = int(blockIdx.x);
  int off = 0;
  for (int i = 0; i < h; ++i) off += ncol[i];
  if (threadIdx.x == 0) {
    if (h == 0) indptr[0] = 0;
    indptr[h + 1] = off + ncol[h];
  }
  if (ncol[h] == 0) return;
  const unsigned char* f = flags + int64_t(h) * seq_k;
  const int first = min(block_k, seq_k), n = seq_k - first;
  const int per = (n + int(blockDim.x) - 1) / int(blockDim.x);
  const int i0 = first + int(threadIdx.x) * per, i1 = min(i0 + per, seq_k);
  int local = 0;
  for (int i = i0; i < i1; ++i) local += f[i];
  int total;
  int pos = off + block_exclusive_scan(local, scratch, &total);
  for (int i = i0; i < i1; ++i)
    if (f[i]) columns[pos++] = i;
}

// One CTA per (head, query block): every visible block (dense head) or the sink and diagonal
// blocks (estimation.cpp's forced_blocks).
__global__ void rows_kernel(Geometry g, const int* dense, int* counts, int* lists) {
  const int row = int(blockIdx.x), h = row / g.nqb, qb = row % g.nqb;
  const int q0 = qb * g.block_q, q1 = min(q0 + g.block_q, g.seq_q) - 1;
  const int vk = g.causal ? min(max(q1 + g.q_offset + 1, 0), g.seq_k) : g.seq_k;
  const int nvis = (vk + g.block_k - 1) / g.block_k;
  int* out = lists + int64_t(row) * g.nkb;
  if (dense[h]) {
    for (int kb = int(threadIdx.x); kb < nvis; kb += int(blockDim.x)) out[kb] = kb;
    if (threadIdx.x == 0) counts[row] = nvis;
    return;
  }
  if (threadIdx.x != 0) return;
  int n = 0;
  if (nvis > 0) {
    out[n++] = 0;
    const int first = min(max(q0 + g.q_offset, 0), g.seq_k - 1) / g.block_k;
    const int last = min(max(q1 + g.q_offset, 0), g.seq_k - 1) / g.block_k;
    for (int kb = max(first, 1); kb <= min(last, nvis - 1); ++kb) out[n++] = kb;
  }
  counts[row] = n;
}

// ---- vertical-slash stage 2 (vertical_slash.cpp after probe_last_rows)
// ---------------------------

// keys [2][heads][seq_k]: float(vertical), float(slash), the first force_columns / force_diagonals
// entries +inf (as the CPU's copies).
__global__ void vs_keys_kernel(int heads, int seq_k, const double* vertical, const double* slash,
                               int force_columns, int force_diagonals, float* keys) {
  const int64_t n = int64_t(heads) * seq_k;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < 2 * n; i += step) {
    const bool is_slash = i >= n;
    const int64_t e = is_slash ? i - n : i;
    const int j = int(e % seq_k);
    const bool forced = j < (is_slash ? force_diagonals : force_columns);
    keys[i] = forced ? INFINITY : float(is_slash ? slash[e] : vertical[e]);
  }
}

// One CTA per head: the top nv columns (sorted ids, ties lower first) marked in flags.
__global__ void vs_mark_kernel(int seq_k, int block_k, VsBudgets b, const int* ids,
                               unsigned char* flags, int* ncol) {
  __shared__ int scratch[32];
  const int h = int(blockIdx.x);
  const int nv = b.per_head ? b.vertical[h] : b.vertical[0];
  const int* id = ids + int64_t(h) * seq_k;
  int kept = 0;
  for (int i = int(threadIdx.x); i < nv; i += int(blockDim.x)) {
    flags[int64_t(h) * seq_k + id[i]] = 1;
    kept += id[i] >= block_k ? 1 : 0;
  }
  kept = block_sum(kept, scratch);
  if (threadIdx.x == 0) ncol[h] = kept;
}

// One CTA per (head, query block): the key blocks its rows' slash lines cross (top ns offsets),
// plus the sink and diagonal blocks, ascending.
__global__ void vs_rows_kernel(Geometry g, VsBudgets b, const int* offsets, int* counts,
                               int* lists) {
  extern __shared__ unsigned char mark[];  // [nkb]
  __shared__ int scratch[32];
  const int row = int(blockIdx.x), h = row / g.nqb, qb = row % g.nqb;
  const int q0 = qb * g.block_q, q1 = min(q0 + g.block_q, g.seq_q) - 1;
  const int vk = g.causal ? min(max(q1 + g.q_offset + 1, 0), g.seq_k) : g.seq_k;
  const int nvis = (vk + g.block_k - 1) / g.block_k;
  for (int kb = int(threadIdx.x); kb < g.nkb; kb += int(blockDim.x)) mark[kb] = 0;
  __syncthreads();
  const int ns = b.per_head ? b.slash[h] : b.slash[0];
  const int* off = offsets + int64_t(h) * g.seq_k;
  const int p0 = q0 + g.q_offset, p1 = q1 + g.q_offset;
  for (int i = int(threadIdx.x); i < ns; i += int(blockDim.x)) {
    const int o = off[i];
    const int lo = max(0, p0 - o), hi = min(g.seq_k - 1, p1 - o);
    if (hi < lo) continue;
    for (int kb = lo / g.block_k; kb <= hi / g.block_k && kb < nvis; ++kb) mark[kb] = 1;
  }
  if (threadIdx.x == 0) mark_forced(g, qb, nvis, mark);
  __syncthreads();
  const int total = block_compact(mark, nvis, lists + int64_t(row) * g.nkb, scratch);
  if (threadIdx.x == 0) counts[row] = total;
}

struct VsLayout {
  size_t keys = 0, keys_out = 0, ids_in = 0, ids_out = 0, offsets = 0, flags = 0, ncol = 0,
         temp = 0, total = 0;
  size_t temp_bytes = 0;
};
VsLayout vs_layout(int heads, int seq_k) {
  const size_t n = 2 * size_t(heads) * size_t(seq_k);
  VsLayout s;
  size_t at = 0;
  const auto take = [&](size_t& field, size_t bytes) {
    field = at;
    at += align256(std::max<size_t>(bytes, 1));
  };
  take(s.keys, n * sizeof(float));
  take(s.keys_out, n * sizeof(float));
  take(s.ids_in, n * sizeof(int));
  take(s.ids_out, n * sizeof(int));
  take(s.offsets, size_t(2 * heads + 1) * sizeof(int));
  take(s.flags, n / 2);
  take(s.ncol, size_t(heads) * sizeof(int));
  cub::DeviceSegmentedRadixSort::SortPairsDescending(
      nullptr, s.temp_bytes, static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
      static_cast<const int*>(nullptr), static_cast<int*>(nullptr), int(n), 2 * heads,
      static_cast<const int*>(nullptr), static_cast<const int*>(nullptr));
  take(s.temp, s.temp_bytes);
  s.total = at;
  return s;
}

}  // namespace

bool rows_fit(const HeadInputs& in) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return (in.D == 64 || in.D == 128) && aligned(in.q) && aligned(in.k) &&
         in.q_row_stride % 8 == 0 && in.k_row_stride % 8 == 0 && in.q_head_stride % 8 == 0 &&
         in.k_head_stride % 8 == 0;
}

int sampled_row_count(int seq_q, int chunk, int num_chunks) {
  int64_t n = 0;
  for (int64_t c = 0; c < num_chunks; ++c)
    n += chunk_end(c, seq_q, chunk, num_chunks) - chunk_begin(c, seq_q, chunk, num_chunks);
  return int(n);
}

cudaError_t sampled_rows(int seq_q, int chunk, int num_chunks, int* rows, cudaStream_t stream) {
  if (num_chunks <= 0 || chunk <= 0 || chunk > seq_q) return cudaErrorInvalidValue;
  sampled_rows_kernel<<<1, 1024, 0, stream>>>(seq_q, chunk, num_chunks, rows);
  return cudaGetLastError();
}

size_t row_mass_bytes(int heads, int n_rows, int seq_k) {
  const int per = tiles_per_split(n_rows, heads, seq_k);
  const int splits = std::max(1, ((seq_k + kKeys - 1) / kKeys + per - 1) / per);
  const size_t n = size_t(heads) * size_t(std::max(n_rows, 1));
  const auto up = [](size_t x) { return (x + 255) / 256 * 256; };
  return up(n * splits * sizeof(double)) + up(n * splits * sizeof(float)) +
         2 * up(n * sizeof(float));
}

cudaError_t row_mass(const HeadInputs& in, const Geometry& geo, const RowProblem& pb, bool probe,
                     void* scratch, cudaStream_t stream) {
  if (!rows_fit(in)) return cudaErrorInvalidValue;
  const size_t n = size_t(in.heads_q) * size_t(geo.seq_k) * sizeof(double);
  cudaError_t e = cudaMemsetAsync(pb.col, 0, n, stream);
  if (e == cudaSuccess && probe) e = cudaMemsetAsync(pb.slash, 0, n, stream);
  if (e == cudaSuccess && !probe)
    e = cudaMemsetAsync(pb.covered, 0, size_t(in.heads_q) * sizeof(double), stream);
  if (e == cudaSuccess && !probe)
    e = cudaMemsetAsync(pb.counted, 0, size_t(in.heads_q) * sizeof(double), stream);
  if (e != cudaSuccess || pb.n_rows <= 0 || geo.seq_k <= 0) return e;
  if (in.bf16)
    return in.D == 64 ? row_mass_typed<__nv_bfloat16, 64>(in, geo, pb, probe, scratch, stream)
                      : row_mass_typed<__nv_bfloat16, 128>(in, geo, pb, probe, scratch, stream);
  return in.D == 64 ? row_mass_typed<__half, 64>(in, geo, pb, probe, scratch, stream)
                    : row_mass_typed<__half, 128>(in, geo, pb, probe, scratch, stream);
}

size_t sample_stage2_bytes(int heads, int seq_k) { return stage2_layout(heads, seq_k).total; }

cudaError_t sample_stage2(const Geometry& geo, int heads, const double* col, const double* covered,
                          const double* counted, double alpha, int band, double dense_share,
                          void* scratch, int* counts, int* lists, int* column_indptr, int* columns,
                          cudaStream_t stream) {
  if (heads <= 0 || geo.seq_k <= 0) return cudaErrorInvalidValue;
  const Stage2Layout L = stage2_layout(heads, geo.seq_k);
  auto* base = static_cast<unsigned char*>(scratch);
  auto* keys = reinterpret_cast<double*>(base + L.keys);
  auto* ids_a = reinterpret_cast<int*>(base + L.ids_a);
  auto* ids_b = reinterpret_cast<int*>(base + L.ids_b);
  auto* ids_out = reinterpret_cast<int*>(base + L.ids_out);
  auto* hk_in = reinterpret_cast<int*>(base + L.hk_in);
  auto* hk_out = reinterpret_cast<int*>(base + L.hk_out);
  auto* flags = base + L.flags;
  auto* dense = reinterpret_cast<int*>(base + L.dense);
  auto* ncol = reinterpret_cast<int*>(base + L.ncol);
  const int64_t n = int64_t(heads) * geo.seq_k;
  const int grid = int(std::min<int64_t>((n + 255) / 256, 4096));
  iota_kernel<<<grid, 256, 0, stream>>>(n, ids_a);
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaMemsetAsync(flags, 0, size_t(n), stream);
  if (e != cudaSuccess) return e;
  size_t temp_bytes = L.temp_bytes;
  // stable radix sorts: equal masses keep ascending key order, the CPU's tie rule
  e = cub::DeviceRadixSort::SortPairsDescending(base + L.temp, temp_bytes, col, keys,
                                                static_cast<const int*>(ids_a), ids_b, int(n), 0,
                                                64, stream);
  if (e != cudaSuccess) return e;
  head_keys_kernel<<<grid, 256, 0, stream>>>(n, geo.seq_k, ids_b, hk_in);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  temp_bytes = L.temp_bytes;
  e = cub::DeviceRadixSort::SortPairs(base + L.temp, temp_bytes, static_cast<const int*>(hk_in),
                                      hk_out, static_cast<const int*>(ids_b), ids_a, int(n), 0,
                                      bits_for(heads), stream);
  if (e != cudaSuccess) return e;
  gather_sorted_kernel<<<grid, 256, 0, stream>>>(n, geo.seq_k, col, ids_a, keys, ids_out);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  threshold_kernel<<<heads, 1024, 0, stream>>>(geo.seq_k, geo.block_k, keys, ids_out, covered,
                                               counted, alpha, band, dense_share, flags, dense,
                                               ncol);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  columns_kernel<<<heads, 1024, 0, stream>>>(heads, geo.seq_k, geo.block_k, flags, ncol,
                                             column_indptr, columns);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  if (heads * geo.nqb > 0)
    rows_kernel<<<heads * geo.nqb, 128, 0, stream>>>(geo, dense, counts, lists);
  return cudaGetLastError();
}

size_t vslash_stage2_bytes(int heads, int seq_k) { return vs_layout(heads, seq_k).total; }

cudaError_t vslash_stage2(const Geometry& geo, int heads, const double* vertical,
                          const double* slash, int force_columns, int force_diagonals,
                          const VsBudgets& budgets, void* scratch, int* counts, int* lists,
                          int* column_indptr, int* columns, cudaStream_t stream) {
  if (heads <= 0 || geo.seq_k <= 0) return cudaErrorInvalidValue;
  const VsLayout L = vs_layout(heads, geo.seq_k);
  auto* base = static_cast<unsigned char*>(scratch);
  auto* keys = reinterpret_cast<float*>(base + L.keys);
  auto* keys_out = reinterpret_cast<float*>(base + L.keys_out);
  auto* ids_in = reinterpret_cast<int*>(base + L.ids_in);
  auto* ids_out = reinterpret_cast<int*>(base + L.ids_out);
  auto* offsets = reinterpret_cast<int*>(base + L.offsets);
  auto* flags = base + L.flags;
  auto* ncol = reinterpret_cast<int*>(base + L.ncol);
  const int64_t n = int64_t(heads) * geo.seq_k;
  const int grid = int(std::min<int64_t>((2 * n + 255) / 256, 4096));
  vs_keys_kernel<<<grid, 256, 0, stream>>>(heads, geo.seq_k, vertical, slash, force_columns,
                                           force_diagonals, keys);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  segments_kernel<<<grid, 256, 0, stream>>>(2 * heads, geo.seq_k, offsets, ids_in);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  if ((e = cudaMemsetAsync(flags, 0, size_t(n), stream)) != cudaSuccess) return e;
  size_t temp_bytes = L.temp_bytes;
  // stable radix sort: equal scores keep ascending index order, top_k_indices' tie rule
  e = cub::DeviceSegmentedRadixSort::SortPairsDescending(
      base + L.temp, temp_bytes, static_cast<const float*>(keys), keys_out,
      static_cast<const int*>(ids_in), ids_out, int(2 * n), 2 * heads,
      static_cast<const int*>(offsets), static_cast<const int*>(offsets + 1), 0, 32, stream);
  if (e != cudaSuccess) return e;
  vs_mark_kernel<<<heads, 1024, 0, stream>>>(geo.seq_k, geo.block_k, budgets, ids_out, flags, ncol);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  columns_kernel<<<heads, 1024, 0, stream>>>(heads, geo.seq_k, geo.block_k, flags, ncol,
                                             column_indptr, columns);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  if (heads * geo.nqb > 0)
    vs_rows_kernel<<<heads * geo.nqb, 256, size_t(geo.nkb), stream>>>(geo, budgets, ids_out + n,
                                                                      counts, lists);
  return cudaGetLastError();
}

}  // namespace sieve::attention::cuda::est
