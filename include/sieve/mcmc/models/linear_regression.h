// Linear regression with known noise and a non-conjugate prior (Student-t or Laplace), the model of
// the IMH paper's marginal-likelihood illustration (Liu, Dellaportas & Titsias 2024).
//
// y = X beta + eps, eps ~ N(0, noise_sd^2 I); independent priors beta_j ~ N(0, s^2), t_nu(0, s) or
// Laplace(0, s), all normalised so that log_density integrates to the evidence p(y). `temperature`
// t in [0, 1] gives the power posterior p(y | beta)^t p(beta) used by thermodynamic integration;
// the log likelihood is the quadratic c + a' beta + beta' B beta (log_likelihood_quadratic), so its
// expectation under a Gaussian is analytic. Shapes: X [n, p], y [n], beta [p].
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <vector>

namespace sieve::mcmc {

enum class PriorKind { kGaussian, kStudentT, kLaplace };

struct RegressionPrior {
  PriorKind kind = PriorKind::kStudentT;
  double scale = 1.0;
  double nu = 3.0;  ///< Student-t degrees of freedom
};

/// c + a' beta + beta' B beta.
struct QuadraticForm {
  double c = 0;
  Eigen::VectorXd a;
  Eigen::MatrixXd B;
  double operator()(const Eigen::VectorXd& x) const { return c + a.dot(x) + x.dot(B * x); }
};

class LinearRegression {
 public:
  LinearRegression(Eigen::MatrixXd X, Eigen::VectorXd y, double noise_sd,
                   RegressionPrior prior = {}, double temperature = 1.0);

  Eigen::Index dim() const { return X_.cols(); }
  double log_density(const Eigen::VectorXd& beta) const;
  double log_density_and_gradient(const Eigen::VectorXd& beta, Eigen::VectorXd& g) const;
  double log_density_gradient_hessian(const Eigen::VectorXd& beta, Eigen::VectorXd& g,
                                      Eigen::MatrixXd& h) const;
  std::vector<std::string> parameter_names() const;

  double log_likelihood(const Eigen::VectorXd& beta) const;
  double log_prior(const Eigen::VectorXd& beta) const;
  QuadraticForm log_likelihood_quadratic() const;
  /// The same model at another temperature.
  LinearRegression with_temperature(double t) const;
  double temperature() const { return temperature_; }
  const RegressionPrior& prior() const { return prior_; }
  double noise_sd() const { return noise_sd_; }
  const Eigen::MatrixXd& X() const { return X_; }
  const Eigen::VectorXd& y() const { return y_; }

 private:
  Eigen::MatrixXd X_;
  Eigen::VectorXd y_;
  double noise_sd_;
  RegressionPrior prior_;
  double temperature_;
  Eigen::MatrixXd xtx_;
  Eigen::VectorXd xty_;
  double yty_ = 0;
};

/// Deterministic synthetic data with prior-likelihood conflict: X [n, p] standard normal,
/// beta_true = shift * 1, y = X beta_true + noise_sd * N(0, 1), all from Rng(seed).
void linear_regression_synthetic(Eigen::Index n, Eigen::Index p, double shift, double noise_sd,
                                 uint64_t seed, Eigen::MatrixXd& X, Eigen::VectorXd& y);

}  // namespace sieve::mcmc
