// UniSparse selector (CPU). Per granularity c: average-pool Q and K by c ("composite tokens"),
// softmax of the compressed scores per pooled query (causal by pooled position, a partial last
// pooled key weighted by its share of keys), block sums normalized to one per query block. The
// per-granularity maps are combined and each block row is cut by cumulative Top-p.
#include "sieve/attention/selectors/unisparse.h"

#include "estimation.h"
#include "sieve/core/error.h"
#include "sieve/core/threading.h"

#include <algorithm>
#include <cmath>

namespace sieve::attention {

namespace est = estimation;

namespace {

// "cq:ck" or "c" entries, comma-separated.
std::vector<UniSparseConfig::Granularity> parse_granularities(std::string_view sel,
                                                              std::string_view key,
                                                              std::string_view value) {
  std::vector<UniSparseConfig::Granularity> out;
  size_t start = 0;
  while (start <= value.size()) {
    const size_t comma = std::min(value.find(',', start), value.size());
    const std::string_view item = value.substr(start, comma - start);
    const size_t colon = item.find(':');
    UniSparseConfig::Granularity g;
    if (colon == std::string_view::npos) {
      g.c_q = g.c_k = parse_setting_int(sel, key, item);
    } else {
      g.c_q = parse_setting_int(sel, key, item.substr(0, colon));
      g.c_k = parse_setting_int(sel, key, item.substr(colon + 1));
    }
    out.push_back(g);
    start = comma + 1;
  }
  return out;
}

std::string format_granularities(const std::vector<UniSparseConfig::Granularity>& gs) {
  std::string s;
  for (const auto& g : gs) {
    if (!s.empty()) s += ',';
    s += g.c_q == g.c_k ? std::to_string(g.c_q)
                        : std::to_string(g.c_q) + ":" + std::to_string(g.c_k);
  }
  return s;
}

}  // namespace

UniSparseSelector::UniSparseSelector(UniSparseConfig config) : config_(std::move(config)) {
  common_.block_q = 128;
  common_.block_k = 128;
  common_.dense_below = 4096;
}

void UniSparseSelector::set(std::string_view key, std::string_view value) {
  if (key == "granularities" || key == "pool") {
    config_.granularities = parse_granularities(name(), key, value);
  } else if (key == "top_p" || key == "tau") {
    config_.top_p = est::parse_double(name(), key, value);
  } else if (key == "moments") {
    config_.moments = parse_setting_bool(name(), key, value);
  } else if (key == "combine") {
    if (value == "max") config_.combine = UniSparseConfig::Combine::kMax;
    else if (value == "mean") config_.combine = UniSparseConfig::Combine::kMean;
    else SIEVE_FAIL("selector 'unisparse': combine must be 'max' or 'mean', got '{}'", value);
  } else {
    PatternSelector::set(key, value);
    return;
  }
  validate_config();
}

std::map<std::string, std::string> UniSparseSelector::settings() const {
  auto s = PatternSelector::settings();
  s["granularities"] = format_granularities(config_.granularities);
  s["top_p"] = est::format_double(config_.top_p);
  s["combine"] = config_.combine == UniSparseConfig::Combine::kMax ? "max" : "mean";
  s["moments"] = config_.moments ? "true" : "false";
  return s;
}

void UniSparseSelector::validate_config() const {
  PatternSelector::validate_config();
  est::check_open_closed(name(), "top_p", config_.top_p, 0.0, 1.0);
  SIEVE_CHECK(!config_.granularities.empty(), "selector 'unisparse': granularities is empty");
  for (const auto& g : config_.granularities) {
    const int64_t cq = std::min<int64_t>(g.c_q, common_.block_q);
    SIEVE_CHECK(g.c_q >= 1 && g.c_k >= 1 && common_.block_q % cq == 0 &&
                    common_.block_k % g.c_k == 0,
                "selector 'unisparse': granularities: pooling {}:{} must be >= 1, c_q must divide "
                "block_q {} (or exceed it: whole query blocks) and c_k divide block_k {}",
                g.c_q, g.c_k, common_.block_q, common_.block_k);
  }
}

std::vector<UniSparseConfig::Granularity> UniSparseSelector::levels() const {
  std::vector<UniSparseConfig::Granularity> out = config_.granularities;
  for (auto& g : out) g.c_q = std::min<int64_t>(g.c_q, common_.block_q);
  return out;
}

SparsePattern UniSparseSelector::estimate(const TensorView& q, const TensorView& k,
                                          const AttentionOptions& opts,
                                          const AttentionShape& shape) const {
  const est::BlockGeometry geo(shape, common_.block_q, common_.block_k, opts.causal);
  const int64_t D = shape.head_dim, Lq = shape.seq_len_q, Lk = shape.seq_len_k;
  const int64_t group = shape.group_size();
  const float scale = effective_scale(opts, D);
  const int nt = num_threads();
  const int64_t nqb = geo.num_q_blocks, nkb = geo.num_k_blocks;
  const std::vector<UniSparseConfig::Granularity> gran = levels();
  const size_t nlev = gran.size();
  const bool use_max = config_.combine == UniSparseConfig::Combine::kMax;

  // With moments, pooled keys are rows [mean, per-dimension variance] and pooled queries rows
  // [mean, scale/2 * mean^2]: the product adds the diagonal-Gaussian log-sum-exp correction
  // scale^2/2 sum_d q_d^2 var_d of the pooled keys to the pooled logit.
  const bool moments = config_.moments;
  const int64_t W = moments ? 2 * D : D;
  // Pools rows [0, len) of head `head` of t in groups of c into dst [ceil(len/c) x W]: the mean,
  // then (moments) the variance for keys or scale/2 * mean^2 for queries.
  const auto pool = [&](const TensorView& t, int64_t head, int64_t len, int64_t c, bool is_key,
                        float* dst) {
    const int64_t n = (len + c - 1) / c;
#pragma omp parallel num_threads(nt)
    {
      std::vector<float> buf(static_cast<size_t>(c * D));
#pragma omp for schedule(static)
      for (int64_t u = 0; u < n; ++u) {
        const int64_t r0 = u * c, r1 = std::min(r0 + c, len);
        float* out = dst + u * W;
        est::load_rows_f32(t, head, r0, r1, buf.data());
        est::mean_rows(buf.data(), r1 - r0, D, out);
        if (!moments) continue;
        for (int64_t d = 0; d < D; ++d) {
          if (!is_key) {
            out[D + d] = 0.5f * scale * out[d] * out[d];
            continue;
          }
          float v = 0;
          for (int64_t j = 0; j < r1 - r0; ++j) {
            const float x = buf[size_t(j * D + d)] - out[d];
            v += x * x;
          }
          out[D + d] = v / float(r1 - r0);
        }
      }
    }
  };

  est::PatternBuilder builder(geo, int(shape.num_heads_q));
  std::vector<std::vector<float>> kpool(nlev), qpool(nlev);
  std::vector<float> combined(static_cast<size_t>(nqb * nkb));
  int64_t staged_kv = -1;
  for (int64_t h = 0; h < shape.num_heads_q; ++h) {
    const int64_t hk = h / group;
    std::fill(combined.begin(), combined.end(), 0.0f);
    for (size_t lv = 0; lv < nlev; ++lv) {
      const int64_t cq = gran[lv].c_q, ck = gran[lv].c_k;
      const int64_t nkc = (Lk + ck - 1) / ck, nqc = (Lq + cq - 1) / cq;
      if (hk != staged_kv) {
        kpool[lv].resize(static_cast<size_t>(nkc * W));
        pool(k, hk, Lk, ck, true, kpool[lv].data());
      }
      qpool[lv].resize(static_cast<size_t>(nqc * W));
      pool(q, h, Lq, cq, false, qpool[lv].data());
      // A pooled query sees the pooled keys that start at or before its last row.
      const auto visible = [&](int64_t t) -> int64_t {
        if (!opts.causal) return nkc;
        return std::clamp<int64_t>(geo.pos(std::min(t * cq + cq - 1, Lq - 1)) / ck + 1, 0, nkc);
      };
      // A partial last pooled key stands for fewer keys: weight exp(score) by its share.
      const auto fix = [&](int64_t, float* row, int64_t used) {
        if (used == nkc && Lk % ck != 0)
          row[nkc - 1] += float(std::log(double(Lk % ck) / double(ck)));
      };
      const auto emit = [&](int64_t qb, const float* scores, int64_t nvis) {
        double total = 0;
        for (int64_t kb = 0; kb < nvis; ++kb) total += scores[kb];
        if (total <= 0) return;
        float* dst = &combined[size_t(qb * nkb)];
        for (int64_t kb = 0; kb < nvis; ++kb) {
          const float v = float(scores[kb] / total);
          dst[kb] = use_max ? std::max(dst[kb], v) : dst[kb] + v / float(nlev);
        }
      };
      est::stride_block_scores(geo, qpool[lv].data(), nqc, cq, kpool[lv].data(), nkc, ck, 1, W,
                               scale, visible, fix, emit);
    }
    staged_kv = hk;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 4)
    for (int64_t qb = 0; qb < nqb; ++qb) {
      std::vector<int32_t> sel;
      est::select_cumulative(&combined[size_t(qb * nkb)], geo.visible_k_blocks(qb), config_.top_p,
                             geo.forced_blocks(qb), sel);
      builder.set_row(int(h), qb, std::move(sel));
    }
  }
  return builder.finish();
}

}  // namespace sieve::attention
