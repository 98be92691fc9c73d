// Gaussian-process regression hyperparameters: theta = (log lengthscale, log signal sd, log noise
// sd) of a squared-exponential kernel, marginal likelihood by Cholesky, independent N(m, s^2)
// priors on the three log-parameters (the IMH paper's GP illustration is of this kind; its exact
// setup is unconfirmed). Gradient: 1/2 tr((alpha alpha' - K^{-1}) dK/dtheta_j), alpha = K^{-1} y.
// A Cholesky failure gives log density -inf. Shapes: X [n, p], y [n], theta [3]; O(n^3) per call.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <vector>

namespace sieve::mcmc {

class GpRegression {
 public:
  GpRegression(Eigen::MatrixXd X, Eigen::VectorXd y, double prior_mean = 0.0, double prior_sd = 1.5,
               double jitter = 1e-8);

  Eigen::Index dim() const { return 3; }
  double log_density(const Eigen::VectorXd& theta) const;
  double log_density_and_gradient(const Eigen::VectorXd& theta, Eigen::VectorXd& g) const;
  std::vector<std::string> parameter_names() const {
    return {"log_lengthscale", "log_signal_sd", "log_noise_sd"};
  }

 private:
  double evaluate(const Eigen::VectorXd& theta, Eigen::VectorXd* g) const;
  Eigen::MatrixXd sqdist_;  // [n, n] squared distances between inputs
  Eigen::VectorXd y_;
  double prior_mean_, prior_sd_, jitter_;
};

/// Deterministic 1-D data: x_i ~ U(0, 10), y_i = sin(x_i) + 0.3 N(0, 1) from Rng(seed).
void gp_regression_synthetic(Eigen::Index n, uint64_t seed, Eigen::MatrixXd& X, Eigen::VectorXd& y);

}  // namespace sieve::mcmc
