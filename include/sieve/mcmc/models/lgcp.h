// Log-Gaussian Cox process on a grid x grid lattice (Moller, Syversveen & Waagepetersen 1998;
// Girolami & Calderhead 2011 setup): latent field x ~ N(mu 1, C), C_ij = sigma2 exp(-|c_i - c_j|
// / (grid beta)), counts y_i ~ Poisson(m exp(x_i)) with cell area m = 1 / grid^2.
// Gradient y - m e^x - C^{-1}(x - mu); Hessian -diag(m e^x) - C^{-1}; the G&C metric
// diag(m exp(mu + C_ii)) + C^{-1}; the prior N(mu 1, C) is the Gaussian reference (pCN, GI).
// Dimension grid^2 (G&C: 64 x 64 = 4096); memory two dense [d, d] matrices, O(d^2) per gradient.
// Without data, counts are simulated from the prior with Rng(seed) (deterministic).
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <vector>

namespace sieve::mcmc {

struct LgcpSettings {
  int grid = 32;
  double sigma2 = 1.91;
  double beta = 1.0 / 33.0;
  double mu = 0;          ///< NaN-free default set by the constructor: log(126) - sigma2 / 2
  bool mu_given = false;  ///< use `mu` instead of the G&C default
};

class LogGaussianCoxProcess {
 public:
  /// counts: [grid^2], row-major cells; empty = simulate from the prior with Rng(seed).
  explicit LogGaussianCoxProcess(const LgcpSettings& s, Eigen::VectorXd counts = {},
                                 uint64_t seed = 1);

  Eigen::Index dim() const { return counts_.size(); }
  double log_density(const Eigen::VectorXd& x) const;
  double log_density_and_gradient(const Eigen::VectorXd& x, Eigen::VectorXd& g) const;
  double log_density_gradient_hessian(const Eigen::VectorXd& x, Eigen::VectorXd& g,
                                      Eigen::MatrixXd& h) const;
  void metric(const Eigen::VectorXd& x, Eigen::MatrixXd& m) const;
  void gaussian_reference(Eigen::VectorXd& mean, Eigen::MatrixXd& cov) const;

  const Eigen::VectorXd& counts() const { return counts_; }
  const Eigen::VectorXd& latent_truth() const { return truth_; }  ///< empty unless simulated
  double prior_mean() const { return mu_; }

 private:
  Eigen::VectorXd counts_, truth_;
  Eigen::MatrixXd cov_, precision_;
  double mu_, area_;
  Eigen::VectorXd metric_diag_;
};

}  // namespace sieve::mcmc
