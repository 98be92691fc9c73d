#include "sieve/mcmc/models/lgcp.h"

#include <cmath>

#include "sieve/core/error.h"
#include "sieve/core/rng.h"

namespace sieve::mcmc {

namespace {
// Poisson(lambda) by Knuth's product method on chunks of mean <= 30 (sums of Poissons are
// Poisson), exact and fast for the small cell intensities of an LGCP.
double poisson_variate(Rng& rng, double lambda) {
  double k = 0;
  while (lambda > 0) {
    const double chunk = std::min(lambda, 30.0);
    lambda -= chunk;
    const double limit = std::exp(-chunk);
    double prod = rng.uniform_open();
    while (prod > limit) {
      k += 1;
      prod *= rng.uniform_open();
    }
  }
  return k;
}
}  // namespace

LogGaussianCoxProcess::LogGaussianCoxProcess(const LgcpSettings& s, Eigen::VectorXd counts,
                                             uint64_t seed) {
  SIEVE_CHECK(s.grid >= 2 && s.grid <= 128, "lgcp: grid must be in [2, 128], got {}", s.grid);
  SIEVE_CHECK(s.sigma2 > 0 && s.beta > 0, "lgcp: sigma2 and beta must be positive");
  const Eigen::Index d = Eigen::Index(s.grid) * s.grid;
  mu_ = s.mu_given ? s.mu : std::log(126.0) - 0.5 * s.sigma2;
  area_ = 1.0 / double(d);
  cov_.resize(d, d);
  for (Eigen::Index a = 0; a < d; ++a)
    for (Eigen::Index b = 0; b < d; ++b) {
      const double di = double(a / s.grid - b / s.grid), dj = double(a % s.grid - b % s.grid);
      cov_(a, b) = s.sigma2 * std::exp(-std::sqrt(di * di + dj * dj) / (double(s.grid) * s.beta));
    }
  Eigen::LLT<Eigen::MatrixXd> llt(cov_);
  SIEVE_CHECK(llt.info() == Eigen::Success, "lgcp: prior covariance is not positive definite");
  precision_ = llt.solve(Eigen::MatrixXd::Identity(d, d));
  precision_ = (0.5 * (precision_ + precision_.transpose())).eval();
  metric_diag_ = (area_ * (mu_ + cov_.diagonal().array()).exp()).matrix();
  if (counts.size() == 0) {
    Rng rng(seed, 0);
    Eigen::VectorXd z(d);
    for (Eigen::Index i = 0; i < d; ++i) z[i] = rng.normal();
    truth_ = Eigen::VectorXd::Constant(d, mu_) + Eigen::MatrixXd(llt.matrixL()) * z;
    counts_.resize(d);
    for (Eigen::Index i = 0; i < d; ++i)
      counts_[i] = poisson_variate(rng, area_ * std::exp(truth_[i]));
  } else {
    SIEVE_CHECK(counts.size() == d, "lgcp: {} counts for a {}x{} grid", counts.size(), s.grid,
                s.grid);
    SIEVE_CHECK((counts.array() >= 0).all() && counts.allFinite(), "lgcp: counts must be >= 0");
    counts_ = std::move(counts);
  }
}

double LogGaussianCoxProcess::log_density(const Eigen::VectorXd& x) const {
  const Eigen::VectorXd r = x.array() - mu_;
  return counts_.dot(x) - area_ * x.array().exp().sum() - 0.5 * r.dot(precision_ * r);
}

double LogGaussianCoxProcess::log_density_and_gradient(const Eigen::VectorXd& x,
                                                       Eigen::VectorXd& g) const {
  const Eigen::VectorXd r = x.array() - mu_;
  const Eigen::VectorXd pr = precision_ * r;
  const Eigen::VectorXd ex = area_ * x.array().exp();
  g = counts_ - ex - pr;
  return counts_.dot(x) - ex.sum() - 0.5 * r.dot(pr);
}

double LogGaussianCoxProcess::log_density_gradient_hessian(const Eigen::VectorXd& x,
                                                           Eigen::VectorXd& g,
                                                           Eigen::MatrixXd& h) const {
  h = -precision_;
  h.diagonal() -= (area_ * x.array().exp()).matrix();
  return log_density_and_gradient(x, g);
}

void LogGaussianCoxProcess::metric(const Eigen::VectorXd&, Eigen::MatrixXd& m) const {
  m = precision_;
  m.diagonal() += metric_diag_;
}

void LogGaussianCoxProcess::gaussian_reference(Eigen::VectorXd& mean, Eigen::MatrixXd& cov) const {
  mean = Eigen::VectorXd::Constant(dim(), mu_);
  cov = cov_;
}

}  // namespace sieve::mcmc
