// Laplace approximation N(mode, (-Hessian at mode)^{-1}) by damped Newton ascent.
//
// Used to initialise Gaussian proposals (imh, aimh, gi-rwm with laplace_init). Newton directions
// use the clipped negative Hessian (analytic when the target has one, else finite differences of
// the gradient), with backtracking so every accepted step increases log pi.
#pragma once

#include <Eigen/Dense>
#include <cmath>
#include <cstdint>

#include "sieve/core/error.h"
#include "sieve/mcmc/target.h"

namespace sieve::mcmc {

struct LaplaceSettings {
  int max_iterations = 200;
  double gradient_tolerance = 1e-8;  ///< stop when |grad|_inf <= tol * max(1, |log pi|)
  double metric_floor = 1e-8;        ///< eigenvalue floor of -Hessian
};

struct LaplaceApproximation {
  Eigen::VectorXd mode;
  Eigen::MatrixXd cov;  ///< inverse of the clipped -Hessian at the mode
  double log_density = 0;
  int iterations = 0;
  bool converged = false;
  int64_t gradient_evals = 0;
};

/// (-H)^{-1} rhs, with -H's eigenvalues clipped at `floor` only when it is not positive definite
/// (the eigen decomposition is the expensive path, O(10 d^3)).
inline Eigen::MatrixXd newton_direction(const Eigen::MatrixXd& h, const Eigen::MatrixXd& rhs,
                                        double floor) {
  Eigen::MatrixXd neg_h = -h;
  Eigen::LLT<Eigen::MatrixXd> llt(neg_h);
  if (llt.info() == Eigen::Success && llt.matrixLLT().diagonal().minCoeff() > std::sqrt(floor))
    return llt.solve(rhs);
  clip_to_positive_definite(neg_h, floor);
  return neg_h.llt().solve(rhs);
}

/// @brief Finds a mode from `init` and the Gaussian approximation there. Throws when log pi is
/// not finite at init.
template <Target T>
LaplaceApproximation laplace_approximation(const T& t, const Eigen::VectorXd& init,
                                           const LaplaceSettings& s = {}) {
  LaplaceApproximation r;
  Eigen::VectorXd x = init, g, g_try;
  Eigen::MatrixXd h;
  double lp = log_density_gradient_hessian(t, x, g, h, &r.gradient_evals);
  SIEVE_CHECK(std::isfinite(lp), "laplace_approximation: log density not finite at init");
  for (r.iterations = 0; r.iterations < s.max_iterations; ++r.iterations) {
    if (g.cwiseAbs().maxCoeff() <= s.gradient_tolerance * std::max(1.0, std::abs(lp))) {
      r.converged = true;
      break;
    }
    const Eigen::VectorXd dir = newton_direction(h, g, s.metric_floor);
    double step = 1.0, lp_try = -std::numeric_limits<double>::infinity();
    Eigen::VectorXd x_try;
    for (int k = 0; k < 60; ++k, step *= 0.5) {
      x_try = x + step * dir;
      lp_try = t.log_density(x_try);
      if (std::isfinite(lp_try) && lp_try >= lp) break;
    }
    if (!(std::isfinite(lp_try) && lp_try >= lp)) break;  // no ascent possible: at a mode
    const bool tiny =
        (x_try - x).cwiseAbs().maxCoeff() <= 1e-14 * std::max(1.0, x.cwiseAbs().maxCoeff());
    x = x_try;
    lp = log_density_gradient_hessian(t, x, g, h, &r.gradient_evals);
    if (tiny) {
      r.converged = true;
      break;
    }
  }
  r.mode = x;
  r.log_density = lp;
  r.cov = newton_direction(h, Eigen::MatrixXd::Identity(x.size(), x.size()), s.metric_floor);
  r.cov = (0.5 * (r.cov + r.cov.transpose())).eval();
  return r;
}

}  // namespace sieve::mcmc
