// MCMC convergence and efficiency diagnostics on stored draws of one scalar quantity.
//
// Rank-normalised split R-hat (bulk and folded), bulk / tail / mean / sd / quantile ESS and MCSE
// follow Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021), "Rank-normalization, folding, and
// localization: an improved R-hat", exactly as Stan, the R `posterior` package and ArviZ compute
// them (multi-chain autocorrelation, Geyer's initial positive then monotone sequence on the paired
// sums, so antithetic chains get ESS > N; ESS is capped at N M log10(N M)). Batch-means estimators
// of the asymptotic variance (plain, overlapping, lugsail) serve control-variate series. Input
// shape: ChainsView, num_chains x num_draws, chain-major (draw t of chain c at c*draws + t).
// Functions return NaN (never throw) for non-finite draws or fewer than 4 draws per chain.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace sieve::mcmc {

/// Draws of one scalar quantity from several chains, chain-major and contiguous.
struct ChainsView {
  std::span<const double> data;
  std::size_t num_chains = 0;
  std::size_t num_draws = 0;

  ChainsView() = default;
  /// Throws sieve::Error unless data.size() == num_chains * num_draws and both are positive.
  ChainsView(std::span<const double> data, std::size_t num_chains, std::size_t num_draws);
  std::span<const double> chain(std::size_t c) const {
    return data.subspan(c * num_draws, num_draws);
  }
  std::size_t size() const { return data.size(); }
};

// ---- building blocks -------------------------------------------------------------------------

/// Biased autocovariance (divide by n) of one series at lags 0..n-1, through a radix-2 FFT
/// zero-padded to at least 2n (no circular wrap-around).
std::vector<double> autocovariance(std::span<const double> x);

/// Sample quantile of type 7 (R's default, numpy's "linear"): linear interpolation between order
/// statistics at position (n-1) p. p in [0, 1].
double quantile(std::span<const double> x, double p);

/// Rank-normalisation: Phi^{-1}((r - 3/8) / (S + 1/4)) with average ranks for ties, over all S
/// values pooled.
std::vector<double> rank_normalize(std::span<const double> x);

/// Inverse standard normal CDF (Halley-refined to full double precision). p in (0, 1).
double normal_quantile(double p);

/// Splits each chain into its first and last floor(N/2) draws (an odd middle draw is dropped):
/// returns 2M chains of floor(N/2) draws, stored in `out`.
ChainsView split_chains(ChainsView x, std::vector<double>& out);

/// ESS of the chains as given (no splitting, no rank transform): Stan's multi-chain estimator.
double ess_identity(ChainsView x);
/// Split R-hat of the chains as given (no splitting, no rank transform): sqrt(var+ / W).
double rhat_identity(ChainsView x);

// ---- Stan / posterior / ArviZ diagnostics ---------------------------------------------------

/// max(rhat_bulk, rhat_folded): what Stan reports as R-hat. One chain is split into two, as in
/// Stan and posterior (ArviZ returns NaN there).
double rhat(ChainsView x);
/// Rank-normalised split R-hat.
double rhat_bulk(ChainsView x);
/// Rank-normalised split R-hat of |x - median(x)| (catches differences in scale).
double rhat_folded(ChainsView x);
/// Classic split R-hat (Gelman et al. BDA3), no rank normalisation.
double rhat_split(ChainsView x);

/// ESS of the rank-normalised split chains.
double ess_bulk(ChainsView x);
/// min of the quantile ESS at 0.05 and 0.95.
double ess_tail(ChainsView x);
/// ESS of the split chains for the mean (no rank normalisation); MCSE of the mean uses it.
double ess_mean(ChainsView x);
/// ESS of the split chains of (x - mean)^2.
double ess_sd(ChainsView x);
/// ESS of the split chains of the indicator x <= quantile(x, p).
double ess_quantile(ChainsView x, double p);

/// sd / sqrt(ess_mean), the Monte Carlo standard error of the mean.
double mcse_mean(ChainsView x);
/// MCSE of the standard deviation (delta method on the variance, ArviZ's formula).
double mcse_sd(ChainsView x);
/// MCSE of the p-quantile: half the width of the central 68.27 % interval of the order
/// statistics implied by a Beta(ess p + 1, ess (1 - p) + 1) for the quantile's rank.
double mcse_quantile(ChainsView x, double p);

// ---- asymptotic variance of an ergodic mean -------------------------------------------------

enum class AsymptoticVarianceMethod {
  kInitialSequence,        ///< n * mcse_mean^2: Geyer's initial monotone sequence, multi-chain
  kBatchMeans,             ///< non-overlapping batch means
  kOverlappingBatchMeans,  ///< overlapping batch means (Flegal & Jones 2010)
  kLugsail,                ///< lugsail batch means 2 BM(b) - BM(floor(b/3)) (Vats & Flegal)
};

/// Batch means of one series with batch size b (0: floor(sqrt(n))):
/// b / (a - 1) * sum_k (Ybar_k - Ybar)^2 over the a = floor(n / b) full batches.
double batch_means_variance(std::span<const double> x, std::size_t batch_size = 0);
/// Overlapping batch means: n b / ((n - b)(n - b + 1)) * sum_j (Ybar_j - Ybar)^2 over all
/// n - b + 1 windows.
double overlapping_batch_means_variance(std::span<const double> x, std::size_t batch_size = 0);
/// Lugsail batch means 2 BM(b) - BM(floor(b / 3)); can be negative in very short runs.
double lugsail_batch_means_variance(std::span<const double> x, std::size_t batch_size = 0);

/// sigma^2 such that Var(mean of all M N draws) ~ sigma^2 / (M N). Batch-means methods pool the
/// chains' batches around the grand mean (so differences between chains count), with the same
/// batch size for every chain; the initial-sequence method is n * mcse_mean^2.
double asymptotic_variance(
    ChainsView x, AsymptoticVarianceMethod method = AsymptoticVarianceMethod::kInitialSequence,
    std::size_t batch_size = 0);

/// asymptotic_variance(plain) / asymptotic_variance(reduced): how many times fewer draws the
/// reduced (e.g. control-variate) estimator needs for the same error.
double variance_reduction_factor(
    ChainsView plain, ChainsView reduced,
    AsymptoticVarianceMethod method = AsymptoticVarianceMethod::kInitialSequence);

// ---- summaries ---------------------------------------------------------------------------------

/// Acceptance statistics (accept_stat__ per draw, chain-major): overall mean and per chain.
struct AcceptanceSummary {
  double mean = 0;
  double min_chain = 0;  ///< lowest per-chain mean
  double max_chain = 0;  ///< highest per-chain mean
  std::vector<double> per_chain;
};
AcceptanceSummary summarize_acceptance(ChainsView accept_stat);

/// One row of a CmdStan-style summary table.
struct ParameterSummary {
  double mean = 0, sd = 0, mcse_mean = 0, mcse_sd = 0;
  double q05 = 0, q50 = 0, q95 = 0;
  double ess_bulk = 0, ess_tail = 0, rhat = 0;
};
ParameterSummary summarize(ChainsView x);

}  // namespace sieve::mcmc
