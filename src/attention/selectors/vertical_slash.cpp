// MInference vertical-slash selector (CPU), after vertical_and_slash_kernel and
// convert_vertical_slash_indexes: probe, forced columns/diagonals, top-k, then slash lines are
// turned into the key blocks they cross for each query block and verticals into token columns.
#include "sieve/attention/selectors/vertical_slash.h"

#include "estimation.h"
#include "sieve/core/error.h"
#include "sieve/core/threading.h"

#include <algorithm>
#include <limits>

namespace sieve::attention {

namespace est = estimation;

namespace {
// MInference's floors: vertical_size >= 30, slash_size >= 50.
constexpr int64_t kMinVertical = 30;
constexpr int64_t kMinSlash = 50;
}  // namespace

VerticalSlashSelector::VerticalSlashSelector(VerticalSlashConfig config)
    : config_(std::move(config)) {
  common_.block_q = 64;
  common_.block_k = 64;
  common_.dense_below = 8192;
}

void VerticalSlashSelector::set(std::string_view key, std::string_view value) {
  if (key == "last_q") {
    config_.last_q = parse_setting_int(name(), key, value);
  } else if (key == "vertical_size" || key == "v") {
    config_.vertical_size = est::parse_int_list(name(), key, value);
  } else if (key == "slash_size" || key == "s") {
    config_.slash_size = est::parse_int_list(name(), key, value);
  } else if (key == "force_columns") {
    config_.force_columns = parse_setting_int(name(), key, value);
  } else if (key == "force_diagonals") {
    config_.force_diagonals = parse_setting_int(name(), key, value);
  } else {
    PatternSelector::set(key, value);
    return;
  }
  validate_config();
}

std::map<std::string, std::string> VerticalSlashSelector::settings() const {
  auto s = PatternSelector::settings();
  s["last_q"] = std::to_string(config_.last_q);
  s["vertical_size"] = est::format_int_list(config_.vertical_size);
  s["slash_size"] = est::format_int_list(config_.slash_size);
  s["force_columns"] = std::to_string(config_.force_columns);
  s["force_diagonals"] = std::to_string(config_.force_diagonals);
  return s;
}

void VerticalSlashSelector::validate_config() const {
  PatternSelector::validate_config();
  SIEVE_CHECK(config_.last_q >= 1, "selector 'vslash': last_q must be >= 1, got {}",
              config_.last_q);
  SIEVE_CHECK(!config_.vertical_size.empty() && !config_.slash_size.empty(),
              "selector 'vslash': vertical_size and slash_size need at least one value");
  for (int64_t v : config_.vertical_size)
    SIEVE_CHECK(v >= 0, "selector 'vslash': vertical_size must be >= 0, got {}", v);
  for (int64_t v : config_.slash_size)
    SIEVE_CHECK(v >= 0, "selector 'vslash': slash_size must be >= 0, got {}", v);
  SIEVE_CHECK(config_.force_columns >= 0 && config_.force_diagonals >= 0,
              "selector 'vslash': force_columns and force_diagonals must be >= 0");
}

SparsePattern VerticalSlashSelector::estimate(const TensorView& q, const TensorView& k,
                                              const AttentionOptions& opts,
                                              const AttentionShape& shape) const {
  const est::BlockGeometry geo(shape, common_.block_q, common_.block_k, opts.causal);
  const int64_t D = shape.head_dim, Lk = shape.seq_len_k, Hq = shape.num_heads_q;
  const int64_t group = shape.group_size();
  const float scale = effective_scale(opts, D);
  const auto budget = [&](const std::vector<int64_t>& v, const char* what, int64_t h) {
    SIEVE_CHECK(v.size() == 1 || int64_t(v.size()) == Hq,
                "selector 'vslash': {} has {} values; give one or one per query head ({})", what,
                v.size(), Hq);
    return v.size() == 1 ? v[0] : v[size_t(h)];
  };
  const float inf = std::numeric_limits<float>::infinity();

  est::PatternBuilder builder(geo, int(Hq));
  std::vector<float> kf;
  int64_t staged_kv = -1;
  for (int64_t h = 0; h < Hq; ++h) {
    const int64_t hk = h / group;
    if (hk != staged_kv) {
      est::load_head_f32(k, hk, kf);
      staged_kv = hk;
    }
    const est::Probe pr = est::probe_last_rows(q, h, kf.data(), geo, D, scale, config_.last_q);
    std::vector<float> vertical(pr.vertical.begin(), pr.vertical.end());
    std::vector<float> slash(pr.slash.begin(), pr.slash.end());
    std::fill_n(vertical.begin(), std::min(config_.force_columns, Lk), inf);
    std::fill_n(slash.begin(), std::min(config_.force_diagonals, Lk), inf);
    const int64_t nv = std::min(Lk, std::max(budget(config_.vertical_size, "vertical_size", h),
                                             kMinVertical));
    const int64_t ns =
        std::min(Lk, std::max(budget(config_.slash_size, "slash_size", h), kMinSlash));
    builder.set_columns(int(h), est::top_k_indices(vertical.data(), Lk, nv));
    std::vector<int32_t> offsets = est::top_k_indices(slash.data(), Lk, ns);
    // Each slash offset o crosses keys [pos(first row) - o, pos(last row) - o] of a query block.
#pragma omp parallel for num_threads(num_threads()) schedule(dynamic, 8)
    for (int64_t qb = 0; qb < geo.num_q_blocks; ++qb) {
      const int64_t nvis = geo.visible_k_blocks(qb);
      std::vector<char> mark(static_cast<size_t>(nvis), 0);
      const int64_t p0 = geo.pos(geo.q_begin(qb)), p1 = geo.pos(geo.q_end(qb) - 1);
      for (int32_t o : offsets) {
        const int64_t lo = std::max<int64_t>(0, p0 - o), hi = std::min(Lk - 1, p1 - o);
        if (hi < lo) continue;
        for (int64_t kb = lo / geo.block_k; kb <= hi / geo.block_k && kb < nvis; ++kb)
          mark[size_t(kb)] = 1;
      }
      std::vector<int32_t> blocks;
      for (int64_t kb = 0; kb < nvis; ++kb)
        if (mark[size_t(kb)]) blocks.push_back(int32_t(kb));
      builder.set_row(int(h), qb, std::move(blocks));
    }
  }
  return builder.finish();
}

}  // namespace sieve::attention
