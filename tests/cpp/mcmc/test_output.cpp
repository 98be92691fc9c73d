// CmdStan CSV, summary table and JSON output: the CSV layout CmdStan readers rely on (comment
// config, header, adaptation block, timing block), bit-exact round trip of every draw, one file
// per chain with CmdStan's names, atomic writes, and a report that agrees with the diagnostics.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "sieve/core/error.h"
#include "sieve/core/rng.h"
#include "sieve/mcmc/output.h"

using namespace sieve;
using namespace sieve::mcmc;
namespace fs = std::filesystem;

namespace {

Chain make_chain(uint64_t id, Eigen::Index n, Eigen::Index d, bool nuts) {
  Rng rng(11, id);
  Chain c;
  c.sampler = nuts ? "nuts" : "gi-mala";
  c.chain_id = id;
  c.draws.resize(n, d);
  c.log_density.resize(n);
  c.accept_prob.resize(n);
  for (Eigen::Index t = 0; t < n; ++t) {
    for (Eigen::Index j = 0; j < d; ++j) c.draws(t, j) = double(j) + rng.normal() / 3.0;
    c.log_density[t] = -0.5 * c.draws.row(t).squaredNorm();
    c.accept_prob[t] = rng.uniform();
  }
  c.adapted.step_size = 0.123456789012345;
  c.adapted.sigma = Eigen::MatrixXd::Identity(d, d) * 2.0;
  if (nuts) {
    for (Eigen::Index t = 0; t < n; ++t) {
      c.tree_depth.push_back(int(t % 4));
      c.num_leapfrog.push_back(int(1 << (t % 4)));
      c.divergent.push_back(uint8_t(t == 3));
    }
  } else {
    c.adapted.gamma = 0.8;
  }
  c.num_gradient_evals = 10 * n + 100;
  c.num_warmup_gradient_evals = 100;
  c.warmup_seconds = 0.25;
  c.sampling_seconds = 0.5;
  return c;
}

CsvRunInfo info_for(Eigen::Index d) {
  CsvRunInfo info;
  info.model = "gaussian";
  info.data_file = "none";
  info.seed = 42;
  info.num_warmup = 200;
  info.settings = {{"gamma", "0.8"}};
  for (Eigen::Index j = 0; j < d; ++j)
    info.parameter_names.push_back("theta." + std::to_string(j + 1));
  return info;
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream is(s);
  for (std::string l; std::getline(is, l);) out.push_back(l);
  return out;
}

fs::path fresh_dir(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("sieve_test_output_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

}  // namespace

TEST(McmcOutput, CmdStanCsvLayout) {
  const Chain c = make_chain(2, 7, 3, false);
  std::ostringstream os;
  write_cmdstan_csv(os, c, info_for(3));
  const auto lines = lines_of(os.str());
  std::size_t header = 0;
  while (header < lines.size() && lines[header].rfind("#", 0) == 0) ++header;
  ASSERT_LT(header, lines.size());
  EXPECT_EQ(lines[header], "lp__,accept_stat__,stepsize__,theta.1,theta.2,theta.3");
  const std::string text = os.str();
  for (const char* needle :
       {"# model = gaussian\n", "# method = sample (Default)\n", "#     num_samples = 7\n",
        "#     num_warmup = 200\n", "#     algorithm = gi-mala\n", "# id = 3\n", "#   seed = 42\n",
        "# Adaptation terminated\n", "# Step size = 0.123456789012345\n",
        "# Diagonal elements of Sigma:\n# 2, 2, 2\n",
        "#  Elapsed Time: 0.250000 seconds (Warm-up)\n",
        "#                0.750000 seconds (Total)\n"})
    EXPECT_NE(text.find(needle), std::string::npos) << needle;
  // Draw rows follow the adaptation block; exactly 7 of them, each with 6 fields.
  std::size_t rows = 0;
  for (std::size_t i = header + 1; i < lines.size(); ++i) {
    if (lines[i].rfind("#", 0) == 0) continue;
    ++rows;
    EXPECT_EQ(std::count(lines[i].begin(), lines[i].end(), ','), 5) << lines[i];
  }
  EXPECT_EQ(rows, 7u);
}

TEST(McmcOutput, NutsColumnsAndDenseMetric) {
  Chain c = make_chain(0, 5, 2, true);
  c.adapted.sigma << 1.0, 0.5, 0.5, 2.0;
  std::ostringstream os;
  write_cmdstan_csv(os, c, info_for(2));
  const std::string text = os.str();
  EXPECT_NE(
      text.find("\nlp__,accept_stat__,stepsize__,treedepth__,n_leapfrog__,divergent__,theta.1,"
                "theta.2\n"),
      std::string::npos);
  EXPECT_NE(text.find("#         engine = nuts (Default)\n"), std::string::npos);
  EXPECT_NE(text.find("# Elements of inverse mass matrix:\n# 1, 0.5\n# 0.5, 2\n"),
            std::string::npos);
}

TEST(McmcOutput, FilesRoundTripExactly) {
  const auto dir = fresh_dir("roundtrip");
  std::vector<Chain> chains = {make_chain(0, 50, 3, false), make_chain(1, 50, 3, false),
                               make_chain(2, 50, 3, false)};
  chains[1].draws(4, 2) = 1e-310;  // subnormal
  chains[1].draws(5, 0) = -123456789.123456789;
  chains[2].log_density[0] = -std::numeric_limits<double>::infinity();
  const auto paths = write_cmdstan_csv_files((dir / "draws.csv").string(), chains, info_for(3));
  ASSERT_EQ(paths.size(), 3u);
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(fs::path(paths[std::size_t(c)]).filename(),
              "draws_" + std::to_string(c + 1) + ".csv");
    const auto csv = read_cmdstan_csv(paths[std::size_t(c)]);
    ASSERT_EQ(csv.columns.size(), 6u);
    ASSERT_EQ(csv.values.rows(), 50);
    EXPECT_EQ(csv.config.at("method"), "sample");
    EXPECT_EQ(csv.config.at("id"), std::to_string(c + 1));
    const Chain& ch = chains[std::size_t(c)];
    for (Eigen::Index t = 0; t < 50; ++t) {
      EXPECT_EQ(csv.values(t, 0), ch.log_density[t]);
      EXPECT_EQ(csv.values(t, 1), ch.accept_prob[t]);
      for (Eigen::Index j = 0; j < 3; ++j) EXPECT_EQ(csv.values(t, 3 + j), ch.draws(t, j));
    }
  }
  // Nothing but the three files (no temporary files left behind).
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++count;
  EXPECT_EQ(count, 3u);
  // One chain: the path itself.
  const auto one = write_cmdstan_csv_files((dir / "single.csv").string(), {chains[0]}, info_for(3));
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(fs::path(one[0]).filename(), "single.csv");
  fs::remove_all(dir);
}

// The destination check a run makes before sampling: a missing folder and a folder in a chain
// file's place are errors naming the path, and a writable destination passes without leaving any
// file behind (existing files untouched).
TEST(McmcOutput, DestinationIsCheckedBeforeARun) {
  const auto dir = fresh_dir("destination");
  const std::string path = (dir / "draws.csv").string();
  const std::vector<Chain> chains = {make_chain(0, 5, 2, false), make_chain(1, 5, 2, false),
                                     make_chain(2, 5, 2, false)};
  const std::vector<std::string> names = write_cmdstan_csv_files(path, chains, info_for(2));
  ASSERT_EQ(names.size(), 3u);
  const std::string before = [&] {
    std::ifstream f(names[0]);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }();
  EXPECT_NO_THROW(check_cmdstan_csv_destination(path, 3));
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++count;
  EXPECT_EQ(count, 3u);  // no probe file left behind
  {
    std::ifstream f(names[0]);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(f), {}), before);
  }
  const auto message = [](const std::string& p, int64_t n) {
    try {
      check_cmdstan_csv_destination(p, n);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message((dir / "missing" / "x.csv").string(), 2).find("does not exist"),
            std::string::npos);
  fs::create_directory(dir / "folder.csv");
  EXPECT_NE(message((dir / "folder.csv").string(), 1).find("is a folder"), std::string::npos);
  fs::create_directory(dir / "multi_2.csv");  // the second chain's file of multi.csv
  EXPECT_NE(message((dir / "multi.csv").string(), 3).find("'" + (dir / "multi_2.csv").string() +
                                                          "': it is a folder"),
            std::string::npos);
  EXPECT_THROW(check_cmdstan_csv_destination("", 1), Error);
  EXPECT_THROW(check_cmdstan_csv_destination(path, 0), Error);
  fs::remove_all(dir);
}

TEST(McmcOutput, WriteAndReadErrors) {
  const std::vector<Chain> chains = {make_chain(0, 5, 2, false)};
  EXPECT_THROW(write_cmdstan_csv_files("/nonexistent_dir_sieve/x.csv", chains, info_for(2)), Error);
  EXPECT_THROW(read_cmdstan_csv("/nonexistent_dir_sieve/x.csv"), Error);
  const auto dir = fresh_dir("errors");
  {
    // A shape error found while writing (3 names, dimension 2) leaves nothing behind: no target
    // file and no temporary.
    EXPECT_THROW(write_cmdstan_csv_files((dir / "x.csv").string(), chains, info_for(3)), Error);
    std::size_t count = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++count;
    EXPECT_EQ(count, 0u);
  }
  {
    std::ofstream f(dir / "ragged.csv");
    f << "# method = sample\nlp__,a\n1,2\n3\n";
  }
  EXPECT_THROW(read_cmdstan_csv((dir / "ragged.csv").string()), Error);
  {
    std::ofstream f(dir / "text.csv");
    f << "lp__,a\n1,abc\n";
  }
  EXPECT_THROW(read_cmdstan_csv((dir / "text.csv").string()), Error);
  fs::remove_all(dir);
}

TEST(McmcOutput, ReportAgreesWithDiagnostics) {
  const std::vector<Chain> chains = {make_chain(0, 200, 2, false), make_chain(1, 200, 2, false)};
  auto r = summarize_run(chains, {"a", "b"});
  ASSERT_EQ(r.parameters.size(), 2u);
  EXPECT_EQ(r.parameters[1].name, "b");
  EXPECT_EQ(r.num_chains, 2);
  EXPECT_EQ(r.num_draws, 200);
  for (int j = 0; j < 2; ++j) {
    const auto x = gather_draws(chains, j);
    ASSERT_EQ(x.size(), 400u);
    EXPECT_EQ(x[200], chains[1].draws(0, j));  // chain-major
    const ChainsView v(x, 2, 200);
    const auto& p = r.parameters[std::size_t(j)];
    EXPECT_EQ(p.summary.ess_bulk, ess_bulk(v));
    EXPECT_EQ(p.summary.rhat, rhat(v));
    double m2 = 0;
    for (double xi : x) m2 += xi * xi;
    EXPECT_NEAR(p.second_moment, m2 / 400.0, 1e-12);
  }
  EXPECT_NEAR(r.lp.summary.mean, (chains[0].log_density.sum() + chains[1].log_density.sum()) / 400,
              1e-12);
  EXPECT_NEAR(r.acceptance.mean, (chains[0].accept_prob.sum() + chains[1].accept_prob.sum()) / 400,
              1e-12);
  EXPECT_EQ(r.sampling_gradient_evals, 2 * 2000);
  EXPECT_EQ(r.warmup_gradient_evals, 200);
  EXPECT_DOUBLE_EQ(r.sampling_seconds, 1.0);
  EXPECT_DOUBLE_EQ(r.min_ess_bulk_per_gradient(), r.min_ess_bulk() / 4000.0);
  EXPECT_THROW(summarize_run(chains, {"only_one"}), Error);

  r.model = "gaussian";
  r.cv = "poisson";
  r.parameters[0].cv_mean = ReducedEstimate{0.01, 0.001, 37.5};
  r.parameters[1].cv_mean = ReducedEstimate{1.0, std::numeric_limits<double>::quiet_NaN(), 2.0};
  const auto j = nlohmann::json::parse(report_json(r));
  ASSERT_EQ(j.at("parameters").size(), 2u);
  EXPECT_EQ(j["parameters"][0]["name"], "a");
  EXPECT_DOUBLE_EQ(j["parameters"][0]["ess_bulk"].get<double>(), r.parameters[0].summary.ess_bulk);
  EXPECT_DOUBLE_EQ(j["parameters"][0]["cv_mean"]["vrf"].get<double>(), 37.5);
  EXPECT_TRUE(j["parameters"][1]["cv_mean"]["mcse"].is_null());  // NaN -> null
  EXPECT_EQ(j["cv"], "poisson");
  EXPECT_EQ(j["chains"], 2);
  EXPECT_TRUE(j.contains("min_ess_bulk_per_second"));

  const auto table = format_summary_table(r);
  for (const char* needle : {"Mean", "MCSE", "ESS_bulk", "ESS_tail", "R_hat", "CV_Mean", "VRF",
                             "lp__", "37.5", "acceptance: mean"})
    EXPECT_NE(table.find(needle), std::string::npos) << needle;
}

TEST(McmcOutput, ControlVariateColumns) {
  // Independent draws from N(mu, 1) per coordinate with grad log pi = mu - x stored: first-order
  // zero-variance control variates fit F = x exactly (x = mu - grad), so the estimate is mu with
  // zero MCSE (infinite VRF); for F = x^2 they cannot (x^2 is not linear in the gradient).
  std::vector<Chain> chains;
  const Eigen::Vector2d mu(1.5, -2.0);
  for (uint64_t c = 0; c < 2; ++c) {
    Chain ch = make_chain(c, 400, 2, false);
    Rng rng(99, c);
    for (Eigen::Index t = 0; t < 400; ++t)
      for (Eigen::Index j = 0; j < 2; ++j) ch.draws(t, j) = mu[j] + rng.normal();
    ch.gradients = (-(ch.draws.rowwise() - mu.transpose())).eval();
    chains.push_back(std::move(ch));
  }
  auto r = summarize_run(chains, {"a", "b"});
  add_control_variate_estimates(r, chains, "zv");
  EXPECT_EQ(r.cv, "zv");
  for (int j = 0; j < 2; ++j) {
    const auto& p = r.parameters[std::size_t(j)];
    ASSERT_TRUE(p.cv_mean && p.cv_second_moment);
    EXPECT_NEAR(p.cv_mean->estimate, mu[j], 1e-10);
    EXPECT_LT(p.cv_mean->mcse, 1e-10);
    EXPECT_GT(p.cv_mean->vrf, 1e6);
    // x^2: plain and CV estimates both near mu^2 + 1, with no large reduction.
    EXPECT_NEAR(p.cv_second_moment->estimate, mu[j] * mu[j] + 1, 6 * p.second_moment_mcse + 0.05);
    EXPECT_LT(p.cv_second_moment->vrf, 10.0);
    EXPECT_GT(p.cv_second_moment->mcse, 0.0);
  }
  // A sampler without stored gradients cannot use zv; one without proposals cannot use poisson.
  auto no_grad = chains;
  for (auto& c : no_grad) c.gradients.resize(0, 0);
  auto r2 = summarize_run(no_grad, {"a", "b"});
  EXPECT_THROW(add_control_variate_estimates(r2, no_grad, "zv"), Error);
  EXPECT_THROW(add_control_variate_estimates(r2, no_grad, "nonsense"), Error);
}
