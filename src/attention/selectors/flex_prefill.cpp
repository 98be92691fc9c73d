// FlexPrefill selector (CPU), after get_active_blocks in bytedance/FlexPrefill
// (flex_prefill/ops/flex_prefill_attention.py): last-block probe, gamma budgets, the
// Jensen-Shannon query-awareness test, pooled block attention for query-aware heads and the
// vertical/slash expansion to blocks for the others.
#include "sieve/attention/selectors/flex_prefill.h"

#include "estimation.h"
#include "sieve/core/error.h"
#include "sieve/core/threading.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace sieve::attention {

namespace est = estimation;

FlexPrefillSelector::FlexPrefillSelector(FlexPrefillConfig config) : config_(config) {
  common_.block_q = 128;
  common_.block_k = 128;
  // The reference falls back to dense attention when q_len <= max(2 * block, min_budget).
  common_.dense_below = std::max<int64_t>(2 * 128, config_.min_budget) + 1;
}

void FlexPrefillSelector::set(std::string_view key, std::string_view value) {
  if (key == "gamma") {
    config_.gamma = est::parse_double(name(), key, value);
  } else if (key == "tau") {
    config_.tau = est::parse_double(name(), key, value);
  } else if (key == "min_budget") {
    config_.min_budget = parse_setting_int(name(), key, value);
  } else if (key == "max_budget") {
    config_.max_budget = parse_setting_int(name(), key, value);
  } else {
    PatternSelector::set(key, value);
    return;
  }
  validate_config();
}

std::map<std::string, std::string> FlexPrefillSelector::settings() const {
  auto s = PatternSelector::settings();
  s["gamma"] = est::format_double(config_.gamma);
  s["tau"] = est::format_double(config_.tau);
  s["min_budget"] = std::to_string(config_.min_budget);
  s["max_budget"] = std::to_string(config_.max_budget);
  return s;
}

void FlexPrefillSelector::validate_config() const {
  PatternSelector::validate_config();
  est::check_open_closed(name(), "gamma", config_.gamma, 0.0, 1.0);
  SIEVE_CHECK(config_.tau >= 0, "selector 'flexprefill': tau must be >= 0, got {}", config_.tau);
  SIEVE_CHECK(config_.min_budget >= 0, "selector 'flexprefill': min_budget must be >= 0, got {}",
              config_.min_budget);
  SIEVE_CHECK(config_.max_budget == 0 || config_.max_budget >= config_.min_budget,
              "selector 'flexprefill': max_budget ({}) must be 0 (none) or >= min_budget ({})",
              config_.max_budget, config_.min_budget);
}

namespace {

// Mean of x over consecutive groups of `width` (the last group may be shorter), as avg_pool1d
// with ceil_mode.
std::vector<float> pool_mean(const std::vector<double>& x, int64_t n, int64_t width) {
  const int64_t groups = (n + width - 1) / width;
  std::vector<float> out(static_cast<size_t>(groups));
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t a = g * width, b = std::min(n, a + width);
    double s = 0;
    for (int64_t i = a; i < b; ++i) s += x[size_t(i)];
    out[size_t(g)] = float(s / double(b - a));
  }
  return out;
}

// sqrt of the Jensen-Shannon divergence (natural log) between two non-negative vectors, each
// normalized to sum one.
double sqrt_js_divergence(const std::vector<float>& a, const std::vector<float>& b) {
  const size_t n = std::min(a.size(), b.size());
  double sa = 0, sb = 0;
  for (size_t i = 0; i < n; ++i) {
    sa += a[i];
    sb += b[i];
  }
  if (sa <= 0 || sb <= 0) return 1.0;
  double js = 0;
  for (size_t i = 0; i < n; ++i) {
    const double p = a[i] / sa, q = b[i] / sb, m = 0.5 * (p + q);
    if (p > 0) js += 0.5 * p * std::log(p / m);
    if (q > 0) js += 0.5 * q * std::log(q / m);
  }
  return std::sqrt(std::max(0.0, js));
}

}  // namespace

SparsePattern FlexPrefillSelector::estimate(const TensorView& q, const TensorView& k,
                                            const AttentionOptions& opts,
                                            const AttentionShape& shape) const {
  const est::BlockGeometry geo(shape, common_.block_q, common_.block_k, opts.causal);
  const int64_t D = shape.head_dim, Lq = shape.seq_len_q, Lk = shape.seq_len_k;
  const int64_t group = shape.group_size();
  const int64_t bq = common_.block_q, bk = common_.block_k;
  const int64_t nqb = geo.num_q_blocks, nkb = geo.num_k_blocks;
  const float scale = effective_scale(opts, D);
  const int nt = num_threads();
  const float inf = std::numeric_limits<float>::infinity();
  const int64_t min_blocks = config_.min_budget / bk;
  const int64_t max_blocks = config_.max_budget > 0 ? config_.max_budget / bk : nkb;
  const auto clamp_blocks = [&](int64_t b) {
    return std::clamp<int64_t>(std::clamp<int64_t>(b, min_blocks, max_blocks), 0, nkb);
  };

  est::PatternBuilder builder(geo, int(shape.num_heads_q));
  std::vector<float> kf, kpool(static_cast<size_t>(nkb * D)), qpool(static_cast<size_t>(nqb * D));
  int64_t staged_kv = -1;
  for (int64_t h = 0; h < shape.num_heads_q; ++h) {
    const int64_t hk = h / group;
    if (hk != staged_kv) {
      est::load_head_f32(k, hk, kf);
#pragma omp parallel for num_threads(nt) schedule(static)
      for (int64_t kb = 0; kb < nkb; ++kb)
        est::mean_rows(&kf[size_t(kb * bk * D)], std::min(bk, Lk - kb * bk), D,
                       &kpool[size_t(kb * D)]);
      staged_kv = hk;
    }
    // 1-2. Probe of the last block of queries: vertical = mean column scores, slash = diagonal
    // sums / rows.
    est::Probe pr = est::probe_last_rows(q, h, kf.data(), geo, D, scale, bq);
    const double rows = double(std::max<int64_t>(pr.rows, 1));
    for (auto& v : pr.vertical) v /= rows;
    for (auto& v : pr.slash) v /= rows;
    // 3. Budgets: tokens needed for gamma coverage, // block + 1, clamped.
    std::vector<float> vtok(pr.vertical.begin(), pr.vertical.end());
    std::vector<float> stok(pr.slash.begin(), pr.slash.end());
    int64_t num_vertical = clamp_blocks(est::cover_count(vtok.data(), Lk, config_.gamma) / bk + 1);
    int64_t num_slash = clamp_blocks(est::cover_count(stok.data(), Lk, config_.gamma) / bk + 1);
    std::vector<float> vblock = pool_mean(pr.vertical, Lk, bk);
    std::vector<float> sblock = pool_mean(pr.slash, Lk, bk);
    // 4. Query-awareness: pooled estimate of the last block's distribution over key blocks.
    std::vector<float> qrows(static_cast<size_t>(pr.rows * D)), qmean(static_cast<size_t>(D));
    est::load_rows_f32(q, h, Lq - pr.rows, Lq, qrows.data());
    est::mean_rows(qrows.data(), pr.rows, D, qmean.data());
    const int64_t nvis_last = geo.visible_k_blocks(nqb - 1);
    std::vector<float> avg_qk(static_cast<size_t>(std::max<int64_t>(nvis_last, 1)), 0.0f);
    if (nvis_last > 0) {
      est::kernels().gemm_nt(qmean.data(), D, kpool.data(), D, avg_qk.data(), nvis_last, 1,
                             nvis_last, D, scale);
      est::softmax_inplace(avg_qk.data(), nvis_last);
    }
    std::vector<float> vblock_vis(vblock.begin(), vblock.begin() + nvis_last);
    const bool query_aware = sqrt_js_divergence(avg_qk, vblock_vis) < config_.tau;
    if (query_aware) num_vertical = num_slash = clamp_blocks(min_blocks);
    // 5. Force the first key block and the diagonal, then top vertical blocks / slash diagonals.
    if (!vblock.empty()) vblock[0] = inf;
    if (!sblock.empty()) sblock[0] = inf;
    const std::vector<int32_t> vsel = est::top_k_indices(vblock.data(), nkb, num_vertical);
    const std::vector<int32_t> ssel = est::top_k_indices(sblock.data(), nkb, num_slash);

    std::vector<std::vector<int32_t>> extra(static_cast<size_t>(nqb));
    if (query_aware) {
      // Pooled block attention for every query block, kept globally until the cumulative mass
      // reaches gamma * (number of rows); each row's softmax sums to one.
#pragma omp parallel num_threads(nt)
      {
        std::vector<float> buf(static_cast<size_t>(bq * D));
#pragma omp for schedule(static)
        for (int64_t qb = 0; qb < nqb; ++qb) {
          est::load_rows_f32(q, h, geo.q_begin(qb), geo.q_end(qb), buf.data());
          est::mean_rows(buf.data(), geo.q_end(qb) - geo.q_begin(qb), D, &qpool[size_t(qb * D)]);
        }
      }
      std::vector<float> attn(static_cast<size_t>(nqb * nkb), 0.0f);
      est::kernels().gemm_nt(qpool.data(), D, kpool.data(), D, attn.data(), nkb, nqb, nkb, D,
                             scale);
      double rows_with_keys = 0;
      for (int64_t qb = 0; qb < nqb; ++qb) {
        const int64_t nvis = geo.visible_k_blocks(qb);
        float* row = &attn[size_t(qb * nkb)];
        est::softmax_inplace(row, nvis);
        std::fill(row + nvis, row + nkb, 0.0f);
        if (nvis > 0) rows_with_keys += 1;
      }
      std::vector<int32_t> order(static_cast<size_t>(nqb * nkb));
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
        return attn[size_t(a)] > attn[size_t(b)] || (attn[size_t(a)] == attn[size_t(b)] && a < b);
      });
      const double required = config_.gamma * rows_with_keys;
      double cum = 0;
      for (int32_t id : order) {
        if (cum >= required || attn[size_t(id)] <= 0) break;
        extra[size_t(id / nkb)].push_back(int32_t(id % nkb));
        cum += attn[size_t(id)];
      }
    }
    // 6. Union: vertical blocks for every query block, slash s -> key block diag(qb) - s.
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t qb = 0; qb < nqb; ++qb) {
      std::vector<int32_t> blocks = std::move(extra[size_t(qb)]);
      blocks.insert(blocks.end(), vsel.begin(), vsel.end());
      const int64_t diag = std::clamp<int64_t>(geo.pos(geo.q_end(qb) - 1), 0, Lk - 1) / bk;
      for (int32_t s : ssel)
        if (diag - s >= 0) blocks.push_back(int32_t(diag - s));
      builder.set_row(int(h), qb, std::move(blocks));
    }
  }
  return builder.finish();
}

}  // namespace sieve::attention
