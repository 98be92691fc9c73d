// Random-walk Metropolis (Metropolis et al. 1953) with Haario-style covariance adaptation.
//
// Proposal Y = X + eps * L z, z ~ N(0, I), L L' = C. Warm-up: dual averaging of log eps towards
// target_accept (default 0.234, Roberts, Gelman & Gilks 1997) and, when adapt_covariance, C from
// the draws of Stan's slow windows (eps restarted at 2.38 / sqrt(d) after each update). Both are
// frozen for the stored draws. Proposal covariance eps^2 C is stored in adapted.proposal_cov.
#pragma once

#include <Eigen/Dense>

#include "sieve/core/rng.h"
#include "sieve/mcmc/chain.h"
#include "sieve/mcmc/samplers/driver.h"
#include "sieve/mcmc/target.h"

namespace sieve::mcmc {

struct RwmSettings : RunSettings {
  double step_size = 0;  ///< initial eps; 0 = 2.38 / sqrt(d)
  bool adapt_step_size = true;
  double target_accept = 0.234;
  bool adapt_covariance = true;
  bool dense = true;    ///< dense (true) or diagonal covariance adaptation
  Eigen::MatrixXd cov;  ///< initial/fixed proposal covariance C [d, d]; empty = I
};

namespace detail {

class RwmKernel {
 public:
  explicit RwmKernel(const RwmSettings& s) : s_(s), da_(s.target_accept) {}

  template <Target T>
  void init(const T& t, const Eigen::VectorXd& x0, Counters& c) {
    const Eigen::Index d = t.dim();
    SIEVE_CHECK(s_.target_accept > 0 && s_.target_accept < 1,
                "rwm: target_accept must be in (0, 1), got {}", s_.target_accept);
    SIEVE_CHECK(s_.step_size >= 0, "rwm: step_size must be >= 0, got {}", s_.step_size);
    cov_ = s_.cov.size() ? s_.cov : Eigen::MatrixXd::Identity(d, d);
    SIEVE_CHECK(cov_.rows() == d && cov_.cols() == d, "rwm: cov must be {}x{}", d, d);
    chol_ = cholesky_lower(cov_, "rwm: cov");
    eps_ = s_.step_size > 0 ? s_.step_size : 2.38 / std::sqrt(double(d));
    da_.restart(std::log(eps_));
    schedule_ = WindowSchedule(s_.num_warmup);
    welford_.reset(d);
    x_ = x0;
    need_grad_ = s_.store_gradients;
    lp_ = eval_point(t, x_, need_grad_, g_, c);
  }

  template <Target T>
  StepInfo step(const T& t, Rng& rng, Counters& c, ProposalOut* out) {
    Eigen::VectorXd y = x_ + eps_ * (chol_ * standard_normal(rng, x_.size()));
    Eigen::VectorXd gy;
    const double lpy = eval_point(t, y, need_grad_, gy, c);
    const double log_alpha = lpy - lp_;
    StepInfo info;
    info.accept_prob = accept_probability(log_alpha);
    if (out) {
      out->y = y;
      out->mean = x_;
    }
    if (metropolis_accept(log_alpha, rng)) {
      info.accepted = true;
      x_ = std::move(y);
      lp_ = lpy;
      g_ = std::move(gy);
    }
    return info;
  }

  void adapt(int64_t it, const StepInfo& info) {
    if (s_.adapt_step_size) eps_ = std::exp(da_.update(info.accept_prob));
    if (s_.adapt_covariance && schedule_.in_window(it)) {
      welford_.add(x_);
      if (schedule_.window_end(it)) {
        cov_ = welford_.regularized(s_.dense);
        chol_ = cholesky_lower(cov_, "rwm: adapted covariance");
        welford_.reset(x_.size());
        eps_ = 2.38 / std::sqrt(double(x_.size()));
        da_.restart(std::log(eps_));
      }
    }
  }

  void finish_warmup(AdaptedParameters& a) {
    if (s_.adapt_step_size && s_.num_warmup > 0) eps_ = std::exp(da_.x_bar());
    a.step_size = eps_;
    a.sigma = cov_;
    a.proposal_cov = eps_ * eps_ * cov_;
  }

  const Eigen::VectorXd& x() const { return x_; }
  double logp() const { return lp_; }
  const Eigen::VectorXd& grad() const { return g_; }
  bool has_gradient() const { return need_grad_; }
  ProposalKind proposal_kind() const { return ProposalKind::kGaussian; }

 private:
  RwmSettings s_;
  DualAveraging da_;
  WindowSchedule schedule_;
  WelfordCovariance welford_;
  Eigen::MatrixXd cov_, chol_;
  double eps_ = 1;
  Eigen::VectorXd x_, g_;
  double lp_ = 0;
  bool need_grad_ = false;
};

}  // namespace detail

/// @brief Random-walk Metropolis. See the file comment for the adaptation.
template <Target T>
Chain rwm(const T& target, const Eigen::VectorXd& init, const RwmSettings& settings, Rng& rng) {
  detail::RwmKernel kernel(settings);
  return detail::run_kernel(target, kernel, init, settings, rng, "rwm");
}

extern template Chain rwm<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&, const RwmSettings&,
                                     Rng&);

}  // namespace sieve::mcmc
