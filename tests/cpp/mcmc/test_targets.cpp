// Targets: gradients and Hessians of every built-in model against central finite differences,
// normalising constants against independent closed forms, the AnyTarget wrapper, the autodiff
// adapter against a hand-derived gradient, and the registry's handling of names and settings.
#include <gtest/gtest.h>

#include <Eigen/Eigenvalues>
#include <cmath>
#include <memory>
#include <numbers>

#include "sieve/core/rng.h"
#include "sieve/mcmc/models/banana.h"
#include "sieve/mcmc/models/gaussian.h"
#include "sieve/mcmc/models/gp_regression.h"
#include "sieve/mcmc/models/lgcp.h"
#include "sieve/mcmc/models/linear_regression.h"
#include "sieve/mcmc/models/logistic.h"
#include "sieve/mcmc/registry.h"
#include "sieve/mcmc/target.h"

namespace sieve::mcmc {
namespace {

// Central differences with relative step 1e-6: truncation ~1e-12 |f'''|, rounding
// ~1e-16 |f| / 1e-6 = 1e-10 |f|. For log densities with |f| <= 1e3 this is <= 1e-7; 1e-5
// relative still catches any wrong derivative term (those are O(1) relative errors).
constexpr double kGradTol = 1e-5;

Eigen::VectorXd random_point(Eigen::Index d, uint64_t seed, double scale = 1.0) {
  Rng rng(seed, 0);
  Eigen::VectorXd x(d);
  for (Eigen::Index i = 0; i < d; ++i) x[i] = scale * rng.normal();
  return x;
}

template <class T>
void expect_derivatives(const T& t, double scale, int points = 3, bool hessian = true) {
  for (int s = 0; s < points; ++s) {
    const Eigen::VectorXd x = random_point(t.dim(), 100 + s, scale);
    const auto gc = check_gradient(t, x);
    EXPECT_TRUE(gc.ok(kGradTol)) << "gradient error " << gc.max_rel_error << " at point " << s;
    if (hessian && has_hessian(t)) {
      const auto hc = check_hessian(t, x);
      EXPECT_TRUE(hc.ok(kGradTol)) << "Hessian error " << hc.max_rel_error << " at point " << s;
    }
  }
}

TEST(McmcTargets, GaussianDerivativesAndNormalisation) {
  const Gaussian g = ill_conditioned_gaussian(5, 100.0, /*rotate=*/true, 3);
  expect_derivatives(g, 0.5);
  // Independent oracle: the 1-D normal density N(0.5 | 0.2, 4).
  const Gaussian n1(Eigen::VectorXd::Constant(1, 0.2), Eigen::MatrixXd::Constant(1, 1, 4.0));
  EXPECT_NEAR(n1.log_density(Eigen::VectorXd::Constant(1, 0.5)),
              -0.5 * 0.09 / 4 - 0.5 * std::log(2 * std::numbers::pi * 4), 1e-14);
  EXPECT_THROW(Gaussian(Eigen::VectorXd::Zero(2), Eigen::MatrixXd::Zero(2, 2)), Error);
}

TEST(McmcTargets, LogisticDerivatives) {
  Rng rng(7, 0);
  Eigen::MatrixXd X(40, 4);
  Eigen::VectorXd y(40);
  for (int i = 0; i < 40; ++i) {
    X(i, 0) = 1;
    for (int j = 1; j < 4; ++j) X(i, j) = rng.normal();
    y[i] = rng.uniform() < 0.4 ? 1 : 0;
  }
  const LogisticRegression m(X, y, 3.0);
  expect_derivatives(m, 1.0);
  // Metric equals -Hessian for the canonical link.
  Eigen::VectorXd g;
  Eigen::MatrixXd h, G;
  const Eigen::VectorXd b = random_point(4, 5);
  m.log_density_gradient_hessian(b, g, h);
  m.metric(b, G);
  EXPECT_LT((G + h).cwiseAbs().maxCoeff(), 1e-12);
  // Oracle: with one observation, log p = y eta - log(1 + e^eta) - |beta|^2 / (2 s^2).
  const LogisticRegression one(Eigen::MatrixXd::Constant(1, 1, 2.0), Eigen::VectorXd::Ones(1), 2.0);
  const double eta = 2 * 0.3;
  EXPECT_NEAR(one.log_density(Eigen::VectorXd::Constant(1, 0.3)),
              eta - std::log(1 + std::exp(eta)) - 0.09 / 8, 1e-14);
  EXPECT_THROW(LogisticRegression(X, Eigen::VectorXd::Constant(40, 2.0)), Error);
}

TEST(McmcTargets, LinearRegressionDerivativesAndPriors) {
  Eigen::MatrixXd X;
  Eigen::VectorXd y;
  linear_regression_synthetic(20, 3, 1.0, 0.5, 3, X, y);
  for (PriorKind kind : {PriorKind::kGaussian, PriorKind::kStudentT, PriorKind::kLaplace}) {
    const LinearRegression m(X, y, 0.5, {kind, 1.5, 4.0}, 0.7);
    expect_derivatives(m, 1.0);
    // log density = t * log-likelihood + log prior, and the quadratic form reproduces the
    // likelihood.
    const Eigen::VectorXd b = random_point(3, 9);
    EXPECT_NEAR(m.log_density(b), 0.7 * m.log_likelihood(b) + m.log_prior(b), 1e-10);
    EXPECT_NEAR(m.log_likelihood_quadratic()(b), m.log_likelihood(b), 1e-9);
  }
  // Prior normalisation against independent closed forms (scalar coefficient at 0.8, scale 1.5).
  const Eigen::MatrixXd X1 = Eigen::MatrixXd::Ones(1, 1);
  const Eigen::VectorXd y1 = Eigen::VectorXd::Zero(1), b1 = Eigen::VectorXd::Constant(1, 0.8);
  const double s = 1.5, nu = 4.0, z = 0.8 / s;
  EXPECT_NEAR(LinearRegression(X1, y1, 1, {PriorKind::kLaplace, s, nu}).log_prior(b1),
              std::log(0.5 / s) - z, 1e-14);
  // Student-t with nu = 4: Gamma(2.5) / (Gamma(2) sqrt(4 pi) s) (1 + z^2 / 4)^{-2.5}.
  const double t4 = std::tgamma(2.5) / (std::tgamma(2.0) * std::sqrt(4 * std::numbers::pi) * s) *
                    std::pow(1 + z * z / 4, -2.5);
  EXPECT_NEAR(LinearRegression(X1, y1, 1, {PriorKind::kStudentT, s, nu}).log_prior(b1),
              std::log(t4), 1e-13);
}

TEST(McmcTargets, GpRegressionDerivatives) {
  Eigen::MatrixXd X;
  Eigen::VectorXd y;
  gp_regression_synthetic(12, 4, X, y);
  const GpRegression m(X, y);
  expect_derivatives(m, 0.5);
  // Oracle for n = 1: y ~ N(0, sf^2 + sn^2), independent of the lengthscale.
  const GpRegression one(Eigen::MatrixXd::Zero(1, 1), Eigen::VectorXd::Constant(1, 0.7), 0.0, 1.0,
                         0.0);
  const Eigen::Vector3d th(0.3, -0.2, 0.1);
  const double v = std::exp(-0.4) + std::exp(0.2);
  const double prior = -0.5 * th.squaredNorm() - 1.5 * std::log(2 * std::numbers::pi);
  EXPECT_NEAR(one.log_density(th),
              -0.5 * 0.49 / v - 0.5 * std::log(2 * std::numbers::pi * v) + prior, 1e-12);
}

TEST(McmcTargets, LgcpDerivativesAndSyntheticCounts) {
  LgcpSettings s;
  s.grid = 4;
  const LogGaussianCoxProcess m(s);
  EXPECT_EQ(m.dim(), 16);
  expect_derivatives(m, 0.5);
  // Same seed, same counts; counts are non-negative integers.
  const LogGaussianCoxProcess m2(s);
  EXPECT_EQ(m.counts(), m2.counts());
  for (Eigen::Index i = 0; i < m.counts().size(); ++i)
    EXPECT_EQ(m.counts()[i], std::floor(m.counts()[i]));
  EXPECT_THROW(LogGaussianCoxProcess(s, Eigen::VectorXd::Zero(3)), Error);
}

TEST(McmcTargets, BananaAndFunnelDerivatives) {
  expect_derivatives(Banana(4, 0.1), 2.0);
  expect_derivatives(Funnel(5), 1.0);
}

// The Fisher metrics are the expected negative Hessians of the generative forms: positive definite
// where the Hessian is not, and equal to -Hessian where the data-dependent term vanishes.
TEST(McmcTargets, BananaAndFunnelMetricsArePositiveDefinite) {
  const Banana b(2, 0.1);
  Eigen::VectorXd g;
  Eigen::MatrixXd h, m;
  const Eigen::Vector2d on_curve(3.0, 0.1 * (9.0 - 100));  // u = 0
  b.log_density_gradient_hessian(on_curve, g, h);
  b.metric(on_curve, m);
  EXPECT_LT((m + h).cwiseAbs().maxCoeff(), 1e-12);
  const Eigen::Vector2d off_curve(0.0, 30.0);  // u = 40: Hessian indefinite
  b.log_density_gradient_hessian(off_curve, g, h);
  b.metric(off_curve, m);
  EXPECT_GT(Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(h).eigenvalues().maxCoeff(), 0);
  EXPECT_GT(Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(m).eigenvalues().minCoeff(), 0);
  const Funnel f(3);
  f.metric(Eigen::Vector3d(1.0, 2.0, -1.0), m);
  EXPECT_NEAR(m(0, 0), 1.0 / 9 + 1.0, 1e-14);
  EXPECT_NEAR(m(1, 1), std::exp(-1.0), 1e-14);
  EXPECT_EQ(m(0, 1), 0.0);
}

// A generic Rosenbrock-like density for the autodiff adapter; the expected gradient below is
// derived by hand, independently of the adapter.
struct GenericRosenbrock {
  Eigen::Index dim() const { return 2; }
  template <class S>
  S log_density(const Eigen::Matrix<S, Eigen::Dynamic, 1>& x) const {
    const S a = x[1] - x[0] * x[0];
    const S b = 1.0 - x[0];
    return -(100.0 * a * a + b * b) / 20.0 + 0.1 * sin(x[1]);
  }
};

TEST(McmcTargets, AutodiffMatchesHandDerivedGradient) {
  const Autodiff<GenericRosenbrock> t{GenericRosenbrock{}};
  static_assert(Target<Autodiff<GenericRosenbrock>>);
  const Eigen::Vector2d x(0.7, -0.3);
  Eigen::VectorXd g;
  const double lp = t.log_density_and_gradient(x, g);
  const double a = x[1] - x[0] * x[0], b = 1 - x[0];
  EXPECT_NEAR(lp, -(100 * a * a + b * b) / 20 + 0.1 * std::sin(x[1]), 1e-13);
  EXPECT_NEAR(g[0], -(100 * 2 * a * (-2 * x[0]) + 2 * b * (-1)) / 20, 1e-12);
  EXPECT_NEAR(g[1], -(100 * 2 * a) / 20 + 0.1 * std::cos(x[1]), 1e-12);
  // And it plugs into AnyTarget.
  const AnyTarget any = t;
  EXPECT_FALSE(any.has_hessian());
  EXPECT_THROW(any.metric(x, *std::make_unique<Eigen::MatrixXd>()), Error);
}

TEST(McmcTargets, FiniteDifferenceHessianFallbackAndMetricClip) {
  const Banana b(3, 0.1);
  const Autodiff<GenericRosenbrock> r{GenericRosenbrock{}};
  const Eigen::Vector3d x(3.0, 1.0, -0.5);
  Eigen::VectorXd g;
  Eigen::MatrixXd h_fd, h;
  int64_t evals = 0;
  finite_difference_hessian(b, x, g, h_fd);
  b.log_density_gradient_hessian(x, g, h);
  EXPECT_LT((h_fd - h).cwiseAbs().maxCoeff(), 1e-6);
  log_density_gradient_hessian(r, Eigen::Vector2d(0.1, 0.2), g, h, &evals);
  EXPECT_EQ(evals, 1 + 2 * 2);  // one gradient plus two per coordinate
  // Clipping makes an indefinite matrix positive definite with |eigenvalues|.
  Eigen::MatrixXd m(2, 2);
  m << 1, 0, 0, -3;
  clip_to_positive_definite(m, 1e-3);
  EXPECT_NEAR(m(1, 1), 3, 1e-12);
  EXPECT_NEAR(m(0, 0), 1, 1e-12);
}

TEST(McmcTargets, AnyTargetForwardsCapabilities) {
  AnyTarget t = Gaussian(Eigen::VectorXd::Zero(3), Eigen::MatrixXd::Identity(3, 3));
  EXPECT_EQ(t.dim(), 3);
  EXPECT_TRUE(t.has_hessian());
  EXPECT_TRUE(t.has_metric());
  EXPECT_TRUE(t.has_gaussian_reference());
  EXPECT_EQ(t.parameter_names()[2], "x.3");
  EXPECT_NE(t.target_if<Gaussian>(), nullptr);
  EXPECT_EQ(t.target_if<Banana>(), nullptr);
  EXPECT_TRUE(check_hessian(t, random_point(3, 1)).ok(kGradTol));
  const AnyTarget f = Funnel(3);
  EXPECT_TRUE(f.has_metric());
  EXPECT_FALSE(AnyTarget(Autodiff<GenericRosenbrock>{GenericRosenbrock{}}).has_metric());
  EXPECT_EQ(f.parameter_names()[0], "v");
  EXPECT_THROW(AnyTarget().dim(), Error);
}

TEST(McmcTargets, RegistryBuildsEveryModelAndRejectsBadSettings) {
  ModelData data;
  Rng rng(3, 0);
  data.X = Eigen::MatrixXd::Ones(10, 2);
  data.y = Eigen::VectorXd::Zero(10);
  for (int i = 0; i < 10; ++i) {
    data.X(i, 1) = rng.normal();
    data.y[i] = i % 2;
  }
  for (const auto& name : model_names()) {
    KeyValues kv;
    if (name == "lgcp") kv = {{"grid", "3"}};
    const AnyTarget t = make_model(name, kv, name == "logistic" ? &data : nullptr);
    EXPECT_GT(t.dim(), 0) << name;
    EXPECT_FALSE(model_settings(name).empty()) << name;
    EXPECT_TRUE(std::isfinite(t.log_density(Eigen::VectorXd::Zero(t.dim())))) << name;
  }
  EXPECT_THROW(make_model("nope", {}), Error);
  EXPECT_THROW(make_model("gaussian", {{"dimension", "3"}}), Error);
  EXPECT_THROW(make_model("gaussian", {{"dim", "x"}}), Error);
  EXPECT_THROW(make_model("logistic", {}), Error);
  EXPECT_THROW(make_model("linreg", {{"prior", "cauchy"}}), Error);
  EXPECT_EQ(make_model("gaussian", {{"dim", "4"}}).dim(), 4);
  EXPECT_EQ(make_model("gaussian", {{"mean", "1,2"}, {"cov", "2,0.5;0.5,1"}}).dim(), 2);
  EXPECT_EQ(parse_key_value("gamma = 0.5").second, "0.5");
  EXPECT_THROW(parse_key_value("gamma"), Error);
}

}  // namespace
}  // namespace sieve::mcmc
