#include "sieve/mcmc/models/linear_regression.h"

#include <cmath>
#include <numbers>

#include "sieve/core/error.h"
#include "sieve/core/rng.h"
#include "sieve/mcmc/target.h"

namespace sieve::mcmc {

LinearRegression::LinearRegression(Eigen::MatrixXd X, Eigen::VectorXd y, double noise_sd,
                                   RegressionPrior prior, double temperature)
    : X_(std::move(X)),
      y_(std::move(y)),
      noise_sd_(noise_sd),
      prior_(prior),
      temperature_(temperature) {
  SIEVE_CHECK(X_.rows() > 0 && X_.cols() > 0, "linreg: empty design matrix");
  SIEVE_CHECK(y_.size() == X_.rows(), "linreg: X has {} rows but y has {} entries", X_.rows(),
              y_.size());
  SIEVE_CHECK(X_.allFinite() && y_.allFinite(), "linreg: non-finite data");
  SIEVE_CHECK(noise_sd_ > 0, "linreg: noise_sd must be positive");
  SIEVE_CHECK(prior_.scale > 0, "linreg: prior scale must be positive");
  SIEVE_CHECK(prior_.kind != PriorKind::kStudentT || prior_.nu > 0, "linreg: nu must be positive");
  SIEVE_CHECK(temperature_ >= 0 && temperature_ <= 1, "linreg: temperature must be in [0, 1]");
  xtx_ = X_.transpose() * X_;
  xty_ = X_.transpose() * y_;
  yty_ = y_.squaredNorm();
}

double LinearRegression::log_likelihood(const Eigen::VectorXd& beta) const {
  const double n = double(X_.rows()), s2 = noise_sd_ * noise_sd_;
  return -0.5 * n * std::log(2 * std::numbers::pi * s2) - 0.5 * (y_ - X_ * beta).squaredNorm() / s2;
}

QuadraticForm LinearRegression::log_likelihood_quadratic() const {
  const double n = double(X_.rows()), s2 = noise_sd_ * noise_sd_;
  QuadraticForm q;
  q.c = -0.5 * n * std::log(2 * std::numbers::pi * s2) - 0.5 * yty_ / s2;
  q.a = xty_ / s2;
  q.B = -0.5 * xtx_ / s2;
  return q;
}

double LinearRegression::log_prior(const Eigen::VectorXd& beta) const {
  const double s = prior_.scale;
  double lp = 0;
  for (Eigen::Index j = 0; j < beta.size(); ++j) {
    const double b = beta[j];
    switch (prior_.kind) {
      case PriorKind::kGaussian:
        lp += -0.5 * std::log(2 * std::numbers::pi * s * s) - 0.5 * b * b / (s * s);
        break;
      case PriorKind::kStudentT: {
        const double nu = prior_.nu;
        lp += std::lgamma(0.5 * (nu + 1)) - std::lgamma(0.5 * nu) -
              0.5 * std::log(nu * std::numbers::pi * s * s) -
              0.5 * (nu + 1) * std::log1p(b * b / (nu * s * s));
        break;
      }
      case PriorKind::kLaplace:
        lp += -std::log(2 * s) - std::abs(b) / s;
        break;
    }
  }
  return lp;
}

double LinearRegression::log_density(const Eigen::VectorXd& beta) const {
  return temperature_ * log_likelihood(beta) + log_prior(beta);
}

double LinearRegression::log_density_and_gradient(const Eigen::VectorXd& beta,
                                                  Eigen::VectorXd& g) const {
  const double s2 = noise_sd_ * noise_sd_, s = prior_.scale;
  g = temperature_ * (xty_ - xtx_ * beta) / s2;
  for (Eigen::Index j = 0; j < beta.size(); ++j) {
    const double b = beta[j];
    switch (prior_.kind) {
      case PriorKind::kGaussian:
        g[j] -= b / (s * s);
        break;
      case PriorKind::kStudentT:
        g[j] -= (prior_.nu + 1) * b / (prior_.nu * s * s + b * b);
        break;
      case PriorKind::kLaplace:
        g[j] -= double((b > 0) - (b < 0)) / s;
        break;  // 0 at b = 0
    }
  }
  return log_density(beta);
}

double LinearRegression::log_density_gradient_hessian(const Eigen::VectorXd& beta,
                                                      Eigen::VectorXd& g,
                                                      Eigen::MatrixXd& h) const {
  const double s2 = noise_sd_ * noise_sd_, s = prior_.scale;
  h = -temperature_ * xtx_ / s2;
  for (Eigen::Index j = 0; j < beta.size(); ++j) {
    const double b = beta[j];
    switch (prior_.kind) {
      case PriorKind::kGaussian:
        h(j, j) -= 1 / (s * s);
        break;
      case PriorKind::kStudentT: {
        const double a = prior_.nu * s * s;
        h(j, j) -= (prior_.nu + 1) * (a - b * b) / ((a + b * b) * (a + b * b));
        break;
      }
      case PriorKind::kLaplace:
        break;  // zero curvature away from 0
    }
  }
  return log_density_and_gradient(beta, g);
}

std::vector<std::string> LinearRegression::parameter_names() const {
  return default_parameter_names(dim(), "beta");
}

LinearRegression LinearRegression::with_temperature(double t) const {
  return LinearRegression(X_, y_, noise_sd_, prior_, t);
}

void linear_regression_synthetic(Eigen::Index n, Eigen::Index p, double shift, double noise_sd,
                                 uint64_t seed, Eigen::MatrixXd& X, Eigen::VectorXd& y) {
  SIEVE_CHECK(n > 0 && p > 0, "linear_regression_synthetic: n and p must be positive");
  Rng rng(seed, 0);
  X.resize(n, p);
  for (Eigen::Index j = 0; j < p; ++j)
    for (Eigen::Index i = 0; i < n; ++i) X(i, j) = rng.normal();
  y = X * Eigen::VectorXd::Constant(p, shift);
  for (Eigen::Index i = 0; i < n; ++i) y[i] += noise_sd * rng.normal();
}

}  // namespace sieve::mcmc
