// Bayesian logistic regression: y_i ~ Bernoulli(sigmoid(x_i' beta)), beta ~ N(0, prior_sd^2 I).
//
// The design matrix is used as given (the CSV loader in data.h adds the intercept column and
// standardises covariates, as Girolami & Calderhead 2011 and loadBinaryClass.m do). Gradient,
// Hessian -X' W X - I / prior_sd^2 with W = diag(p (1 - p)), metric = -Hessian (the Fisher
// information equals the observed one for the canonical link), and the prior as Gaussian
// reference. Shapes: X [n, p], y [n] in {0, 1}, beta [p].
#pragma once

#include <Eigen/Dense>
#include <string>
#include <vector>

namespace sieve::mcmc {

class LogisticRegression {
 public:
  /// @throws sieve::Error on shape mismatch, labels outside {0, 1}, or prior_sd <= 0.
  LogisticRegression(Eigen::MatrixXd X, Eigen::VectorXd y, double prior_sd = 10.0,
                     std::vector<std::string> names = {});

  Eigen::Index dim() const { return X_.cols(); }
  double log_density(const Eigen::VectorXd& beta) const;
  double log_density_and_gradient(const Eigen::VectorXd& beta, Eigen::VectorXd& g) const;
  double log_density_gradient_hessian(const Eigen::VectorXd& beta, Eigen::VectorXd& g,
                                      Eigen::MatrixXd& h) const;
  void metric(const Eigen::VectorXd& beta, Eigen::MatrixXd& m) const;
  void gaussian_reference(Eigen::VectorXd& mean, Eigen::MatrixXd& cov) const;
  std::vector<std::string> parameter_names() const;

  const Eigen::MatrixXd& X() const { return X_; }
  const Eigen::VectorXd& y() const { return y_; }
  double prior_sd() const { return prior_sd_; }

 private:
  Eigen::MatrixXd X_;
  Eigen::VectorXd y_;
  double prior_sd_;
  std::vector<std::string> names_;
};

}  // namespace sieve::mcmc
