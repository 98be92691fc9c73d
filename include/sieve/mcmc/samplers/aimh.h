// Adaptive independent Metropolis (Liu, Dellaportas & Titsias 2024, illustration 2).
//
// During warm-up q is moved towards the target by moment matching (the Gaussian minimising
// KL(pi || q); Student-t with matched covariance), starting from the Laplace approximation (chain
// started at its mode) or mean/cov when given: at the ends of Stan's slow windows, once 10 (d + 1)
// moves were accepted, the moments of all slow-phase draws, shrunk towards the current q
// (GaussianMomentAdapter in driver.h). During warm-up a fraction warmup_local of the moves are
// local MALA moves preconditioned by q (pi-invariant, so the mixture is too), which keep the
// chain exploring while q is still poor. q is frozen and only independence moves are used for the
// stored draws. The paper states only that q is adapted to reduce its KL divergence to pi; this
// algorithm is our choice.
#pragma once

#include <string>

#include "sieve/mcmc/samplers/independent.h"

namespace sieve::mcmc {

struct AimhSettings : RunSettings {
  std::string proposal = "gaussian";  ///< gaussian | t
  double nu = 5;
  bool laplace_init = true;  ///< start at the Laplace approximation (else N(init, I))
  double cov_scale = 1.0;    ///< inflation of the moment-matched covariance
  double warmup_local = 0.5;    ///< probability of a local MALA move per warm-up iteration
  double local_accept = 0.574;  ///< acceptance rate the local moves aim at
  bool dense = true;
  Eigen::VectorXd mean;  ///< initial q mean
  Eigen::MatrixXd cov;   ///< initial q covariance
};

/// @brief Adaptive independent Metropolis (see the file comment).
template <Target T>
Chain aimh(const T& target, const Eigen::VectorXd& init, const AimhSettings& settings, Rng& rng) {
  detail::IndependentConfig c;
  c.name = "aimh";
  c.proposal = settings.proposal;
  c.nu = settings.nu;
  c.adapt = true;
  c.laplace_init = settings.laplace_init;
  c.cov_scale = settings.cov_scale;
  c.warmup_local = settings.warmup_local;
  c.local_accept = settings.local_accept;
  c.dense = settings.dense;
  c.mean = settings.mean;
  c.cov = settings.cov;
  detail::IndependentKernel kernel(c, settings);
  return detail::run_kernel(target, kernel, init, settings, rng, "aimh");
}

extern template Chain aimh<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&, const AimhSettings&,
                                      Rng&);

}  // namespace sieve::mcmc
