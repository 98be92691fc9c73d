// Multivariate Gaussian target N(mean, cov) with normalised log density, gradient, Hessian,
// metric (the precision) and itself as Gaussian reference; plus the ill-conditioned test family.
//
// The Gaussian is the oracle target for Gaussian-invariant samplers (research/mcmc.md §1.3, §5.4):
// GI proposals built from its (mean, cov) accept every move. ill_conditioned_gaussian follows
// Neal's 100-D example: standard deviations log-spaced so max/min variance = condition_number,
// optionally rotated by a fixed random orthogonal matrix.
#pragma once

#include <Eigen/Dense>
#include <cstdint>

namespace sieve::mcmc {

class Gaussian {
 public:
  /// @throws sieve::Error when shapes differ or cov is not symmetric positive definite.
  Gaussian(Eigen::VectorXd mean, Eigen::MatrixXd cov);

  Eigen::Index dim() const { return mean_.size(); }
  double log_density(const Eigen::VectorXd& x) const;
  double log_density_and_gradient(const Eigen::VectorXd& x, Eigen::VectorXd& g) const;
  double log_density_gradient_hessian(const Eigen::VectorXd& x, Eigen::VectorXd& g,
                                      Eigen::MatrixXd& h) const;
  void metric(const Eigen::VectorXd& x, Eigen::MatrixXd& m) const { m = precision_; }
  void gaussian_reference(Eigen::VectorXd& mean, Eigen::MatrixXd& cov) const {
    mean = mean_;
    cov = cov_;
  }

  const Eigen::VectorXd& mean() const { return mean_; }
  const Eigen::MatrixXd& cov() const { return cov_; }
  const Eigen::MatrixXd& precision() const { return precision_; }

 private:
  Eigen::VectorXd mean_;
  Eigen::MatrixXd cov_, precision_;
  double log_norm_ = 0;  // -d/2 log(2 pi) - 1/2 log det cov
};

/// Zero-mean Gaussian whose variances are log-spaced in [1 / condition_number, 1]; when `rotate`,
/// cov = Q diag Q' with Q a random orthogonal matrix from Rng(seed).
Gaussian ill_conditioned_gaussian(Eigen::Index dim, double condition_number, bool rotate = false,
                                  uint64_t seed = 1);

}  // namespace sieve::mcmc
