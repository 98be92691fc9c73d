#include "sieve/mcmc/models/logistic.h"

#include <cmath>

#include "sieve/core/error.h"
#include "sieve/mcmc/target.h"

namespace sieve::mcmc {

namespace {
// log(1 + e^eta) without overflow.
double softplus(double eta) {
  return eta > 0 ? eta + std::log1p(std::exp(-eta)) : std::log1p(std::exp(eta));
}
double sigmoid(double eta) {
  if (eta >= 0) return 1 / (1 + std::exp(-eta));
  const double e = std::exp(eta);
  return e / (1 + e);
}
}  // namespace

LogisticRegression::LogisticRegression(Eigen::MatrixXd X, Eigen::VectorXd y, double prior_sd,
                                       std::vector<std::string> names)
    : X_(std::move(X)), y_(std::move(y)), prior_sd_(prior_sd), names_(std::move(names)) {
  SIEVE_CHECK(X_.rows() > 0 && X_.cols() > 0, "logistic: empty design matrix");
  SIEVE_CHECK(y_.size() == X_.rows(), "logistic: X has {} rows but y has {} entries", X_.rows(),
              y_.size());
  SIEVE_CHECK(X_.allFinite(), "logistic: X has non-finite entries");
  for (Eigen::Index i = 0; i < y_.size(); ++i)
    SIEVE_CHECK(y_[i] == 0 || y_[i] == 1, "logistic: y[{}] = {} is not 0 or 1", i, y_[i]);
  SIEVE_CHECK(prior_sd_ > 0 && std::isfinite(prior_sd_), "logistic: prior_sd must be positive");
  SIEVE_CHECK(names_.empty() || Eigen::Index(names_.size()) == X_.cols(),
              "logistic: {} names for {} columns", names_.size(), X_.cols());
}

double LogisticRegression::log_density(const Eigen::VectorXd& beta) const {
  const Eigen::VectorXd eta = X_ * beta;
  double lp = 0;
  for (Eigen::Index i = 0; i < eta.size(); ++i) lp += y_[i] * eta[i] - softplus(eta[i]);
  return lp - 0.5 * beta.squaredNorm() / (prior_sd_ * prior_sd_);
}

double LogisticRegression::log_density_and_gradient(const Eigen::VectorXd& beta,
                                                    Eigen::VectorXd& g) const {
  const Eigen::VectorXd eta = X_ * beta;
  Eigen::VectorXd resid(eta.size());
  double lp = 0;
  for (Eigen::Index i = 0; i < eta.size(); ++i) {
    lp += y_[i] * eta[i] - softplus(eta[i]);
    resid[i] = y_[i] - sigmoid(eta[i]);
  }
  const double prec = 1 / (prior_sd_ * prior_sd_);
  g.noalias() = X_.transpose() * resid;
  g -= prec * beta;
  return lp - 0.5 * prec * beta.squaredNorm();
}

void LogisticRegression::metric(const Eigen::VectorXd& beta, Eigen::MatrixXd& m) const {
  const Eigen::VectorXd eta = X_ * beta;
  Eigen::VectorXd w(eta.size());
  for (Eigen::Index i = 0; i < eta.size(); ++i) {
    const double p = sigmoid(eta[i]);
    w[i] = p * (1 - p);
  }
  m.noalias() = X_.transpose() * w.asDiagonal() * X_;
  m.diagonal().array() += 1 / (prior_sd_ * prior_sd_);
}

double LogisticRegression::log_density_gradient_hessian(const Eigen::VectorXd& beta,
                                                        Eigen::VectorXd& g,
                                                        Eigen::MatrixXd& h) const {
  metric(beta, h);
  h = -h;
  return log_density_and_gradient(beta, g);
}

void LogisticRegression::gaussian_reference(Eigen::VectorXd& mean, Eigen::MatrixXd& cov) const {
  mean = Eigen::VectorXd::Zero(dim());
  cov = Eigen::MatrixXd::Identity(dim(), dim()) * prior_sd_ * prior_sd_;
}

std::vector<std::string> LogisticRegression::parameter_names() const {
  return names_.empty() ? default_parameter_names(dim(), "beta") : names_;
}

}  // namespace sieve::mcmc
