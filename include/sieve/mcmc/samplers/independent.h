// The independent Metropolis-Hastings kernel behind imh and aimh (internal).
//
// Y ~ q independent of X, q = N(m, S) or a multivariate Student-t t_nu(m, S); accept with
// min(1, w(Y) / w(X)), w = pi / q. The proposals are i.i.d. draws from q, and with q = pi every
// move is accepted. Adaptive version (Liu, Dellaportas & Titsias 2024, "adapts the proposal so
// that its KL divergence with the target is reduced"; the algorithm is our reconstruction):
// moment matching, i.e. the KL(pi || q)-minimising Gaussian, on the warm-up draws (see
// GaussianMomentAdapter), inflated by cov_scale (Student-t: scale matrix set so that q's covariance matches), frozen after
// warm-up so that the control variate with known E_q[F] applies. When q is the Laplace
// approximation the chain starts at its mode (a tail start would never move).
#pragma once

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <string>

#include "sieve/core/error.h"
#include "sieve/core/rng.h"
#include "sieve/mcmc/chain.h"
#include "sieve/mcmc/samplers/driver.h"
#include "sieve/mcmc/samplers/langevin.h"
#include "sieve/mcmc/samplers/laplace.h"
#include "sieve/mcmc/target.h"

namespace sieve::mcmc::detail {

struct IndependentConfig {
  const char* name = "imh";
  std::string proposal = "gaussian";  ///< gaussian | t
  double nu = 5;
  bool adapt = false;
  bool laplace_init = true;  ///< when mean/cov are not given: start at the Laplace approximation
  double cov_scale = 1.0;    ///< inflation of the moment-matched covariance (adaptive only)
  /// Adaptive only: probability of a local Langevin move (instead of an independence move) at a
  /// warm-up iteration. Both kernels leave pi invariant, so the mixture does too; the local moves
  /// keep the warm-up chain exploring when the initial q (Laplace) is far from pi and independence
  /// moves are almost all rejected (ionosphere: 1.4% acceptance, no adaptation in 3000 warm-up
  /// iterations without them). The stored draws use independence moves only.
  double warmup_local = 0.5;
  double local_accept = 0.574;  ///< acceptance rate the local moves' step is dual-averaged to
  bool dense = true;
  Eigen::VectorXd mean;
  Eigen::MatrixXd cov;  ///< covariance of q (for t: of the t distribution, requires nu > 2)
};

class IndependentKernel {
 public:
  IndependentKernel(IndependentConfig c, const RunSettings& run) : c_(std::move(c)), run_(run) {}

  template <Target T>
  void init(const T& t, const Eigen::VectorXd& x0, Counters& cnt) {
    const Eigen::Index d = t.dim();
    SIEVE_CHECK(c_.proposal == "gaussian" || c_.proposal == "t",
                "{}: proposal must be gaussian or t, got '{}'", c_.name, c_.proposal);
    student_ = c_.proposal == "t";
    SIEVE_CHECK(!student_ || c_.nu > 2, "{}: nu must be > 2 (finite covariance), got {}", c_.name,
                c_.nu);
    SIEVE_CHECK(c_.cov_scale > 0, "{}: cov_scale must be positive", c_.name);
    Eigen::VectorXd m = c_.mean;
    Eigen::MatrixXd cov = c_.cov;
    Eigen::VectorXd start = x0;
    if (!m.size() || !cov.size()) {
      if (c_.laplace_init) {
        const LaplaceApproximation la = laplace_approximation(t, x0);
        cnt.gradient += la.gradient_evals;
        if (!m.size()) m = la.mode;
        if (!cov.size()) cov = la.cov;
        // An independence chain started where pi / q is huge (a tail point, e.g. Stan's U(-2, 2)
        // init for a posterior with sd 0.1) rejects every proposal forever: start at the mode.
        start = la.mode;
      } else {
        if (!m.size()) m = x0;
        if (!cov.size()) cov = Eigen::MatrixXd::Identity(d, d);
      }
    }
    SIEVE_CHECK(m.size() == d, "{}: mean must have {} entries, got {}", c_.name, d, m.size());
    SIEVE_CHECK(cov.rows() == d && cov.cols() == d, "{}: cov must be {}x{}", c_.name, d, d);
    set_proposal(m, cov);
    moments_.init(c_.adapt ? run_.num_warmup : 0, m, cov);
    SIEVE_CHECK(c_.warmup_local >= 0 && c_.warmup_local <= 1,
                "{}: warmup_local must be in [0, 1], got {}", c_.name, c_.warmup_local);
    SIEVE_CHECK(c_.local_accept > 0 && c_.local_accept < 1,
                "{}: local_accept must be in (0, 1), got {}", c_.name, c_.local_accept);
    local_ = c_.adapt && run_.num_warmup > 0 && c_.warmup_local > 0;
    local_da_ = DualAveraging(c_.local_accept);
    restart_local_step(d);
    need_grad_ = run_.store_gradients || local_;
    x_ = start;
    lp_ = eval_point(t, x_, need_grad_, g_, cnt);
    log_w_ = lp_ - log_q(x_);
  }

  template <Target T>
  StepInfo step(const T& t, Rng& rng, Counters& cnt, ProposalOut* out) {
    if (local_ && rng.uniform() < c_.warmup_local) return local_step(t, rng, cnt);
    const Eigen::Index d = x_.size();
    Eigen::VectorXd z = chol_ * standard_normal(rng, d);
    if (student_) z *= std::sqrt(c_.nu / (2 * gamma_variate(rng, c_.nu / 2)));
    Eigen::VectorXd y = m_ + z;
    Eigen::VectorXd gy;
    const double lpy = eval_point(t, y, need_grad_, gy, cnt);
    const double log_wy = lpy > kNegInf ? lpy - log_q(y) : kNegInf;
    const double log_alpha = log_wy > kNegInf ? log_wy - log_w_ : kNegInf;
    StepInfo info;
    info.accept_prob = accept_probability(log_alpha);
    if (out) out->y = y;
    if (metropolis_accept(log_alpha, rng)) {
      info.accepted = true;
      x_ = std::move(y);
      g_ = std::move(gy);
      lp_ = lpy;
      log_w_ = log_wy;
    }
    return info;
  }

  void adapt(int64_t it, const StepInfo& info) {
    if (!c_.adapt) return;
    if (moments_.update(it, x_, info.accepted, c_.dense)) {
      set_proposal(moments_.mean(), c_.cov_scale * moments_.cov());
      log_w_ = lp_ - log_q(x_);
      if (local_) restart_local_step(x_.size());
    }
  }

  void finish_warmup(AdaptedParameters& p) {
    local_ = false;
    need_grad_ = run_.store_gradients;
    p.mu = m_;
    p.sigma = scale_;
    p.nu = student_ ? c_.nu : std::numeric_limits<double>::infinity();
  }

  const Eigen::VectorXd& x() const { return x_; }
  double logp() const { return lp_; }
  const Eigen::VectorXd& grad() const { return g_; }
  bool has_gradient() const { return need_grad_; }
  ProposalKind proposal_kind() const { return ProposalKind::kIndependent; }

 private:
  /// MALA's optimal step for a Gaussian whose covariance is the preconditioner (Roberts &
  /// Rosenthal 1998), where dual averaging restarts whenever q changes.
  void restart_local_step(Eigen::Index d) {
    local_h_ = 1.65 * 1.65 * std::pow(double(d), -1.0 / 3.0);
    local_da_.restart(std::log(local_h_));
  }

  /// Warm-up only: a preconditioned MALA move (Roberts & Tweedie 1996) with q's scale matrix S,
  /// Y ~ N(X + (h / 2) S grad log pi(X), h S), log h dual-averaged towards local_accept without an
  /// upper bound, so that the moves can reach pi's spread even when q is far too narrow.
  template <Target T>
  StepInfo local_step(const T& t, Rng& rng, Counters& cnt) {
    const Eigen::VectorXd mx = x_ + 0.5 * local_h_ * (scale_ * g_);
    LangevinProposal p =
        langevin_proposal(t, x_, lp_, mx, scale_, chol_, 0.5 * local_h_, local_h_, rng, cnt);
    StepInfo info;
    info.accept_prob = accept_probability(p.log_alpha);
    local_h_ = std::exp(std::clamp(local_da_.update(info.accept_prob), -30.0, 30.0));
    if (metropolis_accept(p.log_alpha, rng)) {
      info.accepted = true;
      x_ = std::move(p.y);
      g_ = std::move(p.gy);
      lp_ = p.lpy;
      log_w_ = lp_ - log_q(x_);
    }
    return info;
  }

  /// q = N(m, cov) or t_nu(m, S) with S = cov (nu - 2) / nu, so Cov_q = cov either way.
  void set_proposal(const Eigen::VectorXd& m, const Eigen::MatrixXd& cov) {
    const Eigen::Index d = m.size();
    SIEVE_CHECK(cov.rows() == d && cov.cols() == d, "{}: cov must be {}x{}", c_.name, d, d);
    m_ = m;
    scale_ = student_ ? Eigen::MatrixXd(cov * ((c_.nu - 2) / c_.nu)) : cov;
    chol_ = cholesky_lower(scale_, c_.name);
  }
  /// log q(y) up to a constant that does not change while q is fixed.
  double log_q(const Eigen::VectorXd& y) const {
    const double r2 = chol_.triangularView<Eigen::Lower>().solve(y - m_).squaredNorm();
    if (!student_) return -0.5 * r2;
    return -0.5 * (c_.nu + double(y.size())) * std::log1p(r2 / c_.nu);
  }

  IndependentConfig c_;
  RunSettings run_;
  bool student_ = false;
  GaussianMomentAdapter moments_;
  Eigen::VectorXd m_;
  Eigen::MatrixXd scale_, chol_;
  Eigen::VectorXd x_, g_;
  double lp_ = 0, log_w_ = 0;
  bool need_grad_ = false;
  bool local_ = false;  ///< warm-up with local moves
  double local_h_ = 1;
  DualAveraging local_da_;
};

}  // namespace sieve::mcmc::detail
