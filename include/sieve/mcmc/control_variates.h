// Estimators of E_pi[F] from stored chains: plain ergodic means and control variates.
//
// - Poisson-equation control variates for Metropolis-Hastings kernels with Gaussian proposals
//   (Dellaportas & Kontoyiannis 2012; Alexopoulos, Dellaportas & Titsias 2023; for the
//   Gaussian-invariant kernels of Titsias et al. 2025 the Gaussian-target Poisson solution is
//   exact). U_t = G(X_t) - [QG(X_t) - (1 - alpha_t)(G(Y_{t+1}) - G(X_t))] has pi-mean 0 for any G
//   (QG is analytic for polynomial G under a Gaussian proposal); estimate = mean(F - theta'U).
// - The independent-Metropolis control variate with known E_q[F] (Liu, Dellaportas & Titsias 2024):
//   the same construction with G = F and QF = E_q[F]; theta = 1 or estimated.
// - Zero-variance control variates (Mira, Solgi & Imparato 2013), the sampler-agnostic baseline.
// - The thermodynamic-integration marginal likelihood of a linear regression (IMH paper's example).
// Functions of interest are polynomials of degree <= 2 (posterior means, second moments), which
// keeps every expectation under a Gaussian or Student-t proposal analytic. research/mcmc.md §1.5,
// §2.2-2.4 labels what is confirmed and what is our reconstruction. Shapes: see CvResult.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sieve/mcmc/chain.h"
#include "sieve/mcmc/models/linear_regression.h"

namespace sieve::mcmc {

/// F(x) = constant + sum linear.coef * x[i] + sum quadratic.w * x[i] * x[j] (terms need not be
/// symmetric; i == j allowed). Sparse, so d coordinate functions cost O(d), not O(d^2).
struct QuadraticFunction {
  struct Linear {
    Eigen::Index i;
    double coef;
  };
  struct Quadratic {
    Eigen::Index i, j;
    double w;
  };
  std::string name;
  double constant = 0;
  std::vector<Linear> linear;
  std::vector<Quadratic> quadratic;

  double operator()(const Eigen::VectorXd& x) const;
  /// E[F(Y)] for any Y with mean m and covariance s ([d, d]).
  double expectation(const Eigen::VectorXd& m, const Eigen::MatrixXd& s) const;
  /// E[F(Y)] for Y with mean m and diagonal covariance diag(var); throws on an x_i x_j term, i !=
  /// j.
  double expectation_diagonal(const Eigen::VectorXd& m, const Eigen::VectorXd& var) const;
};

/// F_i = x_i, named after `names` (default "x.1".."x.d").
std::vector<QuadraticFunction> coordinate_functions(Eigen::Index dim,
                                                    const std::vector<std::string>& names = {});
/// F_i = x_i^2, named "<name>^2".
std::vector<QuadraticFunction> square_functions(Eigen::Index dim,
                                                const std::vector<std::string>& names = {});
/// The dense quadratic c + a'x + x'Bx as a QuadraticFunction.
QuadraticFunction quadratic_function(const QuadraticForm& q, std::string name = "F");

/// Basis G of a kernel control variate.
enum class CvBasis {
  kLinear,             ///< G = (x_1, ..., x_d), shared by all F
  kQuadraticDiagonal,  ///< x_i and x_i^2
  kQuadratic,          ///< x_i and x_i x_j, i <= j (d (d + 3) / 2 functions)
  kFunction,           ///< G = F, one coefficient per F (the IMH paper's construction)
  kGaussianPoisson,    ///< G = exact Poisson solution of F for the GI kernel on N(mu, Sigma)
};
/// How theta is chosen.
enum class CvCoefficients {
  kOne,                      ///< theta = 1 (needs kFunction or kGaussianPoisson)
  kOls,                      ///< regress F on U with an intercept (minimum marginal variance)
  kRidge,                    ///< OLS with ridge lambda = ridge * mean diag(U'U)
  kDellaportasKontoyiannis,  ///< Gamma(G)^{-1} pi((F - pi F)(G + PG)): minimum asymptotic variance
};
/// Which zero-mean variable multiplies theta.
enum class CvConstruction {
  kAcceptanceWeighted,  ///< U_t = G(X_t) - QG(X_t) + (1 - alpha_t)(G(Y_{t+1}) - G(X_t))
  kProposalMartingale,  ///< U_t = G(Y_{t+1}) - QG(X_t), paired with F(X_{t+1}) instead of F(X_t)
};

struct CvSettings {
  CvBasis basis = CvBasis::kGaussianPoisson;
  CvCoefficients coefficients = CvCoefficients::kOls;
  CvConstruction construction = CvConstruction::kAcceptanceWeighted;
  double ridge = 1e-3;  ///< relative ridge for kRidge
  /// Estimate theta on the first half of every chain for the second and vice versa, removing
  /// the O(k / n) bias of in-sample coefficients.
  bool cross_fit = false;
};

/// Estimates of E_pi[F_j] for m functions over all chains.
struct CvResult {
  std::string method;
  std::vector<std::string> names;  ///< [m]
  Eigen::VectorXd estimate;        ///< [m]
  Eigen::VectorXd plain;           ///< [m] plain ergodic means, for comparison
  /// [N, m] per-iteration values h_t = F(X_t) - theta' U_t, chains stacked chain-major (N = sum
  /// of draws); column means equal `estimate`. Feed columns to asymptotic_variance / MCSE.
  Eigen::MatrixXd series;
  std::vector<Eigen::Index> chain_draws;  ///< draws per chain, to cut `series` into chains
  Eigen::MatrixXd theta;  ///< [k, m] (per-function bases: [1, m]); cross-fit: fold mean
};

/// Plain ergodic means (series = F(X_t)).
CvResult plain_means(const std::vector<Chain>& chains, const std::vector<QuadraticFunction>& f);

/// @brief Poisson-equation control variates for chains with stored proposals (Gaussian or
/// independent proposal kinds). kGaussianPoisson needs a GI sampler (gi-rwm, gi-mala, gi-mala2)
/// or pcn (gamma_eff = 1 - sqrt(1 - beta^2)); it uses the frozen adapted gamma and mu.
/// @throws sieve::Error when the chains lack proposals or the basis does not fit the sampler.
CvResult poisson_control_variates(const std::vector<Chain>& chains,
                                  const std::vector<QuadraticFunction>& f,
                                  const CvSettings& settings = {});

/// @brief The independent-Metropolis control variate (G = F, QF = E_q[F] from the frozen q,
/// Gaussian or Student-t): theta = 1 (kOne) or estimated (kOls / kDellaportasKontoyiannis).
/// With q = pi every move is accepted and the theta = 1 estimate equals E_q[F] exactly.
CvResult imh_control_variates(const std::vector<Chain>& chains,
                              const std::vector<QuadraticFunction>& f,
                              CvCoefficients coefficients = CvCoefficients::kOne);

/// @brief Zero-variance control variates: psi = Delta P + grad P . grad log pi for polynomials P of
/// degree `order` (1: psi = grad log pi; 2: adds x_i, x_i x_j), coefficients by OLS or ridge.
/// Needs stored gradients; works for any sampler, NUTS included.
CvResult zero_variance_control_variates(const std::vector<Chain>& chains,
                                        const std::vector<QuadraticFunction>& f, int order = 1,
                                        CvCoefficients coefficients = CvCoefficients::kOls,
                                        double ridge = 1e-3);

/// @brief By name, for the CLI: "none" (plain), "poisson" (GI kernels and pcn: exact Gaussian
/// solution with OLS theta; other Gaussian-proposal samplers: linear basis, OLS), "imh" (theta = 1)
/// or "zv" (first order).
CvResult control_variates(std::string_view method, const std::vector<Chain>& chains,
                          const std::vector<QuadraticFunction>& f);

// ---- marginal likelihood (IMH paper, linear-regression illustration) ------------------------

struct EvidenceSettings {
  int num_temperatures = 16;   ///< sampled temperatures t_k = (k / K)^ladder_power, k = 1..K
  double ladder_power = 5.0;   ///< Friel & Pettitt (2008)
  int64_t num_warmup = 500;    ///< adaptive-IMH warm-up per temperature
  int64_t num_draws = 2000;    ///< stored draws per temperature
  std::string proposal = "t";  ///< adaptive-IMH proposal family: gaussian | t
  double nu = 7;
  CvCoefficients coefficients = CvCoefficients::kOne;  ///< IMH control variate's theta
  uint64_t seed = 1;
  int num_threads = 0;
};

struct EvidenceResult {
  double log_evidence = 0;          ///< with IMH control variates for E_t[log L]
  double log_evidence_plain = 0;    ///< with plain ergodic means
  double mcse = 0, mcse_plain = 0;  ///< Monte Carlo s.e. (batch means, independent temperatures)
  Eigen::VectorXd temperatures;     ///< [K + 1], t_0 = 0 (prior expectation, analytic)
  Eigen::VectorXd mean_loglik, mean_loglik_plain, var_loglik;  ///< [K + 1]
  Eigen::VectorXd mcse_loglik, mcse_loglik_plain, acceptance;  ///< [K + 1] (0 at t = 0)
};

/// @brief log p(y) of a linear regression with known noise and a (non-conjugate) prior by
/// thermodynamic integration, log p(y) = int_0^1 E_t[log L] dt over power posteriors, with the
/// trapezoid rule plus the Friel, Hurn & Wyse (2014) variance correction. Each E_t[log L] is the
/// IMH control-variate estimate from an adaptive-IMH chain (log L is quadratic in beta, so E_q
/// is analytic); E_0 is the analytic prior expectation. This is our reconstruction of the paper's
/// example (research/mcmc.md §2.3: the identity used is unconfirmed). Needs nu > 2 for t priors.
EvidenceResult linear_regression_log_evidence(const LinearRegression& model,
                                              const EvidenceSettings& settings = {});

/// Exact log p(y) for a Gaussian prior: y ~ N(0, noise_sd^2 I + s^2 X X').
double linear_regression_exact_log_evidence(const LinearRegression& model);

}  // namespace sieve::mcmc
