// Metropolis-adjusted Langevin algorithm (Roberts & Tweedie 1996), identity preconditioner.
//
// Proposal Y = X + (h/2) grad log pi(X) + sqrt(h) z. Warm-up: dual averaging of log h towards
// target_accept (default 0.574, Roberts & Rosenthal 1998), frozen afterwards.
#pragma once

#include "sieve/mcmc/samplers/langevin.h"

namespace sieve::mcmc {

struct MalaSettings : RunSettings {
  double step_size = 0;  ///< initial h; 0 = d^{-1/3}
  bool adapt_step_size = true;
  double target_accept = 0.574;
};

/// @brief MALA with a fixed identity preconditioner and an adapted step size.
template <Target T>
Chain mala(const T& target, const Eigen::VectorXd& init, const MalaSettings& settings, Rng& rng) {
  detail::LangevinConfig c;
  c.name = "mala";
  c.tuning = settings.step_size;
  c.adapt_tuning = settings.adapt_step_size;
  c.target_accept = settings.target_accept;
  detail::LangevinKernel kernel(c, settings);
  return detail::run_kernel(target, kernel, init, settings, rng, "mala");
}

extern template Chain mala<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&, const MalaSettings&,
                                      Rng&);

}  // namespace sieve::mcmc
