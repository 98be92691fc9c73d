// Host side of the GPU selectors: configuration from the CPU selector objects, stream-ordered
// scratch memory, and the launch sequence per head (kernels in selectors/cuda/*.cu).
#include "sieve/attention/cuda/selectors.h"

#include "../selectors/cuda/estimation_gpu.h"
#include "../selectors/cuda/peers_gpu.h"  // est::ScratchCarver
#include "device_selectors_internal.h"
#include "sieve/attention/cuda/check.h"
#include "sieve/attention/selectors/rr_attention.h"
#include "sieve/attention/selectors/streaming.h"
#include "sieve/attention/selectors/unisparse.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

namespace sieve::attention::cuda {

namespace {

// Estimate arithmetic of rr and unisparse (estimate_path()): process-wide, initial value from
// SIEVE_GPU_ESTIMATE. The tensor-core paths are the default since they passed ctest -L gpu on the
// H200 (docs/results/gpu-attention.md); simt stays for exact CPU agreement. wgmma is mma with the
// fused statistics kernel on warpgroup MMA where the device has it (compute capability 9.0) and
// mma.sync elsewhere; same representatives, same epilogue. wgmma-ws: wgmma with the fused
// kernel's warp-specialised instance; wgmma-pp (the default in session 6): its
// ping-pong instance; wgmma-tma (the default since it passed the selector tests on the H200 and cut
// the score kernels 5-21 % against wgmma-pp in one job, docs/results/gpu-attention.md): wgmma-pp
// with the key tiles copied by TMA (estimation_gpu.h: StrideProblem::Fused).
enum class Estimate : int {
  kSimt = 0, kMma = 1, kWgmma = 2, kWgmmaWs = 3, kWgmmaPp = 4, kWgmmaTma = 5
};
Estimate parse_estimate(std::string_view name) {
  if (name == "simt") return Estimate::kSimt;
  if (name == "mma") return Estimate::kMma;
  if (name == "wgmma") return Estimate::kWgmma;
  if (name == "wgmma-ws") return Estimate::kWgmmaWs;
  if (name == "wgmma-pp") return Estimate::kWgmmaPp;
  if (name == "wgmma-tma") return Estimate::kWgmmaTma;
  SIEVE_FAIL(
      "GPU estimate path must be 'simt', 'mma', 'wgmma', 'wgmma-ws', 'wgmma-pp' or 'wgmma-tma', "
      "got '{}'",
      name);
}
std::atomic<int> g_estimate{-1};  // -1: not chosen yet, read SIEVE_GPU_ESTIMATE on first use
Estimate current_estimate() {
  int v = g_estimate.load();
  if (v < 0) {
    const char* env = std::getenv("SIEVE_GPU_ESTIMATE");  // NOLINT(concurrency-mt-unsafe)
    v = int(env != nullptr && *env != '\0' ? parse_estimate(env) : Estimate::kWgmmaTma);
    int expected = -1;
    if (!g_estimate.compare_exchange_strong(expected, v)) v = expected;
  }
  return Estimate(v);
}


// pb.fused: the wgmma instance the estimate path names, where the device is Hopper and the fused
// kernel takes the shape; mma.sync otherwise.
void choose_fused_instance(est::StrideProblem& pb, const est::Geometry& g) {
  using F = est::StrideProblem::Fused;
  const Estimate e = current_estimate();
  const F wanted = e == Estimate::kWgmma      ? F::kWgmma
                   : e == Estimate::kWgmmaWs  ? F::kWgmmaWs
                   : e == Estimate::kWgmmaPp  ? F::kWgmmaPp
                   : e == Estimate::kWgmmaTma ? F::kWgmmaTma
                                              : F::kMmaSync;
  pb.fused = wanted != F::kMmaSync && est::mma_fused(pb, g) && detail::device_is_sm90()
                 ? wanted
                 : F::kMmaSync;
}

// Scores and softmax statistics of one stride problem on the chosen path: tensor cores from the
// bf16 representatives (pb.qrep16/krep16) or the f32 SIMT GEMM (pb.qrep/krep). The statistics of
// pb.heads heads (pb.z_stats each) are cleared first unless the fused mma kernel runs, which writes
// every entry block_scores reads.
void stride_stats(const est::StrideProblem& pb, const est::Geometry& g, est::GroupStat* stats,
                  bool mma, cudaStream_t stream, const char* what) {
  if (!mma || !est::mma_fused(pb, g))
    SIEVE_CUDA_CHECK(est::clear_stats(stats, pb.heads * pb.z_stats, stream));
  check(mma ? est::stride_stats_mma(pb, g, stats, stream) : est::stride_stats(pb, g, stats, stream),
        what);
}

struct Inputs {
  const TensorView& q;
  const TensorView& k;
  AttentionShape shape;
  bool bf16;
  float scale;
};

DevicePattern fixed_rows(const Inputs& in, const SelectorCommon& c, bool causal, bool streaming, int sink,
                         int local, cudaStream_t stream) {
  const est::Geometry g = geometry(in.shape, c, causal);
  Scratch scratch(stream);
  const int rows = int(in.shape.num_heads_q) * g.nqb;
  int* counts = scratch.alloc<int>(rows);
  int* lists = scratch.alloc<int>(int64_t(rows) * g.nkb);
  check(est::fill_rows(g, int(in.shape.num_heads_q), streaming, sink, local, counts, lists, stream), "rows");
  return finish_rows(g, in.shape, causal, counts, lists, stream);
}

DevicePattern streaming_tokens(const Inputs& in, const SelectorCommon& c, bool causal,
                               const StreamingConfig& sc, cudaStream_t stream) {
  const est::Geometry g = geometry(in.shape, c, causal);
  DevicePatternView h;
  h.seq_len_q = in.shape.seq_len_q;
  h.seq_len_k = in.shape.seq_len_k;
  h.block_q = g.block_q;
  h.block_k = g.block_k;
  h.num_heads = int(in.shape.num_heads_q);
  h.causal = causal;
  h.band = sc.local_tokens;
  const int sink = int(std::min(sc.sink_tokens, in.shape.seq_len_k));
  DevicePattern p = DevicePattern::allocate(h, 0, int64_t(h.num_heads) * sink, stream);
  const DevicePatternView& v = p.view();
  SIEVE_CUDA_CHECK(cudaMemsetAsync(const_cast<int32_t*>(v.block_indptr), 0,
                                   size_t(h.num_heads * g.nqb + 1) * 4, stream));
  check(est::fill_sink_columns(h.num_heads, sink, const_cast<int32_t*>(v.column_indptr),
                               const_cast<int32_t*>(v.columns), stream),
        "sink columns");
  return p;
}

est::RRParams rr_params(const RRConfig& c, int64_t D) {
  est::RRParams p;
  p.S = c.stride;
  p.Sq = c.query_stride > 0 ? c.query_stride : c.stride;
  p.mean_keys = c.key_agg == RRConfig::KeyAgg::kMean;
  p.outliers = p.mean_keys ? std::min(c.outliers, c.stride - 1) : 0;
  p.reps = 1 + p.outliers;
  p.moments = p.mean_keys && c.moments;
  p.scalar_var = p.moments && c.variance == RRConfig::Variance::kScalar;
  p.W = int(p.moments ? 2 * D : D);
  p.rotate = c.offset == RRConfig::Offset::kRotate;
  return p;
}

// Query heads per launch. The mma path batches whole KV-head groups (heads of one group share
// the key representatives) while the batch's scratch stays under 2 GiB: all 32 heads up to 128K
// at rr's and unisparse's defaults (rr: 28 + 4 heads at 128K before the one-float statistics of
// session 19); one head when a group alone exceeds it. The simt path keeps one head per
// launch, as verified on the GPU.
int batch_heads(bool mma, bool shared_keys, const AttentionShape& s, int64_t bytes_per_head) {
  const int64_t g = s.group_size(), budget = int64_t(2) << 30;
  if (!mma || !shared_keys || bytes_per_head * g > budget) return 1;
  return int(g * std::clamp<int64_t>(budget / (bytes_per_head * g), 1, s.num_heads_kv));
}

// Whether an A/B switch holds `value` (read at every call, so one process can time both).
bool env_is(const char* name, std::string_view value) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
  return v != nullptr && value == v;
}

// Whether rr / unisparse score on tensor cores: the mma estimate path and a row width it tiles
// (W = D or 2 D with D in {64, 128}: always so far). Representatives are then written as bf16.
bool use_mma(int W) {
  est::StrideProblem pb;
  pb.W = W;
  return current_estimate() != Estimate::kSimt && est::mma_fits(pb);
}

DevicePattern rr_select(const Inputs& in, const RRSelector& sel, bool causal, cudaStream_t stream) {
  const AttentionShape& s = in.shape;
  const est::Geometry g = geometry(s, sel.common(), causal);
  est::RRParams rr = rr_params(sel.config(), s.head_dim);
  const int D = int(s.head_dim), S = rr.S, Sq = rr.Sq, R = rr.reps, W = rr.W;
  const int nks = (g.seq_k + S - 1) / S, nqs = (g.seq_q + Sq - 1) / Sq;
  const int hq = int(s.num_heads_q), group = int(s.group_size());
  const bool mma = use_mma(W);
  StageProfile timer("rr", stream);  // SIEVE_GPU_SELECT_PROFILE
  est::StrideProblem pb;
  pb.nqr = nqs;
  pb.W = W;
  pb.units = nks;
  pb.reps = R;
  pb.sq = Sq;
  pb.sk = S;
  pb.alpha = in.scale;
  // The fused kernel scores outlier keys (no variance half) at width D: slot-major key
  // representatives when it runs, the interleaved layout otherwise.
  pb.W2 = R > 1 ? D : 0;
  if (!mma || !est::mma_fused(pb, g)) pb.W2 = 0;
  rr.slot_major = pb.W2 > 0;
  if (mma) choose_fused_instance(pb, g);
  const int parts = est::stats_parts(pb, g);
  const int64_t stats_per_head = int64_t(nqs) * g.nkb * parts;
  const int64_t stats_bytes = stats_per_head * int64_t(sizeof(est::GroupStat));
  const int G = batch_heads(mma, rr.mean_keys, s, stats_bytes + int64_t(nqs) * (W * 2 + 12));
  const int KG = G >= group ? G / group : 1;  // key sets per batch
  const int64_t key_entries = int64_t(nks) * R;
  const int64_t key_values = rr.slot_major ? int64_t(nks) * (W + (R - 1) * D) : key_entries * W;
  // Every scratch array carved from one stream-ordered allocation (as unisparse): the GPU waits
  // for the host's first launch, and each cudaMallocAsync is host time before it.
  est::ScratchCarver carve;
  const auto take = [&](int64_t n, size_t elem) { return carve.take(size_t(n) * elem); };
  const size_t krep_at = take(mma ? 0 : key_entries * W, sizeof(float));
  const size_t k16_at = take(mma ? KG * key_values : 0, sizeof(uint16_t));
  const size_t log_w_at = take(KG * key_entries, sizeof(float));
  const size_t qrep_at = take(mma ? 0 : int64_t(G) * nqs * W, sizeof(float));
  const size_t q16_at = take(mma ? int64_t(G) * nqs * W : 0, sizeof(uint16_t));
  const size_t visible_at = take(int64_t(G) * nqs, sizeof(int));
  const size_t own_at = take(int64_t(G) * nqs, sizeof(float));
  const size_t stats_at = take(G * stats_per_head, sizeof(est::GroupStat));
  const size_t scores_at = take(int64_t(G) * g.nqb * g.nkb, sizeof(float));
  const int rows = hq * g.nqb;
  const size_t counts_at = take(rows, sizeof(int));
  const size_t lists_at = take(int64_t(rows) * g.nkb, sizeof(int));
  Scratch scratch(stream);
  char* base = scratch.alloc<char>(int64_t(carve.total));
  float* krep = mma ? nullptr : reinterpret_cast<float*>(base + krep_at);
  void* k16 = mma ? base + k16_at : nullptr;
  auto* log_w = reinterpret_cast<float*>(base + log_w_at);
  float* qrep = mma ? nullptr : reinterpret_cast<float*>(base + qrep_at);
  void* q16 = mma ? base + q16_at : nullptr;
  auto* visible = reinterpret_cast<int*>(base + visible_at);
  auto* own = reinterpret_cast<float*>(base + own_at);
  pb.qrep = qrep;
  pb.krep = krep;
  pb.qrep16 = q16;
  pb.krep16 = k16;
  pb.log_w = log_w;
  pb.visible = visible;
  pb.own = causal ? own : nullptr;
  pb.z_qrep = int64_t(nqs) * W;
  pb.z_visible = nqs;
  pb.z_own = nqs;
  pb.z_stats = stats_per_head;
  pb.z_out = int64_t(g.nqb) * g.nkb;
  pb.kgroup = G >= group ? group : 1;
  pb.z_krep = key_values;
  pb.z_logw = key_entries;
  auto* stats = reinterpret_cast<est::GroupStat*>(base + stats_at);
  auto* scores = reinterpret_cast<float*>(base + scores_at);
  auto* counts = reinterpret_cast<int*>(base + counts_at);
  auto* lists = reinterpret_cast<int*>(base + lists_at);
  timer.mark("alloc");  // host time to here: checks, scratch allocations
  const TensorView& q = in.q;
  const TensorView& k = in.k;
  // The key-representative kernel also writes the sampled queries (one launch instead of two,
  // the same values) where whole KV-head groups are batched and the strides line up;
  // SIEVE_RR_QUERIES=separate keeps the two launches (A/B and tests).
  const bool fuse_queries = G >= group && est::rr_queries_fusable(g, rr, D) &&
                            !env_is("SIEVE_RR_QUERIES", "separate");
  // The block sums' kernel (one warp per query block) also selects the rows where they fit its
  // register sort (rows of up to 256 key blocks); SIEVE_RR_SELECT=separate keeps select_rows (A/B
  // and tests).
  const bool fuse_select = est::block_scores_can_select(g) && !env_is("SIEVE_RR_SELECT", "separate");
  est::RRQueryFusion fq;  // (fq.h: each batch's first query head)
  fq.q = q.data;
  fq.q_head_stride = q.strides[0];
  fq.q_row_stride = q.strides[1];
  fq.geo = g;
  fq.group = group;
  fq.scale = in.scale;
  fq.qrep = qrep;
  fq.qrep16 = q16;
  fq.visible = visible;
  fq.own = own;
  int64_t staged = -1;
  for (int h = 0; h < hq; h += G) {  // heads h.. h + n - 1; whole KV-head groups when G >= group
    const int n = std::min(G, hq - h), hk = h / group;
    pb.heads = n;
    fq.h = h;
    if (G >= group || !rr.mean_keys || hk != staged) {
      check(est::rr_key_reps(k.data, in.bf16, k.strides[0], k.strides[1], D, g.seq_k, hk, h, rr,
                             krep, log_w, stream, G >= group ? n / group : 1, k16,
                             fuse_queries ? &fq : nullptr),
            fuse_queries ? "rr key representatives and sampled queries" : "rr key representatives");
      staged = hk;
    }
    timer.mark(fuse_queries ? "key_reps+queries" : "key_reps");
    if (!fuse_queries) {
      check(est::rr_queries(q.data, k.data, in.bf16, q.strides[0], q.strides[1], k.strides[0],
                            k.strides[1], D, g, h, hk, in.scale, rr, qrep, visible, own, stream,
                            n, group, q16),
            "rr sampled queries");
      timer.mark("queries");
    }
    stride_stats(pb, g, stats, mma, stream, "rr scores");
    timer.mark("scores");
    if (fuse_select) {
      est::FusedSelect fs;
      fs.share = sel.config().tau;
      fs.head = h;
      fs.counts = counts;
      fs.lists = lists;
      check(est::block_scores(pb, g, stats, scores, est::Combine::kSet, false, 1.f, stream, false,
                              &fs, true),
            "rr block scores and selection");
      timer.mark("block_sums+selection");
      continue;
    }
    check(est::block_scores(pb, g, stats, scores, est::Combine::kSet, false, 1.f, stream, false,
                            nullptr, true),
          "rr block scores");
    timer.mark("block_sums");
    check(est::select_rows(g, scores, sel.config().tau, h, counts, lists, stream, n, pb.z_out),
          "rr selection");
    timer.mark("selection");
  }
  DevicePattern p = finish_rows(g, s, causal, counts, lists, stream);
  timer.mark("csr");
  return p;
}

// Every level's pooled rows of one tensor in one pass (est::pool_levels, the same values as
// pool_rows level by level; the default since session 8, SIEVE_UNI_POOL=levels keeps the per-level
// passes) where the levels' group sizes nest; true when it ran, false when the caller
// pools level by level (no launch: sizes that do not nest, rows not 16-byte aligned).
bool pool_all_levels(const TensorView& t, bool bf16, int D, int len, int head, int heads,
                     const std::vector<int>& c, bool is_key, bool moments, float scale,
                     const std::vector<float*>& dst, const std::vector<void*>& dst16,
                     cudaStream_t stream) {
  est::PoolOutputs po;
  if (c.size() > size_t(est::PoolOutputs::kMax)) return false;
  po.n = int(c.size());
  for (size_t o = 0; o < c.size(); ++o) {
    po.c[o] = c[o];
    po.dst[o] = dst[o];
    po.dst16[o] = dst16[o];
  }
  const cudaError_t e = est::pool_levels(t.data, bf16, t.strides[0], t.strides[1], D, len, head,
                                         po, is_key, moments, scale, stream, heads);
  if (e == cudaErrorNotSupported) return false;
  check(e, is_key ? "unisparse key pooling (all levels)" : "unisparse query pooling (all levels)");
  return true;
}

DevicePattern unisparse_select(const Inputs& in, const UniSparseSelector& sel, bool causal,
                               cudaStream_t stream) {
  const AttentionShape& s = in.shape;
  const UniSparseConfig& c = sel.config();
  const std::vector<UniSparseConfig::Granularity> gran = sel.levels();  // c_q capped at block_q
  const est::Geometry g = geometry(s, sel.common(), causal);
  const int D = int(s.head_dim), W = c.moments ? 2 * D : D;
  const int levels = int(gran.size());
  const int hq = int(s.num_heads_q), group = int(s.group_size());
  const bool mma = use_mma(W);
  const bool fused_pool = !env_is("SIEVE_UNI_POOL", "levels");
  StageProfile timer("unisparse", stream);
  int64_t stats_per_head = 0, qrows = 0;
  for (const auto& gr : gran) {
    const int64_t nqc = (s.seq_len_q + gr.c_q - 1) / gr.c_q;
    const int eb = int(g.block_k / gr.c_k);
    const int parts = eb <= 64 ? 1 : (eb + 63) / 64;
    stats_per_head = std::max<int64_t>(stats_per_head, nqc * g.nkb * parts);
    qrows += nqc;
  }
  const int G = batch_heads(mma, true, s,
                            stats_per_head * int64_t(sizeof(est::GroupStat)) + qrows * W * 2);
  const int KG = G >= group ? G / group : 1;  // key sets per batch
  // Every scratch array carved from one stream-ordered allocation (256-byte aligned pieces): one
  // cudaMallocAsync per call instead of 3 per level + 4.
  est::ScratchCarver carve;
  std::vector<size_t> kpool_at(static_cast<size_t>(levels)), qpool_at(static_cast<size_t>(levels)),
      visible_at(static_cast<size_t>(levels));
  for (int lv = 0; lv < levels; ++lv) {
    const auto& gr = gran[size_t(lv)];
    const int64_t nkc = (s.seq_len_k + gr.c_k - 1) / gr.c_k,
                  nqc = (s.seq_len_q + gr.c_q - 1) / gr.c_q;
    const size_t elem = mma ? sizeof(uint16_t) : sizeof(float);
    kpool_at[size_t(lv)] = carve.take(size_t(mma ? KG : 1) * size_t(nkc * W) * elem);
    qpool_at[size_t(lv)] = carve.take(size_t(G) * size_t(nqc * W) * elem);
    visible_at[size_t(lv)] = carve.take(size_t(nqc) * sizeof(int));
  }
  const int64_t z_out = int64_t(g.nqb) * g.nkb;
  const int rows = hq * g.nqb;
  const size_t stats_at = carve.take(size_t(G * stats_per_head) * sizeof(est::GroupStat));
  const size_t combined_at = carve.take(size_t(G * z_out) * sizeof(float));
  const size_t counts_at = carve.take(size_t(rows) * sizeof(int));
  const size_t lists_at = carve.take(size_t(rows) * size_t(g.nkb) * sizeof(int));
  Scratch scratch(stream);
  char* base = scratch.alloc<char>(int64_t(carve.total));
  std::vector<float*> kpool(static_cast<size_t>(levels)), qpool(static_cast<size_t>(levels));
  std::vector<int*> visible(static_cast<size_t>(levels));
  std::vector<void*> k16(static_cast<size_t>(levels)), q16(static_cast<size_t>(levels));
  for (int lv = 0; lv < levels; ++lv) {
    const auto& gr = gran[size_t(lv)];
    const int64_t nkc = (s.seq_len_k + gr.c_k - 1) / gr.c_k,
                  nqc = (s.seq_len_q + gr.c_q - 1) / gr.c_q;
    if (mma) {
      k16[size_t(lv)] = base + kpool_at[size_t(lv)];
      q16[size_t(lv)] = base + qpool_at[size_t(lv)];
    } else {
      kpool[size_t(lv)] = reinterpret_cast<float*>(base + kpool_at[size_t(lv)]);
      qpool[size_t(lv)] = reinterpret_cast<float*>(base + qpool_at[size_t(lv)]);
    }
    visible[size_t(lv)] = reinterpret_cast<int*>(base + visible_at[size_t(lv)]);
  }
  // The pooled visibility counts are first read by the score kernel: launched after the first
  // pooling kernels, so the GPU starts on the pooling a few launches earlier (the host spends
  // ~5 us per launch on the H200's machine, and the GPU waits for the first one).
  bool visible_done = false;
  const auto launch_visibility = [&] {
    if (visible_done) return;
    visible_done = true;
    for (int lv = 0; lv < levels; ++lv) {
      const auto& gr = gran[size_t(lv)];
      const int nkc = int((s.seq_len_k + gr.c_k - 1) / gr.c_k), nqc = int((s.seq_len_q + gr.c_q - 1) / gr.c_q);
      check(est::pooled_visible(g, nqc, int(gr.c_q), int(gr.c_k), nkc, visible[size_t(lv)], stream),
            "unisparse visibility");
    }
  };
  auto* stats = reinterpret_cast<est::GroupStat*>(base + stats_at);
  auto* combined = reinterpret_cast<float*>(base + combined_at);
  int* counts = reinterpret_cast<int*>(base + counts_at);
  int* lists = reinterpret_cast<int*>(base + lists_at);
  timer.mark("alloc");  // host time to here
  const TensorView& q = in.q;
  const TensorView& k = in.k;
  int64_t staged = -1;
  for (int h = 0; h < hq; h += G) {  // heads h.. h + n - 1; whole KV-head groups when G >= group
    const int n = std::min(G, hq - h), hk = h / group;
    const bool new_keys = G >= group || hk != staged;
    bool keys_pooled = false, queries_pooled = false;  // all levels at once (SIEVE_UNI_POOL)
    if (fused_pool) {
      std::vector<int> cqs, cks;
      for (const auto& gr : gran) {
        cqs.push_back(int(gr.c_q));
        cks.push_back(int(gr.c_k));
      }
      keys_pooled = !new_keys || pool_all_levels(k, in.bf16, D, g.seq_k, hk,
                                                 G >= group ? n / group : 1, cks, true, c.moments,
                                                 in.scale, kpool, k16, stream);
      queries_pooled = pool_all_levels(q, in.bf16, D, g.seq_q, h, n, cqs, false, c.moments,
                                       in.scale, qpool, q16, stream);
    }
    launch_visibility();
    for (int lv = 0; lv < levels; ++lv) {
      const auto& gr = gran[size_t(lv)];
      const int cq = int(gr.c_q), ck = int(gr.c_k);
      const int nkc = (g.seq_k + ck - 1) / ck, nqc = (g.seq_q + cq - 1) / cq;
      if (new_keys && !keys_pooled)
        check(est::pool_rows(k.data, in.bf16, k.strides[0], k.strides[1], D, g.seq_k, hk, ck, true,
                             c.moments, in.scale, kpool[size_t(lv)], stream,
                             G >= group ? n / group : 1, k16[size_t(lv)]),
              "unisparse key pooling");
      if (!queries_pooled)
        check(est::pool_rows(q.data, in.bf16, q.strides[0], q.strides[1], D, g.seq_q, h, cq,
                             false, c.moments, in.scale, qpool[size_t(lv)], stream, n,
                             q16[size_t(lv)]),
              "unisparse query pooling");
      timer.mark("pooling");
      est::StrideProblem pb;
      pb.qrep = qpool[size_t(lv)];
      pb.krep = kpool[size_t(lv)];
      pb.qrep16 = q16[size_t(lv)];
      pb.krep16 = k16[size_t(lv)];
      pb.visible = visible[size_t(lv)];
      pb.nqr = nqc;
      pb.W = W;
      pb.units = nkc;
      pb.reps = 1;
      pb.sq = cq;
      pb.sk = ck;
      pb.alpha = in.scale;
      if (g.seq_k % ck != 0) {  // a partial last pooled key stands for fewer keys
        pb.has_partial = true;
        pb.partial_logw = float(std::log(double(g.seq_k % ck) / double(ck)));
      }
      pb.heads = n;
      pb.z_qrep = int64_t(nqc) * W;
      pb.z_visible = 0;  // pooled visibility is the same for every head
      pb.z_stats = int64_t(nqc) * g.nkb * est::stats_parts(pb, g);
      pb.z_out = z_out;
      pb.kgroup = G >= group ? group : 1;
      pb.z_krep = int64_t(nkc) * W;
      if (mma) choose_fused_instance(pb, g);
      stride_stats(pb, g, stats, mma, stream, "unisparse scores");
      timer.mark("scores");
      check(est::block_scores(pb, g, stats, combined,
                              c.combine == UniSparseConfig::Combine::kMax ? est::Combine::kMax : est::Combine::kMeanAdd,
                              true, float(levels), stream, lv == 0),  // level 0 needs no zeroed map
            "unisparse block scores");
      timer.mark("block_sums");
    }
    staged = hk;
    check(est::select_rows(g, combined, c.top_p, h, counts, lists, stream, n, z_out),
          "unisparse selection");
    timer.mark("selection");
  }
  DevicePattern p = finish_rows(g, s, causal, counts, lists, stream);
  timer.mark("csr");
  return p;
}

void check_device_inputs(const TensorView& t, const char* what) {
  cudaPointerAttributes a{};
  const cudaError_t e = cudaPointerGetAttributes(&a, t.data);
  if (e != cudaSuccess) (void)cudaGetLastError();
  SIEVE_CHECK(e == cudaSuccess && (a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged),
              "GPU selector: {} must point to device memory", what);
}

}  // namespace

void set_estimate_path(std::string_view name) { g_estimate.store(int(parse_estimate(name))); }

std::string estimate_path() {
  switch (current_estimate()) {
    case Estimate::kSimt:
      return "simt";
    case Estimate::kMma:
      return "mma";
    case Estimate::kWgmmaWs:
      return "wgmma-ws";
    case Estimate::kWgmmaPp:
      return "wgmma-pp";
    case Estimate::kWgmmaTma:
      return "wgmma-tma";
    default:
      return "wgmma";
  }
}

bool has_device_selector(const PatternSelector& selector) {
  if (selector.common().share_kv_head) return false;
  const std::string n = selector.name();
  if (n == "dense" || n == "streaming" || n == "unisparse") return true;
  if (const auto* rr = dynamic_cast<const RRSelector*>(&selector)) return rr->config().stride <= 64 && rr->config().near == 0;
  return has_peer_port(selector);
}

DevicePattern select_on_device(const PatternSelector& selector, const TensorView& q, const TensorView& k,
                               const AttentionOptions& opts, Stream stream) {
  selector.validate_config();
  const AttentionShape shape = check_attention_inputs(q, k, k);
  SIEVE_CHECK(has_device_selector(selector),
              "selector '{}' has no GPU port with these settings (ported: rr with stride <= 64 and near=0, unisparse, "
              "streaming, dense, sample, xattn with block_k / stride <= 64, vslash, flexprefill; "
              "share_kv_head=false)",
              selector.name());
  SIEVE_CHECK(q.dtype == DType::kBF16 || q.dtype == DType::kF16,
              "GPU selectors take bf16 or f16 inputs, got {}", dtype_name(q.dtype));
  SIEVE_CHECK(shape.head_dim == 64 || shape.head_dim == 128, "GPU selectors support head_dim 64 or 128, got {}",
              shape.head_dim);
  SIEVE_CHECK(shape.seq_len_q > 0, "GPU selector: empty query");
  check_device_inputs(q, "q");
  check_device_inputs(k, "k");
  const Inputs in{q, k, shape, q.dtype == DType::kBF16, effective_scale(opts, shape.head_dim)};
  const SelectorCommon& c = selector.common();
  const std::string name = selector.name();
  if (name == "dense" || shape.seq_len_k < c.dense_below)
    return fixed_rows(in, c, opts.causal, false, 0, 0, stream);
  if (const auto* st = dynamic_cast<const StreamingSelector*>(&selector)) {
    const StreamingConfig& sc = st->config();
    if (sc.mode == StreamingConfig::Mode::kToken) return streaming_tokens(in, c, opts.causal, sc, stream);
    return fixed_rows(in, c, opts.causal, true, int(sc.sink_blocks), int(sc.local_blocks), stream);
  }
  if (const auto* rr = dynamic_cast<const RRSelector*>(&selector)) return rr_select(in, *rr, opts.causal, stream);
  if (const auto* uni = dynamic_cast<const UniSparseSelector*>(&selector))
    return unisparse_select(in, *uni, opts.causal, stream);
  if (has_peer_port(selector)) return select_peer(selector, q, k, shape, opts, stream);
  SIEVE_FAIL("selector '{}' has no GPU port", name);
}

DeviceRecall pattern_recall(const TensorView& q, const TensorView& k, const DevicePatternView& pat,
                            const AttentionOptions& opts, int64_t row_stride, Stream stream) {
  const AttentionShape s = check_attention_inputs(q, k, k);
  SIEVE_CHECK(row_stride >= 1, "pattern_recall: row_stride must be >= 1");
  SIEVE_CHECK(s.head_dim <= 128 && (q.dtype == DType::kBF16 || q.dtype == DType::kF16),
              "pattern_recall: bf16/f16 inputs with head_dim <= 128");
  SIEVE_CHECK(pat.seq_len_q == s.seq_len_q && pat.seq_len_k == s.seq_len_k &&
                  pat.num_heads == (pat.per_kv_head ? s.num_heads_kv : s.num_heads_q),
              "pattern_recall: pattern does not match the inputs");
  check_device_inputs(q, "q");
  check_device_inputs(k, "k");
  est::Geometry g;
  g.seq_q = int(s.seq_len_q);
  g.seq_k = int(s.seq_len_k);
  g.q_offset = int(s.q_offset());
  g.causal = opts.causal;
  est::PatternRef p;
  p.block_indptr = pat.block_indptr;
  p.block_indices = pat.block_indices;
  p.column_indptr = pat.column_indptr;
  p.columns = pat.columns;
  p.block_q = pat.block_q;
  p.block_k = pat.block_k;
  p.nqb = int(pat.num_q_blocks());
  p.head_div = pat.per_kv_head ? int(s.group_size()) : 1;
  p.band = int(std::min<int64_t>(pat.band, s.seq_len_k + 1));
  const int rows = int((s.seq_len_q + row_stride - 1) / row_stride);
  const int64_t n = int64_t(rows) * s.num_heads_q;
  DeviceRecall r;
  {
    Scratch scratch(stream);
    float* buf = scratch.alloc<float>(n * s.seq_len_k);
    double* out = scratch.alloc<double>(n);
    check(est::sampled_recall(q.data, k.data, q.dtype == DType::kBF16, q.strides[0], q.strides[1], k.strides[0],
                              k.strides[1], int(s.head_dim), int(s.num_heads_q), int(s.group_size()), g,
                              effective_scale(opts, s.head_dim), p, int(row_stride), rows, buf, out, stream),
          "recall");
    std::vector<double> host(static_cast<size_t>(n));
    SIEVE_CUDA_CHECK(cudaMemcpyAsync(host.data(), out, size_t(n) * 8, cudaMemcpyDeviceToHost, stream));
    SIEVE_CUDA_CHECK(cudaStreamSynchronize(stream));
    double sum = 0, mn = 1.0;
    for (double x : host) {
      sum += x;
      mn = std::min(mn, x);
    }
    r.mean = n > 0 ? sum / double(n) : 1.0;
    r.min = n > 0 ? mn : 1.0;
    r.rows = n;
  }
  return r;
}

}  // namespace sieve::attention::cuda
