// The fixed-preconditioner Langevin kernel behind mala, pmala and gi_mala (internal).
//
// Proposal Y = X + a(s) A grad log pi(X) + sqrt(b(s)) L z with L L' = A, z ~ N(0, I), and the
// ordinary MH ratio. MALA (Roberts & Tweedie 1996): s = h, a = h/2, b = h. Gaussian-invariant
// MALA (Titsias et al. 2025, eq. 8): s = gamma in (0, 2), a = gamma, b = 2 gamma - gamma^2, which
// is reversible w.r.t. every N(mu, A), so a Gaussian target with covariance A accepts every move.
// Warm-up: dual averaging of log h (MALA) or logit(gamma / gamma_max) (GI) towards
// target_accept, and A from Stan's slow windows: "covariance" (moment matching on the expanding
// slow-phase window, GaussianMomentAdapter in driver.h, starting from the Laplace covariance when
// laplace_init) or "fisher" (inverse of the regularised window mean of grad grad', the Gaussian-
// optimal preconditioner of Titsias 2023); "reference" (the target's Gaussian reference, e.g. the
// prior of a latent Gaussian model) and "laplace" (inverse negative Hessian at the mode) fix A at
// the start; "none" keeps the given A (identity by default).
#pragma once

#include <Eigen/Dense>
#include <string>

#include "sieve/core/error.h"
#include "sieve/core/rng.h"
#include "sieve/mcmc/chain.h"
#include "sieve/mcmc/samplers/driver.h"
#include "sieve/mcmc/samplers/laplace.h"
#include "sieve/mcmc/target.h"

namespace sieve::mcmc::detail {

/// One preconditioned Langevin proposal Y ~ N(mean_x, b A), A = L L' (chol = L), with drift
/// mean(z) = z + drift A grad log pi(z), and its log MH ratio (-inf when pi(Y) = 0). Draws only the
/// proposal's normals; the caller draws the acceptance. Shared by LangevinKernel and the warm-up
/// local moves of adaptive independent Metropolis.
struct LangevinProposal {
  Eigen::VectorXd y, gy, mean_y;  // mean_y is set only when pi(Y) > 0
  double lpy = kNegInf, log_alpha = kNegInf;
};

template <Target T>
LangevinProposal langevin_proposal(const T& t, const Eigen::VectorXd& x, double lpx,
                                   const Eigen::VectorXd& mean_x, const Eigen::MatrixXd& a,
                                   const Eigen::MatrixXd& chol, double drift, double b, Rng& rng,
                                   Counters& cnt) {
  LangevinProposal p;
  p.y = mean_x + std::sqrt(b) * (chol * standard_normal(rng, x.size()));
  p.lpy = eval_gradient(t, p.y, p.gy, cnt);
  if (p.lpy > kNegInf) {
    p.mean_y = p.y + drift * (a * p.gy);
    // log q(x | y) - log q(y | x) through r' A^{-1} r = |L^{-1} r|^2; the constants cancel.
    const auto whitened_sq = [&](const Eigen::VectorXd& r) {
      return chol.triangularView<Eigen::Lower>().solve(r).squaredNorm();
    };
    p.log_alpha = p.lpy - lpx - (whitened_sq(x - p.mean_y) - whitened_sq(p.y - mean_x)) / (2 * b);
  }
  return p;
}

enum class LangevinScaling { kMala, kGaussianInvariant };

/// Internal configuration shared by mala / pmala / gi_mala.
struct LangevinConfig {
  const char* name = "mala";
  LangevinScaling scaling = LangevinScaling::kMala;
  double tuning = 0;  ///< initial h (MALA, 0 = d^{-1/3}) or gamma (GI)
  bool adapt_tuning = true;
  double target_accept = 0.574;
  double gamma_max = 1.0;               ///< GI only: gamma is adapted in (0, gamma_max]
  std::string preconditioner = "none";  ///< none | covariance | fisher | reference | laplace
  bool dense = true;
  Eigen::MatrixXd sigma;  ///< initial / fixed A [d, d]; empty = I (or Laplace, see below)
  Eigen::VectorXd mu;     ///< GI: fixed Gaussian mean reported for control variates; empty = adapt
  /// "covariance" / "fisher" without a given sigma: start A at the Laplace covariance instead of I
  /// (an identity start on a posterior with sd 0.1..2 and strong correlations spends the whole
  /// warm-up learning the scales; observed on ionosphere, d = 35: R-hat 2 after 1000 warm-up).
  bool laplace_init = false;
};

/// Converts the tuning parameter to and from the unconstrained scale that dual averaging uses.
struct TuningMap {
  LangevinScaling scaling;
  double gamma_max;
  double to_free(double s) const {
    if (scaling == LangevinScaling::kMala) return std::log(s);
    const double p = s / gamma_max;
    return std::log(p / (1 - p));
  }
  double from_free(double u) const {
    u = std::clamp(u, -30.0, 30.0);
    if (scaling == LangevinScaling::kMala) return std::exp(u);
    return gamma_max / (1 + std::exp(-u));
  }
  double drift(double s) const { return scaling == LangevinScaling::kMala ? 0.5 * s : s; }
  double noise_var(double s) const { return scaling == LangevinScaling::kMala ? s : 2 * s - s * s; }
};

/// Accumulates x (covariance) or grad (Fisher) over the slow windows and returns the new A.
class PreconditionerAdapter {
 public:
  void init(const std::string& mode, bool dense, const Eigen::MatrixXd& a0, int64_t num_warmup,
            const char* name) {
    const Eigen::Index d = a0.rows();
    SIEVE_CHECK(
        mode == "none" || mode == "covariance" || mode == "fisher" || mode == "reference" ||
            mode == "laplace",
        "{}: preconditioner must be none, covariance, fisher, reference or laplace, got '{}'", name,
        mode);
    // reference / laplace fix A at the start (see LangevinKernel::init): nothing to adapt.
    mode_ = mode == "reference" || mode == "laplace" ? "none" : mode;
    dense_ = dense;
    schedule_ = WindowSchedule(num_warmup);
    // Per-window covariances collapse (25 draws in 35 dimensions are rank deficient, the next
    // window mixes worse still); the expanding, shrunk estimate of GI-RWM / adaptive IMH does not.
    moments_.init(num_warmup, Eigen::VectorXd::Zero(d), a0);
    fisher_ = Eigen::MatrixXd::Zero(d, d);
    n_ = 0;
  }
  bool active() const { return mode_ != "none"; }
  /// Feeds warm-up iteration `it`; returns true (with the new A in `a`) at a window end.
  bool update(int64_t it, const Eigen::VectorXd& x, const Eigen::VectorXd& g, bool accepted,
              Eigen::MatrixXd& a) {
    if (!active()) return false;
    if (mode_ == "covariance") {
      if (!moments_.update(it, x, accepted, dense_)) return false;
      a = moments_.cov();
      return true;
    }
    if (!schedule_.in_window(it)) return false;
    fisher_.selfadjointView<Eigen::Lower>().rankUpdate(g);
    ++n_;
    if (!schedule_.window_end(it)) return false;
    const Eigen::Index d = x.size();
    {
      // E[g g'] = Fisher information; shrink towards I like Stan's metric, then invert.
      Eigen::MatrixXd f = fisher_.selfadjointView<Eigen::Lower>();
      f /= double(n_);
      if (!dense_) f = Eigen::MatrixXd(f.diagonal().asDiagonal());
      const double n = double(n_);
      f *= n / (n + 5.0);
      f.diagonal().array() += 1e-3 * 5.0 / (n + 5.0);
      a = f.ldlt().solve(Eigen::MatrixXd::Identity(d, d));
      a = (0.5 * (a + a.transpose())).eval();
      fisher_.setZero();
      n_ = 0;
    }
    return true;
  }

 private:
  std::string mode_ = "none";
  bool dense_ = true;
  WindowSchedule schedule_;
  GaussianMomentAdapter moments_;
  Eigen::MatrixXd fisher_;
  int64_t n_ = 0;
};

class LangevinKernel {
 public:
  explicit LangevinKernel(LangevinConfig c, const RunSettings& run)
      : c_(std::move(c)), run_(run), map_{c_.scaling, c_.gamma_max}, da_(c_.target_accept) {}

  template <Target T>
  void init(const T& t, const Eigen::VectorXd& x0, Counters& cnt) {
    const Eigen::Index d = t.dim();
    SIEVE_CHECK(c_.target_accept > 0 && c_.target_accept < 1,
                "{}: target_accept must be in (0, 1), got {}", c_.name, c_.target_accept);
    if (c_.scaling == LangevinScaling::kGaussianInvariant) {
      SIEVE_CHECK(c_.gamma_max > 0 && c_.gamma_max < 2, "{}: gamma_max must be in (0, 2), got {}",
                  c_.name, c_.gamma_max);
      SIEVE_CHECK(c_.tuning > 0 && c_.tuning < 2, "{}: gamma must be in (0, 2), got {}", c_.name,
                  c_.tuning);
      // gamma starts inside (0, gamma_max) so that its logit is finite.
      s_ = c_.adapt_tuning ? std::min(c_.tuning, 0.999 * c_.gamma_max) : c_.tuning;
    } else {
      SIEVE_CHECK(c_.tuning >= 0, "{}: step_size must be >= 0, got {}", c_.name, c_.tuning);
      s_ = c_.tuning > 0 ? c_.tuning : std::pow(double(d), -1.0 / 3.0);
    }
    if (c_.preconditioner == "reference" && !c_.sigma.size()) {
      // Latent Gaussian models: the prior covariance (pCN-like GI proposals).
      SIEVE_CHECK(has_gaussian_reference(t), "{}: target has no Gaussian reference", c_.name);
      Eigen::VectorXd m;
      Eigen::MatrixXd cov;
      if constexpr (GaussianReferenceTarget<T>) t.gaussian_reference(m, cov);
      set_preconditioner(cov, d);
    } else if (c_.preconditioner == "laplace" && !c_.sigma.size()) {
      const LaplaceApproximation la = laplace_approximation(t, x0);
      cnt.gradient += la.gradient_evals;
      set_preconditioner(la.cov, d);
    } else if (c_.laplace_init && !c_.sigma.size() &&
               (c_.preconditioner == "covariance" || c_.preconditioner == "fisher")) {
      // Only A starts at the Laplace covariance; the chain keeps its own initial point.
      const LaplaceApproximation la = laplace_approximation(t, x0);
      cnt.gradient += la.gradient_evals;
      set_preconditioner(la.cov, d);
      if (c_.scaling == LangevinScaling::kMala && c_.tuning <= 0)
        s_ = 1.65 * 1.65 * std::pow(double(d), -1.0 / 3.0);
    } else {
      set_preconditioner(c_.sigma.size() ? c_.sigma : Eigen::MatrixXd::Identity(d, d), d);
    }
    if (c_.mu.size()) SIEVE_CHECK(c_.mu.size() == d, "{}: mu must have {} entries", c_.name, d);
    da_.restart(map_.to_free(s_));
    adapter_.init(c_.preconditioner, c_.dense, a_, run_.num_warmup, c_.name);
    mean_late_.reset(d);
    x_ = x0;
    lp_ = eval_gradient(t, x_, g_, cnt);
    mean_x_ = proposal_mean(x_, g_);
  }

  template <Target T>
  StepInfo step(const T& t, Rng& rng, Counters& cnt, ProposalOut* out) {
    LangevinProposal p = langevin_proposal(t, x_, lp_, mean_x_, a_, chol_, map_.drift(s_),
                                           map_.noise_var(s_), rng, cnt);
    StepInfo info;
    info.accept_prob = accept_probability(p.log_alpha);
    if (out) {
      out->y = p.y;
      out->mean = mean_x_;
    }
    if (metropolis_accept(p.log_alpha, rng)) {
      info.accepted = true;
      x_ = std::move(p.y);
      g_ = std::move(p.gy);
      lp_ = p.lpy;
      mean_x_ = std::move(p.mean_y);
    }
    return info;
  }

  void adapt(int64_t it, const StepInfo& info) {
    if (c_.adapt_tuning) s_ = map_.from_free(da_.update(info.accept_prob));
    if (2 * it >= run_.num_warmup) mean_late_.add(x_);
    Eigen::MatrixXd a;
    if (adapter_.update(it, x_, g_, info.accepted, a)) {
      set_preconditioner(a, x_.size());
      // A now has the target's scale: MALA restarts near its optimal h for Gaussians,
      // 1.65^2 d^{-1/3} (Roberts & Rosenthal 1998); gamma is scale-free and keeps its value.
      if (c_.scaling == LangevinScaling::kMala)
        s_ = 1.65 * 1.65 * std::pow(double(x_.size()), -1.0 / 3.0);
      if (c_.adapt_tuning) da_.restart(map_.to_free(s_));
      mean_x_ = proposal_mean(x_, g_);
    } else if (c_.adapt_tuning) {
      mean_x_ = proposal_mean(x_, g_);
    }
  }

  void finish_warmup(AdaptedParameters& p) {
    if (c_.adapt_tuning && run_.num_warmup > 0) s_ = map_.from_free(da_.x_bar());
    mean_x_ = proposal_mean(x_, g_);
    if (c_.scaling == LangevinScaling::kMala)
      p.step_size = s_;
    else
      p.gamma = s_;
    p.sigma = a_;
    p.proposal_cov = map_.noise_var(s_) * a_;
    if (c_.mu.size())
      p.mu = c_.mu;
    else if (mean_late_.count() > 0)
      p.mu = mean_late_.mean();
    else
      p.mu = x_;
  }

  const Eigen::VectorXd& x() const { return x_; }
  double logp() const { return lp_; }
  const Eigen::VectorXd& grad() const { return g_; }
  bool has_gradient() const { return true; }
  ProposalKind proposal_kind() const { return ProposalKind::kGaussian; }

 private:
  void set_preconditioner(const Eigen::MatrixXd& a, Eigen::Index d) {
    SIEVE_CHECK(a.rows() == d && a.cols() == d, "{}: sigma must be {}x{}, got {}x{}", c_.name, d, d,
                a.rows(), a.cols());
    a_ = a;
    chol_ = cholesky_lower(a_, c_.name);
  }
  Eigen::VectorXd proposal_mean(const Eigen::VectorXd& x, const Eigen::VectorXd& g) const {
    return x + map_.drift(s_) * (a_ * g);
  }

  LangevinConfig c_;
  RunSettings run_;
  TuningMap map_;
  DualAveraging da_;
  PreconditionerAdapter adapter_;
  RunningMean mean_late_;
  Eigen::MatrixXd a_, chol_;
  double s_ = 1;
  Eigen::VectorXd x_, g_, mean_x_;
  double lp_ = 0;
};

}  // namespace sieve::mcmc::detail
