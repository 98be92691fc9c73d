// Targets for sieve::mcmc: the Target concept, optional capabilities, AnyTarget, autodiff, checks.
//
// A target is an unnormalised log density log pi(x) on R^d plus its gradient. Samplers are
// templates constrained by `Target`; optional capabilities (Hessian, Riemannian metric, Gaussian
// reference for pCN-type proposals, parameter names) are detected by further concepts, in the
// order-0/1/2 style of LogDensityProblems.jl. Contract: when the log density is finite, the
// gradient (and Hessian) are finite; samplers treat a non-finite log density as a rejection.
// Targets must be safe to call concurrently through const methods (chains run in threads).
// Shapes: x, gradient: Eigen::VectorXd [dim]; Hessian (of log pi), metric: Eigen::MatrixXd [dim,
// dim].
#pragma once

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <unsupported/Eigen/AutoDiff>
#include <utility>
#include <vector>

#include "sieve/core/error.h"

namespace sieve::mcmc {

/// @brief The required interface: dimension, log density, and log density with gradient.
/// `log_density_and_gradient(x, g)` returns log pi(x) and writes grad log pi(x) into g (resized).
template <class T>
concept Target = requires(const T& t, const Eigen::VectorXd& x, Eigen::VectorXd& g) {
  { t.dim() } -> std::convertible_to<Eigen::Index>;
  { t.log_density(x) } -> std::convertible_to<double>;
  { t.log_density_and_gradient(x, g) } -> std::convertible_to<double>;
};

/// @brief Optional: the Hessian of log pi (negative definite near a mode), H resized to [d, d].
template <class T>
concept HessianTarget = Target<T> &&
    requires(const T& t, const Eigen::VectorXd& x, Eigen::VectorXd& g, Eigen::MatrixXd& h) {
  { t.log_density_gradient_hessian(x, g, h) } -> std::convertible_to<double>;
};

/// @brief Optional: a symmetric positive-definite Riemannian metric G(x) (e.g. expected Fisher
/// information plus prior precision), used by manifold MALA variants with A_x = G(x)^{-1}.
template <class T>
concept MetricTarget = Target<T> &&
    requires(const T& t, const Eigen::VectorXd& x, Eigen::MatrixXd& m) {
  t.metric(x, m);
};

/// @brief Optional: a Gaussian reference N(mean, cov), e.g. the prior of a latent Gaussian model;
/// pCN uses it as its invariant Gaussian.
template <class T>
concept GaussianReferenceTarget = Target<T> &&
    requires(const T& t, Eigen::VectorXd& m, Eigen::MatrixXd& c) {
  t.gaussian_reference(m, c);
};

/// @brief Optional: parameter names for output (CmdStan style, e.g. "beta.1").
template <class T>
concept NamedTarget = requires(const T& t) {
  { t.parameter_names() } -> std::convertible_to<std::vector<std::string>>;
};

// Capability queries that also work for AnyTarget, whose capabilities are known at run time.
template <Target T>
bool has_hessian(const T& t) {
  if constexpr (requires { t.has_hessian(); })
    return t.has_hessian();
  else
    return HessianTarget<T>;
}
template <Target T>
bool has_metric(const T& t) {
  if constexpr (requires { t.has_metric(); })
    return t.has_metric();
  else
    return MetricTarget<T>;
}
template <Target T>
bool has_gaussian_reference(const T& t) {
  if constexpr (requires { t.has_gaussian_reference(); })
    return t.has_gaussian_reference();
  else
    return GaussianReferenceTarget<T>;
}

/// Default names "x.1" ... "x.d" (1-based, CmdStan's convention for vector parameters).
std::vector<std::string> default_parameter_names(Eigen::Index dim, const std::string& base = "x");

template <Target T>
std::vector<std::string> parameter_names(const T& t) {
  if constexpr (NamedTarget<T>)
    return t.parameter_names();
  else
    return default_parameter_names(t.dim());
}

/// @brief Hessian of log pi by central differences of the analytic gradient (2d gradient calls),
/// symmetrised. Returns log pi(x) and writes the gradient at x into g.
template <Target T>
double finite_difference_hessian(const T& t, const Eigen::VectorXd& x, Eigen::VectorXd& g,
                                 Eigen::MatrixXd& h, double rel_step = 1e-5) {
  const Eigen::Index d = x.size();
  const double lp = t.log_density_and_gradient(x, g);
  h.resize(d, d);
  Eigen::VectorXd xp = x, gp(d), gm(d);
  for (Eigen::Index i = 0; i < d; ++i) {
    const double step = rel_step * std::max(1.0, std::abs(x[i]));
    xp[i] = x[i] + step;
    t.log_density_and_gradient(xp, gp);
    xp[i] = x[i] - step;
    t.log_density_and_gradient(xp, gm);
    xp[i] = x[i];
    h.col(i) = (gp - gm) / (2 * step);
  }
  h = (0.5 * (h + h.transpose())).eval();
  return lp;
}

/// @brief Log density, gradient and Hessian: the target's own when it has one, otherwise central
/// differences of its gradient. `gradient_evals` (optional) is increased by the gradient calls
/// made.
template <Target T>
double log_density_gradient_hessian(const T& t, const Eigen::VectorXd& x, Eigen::VectorXd& g,
                                    Eigen::MatrixXd& h, int64_t* gradient_evals = nullptr) {
  if constexpr (HessianTarget<T>) {
    if (has_hessian(t)) {
      if (gradient_evals) *gradient_evals += 1;
      return t.log_density_gradient_hessian(x, g, h);
    }
  }
  if (gradient_evals) *gradient_evals += 1 + 2 * x.size();
  return finite_difference_hessian(t, x, g, h);
}

/// @brief Makes a symmetric matrix positive definite by replacing each eigenvalue lambda with
/// max(|lambda|, floor) (an eigenvalue clip in the spirit of SoftAbs, Betancourt 2013).
void clip_to_positive_definite(Eigen::MatrixXd& m, double floor);

/// @brief A positive-definite metric G(x) for second-order/manifold proposals: the target's metric
/// when it has one, else -Hessian (the target's or finite-difference) with eigenvalues clipped at
/// `floor`. Returns log pi(x), writes the gradient into g.
template <Target T>
double positive_metric(const T& t, const Eigen::VectorXd& x, Eigen::VectorXd& g,
                       Eigen::MatrixXd& metric, double floor, int64_t* gradient_evals = nullptr) {
  if constexpr (MetricTarget<T>) {
    if (has_metric(t)) {
      const double lp = t.log_density_and_gradient(x, g);
      if (gradient_evals) *gradient_evals += 1;
      if (!std::isfinite(lp)) return lp;
      t.metric(x, metric);
      return lp;
    }
  }
  const double lp = log_density_gradient_hessian(t, x, g, metric, gradient_evals);
  if (!std::isfinite(lp) || !metric.allFinite()) return -std::numeric_limits<double>::infinity();
  metric = -metric;
  clip_to_positive_definite(metric, floor);
  return lp;
}

/// @brief A type-erased target with value semantics (copies share the wrapped object, which is
/// immutable). Capabilities the wrapped type lacks throw sieve::Error when called; query them with
/// has_hessian() etc. Samplers are explicitly instantiated for AnyTarget (src/mcmc/).
class AnyTarget {
 public:
  AnyTarget() = default;
  template <Target T>
  requires(!std::is_same_v<std::remove_cvref_t<T>, AnyTarget>)
      AnyTarget(T target)  // NOLINT(google-explicit-constructor): wrapping is the point.
      : impl_(std::make_shared<Model<T>>(std::move(target))) {}

  Eigen::Index dim() const { return impl().dim(); }
  double log_density(const Eigen::VectorXd& x) const { return impl().log_density(x); }
  double log_density_and_gradient(const Eigen::VectorXd& x, Eigen::VectorXd& g) const {
    return impl().log_density_and_gradient(x, g);
  }
  double log_density_gradient_hessian(const Eigen::VectorXd& x, Eigen::VectorXd& g,
                                      Eigen::MatrixXd& h) const {
    return impl().log_density_gradient_hessian(x, g, h);
  }
  void metric(const Eigen::VectorXd& x, Eigen::MatrixXd& m) const { impl().metric(x, m); }
  void gaussian_reference(Eigen::VectorXd& mean, Eigen::MatrixXd& cov) const {
    impl().gaussian_reference(mean, cov);
  }
  bool has_hessian() const { return impl().has_hessian(); }
  bool has_metric() const { return impl().has_metric(); }
  bool has_gaussian_reference() const { return impl().has_gaussian_reference(); }
  std::vector<std::string> parameter_names() const { return impl().parameter_names(); }
  bool empty() const { return impl_ == nullptr; }

  /// The wrapped object when it has type T, else nullptr (for model-specific extras).
  template <class T>
  const T* target_if() const {
    auto* m = dynamic_cast<const Model<T>*>(impl_.get());
    return m ? &m->target : nullptr;
  }

 private:
  struct Concept {
    virtual ~Concept() = default;
    virtual Eigen::Index dim() const = 0;
    virtual double log_density(const Eigen::VectorXd& x) const = 0;
    virtual double log_density_and_gradient(const Eigen::VectorXd& x, Eigen::VectorXd& g) const = 0;
    virtual double log_density_gradient_hessian(const Eigen::VectorXd& x, Eigen::VectorXd& g,
                                                Eigen::MatrixXd& h) const = 0;
    virtual void metric(const Eigen::VectorXd& x, Eigen::MatrixXd& m) const = 0;
    virtual void gaussian_reference(Eigen::VectorXd& mean, Eigen::MatrixXd& cov) const = 0;
    virtual bool has_hessian() const = 0;
    virtual bool has_metric() const = 0;
    virtual bool has_gaussian_reference() const = 0;
    virtual std::vector<std::string> parameter_names() const = 0;
  };
  template <class T>
  struct Model final : Concept {
    explicit Model(T t) : target(std::move(t)) {}
    Eigen::Index dim() const override { return target.dim(); }
    double log_density(const Eigen::VectorXd& x) const override { return target.log_density(x); }
    double log_density_and_gradient(const Eigen::VectorXd& x, Eigen::VectorXd& g) const override {
      return target.log_density_and_gradient(x, g);
    }
    double log_density_gradient_hessian(const Eigen::VectorXd& x, Eigen::VectorXd& g,
                                        Eigen::MatrixXd& h) const override {
      if constexpr (HessianTarget<T>) {
        if (sieve::mcmc::has_hessian(target)) return target.log_density_gradient_hessian(x, g, h);
      }
      SIEVE_FAIL(
          "target has no Hessian (use log_density_gradient_hessian(target, ...) for a "
          "finite-difference fallback)");
    }
    void metric(const Eigen::VectorXd& x, Eigen::MatrixXd& m) const override {
      if constexpr (MetricTarget<T>) {
        if (sieve::mcmc::has_metric(target)) return target.metric(x, m);
      }
      SIEVE_FAIL("target has no metric");
    }
    void gaussian_reference(Eigen::VectorXd& mean, Eigen::MatrixXd& cov) const override {
      if constexpr (GaussianReferenceTarget<T>) {
        if (sieve::mcmc::has_gaussian_reference(target))
          return target.gaussian_reference(mean, cov);
      }
      SIEVE_FAIL("target has no Gaussian reference (pcn needs one: pass mean/cov in settings)");
    }
    bool has_hessian() const override { return sieve::mcmc::has_hessian(target); }
    bool has_metric() const override { return sieve::mcmc::has_metric(target); }
    bool has_gaussian_reference() const override {
      return sieve::mcmc::has_gaussian_reference(target);
    }
    std::vector<std::string> parameter_names() const override {
      return sieve::mcmc::parameter_names(target);
    }
    T target;
  };
  const Concept& impl() const {
    SIEVE_CHECK(impl_ != nullptr, "AnyTarget is empty");
    return *impl_;
  }
  std::shared_ptr<const Concept> impl_;
};

/// @brief A target written once for any scalar type:
/// `template <class S> S log_density(const Eigen::Matrix<S, Eigen::Dynamic, 1>& x) const`.
template <class M>
concept GenericLogDensity =
    requires(const M& m, const Eigen::VectorXd& x,
             const Eigen::Matrix<Eigen::AutoDiffScalar<Eigen::VectorXd>, Eigen::Dynamic, 1>& xa) {
  { m.dim() } -> std::convertible_to<Eigen::Index>;
  { m.log_density(x) } -> std::convertible_to<double>;
  m.log_density(xa);
};

/// @brief Forward-mode autodiff adapter (Eigen::AutoDiffScalar): turns a GenericLogDensity into a
/// Target. Cost of a gradient: one evaluation with d-vector derivatives, O(d) times the density's
/// cost; fine for the small models autodiff is meant for. Forwards names/reference when present.
template <GenericLogDensity M>
class Autodiff {
 public:
  using Scalar = Eigen::AutoDiffScalar<Eigen::VectorXd>;
  explicit Autodiff(M model) : model_(std::move(model)) {}
  Eigen::Index dim() const { return model_.dim(); }
  double log_density(const Eigen::VectorXd& x) const { return model_.log_density(x); }
  double log_density_and_gradient(const Eigen::VectorXd& x, Eigen::VectorXd& g) const {
    const Eigen::Index d = x.size();
    Eigen::Matrix<Scalar, Eigen::Dynamic, 1> xa(d);
    for (Eigen::Index i = 0; i < d; ++i) xa[i] = Scalar(x[i], d, i);
    const Scalar r = model_.log_density(xa);
    if (r.derivatives().size() == d)
      g = r.derivatives();
    else
      g = Eigen::VectorXd::Zero(d);  // the density did not depend on x
    return r.value();
  }
  std::vector<std::string> parameter_names() const {
    if constexpr (NamedTarget<M>)
      return model_.parameter_names();
    else
      return default_parameter_names(dim());
  }
  const M& model() const { return model_; }

 private:
  M model_;
};

/// Result of comparing analytic derivatives with central finite differences.
struct DerivativeCheck {
  Eigen::MatrixXd analytic;  ///< gradient [d, 1] or Hessian [d, d]
  Eigen::MatrixXd numeric;   ///< same shape, by central differences
  double max_abs_error = 0;
  /// max |a - n| / max(1, |a|, |n|) over entries: relative for large entries, absolute for small.
  double max_rel_error = 0;
  bool ok(double tol) const { return max_rel_error <= tol; }
};

/// @brief Compares the analytic gradient at x with central differences of log_density using step
/// rel_step * max(1, |x_i|). Truncation error O(step^2 * f'''), rounding O(eps * |f| / step).
template <Target T>
DerivativeCheck check_gradient(const T& t, const Eigen::VectorXd& x, double rel_step = 1e-6) {
  const Eigen::Index d = x.size();
  SIEVE_CHECK(d == t.dim(), "check_gradient: x has {} entries, target dim is {}", d, t.dim());
  DerivativeCheck c;
  Eigen::VectorXd g;
  const double lp = t.log_density_and_gradient(x, g);
  SIEVE_CHECK(std::isfinite(lp), "check_gradient: log density is not finite at x");
  c.analytic = g;
  c.numeric.resize(d, 1);
  Eigen::VectorXd xp = x;
  for (Eigen::Index i = 0; i < d; ++i) {
    const double step = rel_step * std::max(1.0, std::abs(x[i]));
    xp[i] = x[i] + step;
    const double fp = t.log_density(xp);
    xp[i] = x[i] - step;
    const double fm = t.log_density(xp);
    xp[i] = x[i];
    c.numeric(i, 0) = (fp - fm) / (2 * step);
  }
  for (Eigen::Index i = 0; i < d; ++i) {
    const double a = c.analytic(i, 0), n = c.numeric(i, 0), e = std::abs(a - n);
    c.max_abs_error = std::max(c.max_abs_error, e);
    c.max_rel_error = std::max(c.max_rel_error, e / std::max({1.0, std::abs(a), std::abs(n)}));
  }
  return c;
}

/// @brief Compares the target's Hessian at x with central differences of its analytic gradient.
/// Also checks that the gradient returned with the Hessian equals log_density_and_gradient's.
template <Target T>
DerivativeCheck check_hessian(const T& t, const Eigen::VectorXd& x, double rel_step = 1e-6) {
  SIEVE_CHECK(has_hessian(t), "check_hessian: target has no Hessian");
  DerivativeCheck c;
  Eigen::VectorXd g, g2;
  Eigen::MatrixXd h;
  if constexpr (HessianTarget<T>) t.log_density_gradient_hessian(x, g, h);
  t.log_density_and_gradient(x, g2);
  c.analytic = h;
  finite_difference_hessian(t, x, g, c.numeric, rel_step);
  SIEVE_CHECK(h.rows() == x.size() && h.cols() == x.size(),
              "check_hessian: Hessian has shape {}x{}", h.rows(), h.cols());
  for (Eigen::Index j = 0; j < h.cols(); ++j)
    for (Eigen::Index i = 0; i < h.rows(); ++i) {
      const double a = c.analytic(i, j), n = c.numeric(i, j), e = std::abs(a - n);
      c.max_abs_error = std::max(c.max_abs_error, e);
      c.max_rel_error = std::max(c.max_rel_error, e / std::max({1.0, std::abs(a), std::abs(n)}));
    }
  const double ge = (g - g2).cwiseAbs().maxCoeff();
  c.max_rel_error = std::max(c.max_rel_error, ge / std::max(1.0, g2.cwiseAbs().maxCoeff()));
  return c;
}

}  // namespace sieve::mcmc
