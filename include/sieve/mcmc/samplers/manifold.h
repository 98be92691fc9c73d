// The position-dependent-metric Langevin kernel behind mmala and gi_mala2 (internal).
//
// Proposal Y ~ N(X + a(s) G(X)^{-1} grad log pi(X), b(s) G(X)^{-1}) with G(x) the target's metric
// when it has one, else -Hessian (analytic or finite-difference) with eigenvalues clipped at
// metric_floor, and the full MH ratio including log det G at both points. Simplified mMALA
// (Girolami & Calderhead 2011, the constant-curvature version without Christoffel terms):
// a = h/2, b = h. Second-order GI-MALA (Titsias et al. 2025, eq. 9): a = gamma,
// b = 2 gamma - gamma^2, A_x = G(x)^{-1}; exact (always accepts) on Gaussian targets.
// One metric evaluation and one Cholesky factorisation, O(d^3), per proposal.
#pragma once

#include <Eigen/Dense>

#include "sieve/core/error.h"
#include "sieve/core/rng.h"
#include "sieve/mcmc/chain.h"
#include "sieve/mcmc/samplers/driver.h"
#include "sieve/mcmc/samplers/langevin.h"
#include "sieve/mcmc/target.h"

namespace sieve::mcmc::detail {

struct ManifoldConfig {
  const char* name = "mmala";
  LangevinScaling scaling = LangevinScaling::kMala;
  double tuning = 0;  ///< initial h (0 = 1) or gamma
  bool adapt_tuning = true;
  double target_accept = 0.574;
  double gamma_max = 1.0;
  double metric_floor = 1e-6;
  Eigen::VectorXd mu;  ///< GI: fixed mean reported for control variates; empty = adapted
};

class ManifoldKernel {
 public:
  ManifoldKernel(ManifoldConfig c, const RunSettings& run)
      : c_(std::move(c)), run_(run), map_{c_.scaling, c_.gamma_max}, da_(c_.target_accept) {}

  template <Target T>
  void init(const T& t, const Eigen::VectorXd& x0, Counters& cnt) {
    const Eigen::Index d = t.dim();
    SIEVE_CHECK(c_.target_accept > 0 && c_.target_accept < 1,
                "{}: target_accept must be in (0, 1), got {}", c_.name, c_.target_accept);
    SIEVE_CHECK(c_.metric_floor > 0, "{}: metric_floor must be positive", c_.name);
    if (c_.scaling == LangevinScaling::kGaussianInvariant) {
      SIEVE_CHECK(c_.gamma_max > 0 && c_.gamma_max < 2, "{}: gamma_max must be in (0, 2), got {}",
                  c_.name, c_.gamma_max);
      SIEVE_CHECK(c_.tuning > 0 && c_.tuning < 2, "{}: gamma must be in (0, 2), got {}", c_.name,
                  c_.tuning);
      s_ = c_.adapt_tuning ? std::min(c_.tuning, 0.999 * c_.gamma_max) : c_.tuning;
    } else {
      SIEVE_CHECK(c_.tuning >= 0, "{}: step_size must be >= 0", c_.name);
      s_ = c_.tuning > 0 ? c_.tuning : 1.0;
    }
    if (c_.mu.size()) SIEVE_CHECK(c_.mu.size() == d, "{}: mu must have {} entries", c_.name, d);
    da_.restart(map_.to_free(s_));
    mean_late_.reset(d);
    cur_.x = x0;
    evaluate(t, cur_, cnt);
  }

  template <Target T>
  StepInfo step(const T& t, Rng& rng, Counters& cnt, ProposalOut* out) {
    const double b = map_.noise_var(s_), a = map_.drift(s_);
    const Eigen::VectorXd mean_x = cur_.x + a * cur_.nat;
    prop_.x = mean_x + std::sqrt(b) * cur_.chol.transpose().triangularView<Eigen::Upper>().solve(
                                          standard_normal(rng, cur_.x.size()));
    evaluate(t, prop_, cnt);
    double log_alpha = kNegInf;
    if (prop_.lp > kNegInf) {
      const Eigen::VectorXd mean_y = prop_.x + a * prop_.nat;
      const double log_q_fwd = 0.5 * cur_.log_det - quad(cur_, prop_.x - mean_x) / (2 * b);
      const double log_q_bwd = 0.5 * prop_.log_det - quad(prop_, cur_.x - mean_y) / (2 * b);
      log_alpha = prop_.lp - cur_.lp + log_q_bwd - log_q_fwd;
    }
    StepInfo info;
    info.accept_prob = accept_probability(log_alpha);
    if (out) {
      out->y = prop_.x;
      out->mean = mean_x;
      // diag G^{-1} = squared column norms of L^{-1} (G = L L').
      const Eigen::Index d = cur_.x.size();
      const Eigen::MatrixXd linv =
          cur_.chol.triangularView<Eigen::Lower>().solve(Eigen::MatrixXd::Identity(d, d));
      out->var = b * linv.colwise().squaredNorm().transpose();
    }
    if (metropolis_accept(log_alpha, rng)) {
      info.accepted = true;
      std::swap(cur_, prop_);
    }
    return info;
  }

  void adapt(int64_t it, const StepInfo& info) {
    if (c_.adapt_tuning) s_ = map_.from_free(da_.update(info.accept_prob));
    if (2 * it >= run_.num_warmup) mean_late_.add(cur_.x);
  }

  void finish_warmup(AdaptedParameters& p) {
    if (c_.adapt_tuning && run_.num_warmup > 0) s_ = map_.from_free(da_.x_bar());
    if (c_.scaling == LangevinScaling::kMala)
      p.step_size = s_;
    else
      p.gamma = s_;
    if (c_.mu.size())
      p.mu = c_.mu;
    else if (mean_late_.count() > 0)
      p.mu = mean_late_.mean();
    else
      p.mu = cur_.x;
  }

  const Eigen::VectorXd& x() const { return cur_.x; }
  double logp() const { return cur_.lp; }
  const Eigen::VectorXd& grad() const { return cur_.g; }
  bool has_gradient() const { return true; }
  ProposalKind proposal_kind() const { return ProposalKind::kGaussian; }

 private:
  struct Point {
    Eigen::VectorXd x, g, nat;  // nat = G^{-1} g
    Eigen::MatrixXd metric, chol;
    double lp = kNegInf, log_det = 0;
  };
  template <Target T>
  void evaluate(const T& t, Point& p, Counters& cnt) {
    ++cnt.hessian;
    p.lp = positive_metric(t, p.x, p.g, p.metric, c_.metric_floor, &cnt.gradient);
    if (!std::isfinite(p.lp) || !p.g.allFinite() || !p.metric.allFinite()) {
      p.lp = kNegInf;
      return;
    }
    Eigen::LLT<Eigen::MatrixXd> llt(p.metric);
    if (llt.info() != Eigen::Success) {
      p.lp = kNegInf;  // a metric that is not positive definite: reject the point
      return;
    }
    p.chol = llt.matrixL();
    p.log_det = 2 * p.chol.diagonal().array().log().sum();
    p.nat = llt.solve(p.g);
  }
  /// r' G r = |L' r|^2.
  static double quad(const Point& p, const Eigen::VectorXd& r) {
    return (p.chol.transpose().triangularView<Eigen::Upper>() * r).squaredNorm();
  }

  ManifoldConfig c_;
  RunSettings run_;
  TuningMap map_;
  DualAveraging da_;
  RunningMean mean_late_;
  Point cur_, prop_;
  double s_ = 1;
};

}  // namespace sieve::mcmc::detail
