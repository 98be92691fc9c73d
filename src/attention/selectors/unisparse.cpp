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

UniSparseSelector::UniSparseSelector(UniSparseConfig config) : config_(std::move(config)) {
  common_.block_q = 128;
  common_.block_k = 128;
  common_.dense_below = 4096;
}

void UniSparseSelector::set(std::string_view key, std::string_view value) {
  if (key == "granularities" || key == "pool") {
    config_.granularities = est::parse_int_list(name(), key, value);
  } else if (key == "top_p" || key == "tau") {
    config_.top_p = est::parse_double(name(), key, value);
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
  s["granularities"] = est::format_int_list(config_.granularities);
  s["top_p"] = est::format_double(config_.top_p);
  s["combine"] = config_.combine == UniSparseConfig::Combine::kMax ? "max" : "mean";
  return s;
}

void UniSparseSelector::validate_config() const {
  PatternSelector::validate_config();
  est::check_open_closed(name(), "top_p", config_.top_p, 0.0, 1.0);
  SIEVE_CHECK(!config_.granularities.empty(), "selector 'unisparse': granularities is empty");
  for (int64_t c : config_.granularities) {
    SIEVE_CHECK(c >= 1 && common_.block_q % c == 0 && common_.block_k % c == 0,
                "selector 'unisparse': granularity {} must be >= 1 and divide block_q {} and "
                "block_k {}", c, common_.block_q, common_.block_k);
  }
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
  const size_t levels = config_.granularities.size();
  const bool use_max = config_.combine == UniSparseConfig::Combine::kMax;

  // Pools rows [0, len) of head `head` of t in groups of c into dst [ceil(len/c) x D].
  const auto pool = [&](const TensorView& t, int64_t head, int64_t len, int64_t c, float* dst) {
    const int64_t n = (len + c - 1) / c;
#pragma omp parallel num_threads(nt)
    {
      std::vector<float> buf(static_cast<size_t>(c * D));
#pragma omp for schedule(static)
      for (int64_t u = 0; u < n; ++u) {
        const int64_t r0 = u * c, r1 = std::min(r0 + c, len);
        est::load_rows_f32(t, head, r0, r1, buf.data());
        est::mean_rows(buf.data(), r1 - r0, D, dst + u * D);
      }
    }
  };

  est::PatternBuilder builder(geo, int(shape.num_heads_q));
  std::vector<std::vector<float>> kpool(levels), qpool(levels);
  std::vector<float> combined(static_cast<size_t>(nqb * nkb));
  int64_t staged_kv = -1;
  for (int64_t h = 0; h < shape.num_heads_q; ++h) {
    const int64_t hk = h / group;
    std::fill(combined.begin(), combined.end(), 0.0f);
    for (size_t lv = 0; lv < levels; ++lv) {
      const int64_t c = config_.granularities[lv];
      const int64_t nkc = (Lk + c - 1) / c, nqc = (Lq + c - 1) / c;
      if (hk != staged_kv) {
        kpool[lv].resize(static_cast<size_t>(nkc * D));
        pool(k, hk, Lk, c, kpool[lv].data());
      }
      qpool[lv].resize(static_cast<size_t>(nqc * D));
      pool(q, h, Lq, c, qpool[lv].data());
      const auto visible = [&](int64_t t) -> int64_t {
        if (!opts.causal) return nkc;
        return std::clamp<int64_t>(geo.pos(std::min(t * c + c - 1, Lq - 1)) / c + 1, 0, nkc);
      };
      // A partial last pooled key stands for fewer keys: weight exp(score) by its share.
      const auto fix = [&](int64_t, float* row, int64_t used) {
        if (used == nkc && Lk % c != 0) row[nkc - 1] += float(std::log(double(Lk % c) / double(c)));
      };
      const auto emit = [&](int64_t qb, const float* scores, int64_t nvis) {
        double total = 0;
        for (int64_t kb = 0; kb < nvis; ++kb) total += scores[kb];
        if (total <= 0) return;
        float* dst = &combined[size_t(qb * nkb)];
        for (int64_t kb = 0; kb < nvis; ++kb) {
          const float v = float(scores[kb] / total);
          dst[kb] = use_max ? std::max(dst[kb], v) : dst[kb] + v / float(levels);
        }
      };
      est::stride_block_scores(geo, qpool[lv].data(), nqc, c, kpool[lv].data(), nkc, c, 1, D,
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
