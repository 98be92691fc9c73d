// Preconditioned MALA with an adaptive preconditioner A.
//
// Proposal Y = X + (h/2) A grad log pi(X) + sqrt(h) A^{1/2} z. Warm-up adapts A in Stan's slow
// windows, either as the draws' covariance ("covariance", the usual adaptive-MALA choice) or as
// the inverse Fisher matrix E[grad grad']^{-1} ("fisher", Titsias 2023), and h by dual
// averaging towards target_accept; both are frozen for the stored draws.
#pragma once

#include <string>

#include "sieve/mcmc/samplers/langevin.h"

namespace sieve::mcmc {

struct PmalaSettings : RunSettings {
  double step_size = 0;  ///< initial h; 0 = d^{-1/3}
  bool adapt_step_size = true;
  double target_accept = 0.574;
  std::string preconditioner = "covariance";  ///< covariance | fisher | reference | laplace | none
  bool dense = true;                          ///< dense (true) or diagonal A
  bool laplace_init = true;  ///< covariance / fisher: start A at the Laplace covariance
  Eigen::MatrixXd sigma;     ///< initial / fixed A [d, d]; empty = Laplace or I
};

/// @brief Preconditioned MALA (see the file comment).
template <Target T>
Chain pmala(const T& target, const Eigen::VectorXd& init, const PmalaSettings& settings, Rng& rng) {
  detail::LangevinConfig c;
  c.name = "pmala";
  c.tuning = settings.step_size;
  c.adapt_tuning = settings.adapt_step_size;
  c.target_accept = settings.target_accept;
  c.preconditioner = settings.preconditioner;
  c.dense = settings.dense;
  c.sigma = settings.sigma;
  c.laplace_init = settings.laplace_init;
  detail::LangevinKernel kernel(c, settings);
  return detail::run_kernel(target, kernel, init, settings, rng, "pmala");
}

extern template Chain pmala<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&,
                                       const PmalaSettings&, Rng&);

}  // namespace sieve::mcmc
