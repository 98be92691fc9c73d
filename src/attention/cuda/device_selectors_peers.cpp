// Host side of the GPU ports of the peer selectors (sample, xattn, vslash; kernels in
// selectors/cuda/sample.cu and xattn.cu): the CPU selector's configuration turned into launch
// arguments, stream-ordered scratch, and the pattern assembled on the device. No host
// synchronisation: every size the host needs follows from the shape and the settings.
#include "../selectors/cuda/peers_gpu.h"
#include "device_selectors_internal.h"
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
  Scratch scratch(stream);
  int* rows = scratch.alloc<int>(n_rows);
  auto* row_scratch =
      scratch.alloc<unsigned char>(int64_t(est::row_mass_bytes(H, n_rows, int(Lk))));
  double* col = scratch.alloc<double>(int64_t(H) * Lk);
  double* covered = scratch.alloc<double>(H);
  double* counted = scratch.alloc<double>(H);
  auto* stage2 = scratch.alloc<unsigned char>(int64_t(est::sample_stage2_bytes(H, int(Lk))));
  const int prows = H * g.nqb;
  int* counts = scratch.alloc<int>(prows);
  int* lists = scratch.alloc<int>(int64_t(prows) * g.nkb);
  StageProfile prof("sample", stream);
  check(est::sampled_rows(int(Lq), int(chunk), int(num_chunks), rows, stream), "sample rows");
  est::RowProblem rp;
  rp.rows = rows;
  rp.n_rows = n_rows;
  rp.band = int(band);
  rp.col = col;
  rp.covered = covered;
  rp.counted = counted;
  check(est::row_mass(in, g, rp, false, row_scratch, stream), "sample stage 1");
  prof.mark("stage1");
  DevicePattern p = allocate_pattern(g, s, causal, int64_t(H) * Lk, band);
  const DevicePatternView& v = p.view();
  check(est::sample_stage2(g, H, col, covered, counted, c.alpha, int(band), c.dense_share, stage2,
                           counts, lists, const_cast<int32_t*>(v.column_indptr),
                           const_cast<int32_t*>(v.columns), stream),
        "sample stage 2");
  prof.mark("stage2");
  assemble_rows(g, p, counts, lists, stream);
  prof.mark("csr");
  return p;
}

// XAttention (xattention.cpp): antidiagonal stride scores on tensor cores, then the shared
// block_scores / select_rows (softmax per query stride, block sums, cumulative rule with the sink
// and diagonal blocks forced). The query heads of one KV head run as one batch while their
// statistics stay under 1 GiB.
DevicePattern xattn_select(const XAttentionSelector& sel, const est::HeadInputs& in,
                           const AttentionShape& s, bool causal, cudaStream_t stream) {
  const XAttentionConfig& c = sel.config();
  const int S = c.stride, H = in.heads_q;
  const est::Geometry g = geometry(s, sel.common(), causal);
  const int nqs = (g.seq_q + S - 1) / S, nks = (g.seq_k + S - 1) / S;
  const int64_t stats_per_head = int64_t(nqs) * g.nkb;
  const int G = stats_per_head * 8 * in.group <= (int64_t(1) << 30) ? in.group : 1;
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
  Scratch scratch(stream);
  int* visible = scratch.alloc<int>(nqs);
  auto* stats = scratch.alloc<float2>(G * stats_per_head);
  float* scores = scratch.alloc<float>(G * pb.z_out);
  const int rows = H * g.nqb;
  int* counts = scratch.alloc<int>(rows);
  int* lists = scratch.alloc<int>(int64_t(rows) * g.nkb);
  pb.visible = visible;
  StageProfile prof("xattn", stream);
  check(est::xattn_visible(g, S, nqs, nks, visible, stream), "xattn visibility");
  for (int h0 = 0; h0 < H; h0 += G) {
    check(est::xattn_stats(in, g, S, h0, G, visible, stats, stream), "xattn scores");
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
  int* rows = scratch.alloc<int>(m);
  auto* row_scratch = scratch.alloc<unsigned char>(int64_t(est::row_mass_bytes(H, m, int(Lk))));
  double* vertical = scratch.alloc<double>(int64_t(H) * Lk);
  double* slash = scratch.alloc<double>(int64_t(H) * Lk);
  auto* stage2 = scratch.alloc<unsigned char>(int64_t(est::vslash_stage2_bytes(H, int(Lk))));
  const int prows = H * g.nqb;
  int* counts = scratch.alloc<int>(prows);
  int* lists = scratch.alloc<int>(int64_t(prows) * g.nkb);
  StageProfile prof("vslash", stream);
  // one chunk of m rows ending at the last row: rows [Lq - m, Lq)
  check(est::sampled_rows(int(Lq), m, 1, rows, stream), "vslash probe rows");
  est::RowProblem rp;
  rp.rows = rows;
  rp.n_rows = m;
  rp.col = vertical;
  rp.slash = slash;
  check(est::row_mass(in, g, rp, true, row_scratch, stream), "vslash probe");
  prof.mark("probe");
  DevicePattern p = allocate_pattern(g, s, causal, int64_t(H) * Lk);
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

}  // namespace

bool has_peer_port(const PatternSelector& selector) {
  if (selector.common().share_kv_head) return false;
  if (dynamic_cast<const SampleAttentionSelector*>(&selector) != nullptr) return true;
  if (const auto* x = dynamic_cast<const XAttentionSelector*>(&selector))
    return est::xattn_fits(x->config().stride, selector.common().block_k);
  if (const auto* v = dynamic_cast<const VerticalSlashSelector*>(&selector))
    return v->config().vertical_size.size() <= est::VsBudgets::kMaxHeads &&
           v->config().slash_size.size() <= est::VsBudgets::kMaxHeads;
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
  SIEVE_FAIL("selector '{}' has no GPU port", selector.name());
}

}  // namespace sieve::attention::cuda
