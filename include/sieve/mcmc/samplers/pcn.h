// Preconditioned Crank-Nicolson (Cotter, Roberts, Stuart & White 2013).
//
// Proposal Y = m + sqrt(1 - beta^2) (X - m) + beta L z with N(m, C) a Gaussian reference (the
// prior of a latent Gaussian model: the target's gaussian_reference() unless mean/cov are set);
// acceptance uses log pi - log N(. | m, C), so it is dimension-robust when pi has a density
// w.r.t. the reference. Warm-up: dual averaging of logit(beta) towards target_accept.
#pragma once

#include "sieve/mcmc/samplers/ar1.h"

namespace sieve::mcmc {

struct PcnSettings : RunSettings {
  double beta = 0.5;  ///< initial / fixed beta in (0, 1]
  bool adapt_beta = true;
  double target_accept = 0.25;
  Eigen::VectorXd mean;  ///< reference mean; empty = target's reference
  Eigen::MatrixXd cov;   ///< reference covariance; empty = target's reference
};

/// @brief pCN (see the file comment); adapted.gamma holds beta.
template <Target T>
Chain pcn(const T& target, const Eigen::VectorXd& init, const PcnSettings& settings, Rng& rng) {
  detail::Ar1Config c;
  c.name = "pcn";
  c.pcn = true;
  c.tuning = settings.beta;
  c.adapt_tuning = settings.adapt_beta;
  c.target_accept = settings.target_accept;
  c.adapt_gaussian = false;
  c.mu = settings.mean;
  c.sigma = settings.cov;
  detail::Ar1Kernel kernel(c, settings);
  return detail::run_kernel(target, kernel, init, settings, rng, "pcn");
}

extern template Chain pcn<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&, const PcnSettings&,
                                     Rng&);

}  // namespace sieve::mcmc
