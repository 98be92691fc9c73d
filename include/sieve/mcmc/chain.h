// Chain: the stored trace of one MCMC run; RunSettings shared by every sampler; parallel chains.
//
// Trace convention (research/mcmc.md §D): row t of `draws` is X_t, the state before transition t;
// row t of `proposals` is Y_{t+1}, proposed from X_t; accept_prob[t] = alpha(X_t, Y_{t+1}); and
// X_{t+1} = Y_{t+1} when accepted[t], else X_t. Control variates need X_t, Y_{t+1}, alpha_t and the
// mean/covariance of q(. | X_t), so samplers with Gaussian proposals store those too. Warm-up
// draws are excluded (optionally kept). Adapted parameters are frozen after warm-up and stored.
// Shapes: draws, proposals, proposal_means, proposal_vars, gradients: [num_draws, dim].
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "sieve/core/progress.h"
#include "sieve/core/rng.h"

namespace sieve::mcmc {

/// Settings every sampler shares (each sampler's settings struct derives from this).
struct RunSettings {
  int64_t num_warmup = 1000;    ///< adaptation iterations, not stored unless keep_warmup
  int64_t num_draws = 1000;     ///< stored iterations
  bool keep_warmup = false;     ///< also store warm-up draws in Chain::warmup_draws
  bool store_proposals = true;  ///< store Y_{t+1} and the proposal moments (control variates)
  bool store_gradients = true;  ///< store grad log pi(X_t) (ZV and GI control variates)
  /// Non-owning; advanced once per 64 iterations when set (see sieve/core/progress.h).
  Progress* progress = nullptr;
};

/// How Y_{t+1} was generated; control-variate constructions depend on it.
enum class ProposalKind {
  kNone,         ///< no single proposal (NUTS)
  kGaussian,     ///< Y ~ N(proposal_means[t], proposal covariance) given X_t
  kIndependent,  ///< Y ~ q independent of X_t (independent Metropolis): Gaussian or Student-t
};

/// Parameters frozen at the end of warm-up (NaN / empty when a sampler does not use them).
struct AdaptedParameters {
  double step_size = std::numeric_limits<double>::quiet_NaN();  ///< RWM scale, MALA h, NUTS eps
  double gamma = std::numeric_limits<double>::quiet_NaN();      ///< GI gamma in (0, 2); pCN beta
  Eigen::VectorXd mu;     ///< GI / pCN Gaussian mean; IMH proposal location
  Eigen::MatrixXd sigma;  ///< GI Sigma, MALA/RWM preconditioner, IMH scale, NUTS inverse metric
  double nu = std::numeric_limits<double>::infinity();  ///< IMH-t degrees of freedom
  /// Covariance of q(. | x) when it does not depend on x ([d, d]); empty otherwise (then the
  /// per-iteration diagonal is in Chain::proposal_vars).
  Eigen::MatrixXd proposal_cov;
};

/// @brief The trace of one chain (see the file comment for the index convention).
struct Chain {
  std::string sampler;
  uint64_t chain_id = 0;
  Eigen::MatrixXd draws;           ///< [n, d] X_t
  Eigen::VectorXd log_density;     ///< [n] log pi(X_t) (unnormalised)
  Eigen::VectorXd accept_prob;     ///< [n] alpha(X_t, Y_{t+1}); NUTS: mean tree accept stat
  std::vector<uint8_t> accepted;   ///< [n] 1 when X_{t+1} = Y_{t+1} (NUTS: the state moved)
  Eigen::MatrixXd proposals;       ///< [n, d] Y_{t+1}, or empty
  Eigen::MatrixXd proposal_means;  ///< [n, d] E[Y_{t+1} | X_t] (Gaussian proposals), or empty
  Eigen::MatrixXd proposal_vars;   ///< [n, d] diag Cov[Y_{t+1} | X_t] if state-dependent, or empty
  Eigen::MatrixXd gradients;       ///< [n, d] grad log pi(X_t), or empty
  Eigen::MatrixXd warmup_draws;    ///< [num_warmup, d] when keep_warmup
  Eigen::VectorXd warmup_log_density;  ///< [num_warmup] when keep_warmup
  ProposalKind proposal_kind = ProposalKind::kNone;
  AdaptedParameters adapted;
  int64_t num_density_evals = 0;   ///< log-density-only calls
  int64_t num_gradient_evals = 0;  ///< log density + gradient calls (incl. finite differences)
  int64_t num_hessian_evals = 0;   ///< Hessian or metric calls
  int64_t num_warmup_gradient_evals = 0;  ///< part of num_gradient_evals spent in warm-up
  double warmup_seconds = 0, sampling_seconds = 0;
  // NUTS only (empty otherwise): per stored iteration.
  std::vector<int> tree_depth, num_leapfrog;
  std::vector<uint8_t> divergent;

  Eigen::Index dim() const { return draws.cols(); }
  int64_t num_draws() const { return draws.rows(); }
  /// Mean of accept_prob over stored iterations.
  double mean_accept_prob() const { return accept_prob.size() ? accept_prob.mean() : 0.0; }
  /// Fraction of stored iterations whose proposal was accepted.
  double acceptance_rate() const;
  /// Gradient evaluations after warm-up (the cost that ESS per gradient uses).
  int64_t sampling_gradient_evals() const { return num_gradient_evals - num_warmup_gradient_evals; }
};

/// Produces chain `chain_id` from its own stream; must not touch shared mutable state.
using ChainFunction = std::function<Chain(uint64_t chain_id, Rng& rng)>;

/// @brief Runs chains 0..num_chains-1 on up to num_threads threads (0 = sieve::num_threads()).
/// Chain c uses Rng(seed, c), so results do not depend on the thread count or schedule, and chain
/// c of an M-chain run equals a single-chain run with chain id c. Rethrows the first exception.
std::vector<Chain> run_chains(int num_chains, uint64_t seed, int num_threads,
                              const ChainFunction& fn);

/// Stacks the draws of all chains: [sum n_c, d].
Eigen::MatrixXd pooled_draws(const std::vector<Chain>& chains);

}  // namespace sieve::mcmc
