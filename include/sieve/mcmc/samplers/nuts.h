// No-U-Turn sampler, multinomial variant with Stan's windowed warm-up (the baseline).
//
// Hoffman & Gelman (2014) with Betancourt's (2017) multinomial trajectory sampling, biased
// progressive sampling at the top level, the generalised no-U-turn criterion on sharp momenta
// including the checks across merged subtrees (Stan >= 2.26), divergence when
// H - H0 > max_delta_h, and tree depth <= max_depth. Euclidean metric: unit, diagonal or dense.
// Warm-up as Stan: dual averaging of log eps towards target_accept (0.8), inverse metric from the
// regularised covariance of the slow windows' draws, Stan's step-size heuristic after each update.
// The accept statistic stored per draw is the mean Metropolis probability over the trajectory.
#pragma once

#include <Eigen/Dense>
#include <cmath>
#include <limits>
#include <string>

#include "sieve/core/error.h"
#include "sieve/core/rng.h"
#include "sieve/mcmc/chain.h"
#include "sieve/mcmc/samplers/driver.h"
#include "sieve/mcmc/target.h"

namespace sieve::mcmc {

struct NutsSettings : RunSettings {
  double step_size = 1.0;  ///< initial eps (then Stan's heuristic when adapting)
  bool adapt_step_size = true;
  double target_accept = 0.8;
  int max_depth = 10;
  std::string metric = "diag";  ///< unit | diag | dense
  bool adapt_metric = true;
  Eigen::MatrixXd inv_metric;  ///< initial / fixed inverse metric [d, d]; empty = I
  double max_delta_h = 1000;   ///< divergence threshold on the energy error
};

namespace detail {

class NutsKernel {
 public:
  NutsKernel(const NutsSettings& s) : s_(s), da_(s.target_accept) {}

  template <Target T>
  void init(const T& t, const Eigen::VectorXd& x0, Counters& cnt) {
    const Eigen::Index d = t.dim();
    SIEVE_CHECK(s_.metric == "unit" || s_.metric == "diag" || s_.metric == "dense",
                "nuts: metric must be unit, diag or dense, got '{}'", s_.metric);
    SIEVE_CHECK(s_.target_accept > 0 && s_.target_accept < 1,
                "nuts: target_accept must be in (0, 1), got {}", s_.target_accept);
    SIEVE_CHECK(s_.max_depth >= 1 && s_.max_depth <= 30, "nuts: max_depth must be in [1, 30]");
    SIEVE_CHECK(s_.step_size > 0, "nuts: step_size must be positive");
    dense_ = s_.metric == "dense";
    set_inv_metric(s_.inv_metric.size() ? s_.inv_metric : Eigen::MatrixXd::Identity(d, d));
    eps_ = s_.step_size;
    schedule_ = WindowSchedule(s_.adapt_metric && s_.metric != "unit" ? s_.num_warmup : 0);
    welford_.reset(d);
    cur_.q = x0;
    cur_.lp = eval_gradient(t, cur_.q, cur_.g, cnt);
    need_stepsize_init_ = s_.adapt_step_size && s_.num_warmup > 0;
  }

  template <Target T>
  StepInfo step(const T& t, Rng& rng, Counters& cnt, ProposalOut*) {
    if (need_stepsize_init_) {
      init_stepsize(t, rng, cnt);
      da_.restart(std::log(eps_));
      need_stepsize_init_ = false;
    }
    return transition(t, rng, cnt);
  }

  void adapt(int64_t it, const StepInfo& info) {
    if (s_.adapt_step_size) eps_ = std::exp(da_.update(info.accept_prob));
    if (schedule_.in_window(it)) {
      welford_.add(cur_.q);
      if (schedule_.window_end(it)) {
        set_inv_metric(welford_.regularized(dense_));
        welford_.reset(cur_.q.size());
        if (s_.adapt_step_size) need_stepsize_init_ = true;
      }
    }
  }

  void finish_warmup(AdaptedParameters& p) {
    if (s_.adapt_step_size && s_.num_warmup > 0) eps_ = std::exp(da_.x_bar());
    need_stepsize_init_ = false;
    p.step_size = eps_;
    p.sigma = inv_metric_;
  }

  const Eigen::VectorXd& x() const { return cur_.q; }
  double logp() const { return cur_.lp; }
  const Eigen::VectorXd& grad() const { return cur_.g; }
  bool has_gradient() const { return true; }
  ProposalKind proposal_kind() const { return ProposalKind::kNone; }

 private:
  struct Point {
    Eigen::VectorXd q, p, g;
    double lp = 0;
  };

  void set_inv_metric(const Eigen::MatrixXd& m) {
    const Eigen::Index d = m.rows();
    SIEVE_CHECK(m.cols() == d, "nuts: inv_metric must be square");
    if (dense_) {
      inv_metric_ = m;
      chol_ = cholesky_lower(inv_metric_, "nuts: inverse metric");
    } else {
      inv_metric_ = Eigen::MatrixXd(m.diagonal().asDiagonal());
      SIEVE_CHECK((m.diagonal().array() > 0).all(), "nuts: inverse metric diagonal must be > 0");
      diag_ = m.diagonal();
    }
  }
  /// p ~ N(0, M) with M = inv_metric^{-1}: p = L^{-T} z for inv_metric = L L'.
  void sample_momentum(Point& z, Rng& rng) const {
    const Eigen::VectorXd n = standard_normal(rng, z.q.size());
    if (dense_)
      z.p = chol_.transpose().triangularView<Eigen::Upper>().solve(n);
    else
      z.p = n.cwiseQuotient(diag_.cwiseSqrt());
  }
  Eigen::VectorXd dtau_dp(const Eigen::VectorXd& p) const {
    return dense_ ? Eigen::VectorXd(inv_metric_ * p) : Eigen::VectorXd(diag_.cwiseProduct(p));
  }
  double hamiltonian(const Point& z) const {
    if (!(z.lp > kNegInf)) return std::numeric_limits<double>::infinity();
    const double h = -z.lp + 0.5 * z.p.dot(dtau_dp(z.p));
    return std::isnan(h) ? std::numeric_limits<double>::infinity() : h;
  }
  template <Target T>
  void leapfrog(const T& t, Point& z, double eps, Counters& cnt) const {
    z.p += 0.5 * eps * z.g;
    z.q += eps * dtau_dp(z.p);
    z.lp = eval_gradient(t, z.q, z.g, cnt);
    z.p += 0.5 * eps * z.g;
  }
  static double log_sum_exp(double a, double b) {
    if (a == kNegInf) return b;
    if (b == kNegInf) return a;
    const double m = std::max(a, b);
    return m + std::log(std::exp(a - m) + std::exp(b - m));
  }
  static bool criterion(const Eigen::VectorXd& p_sharp_minus, const Eigen::VectorXd& p_sharp_plus,
                        const Eigen::VectorXd& rho) {
    return p_sharp_plus.dot(rho) > 0 && p_sharp_minus.dot(rho) > 0;
  }

  /// Stan's heuristic: double or halve eps until the one-step acceptance crosses 0.8.
  template <Target T>
  void init_stepsize(const T& t, Rng& rng, Counters& cnt) {
    const Point start = cur_;
    int direction = 0;
    for (int iter = 0; iter < 200; ++iter) {
      Point z = start;
      sample_momentum(z, rng);
      const double h0 = hamiltonian(z);
      leapfrog(t, z, eps_, cnt);
      const double delta_h = h0 - hamiltonian(z);
      if (direction == 0) {  // Stan decides the direction first, then re-tests the same eps
        direction = delta_h > std::log(0.8) ? 1 : -1;
        continue;
      }
      if (direction == 1 && !(delta_h > std::log(0.8))) break;
      if (direction == -1 && !(delta_h < std::log(0.8))) break;
      eps_ = direction == 1 ? 2 * eps_ : 0.5 * eps_;
      SIEVE_CHECK(eps_ <= 1e7, "nuts: step size diverged to {} (improper posterior?)", eps_);
      SIEVE_CHECK(eps_ > 0, "nuts: no acceptably small step size");
    }
  }

  struct Tree {
    Point z;  // the moving end of the trajectory
    double h0 = 0;
    int n_leapfrog = 0;
    double sum_metro_prob = 0;
    bool divergent = false;
  };

  template <Target T>
  bool build_tree(const T& t, Rng& rng, Counters& cnt, Tree& tr, int depth, Point& z_propose,
                  Eigen::VectorXd& p_sharp_beg, Eigen::VectorXd& p_sharp_end, Eigen::VectorXd& rho,
                  Eigen::VectorXd& p_beg, Eigen::VectorXd& p_end, double sign,
                  double& log_sum_weight) {
    if (depth == 0) {
      leapfrog(t, tr.z, sign * eps_, cnt);
      ++tr.n_leapfrog;
      const double h = hamiltonian(tr.z);
      if (h - tr.h0 > s_.max_delta_h) tr.divergent = true;
      log_sum_weight = log_sum_exp(log_sum_weight, tr.h0 - h);
      tr.sum_metro_prob += tr.h0 - h > 0 ? 1.0 : std::exp(tr.h0 - h);
      z_propose = tr.z;
      p_sharp_beg = dtau_dp(tr.z.p);
      p_sharp_end = p_sharp_beg;
      rho += tr.z.p;
      p_beg = tr.z.p;
      p_end = p_beg;
      return !tr.divergent;
    }
    const Eigen::Index d = tr.z.q.size();
    double log_sum_weight_init = kNegInf;
    Eigen::VectorXd p_init_end(d), p_sharp_init_end(d), rho_init = Eigen::VectorXd::Zero(d);
    if (!build_tree(t, rng, cnt, tr, depth - 1, z_propose, p_sharp_beg, p_sharp_init_end, rho_init,
                    p_beg, p_init_end, sign, log_sum_weight_init))
      return false;
    Point z_propose_final = tr.z;
    double log_sum_weight_final = kNegInf;
    Eigen::VectorXd p_final_beg(d), p_sharp_final_beg(d), rho_final = Eigen::VectorXd::Zero(d);
    if (!build_tree(t, rng, cnt, tr, depth - 1, z_propose_final, p_sharp_final_beg, p_sharp_end,
                    rho_final, p_final_beg, p_end, sign, log_sum_weight_final))
      return false;
    // Multinomial sample between the two halves, weighted by their total weights.
    const double log_sum_weight_subtree = log_sum_exp(log_sum_weight_init, log_sum_weight_final);
    log_sum_weight = log_sum_exp(log_sum_weight, log_sum_weight_subtree);
    if (log_sum_weight_final > log_sum_weight_subtree) {
      z_propose = z_propose_final;
    } else if (rng.uniform() < std::exp(log_sum_weight_final - log_sum_weight_subtree)) {
      z_propose = z_propose_final;
    }
    const Eigen::VectorXd rho_subtree = rho_init + rho_final;
    rho += rho_subtree;
    bool persist = criterion(p_sharp_beg, p_sharp_end, rho_subtree);
    persist = persist && criterion(p_sharp_beg, p_sharp_final_beg, rho_init + p_final_beg);
    persist = persist && criterion(p_sharp_init_end, p_sharp_end, rho_final + p_init_end);
    return persist;
  }

  template <Target T>
  StepInfo transition(const T& t, Rng& rng, Counters& cnt) {
    Tree tr;
    tr.z = cur_;
    sample_momentum(tr.z, rng);
    const Eigen::Index d = tr.z.q.size();
    Point z_fwd = tr.z, z_bck = tr.z, z_sample = tr.z, z_propose = tr.z;
    Eigen::VectorXd p_fwd_fwd = tr.z.p, p_sharp_fwd_fwd = dtau_dp(tr.z.p);
    Eigen::VectorXd p_fwd_bck = p_fwd_fwd, p_sharp_fwd_bck = p_sharp_fwd_fwd;
    Eigen::VectorXd p_bck_fwd = p_fwd_fwd, p_sharp_bck_fwd = p_sharp_fwd_fwd;
    Eigen::VectorXd p_bck_bck = p_fwd_fwd, p_sharp_bck_bck = p_sharp_fwd_fwd;
    Eigen::VectorXd rho = tr.z.p;
    double log_sum_weight = 0;  // log(exp(H0 - H0))
    tr.h0 = hamiltonian(tr.z);
    int depth = 0;
    while (depth < s_.max_depth) {
      Eigen::VectorXd rho_fwd = Eigen::VectorXd::Zero(d), rho_bck = Eigen::VectorXd::Zero(d);
      double log_sum_weight_subtree = kNegInf;
      bool valid;
      if (rng.uniform() > 0.5) {
        tr.z = z_fwd;
        rho_bck = rho;
        p_bck_fwd = p_fwd_bck;
        p_sharp_bck_fwd = p_sharp_fwd_bck;
        valid = build_tree(t, rng, cnt, tr, depth, z_propose, p_sharp_fwd_bck, p_sharp_fwd_fwd,
                           rho_fwd, p_fwd_bck, p_fwd_fwd, 1.0, log_sum_weight_subtree);
        z_fwd = tr.z;
      } else {
        tr.z = z_bck;
        rho_fwd = rho;
        p_fwd_bck = p_bck_fwd;
        p_sharp_fwd_bck = p_sharp_bck_fwd;
        valid = build_tree(t, rng, cnt, tr, depth, z_propose, p_sharp_bck_fwd, p_sharp_bck_bck,
                           rho_bck, p_bck_fwd, p_bck_bck, -1.0, log_sum_weight_subtree);
        z_bck = tr.z;
      }
      if (!valid) break;
      ++depth;
      // Biased progressive sampling: prefer the new subtree when it outweighs the old trajectory.
      if (log_sum_weight_subtree > log_sum_weight) {
        z_sample = z_propose;
      } else if (rng.uniform() < std::exp(log_sum_weight_subtree - log_sum_weight)) {
        z_sample = z_propose;
      }
      log_sum_weight = log_sum_exp(log_sum_weight, log_sum_weight_subtree);
      rho = rho_bck + rho_fwd;
      bool persist = criterion(p_sharp_bck_bck, p_sharp_fwd_fwd, rho);
      persist = persist && criterion(p_sharp_bck_bck, p_sharp_fwd_bck, rho_bck + p_fwd_bck);
      persist = persist && criterion(p_sharp_bck_fwd, p_sharp_fwd_fwd, rho_fwd + p_bck_fwd);
      if (!persist) break;
    }
    StepInfo info;
    info.tree_depth = depth;
    info.num_leapfrog = tr.n_leapfrog;
    info.divergent = tr.divergent;
    info.accept_prob = tr.n_leapfrog > 0 ? tr.sum_metro_prob / tr.n_leapfrog : 0.0;
    info.accepted = z_sample.q != cur_.q;
    cur_ = std::move(z_sample);
    return info;
  }

  NutsSettings s_;
  DualAveraging da_;
  WindowSchedule schedule_;
  WelfordCovariance welford_;
  bool dense_ = false, need_stepsize_init_ = false;
  Eigen::MatrixXd inv_metric_, chol_;
  Eigen::VectorXd diag_;
  double eps_ = 1;
  Point cur_;
};

}  // namespace detail

/// @brief Multinomial NUTS with Stan's warm-up (see the file comment).
template <Target T>
Chain nuts(const T& target, const Eigen::VectorXd& init, const NutsSettings& settings, Rng& rng) {
  detail::NutsKernel kernel(settings);
  return detail::run_kernel(target, kernel, init, settings, rng, "nuts");
}

extern template Chain nuts<AnyTarget>(const AnyTarget&, const Eigen::VectorXd&, const NutsSettings&,
                                      Rng&);

}  // namespace sieve::mcmc
