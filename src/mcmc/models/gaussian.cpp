#include "sieve/mcmc/models/gaussian.h"

#include <cmath>
#include <numbers>

#include "sieve/core/error.h"
#include "sieve/core/rng.h"

namespace sieve::mcmc {

Gaussian::Gaussian(Eigen::VectorXd mean, Eigen::MatrixXd cov)
    : mean_(std::move(mean)), cov_(std::move(cov)) {
  const Eigen::Index d = mean_.size();
  SIEVE_CHECK(d > 0, "Gaussian: empty mean");
  SIEVE_CHECK(cov_.rows() == d && cov_.cols() == d, "Gaussian: cov is {}x{}, mean has {} entries",
              cov_.rows(), cov_.cols(), d);
  SIEVE_CHECK(mean_.allFinite() && cov_.allFinite(), "Gaussian: non-finite mean or cov");
  SIEVE_CHECK((cov_ - cov_.transpose()).cwiseAbs().maxCoeff() <=
                  1e-10 * std::max(1.0, cov_.cwiseAbs().maxCoeff()),
              "Gaussian: cov is not symmetric");
  Eigen::LLT<Eigen::MatrixXd> llt(cov_);
  SIEVE_CHECK(llt.info() == Eigen::Success, "Gaussian: cov is not positive definite");
  precision_ = llt.solve(Eigen::MatrixXd::Identity(d, d));
  precision_ = (0.5 * (precision_ + precision_.transpose())).eval();
  const double log_det = 2 * llt.matrixL().toDenseMatrix().diagonal().array().log().sum();
  log_norm_ = -0.5 * double(d) * std::log(2 * std::numbers::pi) - 0.5 * log_det;
}

double Gaussian::log_density(const Eigen::VectorXd& x) const {
  const Eigen::VectorXd r = x - mean_;
  return log_norm_ - 0.5 * r.dot(precision_ * r);
}

double Gaussian::log_density_and_gradient(const Eigen::VectorXd& x, Eigen::VectorXd& g) const {
  const Eigen::VectorXd r = x - mean_;
  g.noalias() = -(precision_ * r);
  return log_norm_ + 0.5 * r.dot(g);
}

double Gaussian::log_density_gradient_hessian(const Eigen::VectorXd& x, Eigen::VectorXd& g,
                                              Eigen::MatrixXd& h) const {
  h = -precision_;
  return log_density_and_gradient(x, g);
}

Gaussian ill_conditioned_gaussian(Eigen::Index dim, double condition_number, bool rotate,
                                  uint64_t seed) {
  SIEVE_CHECK(dim > 0, "ill_conditioned_gaussian: dim must be positive, got {}", dim);
  SIEVE_CHECK(condition_number >= 1, "ill_conditioned_gaussian: condition_number must be >= 1");
  Eigen::VectorXd var(dim);
  for (Eigen::Index i = 0; i < dim; ++i) {
    const double f = dim == 1 ? 1.0 : double(i) / double(dim - 1);
    var[i] = std::pow(condition_number, f - 1.0);  // 1/cond ... 1
  }
  Eigen::MatrixXd cov = var.asDiagonal();
  if (rotate) {
    Rng rng(seed, 0);
    Eigen::MatrixXd a(dim, dim);
    for (Eigen::Index j = 0; j < dim; ++j)
      for (Eigen::Index i = 0; i < dim; ++i) a(i, j) = rng.normal();
    const Eigen::MatrixXd q = Eigen::HouseholderQR<Eigen::MatrixXd>(a).householderQ();
    cov = q * var.asDiagonal() * q.transpose();
    cov = (0.5 * (cov + cov.transpose())).eval();
  }
  return Gaussian(Eigen::VectorXd::Zero(dim), cov);
}

}  // namespace sieve::mcmc
