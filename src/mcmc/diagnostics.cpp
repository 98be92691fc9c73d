// MCMC diagnostics: Vehtari et al. (2021) R-hat / ESS / MCSE and batch-means variances.
//
// The estimators reproduce the reference implementations operation for operation where the
// choice changes the result (the quantile formula, the order of Geyer's truncation steps, the
// ESS cap), so that values agree with ArviZ / posterior to rounding; see diagnostics.h.
#include "sieve/mcmc/diagnostics.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <numbers>
#include <numeric>

#include "sieve/core/error.h"

namespace sieve::mcmc {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// ArviZ treats a series whose range is below numpy's float resolution (1e-15) as constant.
constexpr double kConstantRange = 1e-15;

bool all_finite(std::span<const double> x) {
  return std::all_of(x.begin(), x.end(), [](double v) { return std::isfinite(v); });
}

bool valid(ChainsView x) { return x.num_draws >= 4 && all_finite(x.data); }

double mean_of(std::span<const double> x) {
  return std::accumulate(x.begin(), x.end(), 0.0) / double(x.size());
}

// Sample variance with ddof = 1.
double variance_of(std::span<const double> x) {
  const double m = mean_of(x);
  double s = 0;
  for (double v : x) s += (v - m) * (v - m);
  return s / double(x.size() - 1);
}

// In-place iterative radix-2 FFT; a.size() must be a power of two. Twiddles come from cos/sin
// of exact angles (not a recurrence) so that errors stay at a few ulps for long series.
void fft(std::vector<std::complex<double>>& a, bool inverse) {
  const std::size_t n = a.size();
  for (std::size_t i = 1, j = 0; i < n; ++i) {
    std::size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  std::vector<std::complex<double>> w(n / 2);
  const double sign = inverse ? 1.0 : -1.0;
  for (std::size_t k = 0; k < n / 2; ++k) {
    const double ang = sign * 2.0 * std::numbers::pi * double(k) / double(n);
    w[k] = {std::cos(ang), std::sin(ang)};
  }
  for (std::size_t len = 2; len <= n; len <<= 1) {
    const std::size_t half = len / 2, step = n / len;
    for (std::size_t i = 0; i < n; i += len) {
      for (std::size_t k = 0; k < half; ++k) {
        // Written out: std::complex's operator* goes through the NaN-safe __muldc3 call.
        const std::complex<double> u = a[i + k], b = a[i + k + half], t = w[k * step];
        const std::complex<double> v(b.real() * t.real() - b.imag() * t.imag(),
                                     b.real() * t.imag() + b.imag() * t.real());
        a[i + k] = u + v;
        a[i + k + half] = u - v;
      }
    }
  }
}

// Stan's multi-chain ESS on the chains exactly as given (ArviZ `_ess`).
double ess_core(ChainsView x) {
  if (!all_finite(x.data)) return kNaN;
  const auto [lo, hi] = std::minmax_element(x.data.begin(), x.data.end());
  if (*hi - *lo < kConstantRange) return double(x.size());
  const std::size_t m = x.num_chains, n = x.num_draws;
  if (n < 2) return kNaN;

  std::vector<std::vector<double>> acov(m);
  std::vector<double> chain_mean(m);
  for (std::size_t c = 0; c < m; ++c) {
    acov[c] = autocovariance(x.chain(c));
    chain_mean[c] = mean_of(x.chain(c));
  }
  auto mean_acov = [&](std::size_t lag) {
    double s = 0;
    for (std::size_t c = 0; c < m; ++c) s += acov[c][lag];
    return s / double(m);
  };
  const double dn = double(n);
  const double mean_var = mean_acov(0) * dn / (dn - 1.0);
  double var_plus = mean_var * (dn - 1.0) / dn;
  if (m > 1) var_plus += variance_of(chain_mean);

  // rho_t = 1 - (W - mean_m s_m^2 rho_{t,m}) / var+ ; acov is the biased (1/n) estimate.
  auto rho = [&](std::size_t lag) { return 1.0 - (mean_var - mean_acov(lag)) / var_plus; };
  std::vector<double> rho_t(n, 0.0);
  double rho_even = 1.0, rho_odd = rho(1);
  rho_t[0] = rho_even;
  rho_t[1] = rho_odd;

  // Geyer's initial positive sequence on the pair sums rho_{2k} + rho_{2k+1}.
  const auto sn = static_cast<std::ptrdiff_t>(n);
  std::ptrdiff_t t = 1;
  while (t < sn - 3 && rho_even + rho_odd > 0.0) {
    rho_even = rho(std::size_t(t + 1));
    rho_odd = rho(std::size_t(t + 2));
    if (rho_even + rho_odd >= 0) {
      rho_t[std::size_t(t + 1)] = rho_even;
      rho_t[std::size_t(t + 2)] = rho_odd;
    }
    t += 2;
  }
  const std::ptrdiff_t max_t = t - 2;
  // A positive last even autocorrelation improves the estimate (Stan keeps it).
  if (rho_even > 0) rho_t[std::size_t(max_t + 1)] = rho_even;

  // Geyer's initial monotone sequence.
  for (t = 1; t <= max_t - 2; t += 2) {
    const auto i = std::size_t(t);
    if (rho_t[i + 1] + rho_t[i + 2] > rho_t[i - 1] + rho_t[i]) {
      rho_t[i + 1] = (rho_t[i - 1] + rho_t[i]) / 2.0;
      rho_t[i + 2] = rho_t[i + 1];
    }
  }

  const double total = double(m * n);
  double sum = 0;
  for (std::ptrdiff_t k = 0; k <= max_t; ++k) sum += rho_t[std::size_t(k)];
  double tau = -1.0 + 2.0 * sum + rho_t[std::size_t(max_t + 1)];
  // Cap ESS at N M log10(N M): an antithetic chain's tau may not collapse to zero.
  tau = std::max(tau, 1.0 / std::log10(total));
  double ess = total / tau;
  for (double r : rho_t)
    if (std::isnan(r)) ess = kNaN;
  return ess;
}

// sqrt(var+ / W) of the chains as given (ArviZ `_rhat`).
double rhat_core(ChainsView x) {
  if (!all_finite(x.data) || x.num_chains < 2 || x.num_draws < 2) return kNaN;
  const std::size_t m = x.num_chains;
  const double n = double(x.num_draws);
  std::vector<double> chain_mean(m), chain_var(m);
  for (std::size_t c = 0; c < m; ++c) {
    chain_mean[c] = mean_of(x.chain(c));
    chain_var[c] = variance_of(x.chain(c));
  }
  const double between = n * variance_of(chain_mean);
  const double within = mean_of(chain_var);
  return std::sqrt((between / within + n - 1) / n);
}

// Same shape as x, data owned by `store`.
ChainsView like(ChainsView x, const std::vector<double>& store) {
  return ChainsView(store, x.num_chains, x.num_draws);
}

std::vector<double> folded(ChainsView x) {
  std::vector<double> sorted(x.data.begin(), x.data.end());
  std::sort(sorted.begin(), sorted.end());
  const std::size_t s = sorted.size();
  const double med = s % 2 ? sorted[s / 2] : (sorted[s / 2 - 1] + sorted[s / 2]) / 2.0;
  std::vector<double> out(s);
  for (std::size_t i = 0; i < s; ++i) out[i] = std::abs(x.data[i] - med);
  return out;
}

// Regularised incomplete beta I_x(a, b) by the continued fraction (Abramowitz & Stegun 26.5.8),
// evaluated with the modified Lentz method; the symmetry I_x(a,b) = 1 - I_{1-x}(b,a) keeps x on
// the side where the fraction converges quickly.
double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1.0 - incomplete_beta(b, a, 1.0 - x);
  const double log_front = a * std::log(x) + b * std::log1p(-x) -
                           (std::lgamma(a) + std::lgamma(b) - std::lgamma(a + b)) - std::log(a);
  constexpr double tiny = 1e-300, eps = 1e-16;
  double f = 1.0, c = 1.0, d = 0.0;
  for (int i = 0; i <= 100000; ++i) {
    const int k = i / 2;
    double num;
    if (i == 0) {
      num = 1.0;
    } else if (i % 2 == 0) {
      num = k * (b - k) * x / ((a + 2 * k - 1) * (a + 2 * k));
    } else {
      num = -(a + k) * (a + b + k) * x / ((a + 2 * k) * (a + 2 * k + 1));
    }
    d = 1.0 + num * d;
    if (std::abs(d) < tiny) d = tiny;
    d = 1.0 / d;
    c = 1.0 + num / c;
    if (std::abs(c) < tiny) c = tiny;
    const double cd = c * d;
    f *= cd;
    if (std::abs(1.0 - cd) < eps) break;
  }
  return std::exp(log_front) * (f - 1.0);
}

// Inverse of I_x(a, b) in x by bisection to the spacing of doubles (monotone, robust).
double beta_quantile(double p, double a, double b) {
  double lo = 0, hi = 1;
  for (int i = 0; i < 200 && hi - lo > 0; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (mid == lo || mid == hi) break;
    (incomplete_beta(a, b, mid) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace

ChainsView::ChainsView(std::span<const double> d, std::size_t chains, std::size_t draws)
    : data(d), num_chains(chains), num_draws(draws) {
  SIEVE_CHECK(chains > 0 && draws > 0,
              "ChainsView needs at least one chain and one draw, got {} x {}", chains, draws);
  SIEVE_CHECK(d.size() == chains * draws, "ChainsView: {} values do not fill {} chains x {} draws",
              d.size(), chains, draws);
}

std::vector<double> autocovariance(std::span<const double> x) {
  const std::size_t n = x.size();
  if (n == 0) return {};
  std::size_t m = 1;
  while (m < 2 * n) m <<= 1;
  const double mu = mean_of(x);
  std::vector<std::complex<double>> a(m, 0.0);
  for (std::size_t i = 0; i < n; ++i) a[i] = x[i] - mu;
  fft(a, false);
  for (auto& v : a) v = v.real() * v.real() + v.imag() * v.imag();
  fft(a, true);
  std::vector<double> out(n);
  // Inverse FFT without the 1/m factor, then the biased 1/n normalisation.
  for (std::size_t k = 0; k < n; ++k) out[k] = a[k].real() / double(m) / double(n);
  return out;
}

double quantile(std::span<const double> x, double p) {
  SIEVE_CHECK(!x.empty(), "quantile of an empty series");
  SIEVE_CHECK(p >= 0 && p <= 1, "quantile probability must be in [0, 1], got {}", p);
  std::vector<double> s(x.begin(), x.end());
  std::sort(s.begin(), s.end());
  const std::size_t n = s.size();
  if (n == 1) return s[0];
  // Type 7 written as scipy's mquantiles(alphap=1, betap=1) does, so that a quantile that falls
  // between tied values equals them bit for bit (the tail ESS indicator depends on it).
  const double aleph = double(n) * p + (1.0 - p);
  const double k = std::floor(std::clamp(aleph, 1.0, double(n - 1)));
  const double gamma = std::clamp(aleph - k, 0.0, 1.0);
  const auto ki = std::size_t(k);
  return (1.0 - gamma) * s[ki - 1] + gamma * s[ki];
}

double normal_quantile(double p) {
  if (!(p > 0 && p < 1)) return p == 0 ? -INFINITY : p == 1 ? INFINITY : kNaN;
  // Work in the lower tail, where erfc keeps full relative precision.
  const bool upper = p > 0.5;
  const double q = upper ? 1.0 - p : p;
  // Start: Abramowitz & Stegun 26.2.23 (|error| < 4.5e-4), then Halley steps on Phi(z) = q.
  const double t = std::sqrt(-2.0 * std::log(q));
  double z = -(t - (2.515517 + 0.802853 * t + 0.010328 * t * t) /
                       (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t));
  for (int i = 0; i < 4; ++i) {
    const double cdf = 0.5 * std::erfc(-z / std::numbers::sqrt2);
    const double pdf = std::exp(-0.5 * z * z) / std::sqrt(2.0 * std::numbers::pi);
    const double u = (cdf - q) / pdf;
    z -= u / (1.0 + 0.5 * z * u);
  }
  return upper ? -z : z;
}

std::vector<double> rank_normalize(std::span<const double> x) {
  const std::size_t s = x.size();
  std::vector<std::size_t> order(s);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return x[a] < x[b]; });
  std::vector<double> z(s);
  const double denom = double(s) - 2.0 * 0.375 + 1.0;  // (r - 3/8) / (S + 1/4), Blom (1958)
  for (std::size_t i = 0; i < s;) {
    std::size_t j = i;
    while (j + 1 < s && x[order[j + 1]] == x[order[i]]) ++j;
    const double rank = 0.5 * double(i + j) + 1.0;  // average of ranks i+1 .. j+1
    const double zi = normal_quantile((rank - 0.375) / denom);
    for (std::size_t k = i; k <= j; ++k) z[order[k]] = zi;
    i = j + 1;
  }
  return z;
}

ChainsView split_chains(ChainsView x, std::vector<double>& out) {
  const std::size_t half = x.num_draws / 2;
  SIEVE_CHECK(half > 0, "split_chains needs at least 2 draws per chain, got {}", x.num_draws);
  out.resize(2 * x.num_chains * half);
  for (std::size_t c = 0; c < x.num_chains; ++c) {
    const auto ch = x.chain(c);
    std::copy_n(ch.begin(), half, out.begin() + std::ptrdiff_t(2 * c * half));
    std::copy_n(ch.end() - std::ptrdiff_t(half), half,
                out.begin() + std::ptrdiff_t((2 * c + 1) * half));
  }
  return ChainsView(out, 2 * x.num_chains, half);
}

double ess_identity(ChainsView x) { return valid(x) ? ess_core(x) : kNaN; }
double rhat_identity(ChainsView x) { return valid(x) ? rhat_core(x) : kNaN; }

double rhat_bulk(ChainsView x) {
  if (!valid(x)) return kNaN;
  std::vector<double> split;
  const ChainsView s = split_chains(x, split);
  const auto z = rank_normalize(s.data);
  return rhat_core(like(s, z));
}

double rhat_folded(ChainsView x) {
  if (!valid(x)) return kNaN;
  std::vector<double> split;
  const ChainsView s = split_chains(x, split);
  const auto z = rank_normalize(folded(s));
  return rhat_core(like(s, z));
}

double rhat(ChainsView x) {
  const double b = rhat_bulk(x), f = rhat_folded(x);
  if (std::isnan(b) || std::isnan(f)) return kNaN;
  return std::max(b, f);
}

double rhat_split(ChainsView x) {
  if (!valid(x)) return kNaN;
  std::vector<double> split;
  return rhat_core(split_chains(x, split));
}

double ess_bulk(ChainsView x) {
  if (!valid(x)) return kNaN;
  std::vector<double> split;
  const ChainsView s = split_chains(x, split);
  const auto z = rank_normalize(s.data);
  return ess_core(like(s, z));
}

double ess_quantile(ChainsView x, double p) {
  if (!valid(x)) return kNaN;
  const double q = quantile(x.data, p);
  std::vector<double> ind(x.size());
  for (std::size_t i = 0; i < ind.size(); ++i) ind[i] = x.data[i] <= q ? 1.0 : 0.0;
  std::vector<double> split;
  return ess_core(split_chains(like(x, ind), split));
}

double ess_tail(ChainsView x) {
  if (!valid(x)) return kNaN;
  return std::min(ess_quantile(x, 0.05), ess_quantile(x, 0.95));
}

double ess_mean(ChainsView x) {
  if (!valid(x)) return kNaN;
  std::vector<double> split;
  return ess_core(split_chains(x, split));
}

double ess_sd(ChainsView x) {
  if (!valid(x)) return kNaN;
  const double mu = mean_of(x.data);
  std::vector<double> sq(x.size());
  for (std::size_t i = 0; i < sq.size(); ++i) sq[i] = (x.data[i] - mu) * (x.data[i] - mu);
  std::vector<double> split;
  return ess_core(split_chains(like(x, sq), split));
}

double mcse_mean(ChainsView x) {
  if (!valid(x)) return kNaN;
  return std::sqrt(variance_of(x.data)) / std::sqrt(ess_mean(x));
}

double mcse_sd(ChainsView x) {
  if (!valid(x)) return kNaN;
  const double mu = mean_of(x.data);
  std::vector<double> sq(x.size());
  for (std::size_t i = 0; i < sq.size(); ++i) sq[i] = (x.data[i] - mu) * (x.data[i] - mu);
  const ChainsView sqv = like(x, sq);
  const double ess = ess_mean(sqv);
  const double evar = mean_of(sq);
  double sq2 = 0;
  for (double v : sq) sq2 += v * v;
  const double varvar = (sq2 / double(sq.size()) - evar * evar) / ess;
  return std::sqrt(varvar / evar / 4.0);
}

double mcse_quantile(ChainsView x, double p) {
  if (!valid(x)) return kNaN;
  SIEVE_CHECK(p > 0 && p < 1, "mcse_quantile probability must be in (0, 1), got {}", p);
  const double ess = ess_quantile(x, p);
  if (std::isnan(ess)) return kNaN;
  // Central 68.27 % (+-1 sd) interval of the quantile's rank from a Beta posterior.
  const double a = ess * p + 1, b = ess * (1 - p) + 1;
  const double lo_p = beta_quantile(0.1586553, a, b), hi_p = beta_quantile(0.8413447, a, b);
  std::vector<double> s(x.data.begin(), x.data.end());
  std::sort(s.begin(), s.end());
  const double size = double(s.size());
  const auto i1 = std::size_t(std::floor(std::max(lo_p * size - 1, 0.0)));
  const auto i2 = std::size_t(std::ceil(std::min(hi_p * size - 1, size - 1)));
  return (s[i2] - s[i1]) / 2.0;
}

// ---- batch means ---------------------------------------------------------------------------

namespace {

std::size_t default_batch(std::size_t n, std::size_t b) {
  return b ? b : std::max<std::size_t>(1, std::size_t(std::floor(std::sqrt(double(n)))));
}

// Batch means pooled over chains around the grand mean of the batch means.
double pooled_batch_means(ChainsView x, std::size_t b) {
  const std::size_t n = x.num_draws, a = n / b;
  SIEVE_CHECK(b >= 1 && a * x.num_chains >= 2,
              "batch means: batch size {} leaves fewer than 2 batches of {} draws x {} chains", b,
              n, x.num_chains);
  std::vector<double> means;
  means.reserve(a * x.num_chains);
  for (std::size_t c = 0; c < x.num_chains; ++c) {
    const auto ch = x.chain(c);
    for (std::size_t k = 0; k < a; ++k) means.push_back(mean_of(ch.subspan(k * b, b)));
  }
  const double grand = mean_of(means);
  double s = 0;
  for (double v : means) s += (v - grand) * (v - grand);
  return double(b) * s / double(means.size() - 1);
}

double pooled_overlapping_batch_means(ChainsView x, std::size_t b) {
  const std::size_t n = x.num_draws;
  SIEVE_CHECK(b >= 1 && b < n, "overlapping batch means: batch size {} must be in [1, {})", b, n);
  const double grand = mean_of(x.data);
  double total = 0;
  for (std::size_t c = 0; c < x.num_chains; ++c) {
    const auto ch = x.chain(c);
    // Running window sums from prefix sums.
    std::vector<double> prefix(n + 1, 0.0);
    for (std::size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + ch[i];
    for (std::size_t j = 0; j + b <= n; ++j) {
      const double d = (prefix[j + b] - prefix[j]) / double(b) - grand;
      total += d * d;
    }
  }
  const double dn = double(n), db = double(b);
  return dn * db / ((dn - db) * (dn - db + 1)) * total / double(x.num_chains);
}

}  // namespace

double batch_means_variance(std::span<const double> x, std::size_t batch_size) {
  return pooled_batch_means(ChainsView(x, 1, x.size()), default_batch(x.size(), batch_size));
}

double overlapping_batch_means_variance(std::span<const double> x, std::size_t batch_size) {
  return pooled_overlapping_batch_means(ChainsView(x, 1, x.size()),
                                        default_batch(x.size(), batch_size));
}

double lugsail_batch_means_variance(std::span<const double> x, std::size_t batch_size) {
  return asymptotic_variance(ChainsView(x, 1, x.size()), AsymptoticVarianceMethod::kLugsail,
                             batch_size);
}

double asymptotic_variance(ChainsView x, AsymptoticVarianceMethod method, std::size_t batch_size) {
  if (!all_finite(x.data)) return kNaN;
  const std::size_t b = default_batch(x.num_draws, batch_size);
  switch (method) {
    case AsymptoticVarianceMethod::kInitialSequence: {
      const double se = mcse_mean(x);
      return double(x.size()) * se * se;
    }
    case AsymptoticVarianceMethod::kBatchMeans:
      return pooled_batch_means(x, b);
    case AsymptoticVarianceMethod::kOverlappingBatchMeans:
      return pooled_overlapping_batch_means(x, b);
    case AsymptoticVarianceMethod::kLugsail:
      SIEVE_CHECK(b >= 3, "lugsail batch means needs batch size >= 3, got {}", b);
      return 2.0 * pooled_batch_means(x, b) - pooled_batch_means(x, b / 3);
  }
  SIEVE_FAIL("unknown asymptotic variance method");
}

double variance_reduction_factor(ChainsView plain, ChainsView reduced,
                                 AsymptoticVarianceMethod method) {
  return asymptotic_variance(plain, method) / asymptotic_variance(reduced, method);
}

AcceptanceSummary summarize_acceptance(ChainsView accept_stat) {
  AcceptanceSummary s;
  s.mean = mean_of(accept_stat.data);
  for (std::size_t c = 0; c < accept_stat.num_chains; ++c)
    s.per_chain.push_back(mean_of(accept_stat.chain(c)));
  const auto [lo, hi] = std::minmax_element(s.per_chain.begin(), s.per_chain.end());
  s.min_chain = *lo;
  s.max_chain = *hi;
  return s;
}

ParameterSummary summarize(ChainsView x) {
  ParameterSummary s;
  s.mean = mean_of(x.data);
  s.sd = x.size() > 1 ? std::sqrt(variance_of(x.data)) : kNaN;
  s.mcse_mean = mcse_mean(x);
  s.mcse_sd = mcse_sd(x);
  s.q05 = quantile(x.data, 0.05);
  s.q50 = quantile(x.data, 0.5);
  s.q95 = quantile(x.data, 0.95);
  s.ess_bulk = ess_bulk(x);
  s.ess_tail = ess_tail(x);
  s.rhat = rhat(x);
  return s;
}

}  // namespace sieve::mcmc
