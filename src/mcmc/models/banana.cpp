#include "sieve/mcmc/models/banana.h"

#include <cmath>
#include <numbers>

#include "sieve/core/error.h"

namespace sieve::mcmc {

namespace {
const double kLog2Pi = std::log(2 * std::numbers::pi);
}

Banana::Banana(Eigen::Index dim, double b) : dim_(dim), b_(b) {
  SIEVE_CHECK(dim >= 2, "banana: dim must be >= 2, got {}", dim);
  SIEVE_CHECK(std::isfinite(b), "banana: b must be finite");
}

double Banana::log_density(const Eigen::VectorXd& x) const {
  const double u = x[1] - b_ * (x[0] * x[0] - 100);
  // N(x1 | 0, 100) N(u | 0, 1) prod N(x_i | 0, 1); the map z -> x has unit Jacobian.
  return -0.5 * double(dim_) * kLog2Pi - 0.5 * std::log(100.0) - x[0] * x[0] / 200 - 0.5 * u * u -
         0.5 * x.tail(dim_ - 2).squaredNorm();
}

double Banana::log_density_and_gradient(const Eigen::VectorXd& x, Eigen::VectorXd& g) const {
  const double u = x[1] - b_ * (x[0] * x[0] - 100);
  g = -x;
  g[0] = -x[0] / 100 + 2 * b_ * x[0] * u;
  g[1] = -u;
  return log_density(x);
}

double Banana::log_density_gradient_hessian(const Eigen::VectorXd& x, Eigen::VectorXd& g,
                                            Eigen::MatrixXd& h) const {
  const double u = x[1] - b_ * (x[0] * x[0] - 100);
  h = -Eigen::MatrixXd::Identity(dim_, dim_);
  h(0, 0) = -1.0 / 100 - 4 * b_ * b_ * x[0] * x[0] + 2 * b_ * u;
  h(0, 1) = h(1, 0) = 2 * b_ * x[0];
  return log_density_and_gradient(x, g);
}

void Banana::metric(const Eigen::VectorXd& x, Eigen::MatrixXd& m) const {
  m = Eigen::MatrixXd::Identity(dim_, dim_);
  m(0, 0) = 1.0 / 100 + 4 * b_ * b_ * x[0] * x[0];
  m(0, 1) = m(1, 0) = -2 * b_ * x[0];
}

Funnel::Funnel(Eigen::Index dim) : dim_(dim) {
  SIEVE_CHECK(dim >= 2, "funnel: dim must be >= 2, got {}", dim);
}

double Funnel::log_density(const Eigen::VectorXd& x) const {
  const double v = x[0], k = double(dim_ - 1);
  // N(v | 0, 9) prod N(x_i | 0, e^v).
  return -0.5 * double(dim_) * kLog2Pi - std::log(3.0) - v * v / 18 - 0.5 * k * v -
         0.5 * std::exp(-v) * x.tail(dim_ - 1).squaredNorm();
}

double Funnel::log_density_and_gradient(const Eigen::VectorXd& x, Eigen::VectorXd& g) const {
  const double v = x[0], ev = std::exp(-v), k = double(dim_ - 1);
  g.resize(dim_);
  g[0] = -v / 9 - 0.5 * k + 0.5 * ev * x.tail(dim_ - 1).squaredNorm();
  g.tail(dim_ - 1) = -ev * x.tail(dim_ - 1);
  return log_density(x);
}

double Funnel::log_density_gradient_hessian(const Eigen::VectorXd& x, Eigen::VectorXd& g,
                                            Eigen::MatrixXd& h) const {
  const double v = x[0], ev = std::exp(-v);
  h = Eigen::MatrixXd::Zero(dim_, dim_);
  h(0, 0) = -1.0 / 9 - 0.5 * ev * x.tail(dim_ - 1).squaredNorm();
  h.col(0).tail(dim_ - 1) = ev * x.tail(dim_ - 1);
  h.row(0).tail(dim_ - 1) = ev * x.tail(dim_ - 1).transpose();
  h.diagonal().tail(dim_ - 1).setConstant(-ev);
  return log_density_and_gradient(x, g);
}

void Funnel::metric(const Eigen::VectorXd& x, Eigen::MatrixXd& m) const {
  m = Eigen::MatrixXd::Identity(dim_, dim_) * std::exp(-x[0]);
  m(0, 0) = 1.0 / 9 + 0.5 * double(dim_ - 1);
}

std::vector<std::string> Funnel::parameter_names() const {
  std::vector<std::string> names{"v"};
  for (Eigen::Index i = 1; i < dim_; ++i) names.push_back("x." + std::to_string(i));
  return names;
}

}  // namespace sieve::mcmc
