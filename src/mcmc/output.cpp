// CmdStan CSV, summary table and JSON for MCMC runs (see sieve/mcmc/output.h).
#include "sieve/mcmc/output.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "sieve/core/error.h"
#include "sieve/core/threading.h"
#include "sieve/mcmc/control_variates.h"
#include "sieve/mcmc/target.h"

namespace sieve::mcmc {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// Matrices larger than this are summarised by their diagonal in the CSV comments.
constexpr Eigen::Index kMaxMatrixDimInCsv = 100;

bool is_nuts(const Chain& c) { return !c.tree_depth.empty(); }

void write_row(std::ostream& os, const Eigen::Ref<const Eigen::RowVectorXd>& v) {
  os << "# ";
  for (Eigen::Index i = 0; i < v.size(); ++i) os << (i ? ", " : "") << fmt::format("{}", v[i]);
  os << "\n";
}

void write_adaptation(std::ostream& os, const Chain& chain) {
  const auto& a = chain.adapted;
  os << "# Adaptation terminated\n";
  if (std::isfinite(a.step_size)) os << fmt::format("# Step size = {}\n", a.step_size);
  if (std::isfinite(a.gamma)) os << fmt::format("# gamma = {}\n", a.gamma);
  if (std::isfinite(a.nu)) os << fmt::format("# nu = {}\n", a.nu);
  if (a.mu.size()) {
    os << "# Gaussian mean (mu):\n";
    write_row(os, a.mu.transpose());
  }
  if (a.sigma.size()) {
    const Eigen::MatrixXd& s = a.sigma;
    const bool diagonal_only = s.cols() == 1 || s.rows() > kMaxMatrixDimInCsv || s.isDiagonal(0.0);
    // CmdStan calls NUTS's metric the inverse mass matrix; other samplers store their
    // preconditioner / Gaussian covariance in the same slot.
    const char* what = is_nuts(chain) ? "inverse mass matrix" : "Sigma";
    if (diagonal_only) {
      os << "# Diagonal elements of " << what << ":\n";
      write_row(
          os,
          (s.cols() == 1 ? Eigen::VectorXd(s.col(0)) : Eigen::VectorXd(s.diagonal())).transpose());
    } else {
      os << "# Elements of " << what << ":\n";
      for (Eigen::Index r = 0; r < s.rows(); ++r) write_row(os, s.row(r));
    }
  }
}

// The temporary file write_atomically writes `path` through (in the same folder).
std::string temporary_name(const std::string& path) {
  return path + fmt::format(".tmp-{}", ::getpid());
}

// Writes to `path` through a temporary file in the same folder and a rename, so that a reader
// never sees a half-written file.
template <class WriteFn>
void write_atomically(const std::string& path, WriteFn&& write) {
  namespace fs = std::filesystem;
  const std::string tmp = temporary_name(path);
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    SIEVE_CHECK(f.good(), "cannot write '{}'", path);
    // A writer that throws part-way (e.g. a shape check) must not leave the temporary behind.
    try {
      write(f);
    } catch (...) {
      f.close();
      std::error_code ec;
      fs::remove(tmp, ec);
      throw;
    }
    f.flush();
    if (!f.good()) {
      f.close();
      std::error_code ec;
      fs::remove(tmp, ec);
      SIEVE_FAIL("error while writing '{}'", path);
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    SIEVE_FAIL("cannot move the finished file into place at '{}'", path);
  }
}

double parse_double(std::string_view s, const std::string& path, std::size_t line) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.remove_suffix(1);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  double v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  SIEVE_CHECK(ec == std::errc() && ptr == s.data() + s.size() && !s.empty(),
              "{} line {}: '{}' is not a number", path, line, s);
  return v;
}

nlohmann::json number(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

nlohmann::json reduced_json(const std::optional<ReducedEstimate>& r) {
  if (!r) return nullptr;
  return {{"estimate", number(r->estimate)}, {"mcse", number(r->mcse)}, {"vrf", number(r->vrf)}};
}

nlohmann::json parameter_json(const ParameterReport& p) {
  const auto& s = p.summary;
  nlohmann::json j = {{"name", p.name},
                      {"mean", number(s.mean)},
                      {"sd", number(s.sd)},
                      {"mcse_mean", number(s.mcse_mean)},
                      {"mcse_sd", number(s.mcse_sd)},
                      {"q5", number(s.q05)},
                      {"q50", number(s.q50)},
                      {"q95", number(s.q95)},
                      {"ess_bulk", number(s.ess_bulk)},
                      {"ess_tail", number(s.ess_tail)},
                      {"rhat", number(s.rhat)},
                      {"second_moment", number(p.second_moment)},
                      {"second_moment_mcse", number(p.second_moment_mcse)}};
  if (p.cv_mean) j["cv_mean"] = reduced_json(p.cv_mean);
  if (p.cv_second_moment) j["cv_second_moment"] = reduced_json(p.cv_second_moment);
  return j;
}

// Fixed-width numbers: 3 significant digits for statistics, whole numbers for ESS.
std::string g3(double v) { return std::isfinite(v) ? fmt::format("{:.3g}", v) : "nan"; }
std::string whole(double v) { return std::isfinite(v) ? fmt::format("{:.0f}", v) : "nan"; }
std::string fixed3(double v) { return std::isfinite(v) ? fmt::format("{:.3f}", v) : "nan"; }

}  // namespace

void write_cmdstan_csv(std::ostream& os, const Chain& chain, const CsvRunInfo& info) {
  const Eigen::Index d = chain.dim();
  const std::vector<std::string> names =
      info.parameter_names.empty() ? default_parameter_names(d) : info.parameter_names;
  SIEVE_CHECK(Eigen::Index(names.size()) == d, "CSV output: {} parameter names for {} dimensions",
              names.size(), d);
  const bool nuts = is_nuts(chain);
  const bool step = std::isfinite(chain.adapted.step_size);
  const auto n = chain.num_draws();
  SIEVE_CHECK(chain.log_density.size() == n && chain.accept_prob.size() == n,
              "CSV output: chain {} has {} draws but {} log densities and {} acceptance stats",
              chain.chain_id, n, chain.log_density.size(), chain.accept_prob.size());

  os << "# model = " << info.model << "\n";
  os << "# method = sample (Default)\n";
  os << "#   sample\n";
  os << "#     num_samples = " << n << "\n";
  os << "#     num_warmup = " << info.num_warmup << "\n";
  os << "#     save_warmup = false\n";
  os << "#     thin = 1 (Default)\n";
  os << "#     adapt\n";
  os << "#       engaged = true\n";
  if (nuts) {
    os << "#     algorithm = hmc (Default)\n";
    os << "#       hmc\n";
    os << "#         engine = nuts (Default)\n";
  } else {
    os << "#     algorithm = " << chain.sampler << "\n";
  }
  for (const auto& [k, v] : info.settings) os << "#         " << k << " = " << v << "\n";
  os << "# id = " << chain.chain_id + 1 << "\n";
  if (!info.data_file.empty()) {
    os << "# data\n";
    os << "#   file = " << info.data_file << "\n";
  }
  os << "# random\n";
  os << "#   seed = " << info.seed << "\n";
  os << "# sieve_sampler = " << chain.sampler << "\n";
  os << "# sieve_gradient_evals = " << chain.sampling_gradient_evals() << "\n";
  os << "# sieve_warmup_gradient_evals = " << chain.num_warmup_gradient_evals << "\n";
  os << "# sieve_hessian_evals = " << chain.num_hessian_evals << "\n";

  os << "lp__,accept_stat__";
  if (step) os << ",stepsize__";
  if (nuts) os << ",treedepth__,n_leapfrog__,divergent__";
  for (const auto& name : names) os << "," << name;
  os << "\n";
  write_adaptation(os, chain);

  std::string line;
  for (Eigen::Index t = 0; t < n; ++t) {
    line.clear();
    fmt::format_to(std::back_inserter(line), "{},{}", chain.log_density[t], chain.accept_prob[t]);
    if (step) fmt::format_to(std::back_inserter(line), ",{}", chain.adapted.step_size);
    if (nuts) {
      const auto i = std::size_t(t);
      fmt::format_to(std::back_inserter(line), ",{},{},{}", chain.tree_depth[i],
                     chain.num_leapfrog[i], int(chain.divergent[i]));
    }
    for (Eigen::Index j = 0; j < d; ++j)
      fmt::format_to(std::back_inserter(line), ",{}", chain.draws(t, j));
    line += '\n';
    os << line;
  }
  const double total = chain.warmup_seconds + chain.sampling_seconds;
  os << "# \n";
  os << fmt::format("#  Elapsed Time: {:.6f} seconds (Warm-up)\n", chain.warmup_seconds);
  os << fmt::format("#                {:.6f} seconds (Sampling)\n", chain.sampling_seconds);
  os << fmt::format("#                {:.6f} seconds (Total)\n", total);
  os << "# \n";
}

namespace {
// Chain `id`'s file: `path` itself when it is the only chain, else "<stem>_<id + 1><ext>".
std::string chain_file_name(const std::string& path, uint64_t id, bool several) {
  if (!several) return path;
  namespace fs = std::filesystem;
  const fs::path p(path);
  return (p.parent_path() / (p.stem().string() + "_" + std::to_string(id + 1) + p.extension().string()))
      .string();
}
}  // namespace

void check_cmdstan_csv_destination(const std::string& path, int64_t num_chains) {
  namespace fs = std::filesystem;
  SIEVE_CHECK(!path.empty(), "CSV output: empty file name");
  SIEVE_CHECK(num_chains >= 1, "CSV output: no chains to write");
  std::error_code ec;
  // every chain's file lies in the folder of `path`: one folder check and one probe
  const std::string first = chain_file_name(path, 0, num_chains > 1);
  const fs::path folder = fs::path(first).parent_path();
  SIEVE_CHECK(folder.empty() || fs::is_directory(folder, ec),
              "cannot write '{}': folder '{}' does not exist", first, folder.string());
  for (int64_t c = 0; c < num_chains; ++c) {
    const std::string target = chain_file_name(path, uint64_t(c), num_chains > 1);
    SIEVE_CHECK(!fs::is_directory(target, ec), "cannot write '{}': it is a folder", target);
  }
  // creating write_atomically's temporary file is what the write will need
  const std::string probe = temporary_name(first);
  {
    std::ofstream f(probe, std::ios::binary | std::ios::trunc);
    SIEVE_CHECK(f.good(), "cannot write '{}'", first);
  }
  fs::remove(probe, ec);
}

std::vector<std::string> write_cmdstan_csv_files(const std::string& path,
                                                 const std::vector<Chain>& chains,
                                                 const CsvRunInfo& info) {
  SIEVE_CHECK(!chains.empty(), "CSV output: no chains to write");
  SIEVE_CHECK(!path.empty(), "CSV output: empty file name");
  std::vector<std::string> written;
  for (const Chain& chain : chains) {
    const std::string target = chain_file_name(path, chain.chain_id, chains.size() > 1);
    write_atomically(target, [&](std::ostream& os) { write_cmdstan_csv(os, chain, info); });
    written.push_back(target);
  }
  return written;
}

CmdStanCsv read_cmdstan_csv(const std::string& path) {
  std::ifstream f(path);
  SIEVE_CHECK(f.good(), "cannot open CmdStan CSV '{}'", path);
  CmdStanCsv out;
  std::vector<double> values;
  std::string line;
  std::size_t line_no = 0, rows = 0;
  while (std::getline(f, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::string_view s(line);
      s.remove_prefix(1);
      while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
      const auto eq = s.find(" = ");
      if (eq != std::string_view::npos) {
        std::string value(s.substr(eq + 3));
        if (const auto def = value.find(" (Default)"); def != std::string::npos) value.resize(def);
        out.config[std::string(s.substr(0, eq))] = value;
      }
      continue;
    }
    std::vector<std::string_view> fields;
    std::string_view rest(line);
    for (;;) {
      const auto comma = rest.find(',');
      fields.push_back(rest.substr(0, comma));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    if (out.columns.empty()) {
      for (auto fv : fields) out.columns.emplace_back(fv);
      continue;
    }
    SIEVE_CHECK(fields.size() == out.columns.size(), "{} line {}: {} values, expected {}", path,
                line_no, fields.size(), out.columns.size());
    for (auto fv : fields) values.push_back(parse_double(fv, path, line_no));
    ++rows;
  }
  SIEVE_CHECK(!out.columns.empty(), "'{}' has no header line (not a CmdStan CSV)", path);
  out.values =
      Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
          values.data(), Eigen::Index(rows), Eigen::Index(out.columns.size()));
  return out;
}

// ---- summaries ---------------------------------------------------------------------------------

double RunReport::min_ess_bulk() const {
  double m = INFINITY;
  for (const auto& p : parameters) m = std::min(m, p.summary.ess_bulk);
  return parameters.empty() ? kNaN : m;
}

double RunReport::min_ess_bulk_per_second() const {
  return sampling_seconds > 0 ? min_ess_bulk() / sampling_seconds : kNaN;
}

double RunReport::min_ess_bulk_per_gradient() const {
  return sampling_gradient_evals > 0 ? min_ess_bulk() / double(sampling_gradient_evals) : kNaN;
}

std::vector<double> gather_draws(const std::vector<Chain>& chains, Eigen::Index j) {
  SIEVE_CHECK(!chains.empty(), "gather_draws: no chains");
  const auto n = chains.front().num_draws();
  std::vector<double> out;
  out.reserve(std::size_t(n) * chains.size());
  for (const auto& c : chains) {
    SIEVE_CHECK(c.num_draws() == n && c.dim() == chains.front().dim(),
                "gather_draws: chains differ in draw count or dimension");
    SIEVE_CHECK(j >= -1 && j < c.dim(), "gather_draws: parameter index {} out of range", j);
    for (Eigen::Index t = 0; t < n; ++t) out.push_back(j < 0 ? c.log_density[t] : c.draws(t, j));
  }
  return out;
}

RunReport summarize_run(const std::vector<Chain>& chains, const std::vector<std::string>& names) {
  SIEVE_CHECK(!chains.empty(), "summarize_run: no chains");
  const Chain& first = chains.front();
  const Eigen::Index d = first.dim();
  const auto n = std::size_t(first.num_draws());
  SIEVE_CHECK(n > 0, "summarize_run: chains have no draws");
  const auto param_names = names.empty() ? default_parameter_names(d) : names;
  SIEVE_CHECK(Eigen::Index(param_names.size()) == d, "summarize_run: {} names for {} parameters",
              param_names.size(), d);

  RunReport r;
  r.num_chains = int(chains.size());
  r.num_draws = first.num_draws();
  r.sampler = first.sampler;

  auto report_of = [&](const std::string& name, const std::vector<double>& x) {
    ParameterReport p;
    p.name = name;
    const ChainsView v(x, chains.size(), n);
    p.summary = summarize(v);
    std::vector<double> sq(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) sq[i] = x[i] * x[i];
    const ChainsView vs(sq, chains.size(), n);
    p.second_moment = std::accumulate(sq.begin(), sq.end(), 0.0) / double(sq.size());
    p.second_moment_mcse = mcse_mean(vs);
    return p;
  };
  r.lp = report_of("lp__", gather_draws(chains, -1));
  r.parameters.resize(std::size_t(d));
  // Parameters are independent: thousands of them (e.g. a latent field) are summarised in
  // parallel; each diagnostic is a pure function of its own draws.
  // (The lp__ pass above has validated the chains; errors are still carried out of the region.)
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 16) num_threads(sieve::num_threads())
  for (Eigen::Index j = 0; j < d; ++j) {
    try {
      r.parameters[std::size_t(j)] =
          report_of(param_names[std::size_t(j)], gather_draws(chains, j));
    } catch (...) {
#pragma omp critical(sieve_summarize_run)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);

  std::vector<double> acc;
  for (const auto& c : chains)
    acc.insert(acc.end(), c.accept_prob.data(), c.accept_prob.data() + c.accept_prob.size());
  SIEVE_CHECK(acc.size() == n * chains.size(), "summarize_run: acceptance stats missing");
  r.acceptance = summarize_acceptance(ChainsView(acc, chains.size(), n));

  for (const auto& c : chains) {
    r.warmup_seconds += c.warmup_seconds;
    r.sampling_seconds += c.sampling_seconds;
    r.warmup_gradient_evals += c.num_warmup_gradient_evals;
    r.sampling_gradient_evals += c.sampling_gradient_evals();
    r.density_evals += c.num_density_evals;
    r.hessian_evals += c.num_hessian_evals;
    for (uint8_t dv : c.divergent) r.divergences += dv;
  }
  return r;
}

void add_control_variate_estimates(RunReport& report, const std::vector<Chain>& chains,
                                   std::string_view method) {
  SIEVE_CHECK(!chains.empty(), "control variates: no chains");
  const Eigen::Index d = chains.front().dim();
  SIEVE_CHECK(Eigen::Index(report.parameters.size()) == d,
              "control variates: report has {} parameters, chains have {}",
              report.parameters.size(), d);
  const auto n = std::size_t(chains.front().num_draws());
  const std::size_t m = chains.size();
  std::vector<std::string> names;
  for (const auto& p : report.parameters) names.push_back(p.name);
  const CvResult means = control_variates(method, chains, coordinate_functions(d, names));
  const CvResult squares = control_variates(method, chains, square_functions(d, names));
  SIEVE_CHECK(
      means.series.rows() == Eigen::Index(n * m) && squares.series.rows() == means.series.rows(),
      "control variates: series has {} rows, expected {}", means.series.rows(), n * m);

  // Estimate, MCSE and VRF of column j of a CV series against the plain series `plain`.
  auto reduced = [&](const CvResult& r, Eigen::Index j, const std::vector<double>& plain) {
    const ChainsView cv(std::span<const double>(r.series.col(j).data(), n * m), m, n);
    const ChainsView pv(plain, m, n);
    const double var_cv = asymptotic_variance(cv), var_plain = asymptotic_variance(pv);
    return ReducedEstimate{r.estimate[j], std::sqrt(var_cv / double(n * m)), var_plain / var_cv};
  };
  for (Eigen::Index j = 0; j < d; ++j) {
    auto x = gather_draws(chains, j);
    auto& p = report.parameters[std::size_t(j)];
    p.cv_mean = reduced(means, j, x);
    for (double& v : x) v *= v;
    p.cv_second_moment = reduced(squares, j, x);
  }
  report.cv = std::string(method);
}

std::string format_summary_table(const RunReport& r) {
  const bool cv = std::any_of(r.parameters.begin(), r.parameters.end(),
                              [](const ParameterReport& p) { return p.cv_mean.has_value(); });
  std::size_t w = 6;
  for (const auto& p : r.parameters) w = std::max(w, p.name.size());
  std::string out;
  auto app = [&out](const std::string& s) { out += s; };
  app(fmt::format("sieve mcmc: model {}, sampler {}, {} chains x {} draws (warm-up {}), seed {}",
                  r.model, r.sampler, r.num_chains, r.num_draws, r.num_warmup, r.seed));
  if (!r.data.empty()) app(fmt::format(", data {}", r.data));
  app("\n\n");
  app(fmt::format("{:<{}} {:>10} {:>9} {:>9} {:>10} {:>10} {:>10} {:>9} {:>9} {:>6}", "", w, "Mean",
                  "MCSE", "StdDev", "5%", "50%", "95%", "ESS_bulk", "ESS_tail", "R_hat"));
  if (cv) app(fmt::format("  {:>10} {:>9} {:>9}", "CV_Mean", "CV_MCSE", "VRF"));
  app("\n");
  auto row = [&](const ParameterReport& p) {
    const auto& s = p.summary;
    app(fmt::format("{:<{}} {:>10} {:>9} {:>9} {:>10} {:>10} {:>10} {:>9} {:>9} {:>6}", p.name, w,
                    g3(s.mean), g3(s.mcse_mean), g3(s.sd), g3(s.q05), g3(s.q50), g3(s.q95),
                    whole(s.ess_bulk), whole(s.ess_tail), fixed3(s.rhat)));
    if (cv && p.cv_mean)
      app(fmt::format("  {:>10} {:>9} {:>9}", g3(p.cv_mean->estimate), g3(p.cv_mean->mcse),
                      g3(p.cv_mean->vrf)));
    app("\n");
  };
  row(r.lp);
  app("\n");
  for (const auto& p : r.parameters) row(p);
  app("\n");
  app(fmt::format("acceptance: mean {:.3f} (chains {:.3f} .. {:.3f})", r.acceptance.mean,
                  r.acceptance.min_chain, r.acceptance.max_chain));
  if (r.divergences) app(fmt::format(", {} divergent transitions", r.divergences));
  app("\n");
  app(fmt::format("time (summed over chains): warm-up {:.3f} s, sampling {:.3f} s\n",
                  r.warmup_seconds, r.sampling_seconds));
  app(fmt::format("gradient evaluations: warm-up {}, sampling {}", r.warmup_gradient_evals,
                  r.sampling_gradient_evals));
  if (r.hessian_evals) app(fmt::format(", Hessian evaluations {}", r.hessian_evals));
  app("\n");
  app(fmt::format("min ESS_bulk {}: {} per second of sampling, {} per gradient\n",
                  whole(r.min_ess_bulk()), g3(r.min_ess_bulk_per_second()),
                  g3(r.min_ess_bulk_per_gradient())));
  if (cv) {
    auto median_vrf = [&](bool second) {
      std::vector<double> v;
      for (const auto& p : r.parameters) {
        const auto& e = second ? p.cv_second_moment : p.cv_mean;
        if (e) v.push_back(e->vrf);
      }
      if (v.empty()) return kNaN;
      std::sort(v.begin(), v.end());
      return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
    };
    app(
        fmt::format("CV_Mean: {} control-variate estimate of the posterior mean; VRF: asymptotic "
                    "variance of the plain mean over the CV estimate's\n",
                    r.cv));
    app(fmt::format("median VRF over parameters: posterior means {}, second moments {}\n",
                    g3(median_vrf(false)), g3(median_vrf(true))));
  }
  return out;
}

std::string report_json(const RunReport& r, int indent) {
  nlohmann::json j;
  j["model"] = r.model;
  j["sampler"] = r.sampler;
  j["data"] = r.data;
  j["cv"] = r.cv;
  j["chains"] = r.num_chains;
  j["warmup"] = r.num_warmup;
  j["draws"] = r.num_draws;
  j["seed"] = r.seed;
  j["lp"] = parameter_json(r.lp);
  j["parameters"] = nlohmann::json::array();
  for (const auto& p : r.parameters) j["parameters"].push_back(parameter_json(p));
  j["acceptance"] = {{"mean", number(r.acceptance.mean)},
                     {"min_chain", number(r.acceptance.min_chain)},
                     {"max_chain", number(r.acceptance.max_chain)}};
  j["timing"] = {{"warmup_seconds", r.warmup_seconds}, {"sampling_seconds", r.sampling_seconds}};
  j["evaluations"] = {{"warmup_gradient", r.warmup_gradient_evals},
                      {"sampling_gradient", r.sampling_gradient_evals},
                      {"density", r.density_evals},
                      {"hessian", r.hessian_evals}};
  j["divergences"] = r.divergences;
  j["min_ess_bulk"] = number(r.min_ess_bulk());
  j["min_ess_bulk_per_second"] = number(r.min_ess_bulk_per_second());
  j["min_ess_bulk_per_gradient"] = number(r.min_ess_bulk_per_gradient());
  return j.dump(indent);
}

}  // namespace sieve::mcmc
