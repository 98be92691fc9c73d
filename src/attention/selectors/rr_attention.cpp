// RRAttention selector (CPU). Estimation, per query head h:
//   1. in every stride t of S query rows take the one query at offset r_h(t) (round robin);
//   2. one representative key per stride of S keys (mean, or the key at the head's offset);
//   3. row softmax of (sampled query) x (stride keys) at stride resolution, causal by stride, with
//      the query's own stride reduced to its visible keys;
//   4. block scores = sums of that softmax over the (block_q/S) x (block_k/S) sub-grid;
//   5. Top-tau per (head, query block), sink and diagonal first.
// Cost: (Lq/S) * (Lk/S) * D / 2 multiply-adds per head, plus one O(Lk D) pass over K.
// Every step for a query block reads only queries of that block: the pattern of a block does not
// depend on other queries (query independence).
#include "sieve/attention/selectors/rr_attention.h"

#include "estimation.h"
#include "sieve/core/error.h"
#include "sieve/core/threading.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

namespace sieve::attention {

namespace est = estimation;

RRSelector::RRSelector(RRConfig config) : config_(config) {
  common_.block_q = 128;
  common_.block_k = 128;
  common_.dense_below = 4096;
}

void RRSelector::set(std::string_view key, std::string_view value) {
  if (key == "stride" || key == "S") {
    config_.stride = int(parse_setting_int(name(), key, value));
  } else if (key == "query_stride") {
    config_.query_stride = int(parse_setting_int(name(), key, value));
  } else if (key == "tau") {
    config_.tau = est::parse_double(name(), key, value);
  } else if (key == "offset") {
    if (value == "rotate") config_.offset = RRConfig::Offset::kRotate;
    else if (value == "head") config_.offset = RRConfig::Offset::kHead;
    else SIEVE_FAIL("selector 'rr': offset must be 'rotate' or 'head', got '{}'", value);
  } else if (key == "outliers") {
    config_.outliers = int(parse_setting_int(name(), key, value));
  } else if (key == "moments") {
    config_.moments = parse_setting_bool(name(), key, value);
  } else if (key == "variance") {
    if (value == "diagonal") config_.variance = RRConfig::Variance::kDiagonal;
    else if (value == "scalar") config_.variance = RRConfig::Variance::kScalar;
    else SIEVE_FAIL("selector 'rr': variance must be 'diagonal' or 'scalar', got '{}'", value);
  } else if (key == "near") {
    config_.near = parse_setting_int(name(), key, value);
  } else if (key == "key_agg") {
    if (value == "mean") config_.key_agg = RRConfig::KeyAgg::kMean;
    else if (value == "sample") config_.key_agg = RRConfig::KeyAgg::kSample;
    else SIEVE_FAIL("selector 'rr': key_agg must be 'mean' or 'sample', got '{}'", value);
  } else {
    PatternSelector::set(key, value);
    return;
  }
  validate_config();
}

std::map<std::string, std::string> RRSelector::settings() const {
  auto s = PatternSelector::settings();
  s["stride"] = std::to_string(config_.stride);
  s["query_stride"] = std::to_string(config_.query_stride);
  s["tau"] = est::format_double(config_.tau);
  s["offset"] = config_.offset == RRConfig::Offset::kRotate ? "rotate" : "head";
  s["key_agg"] = config_.key_agg == RRConfig::KeyAgg::kMean ? "mean" : "sample";
  s["outliers"] = std::to_string(config_.outliers);
  s["moments"] = config_.moments ? "true" : "false";
  s["variance"] = config_.variance == RRConfig::Variance::kScalar ? "scalar" : "diagonal";
  s["near"] = std::to_string(config_.near);
  return s;
}

void RRSelector::validate_config() const {
  PatternSelector::validate_config();
  est::check_open_closed(name(), "tau", config_.tau, 0.0, 1.0);
  SIEVE_CHECK(config_.stride >= 1 && config_.stride <= 256,
              "selector 'rr': stride must be in [1, 256], got {}", config_.stride);
  SIEVE_CHECK(config_.query_stride >= 0 && config_.query_stride <= 256,
              "selector 'rr': query_stride must be 0 (the stride) or in [1, 256], got {}",
              config_.query_stride);
  SIEVE_CHECK(common_.block_q % query_stride() == 0,
              "selector 'rr': query_stride {} must divide block_q {}", query_stride(), common_.block_q);
  SIEVE_CHECK(config_.outliers >= 0 && config_.outliers < config_.stride,
              "selector 'rr': outliers must be in [0, stride), got {}", config_.outliers);
  SIEVE_CHECK(config_.near >= 0, "selector 'rr': near must be >= 0 tokens, got {}", config_.near);
  SIEVE_CHECK(common_.block_q % config_.stride == 0 && common_.block_k % config_.stride == 0,
              "selector 'rr': stride {} must divide block_q {} and block_k {}", config_.stride,
              common_.block_q, common_.block_k);
}

namespace {

// Representatives of one stride of `count` keys (rows of `keys`, f32, ld = dim) in mean mode,
// each written as a 2*dim row [key part, variance part] (variance part used with moments):
// slot 0 is the mean of the keys that are not outliers with their per-dimension variance, slots
// 1..m the m keys farthest from the stride mean (squared distance, ties: earlier key) with zero
// variance. log_w gets each slot's log weight (how many keys it stands for; -inf when unused).
void stride_representatives(const float* keys, int64_t count, int64_t dim, int64_t m, float* reps,
                            float* log_w, std::vector<float>& mean, std::vector<int64_t>& order) {
  const float ninf = -std::numeric_limits<float>::infinity();
  const int64_t outl = std::min(m, count);
  const int64_t w = 2 * dim;
  std::fill(log_w, log_w + 1 + m, ninf);
  std::fill(reps, reps + (1 + m) * w, 0.0f);
  order.clear();
  if (outl > 0) {
    mean.resize(size_t(dim));
    est::mean_rows(keys, count, dim, mean.data());
    std::vector<float> dist(static_cast<size_t>(count));
    for (int64_t j = 0; j < count; ++j) {
      float d2 = 0;
      for (int64_t d = 0; d < dim; ++d) {
        const float x = keys[j * dim + d] - mean[size_t(d)];
        d2 += x * x;
      }
      dist[size_t(j)] = d2;
    }
    order.resize(size_t(count));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + outl, order.end(), [&](int64_t a, int64_t b) {
      return dist[size_t(a)] > dist[size_t(b)] || (dist[size_t(a)] == dist[size_t(b)] && a < b);
    });
    order.resize(size_t(outl));
    for (int64_t t = 0; t < outl; ++t) {
      std::copy_n(keys + order[size_t(t)] * dim, dim, reps + (1 + t) * w);
      log_w[1 + t] = 0.0f;
    }
  }
  const int64_t rest = count - outl;
  if (rest > 0) {
    // mean and per-dimension variance of the remaining keys
    float* mu = reps;
    float* var = reps + dim;
    for (int64_t j = 0; j < count; ++j) {
      if (std::find(order.begin(), order.end(), j) != order.end()) continue;
      for (int64_t d = 0; d < dim; ++d) {
        mu[d] += keys[j * dim + d];
        var[d] += keys[j * dim + d] * keys[j * dim + d];
      }
    }
    const float inv = 1.0f / float(rest);
    for (int64_t d = 0; d < dim; ++d) {
      mu[d] *= inv;
      var[d] = std::max(0.0f, var[d] * inv - mu[d] * mu[d]);
    }
    log_w[0] = float(std::log(double(rest)));
  }
}

}  // namespace

SparsePattern RRSelector::estimate(const TensorView& q, const TensorView& k,
                                   const AttentionOptions& opts, const AttentionShape& shape) const {
  const int64_t S = config_.stride;
  const est::BlockGeometry geo(shape, common_.block_q, common_.block_k, opts.causal);
  const int64_t D = shape.head_dim, Lq = shape.seq_len_q, Lk = shape.seq_len_k;
  const int64_t group = shape.group_size();
  const float scale = effective_scale(opts, D);
  const int64_t nks = (Lk + S - 1) / S;  // key strides
  const int64_t Sq = query_stride();
  const int64_t nqs = (Lq + Sq - 1) / Sq;  // query strides
  const bool mean_keys = config_.key_agg == RRConfig::KeyAgg::kMean;
  const int64_t m = mean_keys ? std::min<int64_t>(config_.outliers, S - 1) : 0;
  const int64_t R = 1 + m;  // representatives per stride
  const int nt = num_threads();
  const int64_t near = config_.near;
  const float ninf = -std::numeric_limits<float>::infinity();
  // offset inside stride t of `stride` rows for head h
  const auto offset_of = [&](int64_t h, int64_t t, int64_t stride) -> int64_t {
    return config_.offset == RRConfig::Offset::kRotate ? (h + t) % stride : h % stride;
  };

  // With moments every representative row is [key, variance] and every sampled query row
  // [q, scale/2 * q*q]: their product adds the diagonal-Gaussian log-sum-exp correction
  // scale^2/2 * sum_d q_d^2 var_d to the mean logit (exp of a mean underestimates the mean of
  // exps when the keys of a stride spread). Scalar variance: rows [key, vbar] and
  // [q, scale/2 * |q|^2], the correction scale^2/2 * |q|^2 * vbar (one column).
  const bool moments = mean_keys && config_.moments;
  const bool scalar = moments && config_.variance == RRConfig::Variance::kScalar;
  const int64_t W = moments ? (scalar ? D + 1 : 2 * D) : D;  // GEMM width
  est::PatternBuilder builder(geo, int(shape.num_heads_q));
  std::vector<float> reps(static_cast<size_t>(nks * R * 2 * D));  // stride representatives
  std::vector<float> log_w(static_cast<size_t>(nks * R));         // their log weights
  std::vector<float> sampled(static_cast<size_t>(nqs * W));       // one query per stride
  std::vector<int64_t> rows(static_cast<size_t>(nqs));
  int64_t staged_kv = -1;

  for (int64_t h = 0; h < shape.num_heads_q; ++h) {
    const int64_t hk = h / group;
    // Stride representatives: in mean mode once per KV head; sampled keys per query head (their
    // offsets depend on h). One O(Lk D) pass either way.
    if (!mean_keys || hk != staged_kv) {
#pragma omp parallel num_threads(nt)
      {
        std::vector<float> buf(static_cast<size_t>(S * D)), mean;
        std::vector<int64_t> order;
#pragma omp for schedule(static)
        for (int64_t u = 0; u < nks; ++u) {
          const int64_t r0 = u * S, r1 = std::min(r0 + S, Lk);
          if (mean_keys) {
            est::load_rows_f32(k, hk, r0, r1, buf.data());
            stride_representatives(buf.data(), r1 - r0, D, m, &reps[size_t(u * R * 2 * D)],
                                   &log_w[size_t(u * R)], mean, order);
          } else {
            est::load_row_f32(k, hk, std::min(r0 + offset_of(h, u, S), r1 - 1),
                              &reps[size_t(u * 2 * D)]);
            log_w[size_t(u)] = float(std::log(double(r1 - r0)));
          }
        }
      }
      if (W < 2 * D) {  // compact [key, variance] rows to W-wide rows for the GEMM
        for (int64_t e = 0; e < nks * R; ++e) {
          const float* src = &reps[size_t(e * 2 * D)];
          float vbar = 0;  // (outlier slots: a zero variance half)
          if (scalar) {
            for (int64_t d = 0; d < D; ++d) vbar += src[D + d];
            vbar /= float(D);
          }
          float* dst = &reps[size_t(e * W)];
          std::memmove(dst, src, size_t(D) * sizeof(float));  // dst <= src: forward is safe
          if (scalar) dst[D] = vbar;
        }
      }
      staged_kv = hk;
    }
    // Round-robin query sampling: stride t contributes row t*S + r_h(t) (clipped to the stride).
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t t = 0; t < nqs; ++t) {
      rows[size_t(t)] = std::min(t * Sq + offset_of(h, t, Sq), std::min(t * Sq + Sq, Lq) - 1);
      float* qr = &sampled[size_t(t * W)];
      est::load_row_f32(q, h, rows[size_t(t)], qr);
      if (scalar) {
        float n2 = 0;
        for (int64_t d = 0; d < D; ++d) n2 += qr[d] * qr[d];
        qr[D] = 0.5f * scale * n2;
      } else if (moments) {
        for (int64_t d = 0; d < D; ++d) qr[D + d] = 0.5f * scale * qr[d] * qr[d];
      }
    }

    const auto visible = [&](int64_t t) -> int64_t {
      return opts.causal ? std::clamp<int64_t>(geo.pos(rows[size_t(t)]) / S + 1, 0, nks) : nks;
    };
    const auto fix = [&](int64_t t, float* row, int64_t units) {
      for (int64_t e = 0; e < units * R; ++e) row[e] += log_w[size_t(e)];
      if (!opts.causal && near == 0) return;
      // Exact strides: the query's own, partially visible stride (causal) and, with near > 0, the
      // strides holding the `near` keys before the query. Each one's exact log-sum-exp over its
      // visible keys replaces its representatives (one-token slash lines near the diagonal are
      // invisible to a stride mean; here they are scored like any key).
      thread_local std::vector<float> buf, s;
      const int64_t pos = geo.pos(rows[size_t(t)]);
      const int64_t hi = std::min(units - 1, pos / S);
      const int64_t lo = near > 0 ? std::max<int64_t>(0, (pos - near) / S) : hi;
      if (hi < lo) return;
      const int64_t k0 = lo * S, k1 = std::min({hi * S + S, Lk, opts.causal ? pos + 1 : Lk});
      if (k1 <= k0) return;
      buf.resize(static_cast<size_t>((k1 - k0) * D));
      s.resize(static_cast<size_t>(k1 - k0));
      est::load_rows_f32(k, hk, k0, k1, buf.data());
      est::kernels().gemm_nt(&sampled[size_t(t * W)], D, buf.data(), D, s.data(), k1 - k0, 1,
                             k1 - k0, D, scale);
      for (int64_t u = lo; u <= hi; ++u) {
        const int64_t a = u * S - k0, b = std::min(u * S + S, k1) - k0;
        float mx = ninf;
        for (int64_t j = a; j < b; ++j) mx = std::max(mx, s[size_t(j)]);
        double sum = 0;
        for (int64_t j = a; j < b; ++j) sum += std::exp(double(s[size_t(j)] - mx));
        row[u * R] = b > a ? mx + float(std::log(sum)) : ninf;
        for (int64_t e = u * R + 1; e < u * R + R; ++e) row[e] = ninf;
      }
      if (opts.causal)
        for (int64_t e = (hi + 1) * R; e < units * R; ++e) row[e] = ninf;
    };
    const auto emit = [&](int64_t qb, const float* scores, int64_t nvis) {
      std::vector<int32_t> sel;
      est::select_cumulative(scores, nvis, config_.tau, geo.forced_blocks(qb), sel);
      builder.set_row(int(h), qb, std::move(sel));
    };
    // outlier keys (slots 1..m) have a zero variance half: their products need D columns only
    est::stride_block_scores(geo, sampled.data(), nqs, Sq, reps.data(), nks, S, R, W, scale,
                             visible, fix, emit, moments ? D : W);
  }
  return builder.finish();
}

}  // namespace sieve::attention
