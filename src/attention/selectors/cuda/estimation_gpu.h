// Internal: device building blocks of the GPU selectors (plain C++ interface, kernels in *.cu).
//
// The GPU mirrors estimation.h's stride estimator: query representatives x key representatives
// (f32), per-row softmax over the visible entries, mass summed per key block over a query block's
// rows, then XAttention's cumulative rule with the sink and diagonal blocks forced. The softmax is
// done in one pass by keeping, per (row, key block, part of 64 entries), the local max and the sum
// of exp(score - max); the block shares follow from those exactly (up to rounding). The scores
// come from an f32 SIMT GEMM (stride_stats) or from bf16 copies on tensor cores
// (stride_stats_mma). Every launcher is asynchronous on `stream` and returns the launch status.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace sieve::attention::cuda::est {

/// Block geometry of a (chunked, bottom-right aligned) prefill (estimation.h: BlockGeometry).
struct Geometry {
  int seq_q = 0, seq_k = 0, q_offset = 0, block_q = 128, block_k = 128, nqb = 0, nkb = 0;
  bool causal = true;
};

/// One head's scores at reduced resolution. Row r of qrep [nqr x W] stands for query rows
/// [r*sq, (r+1)*sq); key unit u (sk keys) has `reps` representatives, rows u*reps.. of krep.
/// score(r, e) = alpha * qrep[r] . krep[e] + log_w[e] for e < visible[r] * reps, then:
///  - own (rr, causal): the row's last visible unit holds own[r] in its first entry, -inf in others;
///  - partial_logw (unisparse): added to the entries of the last unit when it is visible.
struct StrideProblem {
  const float* qrep = nullptr;
  const float* krep = nullptr;
  const float* log_w = nullptr;    // [units * reps] or null
  const int* visible = nullptr;    // [nqr] visible units per row
  const float* own = nullptr;      // [nqr] or null
  int nqr = 0, W = 0, units = 0, reps = 1, sq = 1, sk = 1;
  float alpha = 1.f;
  float partial_logw = 0.f;
  bool has_partial = false;
  // bf16 copies of qrep and krep (same layout) for the tensor-core path, else null
  const void* qrep16 = nullptr;
  const void* krep16 = nullptr;
  // A batch of `heads` query heads sharing krep/log_w (one launch; head z of the batch is grid
  // z of stride_stats, grid y of block_scores): element offsets of head z's arrays are z times
  // these strides (qrep and qrep16: z_qrep; visible: z_visible, 0 when shared; own: z_own;
  // stats: z_stats; block scores: z_out).
  int heads = 1;
  int64_t z_qrep = 0, z_visible = 0, z_own = 0, z_stats = 0, z_out = 0;
  // Key sets of a batch spanning several KV heads: head z uses key set z / kgroup, whose krep,
  // krep16 and log_w start z_krep and z_logw elements further (0: one key set for the batch).
  int kgroup = 1;
  int64_t z_krep = 0, z_logw = 0;
  // W2 > 0 with reps > 1 (only where mma_fused): representatives stored slot by slot, slot 0
  // [units][W] then slots 1.. [units][W2] each (rr's outlier keys: W2 = D, no variance half,
  // scored over the first W2 columns of qrep16), log_w [reps][units]. 0: [units * reps][W].
  int W2 = 0;
  // Which instance of the fused kernel runs (chosen by the estimate path, estimate_path()):
  //  - kMmaSync: mma.sync, every device;
  //  - kWgmma (Hopper, compute capability 9.0 only): the same steps and epilogue, each step's
  //    products by one warpgroup MMA that reads the key tile from shared memory once (not once
  //    per warp) and overlaps the previous step's epilogue ("wgmma");
  //  - kWgmmaWs: warp-specialised, a producer warpgroup loads the key tiles into a 4-stage ring
  //    (cp.async, full/empty mbarriers) and the two consumer warpgroups run without CTA
  //    barriers ("wgmma-ws");
  //  - kWgmmaPp: the same ring without the wgmma serialisation of kWgmmaWs's partial waits, the
  //    consumer warpgroups taking turns to issue ("wgmma-pp");
  //  - kWgmmaTma: kWgmmaPp with each step's key tile copied by TMA instead of the producer's
  //    16-byte cp.async and a leaner step ("wgmma-tma", the default; needs units % 16 == 0,
  //    kWgmmaPp runs otherwise).
  // Same steps, products, epilogue and values in all five.
  enum class Fused { kMmaSync, kWgmma, kWgmmaWs, kWgmmaPp, kWgmmaTma } fused = Fused::kMmaSync;
};

/// One statistics group: log2 of the sum of exp(score) over a row's scores in one key block (or
/// 64-entry part of one), i.e. its softmax mass before the row's normaliser; -inf (or NaN) when
/// the group has no finite score. Written by the score kernels, read by block_scores
/// (group_stat.cuh holds the device helpers).
using GroupStat = float;

/// Fills n statistics groups with "no finite score" (NaN: a byte fill, which block_scores reads
/// as an empty group) before a score kernel that does not write every group a row sees.
cudaError_t clear_stats(GroupStat* stats, int64_t n, cudaStream_t stream);

/// Parts of 64 entries per key block (1 when a block has <= 64 entries).
int stats_parts(const StrideProblem& pb, const Geometry& geo);
/// stats [nqr][nkb * parts] (GroupStat); entries nobody writes must be cleared first (clear_stats).
cudaError_t stride_stats(const StrideProblem& pb, const Geometry& geo, GroupStat* stats,
                         cudaStream_t stream);

/// The same statistics from bf16 copies of the representatives (qrep16, krep16) on tensor cores
/// (mma.sync m16n8k16, f32 accumulation); needs mma_fits(pb). Products are exact, the
/// accumulation is f32; only the rounding of the representatives to bf16 differs from
/// stride_stats.
bool mma_fits(const StrideProblem& pb);
/// Whether stride_stats_mma takes its fused path: a key block holds 8, 16, 32 or 64 units (or,
/// with one representative per unit, a multiple of 64 units, in 64-unit parts), W is 128 or 256,
/// and with several representatives per unit they are slot-major (W2 = D: W2's comment). One
/// warp holds 16 rows x 64 units of scores per slot in registers and keeps per (row, group) the
/// running (max, sum) over the slots; it writes every group a row sees, so the statistics need
/// no clearing first (block_scores reads only those). Otherwise stats must be cleared first.
bool mma_fused(const StrideProblem& pb, const Geometry& geo);
cudaError_t stride_stats_mma(const StrideProblem& pb, const Geometry& geo, GroupStat* stats,
                             cudaStream_t stream);

enum class Combine : int { kSet = 0, kMax = 1, kMeanAdd = 2 };
/// Block scores of every query block: sum over its rows of the softmax mass per key block
/// (reads, per row, only the statistics of the key blocks / parts the row sees).
/// normalize: divide by the row total over visible blocks (skip rows of total 0, as unisparse);
/// combine into out [nqb][nkb]: set, max, or add value / weight (the mean over `weight` maps).
/// first: out is taken as zero before combining (the first map; no memset needed), i.e. the
/// visible entries of every row are written.
/// sel non-null: the selection of select_rows (share, heads from sel->head) follows; on the warp
/// kernel in the same kernel from the sums in shared memory, without writing out (the same lists
/// and counts: the rows are selected from the values out would hold), on the CTA kernel by
/// select_rows on out. Only where block_scores_can_select(geo)
/// (rows of <= 256 key blocks: the register sort), with combine kSet and no normalisation.
/// prefer_warp: the one-warp-per-query-block kernel whatever the rows per block (same values;
/// SIEVE_BLOCK_SCORES=cta|warp overrides either way).
struct FusedSelect {
  double share = 1.0;
  int head = 0;
  int* counts = nullptr;
  int* lists = nullptr;
};
bool block_scores_can_select(const Geometry& geo);
cudaError_t block_scores(const StrideProblem& pb, const Geometry& geo, const GroupStat* stats,
                         float* out, Combine combine, bool normalize, float weight,
                         cudaStream_t stream, bool first = false,
                         const FusedSelect* sel = nullptr, bool prefer_warp = false);

/// Cumulative rule per query block of one head: forced blocks (sink, diagonal) first, then by
/// descending score (ties: lower id) until the kept mass reaches share of the total; writes the
/// sorted ids to lists [row][nkb] and their number to counts [row], row = head * nqb + qb.
/// heads > 1: heads head.. head + heads - 1, their scores z_scores elements apart.
cudaError_t select_rows(const Geometry& geo, const float* scores, double share, int head,
                        int* counts, int* lists, cudaStream_t stream, int heads = 1,
                        int64_t z_scores = 0);

/// Every visible block (dense) or sinks + local window (streaming, block mode) per row.
cudaError_t fill_rows(const Geometry& geo, int heads, bool streaming, int sink_blocks,
                      int local_blocks, int* counts, int* lists, cudaStream_t stream);

/// CSR from per-row lists: indptr [rows + 1] (exclusive scan of counts), indices. With `status`
/// (build_csr_status_words(rows) words of scratch) one kernel does both (a decoupled look-back
/// over tiles of 8 rows, after a memset of status); without it, or with SIEVE_CSR=two, a
/// single-CTA scan and a gather kernel (the same output).
int64_t build_csr_status_words(int rows);
cudaError_t build_csr(int rows, int nkb, const int* counts, const int* lists, int* indptr,
                      int* indices, cudaStream_t stream, unsigned long long* status = nullptr);
/// Token columns [0, sink) for every head: column_indptr [heads + 1], columns.
cudaError_t fill_sink_columns(int heads, int sink, int* column_indptr, int* columns, cudaStream_t stream);

// ---- RRAttention ------------------------------------------------------------------------------
struct RRParams {
  int S = 16, outliers = 1, reps = 2, W = 256;
  int Sq = 16;  // the sampled-query stride (RRSelector::query_stride())
  bool rotate = true, mean_keys = true, moments = true;
  // moments with one variance per stride (RRConfig::Variance::kScalar): the variance half of the
  // mean's row holds the stride's mean variance over dimensions in every column, so that
  // sum_d (scale/2 q_d^2) vbar = scale/2 |q|^2 vbar, the scalar correction, at the cost of the
  // diagonal form (a rank-one term in the score epilogue read the same patterns and took ~6 %
  // longer, docs/results/gpu-attention.md, session 23)
  bool scalar_var = false;
  bool slot_major = false;  // StrideProblem::W2 layout with W2 = D (bf16 output only)
};
/// The sampled queries of rr_queries, written by rr_key_reps itself (`fused` argument): the warp
/// of key stride u, whose keys it has staged, also writes the sampled query of every query head
/// of its KV head's group whose own stride is u. The same values as rr_queries, bit for bit
/// (the same operations in the same order). Only where every sampled query's own stride is a
/// whole key stride: see rr_queries_fusable.
struct RRQueryFusion {
  const void* q = nullptr;
  int64_t q_head_stride = 0, q_row_stride = 0;
  Geometry geo;
  int h = 0;      // first query head of the batch (KV head `head` of rr_key_reps holds h / group)
  int group = 1;  // query heads per KV head
  float scale = 1.f;
  float* qrep = nullptr;
  void* qrep16 = nullptr;  // bf16 when non-null, as rr_queries' qrep16
  int* visible = nullptr;
  float* own = nullptr;
};
/// Whether rr_key_reps can write the sampled queries (RRQueryFusion): key means shared by the
/// batch's whole KV-head groups (mean_keys), a stride of 8, 16 or 32, a query stride that is a
/// whole number of key strides, a query offset that is a whole number of query strides and every
/// query position a key (causal) or every query row's own stride a key stride (non-causal).
bool rr_queries_fusable(const Geometry& geo, const RRParams& rr, int D);
/// Key representatives of KV head hk (mean mode) or of query head h (sample mode):
/// krep [units * reps][W], log_w [units * reps] (slot_major: StrideProblem::W2's layout,
/// units * (W + outliers * D) values). heads > 1 (mean mode): KV heads head.. head + heads - 1
/// one after another. krep16 non-null: the representatives go to krep16 as bf16 (round to
/// nearest even) instead of krep. fused non-null: also the sampled queries (RRQueryFusion).
cudaError_t rr_key_reps(const void* k, bool bf16, int64_t head_stride, int64_t row_stride, int D,
                        int seq_k, int head, int query_head, const RRParams& rr, float* krep,
                        float* log_w, cudaStream_t stream, int heads = 1, void* krep16 = nullptr,
                        const RRQueryFusion* fused = nullptr);
/// Round-robin sampled queries of query head h: qrep [nqs][W], visible units, and (causal) the
/// exact log-sum-exp of each sampled query over the visible keys of its own unit (KV head
/// hk + z / group for head h + z). heads > 1: query heads h.. h + heads - 1 into [heads][nqs]
/// arrays. qrep16 non-null: the representatives go to qrep16 as bf16 instead of qrep.
cudaError_t rr_queries(const void* q, const void* k, bool bf16, int64_t q_head_stride,
                       int64_t q_row_stride, int64_t k_head_stride, int64_t k_row_stride, int D,
                       const Geometry& geo, int h, int hk, float scale, const RRParams& rr,
                       float* qrep, int* visible, float* own, cudaStream_t stream, int heads = 1,
                       int group = 1 << 30, void* qrep16 = nullptr);

// ---- UniSparse --------------------------------------------------------------------------------
/// Average pooling of rows [0, len) of `head` in groups of c into dst [ceil(len/c)][W]: the mean,
/// then (moments) the variance (keys) or scale/2 * mean^2 (queries).
/// heads > 1: heads head.. head + heads - 1 into dst [heads][ceil(len/c)][W].
/// dst16 non-null: written as bf16 (round to nearest even) instead of dst.
cudaError_t pool_rows(const void* t, bool bf16, int64_t head_stride, int64_t row_stride, int D,
                      int len, int head, int c, bool is_key, bool moments, float scale, float* dst,
                      cudaStream_t stream, int heads = 1, void* dst16 = nullptr);
/// Destinations of pool_levels: output o pools groups of c[o] rows into dst[o] (f32) or dst16[o]
/// (bf16), laid out as pool_rows' dst / dst16 (groups[o] is filled in by pool_levels).
struct PoolOutputs {
  static constexpr int kMax = 4;
  int n = 0;
  int c[kMax] = {}, groups[kMax] = {};
  float* dst[kMax] = {};
  void* dst16[kMax] = {};
};
/// pool_rows for every output in one pass over the rows, where the group sizes nest (each divides
/// the largest): the same values as one pool_rows per output, bit for bit. Returns
/// cudaErrorNotSupported, launching nothing, when they do not nest, there are more than kMax
/// outputs or the rows are not 16-byte aligned (the caller then pools level by level).
cudaError_t pool_levels(const void* t, bool bf16, int64_t head_stride, int64_t row_stride, int D,
                        int len, int head, PoolOutputs po, bool is_key, bool moments, float scale,
                        cudaStream_t stream, int heads = 1);
/// Visible pooled keys per pooled query (causal by the pooled group's last row).
cudaError_t pooled_visible(const Geometry& geo, int nqc, int cq, int ck, int nkc, int* visible,
                           cudaStream_t stream);

}  // namespace sieve::attention::cuda::est

namespace sieve::attention::cuda::est {

/// Pattern membership for the recall metric (the SparsePattern arrays, device pointers).
struct PatternRef {
  const int32_t* block_indptr = nullptr;
  const int32_t* block_indices = nullptr;
  const int32_t* column_indptr = nullptr;
  const int32_t* columns = nullptr;
  int block_q = 128, block_k = 128, nqb = 0, head_div = 1, band = 0;
};
/// Exact softmax mass inside the pattern for rows i = seq_q - 1 - e * row_stride of every query head
/// out [Hq * rows_per_head], f32 scores, scratch [Hq * rows_per_head * seq_k] floats.
cudaError_t sampled_recall(const void* q, const void* k, bool bf16, int64_t q_head_stride,
                           int64_t q_row_stride, int64_t k_head_stride, int64_t k_row_stride, int D,
                           int heads_q, int group, const Geometry& geo, float scale, const PatternRef& p,
                           int row_stride, int rows_per_head, float* scratch, double* out,
                           cudaStream_t stream);

}  // namespace sieve::attention::cuda::est
