// Simplified manifold MALA (Girolami & Calderhead 2011) with a position-dependent metric G(x).
//
// Proposal Y ~ N(X + (h/2) G(X)^{-1} grad log pi(X), h G(X)^{-1}); G is the target's metric, else
// its clipped negative Hessian (finite differences when the target has no Hessian). The
// Christoffel-symbol drift terms of full mMALA are omitted (the "simplified" variant). Warm-up:
// dual averaging of log h towards target_accept, then frozen.
#pragma once

#include "sieve/mcmc/samplers/manifold.h"

namespace sieve::mcmc {

struct MmalaSettings : RunSettings {
  double step_size = 1.0;  ///< initial / fixed h
  bool adapt_step_size = true;
  double target_accept = 0.574;
  double metric_floor = 1e-6;  ///< eigenvalue floor when G comes from the Hessian
};

/// @brief Simplified mMALA (see the file comment).
template <Target T>
Chain mmala(const T& target, const Eigen::VectorXd& init, const MmalaSettings& settings, Rng& rng) {
  detail::ManifoldConfig c;
  c.name = "mmala";
  c.tuning = settings.step_size;
  c.adapt_tuning = settings.adapt_step_size;
  c.target_accept = settings.target_accept;
  c.metric_floor = settings.metric_floor;
  detail::ManifoldKernel kernel(c, settings);
  return detail::run_kernel(target, kernel, init, settings, rng, "mmala");
}

extern template Chain mmala<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&,
                                       const MmalaSettings&, Rng&);

}  // namespace sieve::mcmc
