// Device kernels shared by the GPU selectors: scores at reduced resolution with one-pass softmax
// statistics, block shares per query block, cumulative selection, CSR assembly, fixed patterns.
// See estimation_gpu.h for the contract; the CPU counterpart is selectors/estimation.{h,cpp}.
#include "estimation_gpu.h"

#include <cfloat>
#include <cmath>

namespace sieve::attention::cuda::est {

namespace {

constexpr int kTR = 64, kTE = 64, kTK = 16;

__device__ __forceinline__ int visible_keys(const Geometry& g, int qb) {
  if (!g.causal) return g.seq_k;
  const int q_end = min((qb + 1) * g.block_q, g.seq_q);
  return min(max(q_end - 1 + g.q_offset + 1, 0), g.seq_k);
}
__device__ __forceinline__ int visible_blocks(const Geometry& g, int qb) {
  return (visible_keys(g, qb) + g.block_k - 1) / g.block_k;
}

int entries_per_block(const StrideProblem& pb, const Geometry& geo) {
  return (geo.block_k / pb.sk) * pb.reps;
}

// Scores of a 64-row x 64-entry tile (f32 SIMT GEMM, 4x4 per thread), then per (row, key block
// or 64-entry part) the max and the sum of exp(score - max).
__global__ void __launch_bounds__(256) stride_stats_kernel(StrideProblem pb, int eb, int parts,
                                                           int bpt, int nkb, float2* stats) {
  __shared__ __align__(16) float as[kTK][kTR + 4];
  __shared__ __align__(16) float bs[kTK][kTE + 4];
  __shared__ float st[kTR][kTE + 1];
  __shared__ int s_vis[kTR];
  const int tid = threadIdx.x;
  const int r0 = blockIdx.y * kTR;
  const int num_e = pb.units * pb.reps;
  int e0, len, kb0, part;
  if (eb <= kTE) {
    kb0 = blockIdx.x * bpt;
    e0 = kb0 * eb;
    len = min(bpt * eb, num_e - e0);
    part = 0;
  } else {
    kb0 = blockIdx.x / parts;
    part = blockIdx.x % parts;
    e0 = kb0 * eb + part * kTE;
    len = min(min(kTE, eb - part * kTE), num_e - e0);
  }
  if (tid < kTR) {
    const int r = r0 + tid;
    s_vis[tid] = r < pb.nqr ? min(pb.visible[r], pb.units) * pb.reps : 0;
  }
  __syncthreads();
  int maxv = 0;
  for (int i = 0; i < kTR; ++i) maxv = max(maxv, s_vis[i]);
  if (len <= 0 || e0 >= maxv) return;  // nothing visible: stats stay zero

  const int ty = tid >> 4, tx = tid & 15;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < pb.W; k0 += kTK) {
    const int row = tid >> 2, kq = (tid & 3) * 4;
    float4 a = make_float4(0.f, 0.f, 0.f, 0.f), b = a;
    if (r0 + row < pb.nqr) a = *reinterpret_cast<const float4*>(pb.qrep + int64_t(r0 + row) * pb.W + k0 + kq);
    if (row < len) b = *reinterpret_cast<const float4*>(pb.krep + int64_t(e0 + row) * pb.W + k0 + kq);
    as[kq][row] = a.x;
    as[kq + 1][row] = a.y;
    as[kq + 2][row] = a.z;
    as[kq + 3][row] = a.w;
    bs[kq][row] = b.x;
    bs[kq + 1][row] = b.y;
    bs[kq + 2][row] = b.z;
    bs[kq + 3][row] = b.w;
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTK; ++kk) {
      const float4 av = *reinterpret_cast<const float4*>(&as[kk][ty * 4]);
      const float4 bv = *reinterpret_cast<const float4*>(&bs[kk][tx * 4]);
      const float ar[4] = {av.x, av.y, av.z, av.w}, br[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int rl = ty * 4 + i, el = tx * 4 + j, e = e0 + el;
      float s = -INFINITY;
      if (el < len && e < s_vis[rl]) {
        s = pb.alpha * acc[i][j] + (pb.log_w ? pb.log_w[e] : 0.f);
        const int u = e / pb.reps, v = s_vis[rl] / pb.reps;
        if (pb.own && u == v - 1) s = e % pb.reps == 0 ? pb.own[r0 + rl] : -INFINITY;
        if (pb.has_partial && v == pb.units && u == pb.units - 1) s += pb.partial_logw;
      }
      st[rl][el] = s;
    }
  __syncthreads();
  const int g = eb <= kTE ? eb : len;
  const int ngroups = eb <= kTE ? (len + eb - 1) / eb : 1;
  for (int gi = tid; gi < kTR * ngroups; gi += blockDim.x) {
    const int rl = gi / ngroups, gr = gi % ngroups, r = r0 + rl;
    if (r >= pb.nqr) continue;
    const int j0 = gr * g, j1 = min(j0 + g, len);
    float m = -INFINITY;
    for (int j = j0; j < j1; ++j) m = fmaxf(m, st[rl][j]);
    float sum = 0.f;
    if (m != -INFINITY)
      for (int j = j0; j < j1; ++j) sum += expf(st[rl][j] - m);
    const int kb = eb <= kTE ? kb0 + gr : kb0;
    if (kb < nkb)
      stats[int64_t(r) * nkb * parts + int64_t(kb) * parts + part] =
          m == -INFINITY ? make_float2(0.f, 0.f) : make_float2(m, sum);
  }
}

// ---- block-wide reductions (blockDim.x a multiple of 32, <= 1024) -------------------------------

template <class T, class Op>
__device__ T block_reduce(T v, Op op, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = scratch[0];
  for (int i = 1; i < nw; ++i) r = op(r, scratch[i]);
  __syncthreads();
  return r;
}

// Exclusive scan of one value per thread (in thread order); returns the prefix, total in *total.
template <class T>
__device__ T block_exclusive_scan(T v, T* scratch, T* total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
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

struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct AddOp {
  template <class T>
  __device__ T operator()(T a, T b) const { return a + b; }
};

// One CTA per query block: sum over its rows of the per-row softmax mass of each key block.
__global__ void block_scores_kernel(StrideProblem pb, Geometry geo, int parts, const float2* stats,
                                    float* out, int combine, bool normalize, float weight) {
  extern __shared__ float blk[];  // [nkb]
  __shared__ float fscratch[32];
  __shared__ double dscratch[32];
  const int qb = blockIdx.x, nkb = geo.nkb;
  const int nvis = visible_blocks(geo, qb);
  for (int kb = threadIdx.x; kb < nkb; kb += blockDim.x) blk[kb] = 0.f;
  __syncthreads();
  const int q_end = min((qb + 1) * geo.block_q, geo.seq_q);
  const int rb0 = qb * geo.block_q / pb.sq, rb1 = min(pb.nqr, (q_end + pb.sq - 1) / pb.sq);
  for (int r = rb0; r < rb1; ++r) {
    const int v = min(pb.units, pb.visible[r]);
    if (v <= 0) continue;
    const float2* srow = stats + int64_t(r) * nkb * parts;
    float m = -INFINITY;
    for (int i = threadIdx.x; i < nkb * parts; i += blockDim.x)
      if (srow[i].y > 0.f) m = fmaxf(m, srow[i].x);
    m = block_reduce(m, MaxOp{}, fscratch);
    if (m == -INFINITY) continue;  // no finite score: the CPU leaves zeros
    double tot = 0;
    for (int i = threadIdx.x; i < nkb * parts; i += blockDim.x)
      if (srow[i].y > 0.f) tot += double(srow[i].y) * exp(double(srow[i].x - m));
    tot = block_reduce(tot, AddOp{}, dscratch);
    const float inv = float(1.0 / tot);
    for (int kb = threadIdx.x; kb < min(nvis, nkb); kb += blockDim.x) {
      float share = 0.f;
      for (int p = 0; p < parts; ++p) {
        const float2 x = srow[kb * parts + p];
        if (x.y > 0.f) share += x.y * expf(x.x - m);
      }
      blk[kb] += share * inv;
    }
    __syncthreads();
  }
  double t = 1.0;
  if (normalize) {
    t = 0;
    for (int kb = threadIdx.x; kb < nvis; kb += blockDim.x) t += blk[kb];
    t = block_reduce(t, AddOp{}, dscratch);
    if (t <= 0) return;
  }
  float* o = out + int64_t(qb) * nkb;
  for (int kb = threadIdx.x; kb < nvis; kb += blockDim.x) {
    const float v = normalize ? float(double(blk[kb]) / t) : blk[kb];
    if (combine == int(Combine::kSet)) o[kb] = v;
    else if (combine == int(Combine::kMax)) o[kb] = fmaxf(o[kb], v);
    else o[kb] += v / weight;
  }
}

__device__ __forceinline__ bool is_forced(const Geometry& g, int qb, int kb, int nvis) {
  if (nvis == 0 || kb >= nvis) return false;
  if (kb == 0) return true;
  const int q0 = qb * g.block_q, q1 = min((qb + 1) * g.block_q, g.seq_q) - 1;
  const int first = min(max(q0 + g.q_offset, 0), g.seq_k - 1) / g.block_k;
  const int last = min(max(q1 + g.q_offset, 0), g.seq_k - 1) / g.block_k;
  return kb >= max(first, 1) && kb <= min(last, nvis - 1);
}

// Descending score, then ascending id (a total order, as the CPU's ByScoreDesc).
__device__ __forceinline__ bool before(float sa, int ia, float sb, int ib) {
  return sa > sb || (sa == sb && ia < ib);
}

// One CTA per query block: forced blocks, then the cumulative rule over the others.
__global__ void select_kernel(Geometry geo, const float* scores, double share, int head, int pow2,
                              int* counts, int* lists) {
  extern __shared__ unsigned char smem[];
  float* key = reinterpret_cast<float*>(smem);            // [pow2]
  int* id = reinterpret_cast<int*>(key + pow2);           // [pow2]
  unsigned char* keep = reinterpret_cast<unsigned char*>(id + pow2);  // [nkb]
  __shared__ double dscratch[32];
  __shared__ int iscratch[32];
  const int qb = blockIdx.x, nkb = geo.nkb;
  const int nvis = visible_blocks(geo, qb);
  const float* s = scores + int64_t(qb) * nkb;
  double total = 0, forced_mass = 0;
  int nforced = 0;
  for (int i = threadIdx.x; i < pow2; i += blockDim.x) {
    const bool vis = i < nvis;
    const bool f = vis && is_forced(geo, qb, i, nvis);
    if (vis) total += s[i];
    if (f) {
      forced_mass += s[i];
      ++nforced;
    }
    key[i] = !vis ? -2.f : f ? -1.f : s[i];
    id[i] = i;
    if (i < nkb) keep[i] = f ? 1 : 0;
  }
  total = block_reduce(total, AddOp{}, dscratch);
  forced_mass = block_reduce(forced_mass, AddOp{}, dscratch);
  nforced = block_reduce(nforced, AddOp{}, iscratch);
  const int nfree = nvis - nforced;
  if (share >= 1.0) {
    for (int i = threadIdx.x; i < nvis; i += blockDim.x) keep[i] = 1;
  } else if (nfree > 0) {
    // bitonic sort of (key, id) pairs
    for (int size = 2; size <= pow2; size <<= 1)
      for (int stride = size >> 1; stride > 0; stride >>= 1) {
        __syncthreads();
        for (int i = threadIdx.x; i < pow2; i += blockDim.x) {
          const int j = i ^ stride;
          if (j > i) {
            const bool up = (i & size) == 0;
            const bool swap = up ? before(key[j], id[j], key[i], id[i]) : before(key[i], id[i], key[j], id[j]);
            if (swap) {
              const float tk = key[i];
              key[i] = key[j];
              key[j] = tk;
              const int ti = id[i];
              id[i] = id[j];
              id[j] = ti;
            }
          }
        }
      }
    __syncthreads();
    // include sorted entry i iff forced_mass + sum_{j<i} key[j] < share * total
    const double required = share * total;
    const int per = (nfree + blockDim.x - 1) / blockDim.x;
    const int i0 = threadIdx.x * per, i1 = min(i0 + per, nfree);
    double local = 0;
    for (int i = i0; i < i1; ++i) local += key[i];
    double all;
    double prefix = block_exclusive_scan(local, dscratch, &all);
    for (int i = i0; i < i1; ++i) {
      if (forced_mass + prefix < required) keep[id[i]] = 1;
      prefix += key[i];
    }
  }
  __syncthreads();
  // ascending ids of kept blocks
  const int per = (nkb + blockDim.x - 1) / blockDim.x;
  const int i0 = threadIdx.x * per, i1 = min(i0 + per, nkb);
  int local = 0;
  for (int i = i0; i < i1; ++i) local += keep[i];
  int count;
  int pos = block_exclusive_scan(local, iscratch, &count);
  const int row = head * geo.nqb + qb;
  int* out = lists + int64_t(row) * nkb;
  for (int i = i0; i < i1; ++i)
    if (keep[i]) out[pos++] = i;
  if (threadIdx.x == 0) counts[row] = count;
}

__global__ void fill_rows_kernel(Geometry geo, bool streaming, int sink, int local, int* counts, int* lists) {
  const int row = blockIdx.x, qb = row % geo.nqb, nkb = geo.nkb;
  int* out = lists + int64_t(row) * nkb;
  if (!streaming) {
    const int nvis = visible_blocks(geo, qb);
    for (int kb = threadIdx.x; kb < nvis; kb += blockDim.x) out[kb] = kb;
    if (threadIdx.x == 0) counts[row] = nvis;
    return;
  }
  const int last_row = min((qb + 1) * geo.block_q, geo.seq_q) - 1;
  const int diag = geo.causal ? min(nkb - 1, (last_row + geo.q_offset) / geo.block_k) : nkb - 1;
  if (threadIdx.x != 0) return;
  int n = 0;
  for (int kb = 0; kb < min(sink, diag + 1); ++kb) out[n++] = kb;
  for (int kb = max(0, diag - local + 1); kb <= diag; ++kb)
    if (kb >= sink) out[n++] = kb;
  counts[row] = n;
}

__global__ void scan_counts_kernel(int rows, const int* counts, int* indptr) {
  __shared__ int scratch[32];
  const int per = (rows + blockDim.x - 1) / blockDim.x;
  const int i0 = threadIdx.x * per, i1 = min(i0 + per, rows);
  int local = 0;
  for (int i = i0; i < i1; ++i) local += counts[i];
  int total;
  int pos = block_exclusive_scan(local, scratch, &total);
  for (int i = i0; i < i1; ++i) {
    indptr[i] = pos;
    pos += counts[i];
  }
  if (threadIdx.x == 0) indptr[rows] = total;
}

__global__ void gather_rows_kernel(int nkb, const int* counts, const int* lists, const int* indptr, int* indices) {
  const int row = blockIdx.x;
  const int* in = lists + int64_t(row) * nkb;
  int* out = indices + indptr[row];
  for (int i = threadIdx.x; i < counts[row]; i += blockDim.x) out[i] = in[i];
}

__global__ void sink_columns_kernel(int heads, int sink, int* indptr, int* columns) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= heads) indptr[i] = i * sink;
  if (i < heads * sink) columns[i] = i % sink;
}

int next_pow2(int n) {
  int p = 1;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

int stats_parts(const StrideProblem& pb, const Geometry& geo) {
  const int eb = entries_per_block(pb, geo);
  return eb <= kTE ? 1 : (eb + kTE - 1) / kTE;
}

cudaError_t stride_stats(const StrideProblem& pb, const Geometry& geo, float2* stats, cudaStream_t stream) {
  if (pb.nqr <= 0 || pb.units <= 0) return cudaSuccess;
  if (pb.W % kTK != 0) return cudaErrorInvalidValue;
  const int eb = entries_per_block(pb, geo);
  const int parts = stats_parts(pb, geo);
  const int bpt = eb <= kTE ? kTE / eb : 1;
  const int gx = eb <= kTE ? (geo.nkb + bpt - 1) / bpt : geo.nkb * parts;
  const dim3 grid(unsigned(gx), unsigned((pb.nqr + kTR - 1) / kTR));
  stride_stats_kernel<<<grid, 256, 0, stream>>>(pb, eb, parts, bpt, geo.nkb, stats);
  return cudaGetLastError();
}

cudaError_t block_scores(const StrideProblem& pb, const Geometry& geo, const float2* stats, float* out,
                         Combine combine, bool normalize, float weight, cudaStream_t stream) {
  if (geo.nqb <= 0) return cudaSuccess;
  block_scores_kernel<<<geo.nqb, 256, size_t(geo.nkb) * 4, stream>>>(
      pb, geo, stats_parts(pb, geo), stats, out, int(combine), normalize, weight);
  return cudaGetLastError();
}

cudaError_t select_rows(const Geometry& geo, const float* scores, double share, int head, int* counts,
                        int* lists, cudaStream_t stream) {
  if (geo.nqb <= 0) return cudaSuccess;
  const int pow2 = next_pow2(geo.nkb);
  const size_t smem = size_t(pow2) * 8 + size_t(geo.nkb);
  if (smem > 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(select_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (e != cudaSuccess) return e;
  }
  select_kernel<<<geo.nqb, 512, smem, stream>>>(geo, scores, share, head, pow2, counts, lists);
  return cudaGetLastError();
}

cudaError_t fill_rows(const Geometry& geo, int heads, bool streaming, int sink_blocks, int local_blocks,
                      int* counts, int* lists, cudaStream_t stream) {
  if (heads * geo.nqb <= 0) return cudaSuccess;
  fill_rows_kernel<<<heads * geo.nqb, 128, 0, stream>>>(geo, streaming, sink_blocks, local_blocks, counts, lists);
  return cudaGetLastError();
}

cudaError_t build_csr(int rows, int nkb, const int* counts, const int* lists, int* indptr, int* indices,
                      cudaStream_t stream) {
  scan_counts_kernel<<<1, 1024, 0, stream>>>(rows, counts, indptr);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess || rows == 0) return e;
  gather_rows_kernel<<<rows, 128, 0, stream>>>(nkb, counts, lists, indptr, indices);
  return cudaGetLastError();
}

cudaError_t fill_sink_columns(int heads, int sink, int* column_indptr, int* columns, cudaStream_t stream) {
  const int n = heads * sink + heads + 1;
  sink_columns_kernel<<<(n + 255) / 256, 256, 0, stream>>>(heads, sink, column_indptr, columns);
  return cudaGetLastError();
}

}  // namespace sieve::attention::cuda::est
