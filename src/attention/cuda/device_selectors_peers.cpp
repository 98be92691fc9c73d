// Host side of the GPU ports of the peer selectors (sample, xattn, vslash, flexprefill; kernels
// in selectors/cuda/sample.cu, xattn.cu and flexprefill.cu): the CPU selector's configuration
// turned into launch arguments, stream-ordered scratch, and the pattern assembled on the device. No
// host synchronisation: every size the host needs follows from the shape and the settings.
#include "../selectors/cuda/peers_gpu.h"
#include "device_selectors_internal.h"
#include "sieve/attention/selectors/flex_prefill.h"
#include "sieve/attention/selectors/sample_attention.h"
#include "sieve/attention/selectors/vertical_slash.h"
#include "sieve/attention/selectors/xattention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace sieve::attention::cuda {

namespace {

est::HeadInputs head_inputs(const TensorView& q, const TensorView& k, const AttentionShape& s,
                            const AttentionOptions& opts) {
  est::HeadInputs in;
  in.q = q.data;
  in.k = k.data;
  in.bf16 = q.dtype == DType::kBF16;
  in.q_head_stride = q.strides[0];
  in.q_row_stride = q.strides[1];
  in.k_head_stride = k.strides[0];
  in.k_row_stride = k.strides[1];
  in.D = int(s.head_dim);
  in.heads_q = int(s.num_heads_q);
  in.group = int(s.group_size());
  in.scale = effective_scale(opts, s.head_dim);
  return in;
}

// The exact softmax of the last m query rows (rows [Lq - m, Lq), one chunk of m rows) reduced to
// column sums (vertical) and diagonal sums (slash) [heads][seq_k]: probe_last_rows on the GPU.
void probe_last_rows(const est::HeadInputs& in, const est::Geometry& g, int m, Scratch& scratch,
                     double* vertical, double* slash, const char* who, cudaStream_t stream) {
  int* rows = scratch.alloc<int>(m);
  auto* row_scratch =
      scratch.alloc<unsigned char>(int64_t(est::row_mass_bytes(in.heads_q, m, g.seq_k)));
  check(est::sampled_rows(g.seq_q, m, 1, rows, stream), who);
  est::RowProblem rp;
  rp.rows = rows;
  rp.n_rows = m;
  rp.col = vertical;
  rp.slash = slash;
  check(est::row_mass(in, g, rp, true, row_scratch, stream), who);
}

// SampleAttention (sample_attention.cpp): the same sampled rows, covered structure, cumulative
// rule over the columns and dense fallback; f32 scores on tensor cores from the 16-bit inputs.
DevicePattern sample_select(const SampleAttentionSelector& sel, const est::HeadInputs& in,
                            const AttentionShape& s, bool causal, cudaStream_t stream) {
  const SampleAttentionConfig& c = sel.config();
  const est::Geometry g = geometry(s, sel.common(), causal);
  const int64_t Lq = s.seq_len_q, Lk = s.seq_len_k;
  const int64_t band = c.window_ratio > 0
                           ? std::max<int64_t>(1, int64_t(std::ceil(c.window_ratio * double(Lk))))
                           : 0;
  const int64_t want = std::max<int64_t>(1, int64_t(std::ceil(c.sample_ratio * double(Lq))));
  const int64_t chunk = std::min(c.chunk, Lq);
  const int64_t num_chunks = std::max<int64_t>(1, (want + chunk - 1) / chunk);
  const int n_rows = est::sampled_row_count(int(Lq), int(chunk), int(num_chunks));
  const int H = in.heads_q;
  StageProfile prof("sample", stream);  // first stage: the scratch allocation
  // one stream-ordered allocation, carved (each cudaMallocAsync costs host time before the first
  // kernel, and the GPU waits for it)
  const est::Stage2Way way = est::sample_stage2_way();
  est::ScratchCarver carve;
  const size_t rows_at = carve.take(size_t(n_rows) * sizeof(int));
  const size_t row_scratch_at = carve.take(est::row_mass_bytes(H, n_rows, int(Lk)));
  const size_t col_at = carve.take(size_t(H) * size_t(Lk) * sizeof(double));
  const size_t covered_at = carve.take(size_t(H) * sizeof(double));
  const size_t counted_at = carve.take(size_t(H) * sizeof(double));
  const size_t stage2_at = carve.take(est::sample_stage2_bytes(H, int(Lk), way));
  Scratch scratch(stream);
  auto* base = scratch.alloc<unsigned char>(int64_t(carve.total));
  auto* rows = reinterpret_cast<int*>(base + rows_at);
  auto* row_scratch = base + row_scratch_at;
  auto* col = reinterpret_cast<double*>(base + col_at);
  auto* covered = reinterpret_cast<double*>(base + covered_at);
  auto* counted = reinterpret_cast<double*>(base + counted_at);
  auto* stage2 = base + stage2_at;
  prof.mark("scratch");
  check(est::sampled_rows(int(Lq), int(chunk), int(num_chunks), rows, stream), "sample rows");
  est::RowProblem rp;
  rp.rows = rows;
  rp.n_rows = n_rows;
  rp.band = int(band);
  rp.col = col;
  rp.covered = covered;
  rp.counted = counted;
  rp.skip_covered = est::sample_mass_skips_covered();
  check(est::row_mass(in, g, rp, false, row_scratch, stream), "sample stage 1");
  prof.mark("stage1");
  DevicePattern p = allocate_pattern(g, s, causal, stream, int64_t(H) * Lk, band);
  const DevicePatternView& v = p.view();
  check(est::sample_stage2(g, H, col, covered, counted, c.alpha_at(Lk), int(band), c.dense_share,
                           way, stage2, const_cast<int32_t*>(v.block_indptr),
                           const_cast<int32_t*>(v.block_indices),
                           const_cast<int32_t*>(v.column_indptr), const_cast<int32_t*>(v.columns),
                           stream),
        "sample stage 2");  // the block CSR too (rows: sink + diagonal, or dense)
  prof.mark("stage2");
  return p;
}

// XAttention (xattention.cpp): antidiagonal stride scores on tensor cores, then the shared
// block_scores / select_rows (softmax per query stride, block sums, cumulative rule with the sink
// and diagonal blocks forced). As many query heads run as one batch as keep their statistics
// within 256 MiB (the largest such divisor of the head count): one batch of all 32 heads at 32K
// (0.2 ms faster than 8 batches of 4 on the H200). Not more: with 1 GiB batches the time outside
// the kernels (scratch allocation) grew from ~1 to ~2 ms at 128K.
DevicePattern xattn_select(const XAttentionSelector& sel, const est::HeadInputs& in,
                           const AttentionShape& s, bool causal, cudaStream_t stream) {
  const XAttentionConfig& c = sel.config();
  const int S = c.stride, H = in.heads_q;
  const est::Geometry g = geometry(s, sel.common(), causal);
  const int nqs = (g.seq_q + S - 1) / S, nks = (g.seq_k + S - 1) / S;
  const int64_t stats_per_head = int64_t(nqs) * g.nkb;
  const int64_t cap_bytes = int64_t(256) << 20;
  int G = 1;
  for (int d = H; d >= 1; --d)
    if (H % d == 0 && int64_t(d) * stats_per_head * int64_t(sizeof(est::GroupStat)) <= cap_bytes) {
      G = d;
      break;
    }
  est::StrideProblem pb;
  pb.nqr = nqs;
  pb.W = S * in.D;
  pb.units = nks;
  pb.reps = 1;
  pb.sq = S;
  pb.sk = S;
  pb.alpha = in.scale / float(S);
  pb.heads = G;
  pb.z_visible = 0;  // stride visibility is the same for every head
  pb.z_stats = stats_per_head;
  pb.z_out = int64_t(g.nqb) * g.nkb;
  StageProfile prof("xattn", stream);  // first stage: the scratch allocation
  Scratch scratch(stream);
  int* visible = scratch.alloc<int>(nqs);
  auto* stats = scratch.alloc<est::GroupStat>(G * stats_per_head);
  float* scores = scratch.alloc<float>(G * pb.z_out);
  const int rows = H * g.nqb;
  int* counts = scratch.alloc<int>(rows);
  int* lists = scratch.alloc<int>(int64_t(rows) * g.nkb);
  pb.visible = visible;
  est::XattnPlan plan;  // kernel choice, tensor maps, attributes: host work once, not per batch
  check(est::xattn_plan(in, g, S, &plan), "xattn score kernel set-up");
  prof.mark("scratch");
  check(est::xattn_visible(g, S, nqs, nks, visible, stream), "xattn visibility");
  for (int h0 = 0; h0 < H; h0 += G) {
    check(est::xattn_stats(plan, in, g, S, h0, G, visible, stats, stream), "xattn scores");
    prof.mark("scores");
    check(est::block_scores(pb, g, stats, scores, est::Combine::kSet, false, 1.f, stream),
          "xattn block scores");
    prof.mark("blocks");
    check(est::select_rows(g, scores, c.tau, h0, counts, lists, stream, G, pb.z_out),
          "xattn selection");
    prof.mark("select");
  }
  DevicePattern p = finish_rows(g, s, causal, counts, lists, stream);
  prof.mark("csr");
  return p;
}

// MInference vertical-slash (vertical_slash.cpp): the exact softmax of the last last_q rows
// reduced to column and diagonal sums (probe_last_rows), top-k of both with the forced columns and
// diagonals, slash lines turned into the key blocks they cross, verticals into token columns.
DevicePattern vslash_select(const VerticalSlashSelector& sel, const est::HeadInputs& in,
                            const AttentionShape& s, bool causal, cudaStream_t stream) {
  const VerticalSlashConfig& c = sel.config();
  const est::Geometry g = geometry(s, sel.common(), causal);
  const int64_t Lq = s.seq_len_q, Lk = s.seq_len_k;
  const int H = in.heads_q;
  const auto budget_ok = [&](const std::vector<int64_t>& v, const char* what) {
    SIEVE_CHECK(v.size() == 1 || int64_t(v.size()) == H,
                "selector 'vslash': {} has {} values; give one or one per query head ({})", what,
                v.size(), H);
  };
  budget_ok(c.vertical_size, "vertical_size");
  budget_ok(c.slash_size, "slash_size");
  est::VsBudgets b;
  b.per_head = c.vertical_size.size() > 1 || c.slash_size.size() > 1;
  SIEVE_CHECK(!b.per_head || H <= est::VsBudgets::kMaxHeads,
              "GPU selector 'vslash': per-head budgets for at most {} heads",
              est::VsBudgets::kMaxHeads);
  for (int h = 0; h < (b.per_head ? H : 1); ++h) {
    const auto pick = [&](const std::vector<int64_t>& v) {
      return v.size() == 1 ? v[0] : v[size_t(h)];
    };
    // MInference's floors (vertical >= 30, slash >= 50), as vertical_slash.cpp
    b.vertical[h] = int(std::min(Lk, std::max<int64_t>(pick(c.vertical_size), 30)));
    b.slash[h] = int(std::min(Lk, std::max<int64_t>(pick(c.slash_size), 50)));
  }
  const int m = int(std::clamp<int64_t>(c.last_q, 1, Lq));
  Scratch scratch(stream);
  double* vertical = scratch.alloc<double>(int64_t(H) * Lk);
  double* slash = scratch.alloc<double>(int64_t(H) * Lk);
  auto* stage2 = scratch.alloc<unsigned char>(int64_t(est::vslash_stage2_bytes(H, int(Lk))));
  const int prows = H * g.nqb;
  int* counts = scratch.alloc<int>(prows);
  int* lists = scratch.alloc<int>(int64_t(prows) * g.nkb);
  StageProfile prof("vslash", stream);
  probe_last_rows(in, g, m, scratch, vertical, slash, "vslash probe", stream);
  prof.mark("probe");
  DevicePattern p = allocate_pattern(g, s, causal, stream, int64_t(H) * Lk);
  const DevicePatternView& v = p.view();
  check(est::vslash_stage2(g, H, vertical, slash, int(std::min<int64_t>(c.force_columns, Lk)),
                           int(std::min<int64_t>(c.force_diagonals, Lk)), b, stage2, counts, lists,
                           const_cast<int32_t*>(v.column_indptr), const_cast<int32_t*>(v.columns),
                           stream),
        "vslash top-k");
  prof.mark("topk");
  assemble_rows(g, p, counts, lists, stream);
  prof.mark("csr");
  return p;
}

// FlexPrefill (flex_prefill.cpp): the exact softmax of the last block_q rows reduced to column and
// diagonal sums (row_mass in probe mode, as vslash), key / query block means (pool_rows: the CPU's
// mean_rows, same order), the pooled block attention softmax(meanpool(Q) . meanpool(K)^T) through
// the shared stride estimator (one query block and one key block per entry), then budgets, the
// Jensen-Shannon test, top-k and the global cumulative rule (flex_select).
DevicePattern flexprefill_select(const FlexPrefillSelector& sel, const est::HeadInputs& in,
                                 const AttentionShape& s, bool causal, cudaStream_t stream) {
  const FlexPrefillConfig& c = sel.config();
  const est::Geometry g = geometry(s, sel.common(), causal);
  const int64_t Lq = s.seq_len_q, Lk = s.seq_len_k;
  const int H = in.heads_q, Hkv = int(s.num_heads_kv), D = in.D;
  const int m = int(std::clamp<int64_t>(g.block_q, 1, Lq));
  est::FlexSettings fs;
  fs.gamma = c.gamma;
  fs.tau = c.tau;
  fs.min_blocks = int(c.min_budget / g.block_k);
  fs.max_blocks = c.max_budget > 0 ? int(c.max_budget / g.block_k) : g.nkb;
  fs.probe_rows = m;
  Scratch scratch(stream);
  double* vertical = scratch.alloc<double>(int64_t(H) * Lk);
  double* slash = scratch.alloc<double>(int64_t(H) * Lk);
  float* kpool = scratch.alloc<float>(int64_t(Hkv) * g.nkb * D);
  float* qpool = scratch.alloc<float>(int64_t(H) * g.nqb * D);
  float* qmean = scratch.alloc<float>(int64_t(H) * D);
  int* visible = scratch.alloc<int>(g.nqb);
  const int64_t per_head = int64_t(g.nqb) * g.nkb;
  auto* stats = scratch.alloc<est::GroupStat>(H * per_head);
  float* attn = scratch.alloc<float>(H * per_head);
  auto* stage2 = scratch.alloc<unsigned char>(int64_t(est::flex_select_bytes(g, H)));
  const int prows = H * g.nqb;
  int* counts = scratch.alloc<int>(prows);
  int* lists = scratch.alloc<int>(int64_t(prows) * g.nkb);
  StageProfile prof("flexprefill", stream);
  // 1-2. probe of the last m rows
  probe_last_rows(in, g, m, scratch, vertical, slash, "flexprefill probe", stream);
  prof.mark("probe");
  // 4. pooled inputs: key block means, query block means, the mean of the probed rows
  check(est::pool_rows(in.k, in.bf16, in.k_head_stride, in.k_row_stride, D, int(Lk), 0, g.block_k,
                       true, false, in.scale, kpool, stream, Hkv),
        "flexprefill key pooling");
  check(est::pool_rows(in.q, in.bf16, in.q_head_stride, in.q_row_stride, D, int(Lq), 0, g.block_q,
                       false, false, in.scale, qpool, stream, H),
        "flexprefill query pooling");
  // 16-bit elements: the probed rows start 2 * (Lq - m) * row stride bytes in
  const void* last_rows = static_cast<const unsigned char*>(in.q) + 2 * (Lq - m) * in.q_row_stride;
  check(est::pool_rows(last_rows, in.bf16, in.q_head_stride, in.q_row_stride, D, m, 0, m, false,
                       false, in.scale, qmean, stream, H),
        "flexprefill probe mean");
  check(est::pooled_visible(g, g.nqb, g.block_q, g.block_k, g.nkb, visible, stream),
        "flexprefill visibility");
  est::StrideProblem pb;
  pb.qrep = qpool;
  pb.krep = kpool;
  pb.visible = visible;
  pb.nqr = g.nqb;
  pb.W = D;
  pb.units = g.nkb;
  pb.reps = 1;
  pb.sq = g.block_q;
  pb.sk = g.block_k;
  pb.alpha = in.scale;
  pb.heads = H;
  pb.z_qrep = int64_t(g.nqb) * D;
  pb.kgroup = in.group;
  pb.z_krep = int64_t(g.nkb) * D;
  pb.z_stats = per_head;
  pb.z_out = per_head;
  check(est::clear_stats(stats, H * per_head, stream),
        "flexprefill statistics");
  check(est::stride_stats(pb, g, stats, stream), "flexprefill pooled scores");
  // first: every row's visible entries written; flex_select reads no others (no memset)
  check(est::block_scores(pb, g, stats, attn, est::Combine::kSet, false, 1.f, stream, true),
        "flexprefill pooled attention");
  prof.mark("pooled");
  check(est::flex_select(g, H, in.group, D, in.scale, fs, vertical, slash, qmean, kpool, attn,
                         stage2, counts, lists, nullptr, stream),
        "flexprefill selection");
  prof.mark("select");
  DevicePattern p = finish_rows(g, s, causal, counts, lists, stream);
  prof.mark("csr");
  return p;
}

}  // namespace

bool has_peer_port(const PatternSelector& selector) {
  if (selector.common().share_kv_head) return false;
  if (dynamic_cast<const SampleAttentionSelector*>(&selector) != nullptr) return true;
  if (const auto* x = dynamic_cast<const XAttentionSelector*>(&selector))
    return est::xattn_fits(x->config().stride, selector.common().block_k);
  if (const auto* v = dynamic_cast<const VerticalSlashSelector*>(&selector))
    return v->config().vertical_size.size() <= est::VsBudgets::kMaxHeads &&
           v->config().slash_size.size() <= est::VsBudgets::kMaxHeads;
  if (dynamic_cast<const FlexPrefillSelector*>(&selector) != nullptr) return true;
  return false;
}

DevicePattern select_peer(const PatternSelector& selector, const TensorView& q, const TensorView& k,
                          const AttentionShape& shape, const AttentionOptions& opts,
                          cudaStream_t stream) {
  const est::HeadInputs in = head_inputs(q, k, shape, opts);
  SIEVE_CHECK(
      est::rows_fit(in),
      "GPU selector '{}': q and k need 16-byte aligned rows (strides multiples of 8 elements)",
      selector.name());
  if (const auto* sa = dynamic_cast<const SampleAttentionSelector*>(&selector))
    return sample_select(*sa, in, shape, opts.causal, stream);
  if (const auto* xa = dynamic_cast<const XAttentionSelector*>(&selector))
    return xattn_select(*xa, in, shape, opts.causal, stream);
  if (const auto* vs = dynamic_cast<const VerticalSlashSelector*>(&selector))
    return vslash_select(*vs, in, shape, opts.causal, stream);
  if (const auto* fp = dynamic_cast<const FlexPrefillSelector*>(&selector))
    return flexprefill_select(*fp, in, shape, opts.causal, stream);
  SIEVE_FAIL("selector '{}' has no GPU port", selector.name());
}

}  // namespace sieve::attention::cuda
