// Name-based access to samplers and built-in models, for the `sieve mcmc` command and bindings.
//
// Sampler names: gi-mala, gi-rwm, gi-mala2, rwm, mala, pmala, mmala, pcn, imh, imh-t, aimh, nuts.
// Model names: gaussian, ill-gaussian, banana, funnel, logistic, linreg, gp, lgcp.
// Settings are strings "key=value" (the CLI's `--set key=value`); every sampler accepts the
// RunSettings keys num_warmup, num_draws, keep_warmup, store_proposals, store_gradients plus its
// own (list them with sampler_settings(name)); unknown keys and malformed values throw
// sieve::Error naming the key. Vectors are comma-separated ("mu=0,1,2"); matrices row-major with
// ';' between rows. Chains use Rng(seed, chain) streams: same draws for any thread count.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sieve/core/rng.h"
#include "sieve/mcmc/chain.h"
#include "sieve/mcmc/target.h"

namespace sieve::mcmc {

/// Ordered key/value settings, e.g. {{"gamma", "0.8"}, {"num_warmup", "500"}}.
using KeyValues = std::vector<std::pair<std::string, std::string>>;

/// Splits "key=value" into a pair; throws on a missing '='.
std::pair<std::string, std::string> parse_key_value(std::string_view text);

/// One accepted setting: key, default (as text) and a one-line description.
struct SettingInfo {
  std::string key, default_value, description;
};

std::vector<std::string> sampler_names();
/// Settings the sampler accepts (RunSettings keys first). Throws for an unknown sampler.
std::vector<SettingInfo> sampler_settings(std::string_view sampler);

/// @brief Runs one chain of sampler `name` on `target` from `init` (length target.dim()).
Chain run_sampler(std::string_view name, const AnyTarget& target, const Eigen::VectorXd& init,
                  const KeyValues& settings, Rng& rng);

/// Options of a multi-chain run.
struct MultiChainOptions {
  int num_chains = 4;
  uint64_t seed = 0;
  int num_threads = 0;  ///< 0 = sieve::num_threads()
  /// Initial point for every chain; when absent each chain draws x ~ U(-init_radius, init_radius)^d
  /// from its own stream (Stan's default), retrying up to 100 times for a finite log density.
  std::optional<Eigen::VectorXd> init;
  double init_radius = 2.0;
  bool progress = true;  ///< progress line on stderr (sieve::Progress rules apply)
};

/// @brief Runs options.num_chains chains of sampler `name` in parallel threads.
std::vector<Chain> run_chains(std::string_view name, const AnyTarget& target,
                              const KeyValues& settings, const MultiChainOptions& options);

/// Data for models that take a design matrix and a response (logistic, linreg, gp).
/// X: [n, p] covariates as given (models add nothing; the CSV loader adds the intercept and
/// standardises); y: [n].
struct ModelData {
  Eigen::MatrixXd X;
  Eigen::VectorXd y;
  std::vector<std::string> column_names;  ///< names of X's columns (parameter names), optional
};

std::vector<std::string> model_names();
/// Settings a model accepts (e.g. dim, prior_sd, grid). Throws for an unknown model.
std::vector<SettingInfo> model_settings(std::string_view model);

/// @brief Builds a built-in model. `data` is required for logistic; linreg and gp generate
/// deterministic synthetic data when it is null; lgcp takes data->y as counts (grid^2 cells,
/// row-major) or simulates them.
AnyTarget make_model(std::string_view name, const KeyValues& settings,
                     const ModelData* data = nullptr);

}  // namespace sieve::mcmc
