#include "sieve/mcmc/models/gp_regression.h"

#include <cmath>
#include <limits>
#include <numbers>

#include "sieve/core/error.h"
#include "sieve/core/rng.h"

namespace sieve::mcmc {

GpRegression::GpRegression(Eigen::MatrixXd X, Eigen::VectorXd y, double prior_mean, double prior_sd,
                           double jitter)
    : y_(std::move(y)), prior_mean_(prior_mean), prior_sd_(prior_sd), jitter_(jitter) {
  const Eigen::Index n = X.rows();
  SIEVE_CHECK(n > 0 && X.cols() > 0, "gp: empty inputs");
  SIEVE_CHECK(y_.size() == n, "gp: X has {} rows but y has {} entries", n, y_.size());
  SIEVE_CHECK(X.allFinite() && y_.allFinite(), "gp: non-finite data");
  SIEVE_CHECK(prior_sd_ > 0 && jitter_ >= 0, "gp: prior_sd must be positive and jitter >= 0");
  sqdist_.resize(n, n);
  for (Eigen::Index j = 0; j < n; ++j)
    for (Eigen::Index i = 0; i < n; ++i) sqdist_(i, j) = (X.row(i) - X.row(j)).squaredNorm();
}

double GpRegression::evaluate(const Eigen::VectorXd& theta, Eigen::VectorXd* g) const {
  SIEVE_CHECK(theta.size() == 3, "gp: theta must have 3 entries, got {}", theta.size());
  const Eigen::Index n = y_.size();
  const double ell = std::exp(theta[0]), sf2 = std::exp(2 * theta[1]), sn2 = std::exp(2 * theta[2]);
  if (!std::isfinite(ell) || !std::isfinite(sf2) || !std::isfinite(sn2) || ell == 0)
    return -std::numeric_limits<double>::infinity();
  const Eigen::MatrixXd kf = sf2 * (-0.5 * sqdist_.array() / (ell * ell)).exp().matrix();
  Eigen::MatrixXd k = kf;
  k.diagonal().array() += sn2 + jitter_;
  Eigen::LLT<Eigen::MatrixXd> llt(k);
  if (llt.info() != Eigen::Success) return -std::numeric_limits<double>::infinity();
  const Eigen::VectorXd alpha = llt.solve(y_);
  const double log_det = 2 * llt.matrixLLT().diagonal().array().log().sum();
  double lp =
      -0.5 * y_.dot(alpha) - 0.5 * log_det - 0.5 * double(n) * std::log(2 * std::numbers::pi);
  const double v = prior_sd_ * prior_sd_;
  for (int j = 0; j < 3; ++j)
    lp += -0.5 * (theta[j] - prior_mean_) * (theta[j] - prior_mean_) / v -
          0.5 * std::log(2 * std::numbers::pi * v);
  if (g) {
    // d log p / d theta_j = 1/2 sum((alpha alpha' - K^{-1}) o dK_j).
    const Eigen::MatrixXd w =
        alpha * alpha.transpose() - llt.solve(Eigen::MatrixXd::Identity(n, n));
    g->resize(3);
    (*g)[0] = 0.5 * (w.array() * kf.array() * sqdist_.array()).sum() / (ell * ell);
    (*g)[1] = 0.5 * (w.array() * kf.array()).sum() * 2;
    (*g)[2] = 0.5 * w.trace() * 2 * sn2;
    for (int j = 0; j < 3; ++j) (*g)[j] -= (theta[j] - prior_mean_) / v;
  }
  return lp;
}

double GpRegression::log_density(const Eigen::VectorXd& theta) const {
  return evaluate(theta, nullptr);
}

double GpRegression::log_density_and_gradient(const Eigen::VectorXd& theta,
                                              Eigen::VectorXd& g) const {
  return evaluate(theta, &g);
}

void gp_regression_synthetic(Eigen::Index n, uint64_t seed, Eigen::MatrixXd& X,
                             Eigen::VectorXd& y) {
  SIEVE_CHECK(n > 0, "gp_regression_synthetic: n must be positive");
  Rng rng(seed, 0);
  X.resize(n, 1);
  y.resize(n);
  for (Eigen::Index i = 0; i < n; ++i) X(i, 0) = 10 * rng.uniform();
  for (Eigen::Index i = 0; i < n; ++i) y[i] = std::sin(X(i, 0)) + 0.3 * rng.normal();
}

}  // namespace sieve::mcmc
