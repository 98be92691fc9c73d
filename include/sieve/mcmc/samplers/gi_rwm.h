// Zero-order Gaussian-invariant random walk (Titsias et al. 2025, eq. 7).
//
// Proposal Y ~ N((1 - gamma) X + gamma mu, (2 gamma - gamma^2) Sigma), gamma in (0, 2): an AR(1)
// move reversible w.r.t. N(mu, Sigma) (pCN for gamma <= 1, over-relaxation for gamma > 1, an
// independence sampler at gamma = 1). Acceptance uses only log pi - log N(. | mu, Sigma). On the
// target N(mu, Sigma) every move is accepted and a'X has asymptotic variance
// a' Sigma a (2 - gamma) / gamma. Warm-up: (mu, Sigma) start at the Laplace approximation (the
// chain at its mode) or at the given values, are moment-matched on the slow-phase draws
// (GaussianMomentAdapter in driver.h), and gamma is dual-averaged; all are frozen afterwards.
#pragma once

#include "sieve/mcmc/samplers/ar1.h"

namespace sieve::mcmc {

struct GiRwmSettings : RunSettings {
  double gamma = 0.5;  ///< initial / fixed gamma in (0, 2)
  bool adapt_gamma = true;
  double gamma_max = 1.0;
  double target_accept = 0.5;  ///< our default; see docs/methods/mcmc.md
  bool adapt_gaussian = true;  ///< learn (mu, Sigma) during warm-up
  bool laplace_init = true;    ///< start (mu, Sigma) and the chain at the Laplace approximation
  bool dense = true;
  /// Inflation of the Laplace / adapted Sigma: GI-RWM, like pCN and independence samplers, mixes
  /// poorly in tails heavier than N(mu, Sigma); > 1 trades acceptance for tail coverage.
  double sigma_scale = 1.0;
  Eigen::VectorXd mu;     ///< initial / fixed mu; empty = Laplace mode or initial point
  Eigen::MatrixXd sigma;  ///< initial / fixed Sigma; empty = Laplace covariance or I
};

/// @brief GI-RWM (see the file comment).
template <Target T>
Chain gi_rwm(const T& target, const Eigen::VectorXd& init, const GiRwmSettings& settings,
             Rng& rng) {
  detail::Ar1Config c;
  c.name = "gi-rwm";
  c.tuning = settings.gamma;
  c.adapt_tuning = settings.adapt_gamma;
  c.target_accept = settings.target_accept;
  c.gamma_max = settings.gamma_max;
  c.adapt_gaussian = settings.adapt_gaussian;
  c.laplace_init = settings.laplace_init;
  c.dense = settings.dense;
  c.sigma_scale = settings.sigma_scale;
  c.mu = settings.mu;
  c.sigma = settings.sigma;
  detail::Ar1Kernel kernel(c, settings);
  return detail::run_kernel(target, kernel, init, settings, rng, "gi-rwm");
}

extern template Chain gi_rwm<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&,
                                        const GiRwmSettings&, Rng&);

}  // namespace sieve::mcmc
