// Shared machinery of the samplers: guarded evaluation, the Metropolis test, Stan-style warm-up
// pieces (dual averaging, slow-window schedule, Welford covariance) and the driver loop that runs
// a transition kernel through warm-up and sampling and fills a Chain.
//
// A kernel (internal) holds its current state and provides: init(target, x0, counters),
// step(target, rng, counters, ProposalOut*) -> StepInfo, adapt(iteration, StepInfo),
// finish_warmup(AdaptedParameters&), x(), logp(), grad(), proposal_kind(). Dual averaging and the
// window schedule follow Stan (Hoffman & Gelman 2014; Stan reference manual, "HMC algorithm
// parameters"): delta target, gamma 0.05, kappa 0.75, t0 10; windows 75 / 25-doubling / 50.
#pragma once

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "sieve/core/error.h"
#include "sieve/core/rng.h"
#include "sieve/core/timer.h"
#include "sieve/mcmc/chain.h"
#include "sieve/mcmc/target.h"

namespace sieve::mcmc::detail {

inline constexpr double kNegInf = -std::numeric_limits<double>::infinity();

struct Counters {
  int64_t density = 0, gradient = 0, hessian = 0;
};

/// log pi(x) with non-finite values (NaN, +-inf) mapped to -inf: a proposal there is rejected.
template <Target T>
double eval_density(const T& t, const Eigen::VectorXd& x, Counters& c) {
  ++c.density;
  const double lp = t.log_density(x);
  return std::isfinite(lp) ? lp : kNegInf;
}

/// log pi(x) and its gradient; a non-finite value or gradient gives -inf (and a zero gradient).
template <Target T>
double eval_gradient(const T& t, const Eigen::VectorXd& x, Eigen::VectorXd& g, Counters& c) {
  ++c.gradient;
  const double lp = t.log_density_and_gradient(x, g);
  if (!std::isfinite(lp) || g.size() != x.size() || !g.allFinite()) {
    g.setZero(x.size());
    return kNegInf;
  }
  return lp;
}

/// Gradient-free samplers evaluate the gradient only when it is to be stored (ZV control variates).
template <Target T>
double eval_point(const T& t, const Eigen::VectorXd& x, bool with_gradient, Eigen::VectorXd& g,
                  Counters& c) {
  return with_gradient ? eval_gradient(t, x, g, c) : eval_density(t, x, c);
}

/// Metropolis test: accept with probability min(1, exp(log_alpha)); NaN rejects.
inline bool metropolis_accept(double log_alpha, Rng& rng) {
  if (!(log_alpha == log_alpha)) return false;
  if (log_alpha >= 0) return true;
  return std::log(rng.uniform_open()) < log_alpha;
}
inline double accept_probability(double log_alpha) {
  if (!(log_alpha == log_alpha)) return 0.0;
  return log_alpha >= 0 ? 1.0 : std::exp(log_alpha);
}

inline Eigen::VectorXd standard_normal(Rng& rng, Eigen::Index d) {
  Eigen::VectorXd z(d);
  for (Eigen::Index i = 0; i < d; ++i) z[i] = rng.normal();
  return z;
}

/// Gamma(shape, 1) variate (Marsaglia & Tsang 2000; shape < 1 by the u^{1/shape} boost).
inline double gamma_variate(Rng& rng, double shape) {
  if (shape < 1) return gamma_variate(rng, shape + 1) * std::pow(rng.uniform_open(), 1 / shape);
  const double d = shape - 1.0 / 3.0, c = 1 / std::sqrt(9 * d);
  for (;;) {
    double z, v;
    do {
      z = rng.normal();
      v = 1 + c * z;
    } while (v <= 0);
    v = v * v * v;
    const double u = rng.uniform_open();
    if (std::log(u) < 0.5 * z * z + d - d * v + d * std::log(v)) return d * v;
  }
}

/// Lower Cholesky factor of a symmetric positive-definite matrix; retries with growing jitter on
/// the diagonal (relative to its mean) and throws when that fails.
Eigen::MatrixXd cholesky_lower(const Eigen::MatrixXd& m, const char* what);

/// Nesterov dual averaging of a log-scale tuning parameter (Hoffman & Gelman 2014, as in Stan).
class DualAveraging {
 public:
  explicit DualAveraging(double delta = 0.8, double gamma = 0.05, double kappa = 0.75,
                         double t0 = 10)
      : delta_(delta), gamma_(gamma), kappa_(kappa), t0_(t0) {}
  /// Restarts at x0; the shrinkage point is x0 + mu_offset (Stan: log(10 * eps0)).
  void restart(double x0, double mu_offset = std::log(10.0)) {
    mu_ = x0 + mu_offset;
    x_ = x0;
    x_bar_ = 0;
    s_bar_ = 0;
    counter_ = 0;
  }
  /// Feeds one acceptance statistic; returns the new iterate x.
  double update(double accept_stat) {
    if (!(accept_stat == accept_stat)) accept_stat = 0;
    accept_stat = std::min(1.0, accept_stat);
    ++counter_;
    const double eta = 1.0 / (counter_ + t0_);
    s_bar_ = (1 - eta) * s_bar_ + eta * (delta_ - accept_stat);
    x_ = mu_ - s_bar_ * std::sqrt(double(counter_)) / gamma_;
    const double x_eta = std::pow(double(counter_), -kappa_);
    x_bar_ = (1 - x_eta) * x_bar_ + x_eta * x_;
    return x_;
  }
  double x() const { return x_; }
  /// The averaged iterate (the value frozen after warm-up); x() before any update.
  double x_bar() const { return counter_ > 0 ? x_bar_ : x_; }
  double delta() const { return delta_; }

 private:
  double delta_, gamma_, kappa_, t0_;
  double mu_ = 0, x_ = 0, x_bar_ = 0, s_bar_ = 0;
  int64_t counter_ = 0;
};

/// Stan's windowed warm-up: an initial fast buffer, slow windows doubling from base_window (the
/// last one stretched to the terminal buffer), and a terminal fast buffer. With fewer than 20
/// warm-up iterations there are no windows; when the buffers do not fit, Stan's 15% / 75% / 10%
/// split is used.
class WindowSchedule {
 public:
  WindowSchedule() = default;
  WindowSchedule(int64_t num_warmup, int64_t init_buffer = 75, int64_t term_buffer = 50,
                 int64_t base_window = 25);
  /// Iteration `it` (0-based warm-up index) lies in a slow window: accumulate statistics.
  bool in_window(int64_t it) const;
  /// Iteration `it` is the last of a slow window: update the metric/covariance, restart step size.
  bool window_end(int64_t it) const;
  const std::vector<std::pair<int64_t, int64_t>>& windows() const { return windows_; }

 private:
  std::vector<std::pair<int64_t, int64_t>> windows_;  // [begin, end)
};

/// Running mean only (O(d) per update, for the late-warm-up mean GI samplers report).
class RunningMean {
 public:
  void reset(Eigen::Index d) {
    n_ = 0;
    mean_ = Eigen::VectorXd::Zero(d);
  }
  void add(const Eigen::VectorXd& x) {
    ++n_;
    mean_ += (x - mean_) / double(n_);
  }
  int64_t count() const { return n_; }
  const Eigen::VectorXd& mean() const { return mean_; }

 private:
  int64_t n_ = 0;
  Eigen::VectorXd mean_;
};

/// Running mean and covariance (Welford), with Stan's shrinkage towards a small multiple of I.
class WelfordCovariance {
 public:
  explicit WelfordCovariance(Eigen::Index d = 0) { reset(d); }
  void reset(Eigen::Index d) {
    n_ = 0;
    mean_ = Eigen::VectorXd::Zero(d);
    m2_ = Eigen::MatrixXd::Zero(d, d);
  }
  void add(const Eigen::VectorXd& x) {
    ++n_;
    const Eigen::VectorXd delta = x - mean_;
    mean_ += delta / double(n_);
    m2_.selfadjointView<Eigen::Lower>().rankUpdate(delta, 1.0 - 1.0 / double(n_));
  }
  int64_t count() const { return n_; }
  const Eigen::VectorXd& mean() const { return mean_; }
  /// Sample covariance (n - 1 denominator); requires count() >= 2.
  Eigen::MatrixXd covariance() const {
    Eigen::MatrixXd c = m2_.selfadjointView<Eigen::Lower>();
    return c / double(n_ - 1);
  }
  /// Stan: (n / (n + 5)) * cov + shrink * (5 / (n + 5)) * I, diagonal-only when !dense.
  Eigen::MatrixXd regularized(bool dense, double shrink = 1e-3) const {
    Eigen::MatrixXd c = covariance();
    if (!dense) c = Eigen::MatrixXd(c.diagonal().asDiagonal());
    const double n = double(n_);
    c *= n / (n + 5.0);
    c.diagonal().array() += shrink * 5.0 / (n + 5.0);
    return c;
  }
  /// Sample covariance plus a ridge (5 / (n + 5)) 1e-3 (tr / d) I relative to its own scale, with
  /// no shrinkage of the scale itself: Gaussian proposals built from it (GI, independence) lose
  /// efficiency quickly when too narrow, and a shrunk estimate from a window feeds back into
  /// narrower proposals and slower mixing in the next window.
  Eigen::MatrixXd ridged(bool dense) const {
    Eigen::MatrixXd c = covariance();
    if (!dense) c = Eigen::MatrixXd(c.diagonal().asDiagonal());
    const double n = double(n_), scale = std::max(c.trace() / double(c.rows()), 1e-300);
    c.diagonal().array() += 1e-3 * scale * 5.0 / (n + 5.0);
    return c;
  }

 private:
  int64_t n_ = 0;
  Eigen::VectorXd mean_;
  Eigen::MatrixXd m2_;  // lower triangle holds sum of outer products
};

/// Moment matching for the Gaussian of GI-RWM and adaptive IMH. Per-window estimates are too noisy
/// for proposals whose efficiency hinges on covering the target (25 draws in 8 dimensions give
/// covariance eigenvalues off by 5x; a too-narrow direction makes the chain sticky, the next window
/// narrower still, and q collapses — observed on logistic posteriors). So the window expands over
/// the whole slow phase of Stan's schedule, an update needs at least 10 (d + 1) accepted moves, and
/// the new moments are shrunk towards the current ones with weight (d + 1) / (moves + d + 1).
class GaussianMomentAdapter {
 public:
  void init(int64_t num_warmup, const Eigen::VectorXd& mean, const Eigen::MatrixXd& cov) {
    schedule_ = WindowSchedule(num_warmup);
    welford_.reset(mean.size());
    mean_ = mean;
    cov_ = cov;
    moves_ = 0;
  }
  /// Feeds warm-up iteration `it`; true when mean() / cov() changed.
  bool update(int64_t it, const Eigen::VectorXd& x, bool accepted, bool dense) {
    if (!schedule_.in_window(it)) return false;
    welford_.add(x);
    moves_ += accepted ? 1 : 0;
    const double d1 = double(x.size() + 1);
    if (!schedule_.window_end(it) || double(moves_) < 10 * d1) return false;
    const double w = double(moves_) / (double(moves_) + d1);
    mean_ = w * welford_.mean() + (1 - w) * mean_;
    cov_ = w * welford_.ridged(dense) + (1 - w) * cov_;
    return true;
  }
  const Eigen::VectorXd& mean() const { return mean_; }
  const Eigen::MatrixXd& cov() const { return cov_; }

 private:
  WindowSchedule schedule_;
  WelfordCovariance welford_;
  Eigen::VectorXd mean_;
  Eigen::MatrixXd cov_;
  int64_t moves_ = 0;
};

/// What a kernel reports for one transition.
struct StepInfo {
  double accept_prob = 0;  ///< alpha(X_t, Y_{t+1}), or NUTS' mean tree statistic
  bool accepted = false;
  int tree_depth = 0, num_leapfrog = 0;
  bool divergent = false;
};

/// Where a kernel writes Y_{t+1} and the moments of q(. | X_t) when the driver asks.
struct ProposalOut {
  Eigen::VectorXd y, mean, var;  ///< var only for state-dependent covariances
};

/// Draws an initial point x ~ U(-radius, radius)^d with a finite log density (100 tries).
template <Target T>
Eigen::VectorXd random_init(const T& t, double radius, Rng& rng) {
  const Eigen::Index d = t.dim();
  Eigen::VectorXd x(d);
  for (int attempt = 0; attempt < 100; ++attempt) {
    for (Eigen::Index i = 0; i < d; ++i) x[i] = radius * (2 * rng.uniform() - 1);
    if (std::isfinite(t.log_density(x))) return x;
  }
  SIEVE_FAIL("no initial point with a finite log density after 100 draws from U(-{}, {})^{}",
             radius, radius, d);
}

void check_run_settings(const RunSettings& s);

/// @brief Runs `kernel` for settings.num_warmup adaptation iterations and settings.num_draws
/// stored iterations, filling the trace (see chain.h for the index convention).
template <Target T, class Kernel>
Chain run_kernel(const T& target, Kernel& kernel, const Eigen::VectorXd& init,
                 const RunSettings& settings, Rng& rng, const std::string& name) {
  check_run_settings(settings);
  const Eigen::Index d = target.dim();
  SIEVE_CHECK(d > 0, "{}: target dimension must be positive, got {}", name, d);
  SIEVE_CHECK(init.size() == d, "{}: initial point has {} entries, target dimension is {}", name,
              init.size(), d);
  SIEVE_CHECK(init.allFinite(), "{}: initial point has non-finite entries", name);
  Chain chain;
  chain.sampler = name;
  Counters counters;
  kernel.init(target, init, counters);
  SIEVE_CHECK(std::isfinite(kernel.logp()), "{}: log density at the initial point is not finite",
              name);
  chain.proposal_kind = kernel.proposal_kind();

  const int64_t num_warmup = settings.num_warmup, n = settings.num_draws;
  int64_t pending_progress = 0;
  auto tick = [&] {
    if (settings.progress && ++pending_progress == 64) {
      settings.progress->advance(pending_progress);
      pending_progress = 0;
    }
  };

  Timer timer;
  if (settings.keep_warmup) {
    chain.warmup_draws.resize(num_warmup, d);
    chain.warmup_log_density.resize(num_warmup);
  }
  for (int64_t it = 0; it < num_warmup; ++it) {
    if (settings.keep_warmup) {
      chain.warmup_draws.row(it) = kernel.x().transpose();
      chain.warmup_log_density[it] = kernel.logp();
    }
    const StepInfo info = kernel.step(target, rng, counters, nullptr);
    kernel.adapt(it, info);
    tick();
  }
  kernel.finish_warmup(chain.adapted);
  chain.warmup_seconds = timer.seconds();
  chain.num_warmup_gradient_evals = counters.gradient;

  timer.reset();
  chain.draws.resize(n, d);
  chain.log_density.resize(n);
  chain.accept_prob.resize(n);
  chain.accepted.assign(n, 0);
  const bool store_prop = settings.store_proposals && chain.proposal_kind != ProposalKind::kNone;
  const bool store_grad = settings.store_gradients && kernel.has_gradient();
  if (store_prop) chain.proposals.resize(n, d);
  if (store_prop && chain.proposal_kind == ProposalKind::kGaussian)
    chain.proposal_means.resize(n, d);
  if (store_grad) chain.gradients.resize(n, d);
  const bool is_nuts = kernel.proposal_kind() == ProposalKind::kNone;
  if (is_nuts) {
    chain.tree_depth.assign(n, 0);
    chain.num_leapfrog.assign(n, 0);
    chain.divergent.assign(n, 0);
  }
  ProposalOut out;
  for (int64_t t = 0; t < n; ++t) {
    chain.draws.row(t) = kernel.x().transpose();
    chain.log_density[t] = kernel.logp();
    if (store_grad) chain.gradients.row(t) = kernel.grad().transpose();
    const StepInfo info = kernel.step(target, rng, counters, store_prop ? &out : nullptr);
    chain.accept_prob[t] = info.accept_prob;
    chain.accepted[t] = info.accepted ? 1 : 0;
    if (store_prop) {
      chain.proposals.row(t) = out.y.transpose();
      if (chain.proposal_kind == ProposalKind::kGaussian) {
        chain.proposal_means.row(t) = out.mean.transpose();
        if (out.var.size() == d) {
          if (chain.proposal_vars.rows() != n) chain.proposal_vars.resize(n, d);
          chain.proposal_vars.row(t) = out.var.transpose();
        }
      }
    }
    if (is_nuts) {
      chain.tree_depth[t] = info.tree_depth;
      chain.num_leapfrog[t] = info.num_leapfrog;
      chain.divergent[t] = info.divergent ? 1 : 0;
    }
    tick();
  }
  if (settings.progress && pending_progress) settings.progress->advance(pending_progress);
  chain.sampling_seconds = timer.seconds();
  chain.num_density_evals = counters.density;
  chain.num_gradient_evals = counters.gradient;
  chain.num_hessian_evals = counters.hessian;
  return chain;
}

}  // namespace sieve::mcmc::detail
