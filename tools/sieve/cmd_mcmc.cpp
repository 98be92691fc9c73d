// `sieve mcmc`: sample a built-in model with a named sampler, print a CmdStan-style summary (or
// JSON) with optional control-variate estimates, and write CmdStan CSV draws.
//
//   sieve mcmc --model logistic --data pima --sampler gi-mala --chains 4 --cv poisson
//
// Models and samplers come from sieve/mcmc/registry.h; `--set key=value` reaches any model or
// sampler setting (`--list` prints them). Bad input is one line on stderr and a non-zero exit.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "command.h"
#include "sieve/core/error.h"
#include "sieve/mcmc/data.h"
#include "sieve/mcmc/output.h"
#include "sieve/mcmc/registry.h"

namespace sieve::tool {
namespace {

using mcmc::KeyValues;

struct McmcArgs {
  std::string model = "logistic";
  std::string data;  // empty: the model's default
  std::string sampler = "gi-mala";
  int chains = 4;
  int64_t warmup = 1000, draws = 1000;
  uint64_t seed = 1;
  std::string cv = "none";
  std::vector<std::string> set;
  std::string out;
  bool json = false;
  int threads = 0;
  bool no_standardize = false, no_intercept = false;
  bool list = false;
};

// How each model uses --data: logistic needs a 0/1 response (default: the bundled Pima set);
// linreg and gp take an optional real response and otherwise simulate; the rest take none.
enum class DataUse { kNone, kOptional, kRequired };
struct ModelDataRule {
  DataUse use = DataUse::kNone;
  const char* default_data = nullptr;
  bool binary = false, intercept = true;
};
ModelDataRule data_rule(const std::string& model) {
  if (model == "logistic") return {DataUse::kRequired, "pima", true, true};
  if (model == "linreg") return {DataUse::kOptional, nullptr, false, true};
  if (model == "gp") return {DataUse::kOptional, nullptr, false, false};
  return {};
}

std::set<std::string> keys_of(const std::vector<mcmc::SettingInfo>& info) {
  std::set<std::string> keys;
  for (const auto& s : info) keys.insert(s.key);
  return keys;
}

// Splits --set pairs between the model and the sampler: "model.k=v" and "sampler.k=v" are
// explicit; a bare key goes to the model when only the model knows it, else to the sampler
// (which rejects unknown keys with a message naming them).
void split_settings(const McmcArgs& a, KeyValues& model_kv, KeyValues& sampler_kv) {
  const auto model_keys = keys_of(mcmc::model_settings(a.model));
  const auto sampler_keys = keys_of(mcmc::sampler_settings(a.sampler));
  for (const auto& text : a.set) {
    auto [key, value] = mcmc::parse_key_value(text);
    if (key.rfind("model.", 0) == 0) {
      key = key.substr(6);
      SIEVE_CHECK(model_keys.count(key), "model {} has no setting '{}' (see sieve mcmc --list)",
                  a.model, key);
      model_kv.emplace_back(key, value);
      continue;
    }
    if (key.rfind("sampler.", 0) == 0) {
      sampler_kv.emplace_back(key.substr(8), value);
      continue;
    }
    SIEVE_CHECK(key != "num_warmup" && key != "num_draws",
                "set the number of iterations with --warmup / --draws, not --set {}", key);
    const bool in_model = model_keys.count(key) > 0, in_sampler = sampler_keys.count(key) > 0;
    SIEVE_CHECK(
        !(in_model && in_sampler),
        "setting '{}' exists for both model {} and sampler {}: write model.{} or sampler.{}", key,
        a.model, a.sampler, key, key);
    (in_model ? model_kv : sampler_kv).emplace_back(key, value);
  }
}

void print_list(const McmcArgs& a) {
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  std::string out;
  out += fmt::format("models:   {}\n", join(mcmc::model_names()));
  out += fmt::format("samplers: {}\n", join(mcmc::sampler_names()));
  out += fmt::format("data:     {} (in {})\n", join(mcmc::bundled_dataset_names()),
                     mcmc::bundled_data_dir());
  out += fmt::format("cv:       none, poisson, imh, zv\n\n");
  auto settings = [&out](const std::string& title, const std::vector<mcmc::SettingInfo>& info) {
    out += title + ":\n";
    for (const auto& s : info)
      out += fmt::format("  {:<22} {:<14} {}\n", s.key,
                         s.default_value.empty() ? "-" : s.default_value, s.description);
  };
  settings(fmt::format("settings of model {} (--set key=value)", a.model),
           mcmc::model_settings(a.model));
  settings(fmt::format("settings of sampler {} (--set key=value)", a.sampler),
           mcmc::sampler_settings(a.sampler));
  std::fputs(out.c_str(), stdout);
}

void run_mcmc(const McmcArgs& a) {
  if (a.list) {
    print_list(a);
    return;
  }
  // (an upper bound so that a typo fails at once instead of after minutes of allocation)
  SIEVE_CHECK(a.chains >= 1 && a.chains <= 100000, "--chains must be in [1, 100000], got {}",
              a.chains);
  SIEVE_CHECK(a.draws >= 4,
              "--draws must be at least 4 (diagnostics need 4 draws per chain), got {}", a.draws);
  SIEVE_CHECK(a.warmup >= 0, "--warmup must be non-negative, got {}", a.warmup);
  SIEVE_CHECK(a.threads >= 0, "--threads must be non-negative, got {}", a.threads);
  SIEVE_CHECK(a.cv == "none" || a.cv == "poisson" || a.cv == "imh" || a.cv == "zv",
              "--cv must be none, poisson, imh or zv, got '{}'", a.cv);

  KeyValues model_kv, sampler_kv;
  split_settings(a, model_kv, sampler_kv);
  sampler_kv.emplace_back("num_warmup", std::to_string(a.warmup));
  sampler_kv.emplace_back("num_draws", std::to_string(a.draws));

  // Data.
  const ModelDataRule rule = data_rule(a.model);
  std::string data_path;
  std::optional<mcmc::ModelData> data;
  if (!a.data.empty()) {
    SIEVE_CHECK(rule.use != DataUse::kNone,
                "model {} takes no data (--data is for logistic, linreg, gp)", a.model);
    data_path = mcmc::resolve_dataset(a.data);
  } else if (rule.default_data) {
    data_path = mcmc::resolve_dataset(rule.default_data);
  }
  if (!data_path.empty()) {
    mcmc::CsvOptions o;
    o.binary_response = rule.binary;
    o.add_intercept = rule.intercept && !a.no_intercept;
    o.standardize = !a.no_standardize;
    auto d = mcmc::load_csv(data_path, o);
    data = mcmc::ModelData{std::move(d.X), std::move(d.y), std::move(d.names)};
  }

  // an unwritable --out fails now, not after the run
  if (!a.out.empty()) mcmc::check_cmdstan_csv_destination(a.out, a.chains);
  const mcmc::AnyTarget target = mcmc::make_model(a.model, model_kv, data ? &*data : nullptr);
  mcmc::MultiChainOptions opt;
  opt.num_chains = a.chains;
  opt.seed = a.seed;
  opt.num_threads = a.threads;
  const auto chains = mcmc::run_chains(a.sampler, target, sampler_kv, opt);
  const auto names = target.parameter_names();

  mcmc::RunReport report = mcmc::summarize_run(chains, names);
  report.model = a.model;
  report.sampler = a.sampler;
  report.data = data_path;
  report.seed = a.seed;
  report.num_warmup = a.warmup;
  report.cv = a.cv;
  if (a.cv != "none") mcmc::add_control_variate_estimates(report, chains, a.cv);

  if (!a.out.empty()) {
    mcmc::CsvRunInfo info;
    info.model = a.model;
    info.sampler = a.sampler;
    info.data_file = data_path;
    info.seed = a.seed;
    info.num_warmup = a.warmup;
    info.parameter_names = names;
    for (const auto& kv : sampler_kv)
      if (kv.first != "num_warmup" && kv.first != "num_draws") info.settings.push_back(kv);
    const auto files = mcmc::write_cmdstan_csv_files(a.out, chains, info);
    for (const auto& f : files) std::fprintf(stderr, "sieve mcmc: wrote %s\n", f.c_str());
  }
  const std::string text =
      a.json ? mcmc::report_json(report) + "\n" : mcmc::format_summary_table(report);
  std::fputs(text.c_str(), stdout);
}

void setup_mcmc(CLI::App& app) {
  auto args = std::make_shared<McmcArgs>();
  auto* cmd =
      app.add_subcommand("mcmc", "Sample a posterior with a (variance-reduced) MCMC sampler");
  cmd->footer(
      "Examples:\n"
      "  sieve mcmc                                   logistic regression on the bundled Pima "
      "data, GI-MALA\n"
      "  sieve mcmc --data sonar --sampler nuts --json\n"
      "  sieve mcmc --model banana --sampler gi-rwm --set b=0.1 --cv poisson --out draws.csv\n"
      "  sieve mcmc --list --model logistic --sampler gi-mala   (models, samplers, data, "
      "settings)");
  cmd->add_option("--model", args->model, "Model name (see --list)")->capture_default_str();
  cmd->add_option("--data", args->data,
                  "CSV file (header row, 0/1 column y, covariates) or a bundled data set name; "
                  "logistic defaults to pima");
  cmd->add_option("--sampler", args->sampler, "Sampler name (see --list)")->capture_default_str();
  cmd->add_option("--chains", args->chains, "Number of chains (1-100000)")->capture_default_str();
  cmd->add_option("--warmup", args->warmup, "Warm-up (adaptation) iterations per chain")
      ->capture_default_str();
  cmd->add_option("--draws", args->draws, "Stored draws per chain")->capture_default_str();
  cmd->add_option("--seed", args->seed, "Seed; chain c uses stream c (thread-count independent)")
      ->check(non_negative_integer())
      ->capture_default_str();
  cmd->add_option("--cv", args->cv,
                  "Control variates: none, poisson (GI Poisson-equation), imh (independent "
                  "Metropolis), zv (zero-variance)")
      ->capture_default_str();
  cmd->add_option("--set", args->set,
                  "Model or sampler setting key=value (repeatable; "
                  "model.key= / sampler.key= to disambiguate)");
  cmd->add_option("--out", args->out,
                  "Write CmdStan CSV draws (one file per chain: FILE_1.csv ... when chains > 1)");
  cmd->add_flag("--json", args->json, "Print one JSON object instead of the table");
  cmd->add_option("--threads", args->threads, "Threads for chains (0 = all cores)")
      ->capture_default_str();
  cmd->add_flag("--no-standardize", args->no_standardize, "Keep covariates on their raw scale");
  cmd->add_flag("--no-intercept", args->no_intercept, "Do not add an intercept column");
  cmd->add_flag("--list", args->list,
                "List models, samplers, data sets and the settings of the "
                "chosen model and sampler, then exit");
  cmd->callback([args] { run_mcmc(*args); });
}

SIEVE_REGISTER_COMMAND(setup_mcmc);

}  // namespace
}  // namespace sieve::tool
