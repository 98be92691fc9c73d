// Device kernels of the FlexPrefill port (peers_gpu.h: flex_select): per head the gamma budgets
// from the probe's sorted token scores, the pooled vertical / slash block scores, the
// Jensen-Shannon query-awareness test, the top vertical blocks and slash diagonals, the global
// cumulative selection of pooled block attention for query-aware heads and the rows. The sorts
// are device-wide radix sorts of all heads at once, the head (segment) in the key bits above 32.
// Mirrors selectors/flex_prefill.cpp step by step; the probe and the pooled inputs come from the
// shared building blocks (row_mass, pool_rows, stride_stats, block_scores).
//
// Where the f64 sums run in another order than the CPU's (the cumulative walks over sorted
// values), that order is fixed by a 1024-thread CTA per segment: thread t sums the chunk
// [t * per, (t + 1) * per) in order, the block scan (block_reduce.cuh) combines the chunks. The
// work around those walks is spread over the whole GPU (a warp per key block, per row), and the
// walks read their sorted values through shared memory, so no step is one latency-bound CTA per
// head any more; every value is the one the one-CTA-per-head kernels gave.
#include "peers_gpu.h"

#include "block_reduce.cuh"

#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>

namespace sieve::attention::cuda::est {

namespace {

// Threads of the CTAs that walk sorted values: the chunking and the scan order of the f64 sums.
constexpr int kThreads = 1024;
// Sorted values per shared-memory tile of a walk (at most ~198 KiB with the padding): one tile
// holds a 32K segment of token scores and the visible pooled entries of a head up to ~48K.
constexpr int64_t kStageValues = 49152;
constexpr int kWarps = 8;  // warps per CTA of the warp-per-item kernels

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

// One warp per (segment, key block): the sort keys of the block's tokens and the block's pooled
// score, pool_mean's f64 sum of vertical / rows (slash / rows) in token order, then float. Lanes
// load and divide 32 tokens at a time (coalesced); lane 0 adds them in order.
__global__ void __launch_bounds__(32 * kWarps)
    tokens_kernel(int heads, int seq_k, int nkb, int block_k, double rows, const double* vertical,
                  const double* slash, unsigned long long* keys, float* vblock, float* sblock) {
  __shared__ double part[kWarps][32];
  const int lane = int(threadIdx.x) & 31, w = int(threadIdx.x) >> 5;
  const int64_t item = int64_t(blockIdx.x) * kWarps + w;
  if (item >= 2 * int64_t(heads) * nkb) return;
  const int seg = int(item / nkb), kb = int(item % nkb);
  const bool is_slash = seg >= heads;
  const int h = is_slash ? seg - heads : seg;
  const double* src = (is_slash ? slash : vertical) + int64_t(h) * seq_k;
  unsigned long long* key = keys + int64_t(seg) * seq_k;
  const int j0 = kb * block_k, j1 = min(seq_k, j0 + block_k);
  double sum = 0;
  for (int c = j0; c < j1; c += 32) {
    const int j = c + lane;
    double q = 0;
    if (j < j1) {
      q = src[j] / rows;
      key[j] = desc_key(seg, float(q));
    }
    part[w][lane] = q;
    __syncwarp();
    if (lane == 0) {
      const int m = min(32, j1 - c);
      for (int i = 0; i < m; ++i) sum += part[w][i];
    }
    __syncwarp();
  }
  if (lane == 0) (is_slash ? sblock : vblock)[int64_t(h) * nkb + kb] = float(sum / double(j1 - j0));
}

// Shared-memory slot of a staged value: one pad word per 32 values, so that the threads' chunks
// of consecutive values fall in different banks.
__device__ __forceinline__ int staged_slot(int64_t j) { return int(j + (j >> 5)); }

// The sorted values of one segment as the walks see them: `span` positions in blockDim.x chunks
// of per = ceil(span / blockDim.x), thread t owning [t * per, (t + 1) * per); the first `present`
// positions hold keys, the rest are zeros (never read: adding +0 to a sum >= +0 changes nothing).
// Tiles of tile_threads whole chunks pass through shared memory (coalesced loads, then every
// thread reads its chunk there); tile_threads 0 (a chunk longer than a tile): global memory.
struct Chunks {
  const unsigned long long* keys;
  int64_t present, per, i0, i1;  // [i0, i1): this thread's present positions
  int tile_threads;
};
__device__ __forceinline__ Chunks chunks(const unsigned long long* keys, int64_t span,
                                         int64_t present, int tile_threads) {
  Chunks c;
  c.keys = keys;
  c.present = present;
  c.per = (span + blockDim.x - 1) / blockDim.x;
  const int64_t i0 = min(span, int64_t(threadIdx.x) * c.per), i1 = min(i0 + c.per, span);
  c.i0 = min(i0, present);
  c.i1 = min(i1, present);
  c.tile_threads = tile_threads;
  return c;
}

// Calls f(value) on the values of this thread's chunk in order until f returns false; `want`:
// whether this thread walks at all (tiles no thread wants are not loaded). `staged`: the first
// position of the tile in shared memory (-1: none), kept from one walk to the next, so that a
// tile still in place is not loaded again. All threads call it.
template <class F>
__device__ __forceinline__ void walk_chunks(const Chunks& c, float* stage, int64_t& staged,
                                            bool want, F&& f) {
  want = want && c.i0 < c.i1;
  if (c.tile_threads == 0) {
    if (want)
      for (int64_t i = c.i0; i < c.i1; ++i)
        if (!f(desc_value(c.keys[i]))) break;
    return;
  }
  for (int t0 = 0; t0 < int(blockDim.x); t0 += c.tile_threads) {
    const int64_t a = min(c.present, t0 * c.per);
    const int64_t b = min(c.present, (t0 + c.tile_threads) * c.per);
    if (a >= b) break;  // the same for every thread: later tiles hold nothing
    const bool mine = int(threadIdx.x) >= t0 && int(threadIdx.x) < t0 + c.tile_threads;
    // also keeps the previous tile's reads before this tile's stores
    if (!__syncthreads_or(mine && want)) continue;
    if (a != staged) {  // the same for every thread
#pragma unroll 8        // loads in flight per thread
      for (int64_t i = a + threadIdx.x; i < b; i += blockDim.x)
        stage[staged_slot(i - a)] = desc_value(c.keys[i]);
      __syncthreads();
      staged = a;
    }
    if (mine && want)
      for (int64_t i = c.i0; i < c.i1; ++i)
        if (!f(stage[staged_slot(i - a)])) break;
  }
}

// Host: threads per tile and dynamic shared memory of a walk over (span, present).
struct Staging {
  int tile_threads = 0;
  size_t bytes = 0;
};
Staging staging(int64_t span, int64_t present) {
  const int64_t per = std::max<int64_t>(1, (span + kThreads - 1) / kThreads);
  const int64_t tt = std::min<int64_t>(kThreads, kStageValues / per);
  if (tt == 0) return {};
  const int64_t values = std::max<int64_t>(1, std::min(present, tt * per));
  return {int(tt), size_t(values + values / 32 + 1) * sizeof(float)};
}

// One CTA per segment of sorted token scores: the entries, in descending order, needed for their
// sum to reach gamma * total (the CPU's cover_count); the sum and the prefixes in f64 over the
// sorted f32 values, chunked as above.
__global__ void __launch_bounds__(kThreads)
    cover_kernel(int n, double gamma, const unsigned long long* sorted, int tile_threads,
                 int* cover) {
  extern __shared__ float stage[];
  __shared__ double dscratch[32];
  __shared__ int iscratch[32];
  const Chunks c = chunks(sorted + int64_t(blockIdx.x) * n, n, n, tile_threads);
  int64_t staged = -1;
  double local = 0;
  walk_chunks(c, stage, staged, true, [&](float v) {
    local += v;
    return true;
  });
  double total;
  double prefix = block_exclusive_scan(local, dscratch, &total);
  const double required = gamma * total;
  // entries whose inclusive prefix stays below the requirement; fl(p + v) >= p for v >= 0, so a
  // chunk that starts at or above it counts none
  int below = 0;
  walk_chunks(c, stage, staged, prefix < required, [&](float v) {
    prefix += v;
    if (!(prefix < required)) return false;
    ++below;
    return true;
  });
  const int count = block_sum(below, iscratch);
  if (threadIdx.x == 0) cover[blockIdx.x] = min(n, count + 1);
}

// Rank of pooled index i in x [0, n) (descending, lower index first) with x[0] taken as +inf (the
// forced first block / diagonal): the lanes of a warp count the entries before it.
__device__ __forceinline__ int warp_rank(const float* x, int n, int i) {
  const float v = i == 0 ? INFINITY : x[i];
  int rank = 0;
  for (int j = int(threadIdx.x & 31); j < n; j += 32) {
    const float w = j == 0 ? INFINITY : x[j];
    rank += before(w, j, v, i) ? 1 : 0;
  }
  for (int o = 16; o > 0; o >>= 1) rank += __shfl_xor_sync(0xffffffffu, rank, o);
  return rank;
}

// x . y as one fma per element in element order (16-byte loads where aligned, batched so that
// the loads overlap the fma chain).
__device__ __forceinline__ float dot_in_order(const float* x, const float* y, int D) {
  float dot = 0.f;
  if (D % 4 == 0 && (reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(y)) % 16 == 0) {
    const auto* x4 = reinterpret_cast<const float4*>(x);
    const auto* y4 = reinterpret_cast<const float4*>(y);
#pragma unroll 8
    for (int d = 0; d < D / 4; ++d) {
      const float4 p = __ldg(x4 + d), q = __ldg(y4 + d);
      dot = fmaf(p.x, q.x, dot);
      dot = fmaf(p.y, q.y, dot);
      dot = fmaf(p.z, q.z, dot);
      dot = fmaf(p.w, q.w, dot);
    }
    return dot;
  }
  for (int d = 0; d < D; ++d) dot = fmaf(x[d], y[d], dot);
  return dot;
}

struct DecideArgs {
  Geometry g;
  int heads, group, D;
  float scale;
  FlexSettings s;
  const int* cover;
  const float *vblock, *sblock, *qmean, *kpool;
  float* qk;
  unsigned char *vflag, *sflag;
  int* query_aware;
  bool stage_blocks;  // the pooled scores fit in shared memory
};

// One CTA per head (1024 threads: the reductions' order): budgets, the query-awareness test and
// the chosen vertical blocks / slash diagonals (flags [heads][nkb]), ranked in parallel.
__global__ void __launch_bounds__(kThreads) decide_kernel(DecideArgs a) {
  extern __shared__ float pooled[];  // [2][nkb] when staged
  __shared__ double dscratch[32];
  __shared__ float fscratch[32];
  const Geometry& g = a.g;
  const int h = int(blockIdx.x), hk = h / a.group, nkb = g.nkb;
  const auto clamp_blocks = [&](int b) {
    return min(max(min(max(b, a.s.min_blocks), a.s.max_blocks), 0), nkb);
  };
  // 3. budgets: tokens covering gamma (cover_kernel), // block + 1, clamped
  int num_v = clamp_blocks(a.cover[h] / g.block_k + 1);
  int num_s = clamp_blocks(a.cover[a.heads + h] / g.block_k + 1);
  const float* vb = a.vblock + int64_t(h) * nkb;
  const float* sb = a.sblock + int64_t(h) * nkb;
  // 4. pooled estimate of the last block: softmax(scale * qmean . kpool) over its visible blocks
  const int nvis = visible_blocks(g, g.nqb - 1);
  float* qk = a.qk + int64_t(h) * nkb;
  const float* qm = a.qmean + int64_t(h) * a.D;
  float mx = -INFINITY;
  for (int kb = int(threadIdx.x); kb < nvis; kb += int(blockDim.x)) {
    qk[kb] = a.scale * dot_in_order(qm, a.kpool + (int64_t(hk) * nkb + kb) * a.D, a.D);
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
  // 5. top vertical blocks and slash diagonals, the first of each forced: one warp per entry of
  // either list ranks it (entries in shared memory where they fit)
  if (a.stage_blocks) {
    for (int kb = int(threadIdx.x); kb < nkb; kb += int(blockDim.x)) {
      pooled[kb] = vb[kb];
      pooled[nkb + kb] = sb[kb];
    }
    __syncthreads();
    vb = pooled;
    sb = pooled + nkb;
  }
  for (int e = int(threadIdx.x) >> 5; e < 2 * nkb; e += int(blockDim.x) >> 5) {
    const bool is_slash = e >= nkb;
    const int kb = is_slash ? e - nkb : e;
    const int rank = warp_rank(is_slash ? sb : vb, nkb, kb);
    if ((threadIdx.x & 31) == 0)
      (is_slash ? a.sflag : a.vflag)[int64_t(h) * nkb + kb] = rank < (is_slash ? num_s : num_v);
  }
  if (threadIdx.x == 0) a.query_aware[h] = aware ? 1 : 0;
}

// Sort keys (batch-relative head above bit 32, as desc_key) and entry ids (qb * nkb + kb) of the
// visible pooled shares of heads h0.., compacted: per head the rows' visible entries one after
// another, `present` in all. Only visible entries are sorted: the others are zero, sort behind
// every positive share and never count. One warp per (head of the batch, query block).
__global__ void __launch_bounds__(32 * kWarps)
    attn_keys_kernel(Geometry g, int rows, int64_t per_head, int64_t present, const float* attn,
                     unsigned long long* keys, int* ids) {
  const int lane = int(threadIdx.x) & 31;
  const int row = int(blockIdx.x) * kWarps + (int(threadIdx.x) >> 5);
  if (row >= rows) return;
  const int z = row / g.nqb, qb = row % g.nqb;
  int earlier = 0;  // visible entries of the rows before qb
  for (int r = lane; r < qb; r += 32) earlier += visible_blocks(g, r);
  for (int o = 16; o > 0; o >>= 1) earlier += __shfl_xor_sync(0xffffffffu, earlier, o);
  const int64_t at = int64_t(z) * present + earlier;
  const int nvis = visible_blocks(g, qb);
  const float* src = attn + int64_t(z) * per_head + int64_t(qb) * g.nkb;
  for (int kb = lane; kb < nvis; kb += 32) {
    keys[at + kb] = desc_key(z, src[kb]);
    ids[at + kb] = qb * g.nkb + kb;
  }
}

// One CTA per query-aware head of the batch: the sorted entries kept while the cumulative share
// stays below gamma * (rows with a visible key), positive ones only, chunked over the head's
// nqb * nkb positions (the invisible ones zeros past `present`); marked in flags.
__global__ void __launch_bounds__(kThreads)
    attn_threshold_kernel(Geometry g, int h0, double gamma, int64_t per_head, int64_t present,
                          const unsigned long long* keys, const int* ids, const int* query_aware,
                          int tile_threads, unsigned char* flags) {
  extern __shared__ float stage[];
  __shared__ double dscratch[32];
  __shared__ int iscratch[32];
  __shared__ int kept[kThreads];
  const int z = int(blockIdx.x), h = h0 + z;
  if (!query_aware[h]) return;
  int with_keys = 0;
  for (int qb = int(threadIdx.x); qb < g.nqb; qb += int(blockDim.x))
    with_keys += visible_blocks(g, qb) > 0 ? 1 : 0;
  const double required = gamma * double(block_sum(with_keys, iscratch));
  const Chunks c = chunks(keys + int64_t(z) * present, per_head, present, tile_threads);
  int64_t staged = -1;
  double local = 0;
  walk_chunks(c, stage, staged, true, [&](float v) {
    local += v;
    return true;
  });
  double all;
  double prefix = block_exclusive_scan(local, dscratch, &all);
  int n = 0;  // the kept entries: a prefix of the chunk
  walk_chunks(c, stage, staged, prefix < required, [&](float v) {
    if (!(v > 0.f) || !(prefix < required)) return false;  // positives come first; prefixes grow
    ++n;
    prefix += v;
    return true;
  });
  kept[threadIdx.x] = n;
  // past the last kept position (the barriers inside also publish kept)
  const int end = block_reduce(
      n > 0 ? int(c.i0) + n : 0, [](int x, int y) { return max(x, y); }, iscratch);
  const int* id = ids + int64_t(z) * present;
  unsigned char* f = flags + int64_t(h) * per_head;
  const int per = int(c.per);  // present < 2^30 (sort_heads)
  // unrolled: the ids are loaded ahead of the tests
#pragma unroll 4
  for (int i = int(threadIdx.x); i < end; i += int(blockDim.x)) {
    const int t = i / per, e = id[i];
    if (i - t * per < kept[t]) f[e] = 1;
  }
}

// One warp per (head, query block) row: the kept pooled entries (query-aware heads), the vertical
// blocks, the key blocks diag - s of the slash diagonals s, the sink and diagonal blocks
// (mark_forced); the visible ones in ascending order, compacted by ballots.
__global__ void __launch_bounds__(32 * kWarps)
    rows_kernel(Geometry g, int rows, const unsigned char* vflag, const unsigned char* sflag,
                const unsigned char* aflag, const int* query_aware, int* counts, int* lists) {
  const int lane = int(threadIdx.x) & 31;
  const int row = int(blockIdx.x) * kWarps + (int(threadIdx.x) >> 5);
  if (row >= rows) return;
  const int h = row / g.nqb, qb = row % g.nqb, nkb = g.nkb;
  const int nvis = visible_blocks(g, qb);
  const int q0 = qb * g.block_q, q1 = min(q0 + g.block_q, g.seq_q) - 1;
  const int first = max(min(max(q0 + g.q_offset, 0), g.seq_k - 1) / g.block_k, 1);
  const int diag = min(max(q1 + g.q_offset, 0), g.seq_k - 1) / g.block_k;
  const unsigned char* vf = vflag + int64_t(h) * nkb;
  const unsigned char* sf = sflag + int64_t(h) * nkb;
  const unsigned char* af = query_aware[h] ? aflag + int64_t(row) * nkb : nullptr;
  int* out = lists + int64_t(row) * nkb;
  int n = 0;
  for (int c = 0; c < nvis; c += 32) {
    const int kb = c + lane;
    bool m = false;
    if (kb < nvis) {
      const int s = diag - kb;  // slash diagonal s lands on key block kb
      m = kb == 0 || (kb >= first && kb <= diag) || vf[kb] != 0 ||
          (s >= 0 && s < nkb && sf[s] != 0) || (af != nullptr && af[kb] != 0);
    }
    const unsigned ballot = __ballot_sync(0xffffffffu, m);
    if (m) out[n + __popc(ballot & ((1u << lane) - 1u))] = kb;
    n += __popc(ballot);
  }
  if (lane == 0) counts[row] = n;
}

int bits_for(int n) {
  int b = 0;
  while ((1 << b) < n) ++b;
  return b;
}

// Visible pooled entries of one head (the attention sort's items per head).
int64_t visible_entries(const Geometry& g) {
  int64_t n = 0;
  for (int qb = 0; qb < g.nqb; ++qb) n += visible_blocks(g, qb);
  return n;
}

// Heads per attention sort: the batch's entries stay below 2^30 (CUB's int item count).
int sort_heads(int64_t present, int heads) {
  return int(std::clamp<int64_t>((int64_t(1) << 30) / std::max<int64_t>(1, present), 1, heads));
}

struct Layout {
  size_t keys = 0, sorted = 0, vblock = 0, sblock = 0, qk = 0, cover = 0, vflag = 0, sflag = 0,
         aware = 0, aflag = 0, akeys_in = 0, akeys_out = 0, ids_in = 0, ids_out = 0, temp = 0,
         total = 0;
  size_t token_bytes = 0, sort_bytes = 0;
  int64_t present = 0;  // visible pooled entries per head
};
Layout layout(const Geometry& g, int heads) {
  Layout s;
  const size_t n = 2 * size_t(heads) * size_t(g.seq_k), nb = size_t(heads) * size_t(g.nkb);
  s.present = visible_entries(g);
  const int bh = sort_heads(s.present, heads);
  const size_t na = size_t(bh) * size_t(s.present);
  ScratchCarver carve;
  s.keys = carve.take(n * sizeof(unsigned long long));
  s.sorted = carve.take(n * sizeof(unsigned long long));
  s.vblock = carve.take(nb * sizeof(float));
  s.sblock = carve.take(nb * sizeof(float));
  s.qk = carve.take(nb * sizeof(float));
  s.cover = carve.take(2 * size_t(heads) * sizeof(int));
  s.vflag = carve.take(nb);
  s.sflag = carve.take(nb);
  s.aware = carve.take(size_t(heads) * sizeof(int));
  s.aflag = carve.take(size_t(heads) * size_t(g.nqb) * size_t(g.nkb));
  s.akeys_in = carve.take(na * sizeof(unsigned long long));
  s.akeys_out = carve.take(na * sizeof(unsigned long long));
  s.ids_in = carve.take(na * sizeof(int));
  s.ids_out = carve.take(na * sizeof(int));
  cub::DeviceRadixSort::SortKeys(
      nullptr, s.token_bytes, static_cast<const unsigned long long*>(nullptr),
      static_cast<unsigned long long*>(nullptr), int(n), 0, 32 + bits_for(2 * heads));
  cub::DeviceRadixSort::SortPairs(
      nullptr, s.sort_bytes, static_cast<const unsigned long long*>(nullptr),
      static_cast<unsigned long long*>(nullptr), static_cast<const int*>(nullptr),
      static_cast<int*>(nullptr), int(na));
  s.temp = carve.take(std::max(s.token_bytes, s.sort_bytes));
  s.total = carve.total;
  return s;
}

// Dynamic shared memory of a kernel above the default 48 KiB needs the attribute first.
template <class Kernel>
cudaError_t allow_smem(Kernel* kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
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
  auto* vblock = static_cast<float*>(at(L.vblock));
  auto* sblock = static_cast<float*>(at(L.sblock));
  auto* cover = static_cast<int*>(at(L.cover));
  auto* vflag = static_cast<unsigned char*>(at(L.vflag));
  auto* sflag = static_cast<unsigned char*>(at(L.sflag));
  auto* aware = static_cast<int*>(at(L.aware));
  auto* aflag = static_cast<unsigned char*>(at(L.aflag));
  // 1-3. token sort keys and pooled block scores, the sort, the budgets' token counts
  const int64_t items = 2 * int64_t(heads) * geo.nkb;
  tokens_kernel<<<int((items + kWarps - 1) / kWarps), 32 * kWarps, 0, stream>>>(
      heads, geo.seq_k, geo.nkb, geo.block_k, double(std::max(s.probe_rows, 1)), vertical, slash,
      keys, vblock, sblock);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  const int64_t n = 2 * int64_t(heads) * geo.seq_k;
  size_t temp_bytes = L.token_bytes;
  e = cub::DeviceRadixSort::SortKeys(at(L.temp), temp_bytes,
                                     static_cast<const unsigned long long*>(keys), sorted, int(n),
                                     0, 32 + bits_for(2 * heads), stream);
  if (e != cudaSuccess) return e;
  const Staging tokens = staging(geo.seq_k, geo.seq_k);
  if ((e = allow_smem(cover_kernel, tokens.bytes)) != cudaSuccess) return e;
  cover_kernel<<<2 * heads, kThreads, tokens.bytes, stream>>>(geo.seq_k, s.gamma, sorted,
                                                              tokens.tile_threads, cover);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  // 4-5. the query-awareness test and the top vertical blocks / slash diagonals
  DecideArgs a;
  a.g = geo;
  a.heads = heads;
  a.group = group;
  a.D = D;
  a.scale = scale;
  a.s = s;
  a.cover = cover;
  a.vblock = vblock;
  a.sblock = sblock;
  a.qmean = qmean;
  a.kpool = kpool;
  a.qk = static_cast<float*>(at(L.qk));
  a.vflag = vflag;
  a.sflag = sflag;
  a.query_aware = aware;
  const size_t pooled_bytes = 2 * size_t(geo.nkb) * sizeof(float);
  a.stage_blocks = pooled_bytes <= 48 * 1024;
  decide_kernel<<<heads, kThreads, a.stage_blocks ? pooled_bytes : 0, stream>>>(a);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  // 5b. query-aware heads: pooled block attention kept globally by descending share
  const int64_t per_head = int64_t(geo.nqb) * geo.nkb;
  if ((e = cudaMemsetAsync(aflag, 0, size_t(heads) * size_t(per_head), stream)) != cudaSuccess)
    return e;
  const int bh = sort_heads(L.present, heads);
  auto* akeys = static_cast<unsigned long long*>(at(L.akeys_in));
  auto* akeys_out = static_cast<unsigned long long*>(at(L.akeys_out));
  auto* ids = static_cast<int*>(at(L.ids_in));
  auto* ids_out = static_cast<int*>(at(L.ids_out));
  const Staging pooled = staging(per_head, L.present);
  if ((e = allow_smem(attn_threshold_kernel, pooled.bytes)) != cudaSuccess) return e;
  for (int h0 = 0; h0 < heads && L.present > 0; h0 += bh) {
    const int nh = std::min(bh, heads - h0);
    const int key_rows = nh * geo.nqb;
    attn_keys_kernel<<<(key_rows + kWarps - 1) / kWarps, 32 * kWarps, 0, stream>>>(
        geo, key_rows, per_head, L.present, attn + int64_t(h0) * per_head, akeys, ids);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
    size_t sort_bytes = L.sort_bytes;
    // stable: equal shares keep ascending entry order, the CPU's tie rule
    e = cub::DeviceRadixSort::SortPairs(at(L.temp), sort_bytes,
                                        static_cast<const unsigned long long*>(akeys), akeys_out,
                                        static_cast<const int*>(ids), ids_out,
                                        int(int64_t(nh) * L.present), 0, 32 + bits_for(nh), stream);
    if (e != cudaSuccess) return e;
    attn_threshold_kernel<<<nh, kThreads, pooled.bytes, stream>>>(
        geo, h0, s.gamma, per_head, L.present, akeys_out, ids_out, aware, pooled.tile_threads,
        aflag);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
  }
  if (query_aware != nullptr &&
      (e = cudaMemcpyAsync(query_aware, aware, size_t(heads) * sizeof(int),
                           cudaMemcpyDeviceToDevice, stream)) != cudaSuccess)
    return e;
  // 6. rows
  const int rows = heads * geo.nqb;
  if (rows == 0) return cudaSuccess;
  rows_kernel<<<(rows + kWarps - 1) / kWarps, 32 * kWarps, 0, stream>>>(
      geo, rows, vflag, sflag, aflag, aware, counts, lists);
  return cudaGetLastError();
}

}  // namespace sieve::attention::cuda::est
