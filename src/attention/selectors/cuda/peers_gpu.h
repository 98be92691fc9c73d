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
#include "sieve/core/dtype.h"  // SIEVE_HOST_DEVICE

#include <cuda.h>  // CUtensorMap (a plain struct)
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace sieve::attention::cuda::est {

/// Offsets of the buffers that one scratch allocation of a stage-2 launcher holds (host side):
/// take(bytes) returns the next buffer's offset, 256-byte aligned, at least one byte each so that
/// every buffer has its own address; total is the allocation's size.
struct ScratchCarver {
  size_t total = 0;
  size_t take(size_t bytes) {
    const size_t at = total;
    total += ((bytes > 0 ? bytes : 1) + 255) / 256 * 256;
    return at;
  }
};

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
  /// Sample's mass sweep only (row_mass sets it from SIEVE_SAMPLE_MASS): visit only the key tiles
  /// that hold a non-covered key of some row of the CTA, and take the covered mass as the rows'
  /// total (each row's probabilities add up to 1) minus their non-covered mass. false: every
  /// visible tile, the covered probabilities summed one by one (SIEVE_SAMPLE_MASS=full).
  bool skip_covered = false;
};
/// Whether sample's mass sweep skips the covered key tiles: yes unless SIEVE_SAMPLE_MASS=full
/// (read at every call, so that tests and A/B runs can switch it).
bool sample_mass_skips_covered();
/// Scratch of row_mass in bytes.
size_t row_mass_bytes(int heads, int n_rows, int seq_k);
/// Exact softmax of the listed rows of every query head (two sweeps: statistics, then mass), the
/// keys split over grid z when few rows are listed.
cudaError_t row_mass(const HeadInputs& in, const Geometry& geo, const RowProblem& pb, bool probe,
                     void* scratch, cudaStream_t stream);

/// How sample_stage2 finds the kept columns: a radix select over the masses' bits (the default) or
/// two device-wide CUB radix sorts (the earlier way, kept for A/B and tests).
enum class Stage2Way { kSelect, kSort };
/// The way the environment asks for: SIEVE_SAMPLE_STAGE2=sort gives kSort, anything else kSelect.
/// Read once per selector call and passed to both functions below, so the scratch always fits.
Stage2Way sample_stage2_way();
/// Scratch of sample_stage2 in bytes for that way.
size_t sample_stage2_bytes(int heads, int seq_k, Stage2Way way);
/// Stage 2 per head: columns by descending mass (ties: lower key), kept while covered + kept <
/// alpha * counted (kSelect: a radix select over the masses' bits, with fixed-point bin sums;
/// kSort: two device-wide CUB radix sorts, the earlier way: the same kept set unless the
/// requirement falls within the rounding of the sums, as sample.cu explains; NaN masses are never
/// kept by the default, the sort path orders them first and may keep them); past dense_share of
/// the keys (kept + band) the head is dense (every visible
/// block, no columns), else its rows are the sink and diagonal blocks and its columns the kept
/// keys >= block_k in ascending order. Writes the pattern's block CSR, block_indptr [heads * nqb
/// + 1] and block_indices (capacity heads * nqb * nkb), and its column_indptr [heads + 1] and
/// columns (capacity heads * seq_k).
cudaError_t sample_stage2(const Geometry& geo, int heads, const double* col, const double* covered,
                          const double* counted, double alpha, int band, double dense_share,
                          Stage2Way way, void* scratch, int* block_indptr, int* block_indices,
                          int* column_indptr, int* columns, cudaStream_t stream);

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
/// Visible key strides of query stride i (causal by stride, as the reference's mask; nks when not
/// causal): what xattn_visible writes, also evaluated inside the TMA kernel.
SIEVE_HOST_DEVICE int xattn_visible_at(const Geometry& g, int S, int nks, int i) {
  if (!g.causal) return nks;
  const int last = (i * S + S - 1 < g.seq_q - 1 ? i * S + S - 1 : g.seq_q - 1) + g.q_offset;
  const int v = last / S + 1;
  return v < 0 ? 0 : v < nks ? v : nks;
}
/// Visible key strides of every query stride into visible [nqs].
cudaError_t xattn_visible(const Geometry& geo, int S, int nqs, int nks, int* visible,
                          cudaStream_t stream);

/// Antidiagonal offsets the TMA kernel has tensor maps for (S <= kXattnMaxStride).
constexpr int kXattnMaxStride = 16;
/// The score kernel of one selector call and its host-side launch state, made once per call by
/// xattn_plan and then used for every head batch:
///  - kTma (sm90a/xattn_tma.cu, the default where it fits: compute capability 9.0, what
///    xattn_wgmma_fits accepts, S <= 16, seq_q and seq_k >= S): warp-specialised, persistent, its
///    operands loaded by TMA through one tensor map per antidiagonal offset, encoded here for all
///    heads; tiles of 192 x 192 strides, or 128 x 256 under SIEVE_XATTN_KERNEL=tma256
///    (SIEVE_XATTN_KERNEL=tma192 names the former explicitly);
///  - kWgmma (sm90a/xattn_wgmma.cu): the cp.async wgmma kernel, on compute capability 9.0 where
///    kTma does not fit, or everywhere wgmma fits when the environment variable
///    SIEVE_XATTN_KERNEL is "wgmma" (A/B comparisons, tests);
///  - kMmaSync (xattn.cu): mma.sync, on every other device, or when SIEVE_GPU_SELECT_MMA is set.
struct XattnPlan {
  enum class Kernel { kMmaSync, kWgmma, kTma };
  Kernel kernel = Kernel::kMmaSync;
  int num_sms = 0;  // kTma: multiprocessors of the device (one persistent CTA each)
  // kTma: map u of Q and of K loads antidiagonal offset u < S, or, where S divides the length
  // (one_*_map), map 0 loads every offset (encoded once per tensor instead of S times)
  CUtensorMap q_maps[kXattnMaxStride], k_maps[kXattnMaxStride];
  bool one_q_map = false, one_k_map = false;
  enum class TmaTile { k128x256, k192x192 };  // kTma: query x key strides per tile
  TmaTile tma_tile = TmaTile::k192x192;
};
/// Chooses the kernel (host only: environment, device, tensor-map encoding, shared-memory
/// attributes). cudaErrorInvalidValue where xattn_stats cannot run (rows_fit, xattn_fits).
cudaError_t xattn_plan(const HeadInputs& in, const Geometry& geo, int S, XattnPlan* plan);
/// Softmax statistics of query heads h0.. h0 + heads - 1: stats [heads][nqs][nkb], one group
/// (GroupStat) per (query stride, key block), -inf where nothing is visible: the layout
/// block_scores reads for a StrideProblem {nqr = nqs, units = nks, reps = 1, sq = sk = S}. The
/// Hopper kernels write only the key blocks some query stride of their query tile sees.
/// visible: xattn_visible's output (the TMA kernel evaluates xattn_visible_at instead).
cudaError_t xattn_stats(const XattnPlan& plan, const HeadInputs& in, const Geometry& geo, int S,
                        int h0, int heads, const int* visible, GroupStat* stats,
                        cudaStream_t stream);

// The Hopper kernels behind xattn_stats (sm90a/*.cu): whether they fit, their one-time set-up
// (shared-memory attributes; the TMA kernel's tensor maps) and their launches.
bool xattn_wgmma_fits(const HeadInputs& in, int S, int block_k);
cudaError_t xattn_wgmma_prepare(const HeadInputs& in, const Geometry& geo, int S);
cudaError_t xattn_stats_wgmma(const HeadInputs& in, const Geometry& geo, int S, int h0, int heads,
                              const int* visible, GroupStat* stats, cudaStream_t stream);
bool xattn_tma_fits(const HeadInputs& in, const Geometry& geo, int S);
cudaError_t xattn_tma_prepare(const HeadInputs& in, const Geometry& geo, int S, XattnPlan* plan);
cudaError_t xattn_stats_tma(const XattnPlan& plan, const HeadInputs& in, const Geometry& geo,
                            int S, int h0, int heads, GroupStat* stats, cudaStream_t stream);

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
/// entries of attn [heads][nqb][nkb] (rows are softmax shares over the row's visible key blocks;
/// the entries past them are not read, block_scores' `first` output) kept by descending share
/// (ties: lower row-major index) until the sum reaches gamma * (rows with a visible key). Rows:
/// the union with the sink and diagonal blocks, visible ones, ascending.
/// qmean [heads][D], kpool [heads / group][nkb][D]; vertical, slash [heads][seq_k] are the probe's
/// sums (not yet divided by probe_rows). Writes counts/lists for build_csr; query_aware [heads]
/// (may be null) gets the test's outcome.
cudaError_t flex_select(const Geometry& geo, int heads, int group, int D, float scale,
                        const FlexSettings& s, const double* vertical, const double* slash,
                        const float* qmean, const float* kpool, const float* attn, void* scratch,
                        int* counts, int* lists, int* query_aware, cudaStream_t stream);

}  // namespace sieve::attention::cuda::est
