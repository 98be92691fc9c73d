// Gaussian-invariant MALA (Titsias, Alexopoulos, Liu & Dellaportas 2025, eq. 8).
//
// Proposal Y ~ N(X + gamma Sigma grad log pi(X), (2 gamma - gamma^2) Sigma), gamma in (0, 2),
// with the ordinary MH ratio. It is reversible w.r.t. every N(mu, Sigma), so on a Gaussian target
// with covariance Sigma every proposal is accepted and the chain is the AR(1) process
// mu + (1 - gamma)(X - mu) + noise. Warm-up: gamma by dual averaging of logit(gamma / gamma_max)
// towards target_accept (a user choice: the paper shows the optimal rate depends on how Gaussian
// the target is), Sigma started at the Laplace covariance and moment-matched on Stan's slow
// windows ("covariance"), or the inverse Fisher matrix ("fisher"); both then frozen.
// adapted.mu is the mean of the second half of warm-up (used by the exact-Gaussian control
// variate).
#pragma once

#include <string>

#include "sieve/mcmc/samplers/langevin.h"

namespace sieve::mcmc {

struct GiMalaSettings : RunSettings {
  double gamma = 0.5;  ///< initial / fixed gamma in (0, 2)
  bool adapt_gamma = true;
  double gamma_max = 1.0;      ///< adaptation range (0, gamma_max]; > 1 allows over-relaxation
  double target_accept = 0.7;  ///< our default; see docs/methods/mcmc.md
  std::string sigma_adaptation =
      "covariance";  ///< covariance | fisher | reference | laplace | none
  bool dense = true;
  bool laplace_init = true;  ///< covariance / fisher: start Sigma at the Laplace covariance
  Eigen::MatrixXd sigma;     ///< initial / fixed Sigma [d, d]; empty = Laplace or I
  Eigen::VectorXd mu;        ///< Gaussian mean reported for control variates; empty = adapted
};

/// @brief GI-MALA (see the file comment).
template <Target T>
Chain gi_mala(const T& target, const Eigen::VectorXd& init, const GiMalaSettings& settings,
              Rng& rng) {
  detail::LangevinConfig c;
  c.name = "gi-mala";
  c.scaling = detail::LangevinScaling::kGaussianInvariant;
  c.tuning = settings.gamma;
  c.adapt_tuning = settings.adapt_gamma;
  c.target_accept = settings.target_accept;
  c.gamma_max = settings.gamma_max;
  c.preconditioner = settings.sigma_adaptation;
  c.dense = settings.dense;
  c.sigma = settings.sigma;
  c.mu = settings.mu;
  c.laplace_init = settings.laplace_init;
  detail::LangevinKernel kernel(c, settings);
  return detail::run_kernel(target, kernel, init, settings, rng, "gi-mala");
}

extern template Chain gi_mala<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&,
                                         const GiMalaSettings&, Rng&);

}  // namespace sieve::mcmc
