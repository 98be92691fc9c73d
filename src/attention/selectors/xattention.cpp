// XAttention selector (CPU), following xattn_estimate + find_blocks_chunked of
// mit-han-lab/x-attention. The antidiagonal sum of an S x S sub-block is one dot product of
// length S*D: the S keys of stride j laid side by side (k[jS], ..., k[jS+S-1]) against the S
// queries of stride i in reverse order (q[iS+S-1], ..., q[iS]). Both panels are built once per
// head in f32, so the scores are a plain (Lq/S) x (Lk/S) x (S D) GEMM.
#include "sieve/attention/selectors/xattention.h"

#include "estimation.h"
#include "sieve/core/error.h"
#include "sieve/core/threading.h"

#include <algorithm>

namespace sieve::attention {

namespace est = estimation;

XAttentionSelector::XAttentionSelector(XAttentionConfig config) : config_(config) {
  common_.block_q = 128;
  common_.block_k = 128;
  common_.dense_below = 4096;
}

void XAttentionSelector::set(std::string_view key, std::string_view value) {
  if (key == "stride" || key == "S") {
    config_.stride = int(parse_setting_int(name(), key, value));
  } else if (key == "tau" || key == "threshold") {
    config_.tau = est::parse_double(name(), key, value);
  } else {
    PatternSelector::set(key, value);
    return;
  }
  validate_config();
}

std::map<std::string, std::string> XAttentionSelector::settings() const {
  auto s = PatternSelector::settings();
  s["stride"] = std::to_string(config_.stride);
  s["tau"] = est::format_double(config_.tau);
  return s;
}

void XAttentionSelector::validate_config() const {
  PatternSelector::validate_config();
  est::check_open_closed(name(), "tau", config_.tau, 0.0, 1.0);
  SIEVE_CHECK(config_.stride >= 1, "selector 'xattn': stride must be >= 1, got {}", config_.stride);
  SIEVE_CHECK(common_.block_q % config_.stride == 0 && common_.block_k % config_.stride == 0,
              "selector 'xattn': stride {} must divide block_q {} and block_k {}", config_.stride,
              common_.block_q, common_.block_k);
}

SparsePattern XAttentionSelector::estimate(const TensorView& q, const TensorView& k,
                                           const AttentionOptions& opts,
                                           const AttentionShape& shape) const {
  const int64_t S = config_.stride;
  const est::BlockGeometry geo(shape, common_.block_q, common_.block_k, opts.causal);
  const int64_t D = shape.head_dim, Lq = shape.seq_len_q, Lk = shape.seq_len_k;
  const int64_t group = shape.group_size();
  const int64_t nks = (Lk + S - 1) / S, nqs = (Lq + S - 1) / S;
  const int64_t width = S * D;  // one antidiagonal operand
  // XAttention scales by 1/sqrt(D)/S: the antidiagonal sum becomes a mean of S logits.
  const float alpha = effective_scale(opts, D) / float(S);
  const int nt = num_threads();

  est::PatternBuilder builder(geo, int(shape.num_heads_q));
  // Zero padding past the end: a partial last stride contributes nothing for missing rows.
  std::vector<float> kcat(static_cast<size_t>(nks * width), 0.0f);
  std::vector<float> qrev(static_cast<size_t>(nqs * width), 0.0f);
  int64_t staged_kv = -1;
  for (int64_t h = 0; h < shape.num_heads_q; ++h) {
    const int64_t hk = h / group;
    if (hk != staged_kv) {
#pragma omp parallel for num_threads(nt) schedule(static)
      for (int64_t j = 0; j < nks; ++j)
        est::load_rows_f32(k, hk, j * S, std::min(j * S + S, Lk), &kcat[size_t(j * width)]);
      staged_kv = hk;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < nqs; ++i) {
      for (int64_t t = 0; t < S; ++t) {
        const int64_t row = i * S + S - 1 - t;
        float* dst = &qrev[size_t(i * width + t * D)];
        if (row < Lq) est::load_row_f32(q, h, row, dst);
        else std::fill_n(dst, D, 0.0f);
      }
    }
    // Causal at stride granularity (as the reference code's mask): query stride i sees key
    // stride j when the stride starts at or before the last query position of i.
    const auto visible = [&](int64_t i) -> int64_t {
      if (!opts.causal) return nks;
      return std::clamp<int64_t>(geo.pos(std::min(i * S + S - 1, Lq - 1)) / S + 1, 0, nks);
    };
    const auto no_fix = [](int64_t, float*, int64_t) {};
    const auto emit = [&](int64_t qb, const float* scores, int64_t nvis) {
      std::vector<int32_t> sel;
      est::select_cumulative(scores, nvis, config_.tau, geo.forced_blocks(qb), sel);
      builder.set_row(int(h), qb, std::move(sel));
    };
    est::stride_block_scores(geo, qrev.data(), nqs, S, kcat.data(), nks, S, 1, width, alpha,
                             visible, no_fix, emit);
  }
  return builder.finish();
}

}  // namespace sieve::attention
