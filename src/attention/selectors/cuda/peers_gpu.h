// Internal: device building blocks of the GPU ports of sample (SampleAttention) and the other
// peer selectors (plain C++ interface, kernels in sample.cu).
//
// SampleAttention needs the exact softmax of a list of query rows against every visible key,
// reduced to per-key-column sums. The GPU computes the scores of 128 listed rows x 64 keys per
// step on tensor cores straight from the bf16/f16 inputs (mma.sync m16n8k16, f32 accumulation:
// products of 16-bit inputs are exact, so the scores are the CPU's f32 GEMM up to summation
// order), in two sweeps: the row max and sum of exp (online), then the probabilities, of which the
// mass in the always-kept structure (sink block, the row's diagonal blocks, the window band) is
// summed per head as "covered" and the rest added to the key's column (f64 atomics).
// Every launcher is asynchronous on `stream` and returns the launch status.
#pragma once

#include "estimation_gpu.h"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace sieve::attention::cuda::est {

/// Device q, k of the selector call (element strides; rows 16-byte aligned, see rows_fit()).
struct HeadInputs {
  const void* q = nullptr;
  const void* k = nullptr;
  bool bf16 = true;
  int64_t q_head_stride = 0, q_row_stride = 0, k_head_stride = 0, k_row_stride = 0;
  int D = 128, heads_q = 1, group = 1;
  float scale = 1.f;
};
/// Whether the tensor-core row kernels can read these inputs (D 64/128, 16-byte aligned rows).
bool rows_fit(const HeadInputs& in);
/// Whether the score kernels run on warpgroup MMA (sm90a/*.cu): the current device has compute
/// capability 9.0 and the environment variable SIEVE_GPU_SELECT_MMA is unset or 0 (set, the
/// mma.sync kernels run on Hopper too: tests of both paths, comparisons).
bool use_wgmma();

// ---- SampleAttention
// -----------------------------------------------------------------------------

/// Chunked row sampling of sample_attention.cpp: num_chunks chunks of `chunk` rows, chunk c ending
/// at max(chunk, (c + 1) * seq_q / num_chunks), overlaps merged. Number of distinct rows (host).
int sampled_row_count(int seq_q, int chunk, int num_chunks);
/// The distinct sampled rows in ascending order into rows [sampled_row_count(...)].
cudaError_t sampled_rows(int seq_q, int chunk, int num_chunks, int* rows, cudaStream_t stream);

/// Listed query rows and what row_mass reduces their probabilities to (f64 arrays, zeroed by
/// row_mass). Sample mode: col [heads][seq_k] gets the mass outside the always-kept structure
/// (sink block, the row's diagonal blocks, the window band of `band` tokens), covered [heads] the
/// mass inside it, counted [heads] the number of rows with a visible key. Probe mode
/// (probe_last_rows): col gets every probability (vertical) and slash [heads][seq_k] the mass at
/// each diagonal offset pos(i) - j; the rows must be consecutive.
struct RowProblem {
  const int* rows = nullptr;
  int n_rows = 0;
  int band = 0;
  double* col = nullptr;
  double* covered = nullptr;
  double* counted = nullptr;
  double* slash = nullptr;
};
/// Scratch of row_mass in bytes.
size_t row_mass_bytes(int heads, int n_rows, int seq_k);
/// Exact softmax of the listed rows of every query head (two sweeps: statistics, then mass), the
/// keys split over grid z when few rows are listed.
cudaError_t row_mass(const HeadInputs& in, const Geometry& geo, const RowProblem& pb, bool probe,
                     void* scratch, cudaStream_t stream);

/// Scratch of sample_stage2 in bytes (the CUB radix sorts' temporary storage included).
size_t sample_stage2_bytes(int heads, int seq_k);
/// Stage 2 per head: columns by descending mass (ties: lower key), kept while covered + kept <
/// alpha * counted; past dense_share of the keys (kept + band) the head is dense (every visible
/// block, no columns), else its rows are the sink and diagonal blocks and its columns the kept
/// keys >= block_k in ascending order. Writes counts/lists [heads * nqb][nkb] (build_csr) and the
/// pattern's column_indptr [heads + 1] and columns (capacity heads * seq_k).
cudaError_t sample_stage2(const Geometry& geo, int heads, const double* col, const double* covered,
                          const double* counted, double alpha, int band, double dense_share,
                          void* scratch, int* counts, int* lists, int* column_indptr, int* columns,
                          cudaStream_t stream);

// ---- MInference vertical-slash
// --------------------------------------------------------------------

/// Budgets of the top-k: one value (per_head false, index 0) or one per query head (<= 128 heads),
/// already clamped to [min(floor, seq_k), seq_k] as vertical_slash.cpp does.
struct VsBudgets {
  static constexpr int kMaxHeads = 128;
  bool per_head = false;
  int vertical[kMaxHeads] = {};
  int slash[kMaxHeads] = {};
};
size_t vslash_stage2_bytes(int heads, int seq_k);
/// From the probe's vertical and slash sums (row_mass in probe mode): the top vertical columns
/// (first force_columns forced) as token columns >= block_k, and per (head, query block) the key
/// blocks crossed by the top slash offsets (first force_diagonals forced) plus the sink and
/// diagonal blocks. Writes counts/lists for build_csr and column_indptr / columns.
cudaError_t vslash_stage2(const Geometry& geo, int heads, const double* vertical,
                          const double* slash, int force_columns, int force_diagonals,
                          const VsBudgets& budgets, void* scratch, int* counts, int* lists,
                          int* column_indptr, int* columns, cudaStream_t stream);

}  // namespace sieve::attention::cuda::est

namespace sieve::attention::cuda::est {

// ---- XAttention
// ---------------------------------------------------------------------------------- xattention.cpp
// scores query stride i against key stride j by the antidiagonal sum sum_t q[iS + S - 1 - t] . k[jS
// + t] (missing rows past the end are zero), scaled by scale / S: a GEMM with inner dimension S * D
// whose operands are the input rows themselves, so the tensor cores read them directly (exact
// products, f32 sums).

/// Whether xattn_stats handles stride S with key blocks of block_k: entries per block
/// (block_k / S) divide 64.
bool xattn_fits(int S, int block_k);
/// Visible key strides of every query stride (causal by stride, as the reference's mask).
cudaError_t xattn_visible(const Geometry& geo, int S, int nqs, int nks, int* visible,
                          cudaStream_t stream);
/// Softmax statistics of query heads h0.. h0 + heads - 1: stats [heads][nqs][nkb] of (max, sum of
/// exp(score - max)) per (query stride, key block), (0, 0) where nothing is visible: the layout
/// block_scores reads for a StrideProblem {nqr = nqs, units = nks, reps = 1, sq = sk = S}.
cudaError_t xattn_stats(const HeadInputs& in, const Geometry& geo, int S, int h0, int heads,
                        const int* visible, float2* stats, cudaStream_t stream);
/// The same statistics on Hopper warpgroup MMA (sm90a/xattn_wgmma.cu; xattn_stats takes it on a
/// compute capability 9.0 device when it fits: 8, 16, 32 or 64 entries per block, D 64 or 128).
/// It writes only the statistics of key blocks some query stride of its 128-stride tile sees.
bool xattn_wgmma_fits(const HeadInputs& in, int S, int block_k);
/// hoist (opt-in, SIEVE_XATTN_KERNEL=wgmma2): the same kernel with its main loop instantiated per
/// number of live key halves (no injected warpgroup.arrive; see xattn_wgmma.cu).
cudaError_t xattn_stats_wgmma(const HeadInputs& in, const Geometry& geo, int S, int h0, int heads,
                              const int* visible, float2* stats, cudaStream_t stream,
                              bool hoist = false);
/// Opt-in warp-specialised variant of xattn_stats_wgmma (sm90a/xattn_tma.cu): the same tile,
/// wgmma order and statistics, operands loaded by TMA from one producer thread (one tensor map per
/// antidiagonal offset); with cluster 2, CTA pairs along the query strides each load one 128-key
/// half and multicast it to both. xattn_stats takes it instead of xattn_stats_wgmma when
/// xattn_tma_cluster() is nonzero and it fits: what xattn_wgmma_fits accepts, S <= 16 and seq_q,
/// seq_k >= S. Not yet the default: untested on a GPU.
/// The environment variable SIEVE_XATTN_KERNEL: "tma" -> 1, "tma2" -> 2 (pairs), else 0 (off).
int xattn_tma_cluster();
/// Whether SIEVE_XATTN_KERNEL is "wgmma2" (xattn_stats_wgmma's hoist).
bool xattn_wgmma_hoist();
bool xattn_tma_fits(const HeadInputs& in, const Geometry& geo, int S);
cudaError_t xattn_stats_tma(const HeadInputs& in, const Geometry& geo, int S, int h0, int heads,
                            const int* visible, float2* stats, int cluster, cudaStream_t stream);

}  // namespace sieve::attention::cuda::est

namespace sieve::attention::cuda::est {

// ---- FlexPrefill ------------------------------------------------------------------------------
// After flex_prefill.cpp's probe (row_mass in probe mode over the last probe_rows query rows) and
// its pooled inputs (pool_rows: key block means, query block means, the mean of the probed rows;
// the pooled block attention softmax(meanpool(Q) . meanpool(K)^T) from stride_stats /
// block_scores).

/// Settings of flex_select: gamma, tau, the budget clamp in key blocks (min_budget / block_k,
/// max_budget / block_k or nkb when none) and the number of probed rows.
struct FlexSettings {
  double gamma = 0.95, tau = 0.1;
  int min_blocks = 0, max_blocks = 0, probe_rows = 128;
};
size_t flex_select_bytes(const Geometry& geo, int heads);
/// Per head: the tokens covering gamma of the probe's mean vertical / slash scores (in blocks,
/// // block_k + 1, clamped), the Jensen-Shannon test between softmax(scale * qmean . kpool) and the
/// block-pooled vertical scores over the last query block's visible key blocks, then the top
/// vertical blocks and slash diagonals (first block forced) and, for query-aware heads, the
/// entries of attn [heads][nqb][nkb] (rows are softmax shares, zero where not visible) kept by
/// descending share (ties: lower row-major index) until the sum reaches gamma * (rows with a
/// visible key). Rows: the union with the sink and diagonal blocks, visible ones, ascending.
/// qmean [heads][D], kpool [heads / group][nkb][D]; vertical, slash [heads][seq_k] are the probe's
/// sums (not yet divided by probe_rows). Writes counts/lists for build_csr; query_aware [heads]
/// (may be null) gets the test's outcome.
cudaError_t flex_select(const Geometry& geo, int heads, int group, int D, float scale,
                        const FlexSettings& s, const double* vertical, const double* slash,
                        const float* qmean, const float* kpool, const float* attn, void* scratch,
                        int* counts, int* lists, int* query_aware, cudaStream_t stream);

}  // namespace sieve::attention::cuda::est
