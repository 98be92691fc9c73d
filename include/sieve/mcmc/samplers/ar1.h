// The autoregressive (Crank-Nicolson) Gaussian kernel behind gi_rwm and pcn (internal).
//
// Proposal Y = mu + rho (X - mu) + sqrt(1 - rho^2) L z, L L' = Sigma: reversible w.r.t.
// N(mu, Sigma), so the MH ratio only involves the residual log pi - log N(. | mu, Sigma)
// (research/mcmc.md §1.3 (2)): one density evaluation per step. GI-RWM (Titsias et al. 2025,
// eq. 7): rho = 1 - gamma, gamma in (0, 2), (mu, Sigma) adapted in warm-up. pCN (Cotter et al.
// 2013): rho = sqrt(1 - beta^2), beta in (0, 1], (mu, Sigma) the fixed Gaussian reference/prior.
#pragma once

#include <Eigen/Dense>

#include "sieve/core/error.h"
#include "sieve/core/rng.h"
#include "sieve/mcmc/chain.h"
#include "sieve/mcmc/samplers/driver.h"
#include "sieve/mcmc/samplers/laplace.h"
#include "sieve/mcmc/target.h"

namespace sieve::mcmc::detail {

struct Ar1Config {
  const char* name = "gi-rwm";
  bool pcn = false;  ///< tuning is beta (pCN) rather than gamma (GI)
  double tuning = 0.5;
  bool adapt_tuning = true;
  double target_accept = 0.5;
  double gamma_max = 1.0;      ///< GI only
  bool adapt_gaussian = true;  ///< GI only: learn (mu, Sigma) in Stan's slow windows
  bool laplace_init = true;    ///< start (mu, Sigma) at the Laplace approximation
  bool dense = true;
  double sigma_scale = 1.0;  ///< GI only: inflation of the Laplace / adapted Sigma
  Eigen::VectorXd mu;        ///< initial / fixed mean; empty = x0 (GI) or target reference (pCN)
  Eigen::MatrixXd sigma;     ///< initial / fixed covariance; empty = I (GI) or reference (pCN)
};

class Ar1Kernel {
 public:
  Ar1Kernel(Ar1Config c, const RunSettings& run)
      : c_(std::move(c)), run_(run), da_(c_.target_accept) {}

  template <Target T>
  void init(const T& t, const Eigen::VectorXd& x0, Counters& cnt) {
    const Eigen::Index d = t.dim();
    SIEVE_CHECK(c_.target_accept > 0 && c_.target_accept < 1,
                "{}: target_accept must be in (0, 1), got {}", c_.name, c_.target_accept);
    Eigen::VectorXd mu = c_.mu;
    Eigen::MatrixXd sigma = c_.sigma;
    Eigen::VectorXd start = x0;
    if (c_.pcn) {
      SIEVE_CHECK(c_.tuning > 0 && c_.tuning <= 1, "{}: beta must be in (0, 1], got {}", c_.name,
                  c_.tuning);
      hi_ = 1.0;
      if (!mu.size() || !sigma.size()) {
        SIEVE_CHECK(has_gaussian_reference(t),
                    "{}: target has no Gaussian reference; set mean and cov", c_.name);
        Eigen::VectorXd m;
        Eigen::MatrixXd s;
        if constexpr (GaussianReferenceTarget<T>) t.gaussian_reference(m, s);
        if (!mu.size()) mu = m;
        if (!sigma.size()) sigma = s;
      }
    } else {
      SIEVE_CHECK(c_.gamma_max > 0 && c_.gamma_max < 2, "{}: gamma_max must be in (0, 2), got {}",
                  c_.name, c_.gamma_max);
      SIEVE_CHECK(c_.tuning > 0 && c_.tuning < 2, "{}: gamma must be in (0, 2), got {}", c_.name,
                  c_.tuning);
      SIEVE_CHECK(c_.sigma_scale > 0, "{}: sigma_scale must be positive", c_.name);
      hi_ = c_.gamma_max;
      if (c_.laplace_init && (!mu.size() || !sigma.size())) {
        const LaplaceApproximation la = laplace_approximation(t, x0);
        cnt.gradient += la.gradient_evals;
        if (!mu.size()) mu = la.mode;
        if (!sigma.size()) sigma = c_.sigma_scale * la.cov;
        // Far in a tail, pi / N(mu, Sigma) is huge and moves towards mu are rejected (as for an
        // independence sampler): start at the mode.
        start = la.mode;
      }
      if (!mu.size()) mu = x0;
      if (!sigma.size()) sigma = Eigen::MatrixXd::Identity(d, d);
    }
    SIEVE_CHECK(mu.size() == d, "{}: mean must have {} entries, got {}", c_.name, d, mu.size());
    set_gaussian(mu, sigma);
    s_ = c_.tuning;
    if (c_.adapt_tuning) s_ = std::min(s_, 0.999 * hi_);
    da_.restart(to_free(s_));
    // The adapter tracks the unscaled moments; sigma_scale is applied to what the kernel uses.
    moments_.init(!c_.pcn && c_.adapt_gaussian ? run_.num_warmup : 0, mu,
                  sigma / (c_.pcn ? 1.0 : c_.sigma_scale));
    need_grad_ = run_.store_gradients;
    x_ = start;
    lp_ = eval_point(t, x_, need_grad_, g_, cnt);
    ref_x_ = log_ref(x_);
  }

  template <Target T>
  StepInfo step(const T& t, Rng& rng, Counters& cnt, ProposalOut* out) {
    const double r = rho();
    const Eigen::VectorXd mean = mu_ + r * (x_ - mu_);
    Eigen::VectorXd y =
        mean + std::sqrt(std::max(0.0, 1 - r * r)) * (chol_ * standard_normal(rng, x_.size()));
    Eigen::VectorXd gy;
    const double lpy = eval_point(t, y, need_grad_, gy, cnt);
    double log_alpha = kNegInf, ref_y = 0;
    if (lpy > kNegInf) {
      ref_y = log_ref(y);
      log_alpha = (lpy - ref_y) - (lp_ - ref_x_);
    }
    StepInfo info;
    info.accept_prob = accept_probability(log_alpha);
    if (out) {
      out->y = y;
      out->mean = mean;
    }
    if (metropolis_accept(log_alpha, rng)) {
      info.accepted = true;
      x_ = std::move(y);
      g_ = std::move(gy);
      lp_ = lpy;
      ref_x_ = ref_y;
    }
    return info;
  }

  void adapt(int64_t it, const StepInfo& info) {
    if (c_.adapt_tuning) s_ = from_free(da_.update(info.accept_prob));
    if (!c_.pcn && c_.adapt_gaussian && moments_.update(it, x_, info.accepted, c_.dense)) {
      set_gaussian(moments_.mean(), c_.sigma_scale * moments_.cov());
      ref_x_ = log_ref(x_);
      if (c_.adapt_tuning) da_.restart(to_free(s_));
    }
  }

  void finish_warmup(AdaptedParameters& p) {
    if (c_.adapt_tuning && run_.num_warmup > 0) s_ = from_free(da_.x_bar());
    p.gamma = s_;
    p.mu = mu_;
    p.sigma = sigma_;
    const double r = rho();
    p.proposal_cov = (1 - r * r) * sigma_;
  }

  const Eigen::VectorXd& x() const { return x_; }
  double logp() const { return lp_; }
  const Eigen::VectorXd& grad() const { return g_; }
  bool has_gradient() const { return need_grad_; }
  ProposalKind proposal_kind() const { return ProposalKind::kGaussian; }

 private:
  double rho() const { return c_.pcn ? std::sqrt(std::max(0.0, 1 - s_ * s_)) : 1 - s_; }
  double to_free(double s) const { return std::log(s / hi_) - std::log1p(-s / hi_); }
  double from_free(double u) const { return hi_ / (1 + std::exp(-std::clamp(u, -30.0, 30.0))); }
  void set_gaussian(const Eigen::VectorXd& mu, const Eigen::MatrixXd& sigma) {
    const Eigen::Index d = mu.size();
    SIEVE_CHECK(sigma.rows() == d && sigma.cols() == d, "{}: covariance must be {}x{}", c_.name, d,
                d);
    mu_ = mu;
    sigma_ = sigma;
    chol_ = cholesky_lower(sigma_, c_.name);
  }
  /// log N(x | mu, Sigma) up to a constant.
  double log_ref(const Eigen::VectorXd& x) const {
    return -0.5 * chol_.triangularView<Eigen::Lower>().solve(x - mu_).squaredNorm();
  }

  Ar1Config c_;
  RunSettings run_;
  DualAveraging da_;
  GaussianMomentAdapter moments_;
  Eigen::VectorXd mu_;
  Eigen::MatrixXd sigma_, chol_;
  double s_ = 0.5, hi_ = 1.0;
  Eigen::VectorXd x_, g_;
  double lp_ = 0, ref_x_ = 0;
  bool need_grad_ = false;
};

}  // namespace sieve::mcmc::detail
