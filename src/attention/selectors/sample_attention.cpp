// SampleAttention selector (CPU).
// Stage 1: exact f32 softmax of sampled query rows (evenly spread chunks, the last one ending at
// the last row) against every visible key. Per row the mass inside the always-kept structure
// (window band, sink block, the row's diagonal blocks) is "covered"; the rest is added to its key
// column. Stage 2: columns in descending accumulated mass until covered + kept columns reach
// alpha of the sampled mass (the cumulative residual attention). Cost ~ sample_ratio of dense.
#include "sieve/attention/selectors/sample_attention.h"

#include "estimation.h"
#include "sieve/core/error.h"
#include "sieve/core/threading.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace sieve::attention {

namespace est = estimation;

double SampleAttentionConfig::alpha_at(int64_t seq_len_k) const {
  if (seq_len_k <= alpha_ref_length || alpha_length_exponent == 0.0) return alpha;
  const double grow = std::pow(double(seq_len_k) / double(alpha_ref_length), alpha_length_exponent);
  return std::max(0.0, 1.0 - (1.0 - alpha) * grow);
}

SampleAttentionSelector::SampleAttentionSelector(SampleAttentionConfig config) : config_(config) {
  common_.block_q = 128;
  common_.block_k = 128;
  common_.dense_below = 4096;
}

void SampleAttentionSelector::set(std::string_view key, std::string_view value) {
  if (key == "alpha") {
    config_.alpha = est::parse_double(name(), key, value);
  } else if (key == "alpha_ref_length") {
    config_.alpha_ref_length = parse_setting_int(name(), key, value);
  } else if (key == "alpha_length_exponent") {
    config_.alpha_length_exponent = est::parse_double(name(), key, value);
  } else if (key == "window_ratio") {
    config_.window_ratio = est::parse_double(name(), key, value);
  } else if (key == "sample_ratio") {
    config_.sample_ratio = est::parse_double(name(), key, value);
  } else if (key == "chunk") {
    config_.chunk = parse_setting_int(name(), key, value);
  } else if (key == "dense_share") {
    config_.dense_share = est::parse_double(name(), key, value);
  } else {
    PatternSelector::set(key, value);
    return;
  }
  validate_config();
}

std::map<std::string, std::string> SampleAttentionSelector::settings() const {
  auto s = PatternSelector::settings();
  s["alpha"] = est::format_double(config_.alpha);
  s["alpha_ref_length"] = std::to_string(config_.alpha_ref_length);
  s["alpha_length_exponent"] = est::format_double(config_.alpha_length_exponent);
  s["window_ratio"] = est::format_double(config_.window_ratio);
  s["sample_ratio"] = est::format_double(config_.sample_ratio);
  s["chunk"] = std::to_string(config_.chunk);
  s["dense_share"] = est::format_double(config_.dense_share);
  return s;
}

void SampleAttentionSelector::validate_config() const {
  PatternSelector::validate_config();
  est::check_open_closed(name(), "alpha", config_.alpha, 0.0, 1.0);
  SIEVE_CHECK(config_.alpha_ref_length >= 1,
              "selector 'sample': alpha_ref_length must be >= 1, got {}", config_.alpha_ref_length);
  SIEVE_CHECK(config_.alpha_length_exponent >= 0 && config_.alpha_length_exponent <= 4,
              "selector 'sample': alpha_length_exponent must be in [0, 4], got {}",
              config_.alpha_length_exponent);
  est::check_open_closed(name(), "sample_ratio", config_.sample_ratio, 0.0, 1.0);
  SIEVE_CHECK(config_.window_ratio >= 0 && config_.window_ratio <= 1,
              "selector 'sample': window_ratio must be in [0, 1], got {}", config_.window_ratio);
  est::check_open_closed(name(), "dense_share", config_.dense_share, 0.0, 1.0);
  SIEVE_CHECK(config_.chunk >= 1, "selector 'sample': chunk must be >= 1, got {}", config_.chunk);
}

SparsePattern SampleAttentionSelector::estimate(const TensorView& q, const TensorView& k,
                                                const AttentionOptions& opts,
                                                const AttentionShape& shape) const {
  const est::BlockGeometry geo(shape, common_.block_q, common_.block_k, opts.causal);
  const int64_t D = shape.head_dim, Lq = shape.seq_len_q, Lk = shape.seq_len_k;
  const int64_t group = shape.group_size();
  const float scale = effective_scale(opts, D);
  const int nt = num_threads();
  const int64_t bk = common_.block_k;
  const int64_t band = config_.window_ratio > 0
                           ? std::max<int64_t>(1, int64_t(std::ceil(config_.window_ratio * Lk)))
                           : 0;

  // Stage-1 rows: ceil(sample_ratio * Lq) rows in chunks spread evenly, the last chunk ending at
  // row Lq - 1 (the rows that see the whole context); overlapping chunks are merged.
  const int64_t want = std::max<int64_t>(1, int64_t(std::ceil(config_.sample_ratio * Lq)));
  const int64_t chunk = std::min(config_.chunk, Lq);
  const int64_t num_chunks = std::max<int64_t>(1, (want + chunk - 1) / chunk);
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (int64_t c = 0; c < num_chunks; ++c) {
    const int64_t end = std::max<int64_t>(chunk, (c + 1) * Lq / num_chunks);
    const int64_t begin = end - chunk;
    if (!ranges.empty() && begin <= ranges.back().second) ranges.back().second = end;
    else ranges.emplace_back(begin, end);
  }
  // Work items of at most 64 rows.
  std::vector<std::pair<int64_t, int64_t>> items;
  for (auto [b, e] : ranges)
    for (int64_t r = b; r < e; r += 64) items.emplace_back(r, std::min(e, r + 64));

  est::PatternBuilder builder(geo, int(shape.num_heads_q));
  builder.set_band(band);
  std::vector<float> kf;
  int64_t staged_kv = -1;
  // Column sums are accumulated in kGroups fixed groups of work items and reduced in group
  // order, so the result does not depend on the thread count or the schedule.
  constexpr int64_t kGroups = 16;
  const int64_t num_items = int64_t(items.size());
  std::vector<std::vector<double>> col_group(static_cast<size_t>(kGroups));
  std::vector<double> covered_group(static_cast<size_t>(kGroups));
  std::vector<double> rows_group(static_cast<size_t>(kGroups));
  std::vector<double> col(static_cast<size_t>(Lk));
  for (int64_t h = 0; h < shape.num_heads_q; ++h) {
    const int64_t hk = h / group;
    if (hk != staged_kv) {
      est::load_head_f32(k, hk, kf);
      staged_kv = hk;
    }
#pragma omp parallel num_threads(nt)
    {
      std::vector<float> qs, scores;
#pragma omp for schedule(dynamic, 1)
      for (int64_t g = 0; g < kGroups; ++g) {
        auto& mycol = col_group[size_t(g)];
        mycol.assign(size_t(Lk), 0.0);
        double covered = 0, nrows = 0;
        for (int64_t it = g * num_items / kGroups; it < (g + 1) * num_items / kGroups; ++it) {
          const auto [i0, i1] = items[size_t(it)];
          const int64_t m = i1 - i0;
          const int64_t n = opts.causal ? std::clamp<int64_t>(geo.pos(i1 - 1) + 1, 0, Lk) : Lk;
          if (n == 0) continue;
          qs.resize(size_t(m * D));
          est::load_rows_f32(q, h, i0, i1, qs.data());
          scores.resize(size_t(m * n));
          est::kernels().gemm_nt(qs.data(), D, kf.data(), D, scores.data(), n, m, n, D, scale);
          for (int64_t r = 0; r < m; ++r) {
            const int64_t i = i0 + r, p = geo.pos(i);
            const int64_t v = opts.causal ? std::clamp<int64_t>(p + 1, 0, Lk) : Lk;
            if (v == 0) continue;
            float* row = &scores[size_t(r * n)];
            est::softmax_inplace(row, v);
            nrows += 1;
            // Mass inside the always-kept structure counts as covered; zero it so that the
            // overlap of window, sink and diagonal blocks is counted once.
            const auto take = [&](int64_t a, int64_t b) {
              a = std::max<int64_t>(a, 0);
              b = std::min(b, v);
              for (int64_t j = a; j < b; ++j) {
                covered += row[j];
                row[j] = 0.0f;
              }
            };
            take(0, bk);
            for (int32_t kb : geo.forced_blocks(i / common_.block_q))
              take(int64_t(kb) * bk, (int64_t(kb) + 1) * bk);
            if (band > 0) take(p - band + 1, p + 1);
            double* c = mycol.data();
            for (int64_t j = 0; j < v; ++j) c[j] += row[j];
          }
        }
        covered_group[size_t(g)] = covered;
        rows_group[size_t(g)] = nrows;
      }
    }
    double covered = 0, total = 0;
    for (int64_t g = 0; g < kGroups; ++g) {
      covered += covered_group[size_t(g)];
      total += rows_group[size_t(g)];
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t j = 0; j < Lk; ++j) {
      double c = 0;
      for (int64_t g = 0; g < kGroups; ++g) c += col_group[size_t(g)][size_t(j)];
      col[size_t(j)] = c;
    }
    // Stage 2: the minimal column set whose CRA (covered + kept columns) reaches alpha.
    std::vector<int32_t> order;
    for (int64_t j = 0; j < Lk; ++j)
      if (col[size_t(j)] > 0) order.push_back(int32_t(j));
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return col[size_t(a)] > col[size_t(b)] || (col[size_t(a)] == col[size_t(b)] && a < b);
    });
    const double required = config_.alpha_at(Lk) * total;
    double cum = covered;
    std::vector<int32_t> keep;
    for (int32_t j : order) {
      if (cum >= required) break;
      keep.push_back(j);
      cum += col[size_t(j)];
    }
    // A diffuse head: query-independent columns cannot follow rows whose mass is spread (each
    // row's mass sits on different keys), so recall falls below alpha although most keys are
    // kept. Past dense_share of the keys the head is computed densely instead (no speedup lost).
    const double share = (double(keep.size()) + double(band)) / double(std::max<int64_t>(1, Lk));
    if (share > config_.dense_share) {
      builder.set_columns(int(h), {});
      for (int64_t qb = 0; qb < geo.num_q_blocks; ++qb) {
        std::vector<int32_t> all(static_cast<size_t>(geo.visible_k_blocks(qb)));
        std::iota(all.begin(), all.end(), 0);
        builder.set_row(int(h), qb, std::move(all));
      }
      continue;
    }
    builder.set_columns(int(h), std::move(keep));
    for (int64_t qb = 0; qb < geo.num_q_blocks; ++qb) builder.set_row(int(h), qb, {});
  }
  return builder.finish();
}

}  // namespace sieve::attention
