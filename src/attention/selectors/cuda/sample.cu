// Device kernels of the SampleAttention and vertical-slash ports (peers_gpu.h): chunked row
// sampling, the exact softmax of listed query rows on tensor cores reduced to column masses
// (sample) or to column and diagonal sums (vslash's probe), sample's cumulative column selection
// (a per-head radix select; device-wide CUB radix sorts under SIEVE_SAMPLE_STAGE2=sort) with the
// dense fallback and vslash's top-k (device-wide CUB radix sorts). Mirrors
// selectors/sample_attention.cpp and vertical_slash.cpp step by step; docs/cuda.md lists the
// differences.
#include "peers_gpu.h"

#include "block_reduce.cuh"
#include "row_softmax.cuh"
#include "sieve/attention/cuda/ptx.cuh"

#include <cub/device/device_radix_sort.cuh>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace sieve::attention::cuda::est {

namespace {

using rows::kKeys;
using rows::kProbeMass;
using rows::kSampleMass;
using rows::kStats;

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

// Key tiles per split (grid x) of a row tile: enough CTAs to fill the GPU (~4 per SM) also when
// few rows are listed (vslash's probe: 64 rows per head), at least 8 tiles per split. (~8 per SM
// measured the same for sample on the H200, 2026-11-29.)
int tiles_per_split(int n_rows, int heads, int seq_k, int cta_rows) {
  const int row_tiles = (n_rows + cta_rows - 1) / cta_rows, tiles = (seq_k + kKeys - 1) / kKeys;
  const int want = std::max(1, (4 * 132 + row_tiles * heads - 1) / std::max(1, row_tiles * heads));
  const int per = std::max(8, (tiles + want - 1) / want);
  return std::min(per, std::max(tiles, 1));
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

// The Hopper row kernel's lean epilogue (row_softmax.cuh, kLean: the same arithmetic in fewer
// instructions) is the default since it gave identical patterns and a 5-10 % faster stage 1 on
// the H200 (docs/results/gpu-attention.md, session 7); SIEVE_ROWS_EPI=default selects the
// earlier epilogue (A/B and tests). Read at every launch so that tests can switch it.
bool rows_epi_lean() {
  const char* v = std::getenv("SIEVE_ROWS_EPI");  // NOLINT(concurrency-mt-unsafe)
  return v == nullptr || std::strcmp(v, "default") != 0;
}

}  // namespace

bool sample_mass_skips_covered() {
  const char* v = std::getenv("SIEVE_SAMPLE_MASS");  // NOLINT(concurrency-mt-unsafe)
  return v == nullptr || std::strcmp(v, "full") != 0;
}

namespace {

// Listed rows per CTA of a sweep. On Hopper the statistics sweep and the probes' mass sweep take
// 64 rows (one warpgroup, 4 CTAs an SM): sample's statistics sweep at 32K 621 -> 530 us (ncu),
// vslash's selector 6-35 % faster (docs/results/gpu-attention.md, session 15, job D); sample's
// mass sweep keeps 128 (its 64-row form read 674 -> 850 us). SIEVE_ROWS_CTA=128 runs every sweep
// at 128 (the earlier form: A/B and tests); the mma.sync kernels always take 128. Read at every
// call.
int cta_rows(int mode) {
  if (!use_wgmma() || mode == kSampleMass) return 128;
  const char* v = std::getenv("SIEVE_ROWS_CTA");  // NOLINT(concurrency-mt-unsafe)
  return v != nullptr && std::strcmp(v, "128") == 0 ? 128 : 64;
}

template <class T, int D, int kMode>
cudaError_t launch_rows(const HeadInputs& in, const Geometry& g, const RowProblem& pb,
                        int cta, int split_tiles, int splits, const float* row_max,
                        const float* row_inv, float* part_m, double* part_l,
                        cudaStream_t stream) {
  if (use_wgmma())  // Hopper: the wgmma instantiation (sm90a/row_softmax_wgmma.cu)
    return rows::launch_rows_wgmma(kMode, rows_epi_lean(), cta, in, g, pb, split_tiles, splits,
                                   row_max, row_inv, part_m, part_l, stream);
  return rows::launch_row_kernel<T, D, kMode, false>(in, g, pb, split_tiles, splits, row_max,
                                                     row_inv, part_m, part_l, stream);
}

// Key tiles per split and splits of a sweep whose CTAs hold `cta` rows.
struct Splits {
  int per, count;
};
Splits splits_for(int n_rows, int heads, int seq_k, int cta) {
  const int per = tiles_per_split(n_rows, heads, seq_k, cta);
  return {per, std::max(1, ((seq_k + kKeys - 1) / kKeys + per - 1) / per)};
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

// The outputs the mass sweep adds to, zeroed: col (and slash when probing) [heads][seq_k], covered
// and counted [heads] (sample).
cudaError_t zero_mass_outputs(const HeadInputs& in, const Geometry& geo, const RowProblem& pb,
                              bool probe, cudaStream_t stream) {
  const size_t n = size_t(in.heads_q) * size_t(geo.seq_k) * sizeof(double);
  cudaError_t e = cudaMemsetAsync(pb.col, 0, n, stream);
  if (e == cudaSuccess && probe) e = cudaMemsetAsync(pb.slash, 0, n, stream);
  if (e == cudaSuccess && !probe)
    e = cudaMemsetAsync(pb.covered, 0, size_t(in.heads_q) * sizeof(double), stream);
  if (e == cudaSuccess && !probe)
    e = cudaMemsetAsync(pb.counted, 0, size_t(in.heads_q) * sizeof(double), stream);
  return e;
}

template <class T, int D>
cudaError_t row_mass_typed(const HeadInputs& in, const Geometry& g, const RowProblem& pb,
                           bool probe, void* scratch, cudaStream_t stream) {
  const int cs = cta_rows(kStats), cm = cta_rows(probe ? kProbeMass : kSampleMass);
  const Splits st = splits_for(pb.n_rows, in.heads_q, g.seq_k, cs);
  const Splits ms = splits_for(pb.n_rows, in.heads_q, g.seq_k, cm);
  const RowScratch s = row_scratch(scratch, in.heads_q, pb.n_rows, st.count);
  cudaError_t e = launch_rows<T, D, kStats>(in, g, pb, cs, st.per, st.count, nullptr, nullptr,
                                            s.part_m, s.part_l, stream);
  // the mass sweep's outputs are zeroed after the statistics sweep is launched, so the GPU does
  // not wait for these launches (a few us of host time each) before the first long kernel
  if (e == cudaSuccess) e = zero_mass_outputs(in, g, pb, probe, stream);
  if (e != cudaSuccess) return e;
  const int n = in.heads_q * pb.n_rows;
  combine_rows_kernel<<<(n + 255) / 256, 256, 0, stream>>>(n, st.count, s.part_m, s.part_l,
                                                           s.row_max, s.row_inv);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  return probe ? launch_rows<T, D, kProbeMass>(in, g, pb, cm, ms.per, ms.count, s.row_max,
                                               s.row_inv, nullptr, nullptr, stream)
               : launch_rows<T, D, kSampleMass>(in, g, pb, cm, ms.per, ms.count, s.row_max,
                                                s.row_inv, nullptr, nullptr, stream);
}

// ---- stage 2: cumulative column selection
// ---------------------------------------------------------

// Under SIEVE_SAMPLE_STAGE2=sort, stage 2 sorts every head's columns at once: all masses by
// descending value (stable), then by head (stable, the few head bits only), which leaves each
// head's columns in descending order with ties in ascending key order: two device-wide radix
// sorts instead of one CTA per head. The default selects without sorting (below).
struct Stage2Layout {
  size_t keys = 0, ids_a = 0, ids_b = 0, ids_out = 0, hk_in = 0, hk_out = 0, flags = 0, dense = 0,
         ncol = 0, temp = 0, total = 0;
  size_t temp_bytes = 0;
};
int bits_for(int n) {
  int b = 0;
  while ((1 << b) < n) ++b;
  return std::max(b, 1);
}

Stage2Layout stage2_layout(int heads, int seq_k) {
  const size_t n = size_t(heads) * size_t(seq_k);
  Stage2Layout s;
  ScratchCarver carve;
  s.keys = carve.take(n * sizeof(double));
  s.ids_a = carve.take(n * sizeof(int));
  s.ids_b = carve.take(n * sizeof(int));
  s.ids_out = carve.take(n * sizeof(int));
  s.hk_in = carve.take(n * sizeof(int));
  s.hk_out = carve.take(n * sizeof(int));
  s.flags = carve.take(n);
  s.dense = carve.take(size_t(heads) * sizeof(int));
  s.ncol = carve.take(size_t(heads) * sizeof(int));
  size_t by_value = 0, by_head = 0;
  cub::DeviceRadixSort::SortPairsDescending(
      nullptr, by_value, static_cast<const double*>(nullptr), static_cast<double*>(nullptr),
      static_cast<const int*>(nullptr), static_cast<int*>(nullptr), int(n));
  cub::DeviceRadixSort::SortPairs(nullptr, by_head, static_cast<const int*>(nullptr),
                                  static_cast<int*>(nullptr), static_cast<const int*>(nullptr),
                                  static_cast<int*>(nullptr), int(n), 0, bits_for(heads));
  s.temp_bytes = std::max(by_value, by_head);
  s.temp = carve.take(s.temp_bytes);
  s.total = carve.total;
  return s;
}

__global__ void iota_kernel(int64_t n, int* ids) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += step)
    ids[i] = int(i);
}

// head (vslash: segment) of each flat column id (the second sort's key)
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

// ---- stage 2 without sorting: a per-head radix select (the default)
// ----------------------------------------------------------------------------------------------
// The cumulative rule keeps, in descending mass order (ties: ascending key), the columns i with
// covered + (mass before i) < required = alpha * counted. For positive doubles the bit pattern
// read as uint64 orders like the value, so the last kept column's mass t* is found digit by digit
// (9 bits a pass, 7 passes over the 63 bits below the sign): each pass histograms (count, mass)
// per digit of the columns whose higher bits equal the prefix found so far, and the bins are
// scanned from the top to the one where covered + (mass above it) + (its mass) reaches the
// requirement. The kept set is then: mass > t*, plus the first `ties` columns (key order) of
// mass == t*; a crossing bin that holds one column is resolved at once with its lower bound as
// t* (the bin holds nothing else, so key >= bound keeps exactly it and the bins above).
// Non-positive and NaN masses are never kept (key 0; the CPU's `col > 0` filter).
// The bins' masses are fixed-point integers: each column's mass times 2^(60 - e), 2^e > counted
// (the masses of a head add up to at most its counted rows, so no sum overflows 64 bits), i.e. a
// resolution of 2^-49 at counted ~ 1600. Integer sums do not depend on the order of the
// additions, so the CTA's histogram is built by shared-memory atomics (one copy per warp; the
// mass in four 15-bit limbs so that 32-bit atomics cannot overflow), added into the head's
// histogram of the pass by global atomics, and every run gives the same bits. Exactness: the
// same set as the sorted walk except where the requirement falls within the rounding of the sums
// (f64 there, 2^-49 per column here). Grid: chunks x heads CTAs per pass; the last CTA of a head
// to finish (a ticket counter) reads the head's histogram and scans, so a pass is one launch;
// later passes of resolved heads return at once (a head is resolved as soon as its crossing bin
// holds one column, usually after 3-4 passes).
// Measured on the H200 (ncu, 32K; docs/results/gpu-attention.md, session 16): the seven passes
// took 86 us per call with f64 bin sums (per-bin warp shuffles in lane order, chunk partials
// reduced by the last CTA; session 15 job A), 66.8 us this way (session 16 job B). Most of a
// working pass is its CTAs' serial chain (barriers, fences, the ticket, the scan).
constexpr int kSelBits = 9, kSelBins = 1 << kSelBits, kSelPasses = 7;  // 7 x 9 = 63 bits
constexpr int kSelThreads = 128, kSelWarps = kSelThreads / 32, kSelUnroll = 8;
constexpr int kSelGroups = 32, kSelGroupBins = kSelBins / kSelGroups;  // the scan's two levels
constexpr int kSelLimbs = 4, kSelLimbBits = 15;                         // 60-bit fixed point
constexpr int kSelFixedBits = kSelLimbs * kSelLimbBits;
enum : int { kSearching = 0, kResolved = 1 };

struct SelState {
  unsigned long long prefix;  // searching: key bits fixed so far; resolved: the threshold key
  double acc;                 // covered + mass of the columns above the prefix's range
  int above;                  // number of those columns
  int status;
  int ties;        // resolved: columns with key == prefix that are kept (the first in key order)
  int n_eq;        // resolved: columns with key == prefix
  int count;       // resolved: columns kept
  int rank_digit;  // resolved with ties < n_eq (last pass): the digit of the per-chunk counts
};

// Chunks (CTAs) per head of a pass: at least 2048 columns each, at most 32 up to 8M keys (the
// mark kernel's tie ranking reads the earlier chunks' counts), then at most 2^18 columns each, so
// that a warp's limbs (at most chunk_len / 4 values below 2^15 each) stay below 2^31.
int select_chunks(int seq_k) {
  const int64_t n = seq_k;
  const int64_t cap = std::max<int64_t>(32, (n + (1 << 18) - 1) >> 18);
  return int(std::max<int64_t>(1, std::min(cap, (n + 2047) / 2048)));
}

__device__ inline unsigned long long mass_key(double x) {
  return x > 0 ? static_cast<unsigned long long>(__double_as_longlong(x)) : 0ull;
}

// The fixed-point scale of head h: 2^(60 - e) with 2^e > counted (e >= 0).
__device__ inline int fixed_exponent(double counted) {
  const int e = counted >= 1.0 ? ilogb(counted) + 1 : 0;
  return kSelFixedBits - min(e, kSelFixedBits);
}
// x times the scale (a power of two: exact), saturated at 2^60 - 1 (a mass above counted: bad input)
__device__ inline unsigned long long to_fixed(double x, double scale) {
  return __double2ull_rz(fmin(x * scale, 1152921504606846975.0));
}

// Adds one column (digit `bin`, fixed-point mass f) to the warp's histogram (cnt [bins], limb
// [kSelLimbs][bins]) by shared-memory atomics. Summing the lanes of a bin over the warp first
// (__match_any_sync, then __reduce_add_sync per limb where the lanes fall into at most 4 bins)
// was slower on the H200: the seven passes took 77.5 against 66.8 us per call at 32K (ncu
// medians over 12 calls, session 16 jobs B and C).
__device__ inline void add_to_histogram(unsigned bin, unsigned long long f, unsigned* cnt,
                                        unsigned (*limb)[kSelBins]) {
  atomicAdd(cnt + bin, 1u);
#pragma unroll
  for (int l = 0; l < kSelLimbs; ++l)
    atomicAdd(&limb[l][bin], unsigned(f >> (kSelLimbBits * l)) & ((1u << kSelLimbBits) - 1));
}

// Pass `pass` of the select (grid chunks x heads, kSelThreads threads): chunk blockIdx.x's
// histogram, built in shared memory, is added by global atomics into the head's histogram of the
// pass, hist_cnt / hist_sum [passes][heads][bins] (zeroed before the first pass; fixed-point
// masses), and its counts written to part_cnt [heads][chunks][bins] (select_mark_kernel ranks
// ties by them); the head's last CTA reads the histogram and moves the head's state on (or
// resolves it). Pass 0 also starts the state from covered / counted and zeroes ncol for
// select_mark_kernel. (Reducing the per-chunk partials in the last CTA instead, with its serial
// L2 reads, took 4-5 us more per working pass at 32K; H200, ncu, session 16 jobs A and B.)
__global__ void __launch_bounds__(kSelThreads)
    select_pass_kernel(int pass, int seq_k, int chunks, int chunk_len, const double* col,
                       const double* covered, const double* counted, double alpha,
                       SelState* state, int* arrive, unsigned* hist_cnt,
                       unsigned long long* hist_sum, unsigned* part_cnt, int* ncol) {
  __shared__ unsigned s_cnt[kSelWarps][kSelBins];
  __shared__ unsigned s_limb[kSelWarps][kSelLimbs][kSelBins];
  __shared__ unsigned g_cnt[kSelGroups];
  __shared__ double g_sum[kSelGroups];
  __shared__ int s_last;
  const int h = int(blockIdx.y), c = int(blockIdx.x), tid = int(threadIdx.x);
  const int lane = tid & 31, warp = tid >> 5;
  const int shift = 63 - kSelBits * (pass + 1);
  unsigned long long prefix = 0;
  if (pass > 0) {
    if (state[h].status != kSearching) return;
    prefix = state[h].prefix;
  }
  const int fe = fixed_exponent(counted[h]);
  const double scale = ldexp(1.0, fe);
  for (int i = tid; i < kSelWarps * kSelBins; i += kSelThreads) {
    s_cnt[i / kSelBins][i % kSelBins] = 0;
#pragma unroll
    for (int l = 0; l < kSelLimbs; ++l) s_limb[i / kSelBins][l][i % kSelBins] = 0;
  }
  __syncthreads();
  const unsigned long long hi = prefix >> (shift + kSelBits);
  const int64_t row = int64_t(h) * seq_k;
  const int b0 = c * chunk_len, b1 = min(b0 + chunk_len, seq_k);
  constexpr int kTile = 32 * kSelUnroll;
  for (int t0 = b0 + warp * kTile; t0 < b1; t0 += kSelWarps * kTile) {  // warp-uniform
    double v[kSelUnroll];
#pragma unroll
    for (int u = 0; u < kSelUnroll; ++u) {
      const int i = t0 + u * 32 + lane;
      v[u] = i < b1 ? col[row + i] : 0.0;
    }
#pragma unroll
    for (int u = 0; u < kSelUnroll; ++u) {
      const unsigned long long key = mass_key(v[u]);
      if (key != 0 && (key >> (shift + kSelBits)) == hi)
        add_to_histogram(unsigned(key >> shift) & unsigned(kSelBins - 1), to_fixed(v[u], scale),
                         s_cnt[warp], s_limb[warp]);
    }
  }
  __syncthreads();
  const int64_t part = (int64_t(h) * chunks + c) * kSelBins;
  const int64_t hist = (int64_t(pass) * gridDim.y + h) * kSelBins;
  for (int b = tid; b < kSelBins; b += kSelThreads) {
    unsigned n = 0;
    unsigned long long s = 0;
    for (int w = 0; w < kSelWarps; ++w) {
      n += s_cnt[w][b];
#pragma unroll
      for (int l = 0; l < kSelLimbs; ++l)
        s += static_cast<unsigned long long>(s_limb[w][l][b]) << (kSelLimbBits * l);
    }
    part_cnt[part + b] = n;
    if (n != 0) {
      atomicAdd(hist_cnt + hist + b, n);
      atomicAdd(hist_sum + hist + b, s);
    }
  }
  __threadfence();  // the partials before the ticket
  __syncthreads();
  if (tid == 0) s_last = atomicAdd(&arrive[h], 1) == chunks - 1 ? 1 : 0;
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  // the head's last CTA: the pass's histogram (L2 reads: added by every chunk's CTA; integer
  // sums, so the order of the atomics does not matter), then 32 groups of 16 bins from the top
  unsigned* cnt = s_cnt[0];
  auto* fsum = reinterpret_cast<unsigned long long*>(&s_limb[0][0][0]);  // [kSelBins]
  for (int b = tid; b < kSelBins; b += kSelThreads) {
    cnt[b] = __ldcg(hist_cnt + hist + b);
    fsum[b] = __ldcg(hist_sum + hist + b);
  }
  __syncthreads();
  const auto mass = [&](unsigned long long s) { return ldexp(double(s), -fe); };
  if (tid < kSelGroups) {
    unsigned n = 0;
    unsigned long long s = 0;
    for (int j = 0; j < kSelGroupBins; ++j) {
      const int b = kSelBins - 1 - tid * kSelGroupBins - j;
      n += cnt[b];
      s += fsum[b];
    }
    g_cnt[tid] = n;
    g_sum[tid] = mass(s);
  }
  __syncthreads();
  if (tid != 0) return;
  arrive[h] = 0;  // for the next pass
  SelState st = pass == 0 ? SelState{} : state[h];
  if (pass == 0) {
    st.prefix = 0;
    st.acc = covered[h];
    st.above = 0;
    ncol[h] = 0;
  }
  const double required = alpha * counted[h];
  const auto resolve = [&](unsigned long long key, int ties, int n_eq, int count, int digit) {
    st.status = kResolved;
    st.prefix = key;
    st.ties = ties;
    st.n_eq = n_eq;
    st.count = count;
    st.rank_digit = digit;
    state[h] = st;
  };
  if (pass == 0 && !(st.acc < required)) {  // the structure covers it: nothing kept
    resolve(~0ull, 0, 0, 0, -1);
    return;
  }
  // the group, then the bin, holding the crossing; when rounding of the sums puts it past the
  // last group (pass > 0: the prefix's bin needed all its mass), the last non-empty one
  double acc = st.acc, acc_last = 0.0;
  int above = st.above, above_last = 0, g = 0, last = -1;
  for (; g < kSelGroups; ++g) {
    if (g_cnt[g] == 0) continue;
    if (acc + g_sum[g] >= required) break;
    last = g;
    acc_last = acc;
    above_last = above;
    acc += g_sum[g];
    above += int(g_cnt[g]);
  }
  if (g == kSelGroups) {
    if (pass == 0 || last < 0) {  // every positive column is needed
      resolve(0ull, 0, 0, above, -1);
      return;
    }
    g = last;
    acc = acc_last;
    above = above_last;
  }
  int sel = -1, sel_last = -1;
  for (int j = 0; j < kSelGroupBins; ++j) {
    const int b = kSelBins - 1 - g * kSelGroupBins - j;
    if (cnt[b] == 0) continue;
    const double m = mass(fsum[b]);
    if (acc + m >= required) {
      sel = b;
      break;
    }
    sel_last = b;
    acc_last = acc;
    above_last = above;
    acc += m;
    above += int(cnt[b]);
  }
  if (sel < 0) {
    sel = sel_last;
    acc = acc_last;
    above = above_last;
  }
  const int nb = int(cnt[sel]);
  const unsigned long long key = st.prefix | (static_cast<unsigned long long>(sel) << shift);
  if (nb == 1) {  // one column in the bin: key >= the bin's lower bound keeps exactly it
    resolve(key, 1, 1, above + 1, -1);
  } else if (shift == 0) {  // nb columns of mass t: the first `ties` (key order) are kept
    const double t = __longlong_as_double(static_cast<long long>(key));
    const double q = (required - acc) / t;  // tie j is kept iff acc + j t < required
    const int ties = q < double(nb) ? max(1, int(ceil(q))) : nb;
    resolve(key, ties, nb, above + ties, ties < nb ? sel : -1);
  } else {
    st.prefix = key;
    st.acc = acc;
    st.above = above;
    st.status = kSearching;
    state[h] = st;
  }
}

// Grid chunks x heads: the dense fallback from the kept count, then per column the flag (mass
// above the threshold, or equal and among the first `ties` equal ones in key order: the equal
// ones in earlier chunks from the last pass's partial counts, within the chunk a block scan), the
// kept columns >= block_k added to ncol.
__global__ void __launch_bounds__(kSelThreads)
    select_mark_kernel(int seq_k, int block_k, int chunks, int chunk_len, const double* col,
                       const SelState* state, const unsigned* part_cnt, int band,
                       double dense_share, unsigned char* flags, int* dense, int* ncol,
                       int* ccount) {
  __shared__ int scratch[32];
  const int h = int(blockIdx.y), c = int(blockIdx.x), tid = int(threadIdx.x);
  const SelState st = state[h];
  const bool is_dense = (double(st.count) + double(band)) / double(max(1, seq_k)) > dense_share;
  if (c == 0 && tid == 0) dense[h] = is_dense ? 1 : 0;
  if (is_dense) return;  // ncol stays 0; columns_kernel reads no flags
  const bool rank = st.ties < st.n_eq;
  int before = 0;
  if (rank)
    for (int k = 0; k < c; ++k)
      before += int(part_cnt[(int64_t(h) * chunks + k) * kSelBins + st.rank_digit]);
  const int64_t row = int64_t(h) * seq_k;
  const int b0 = c * chunk_len, b1 = min(b0 + chunk_len, seq_k);
  int kept = 0;
  if (!rank) {  // the usual case: no tie to rank, so 8 loads of each thread in flight at once
    constexpr int kU = 8;
    for (int r0 = b0; r0 < b1; r0 += kU * kSelThreads) {
      double v[kU];
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int i = r0 + u * kSelThreads + tid;
        v[u] = i < b1 ? col[row + i] : 0.0;
      }
#pragma unroll
      for (int u = 0; u < kU; ++u) {
        const int i = r0 + u * kSelThreads + tid;
        const unsigned long long key = mass_key(v[u]);
        const bool keep = key > st.prefix || (key != 0 && key == st.prefix);
        if (i < b1) {
          flags[row + i] = keep ? 1 : 0;
          kept += keep && i >= block_k ? 1 : 0;
        }
      }
    }
  }
  for (int r0 = rank ? b0 : b1; r0 < b1; r0 += kSelThreads) {  // block-uniform
    const int i = r0 + tid;
    const unsigned long long key = i < b1 ? mass_key(col[row + i]) : 0ull;
    const bool eq = key != 0 && key == st.prefix;
    bool keep = key > st.prefix || (eq && !rank);
    if (rank) {
      int n_eq;
      const int pos = block_exclusive_scan(eq ? 1 : 0, scratch, &n_eq);
      keep = keep || (eq && before + pos < st.ties);
      before += n_eq;
    }
    if (i < b1) {
      flags[row + i] = keep ? 1 : 0;
      kept += keep && i >= block_k ? 1 : 0;
    }
  }
  kept = block_sum(kept, scratch);
  if (tid == 0) {
    ccount[int64_t(h) * chunks + c] = kept;
    if (kept > 0) atomicAdd(ncol + h, kept);
  }
}

struct SelectLayout {
  size_t state = 0, arrive = 0, hist_sum = 0, hist_cnt = 0, zero_end = 0, part_cnt = 0, flags = 0,
         dense = 0, ncol = 0, ccount = 0, total = 0;
};
SelectLayout select_layout(int heads, int seq_k) {
  const size_t n = size_t(heads) * size_t(seq_k);
  const size_t parts = size_t(heads) * size_t(select_chunks(seq_k)) * kSelBins;
  SelectLayout s;
  ScratchCarver carve;
  s.state = carve.take(size_t(heads) * sizeof(SelState));
  // arrive and the passes' histograms are consecutive: one memset zeroes [arrive, zero_end)
  const size_t bins = size_t(kSelPasses) * size_t(heads) * kSelBins;
  s.arrive = carve.take(size_t(heads) * sizeof(int));
  s.hist_sum = carve.take(bins * sizeof(unsigned long long));
  s.hist_cnt = carve.take(bins * sizeof(unsigned));
  s.zero_end = carve.total;
  s.part_cnt = carve.take(parts * sizeof(unsigned));
  s.flags = carve.take(n);
  s.dense = carve.take(size_t(heads) * sizeof(int));
  s.ncol = carve.take(size_t(heads) * sizeof(int));
  s.ccount = carve.take(size_t(heads) * size_t(select_chunks(seq_k)) * sizeof(int));
  s.total = carve.total;
  return s;
}


// One CTA per head: column_indptr and the kept columns >= block_k in ascending order.
// Grid (chunks, heads): chunk c's kept columns >= block_k of head h (flags), ascending, after
// those of the earlier heads (ncol) and of the head's earlier chunks (ccount [heads][chunks], from
// select_mark_kernel; unread with one chunk); column_indptr from chunk 0. The select path runs
// kSelThreads threads on select_chunks(seq_k) chunks (one CTA a head took ~17 us at 32K on the
// H200, ncu, session 15 job A); the sort path and vslash one chunk of 1024 threads a head.
__global__ void columns_kernel(int seq_k, int block_k, int chunks, int chunk_len,
                               const unsigned char* flags, const int* ncol, const int* ccount,
                               int* indptr, int* columns) {
  __shared__ int scratch[32];
  const int h = int(blockIdx.y), c = int(blockIdx.x);
  int off = 0;
  for (int i = 0; i < h; ++i) off += ncol[i];
  if (c == 0 && threadIdx.x == 0) {
    if (h == 0) indptr[0] = 0;
    indptr[h + 1] = off + ncol[h];
  }
  if (ncol[h] == 0) return;  // a dense head or nothing kept: ccount may be unset
  const int64_t at = int64_t(h) * chunks;
  for (int k = 0; k < c; ++k) off += ccount[at + k];
  const int b0 = max(c * chunk_len, min(block_k, seq_k)), b1 = min((c + 1) * chunk_len, seq_k);
  if (b0 < b1)
    block_compact_tiled(flags + int64_t(h) * seq_k, b0, b1, columns + off, scratch);
}

// Row (h, qb) of sample's block pattern: every visible key block when the head is dense, else the
// sink and the diagonal blocks (estimation.cpp's forced_blocks), clipped to the visible ones.
struct SampleRow {
  int nvis, first, last;  // visible blocks; the diagonal blocks first..last (>= 1)
  __device__ SampleRow(const Geometry& g, int qb) : nvis(visible_blocks(g, qb)) {
    const BlockRange d = diagonal_blocks(g, qb, nvis);
    first = d.first;
    last = d.last;
  }
  __device__ int count(bool dense) const {
    if (dense) return nvis;
    return nvis > 0 ? 1 + max(0, last - first + 1) : 0;
  }
};

// Sample's block CSR straight from the dense flags, in two launches (this replaced per-row lists,
// a one-CTA count scan and a gather: 7.6 + 7.9 + 7.5 us at 32K on the H200, ncu, session 16 job
// A). Every dense head has the same rows, and so has every other head, so row (h, qb) starts at
//   nd(h) Td + (h - nd(h)) Ts + (dense h ? Pd(qb) : Ps(qb)),
// nd(h) the dense heads before h, Td / Ts a dense / other head's entries, Pd / Ps the entries of
// the query blocks before qb. One CTA computes those and writes indptr [heads * nqb + 1];
// sample_csr_rows_kernel then writes the rows, a warp each.
__global__ void sample_csr_offsets_kernel(Geometry g, int heads, const int* dense, int* indptr) {
  __shared__ int scratch[32];
  const int tid = int(threadIdx.x);
  int td = 0, ts = 0;
  for (int qb = tid; qb < g.nqb; qb += int(blockDim.x)) {
    const SampleRow r(g, qb);
    td += r.count(true);
    ts += r.count(false);
  }
  td = block_sum(td, scratch);
  ts = block_sum(ts, scratch);
  int cd = 0, cs = 0;  // the entries of the tiles before
  for (int base = 0; base < g.nqb; base += int(blockDim.x)) {  // block-uniform
    const int qb = base + tid;
    const SampleRow r(g, min(qb, g.nqb - 1));
    int sum_d = 0, sum_s = 0;
    const int pd = cd + block_exclusive_scan(qb < g.nqb ? r.count(true) : 0, scratch, &sum_d);
    const int ps = cs + block_exclusive_scan(qb < g.nqb ? r.count(false) : 0, scratch, &sum_s);
    if (qb < g.nqb) {
      int nd = 0;
      for (int h = 0; h < heads; ++h) {
        const bool d = dense[h] != 0;
        indptr[int64_t(h) * g.nqb + qb] = nd * td + (h - nd) * ts + (d ? pd : ps);
        nd += d ? 1 : 0;
      }
    }
    cd += sum_d;
    cs += sum_s;
  }
  if (tid == 0) {
    int nd = 0;
    for (int h = 0; h < heads; ++h) nd += dense[h] != 0 ? 1 : 0;
    indptr[int64_t(heads) * g.nqb] = nd * td + (heads - nd) * ts;
  }
}

// Grid (query-block tiles of 8, heads), 256 threads: row (h, qb) of the CSR by warp qb % 8.
__global__ void sample_csr_rows_kernel(Geometry g, const int* dense, const int* indptr,
                                       int* indices) {
  const int lane = int(threadIdx.x) & 31, h = int(blockIdx.y);
  const int qb = int(blockIdx.x) * (int(blockDim.x) >> 5) + (int(threadIdx.x) >> 5);
  if (qb >= g.nqb) return;
  const SampleRow r(g, qb);
  int* out = indices + indptr[int64_t(h) * g.nqb + qb];
  if (dense[h] != 0) {
    for (int kb = lane; kb < r.nvis; kb += 32) out[kb] = kb;
  } else {
    const int n = r.count(false);  // the sink block, then the diagonal blocks first..last
    for (int j = lane; j < n; j += 32) out[j] = j == 0 ? 0 : r.first + j - 1;
  }
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

// One CTA per head: the top nv columns and the top ns slash offsets (sorted flat ids, ties lower
// first) marked in flags [heads][seq_k] and sflags [heads][seq_k]; then sprefix [heads][seq_k + 1],
// the number of marked offsets below each offset.
__global__ void vs_mark_kernel(int heads, int seq_k, int block_k, VsBudgets b, const int* ids,
                               unsigned char* flags, unsigned char* sflags, int* sprefix,
                               int* ncol) {
  __shared__ int scratch[32];
  const int h = int(blockIdx.x);
  const int nv = b.per_head ? b.vertical[h] : b.vertical[0];
  const int ns = b.per_head ? b.slash[h] : b.slash[0];
  const int* id = ids + int64_t(h) * seq_k;
  const int* sid = ids + (int64_t(heads) + h) * seq_k;
  unsigned char* sf = sflags + int64_t(h) * seq_k;
  int kept = 0;
  for (int i = int(threadIdx.x); i < nv; i += int(blockDim.x)) {
    const int j = id[i] % seq_k;
    flags[int64_t(h) * seq_k + j] = 1;
    kept += j >= block_k ? 1 : 0;
  }
  for (int i = int(threadIdx.x); i < ns; i += int(blockDim.x)) sf[sid[i] % seq_k] = 1;
  kept = block_sum(kept, scratch);  // its barriers also publish sf
  if (threadIdx.x == 0) ncol[h] = kept;
  block_exclusive_prefix(sf, seq_k, sprefix + int64_t(h) * (seq_k + 1), scratch);
}

// One CTA per (head, query block): the key blocks its rows' slash lines cross (top ns offsets),
// plus the sink and diagonal blocks, ascending. The line of offset o covers keys
// [max(0, p0 - o), min(Lk - 1, p1 - o)] of rows at positions [p0, p1]; it crosses key block kb
// [kb bk, e] (e = min(Lk, (kb + 1) bk) - 1) iff p0 - e <= o <= p1 - kb bk, so a block is marked
// iff a top offset lies in that interval: one difference of the prefix counts per block instead
// of a walk over every offset.
__global__ void vs_rows_kernel(Geometry g, const int* sprefix, int* counts, int* lists) {
  extern __shared__ unsigned char mark[];  // [nkb]
  __shared__ int scratch[32];
  const int row = int(blockIdx.x), h = row / g.nqb, qb = row % g.nqb;
  const int q0 = qb * g.block_q, q1 = min(q0 + g.block_q, g.seq_q) - 1;
  const int nvis = visible_blocks(g, qb);
  const int* pre = sprefix + int64_t(h) * (g.seq_k + 1);
  const int p0 = q0 + g.q_offset, p1 = q1 + g.q_offset;
  for (int kb = int(threadIdx.x); kb < g.nkb; kb += int(blockDim.x)) {
    const int e = min(g.seq_k, (kb + 1) * g.block_k) - 1;
    const int lo = max(0, p0 - e), hi = min(g.seq_k - 1, p1 - kb * g.block_k);
    mark[kb] = kb < nvis && lo <= hi && pre[hi + 1] > pre[lo] ? 1 : 0;
  }
  __syncthreads();
  if (threadIdx.x == 0) mark_forced(g, qb, nvis, mark);
  __syncthreads();
  const int total = block_compact(mark, nvis, lists + int64_t(row) * g.nkb, scratch);
  if (threadIdx.x == 0) counts[row] = total;
}

struct VsLayout {
  size_t keys = 0, keys_out = 0, ids_in = 0, ids_mid = 0, segs_in = 0, segs_out = 0, ids_out = 0,
         flags = 0, sprefix = 0, ncol = 0, temp = 0, total = 0;
  size_t temp_bytes = 0;
};
VsLayout vs_layout(int heads, int seq_k) {
  const size_t n = 2 * size_t(heads) * size_t(seq_k);
  VsLayout s;
  ScratchCarver carve;
  s.keys = carve.take(n * sizeof(float));
  s.keys_out = carve.take(n * sizeof(float));
  s.ids_in = carve.take(n * sizeof(int));
  s.ids_mid = carve.take(n * sizeof(int));
  s.segs_in = carve.take(n * sizeof(int));
  s.segs_out = carve.take(n * sizeof(int));
  s.ids_out = carve.take(n * sizeof(int));
  s.flags = carve.take(n);  // [2][heads][seq_k]: columns, slash offsets
  s.sprefix = carve.take((n / 2 + size_t(heads)) * sizeof(int));
  s.ncol = carve.take(size_t(heads) * sizeof(int));
  size_t by_value = 0, by_segment = 0;
  cub::DeviceRadixSort::SortPairsDescending(
      nullptr, by_value, static_cast<const float*>(nullptr), static_cast<float*>(nullptr),
      static_cast<const int*>(nullptr), static_cast<int*>(nullptr), int(n));
  cub::DeviceRadixSort::SortPairs(nullptr, by_segment, static_cast<const int*>(nullptr),
                                  static_cast<int*>(nullptr), static_cast<const int*>(nullptr),
                                  static_cast<int*>(nullptr), int(n), 0, bits_for(2 * heads));
  s.temp_bytes = std::max(by_value, by_segment);
  s.temp = carve.take(s.temp_bytes);
  s.total = carve.total;
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
  // the statistics sweep's partials at either row count (cta_rows reads the environment per call)
  const int splits = std::max(splits_for(n_rows, heads, seq_k, 64).count,
                              splits_for(n_rows, heads, seq_k, 128).count);
  const size_t n = size_t(heads) * size_t(std::max(n_rows, 1));
  const auto up = [](size_t x) { return (x + 255) / 256 * 256; };
  return up(n * splits * sizeof(double)) + up(n * splits * sizeof(float)) +
         2 * up(n * sizeof(float));
}

cudaError_t row_mass(const HeadInputs& in, const Geometry& geo, const RowProblem& pb, bool probe,
                     void* scratch, cudaStream_t stream) {
  if (!rows_fit(in)) return cudaErrorInvalidValue;
  if (pb.n_rows <= 0 || geo.seq_k <= 0) return zero_mass_outputs(in, geo, pb, probe, stream);
  if (in.bf16)
    return in.D == 64 ? row_mass_typed<__nv_bfloat16, 64>(in, geo, pb, probe, scratch, stream)
                      : row_mass_typed<__nv_bfloat16, 128>(in, geo, pb, probe, scratch, stream);
  return in.D == 64 ? row_mass_typed<__half, 64>(in, geo, pb, probe, scratch, stream)
                    : row_mass_typed<__half, 128>(in, geo, pb, probe, scratch, stream);
}

Stage2Way sample_stage2_way() {
  const char* v = std::getenv("SIEVE_SAMPLE_STAGE2");  // NOLINT(concurrency-mt-unsafe)
  return v != nullptr && std::strcmp(v, "sort") == 0 ? Stage2Way::kSort : Stage2Way::kSelect;
}

size_t sample_stage2_bytes(int heads, int seq_k, Stage2Way way) {
  return way == Stage2Way::kSort ? stage2_layout(heads, seq_k).total
                                 : select_layout(heads, seq_k).total;
}

namespace {

// Sort path: flags, dense and ncol of every head from the two device-wide sorts and
// threshold_kernel.
cudaError_t stage2_by_sort(const Geometry& geo, int heads, const double* col,
                           const double* covered, const double* counted, double alpha, int band,
                           double dense_share, unsigned char* base, unsigned char** flags_out,
                           int** dense_out, int** ncol_out, cudaStream_t stream) {
  const Stage2Layout L = stage2_layout(heads, geo.seq_k);
  auto* keys = reinterpret_cast<double*>(base + L.keys);
  auto* ids_a = reinterpret_cast<int*>(base + L.ids_a);
  auto* ids_b = reinterpret_cast<int*>(base + L.ids_b);
  auto* ids_out = reinterpret_cast<int*>(base + L.ids_out);
  auto* hk_in = reinterpret_cast<int*>(base + L.hk_in);
  auto* hk_out = reinterpret_cast<int*>(base + L.hk_out);
  auto* flags = base + L.flags;
  auto* dense = reinterpret_cast<int*>(base + L.dense);
  auto* ncol = reinterpret_cast<int*>(base + L.ncol);
  *flags_out = flags;
  *dense_out = dense;
  *ncol_out = ncol;
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
  return cudaGetLastError();
}

// Select path (the default): a memset, kSelPasses pass launches, the marking and the columns
// (columns_kernel by chunks), whatever the data (resolved heads return at once).
cudaError_t stage2_by_select(const Geometry& geo, int heads, const double* col,
                             const double* covered, const double* counted, double alpha,
                             int band, double dense_share, unsigned char* base,
                             unsigned char** flags_out, int** dense_out, int** ncol_out,
                             int* column_indptr, int* columns, cudaStream_t stream) {
  const SelectLayout L = select_layout(heads, geo.seq_k);
  auto* state = reinterpret_cast<SelState*>(base + L.state);
  auto* arrive = reinterpret_cast<int*>(base + L.arrive);
  auto* hist_sum = reinterpret_cast<unsigned long long*>(base + L.hist_sum);
  auto* hist_cnt = reinterpret_cast<unsigned*>(base + L.hist_cnt);
  auto* part_cnt = reinterpret_cast<unsigned*>(base + L.part_cnt);
  auto* flags = base + L.flags;
  auto* dense = reinterpret_cast<int*>(base + L.dense);
  auto* ncol = reinterpret_cast<int*>(base + L.ncol);
  auto* ccount = reinterpret_cast<int*>(base + L.ccount);
  *flags_out = flags;
  *dense_out = dense;
  *ncol_out = ncol;
  const int chunks = select_chunks(geo.seq_k), chunk_len = (geo.seq_k + chunks - 1) / chunks;
  cudaError_t e = cudaMemsetAsync(arrive, 0, L.zero_end - L.arrive, stream);
  if (e != cudaSuccess) return e;
  const dim3 grid{unsigned(chunks), unsigned(heads)};
  for (int pass = 0; pass < kSelPasses; ++pass) {
    select_pass_kernel<<<grid, kSelThreads, 0, stream>>>(pass, geo.seq_k, chunks, chunk_len, col,
                                                         covered, counted, alpha, state, arrive,
                                                         hist_cnt, hist_sum, part_cnt, ncol);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
  }
  select_mark_kernel<<<grid, kSelThreads, 0, stream>>>(geo.seq_k, geo.block_k, chunks, chunk_len,
                                                       col, state, part_cnt, band, dense_share,
                                                       flags, dense, ncol, ccount);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  columns_kernel<<<grid, kSelThreads, 0, stream>>>(geo.seq_k, geo.block_k, chunks, chunk_len,
                                                   flags, ncol, ccount, column_indptr, columns);
  return cudaGetLastError();
}

}  // namespace

cudaError_t sample_stage2(const Geometry& geo, int heads, const double* col, const double* covered,
                          const double* counted, double alpha, int band, double dense_share,
                          Stage2Way way, void* scratch, int* block_indptr, int* block_indices,
                          int* column_indptr, int* columns, cudaStream_t stream) {
  if (heads <= 0 || geo.seq_k <= 0) return cudaErrorInvalidValue;
  auto* base = static_cast<unsigned char*>(scratch);
  unsigned char* flags = nullptr;
  int *dense = nullptr, *ncol = nullptr;
  cudaError_t e =
      way == Stage2Way::kSort
          ? stage2_by_sort(geo, heads, col, covered, counted, alpha, band, dense_share, base,
                           &flags, &dense, &ncol, stream)
          : stage2_by_select(geo, heads, col, covered, counted, alpha, band, dense_share, base,
                             &flags, &dense, &ncol, column_indptr, columns, stream);
  if (e != cudaSuccess) return e;
  if (way == Stage2Way::kSort) {  // the select path wrote the columns by chunks already
    columns_kernel<<<dim3(1, unsigned(heads)), 1024, 0, stream>>>(
        geo.seq_k, geo.block_k, 1, geo.seq_k, flags, ncol, nullptr, column_indptr, columns);
    if ((e = cudaGetLastError()) != cudaSuccess) return e;
  }
  sample_csr_offsets_kernel<<<1, 1024, 0, stream>>>(geo, heads, dense, block_indptr);
  if ((e = cudaGetLastError()) != cudaSuccess || geo.nqb == 0) return e;
  const dim3 tiles{unsigned((geo.nqb + 7) / 8), unsigned(heads)};
  sample_csr_rows_kernel<<<tiles, 256, 0, stream>>>(geo, dense, block_indptr, block_indices);
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
  auto* ids_mid = reinterpret_cast<int*>(base + L.ids_mid);
  auto* segs_in = reinterpret_cast<int*>(base + L.segs_in);
  auto* segs_out = reinterpret_cast<int*>(base + L.segs_out);
  auto* ids_out = reinterpret_cast<int*>(base + L.ids_out);
  auto* flags = base + L.flags;
  auto* sprefix = reinterpret_cast<int*>(base + L.sprefix);
  auto* ncol = reinterpret_cast<int*>(base + L.ncol);
  const int64_t n = int64_t(heads) * geo.seq_k;
  const int grid = int(std::min<int64_t>((2 * n + 255) / 256, 4096));
  vs_keys_kernel<<<grid, 256, 0, stream>>>(heads, geo.seq_k, vertical, slash, force_columns,
                                           force_diagonals, keys);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  iota_kernel<<<grid, 256, 0, stream>>>(2 * n, ids_in);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  if ((e = cudaMemsetAsync(flags, 0, size_t(2 * n), stream)) != cudaSuccess) return e;
  // All 2 * heads segments at once, as sample_stage2: every key by descending score (stable),
  // then by segment (stable, the few segment bits only), which leaves each segment in descending
  // order with equal scores in ascending index order (top_k_indices' tie rule). Two device-wide
  // sorts instead of a segmented sort (one CTA per segment of seq_k keys). ids_out holds flat
  // indices (segment * seq_k + index); the consumers take them modulo seq_k.
  size_t temp_bytes = L.temp_bytes;
  e = cub::DeviceRadixSort::SortPairsDescending(base + L.temp, temp_bytes,
                                                static_cast<const float*>(keys), keys_out,
                                                static_cast<const int*>(ids_in), ids_mid,
                                                int(2 * n), 0, 32, stream);
  if (e != cudaSuccess) return e;
  head_keys_kernel<<<grid, 256, 0, stream>>>(2 * n, geo.seq_k, ids_mid, segs_in);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  temp_bytes = L.temp_bytes;
  e = cub::DeviceRadixSort::SortPairs(base + L.temp, temp_bytes, static_cast<const int*>(segs_in),
                                      segs_out, static_cast<const int*>(ids_mid), ids_out,
                                      int(2 * n), 0, bits_for(2 * heads), stream);
  if (e != cudaSuccess) return e;
  vs_mark_kernel<<<heads, 1024, 0, stream>>>(heads, geo.seq_k, geo.block_k, budgets, ids_out,
                                             flags, flags + n, sprefix, ncol);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  columns_kernel<<<dim3(1, unsigned(heads)), 1024, 0, stream>>>(
      geo.seq_k, geo.block_k, 1, geo.seq_k, flags, ncol, nullptr, column_indptr, columns);
  if ((e = cudaGetLastError()) != cudaSuccess) return e;
  if (heads * geo.nqb > 0)
    vs_rows_kernel<<<heads * geo.nqb, 256, size_t(geo.nkb), stream>>>(geo, sprefix, counts,
                                                                      lists);
  return cudaGetLastError();
}

}  // namespace sieve::attention::cuda::est
