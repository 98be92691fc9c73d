// Synthetic Q/K/V with planted attention structure.
//
// Construction (all in "logit units": the executor's default scale 1/sqrt(D) is undone by scaling
// q and k by D^(1/4) each, so q_i . k_j / sqrt(D) equals the planted logit). Per KV head the D
// latent dimensions are split into slots:
//   [0] sink        k_j = sqrt(S) for j < sink_tokens;      q_i = sqrt(S) w_sink
//   [1] stripes     k_j = sqrt(S) a_j for stripe keys;       q_i = sqrt(S) w_stripe
//   [2, 2+N) needle n: k = sqrt(2 S) at its key;            q_i = sqrt(2 S) w_needle for its rows
//   band pairs      k_j = sqrt(S/nb) (cos w j, sin w j), q_i = w_band sqrt(S/nb) (cos w i, sin w i)
//                   with nb random frequencies in (0, pi/W]: logit S w_band mean_m cos(w_m (i-j)),
//                   a sinc-shaped local band of width ~W (RoPE's mechanism, low frequencies only)
//   slash pairs     the same with frequencies in (0, pi] and q phase-shifted by each offset o:
//                   a one-token-wide peak at i - j = o of height 1.25 S w_slash
// plus isotropic Gaussian noise on every coordinate whose dot products have standard deviation
// `background` (the diffuse part; the random-feature codes above add more, as real heads do). A
// random orthogonal rotation per KV head (shared by its query heads, so logits are unchanged)
// hides the slot structure, so q and k look like dense post-RoPE activations. V is Gaussian
// around a per-head mean. Query heads cycle through kinds with weights (sink, band, stripe,
// slash, needle):
//   mixed (1, .5, .8, .8, 1)   local (1, 1, 0, 0, 0)   stripes (1, .3, 1, 0, 0)
//   slash (1, .3, 0, 1, 0)     needle (1, .3, 0, 0, 1) diffuse (.3, .2, 0, 0, 0)
#include "sieve/attention/synthetic.h"

#include "sieve/core/error.h"
#include "sieve/core/rng.h"
#include "sieve/core/threading.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <set>

namespace sieve::attention {

namespace {

struct HeadKind {
  const char* name;
  double sink, band, stripe, slash, needle;
};
constexpr HeadKind kKinds[] = {
    {"mixed", 1, 0.5, 0.8, 0.8, 1},   {"local", 1, 1, 0, 0, 0},   {"stripes", 1, 0.3, 1, 0, 0},
    {"slash", 1, 0.3, 0, 1, 0},       {"needle", 1, 0.3, 0, 0, 1}, {"diffuse", 0.3, 0.2, 0, 0, 0}};
constexpr double kSlashBoost = 1.25, kNeedleBoost = 2.0;

struct Slots {
  int64_t needle0, band0, nb, slash0, ns;
};

Slots slots_for(int64_t d, int num_needles) {
  const int64_t rest = d - 2 - num_needles;
  SIEVE_CHECK(rest >= 4, "synthetic: head_dim {} too small for {} needles (needs >= {})", d,
              num_needles, 6 + num_needles);
  Slots s;
  s.needle0 = 2;
  s.ns = std::max<int64_t>(1, rest / 3);
  s.nb = std::max<int64_t>(1, std::min(rest / 6, (rest - 2 * s.ns) / 2));
  s.band0 = 2 + num_needles;
  s.slash0 = s.band0 + 2 * s.nb;
  return s;
}

// Jittered-uniform frequencies in (0, hi]: sorted, no two equal, no exact aliasing.
std::vector<double> frequencies(int64_t n, double hi, Rng& rng) {
  std::vector<double> w(static_cast<size_t>(n));
  for (int64_t m = 0; m < n; ++m) w[size_t(m)] = hi * (double(m) + rng.uniform_open()) / double(n);
  return w;
}

// Haar-random orthogonal matrix (Gram-Schmidt on a Gaussian matrix), row-major d x d.
std::vector<double> random_rotation(int64_t d, Rng& rng) {
  std::vector<double> r(size_t(d * d));
  for (auto& x : r) x = rng.normal();
  for (int64_t i = 0; i < d; ++i) {
    double* ri = &r[size_t(i * d)];
    for (int pass = 0; pass < 2; ++pass)  // twice for numerical orthogonality
      for (int64_t j = 0; j < i; ++j) {
        const double* rj = &r[size_t(j * d)];
        double dot = 0;
        for (int64_t e = 0; e < d; ++e) dot += ri[e] * rj[e];
        for (int64_t e = 0; e < d; ++e) ri[e] -= dot * rj[e];
      }
    double nrm = 0;
    for (int64_t e = 0; e < d; ++e) nrm += ri[e] * ri[e];
    nrm = 1.0 / std::sqrt(nrm);
    for (int64_t e = 0; e < d; ++e) ri[e] *= nrm;
  }
  return r;
}

// out = scale * R^T x for an orthogonal R (row-major), stored as row `row` of head `head` of t.
// Written as an axpy over e so that it vectorises.
void rotate_store(const std::vector<double>& r, const std::vector<double>& x, double scale,
                  std::vector<double>& out, const TensorView& t, int64_t head, int64_t row) {
  const int64_t d = int64_t(x.size());
  std::fill(out.begin(), out.end(), 0.0);
  for (int64_t f = 0; f < d; ++f) {
    const double xf = x[size_t(f)] * scale;
    const double* rf = &r[size_t(f * d)];
    for (int64_t e = 0; e < d; ++e) out[size_t(e)] += xf * rf[e];
  }
  for (int64_t e = 0; e < d; ++e) t.set(float(out[size_t(e)]), head, row, e);
}

// Per-KV-head random choices shared by the generator and planted_pattern.
struct KvPlan {
  std::vector<int64_t> stripes, slashes;
  std::vector<double> stripe_amp;
  std::vector<PlantedStructure::Needle> needles;
  std::vector<double> band_freq, slash_freq;
  std::vector<double> rotation;
};

KvPlan plan_kv_head(const SyntheticConfig& c, const Slots& sl, int64_t g) {
  Rng rng(c.seed, uint64_t(g));
  KvPlan p;
  const int64_t L = c.seq_len;
  std::set<int64_t> keys;
  const int64_t lo = std::min(c.sink_tokens, L - 1);
  for (int t = 0; t < c.num_stripes * 4 && int(keys.size()) < c.num_stripes && L - lo > 0; ++t)
    keys.insert(lo + int64_t(rng.below(uint64_t(L - lo))));
  p.stripes.assign(keys.begin(), keys.end());
  for (size_t i = 0; i < p.stripes.size(); ++i) p.stripe_amp.push_back(0.8 + 0.4 * rng.uniform());
  // One short slash (recent-token offset 1..8), the others between W and min(L/4, 8W).
  std::set<int64_t> offs;
  for (int t = 0; t < c.num_slashes * 4 && int(offs.size()) < c.num_slashes; ++t) {
    int64_t o;
    if (offs.empty()) {
      o = 1 + int64_t(rng.below(8));
    } else {
      const int64_t a = c.local_window, b = std::max(a + 1, std::min(L / 4, 8 * c.local_window));
      o = a + int64_t(rng.below(uint64_t(b - a)));
    }
    if (o < L) offs.insert(o);
  }
  p.slashes.assign(offs.begin(), offs.end());
  // Needles: a key in the middle of the context matched by a short run of late queries.
  const int64_t run = std::clamp<int64_t>(L / 256, 1, 32);
  for (int n = 0; n < c.num_needles; ++n) {
    const int64_t k_lo = L / 10, k_hi = std::max(k_lo + 1, L / 2);
    const int64_t key = k_lo + int64_t(rng.below(uint64_t(k_hi - k_lo)));
    const int64_t q_lo = std::max(key + 1, 3 * L / 4), q_hi = L - run;
    if (key >= L || q_lo > q_hi) continue;  // too short to hold this needle
    const int64_t begin = q_lo + int64_t(rng.below(uint64_t(q_hi - q_lo + 1)));
    p.needles.push_back({g, key, begin, begin + run});
  }
  p.band_freq = frequencies(sl.nb, std::numbers::pi / double(std::max<int64_t>(1, c.local_window)), rng);
  p.slash_freq = frequencies(sl.ns, std::numbers::pi, rng);
  p.rotation = random_rotation(c.head_dim, rng);
  return p;
}

void check_config(const SyntheticConfig& c) {
  SIEVE_CHECK(c.num_heads_q > 0 && c.num_heads_kv > 0 && c.num_heads_q % c.num_heads_kv == 0,
              "synthetic: num_heads_q ({}) must be a positive multiple of num_heads_kv ({})",
              c.num_heads_q, c.num_heads_kv);
  SIEVE_CHECK(c.seq_len > 0 && c.head_dim > 0, "synthetic: seq_len ({}) and head_dim ({}) must be positive",
              c.seq_len, c.head_dim);
  SIEVE_CHECK(c.sink_tokens >= 0 && c.local_window >= 1 && c.num_stripes >= 0 && c.num_slashes >= 0 &&
                  c.num_needles >= 0,
              "synthetic: sink_tokens, num_stripes, num_slashes, num_needles must be >= 0 and "
              "local_window >= 1");
  SIEVE_CHECK(std::isfinite(c.strength) && c.strength >= 0 && std::isfinite(c.background) &&
                  c.background >= 0,
              "synthetic: strength ({}) and background ({}) must be finite and >= 0", c.strength,
              c.background);
}

}  // namespace

void check_synthetic_config(const SyntheticConfig& c) {
  check_config(c);
  (void)slots_for(c.head_dim, c.num_needles);  // head_dim large enough for the needles
}

SyntheticWorkload make_synthetic(const SyntheticConfig& c) {
  check_config(c);
  const Slots sl = slots_for(c.head_dim, c.num_needles);
  const int64_t L = c.seq_len, D = c.head_dim, Hq = c.num_heads_q, Hkv = c.num_heads_kv;
  const int64_t group = Hq / Hkv;
  std::vector<KvPlan> plans;
  for (int64_t g = 0; g < Hkv; ++g) plans.push_back(plan_kv_head(c, sl, g));

  SyntheticWorkload w;
  w.q = Tensor(c.dtype, {Hq, L, D});
  w.k = Tensor(c.dtype, {Hkv, L, D});
  w.v = Tensor(c.dtype, {Hkv, L, D});
  PlantedStructure& ps = w.planted;
  ps.stripe_indptr.push_back(0);
  ps.slash_indptr.push_back(0);
  for (const KvPlan& p : plans) {
    ps.stripe_keys.insert(ps.stripe_keys.end(), p.stripes.begin(), p.stripes.end());
    ps.stripe_indptr.push_back(int64_t(ps.stripe_keys.size()));
    ps.slash_offsets.insert(ps.slash_offsets.end(), p.slashes.begin(), p.slashes.end());
    ps.slash_indptr.push_back(int64_t(ps.slash_offsets.size()));
    ps.needles.insert(ps.needles.end(), p.needles.begin(), p.needles.end());
  }
  for (int64_t h = 0; h < Hq; ++h) ps.head_kind.emplace_back(kKinds[h % 6].name);

  const double S = c.strength, io_scale = std::pow(double(D), 0.25);
  const double noise = std::sqrt(double(c.background) / std::sqrt(double(D)));
  const double band_amp = std::sqrt(S / double(sl.nb));
  const double slash_amp = std::sqrt(kSlashBoost * S / double(sl.ns));

  // Keys and values, one RNG stream per KV head (parallel and deterministic).
#pragma omp parallel for num_threads(num_threads()) schedule(dynamic, 1)
  for (int64_t g = 0; g < Hkv; ++g) {
    const KvPlan& p = plans[size_t(g)];
    Rng rng(c.seed, uint64_t(Hkv + g));
    std::vector<double> x(static_cast<size_t>(D)), y(x), mean(x);
    for (auto& m : mean) m = 0.5 * rng.normal();
    size_t next_stripe = 0;
    for (int64_t j = 0; j < L; ++j) {
      for (auto& e : x) e = noise * rng.normal();
      if (j < c.sink_tokens) x[0] += std::sqrt(S);
      if (next_stripe < p.stripes.size() && p.stripes[next_stripe] == j)
        x[1] += std::sqrt(S) * p.stripe_amp[next_stripe++];
      for (size_t n = 0; n < p.needles.size(); ++n)
        if (p.needles[n].key == j) x[size_t(sl.needle0) + n] += std::sqrt(kNeedleBoost * S);
      for (int64_t m = 0; m < sl.nb; ++m) {
        x[size_t(sl.band0 + 2 * m)] += band_amp * std::cos(p.band_freq[size_t(m)] * double(j));
        x[size_t(sl.band0 + 2 * m + 1)] += band_amp * std::sin(p.band_freq[size_t(m)] * double(j));
      }
      for (int64_t m = 0; m < sl.ns; ++m) {
        x[size_t(sl.slash0 + 2 * m)] += slash_amp * std::cos(p.slash_freq[size_t(m)] * double(j));
        x[size_t(sl.slash0 + 2 * m + 1)] += slash_amp * std::sin(p.slash_freq[size_t(m)] * double(j));
      }
      rotate_store(p.rotation, x, io_scale, y, w.k.view(), g, j);
      for (int64_t e = 0; e < D; ++e) w.v.view().set(float(mean[size_t(e)] + rng.normal()), g, j, e);
    }
  }

  // Queries, one stream per query head.
#pragma omp parallel for num_threads(num_threads()) schedule(dynamic, 1)
  for (int64_t h = 0; h < Hq; ++h) {
    const KvPlan& p = plans[size_t(h / group)];
    const HeadKind& kind = kKinds[h % 6];
    Rng rng(c.seed, uint64_t(2 * Hkv + h));
    std::vector<double> x(static_cast<size_t>(D)), y(x);
    for (int64_t i = 0; i < L; ++i) {
      for (auto& e : x) e = noise * rng.normal();
      x[0] += std::sqrt(S) * kind.sink;
      x[1] += std::sqrt(S) * kind.stripe;
      for (size_t n = 0; n < p.needles.size(); ++n)
        if (i >= p.needles[n].query_begin && i < p.needles[n].query_end)
          x[size_t(sl.needle0) + n] += std::sqrt(kNeedleBoost * S) * kind.needle;
      for (int64_t m = 0; m < sl.nb; ++m) {
        const double a = p.band_freq[size_t(m)] * double(i);
        x[size_t(sl.band0 + 2 * m)] += kind.band * band_amp * std::cos(a);
        x[size_t(sl.band0 + 2 * m + 1)] += kind.band * band_amp * std::sin(a);
      }
      if (kind.slash > 0) {
        for (int64_t m = 0; m < sl.ns; ++m) {
          double cs = 0, sn = 0;
          for (int64_t o : p.slashes) {
            const double a = p.slash_freq[size_t(m)] * double(i - o);
            cs += std::cos(a);
            sn += std::sin(a);
          }
          x[size_t(sl.slash0 + 2 * m)] += kind.slash * slash_amp * cs;
          x[size_t(sl.slash0 + 2 * m + 1)] += kind.slash * slash_amp * sn;
        }
      }
      rotate_store(p.rotation, x, io_scale, y, w.q.view(), h, i);
    }
  }
  return w;
}

SparsePattern planted_pattern(const SyntheticConfig& c, const PlantedStructure& ps, int block_q,
                              int block_k) {
  check_config(c);
  SparsePattern p;
  p.seq_len_q = p.seq_len_k = c.seq_len;
  p.block_q = block_q;
  p.block_k = block_k;
  p.num_heads = int(c.num_heads_kv);
  p.per_kv_head = true;
  p.causal = true;
  p.band = c.local_window;
  p.block_indptr.push_back(0);
  p.column_indptr.push_back(0);
  const int64_t nqb = p.num_q_blocks();
  for (int64_t g = 0; g < c.num_heads_kv; ++g) {
    for (int64_t qb = 0; qb < nqb; ++qb) {
      const int64_t i0 = qb * block_q, i1 = std::min(i0 + block_q, c.seq_len) - 1;
      std::set<int32_t> blocks;
      for (int64_t t = ps.slash_indptr[size_t(g)]; t < ps.slash_indptr[size_t(g) + 1]; ++t) {
        const int64_t o = ps.slash_offsets[size_t(t)];
        if (i1 - o < 0) continue;
        for (int64_t kb = std::max<int64_t>(0, i0 - o) / block_k; kb <= (i1 - o) / block_k; ++kb)
          blocks.insert(int32_t(kb));
      }
      p.block_indices.insert(p.block_indices.end(), blocks.begin(), blocks.end());
      p.block_indptr.push_back(int32_t(p.block_indices.size()));
    }
    std::set<int32_t> cols;
    for (int64_t j = 0; j < std::min(c.sink_tokens, c.seq_len); ++j) cols.insert(int32_t(j));
    for (int64_t t = ps.stripe_indptr[size_t(g)]; t < ps.stripe_indptr[size_t(g) + 1]; ++t)
      cols.insert(int32_t(ps.stripe_keys[size_t(t)]));
    for (const auto& n : ps.needles)
      if (n.head_kv == g) cols.insert(int32_t(n.key));
    p.columns.insert(p.columns.end(), cols.begin(), cols.end());
    p.column_indptr.push_back(int32_t(p.columns.size()));
  }
  p.validate();
  return p;
}

}  // namespace sieve::attention
