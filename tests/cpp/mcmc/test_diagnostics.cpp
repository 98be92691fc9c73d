// Diagnostics against independent references: ArviZ values on fixed chains (fixture written by
// scripts/make_diagnostics_fixture.py), numpy batch means, direct-sum autocovariances, and
// closed forms for stationary AR(1) chains (asymptotic variance sigma^2 / (1 - rho)^2).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sieve/core/error.h"
#include "sieve/core/rng.h"
#include "sieve/mcmc/diagnostics.h"

using namespace sieve;
using namespace sieve::mcmc;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Case {
  std::string name;
  std::vector<double> x;
  std::size_t chains = 0, draws = 0;
  nlohmann::json ref;
  ChainsView view() const { return ChainsView(x, chains, draws); }
};

std::vector<Case> load_fixture() {
  std::ifstream f(std::string(SIEVE_SOURCE_DIR) + "/tests/data/mcmc/diagnostics_fixture.json");
  EXPECT_TRUE(f.good()) << "missing diagnostics fixture";
  const auto j = nlohmann::json::parse(f);
  std::vector<Case> cases;
  for (const auto& [name, c] : j.at("cases").items()) {
    Case k;
    k.name = name;
    k.chains = c.at("chains").get<std::size_t>();
    k.draws = c.at("draws").get<std::size_t>();
    for (const auto& row : c.at("x"))
      for (const auto& v : row) k.x.push_back(v.get<double>());
    k.ref = c.at("ref");
    cases.push_back(std::move(k));
  }
  return cases;
}

// Relative agreement; the implementations differ only in rounding (FFT order, erfc vs ndtri).
void expect_rel(double got, double want, double tol, const std::string& what) {
  EXPECT_NEAR(got, want, tol * std::max(1.0, std::abs(want))) << what;
}

// Stationary AR(1) chains x_t = rho x_{t-1} + sigma e_t, started from the stationary law.
std::vector<double> ar1_chains(std::size_t chains, std::size_t draws, double rho, double sigma,
                               uint64_t seed) {
  std::vector<double> x(chains * draws);
  for (std::size_t c = 0; c < chains; ++c) {
    Rng rng(seed, c);
    double v = rng.normal() * sigma / std::sqrt(1 - rho * rho);
    for (std::size_t t = 0; t < draws; ++t) {
      x[c * draws + t] = v;
      v = rho * v + sigma * rng.normal();
    }
  }
  return x;
}

}  // namespace

TEST(McmcDiagnostics, MatchesArviZOnFixture) {
  const auto cases = load_fixture();
  ASSERT_EQ(cases.size(), 7u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const ChainsView v = c.view();
    const auto& r = c.ref;
    expect_rel(ess_bulk(v), r["ess_bulk"], 1e-9, "ess_bulk");
    expect_rel(ess_tail(v), r["ess_tail"], 1e-9, "ess_tail");
    expect_rel(ess_mean(v), r["ess_mean"], 1e-9, "ess_mean");
    expect_rel(ess_sd(v), r["ess_sd"], 1e-9, "ess_sd");
    expect_rel(ess_quantile(v, 0.05), r["ess_q05"], 1e-9, "ess_q05");
    expect_rel(ess_quantile(v, 0.5), r["ess_median"], 1e-9, "ess_median");
    expect_rel(ess_identity(v), r["ess_identity"], 1e-9, "ess_identity");
    expect_rel(mcse_mean(v), r["mcse_mean"], 1e-9, "mcse_mean");
    expect_rel(mcse_sd(v), r["mcse_sd"], 1e-9, "mcse_sd");
    expect_rel(mcse_quantile(v, 0.5), r["mcse_median"], 1e-9, "mcse_median");
    expect_rel(mcse_quantile(v, 0.05), r["mcse_q05"], 1e-9, "mcse_q05");
    expect_rel(rhat(v), r["rhat"], 1e-12, "rhat");
    expect_rel(rhat_bulk(v), r["rhat_bulk"], 1e-12, "rhat_bulk");
    expect_rel(rhat_folded(v), r["rhat_folded"], 1e-12, "rhat_folded");
    expect_rel(rhat_split(v), r["rhat_split"], 1e-12, "rhat_split");
    if (c.chains > 1)
      expect_rel(rhat_identity(v), r["rhat_identity"], 1e-12, "rhat_identity");
    else
      EXPECT_TRUE(std::isnan(rhat_identity(v)));

    const auto s = summarize(v);
    expect_rel(s.mean, r["mean"], 1e-13, "mean");
    expect_rel(s.sd, r["sd"], 1e-13, "sd");
    expect_rel(s.q05, r["q05"], 1e-13, "q05");
    expect_rel(s.q50, r["q50"], 1e-13, "q50");
    expect_rel(s.q95, r["q95"], 1e-13, "q95");
    EXPECT_EQ(s.ess_bulk, ess_bulk(v));
    EXPECT_EQ(s.rhat, rhat(v));

    const auto chain0 = v.chain(0);
    const auto b = r["chain0_batch"].get<std::size_t>();
    expect_rel(batch_means_variance(chain0, b), r["chain0_bm_var"], 1e-12, "bm");
    expect_rel(batch_means_variance(chain0), r["chain0_bm_var"], 1e-12, "bm default batch");
    expect_rel(overlapping_batch_means_variance(chain0, b), r["chain0_obm_var"], 1e-12, "obm");
    expect_rel(lugsail_batch_means_variance(chain0, b), r["chain0_lugsail_var"], 1e-12, "lugsail");
    const auto acov = autocovariance(chain0);
    for (std::size_t k = 0; k < 6; ++k)
      expect_rel(acov[k], r["chain0_acov"][k], 1e-12, "acov lag " + std::to_string(k));
  }
}

TEST(McmcDiagnostics, FixtureCoversAntitheticAndShiftedChains) {
  // The cases exercise what they claim: ESS > N for the antithetic chain, the cap N M log10(N M)
  // for the strongly antithetic one, and R-hat flags a shifted or rescaled chain.
  for (const auto& c : load_fixture()) {
    const double nm = double(c.chains * c.draws);
    if (c.name == "ar1_anti") {
      EXPECT_GT(ess_bulk(c.view()), 1.5 * nm);
    }
    if (c.name == "ar1_anti_cap") {
      EXPECT_NEAR(ess_mean(c.view()), nm * std::log10(nm), 1e-9 * nm);
    }
    if (c.name == "ar1_pos") {
      EXPECT_LT(ess_bulk(c.view()), 0.35 * nm);
    }
    if (c.name == "shifted") {
      EXPECT_GT(rhat_bulk(c.view()), 1.05);
    }
    if (c.name == "scale") {
      EXPECT_LT(rhat_bulk(c.view()), 1.02);   // same location: bulk R-hat misses it
      EXPECT_GT(rhat_folded(c.view()), 1.1);  // folded R-hat sees the wider chain
    }
  }
}

TEST(McmcDiagnostics, AutocovarianceMatchesDirectSum) {
  Rng rng(7);
  for (std::size_t n : {1u, 2u, 3u, 17u, 64u, 1000u}) {
    std::vector<double> x(n);
    for (auto& v : x) v = 3.0 + rng.normal();
    double mean = 0;
    for (double v : x) mean += v;
    mean /= double(n);
    const auto acov = autocovariance(x);
    ASSERT_EQ(acov.size(), n);
    for (std::size_t k = 0; k < n; ++k) {
      double s = 0;
      for (std::size_t t = 0; t + k < n; ++t) s += (x[t] - mean) * (x[t + k] - mean);
      EXPECT_NEAR(acov[k], s / double(n), 1e-12) << "n=" << n << " lag=" << k;
    }
  }
}

TEST(McmcDiagnostics, NormalQuantileInvertsErfc) {
  EXPECT_NEAR(normal_quantile(0.975), 1.959963984540054, 1e-14);
  EXPECT_NEAR(normal_quantile(0.5), 0.0, 1e-16);
  for (double p : {1e-300, 1e-12, 1e-6, 0.001, 0.1, 0.3, 0.49, 0.51, 0.9, 0.999, 1 - 1e-9}) {
    const double z = normal_quantile(p);
    const double back = 0.5 * std::erfc(-z / std::sqrt(2.0));
    EXPECT_NEAR(back / p, 1.0, p < 0.5 ? 1e-13 : 1e-9) << p;
    // Symmetry where 1 - p is (nearly) exact in double.
    if (p >= 1e-6 && p <= 1 - 1e-6) {
      EXPECT_NEAR(normal_quantile(1 - p), -z, 1e-9 * std::max(1.0, std::abs(z))) << p;
    }
  }
  EXPECT_TRUE(std::isinf(normal_quantile(0.0)));
  EXPECT_TRUE(std::isnan(normal_quantile(1.5)));
}

TEST(McmcDiagnostics, RankNormalizeUsesAverageRanksForTies) {
  const std::vector<double> x = {5.0, 1.0, 5.0, 3.0};
  const auto z = rank_normalize(x);
  // ranks 3.5, 1, 3.5, 2 ; (r - 3/8) / (4 + 1/4)
  EXPECT_NEAR(z[0], normal_quantile((3.5 - 0.375) / 4.25), 1e-15);
  EXPECT_NEAR(z[1], normal_quantile((1.0 - 0.375) / 4.25), 1e-15);
  EXPECT_EQ(z[0], z[2]);
  EXPECT_NEAR(z[3], normal_quantile((2.0 - 0.375) / 4.25), 1e-15);
}

TEST(McmcDiagnostics, QuantileIsType7) {
  const std::vector<double> x = {3.0, 1.0, 2.0, 4.0};
  EXPECT_DOUBLE_EQ(quantile(x, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(quantile(x, 0.05), 1.15);
  EXPECT_DOUBLE_EQ(quantile(x, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(quantile(x, 1.0), 4.0);
  EXPECT_THROW(quantile(x, 1.5), Error);
  EXPECT_THROW(quantile(std::vector<double>{}, 0.5), Error);
}

TEST(McmcDiagnostics, Ar1AsymptoticVarianceMatchesClosedForm) {
  // sigma^2_as = sigma^2 / (1 - rho)^2 for the mean of an AR(1) with innovation sd sigma.
  for (double rho : {0.6, -0.5}) {
    SCOPED_TRACE(rho);
    const double sigma = 1.5;
    const std::size_t chains = 4, draws = 20000;
    const auto x = ar1_chains(chains, draws, rho, sigma, 42);
    const ChainsView v(x, chains, draws);
    const double truth = sigma * sigma / ((1 - rho) * (1 - rho));
    const double marginal = sigma * sigma / (1 - rho * rho);

    // Batch means with a batches in all: relative sd about sqrt(2 / a); allow 4 sd.
    // b = 100 is long enough: the batch-means bias, about -2 rho / ((1 - rho^2) b), is < 2 %.
    const std::size_t b = 100, a = chains * (draws / b);
    const double tol = 4 * std::sqrt(2.0 / double(a));
    EXPECT_NEAR(asymptotic_variance(v, AsymptoticVarianceMethod::kBatchMeans, b) / truth, 1, tol);
    EXPECT_NEAR(asymptotic_variance(v, AsymptoticVarianceMethod::kOverlappingBatchMeans, b) / truth,
                1, tol);
    EXPECT_NEAR(asymptotic_variance(v, AsymptoticVarianceMethod::kLugsail, b) / truth, 1, 2 * tol);
    // Initial sequence: at least as precise as batch means with b ~ the truncation lag.
    EXPECT_NEAR(asymptotic_variance(v) / truth, 1, tol);
    // ESS of the mean ~ N M marginal / sigma^2_as; for rho < 0 this exceeds N M.
    const double ess_truth = double(chains * draws) * marginal / truth;
    EXPECT_NEAR(ess_mean(v) / ess_truth, 1, tol);
    if (rho < 0) {
      EXPECT_GT(ess_mean(v), double(chains * draws));
    }
  }
}

TEST(McmcDiagnostics, VarianceReductionFactorOfScaledSeries) {
  const auto x = ar1_chains(2, 2000, 0.5, 1.0, 3);
  std::vector<double> y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = 5.0 + 0.1 * x[i];
  const ChainsView vx(x, 2, 2000), vy(y, 2, 2000);
  for (auto m :
       {AsymptoticVarianceMethod::kInitialSequence, AsymptoticVarianceMethod::kBatchMeans,
        AsymptoticVarianceMethod::kOverlappingBatchMeans, AsymptoticVarianceMethod::kLugsail})
    EXPECT_NEAR(variance_reduction_factor(vx, vy, m), 100.0, 1e-6);
}

TEST(McmcDiagnostics, BatchMeansPoolChainDifferences) {
  // Two constant-within-chain chains at different levels: within-chain batch means see nothing,
  // the pooled estimator sees the between-chain spread.
  std::vector<double> x(200);
  for (std::size_t i = 0; i < 100; ++i) x[i] = 0.0, x[100 + i] = 1.0;
  const ChainsView v(x, 2, 100);
  // 20 batch means: ten 0s and ten 1s around 0.5 -> b / (a-1) * 20 * 0.25 = 10 * 5 / 19.
  EXPECT_NEAR(asymptotic_variance(v, AsymptoticVarianceMethod::kBatchMeans), 10.0 * 5.0 / 19.0,
              1e-12);
  EXPECT_GT(asymptotic_variance(v, AsymptoticVarianceMethod::kOverlappingBatchMeans), 0.0);
}

TEST(McmcDiagnostics, EdgeCases) {
  std::vector<double> x = {1, 2, 3, 4, 5, 6, 7, 8};
  // Non-finite or too-short input gives NaN, never a crash.
  auto bad = x;
  bad[3] = kNaN;
  const ChainsView vb(bad, 2, 4);
  EXPECT_TRUE(std::isnan(ess_bulk(vb)));
  EXPECT_TRUE(std::isnan(rhat(vb)));
  EXPECT_TRUE(std::isnan(mcse_mean(vb)));
  EXPECT_TRUE(std::isnan(asymptotic_variance(vb)));
  const ChainsView short_chains(x, 4, 2);
  EXPECT_TRUE(std::isnan(ess_tail(short_chains)));
  EXPECT_TRUE(std::isnan(rhat(short_chains)));
  // Constant draws: ESS is the number of (split) draws, as in ArviZ; R-hat is undefined.
  const std::vector<double> c(12, 2.5);
  EXPECT_EQ(ess_bulk(ChainsView(c, 2, 6)), 12.0);
  EXPECT_EQ(ess_mean(ChainsView(c, 2, 6)), 12.0);
  EXPECT_TRUE(std::isnan(rhat(ChainsView(c, 2, 6))));
  // Shape errors are caller errors.
  EXPECT_THROW(ChainsView(x, 3, 3), Error);
  EXPECT_THROW(ChainsView(x, 0, 8), Error);
  EXPECT_THROW(batch_means_variance(x, 5), Error);  // one batch of 5 only
  EXPECT_THROW(lugsail_batch_means_variance(x, 2), Error);
  EXPECT_THROW(overlapping_batch_means_variance(x, 8), Error);
}

TEST(McmcDiagnostics, AcceptanceSummary) {
  const std::vector<double> a = {1, 0, 1, 1, 0.5, 0.5, 0.5, 0.5};
  const auto s = summarize_acceptance(ChainsView(a, 2, 4));
  EXPECT_DOUBLE_EQ(s.mean, 5.0 / 8.0);
  ASSERT_EQ(s.per_chain.size(), 2u);
  EXPECT_DOUBLE_EQ(s.per_chain[0], 0.75);
  EXPECT_DOUBLE_EQ(s.min_chain, 0.5);
  EXPECT_DOUBLE_EQ(s.max_chain, 0.75);
}
