// Output of MCMC runs: CmdStan-compatible CSV draws, a CmdStan-style summary table and JSON.
//
// CSV (one file per chain, CmdStan's layout, readable by ArviZ `from_cmdstan` and cmdstanpy
// `from_csv`): '#' comment lines with the configuration as "key = value", a header
// lp__,accept_stat__[,stepsize__][,treedepth__,n_leapfrog__,divergent__] followed by the parameter
// names (CmdStan style "beta.1"), an adaptation block, one row per stored draw (shortest text that
// round-trips the double), and the elapsed-time block. Files are written atomically.
// The summary (RunReport) holds per parameter mean, sd, MCSE, quantiles, bulk/tail ESS and R-hat
// (sieve/mcmc/diagnostics.h) plus optional control-variate estimates with their MCSE and VRF.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sieve/mcmc/chain.h"
#include "sieve/mcmc/diagnostics.h"

namespace sieve::mcmc {

/// What the CSV comment block records about a run.
struct CsvRunInfo {
  std::string model, sampler, data_file;
  uint64_t seed = 0;
  int64_t num_warmup = 0;                                     ///< warm-up iterations per chain
  std::vector<std::pair<std::string, std::string>> settings;  ///< sampler settings as given
  std::vector<std::string> parameter_names;                   ///< [dim] CmdStan style
};

/// Writes one chain as a CmdStan CSV to `os` (chain id in the file is chain.chain_id + 1).
void write_cmdstan_csv(std::ostream& os, const Chain& chain, const CsvRunInfo& info);

/// Writes every chain atomically (temporary file, then rename): `path` itself for one chain,
/// else "<stem>_<id><ext>" with id = 1..M as CmdStan names them. Returns the paths written.
std::vector<std::string> write_cmdstan_csv_files(const std::string& path,
                                                 const std::vector<Chain>& chains,
                                                 const CsvRunInfo& info);

/// Checks before a run that write_cmdstan_csv_files could write the files of chains with ids
/// 0.. num_chains - 1: their folder exists, no name is a folder, and a file can be created there (a probe file, removed at once; existing files are left alone). Throws sieve::Error
/// naming the path, so that a long run does not end in an unwritable destination.
void check_cmdstan_csv_destination(const std::string& path, int64_t num_chains);

/// A parsed CmdStan CSV (comment "key = value" pairs, column names, draws).
struct CmdStanCsv {
  std::map<std::string, std::string> config;
  std::vector<std::string> columns;
  Eigen::MatrixXd values;  ///< [draws, columns]
};
/// Reads a CmdStan CSV (ours or CmdStan's); throws sieve::Error on malformed files.
CmdStanCsv read_cmdstan_csv(const std::string& path);

// ---- summaries ---------------------------------------------------------------------------------

/// A control-variate (or any variance-reduced) estimate of E[f]: value, its MCSE and the variance
/// reduction factor over the plain ergodic mean of the same f.
struct ReducedEstimate {
  double estimate = 0, mcse = 0, vrf = 0;
};

struct ParameterReport {
  std::string name;
  ParameterSummary summary;
  double second_moment = 0, second_moment_mcse = 0;  ///< plain estimate of E[x^2]
  std::optional<ReducedEstimate> cv_mean;            ///< control-variate estimate of E[x]
  std::optional<ReducedEstimate> cv_second_moment;   ///< control-variate estimate of E[x^2]
};

struct RunReport {
  std::string model, sampler, data, cv = "none";
  int num_chains = 0;
  int64_t num_warmup = 0, num_draws = 0;  ///< per chain (summarize_run leaves num_warmup 0)
  uint64_t seed = 0;
  ParameterReport lp;  ///< lp__ (unnormalised log density)
  std::vector<ParameterReport> parameters;
  AcceptanceSummary acceptance;                     ///< of accept_stat__
  double warmup_seconds = 0, sampling_seconds = 0;  ///< summed over chains (single-core cost)
  int64_t warmup_gradient_evals = 0, sampling_gradient_evals = 0;  ///< summed over chains
  int64_t density_evals = 0, hessian_evals = 0;
  int64_t divergences = 0;  ///< NUTS only
  double min_ess_bulk() const;
  /// min bulk ESS over parameters per second of sampling (not warm-up), and per gradient.
  double min_ess_bulk_per_second() const;
  double min_ess_bulk_per_gradient() const;
};

/// Draws of parameter j of every chain, chain-major (for ChainsView). j = -1 gives lp__.
std::vector<double> gather_draws(const std::vector<Chain>& chains, Eigen::Index j);

/// Diagnostics of every parameter, lp__, acceptance, timing and evaluation counts; names
/// default to "x.1".. when empty. Chains must have equal draw counts and dimensions.
RunReport summarize_run(const std::vector<Chain>& chains, const std::vector<std::string>& names);

/// @brief Fills cv_mean and cv_second_moment of every parameter with control_variates(method)
/// (sieve/mcmc/control_variates.h: "poisson", "imh" or "zv") for F = x_j and F = x_j^2, and sets
/// report.cv. MCSE and VRF use the multi-chain initial-sequence asymptotic variance of the CV
/// series and of the plain series on the same draws. Throws when the chains do not support it.
void add_control_variate_estimates(RunReport& report, const std::vector<Chain>& chains,
                                   std::string_view method);

/// A fixed-width table in the style of CmdStan's stansummary, plus the control-variate columns
/// when present and a footer (acceptance, time, gradient evaluations, ESS per second / gradient).
std::string format_summary_table(const RunReport& report);

/// One JSON object: run settings, a `parameters` array (lp__ separately), acceptance, timing,
/// evaluation counts and efficiency. Non-finite numbers are written as null.
std::string report_json(const RunReport& report, int indent = 2);

}  // namespace sieve::mcmc
