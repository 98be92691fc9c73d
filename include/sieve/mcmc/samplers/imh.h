// Independent Metropolis-Hastings with a fixed Gaussian or Student-t proposal q.
//
// Y ~ q, accepted with min(1, w(Y) / w(X)), w = pi / q. q = N(mean, cov) or t_nu with covariance
// cov (heavier tails keep pi / q bounded); without mean/cov, q is the Laplace approximation found
// from the initial point, and the chain starts at its mode (from a tail point, where pi / q is
// huge, an independence chain would reject every proposal). The proposals and acceptance probabilities are stored for the IMH control
// variate with known E_q[F] (Liu, Dellaportas & Titsias 2024). Registry names: imh (Gaussian) and
// imh-t (proposal = t).
#pragma once

#include <string>

#include "sieve/mcmc/samplers/independent.h"

namespace sieve::mcmc {

struct ImhSettings : RunSettings {
  std::string proposal = "gaussian";  ///< gaussian | t
  double nu = 5;                      ///< Student-t degrees of freedom (> 2)
  Eigen::VectorXd mean;               ///< empty = Laplace mode
  Eigen::MatrixXd cov;                ///< covariance of q; empty = Laplace covariance
};

/// @brief Independent Metropolis with a fixed q (see the file comment).
template <Target T>
Chain imh(const T& target, const Eigen::VectorXd& init, const ImhSettings& settings, Rng& rng) {
  detail::IndependentConfig c;
  c.name = "imh";
  c.proposal = settings.proposal;
  c.nu = settings.nu;
  c.mean = settings.mean;
  c.cov = settings.cov;
  detail::IndependentKernel kernel(c, settings);
  return detail::run_kernel(target, kernel, init, settings, rng, "imh");
}

extern template Chain imh<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&, const ImhSettings&,
                                     Rng&);

}  // namespace sieve::mcmc
