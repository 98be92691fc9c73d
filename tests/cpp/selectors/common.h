// Shared helpers for the selector tests: a small planted-structure workload written here (not the
// library's synthetic generator), the planted-mass recall computed from an f64 softmax written
// here, and property checks every selector must pass.
//
// Workload (f32, head_dim 64, scale 1/8): query heads of a GQA group share their keys; each
// query head attends what its kind plants:
//   band    - random-frequency positional features in dims 0..15 make q_i . k_j peak at
//             i = j and fall off over ~kWindow tokens;
//   stripes - kStripes single key tokens carry direction 16, every query of the head has it;
//   needle  - a span of kNeedleLen keys (a "sentence") carries direction 17, matched only by the
//             last kNeedleRows queries; needle_len = 1 plants a single-token needle;
//   sink    - key 0 carries direction 18, every query has it;
//   mixed   - band + stripes + needle.
// Dims 19..63 are Gaussian background (logit std ~1).
#pragma once

#include <gtest/gtest.h>

#include "sieve/attention/params.h"
#include "sieve/attention/selector.h"
#include "sieve/attention/selectors/flex_prefill.h"
#include "sieve/attention/selectors/rr_attention.h"
#include "sieve/attention/selectors/sample_attention.h"
#include "sieve/attention/selectors/unisparse.h"
#include "sieve/attention/selectors/vertical_slash.h"
#include "sieve/attention/selectors/xattention.h"
#include "sieve/attention/sparse_pattern.h"
#include "sieve/core/error.h"
#include "sieve/core/rng.h"
#include "sieve/core/tensor.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace sieve::attention::selector_test {

enum class Kind { kBand, kStripes, kNeedle, kMixed, kDiffuse };

struct PlantedConfig {
  int64_t seq_len = 1024;
  int64_t num_heads_kv = 2;
  std::vector<Kind> kinds = {Kind::kBand, Kind::kStripes, Kind::kNeedle, Kind::kMixed};
  int64_t needle_len = 32;
  uint64_t seed = 7;
  DType dtype = DType::kF32;
};

constexpr int64_t kDim = 64;
constexpr int64_t kWindow = 64;
constexpr int kStripes = 6;
constexpr int64_t kNeedleRows = 64;

struct Workload {
  PlantedConfig cfg;
  Tensor q, k;
  std::vector<float> qf, kf;  // f32 copies of the stored values (after dtype rounding)
  mutable std::map<std::pair<int64_t, int64_t>, std::vector<double>> prob_cache;
  std::vector<int64_t> stripe_keys;  // shared by all KV heads
  int64_t needle_begin = 0;
  int64_t num_heads_q() const { return int64_t(cfg.kinds.size()); }
  int64_t group() const { return num_heads_q() / cfg.num_heads_kv; }

  /// Whether (query head h, row i, key j) is planted structure for that head.
  bool planted(int64_t h, int64_t i, int64_t j) const {
    const Kind kind = cfg.kinds[size_t(h)];
    const int64_t L = cfg.seq_len;
    const bool band = j <= i && j > i - kWindow;
    const bool stripe = std::binary_search(stripe_keys.begin(), stripe_keys.end(), j);
    const bool needle =
        i >= L - kNeedleRows && j >= needle_begin && j < needle_begin + cfg.needle_len;
    switch (kind) {
      case Kind::kBand: return band;
      case Kind::kStripes: return stripe;
      case Kind::kNeedle: return needle;
      case Kind::kMixed: return band || stripe || needle;
      default: return false;
    }
  }
};

inline Workload make_workload(const PlantedConfig& cfg) {
  Workload w;
  w.cfg = cfg;
  const int64_t L = cfg.seq_len, Hq = w.num_heads_q(), Hkv = cfg.num_heads_kv;
  Rng rng(cfg.seed);
  Tensor q(DType::kF32, {Hq, L, kDim}), k(DType::kF32, {Hkv, L, kDim});
  float* qd = q.data_as<float>();
  float* kd = k.data_as<float>();
  // Stripe keys: distinct, past the sink block, before the last 10 % (so most rows see them).
  while (int(w.stripe_keys.size()) < kStripes) {
    const int64_t j = 128 + int64_t(rng.below(uint64_t(L * 9 / 10 - 128)));
    if (std::find(w.stripe_keys.begin(), w.stripe_keys.end(), j) == w.stripe_keys.end())
      w.stripe_keys.push_back(j);
  }
  std::sort(w.stripe_keys.begin(), w.stripe_keys.end());
  w.needle_begin = L / 3;
  // Band: 8 random frequencies below pi / kWindow; q.k = (a^2 / 8) sum cos(w (i - j)) peaks at 8.
  double freq[8];
  for (double& f : freq) f = rng.uniform() * M_PI / double(kWindow);
  const double a = std::sqrt(8.0);
  const double bg = 1.09;  // background logit std ~1 over dims 19..63 at scale 1/8
  const double boost = 8.0;  // direction entries: q . k / 8 = 8 logits
  for (int64_t hk = 0; hk < Hkv; ++hk) {
    for (int64_t j = 0; j < L; ++j) {
      float* kr = kd + (hk * L + j) * kDim;
      for (int m = 0; m < 8; ++m) {
        kr[2 * m] = float(a * std::cos(freq[m] * double(j)));
        kr[2 * m + 1] = float(a * std::sin(freq[m] * double(j)));
      }
      if (std::binary_search(w.stripe_keys.begin(), w.stripe_keys.end(), j)) kr[16] = float(boost);
      if (j >= w.needle_begin && j < w.needle_begin + cfg.needle_len) kr[17] = float(boost);
      if (j == 0) kr[18] = float(boost);
      for (int64_t d = 19; d < kDim; ++d) kr[d] = float(bg * rng.normal());
    }
  }
  for (int64_t h = 0; h < Hq; ++h) {
    const Kind kind = cfg.kinds[size_t(h)];
    const bool band = kind == Kind::kBand || kind == Kind::kMixed;
    const bool stripes = kind == Kind::kStripes || kind == Kind::kMixed;
    const bool needle = kind == Kind::kNeedle || kind == Kind::kMixed;
    for (int64_t i = 0; i < L; ++i) {
      float* qr = qd + (h * L + i) * kDim;
      for (int m = 0; m < 8 && band; ++m) {
        qr[2 * m] = float(a * std::cos(freq[m] * double(i)));
        qr[2 * m + 1] = float(a * std::sin(freq[m] * double(i)));
      }
      if (stripes) qr[16] = float(boost);
      if (needle && i >= L - kNeedleRows) qr[17] = float(boost + 4);
      qr[18] = float(boost);
      for (int64_t d = 19; d < kDim; ++d) qr[d] = float(bg * rng.normal());
    }
  }
  if (cfg.dtype == DType::kF32) {
    w.q = q;
    w.k = k;
  } else {
    w.q = Tensor::from(q, cfg.dtype);
    w.k = Tensor::from(k, cfg.dtype);
  }
  const Tensor q32 = Tensor::from(w.q, DType::kF32), k32 = Tensor::from(w.k, DType::kF32);
  w.qf.assign(q32.data_as<float>(), q32.data_as<float>() + q32.numel());
  w.kf.assign(k32.data_as<float>(), k32.data_as<float>() + k32.numel());
  return w;
}

/// The default planted workload of length L (band, stripes, needle, mixed heads), built once per
/// test binary so that its f64 softmax rows are computed once and shared by all selector tests.
inline const Workload& shared_workload(int64_t L) {
  static std::map<int64_t, std::unique_ptr<Workload>> cache;
  auto& w = cache[L];
  if (!w) {
    PlantedConfig cfg;
    cfg.seq_len = L;
    w = std::make_unique<Workload>(make_workload(cfg));
  }
  return *w;
}

/// f64 softmax row of (query head h, row i) over keys 0..i (prefill, causal), from the stored
/// tensor values.
inline const std::vector<double>& softmax_row(const Workload& w, int64_t h, int64_t i) {
  auto it = w.prob_cache.find({h, i});
  if (it != w.prob_cache.end()) return it->second;
  const int64_t L = w.cfg.seq_len, hk = h / w.group();
  const float* qr = &w.qf[size_t((h * L + i) * kDim)];
  std::vector<double> p(size_t(i + 1));
  double mx = -1e300;
  for (int64_t j = 0; j <= i; ++j) {
    const float* kr = &w.kf[size_t((hk * L + j) * kDim)];
    double s = 0;
    for (int64_t d = 0; d < kDim; ++d) s += double(qr[d]) * double(kr[d]);
    p[size_t(j)] = s / std::sqrt(double(kDim));
    mx = std::max(mx, p[size_t(j)]);
  }
  double sum = 0;
  for (double& x : p) sum += (x = std::exp(x - mx));
  for (double& x : p) x /= sum;
  return w.prob_cache.emplace(std::make_pair(h, i), std::move(p)).first->second;
}

struct RecallReport {
  std::vector<double> planted;  // per query head: kept planted mass / planted mass (1 if none)
  std::vector<double> total;    // per query head: mean over rows of kept mass
};

/// Planted-mass recall and plain mass recall of `p` (per query head or per KV head) on w.
/// Rows are every `row_step`-th row plus all needle rows.
inline RecallReport recall(const Workload& w, const SparsePattern& p, int64_t row_step = 4) {
  const int64_t L = w.cfg.seq_len, Hq = w.num_heads_q();
  RecallReport r;
  for (int64_t h = 0; h < Hq; ++h) {
    const int64_t ph = p.per_kv_head ? h / w.group() : h;
    double planted = 0, planted_kept = 0, total = 0;
    int64_t rows = 0;
    for (int64_t i = 0; i < L; ++i) {
      if (i % row_step != 0 && i < L - kNeedleRows) continue;
      const std::vector<double>& pr = softmax_row(w, h, i);
      double kept = 0;
      for (int64_t j = 0; j <= i; ++j) {
        const bool in = p.contains(ph, i, j);
        if (in) kept += pr[size_t(j)];
        if (w.planted(h, i, j)) {
          planted += pr[size_t(j)];
          if (in) planted_kept += pr[size_t(j)];
        }
      }
      total += kept;
      ++rows;
    }
    r.planted.push_back(planted > 0 ? planted_kept / planted : 1.0);
    r.total.push_back(total / double(rows));
  }
  return r;
}

/// Constructs the selector class directly (the registry is checked separately) and applies
/// "key=value" settings.
inline std::unique_ptr<PatternSelector> make(const std::string& name,
                                             const std::vector<std::string>& settings = {}) {
  std::unique_ptr<PatternSelector> s;
  if (name == "rr") s = std::make_unique<RRSelector>();
  else if (name == "xattn") s = std::make_unique<XAttentionSelector>();
  else if (name == "unisparse") s = std::make_unique<UniSparseSelector>();
  else if (name == "sample") s = std::make_unique<SampleAttentionSelector>();
  else if (name == "vslash") s = std::make_unique<VerticalSlashSelector>();
  else if (name == "flexprefill") s = std::make_unique<FlexPrefillSelector>();
  else ADD_FAILURE() << "unknown selector " << name;
  for (const std::string& kv : settings) {
    const size_t eq = kv.find('=');
    s->set(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return s;
}

inline SparsePattern run(const PatternSelector& s, const Workload& w) {
  return s.select(w.q, w.k, AttentionOptions{});
}

// ---- property checks -------------------------------------------------------------------------

/// Sink block and every diagonal block (key blocks holding positions of the query block's rows)
/// are present in every row; computed here from the geometry, not from the library.
inline void expect_sink_and_diagonal(const SparsePattern& p) {
  const int64_t off = p.seq_len_k - p.seq_len_q;
  for (int64_t h = 0; h < p.num_heads; ++h) {
    for (int64_t qb = 0; qb < p.num_q_blocks(); ++qb) {
      const int64_t r = p.row(h, qb);
      const std::vector<int32_t> row(p.block_indices.begin() + p.block_indptr[r],
                                     p.block_indices.begin() + p.block_indptr[r + 1]);
      const int64_t first = qb * p.block_q + off;
      const int64_t last = std::min((qb + 1) * p.block_q, p.seq_len_q) - 1 + off;
      if (last < 0) continue;
      const auto has = [&](int64_t kb) {
        return std::binary_search(row.begin(), row.end(), int32_t(kb));
      };
      EXPECT_TRUE(has(0)) << "head " << h << " q-block " << qb << " lacks the sink block";
      for (int64_t kb = std::max<int64_t>(first, 0) / p.block_k; kb <= last / p.block_k; ++kb)
        EXPECT_TRUE(has(kb)) << "head " << h << " q-block " << qb << " lacks diagonal block " << kb;
    }
  }
}

/// Every kept (head, row, key) of `a` is kept by `b`, on a sample of rows.
inline bool subset_of(const SparsePattern& a, const SparsePattern& b, int64_t row_step = 7) {
  for (int64_t h = 0; h < a.num_heads; ++h)
    for (int64_t i = 0; i < a.seq_len_q; i += row_step)
      for (int64_t j = 0; j <= i + a.seq_len_k - a.seq_len_q; ++j)
        if (a.contains(h, i, j) && !b.contains(h, i, j)) return false;
  return true;
}

/// Checks shared by all selectors on odd shapes: valid pattern, sink + diagonal, dtypes, chunked
/// prefill (seq_len_q < seq_len_k), lengths not multiple of the block, GQA sharing as the exact
/// union of the per-head patterns.
inline void check_common(const std::string& name, const std::vector<std::string>& settings) {
  for (const auto& [L, dtype] : {std::pair<int64_t, DType>{1000, DType::kF32},
                                 std::pair<int64_t, DType>{1024, DType::kBF16},
                                 std::pair<int64_t, DType>{777, DType::kF16}}) {
    SCOPED_TRACE(name + " L=" + std::to_string(L) + " " + dtype_name(dtype));
    PlantedConfig cfg;
    cfg.seq_len = L;
    cfg.dtype = dtype;
    const Workload w = make_workload(cfg);
    auto sel = make(name, settings);
    const SparsePattern p = run(*sel, w);
    EXPECT_NO_THROW(p.validate());
    EXPECT_EQ(p.num_heads, w.num_heads_q());
    EXPECT_FALSE(p.per_kv_head);
    expect_sink_and_diagonal(p);
    EXPECT_LT(p.block_density(), 1.0 + 1e-12);
    // GQA: one pattern per KV head = union over its query heads.
    auto shared_settings = settings;
    shared_settings.push_back("share_kv_head=true");
    const SparsePattern s = run(*make(name, shared_settings), w);
    EXPECT_TRUE(s.per_kv_head);
    EXPECT_EQ(s.num_heads, w.cfg.num_heads_kv);
    expect_sink_and_diagonal(s);
    for (int64_t h = 0; h < w.num_heads_q(); ++h) {
      for (int64_t i = 0; i < L; i += 13) {
        for (int64_t j = 0; j <= i; j += 3) {
          if (p.contains(h, i, j)) {
            ASSERT_TRUE(s.contains(h / w.group(), i, j)) << "share lost a key of head " << h;
          }
        }
      }
    }
  }
  // Non-causal attention (encoder-style): still a valid pattern with sink and diagonal.
  {
    const Workload& w = shared_workload(1024);
    AttentionOptions bidirectional;
    bidirectional.causal = false;
    const SparsePattern p = make(name, settings)->select(w.q, w.k, bidirectional);
    EXPECT_NO_THROW(p.validate());
    EXPECT_FALSE(p.causal);
    expect_sink_and_diagonal(p);
  }
  // Chunked prefill: 384 new queries after 640 cached keys.
  {
    PlantedConfig cfg;
    cfg.seq_len = 1024;
    const Workload w = make_workload(cfg);
    TensorView q = w.q;
    q.shape[1] = 384;
    q.data = w.q.view().ptr(0, 1024 - 384, 0);
    const SparsePattern p = make(name, settings)->select(q, w.k, AttentionOptions{});
    EXPECT_NO_THROW(p.validate());
    EXPECT_EQ(p.seq_len_q, 384);
    EXPECT_EQ(p.seq_len_k, 1024);
    expect_sink_and_diagonal(p);
  }
}

/// Planted-mass recall >= 0.95 on every head of the shared L = 2048 workload (heads whose kind
/// is in `kinds`), and the pattern keeps fewer than `max_density` of the causal keys.
inline void check_planted(const std::string& name, const std::vector<std::string>& settings,
                          const std::vector<Kind>& kinds, double max_density) {
  const Workload& w = shared_workload(2048);
  const SparsePattern p = run(*make(name, settings), w);
  const RecallReport r = recall(w, p);
  for (size_t h = 0; h < r.planted.size(); ++h) {
    if (std::find(kinds.begin(), kinds.end(), w.cfg.kinds[h]) == kinds.end()) continue;
    EXPECT_GE(r.planted[h], 0.95) << name << " head " << h << " planted-mass recall";
  }
  EXPECT_LT(p.token_density(), max_density) << name << " keeps too much to be a meaningful test";
}

/// Patterns for increasing values of `key` keep nested sets of keys (hence monotone density).
inline void check_monotone(const std::string& name, const std::vector<std::string>& settings,
                           const std::string& key, const std::vector<std::string>& values) {
  const Workload& w = shared_workload(1024);
  SparsePattern prev;
  double prev_density = -1, first_density = -1;
  for (const std::string& v : values) {
    auto st = settings;
    st.push_back(key + "=" + v);
    const SparsePattern p = run(*make(name, st), w);
    const double d = p.token_density();
    EXPECT_GE(d, prev_density) << name << " " << key << "=" << v;
    if (prev_density >= 0) {
      EXPECT_TRUE(subset_of(prev, p)) << name << " " << key << "=" << v;
    }
    if (first_density < 0) first_density = d;
    prev_density = d;
    prev = p;
  }
  EXPECT_LT(first_density, prev_density) << name << ": " << key << " does not move the density";
}

/// Block rows of query block `qb` of every head.
inline std::vector<std::vector<int32_t>> block_rows(const SparsePattern& p, int64_t qb) {
  std::vector<std::vector<int32_t>> rows;
  for (int64_t h = 0; h < p.num_heads; ++h) {
    const int64_t r = p.row(h, qb);
    rows.emplace_back(p.block_indices.begin() + p.block_indptr[r],
                      p.block_indices.begin() + p.block_indptr[r + 1]);
  }
  return rows;
}

/// Query independence: replacing every query outside block qb leaves the rows of qb unchanged,
/// while other rows do change and replacing queries inside qb changes qb (the check can fail).
inline void check_query_independence(const std::string& name,
                                     const std::vector<std::string>& settings) {
  PlantedConfig cfg;
  cfg.kinds = {Kind::kMixed, Kind::kStripes};
  cfg.num_heads_kv = 1;
  const Workload w = make_workload(cfg);
  const auto sel = make(name, settings);
  const SparsePattern base = run(*sel, w);
  const int64_t qb = 4, bq = base.block_q;
  Rng rng(99);
  const auto scrambled = [&](bool inside) {
    Tensor q2 = Tensor::from(w.q, DType::kF32);
    for (int64_t h = 0; h < q2.size(0); ++h)
      for (int64_t i = 0; i < q2.size(1); ++i)
        if ((i / bq == qb) == inside)
          for (int64_t d = 0; d < kDim; ++d) q2.view().set(float(3 * rng.normal()), h, i, d);
    return sel->select(q2, w.k, AttentionOptions{});
  };
  const SparsePattern outside = scrambled(false);
  EXPECT_EQ(block_rows(base, qb), block_rows(outside, qb)) << name;
  bool other_changed = false;
  for (int64_t b = 0; b < base.num_q_blocks(); ++b)
    if (b != qb && block_rows(base, b) != block_rows(outside, b)) other_changed = true;
  EXPECT_TRUE(other_changed) << name;
  EXPECT_NE(block_rows(base, qb), block_rows(scrambled(true), qb)) << name;
}

/// Below dense_below the selector returns exactly the dense pattern.
inline void check_dense_fallback(const std::string& name,
                                 const std::vector<std::string>& settings = {}) {
  PlantedConfig cfg;
  cfg.seq_len = 512;
  const Workload w = make_workload(cfg);
  auto below = settings;
  below.push_back("dense_below=513");
  auto sel = make(name, below);
  const SparsePattern p = run(*sel, w);
  const SparsePattern d = SparsePattern::dense(int(w.num_heads_q()), 512, 512, p.block_q,
                                               p.block_k, true);
  EXPECT_EQ(p.block_indptr, d.block_indptr);
  EXPECT_EQ(p.block_indices, d.block_indices);
  EXPECT_FALSE(p.has_columns());
  EXPECT_EQ(p.band, 0);
  // At the threshold itself the method runs (and keeps fewer blocks on this structured input).
  auto at_settings = settings;
  at_settings.push_back("dense_below=512");
  auto at = make(name, at_settings);
  EXPECT_LT(run(*at, w).token_density(), 1.0);
}

/// The setting is rejected with a sieve::Error whose message names the key.
inline void expect_rejected(const std::string& name, const std::string& key,
                            const std::string& value) {
  auto sel = make(name);
  try {
    sel->set(key, value);
    // Some combinations (e.g. block sizes) can only be judged as a whole.
    sel->validate_config();
    ADD_FAILURE() << name << ": " << key << "=" << value << " was accepted";
  } catch (const sieve::Error& e) {
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos)
        << "message does not name '" << key << "': " << e.what();
  }
}

}  // namespace sieve::attention::selector_test
