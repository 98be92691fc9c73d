// Device kernels of the FlexPrefill port (peers_gpu.h: flex_select): per head the gamma budgets
// from the probe's sorted token scores, the pooled vertical / slash block scores, the
// Jensen-Shannon query-awareness test, the top vertical blocks and slash diagonals, the global
// cumulative selection of pooled block attention for query-aware heads and the rows. The sorts
// are device-wide radix sorts of all heads at once, the head (segment) in the key bits above 32.
// Mirrors selectors/flex_prefill.cpp step by step; the probe and the pooled inputs come from the
// shared building blocks (row_mass, pool_rows, stride_stats, block_scores).
#include "peers_gpu.h"

#include "block_reduce.cuh"

#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>

namespace sieve::attention::cuda::est {

namespace {

constexpr int kThreads = 1024;

__device__ __forceinline__ int visible_blocks(const Geometry& g, int qb) {
  if (!g.causal) return g.nkb;
  const int q_end = min((qb + 1) * g.block_q, g.seq_q);
  const int vk = min(max(q_end - 1 + g.q_offset + 1, 0), g.seq_k);
  return (vk + g.block_k - 1) / g.block_k;
}

// Descending value, then ascending index (the CPU's ByScoreDesc).
__device__ __forceinline__ bool before(float a, int ia, float b, int ib) {
  return a > b || (a == b && ia < ib);
}

// Sort keys of the per-row token scores float(vertical / rows), float(slash / rows) (the CPU's
// vtok, stok; segments 0.. heads - 1 vertical, heads.. 2 * heads - 1 slash): the segment in the
// bits above 32, then the value's bits inverted (values >= 0: ascending keys, descending values).
__device__ __forceinline__ unsigned long long desc_key(int64_t segment, float v) {
  return (static_cast<unsigned long long>(segment) << 32) |
         static_cast<unsigned long long>(~__float_as_uint(fmaxf(v, 0.f)));
}
__device__ __forceinline__ float desc_value(unsigned long long key) {
  return __uint_as_float(~unsigned(key & 0xffffffffull));
}

__global__ void tokens_kernel(int heads, int seq_k, double rows, const double* vertical,
                              const double* slash, unsigned long long* keys) {
  const int64_t n = int64_t(heads) * seq_k;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < 2 * n; i += step)
    keys[i] = desc_key(i / seq_k, float(i < n ? vertical[i] / rows : slash[i - n] / rows));
}

// Entries, in descending order, needed for their sum to reach share * total (cover_count); the
// sum and the prefixes in f64 over the sorted f32 values. One call per CTA, all threads.
__device__ int cover_count(const unsigned long long* sorted, int n, double share, double* dscratch,
                           int* iscratch) {
  const int per = (n + int(blockDim.x) - 1) / int(blockDim.x);
  const int i0 = min(n, int(threadIdx.x) * per), i1 = min(i0 + per, n);
  double local = 0;
  for (int i = i0; i < i1; ++i) local += desc_value(sorted[i]);
  double total;
  double prefix = block_exclusive_scan(local, dscratch, &total);
  const double required = share * total;
  int below = 0;  // entries whose inclusive prefix stays below the requirement
  for (int i = i0; i < i1; ++i) {
    prefix += desc_value(sorted[i]);
    if (!(prefix < required)) break;
    ++below;
  }
  const int c = block_sum(below, iscratch);
  return min(n, c + 1);
}

// Whether pooled index i ranks among the first k (descending, lower index first) of x [0, n)
// with x[0] taken as +inf (the forced first block / diagonal).
__device__ __forceinline__ bool in_top(const float* x, int n, int i, int k) {
  const float v = i == 0 ? INFINITY : x[i];
  int rank = 0;
  for (int j = 0; j < n && rank < k; ++j) {
    const float w = j == 0 ? INFINITY : x[j];
    rank += before(w, j, v, i) ? 1 : 0;
  }
  return rank < k;
}

struct DecideArgs {
  Geometry g;
  int heads, group, D, probe_rows;
  float scale;
  FlexSettings s;
  const double *vertical, *slash;
  const unsigned long long* sorted;
  const float *qmean, *kpool;
  float *vblock, *sblock, *qk;
  unsigned char *vflag, *sflag;
  int* query_aware;
};

// One CTA per head: budgets, pooled vertical / slash scores, the query-awareness test and the
// chosen vertical blocks / slash diagonals (flags [heads][nkb]).
__global__ void __launch_bounds__(kThreads) decide_kernel(DecideArgs a) {
  __shared__ double dscratch[32];
  __shared__ int iscratch[32];
  __shared__ float fscratch[32];
  const Geometry& g = a.g;
  const int h = int(blockIdx.x), hk = h / a.group, nkb = g.nkb, bk = g.block_k;
  const int Lk = g.seq_k;
  const auto clamp_blocks = [&](int b) {
    return min(max(min(max(b, a.s.min_blocks), a.s.max_blocks), 0), nkb);
  };
  // 3. budgets: tokens covering gamma, // block + 1, clamped
  const int cover_v = cover_count(a.sorted + int64_t(h) * Lk, Lk, a.s.gamma, dscratch, iscratch);
  const int cover_s =
      cover_count(a.sorted + int64_t(a.heads + h) * Lk, Lk, a.s.gamma, dscratch, iscratch);
  int num_v = clamp_blocks(cover_v / bk + 1), num_s = clamp_blocks(cover_s / bk + 1);
  // pooled means of the per-row scores (pool_mean: f64 sum in token order, then float)
  const double rows = double(max(a.probe_rows, 1));
  float* vb = a.vblock + int64_t(h) * nkb;
  float* sb = a.sblock + int64_t(h) * nkb;
  const double* vt = a.vertical + int64_t(h) * Lk;
  const double* st = a.slash + int64_t(h) * Lk;
  for (int kb = int(threadIdx.x); kb < nkb; kb += int(blockDim.x)) {
    const int j0 = kb * bk, j1 = min(Lk, j0 + bk);
    double sv = 0, ss = 0;
    for (int j = j0; j < j1; ++j) {
      sv += vt[j] / rows;
      ss += st[j] / rows;
    }
    vb[kb] = float(sv / double(j1 - j0));
    sb[kb] = float(ss / double(j1 - j0));
  }
  // 4. pooled estimate of the last block: softmax(scale * qmean . kpool) over its visible blocks
  const int nvis = visible_blocks(g, g.nqb - 1);
  float* qk = a.qk + int64_t(h) * nkb;
  const float* qm = a.qmean + int64_t(h) * a.D;
  float mx = -INFINITY;
  for (int kb = int(threadIdx.x); kb < nvis; kb += int(blockDim.x)) {
    const float* kp = a.kpool + (int64_t(hk) * nkb + kb) * a.D;
    float dot = 0.f;
    for (int d = 0; d < a.D; ++d) dot = fmaf(qm[d], kp[d], dot);
    qk[kb] = a.scale * dot;
    mx = fmaxf(mx, qk[kb]);
  }
  mx = block_reduce(
      mx, [](float x, float y) { return fmaxf(x, y); }, fscratch);
  double esum = 0;
  for (int kb = int(threadIdx.x); kb < nvis; kb += int(blockDim.x)) {
    qk[kb] = expf(qk[kb] - mx);
    esum += qk[kb];
  }
  esum = block_sum(esum, dscratch);
  const float inv = float(1.0 / esum);
  double sa = 0, sbv = 0;
  for (int kb = int(threadIdx.x); kb < nvis; kb += int(blockDim.x)) {
    qk[kb] *= inv;
    sa += qk[kb];
    sbv += vb[kb];
  }
  sa = block_sum(sa, dscratch);
  sbv = block_sum(sbv, dscratch);
  double root = 1.0;  // the CPU's value for empty or all-zero distributions
  if (nvis > 0 && sa > 0 && sbv > 0) {
    double js = 0;
    for (int kb = int(threadIdx.x); kb < nvis; kb += int(blockDim.x)) {
      const double p = qk[kb] / sa, q = vb[kb] / sbv, m = 0.5 * (p + q);
      if (p > 0) js += 0.5 * p * log(p / m);
      if (q > 0) js += 0.5 * q * log(q / m);
    }
    js = block_sum(js, dscratch);
    root = sqrt(fmax(0.0, js));
  }
  const bool aware = root < a.s.tau;
  if (aware) num_v = num_s = clamp_blocks(a.s.min_blocks);
  // 5. top vertical blocks and slash diagonals, the first of each forced
  for (int kb = int(threadIdx.x); kb < nkb; kb += int(blockDim.x)) {
    a.vflag[int64_t(h) * nkb + kb] = in_top(vb, nkb, kb, num_v) ? 1 : 0;
    a.sflag[int64_t(h) * nkb + kb] = in_top(sb, nkb, kb, num_s) ? 1 : 0;
  }
  if (threadIdx.x == 0) a.query_aware[h] = aware ? 1 : 0;
}

// Sort keys of the pooled shares of heads h0.. (batch-relative head above bit 32, as desc_key)
// and entry ids.
__global__ void attn_keys_kernel(int64_t n, int64_t per_head, const float* attn,
                                 unsigned long long* keys, int* ids) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step) {
    keys[i] = desc_key(i / per_head, attn[i]);
    ids[i] = int(i % per_head);
  }
}

// One CTA per query-aware head of the batch: the sorted entries kept while the cumulative share
// stays below gamma * (rows with a visible key), positive ones only; marked in flags.
__global__ void __launch_bounds__(kThreads)
    attn_threshold_kernel(Geometry g, int h0, double gamma, int64_t per_head,
                          const unsigned long long* keys, const int* ids, const int* query_aware,
                          unsigned char* flags) {
  __shared__ double dscratch[32];
  __shared__ int iscratch[32];
  const int z = int(blockIdx.x), h = h0 + z;
  if (!query_aware[h]) return;
  int with_keys = 0;
  for (int qb = int(threadIdx.x); qb < g.nqb; qb += int(blockDim.x))
    with_keys += visible_blocks(g, qb) > 0 ? 1 : 0;
  const double required = gamma * double(block_sum(with_keys, iscratch));
  const unsigned long long* k = keys + int64_t(z) * per_head;
  const int* id = ids + int64_t(z) * per_head;
  const auto share = [&](int64_t i) { return desc_value(k[i]); };
  const int64_t per = (per_head + blockDim.x - 1) / blockDim.x;
  const int64_t i0 = min(per_head, int64_t(threadIdx.x) * per), i1 = min(i0 + per, per_head);
  double local = 0;
  for (int64_t i = i0; i < i1; ++i) local += share(i);
  double all;
  double prefix = block_exclusive_scan(local, dscratch, &all);
  unsigned char* f = flags + int64_t(h) * per_head;
  for (int64_t i = i0; i < i1; ++i) {
    const float v = share(i);
    if (!(v > 0.f) || !(prefix < required)) break;  // positives come first; prefixes grow
    f[id[i]] = 1;
    prefix += v;
  }
}

// One CTA per (head, query block): the kept pooled entries (query-aware heads), the vertical
// blocks, the key blocks diag - s of the slash diagonals s, the sink and diagonal blocks; the
// visible ones in ascending order.
__global__ void rows_kernel(Geometry g, const unsigned char* vflag, const unsigned char* sflag,
                            const unsigned char* aflag, const int* query_aware, int* counts,
                            int* lists) {
  extern __shared__ unsigned char mark[];  // [nkb]
  __shared__ int scratch[32];
  const int row = int(blockIdx.x), h = row / g.nqb, qb = row % g.nqb, nkb = g.nkb;
  const int nvis = visible_blocks(g, qb);
  const int q1 = min((qb + 1) * g.block_q, g.seq_q) - 1;
  const int diag = min(max(q1 + g.q_offset, 0), g.seq_k - 1) / g.block_k;
  const unsigned char* vf = vflag + int64_t(h) * nkb;
  const unsigned char* sf = sflag + int64_t(h) * nkb;
  const unsigned char* af = query_aware[h] ? aflag + (int64_t(h) * g.nqb + qb) * nkb : nullptr;
  for (int kb = int(threadIdx.x); kb < nkb; kb += int(blockDim.x)) {
    // slash diagonal s = diag - kb lands on key block kb
    const int s = diag - kb;
    mark[kb] = (vf[kb] | (s >= 0 && s < nkb ? sf[s] : 0) | (af ? af[kb] : 0)) ? 1 : 0;
  }
  __syncthreads();
  if (threadIdx.x == 0) mark_forced(g, qb, nvis, mark);
  __syncthreads();
  const int total = block_compact(mark, nvis, lists + int64_t(row) * nkb, scratch);
  if (threadIdx.x == 0) counts[row] = total;
}

size_t align256(size_t x) { return (x + 255) / 256 * 256; }

int bits_for(int n) {
  int b = 0;
  while ((1 << b) < n) ++b;
  return b;
}

// Heads per attention sort: the batch's entries stay below 2^30 (CUB's int item count).
int sort_heads(const Geometry& g, int heads) {
  const int64_t per = std::max<int64_t>(1, int64_t(g.nqb) * g.nkb);
  return int(std::clamp<int64_t>((int64_t(1) << 30) / per, 1, heads));
}

struct Layout {
  size_t keys = 0, sorted = 0, vblock = 0, sblock = 0, qk = 0, vflag = 0, sflag = 0, aware = 0,
         aflag = 0, akeys_in = 0, akeys_out = 0, ids_in = 0, ids_out = 0, temp = 0, total = 0;
  size_t token_bytes = 0, sort_bytes = 0;
};
Layout layout(const Geometry& g, int heads) {
  Layout s;
  const size_t n = 2 * size_t(heads) * size_t(g.seq_k), nb = size_t(heads) * size_t(g.nkb);
  const int bh = sort_heads(g, heads);
  const size_t na = size_t(bh) * size_t(g.nqb) * size_t(g.nkb);
  size_t at = 0;
  const auto take = [&](size_t& field, size_t bytes) {
    field = at;
    at += align256(std::max<size_t>(bytes, 1));
  };
  take(s.keys, n * sizeof(unsigned long long));
  take(s.sorted, n * sizeof(unsigned long long));
  take(s.vblock, nb * sizeof(float));
  take(s.sblock, nb * sizeof(float));
  take(s.qk, nb * sizeof(float));
  take(s.vflag, nb);
  take(s.sflag, nb);
  take(s.aware, size_t(heads) * sizeof(int));
  take(s.aflag, size_t(heads) * size_t(g.nqb) * size_t(g.nkb));
  take(s.akeys_in, na * sizeof(unsigned long long));
  take(s.akeys_out, na * sizeof(unsigned long long));
  take(s.ids_in, na * sizeof(int));
  take(s.ids_out, na * sizeof(int));
  cub::DeviceRadixSort::SortKeys(
      nullptr, s.token_bytes, static_cast<const unsigned long long*>(nullptr),
      static_cast<unsigned long long*>(nullptr), int(n), 0, 32 + bits_for(2 * heads));
  cub::DeviceRadixSort::SortPairs(
      nullptr, s.sort_bytes, static_cast<const unsigned long long*>(nullptr),
      static_cast<unsigned long long*>(nullptr), static_cast<const int*>(nullptr),
      static_cast<int*>(nullptr), int(na));
  take(s.temp, std::max(s.token_bytes, s.sort_bytes));
  s.total = at;
  return s;
}

}  // namespace

size_t flex_select_bytes(const Geometry& geo, int heads) { return layout(geo, heads).total; }

cudaError_t flex_select(const Geometry& geo, int heads, int group, int D, float scale,
                        const FlexSettings& s, const double* vertical, const double* slash,
                        const float* qmean, const float* kpool, const float* attn, void* scratch,
                        int* counts, int* lists, int* query_aware, cudaStream_t stream) {
  if (heads <= 0 || geo.seq_k <= 0 || geo.nkb <= 0 || group <= 0) return cudaErrorInvalidValue;
  const Layout L = layout(geo, heads);
  auto* base = static_cast<unsigned char*>(scratch);
  const auto at = [&](size_t off) { return static_cast<void*>(base + off); };
  auto* keys = static_cast<unsigned long long*>(at(L.keys));
  auto* sorted = static_cast<unsigned long long*>(at(L.sorted));
  auto* aware = static_cast<int*>(at(L.aware));
  auto* aflag = static_cast<unsigned char*>(at(L.aflag));
  const int64_t n = int64_t(heads) * geo.seq_k;
  tokens_kernel<<<int(std::min<int64_t>((2 * n + 255) / 256, 4096)), 256, 0, stream>>>(
      heads, geo.seq_k, double(std::max(s.probe_rows, 1)), vertical, slash, keys);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  size_t temp_bytes = L.token_bytes;
  e = cub::DeviceRadixSort::SortKeys(at(L.temp), temp_bytes,
                                     static_cast<const unsigned long long*>(keys), sorted,
                                     int(2 * n), 0, 32 + bits_for(2 * heads), stream);
  if (e != cudaSuccess) return e;
  DecideArgs a;
  a.g = geo;
  a.heads = heads;
  a.group = group;
  a.D = D;
  a.probe_rows = s.probe_rows;
  a.scale = scale;
  a.s = s;
  a.vertical = vertical;
  a.slash = slash;
  a.sorted = sorted;
  a.qmean = qmean;
  a.kpool = kpool;
  a.vblock = static_cast<float*>(at(L.vblock));
  a.sblock = static_cast<float*>(at(L.sblock));
  a.qk = static_cast<float*>(at(L.qk));
  a.vflag = static_cast<unsigned char*>(at(L.vflag));
  a.sflag = static_cast<unsigned char*>(at(L.sflag));
  a.query_aware = aware;
  decide_kernel<<<heads, kThreads, 0, stream>>>(a);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  // 5b. query-aware heads: pooled block attention kept globally by descending share
  const int64_t per_head = int64_t(geo.nqb) * geo.nkb;
  if ((e = cudaMemsetAsync(aflag, 0, size_t(heads) * size_t(per_head), stream)) != cudaSuccess)
    return e;
  const int bh = sort_heads(geo, heads);
  auto* akeys = static_cast<unsigned long long*>(at(L.akeys_in));
  auto* akeys_out = static_cast<unsigned long long*>(at(L.akeys_out));
  auto* ids = static_cast<int*>(at(L.ids_in));
  auto* ids_out = static_cast<int*>(at(L.ids_out));
  for (int h0 = 0; h0 < heads; h0 += bh) {
    const int nh = std::min(bh, heads - h0);
    const int64_t na = int64_t(nh) * per_head;
    attn_keys_kernel<<<int(std::min<int64_t>((na + 255) / 256, 8192)), 256, 0, stream>>>(
        na, per_head, attn + int64_t(h0) * per_head, akeys, ids);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
    size_t sort_bytes = L.sort_bytes;
    // stable: equal shares keep ascending entry order, the CPU's tie rule
    e = cub::DeviceRadixSort::SortPairs(
        at(L.temp), sort_bytes, static_cast<const unsigned long long*>(akeys), akeys_out,
        static_cast<const int*>(ids), ids_out, int(na), 0, 32 + bits_for(nh), stream);
    if (e != cudaSuccess) return e;
    attn_threshold_kernel<<<nh, kThreads, 0, stream>>>(geo, h0, s.gamma, per_head, akeys_out,
                                                       ids_out, aware, aflag);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
  }
  if (query_aware != nullptr &&
      (e = cudaMemcpyAsync(query_aware, aware, size_t(heads) * sizeof(int),
                           cudaMemcpyDeviceToDevice, stream)) != cudaSuccess)
    return e;
  // 6. rows
  rows_kernel<<<heads * geo.nqb, 256, size_t(geo.nkb), stream>>>(geo, a.vflag, a.sflag, aflag,
                                                                 aware, counts, lists);
  return cudaGetLastError();
}

}  // namespace sieve::attention::cuda::est
