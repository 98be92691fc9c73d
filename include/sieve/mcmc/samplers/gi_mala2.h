// Second-order (Hessian / manifold) Gaussian-invariant MALA (Titsias et al. 2025, eq. 9).
//
// Proposal Y ~ N(X + gamma A_X grad log pi(X), (2 gamma - gamma^2) A_X) with A_x = G(x)^{-1}: the
// target's metric (manifold variant) or the negative inverse Hessian with eigenvalues clipped at
// metric_floor (Hessian variant; finite differences when the target has no Hessian). A_x equals
// Sigma on a Gaussian target, so every proposal is accepted there. Needs neither mu nor Sigma.
// Warm-up: gamma by dual averaging of logit(gamma / gamma_max) towards target_accept, then frozen.
#pragma once

#include "sieve/mcmc/samplers/manifold.h"

namespace sieve::mcmc {

struct GiMala2Settings : RunSettings {
  double gamma = 0.5;  ///< initial / fixed gamma in (0, 2)
  bool adapt_gamma = true;
  double gamma_max = 1.0;
  double target_accept = 0.7;
  double metric_floor = 1e-6;
  Eigen::VectorXd mu;  ///< Gaussian mean reported for control variates; empty = adapted
};

/// @brief Second-order GI-MALA (see the file comment).
template <Target T>
Chain gi_mala2(const T& target, const Eigen::VectorXd& init, const GiMala2Settings& settings,
               Rng& rng) {
  detail::ManifoldConfig c;
  c.name = "gi-mala2";
  c.scaling = detail::LangevinScaling::kGaussianInvariant;
  c.tuning = settings.gamma;
  c.adapt_tuning = settings.adapt_gamma;
  c.target_accept = settings.target_accept;
  c.gamma_max = settings.gamma_max;
  c.metric_floor = settings.metric_floor;
  c.mu = settings.mu;
  detail::ManifoldKernel kernel(c, settings);
  return detail::run_kernel(target, kernel, init, settings, rng, "gi-mala2");
}

extern template Chain gi_mala2<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&,
                                          const GiMala2Settings&, Rng&);

}  // namespace sieve::mcmc
