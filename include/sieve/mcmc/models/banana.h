// Stress targets with exact moments: Haario et al.'s banana and Neal's funnel.
//
// Banana (Haario, Saksman & Tamminen 1999): z ~ N(0, diag(100, 1, ..., 1)), x = z except
// x_2 = z_2 + b (z_1^2 - 100). E[x] = 0, Var(x_1) = 100, Var(x_2) = 1 + 2e4 b^2 (research §4.5).
// Funnel (Neal 2003): v ~ N(0, 9), x_i | v ~ N(0, e^v), i = 1..d-1; parameter order (v, x).
// E[v] = 0, Var(v) = 9, E[x_i] = 0, Var(x_i) = E[e^v] = e^{4.5}. Both normalised, with Hessians
// and, as metric, the Fisher information of their generative (hierarchical) form, which is
// positive definite everywhere (Girolami & Calderhead 2011 use the same device for the funnel-like
// stochastic-volatility and hierarchical models); the Hessian is indefinite in parts of both.
#pragma once

#include <Eigen/Dense>
#include <string>
#include <vector>

namespace sieve::mcmc {

class Banana {
 public:
  explicit Banana(Eigen::Index dim = 2, double b = 0.03);
  Eigen::Index dim() const { return dim_; }
  double log_density(const Eigen::VectorXd& x) const;
  double log_density_and_gradient(const Eigen::VectorXd& x, Eigen::VectorXd& g) const;
  double log_density_gradient_hessian(const Eigen::VectorXd& x, Eigen::VectorXd& g,
                                      Eigen::MatrixXd& h) const;
  /// [[1/100 + 4 b^2 x_1^2, -2 b x_1], [-2 b x_1, 1]] (+ I on the other coordinates).
  void metric(const Eigen::VectorXd& x, Eigen::MatrixXd& m) const;
  double b() const { return b_; }

 private:
  Eigen::Index dim_;
  double b_;
};

class Funnel {
 public:
  explicit Funnel(Eigen::Index dim = 10);
  Eigen::Index dim() const { return dim_; }
  double log_density(const Eigen::VectorXd& x) const;
  double log_density_and_gradient(const Eigen::VectorXd& x, Eigen::VectorXd& g) const;
  double log_density_gradient_hessian(const Eigen::VectorXd& x, Eigen::VectorXd& g,
                                      Eigen::MatrixXd& h) const;
  /// diag(1/9 + (d - 1) / 2, e^{-v}, ..., e^{-v}).
  void metric(const Eigen::VectorXd& x, Eigen::MatrixXd& m) const;
  std::vector<std::string> parameter_names() const;

 private:
  Eigen::Index dim_;
};

}  // namespace sieve::mcmc
