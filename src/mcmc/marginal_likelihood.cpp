// Thermodynamic-integration evidence of a linear regression with IMH control variates
// (control_variates.h; our reconstruction of the IMH paper's marginal-likelihood example).
#include <cmath>
#include <limits>
#include <numbers>

#include "sieve/core/error.h"
#include "sieve/mcmc/control_variates.h"
#include "sieve/mcmc/diagnostics.h"
#include "sieve/mcmc/samplers/aimh.h"

namespace sieve::mcmc {

namespace {

/// E[beta_j^2] and E[beta_j^4] under one coordinate of the prior (all priors are symmetric).
void prior_moments(const RegressionPrior& p, double& m2, double& m4) {
  const double s2 = p.scale * p.scale;
  switch (p.kind) {
    case PriorKind::kGaussian:
      m2 = s2;
      m4 = 3 * s2 * s2;
      return;
    case PriorKind::kLaplace:
      m2 = 2 * s2;
      m4 = 24 * s2 * s2;
      return;
    case PriorKind::kStudentT:
      m2 = p.nu > 2 ? s2 * p.nu / (p.nu - 2) : std::numeric_limits<double>::infinity();
      m4 = p.nu > 4 ? 3 * p.nu * p.nu * s2 * s2 / ((p.nu - 2) * (p.nu - 4))
                    : std::numeric_limits<double>::infinity();
      return;
  }
}

}  // namespace

double linear_regression_exact_log_evidence(const LinearRegression& model) {
  SIEVE_CHECK(model.prior().kind == PriorKind::kGaussian,
              "the exact evidence needs a Gaussian prior");
  const Eigen::MatrixXd& X = model.X();
  const double s2 = model.prior().scale * model.prior().scale,
               n2 = model.noise_sd() * model.noise_sd();
  Eigen::MatrixXd k = s2 * X * X.transpose();
  k.diagonal().array() += n2;
  const Eigen::LLT<Eigen::MatrixXd> llt(k);
  SIEVE_CHECK(llt.info() == Eigen::Success, "marginal covariance is not positive definite");
  const Eigen::VectorXd& y = model.y();
  const double quad = y.dot(llt.solve(y));
  const double log_det = 2 * Eigen::MatrixXd(llt.matrixL()).diagonal().array().log().sum();
  return -0.5 * quad - 0.5 * log_det - 0.5 * double(y.size()) * std::log(2 * std::numbers::pi);
}

EvidenceResult linear_regression_log_evidence(const LinearRegression& model,
                                              const EvidenceSettings& s) {
  SIEVE_CHECK(s.num_temperatures >= 1, "evidence: num_temperatures must be >= 1");
  SIEVE_CHECK(s.ladder_power > 0, "evidence: ladder_power must be positive");
  SIEVE_CHECK(s.num_draws >= 16, "evidence: num_draws must be >= 16");
  double m2 = 0, m4 = 0;
  prior_moments(model.prior(), m2, m4);
  SIEVE_CHECK(std::isfinite(m2), "evidence: the prior needs a finite variance (Student-t nu > 2)");
  const int K = s.num_temperatures;
  const QuadraticForm q = model.log_likelihood_quadratic();
  const std::vector<QuadraticFunction> f{quadratic_function(q, "log_lik")};

  EvidenceResult r;
  r.temperatures.resize(K + 1);
  for (int k = 0; k <= K; ++k) r.temperatures[k] = std::pow(double(k) / K, s.ladder_power);
  r.mean_loglik.resize(K + 1);
  r.mean_loglik_plain.resize(K + 1);
  r.var_loglik.resize(K + 1);
  r.mcse_loglik.resize(K + 1);
  r.mcse_loglik_plain.resize(K + 1);
  r.acceptance.resize(K + 1);

  // t = 0 is the prior: E[a'b + b'Bb] = c + m2 tr(B) and, for independent symmetric coordinates,
  // Var = m2 |a|^2 + (m4 - m2^2) sum B_ii^2 + 4 m2^2 sum_{i<j} B_ij^2.
  const Eigen::MatrixXd& B = q.B;
  double off = 0;
  for (Eigen::Index j = 0; j < B.cols(); ++j)
    for (Eigen::Index i = 0; i < j; ++i) off += B(i, j) * B(i, j);
  r.mean_loglik[0] = r.mean_loglik_plain[0] = q.c + m2 * B.trace();
  r.var_loglik[0] =
      m2 * q.a.squaredNorm() + (m4 - m2 * m2) * B.diagonal().squaredNorm() + 4 * m2 * m2 * off;
  r.mcse_loglik[0] = r.mcse_loglik_plain[0] = 0;
  r.acceptance[0] = 1;

  // Heavy prior tails dominate the small temperatures: a Student-t prior's own nu is the natural
  // proposal tail there.
  AimhSettings a;
  a.num_warmup = s.num_warmup;
  a.num_draws = s.num_draws;
  a.proposal = s.proposal;
  a.nu = model.prior().kind == PriorKind::kStudentT ? std::min(s.nu, model.prior().nu) : s.nu;
  a.store_gradients = false;
  const Eigen::VectorXd init = Eigen::VectorXd::Zero(model.dim());
  const auto chains = run_chains(K, s.seed, s.num_threads, [&](uint64_t k, Rng& rng) {
    const AnyTarget target = model.with_temperature(r.temperatures[Eigen::Index(k) + 1]);
    return aimh(target, init, a, rng);
  });
  for (int k = 1; k <= K; ++k) {
    const std::vector<Chain> one{chains[size_t(k - 1)]};
    const CvResult cv = imh_control_variates(one, f, s.coefficients);
    const CvResult plain = plain_means(one, f);
    const Eigen::Index n = plain.series.rows();
    const std::span<const double> cs(cv.series.data(), size_t(n)),
        ps(plain.series.data(), size_t(n));
    r.mean_loglik[k] = cv.estimate[0];
    r.mean_loglik_plain[k] = plain.estimate[0];
    const double mean = plain.estimate[0];
    r.var_loglik[k] = (plain.series.col(0).array() - mean).square().sum() / double(n - 1);
    r.mcse_loglik[k] = std::sqrt(std::max(0.0, batch_means_variance(cs)) / double(n));
    r.mcse_loglik_plain[k] = std::sqrt(std::max(0.0, batch_means_variance(ps)) / double(n));
    r.acceptance[k] = one[0].acceptance_rate();
  }

  // Trapezoid rule with the Friel, Hurn & Wyse (2014) correction -dt^2 / 12 (V_{k+1} - V_k); the
  // first interval's correction is dropped when the prior's fourth moment is infinite.
  double var_cv = 0, var_plain = 0;
  for (int k = 0; k < K; ++k) {
    const double dt = r.temperatures[k + 1] - r.temperatures[k];
    double corr = 0;
    if (std::isfinite(r.var_loglik[k]))
      corr = -dt * dt / 12 * (r.var_loglik[k + 1] - r.var_loglik[k]);
    r.log_evidence += dt * 0.5 * (r.mean_loglik[k] + r.mean_loglik[k + 1]) + corr;
    r.log_evidence_plain += dt * 0.5 * (r.mean_loglik_plain[k] + r.mean_loglik_plain[k + 1]) + corr;
  }
  for (int k = 0; k <= K; ++k) {
    const double w = 0.5 * ((k > 0 ? r.temperatures[k] - r.temperatures[k - 1] : 0.0) +
                            (k < K ? r.temperatures[k + 1] - r.temperatures[k] : 0.0));
    var_cv += w * w * r.mcse_loglik[k] * r.mcse_loglik[k];
    var_plain += w * w * r.mcse_loglik_plain[k] * r.mcse_loglik_plain[k];
  }
  r.mcse = std::sqrt(var_cv);
  r.mcse_plain = std::sqrt(var_plain);
  return r;
}

}  // namespace sieve::mcmc
