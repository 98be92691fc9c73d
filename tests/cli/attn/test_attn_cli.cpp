// `sieve attn` end to end: bad input gives exactly one line "sieve: error: ..." and a non-zero exit;
// --json prints one parseable object per method with the documented keys; a Q/K/V file gives the
// same numbers as the synthetic workload it was saved from.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "sieve/attention/selector.h"
#include "sieve/attention/synthetic.h"
#include "sieve/core/safetensors.h"

namespace fs = std::filesystem;

namespace {

struct RunResult {
  int code = -1;
  std::string out, err;
};

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string temp_name(const std::string& stem) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return (fs::temp_directory_path() /
          (std::string("sieve_cli_") + info->name() + "_" + std::to_string(::getpid()) + "_" + stem))
      .string();
}

// The binary under test: the build's own, or SIEVE_CLI_BINARY (to run these tests elsewhere, e.g.
// the GPU machine, against a copied binary).
std::string binary() {
  const char* env = std::getenv("SIEVE_CLI_BINARY");  // NOLINT(concurrency-mt-unsafe)
  return env != nullptr && *env != '\0' ? env : SIEVE_BINARY;
}

RunResult run(const std::string& args) {
  const std::string out = temp_name("stdout"), err = temp_name("stderr");
  const std::string cmd = binary() + " " + args + " >" + out + " 2>" + err;
  const int status = std::system(cmd.c_str());
  RunResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  fs::remove(out);
  fs::remove(err);
  return r;
}

// Exactly one line on stderr, "sieve: error: ..." containing `fragment`, and a non-zero exit.
void expect_error(const std::string& args, const std::string& fragment) {
  const RunResult r = run(args);
  EXPECT_NE(r.code, 0) << args;
  EXPECT_EQ(r.err.rfind("sieve: error: ", 0), 0u) << args << "\nstderr: " << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\nstderr: " << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << args << "\nstderr: " << r.err;
}

std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> v;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) v.push_back(nlohmann::json::parse(line));
  return v;
}

const char* kSmall = "--length 384 --heads 2 --kv-heads 1 --head-dim 32 --threads 1";

// The --json lines of a `--method all` run, checked to be one per registered method in registry
// order; empty (with a failure recorded) when the run failed or the lines do not match.
std::vector<nlohmann::json> method_lines(const RunResult& r) {
  EXPECT_EQ(r.code, 0) << r.err;
  if (r.code != 0) return {};
  auto lines = json_lines(r.out);
  const auto names = sieve::attention::selector_names();
  EXPECT_EQ(lines.size(), names.size());
  if (lines.size() != names.size()) return {};
  for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(lines[i].at("method"), names[i]);
  return lines;
}

}  // namespace

TEST(Cli, HelpAndListSucceed) {
  const RunResult help = run("attn --help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("--recall-stride"), std::string::npos);
  const RunResult list = run("attn --list");
  EXPECT_EQ(list.code, 0);
  for (const std::string& n : sieve::attention::selector_names())
    EXPECT_NE(list.out.find(n + "\n"), std::string::npos) << n;
}

TEST(Cli, BadMethodsAndSettings) {
  expect_error("attn --method nosuch", "unknown attention method 'nosuch' (known: dense, streaming");
  expect_error("attn --method dense,,streaming", "comma-separated");
  expect_error("attn --method streaming --set tau=0.9", "unknown setting 'tau'");
  expect_error("attn --method dense,streaming --set nosuch=1", "no selected method has a setting 'nosuch'");
  expect_error("attn --method streaming --set local_blocks=abc", "needs an integer, got 'abc'");
  expect_error("attn --method streaming --set local_blocks", "key=value");
  expect_error("attn --method dense --set streaming.sink_blocks=2", "not among the selected methods");
}

// Command-line syntax errors (CLI11's parse errors) are one line too, with exit status 2; help and
// version still print and succeed.
TEST(Cli, MalformedCommandLinesAreOneLine) {
  expect_error("attn --bogus", "--bogus");
  expect_error("attn --length abc", "--length");
  expect_error("mcmc --chains", "--chains");
  expect_error("nosuchcommand", "nosuchcommand");
  EXPECT_EQ(run("attn --bogus").code, 2);
  EXPECT_EQ(run("--version").code, 0);
  EXPECT_EQ(run("attn --help").code, 0);
}

TEST(Cli, BadSyntheticShapes) {
  expect_error("attn --method dense --heads 3 --kv-heads 2", "multiple of --kv-heads");
  expect_error("attn --method dense --length 0", "must be positive");
  expect_error("attn --method dense --dtype f64 --length 64", "f64");
  expect_error("attn --method dense --threads -1", "--threads");
  expect_error("attn --method dense --seed -1", "--seed: must be a non-negative integer, got -1");
  expect_error("attn --method dense --slashes -1 --length 64", "--slashes must be >= 0, got -1");
}

TEST(Cli, BadInputFiles) {
  expect_error("attn --input /nonexistent/qkv.safetensors", "cannot open safetensors file '/nonexistent/qkv.safetensors'");
  const std::string garbage = temp_name("garbage.safetensors");
  std::ofstream(garbage) << "this is not a safetensors file at all";
  expect_error("attn --input " + garbage, "exceeds");
  fs::remove(garbage);

  // well-formed files with the wrong content
  using sieve::DType;
  const sieve::Tensor q(DType::kF32, {2, 16, 8}), k(DType::kF32, {1, 16, 8}), k4(DType::kF32, {1, 16, 4});
  const std::string missing_v = temp_name("missing_v.safetensors");
  sieve::save_safetensors(missing_v, {{"q", q.view()}, {"k", k.view()}});
  expect_error("attn --input " + missing_v, "no tensor 'v'");
  expect_error("attn --input " + missing_v + " --length 16", "--length describes the synthetic workload");
  expect_error("attn --input " + missing_v + " --slashes 0", "--slashes describes the synthetic workload");
  expect_error("attn --input " + missing_v + " --planted", "need the synthetic input");
  fs::remove(missing_v);
  const std::string bad_dim = temp_name("bad_dim.safetensors");
  sieve::save_safetensors(bad_dim, {{"q", q.view()}, {"k", k4.view()}, {"v", k4.view()}});
  expect_error("attn --input " + bad_dim, "head_dim");
  fs::remove(bad_dim);
  // a NaN in q (every other value finite): named with its tensor and index
  sieve::Tensor qn(DType::kF32, {2, 16, 8});
  qn.data_as<float>()[(1 * 16 + 5) * 8 + 3] = std::nanf("");
  const std::string nan_file = temp_name("nan.safetensors");
  sieve::save_safetensors(nan_file, {{"q", qn.view()}, {"k", k.view()}, {"v", k.view()}});
  expect_error("attn --input " + nan_file, "tensor 'q' has a non-finite value (NaN) at [1, 5, 3]");
  fs::remove(nan_file);
}

// `sieve attn eval` checks every --input dump before it writes anything: a bad file gives the
// one-line error and leaves no output folder behind.
TEST(Cli, EvalChecksInputsBeforeWritingOutput) {
  const std::string out = temp_name("eval_out");
  const std::string garbage = temp_name("garbage.safetensors");
  std::ofstream(garbage) << "this is not a safetensors file at all";
  expect_error("attn eval --no-synthetic --plot no --input " + garbage + " --out " + out, "exceeds");
  EXPECT_FALSE(fs::exists(out));

  using sieve::DType;
  const sieve::Tensor q(DType::kF32, {2, 16, 8}), k(DType::kF32, {1, 16, 8}),
      q8(DType::kF32, {2, 8, 8});
  const std::string missing_v = temp_name("missing_v.safetensors");
  sieve::save_safetensors(missing_v, {{"q", q.view()}, {"k", k.view()}});
  expect_error("attn eval --no-synthetic --plot no --input " + missing_v + " --out " + out,
               "no tensor 'v'");
  EXPECT_FALSE(fs::exists(out));
  const std::string chunk = temp_name("chunk.safetensors");
  sieve::save_safetensors(chunk, {{"q", q8.view()}, {"k", k.view()}, {"v", k.view()}});
  expect_error("attn eval --no-synthetic --plot no --input " + chunk + " --out " + out,
               "equal lengths");
  EXPECT_FALSE(fs::exists(out));
  sieve::Tensor vinf(DType::kF32, {1, 16, 8});
  vinf.data_as<float>()[40] = -INFINITY;
  const std::string inf_file = temp_name("inf.safetensors");
  sieve::save_safetensors(inf_file, {{"q", q.view()}, {"k", k.view()}, {"v", vinf.view()}});
  expect_error("attn eval --no-synthetic --plot no --input " + inf_file + " --out " + out,
               "tensor 'v' has a non-finite value (-inf) at [0, 5, 0]");
  EXPECT_FALSE(fs::exists(out));
  fs::remove(inf_file);
  // two dumps with one name: the second's rows would be labelled (and read) as the first's
  const fs::path dir = temp_name("dir");
  fs::create_directories(dir / "a");
  fs::create_directories(dir / "b");
  const sieve::Tensor v(DType::kF32, {1, 16, 8});
  for (const char* sub : {"a", "b"})
    sieve::save_safetensors((dir / sub / "x.safetensors").string(),
                            {{"q", q.view()}, {"k", k.view()}, {"v", v.view()}});
  expect_error("attn eval --no-synthetic --plot no --input " + (dir / "a/x.safetensors").string() +
                   " --input " + (dir / "b/x.safetensors").string() + " --out " + out,
               "another dump has the name 'x'");
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(dir);
  fs::remove(garbage);
  fs::remove(missing_v);
  fs::remove(chunk);

  // the planted suite's shape and the mask heads are checked before the folder is made too
  expect_error("attn eval --plot no --heads 3 --kv-heads 2 --lengths 64 --out " + out,
               "must be a positive multiple of num_heads_kv (2)");
  EXPECT_FALSE(fs::exists(out));
  expect_error("attn eval --plot no --head-dim 7 --lengths 64 --out " + out, "too small for 4 needles");
  EXPECT_FALSE(fs::exists(out));
  expect_error("attn eval --plot no --slashes -2 --lengths 64 --out " + out, "--slashes must be >= 0, got -2");
  EXPECT_FALSE(fs::exists(out));
  expect_error("attn eval --plot no --mask-heads 8 --lengths 64 --out " + out,
               "--mask-heads 8: no workload has that query head (the most is 8: heads 0..7)");
  EXPECT_FALSE(fs::exists(out));
  expect_error("attn eval --plot no --threads -3 --lengths 64 --out " + out,
               "--threads must be >= 0 (0 = all cores), got -3");
  EXPECT_FALSE(fs::exists(out));
  expect_error("attn eval --plot no --lengths 64 --out /proc/sieve_no_such/x",
               "cannot create the output folder");
}

// The rows of `sieve attn eval`'s results.csv in folder `out`, each as column name -> field
// (every column of the header present; a missing header column fails the test).
std::vector<std::map<std::string, std::string>> eval_rows(const std::string& out) {
  std::istringstream csv(slurp(out + "/results.csv"));
  std::string line;
  std::vector<std::string> header;
  if (std::getline(csv, line))
    for (std::istringstream h(line); std::getline(h, line, ',');) header.push_back(line);
  for (const char* name : {"method", "threshold_key", "threshold", "is_default", "executor_ms"})
    EXPECT_NE(std::find(header.begin(), header.end(), name), header.end())
        << "results.csv lacks column " << name;
  std::vector<std::map<std::string, std::string>> rows;
  while (std::getline(csv, line)) {
    std::map<std::string, std::string> row;
    size_t c = 0;
    for (std::istringstream fields(line); std::getline(fields, line, ',') && c < header.size(); ++c)
      row[header[c]] = line;
    for (; c < header.size(); ++c) row[header[c]] = "";  // trailing empty fields
    rows.push_back(std::move(row));
  }
  return rows;
}

// Every method's default threshold is one of its default sweep's points, even where the listed
// values miss it (sample's alpha 0.987; rr's tau 0.98 until session 21): that point is the
// "(default)" row, the one --exec default runs the executor for and the one whose masks are
// written.
TEST(Cli, EvalDefaultSweepsHoldEachMethodsDefault) {
  const std::string out = temp_name("eval_defaults");
  const RunResult r = run("attn eval --method all --lengths 512 --heads 2 --kv-heads 1 --exec "
                          "default --plot no --mask-heads 0 --recall-rows 32 --threads 2 --out " +
                          out);
  ASSERT_EQ(r.code, 0) << r.err;
  std::map<std::string, int> defaults;
  for (auto& f : eval_rows(out)) {
    const std::string& m = f["method"];
    if (f["is_default"] != "1") {
      EXPECT_TRUE(f["executor_ms"].empty()) << m << " " << f["threshold"] << ": executor ran off the default";
      continue;
    }
    ++defaults[m];
    EXPECT_FALSE(f["executor_ms"].empty()) << m << ": no executor time on the default row";
    if (!f["threshold_key"].empty()) {
      EXPECT_EQ(f["threshold"], sieve::attention::make_selector(m)->settings().at(f["threshold_key"])) << m;
    }
    EXPECT_TRUE(fs::exists(out + "/masks/planted_L512_" + m + "_h0.csv")) << m;
  }
  for (const std::string& m : sieve::attention::selector_names())
    EXPECT_EQ(defaults[m], 1) << m << ": default rows";
  fs::remove_all(out);
}

// --set of the swept key moves the default point: a default sweep gains that value as its
// "(default)" row (masks, --exec default), an explicit sweep marks the point equal to it, and an
// explicit sweep without it says so on stderr and writes no mask for that method.
TEST(Cli, EvalSetMovesTheDefaultPoint) {
  const std::string out = temp_name("eval_set_default");
  const std::string common = "attn eval --method rr --lengths 512 --heads 2 --kv-heads 1 --exec "
                             "default --plot no --mask-heads 0 --recall-rows 16 --threads 2 ";
  const auto default_rows = [&]() {
    std::vector<std::string> rows;
    for (auto& f : eval_rows(out))
      if (f["is_default"] == "1") rows.push_back(f["threshold"]);
    return rows;
  };
  RunResult r = run(common + "--set rr.tau=0.93 --out " + out);  // the default sweep
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(default_rows(), std::vector<std::string>{"0.93"});
  EXPECT_TRUE(fs::exists(out + "/masks/planted_L512_rr_h0.csv"));
  fs::remove_all(out);
  r = run(common + "--set rr.tau=0.93 --sweep rr.tau=0.9,0.93 --out " + out);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(default_rows(), std::vector<std::string>{"0.93"});
  EXPECT_TRUE(fs::exists(out + "/masks/planted_L512_rr_h0.csv"));
  fs::remove_all(out);
  r = run(common + "--sweep rr.tau=0.9,0.93 --out " + out);  // lacks the built-in 0.97
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(default_rows().empty());
  EXPECT_NE(r.err.find("no rr point has its default tau=0.97"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out + "/masks/planted_L512_rr_h0.csv"));
  fs::remove_all(out);
}

TEST(Cli, JsonSmokeRunOverAllMethods) {
  const auto lines = method_lines(run(std::string("attn --method all --json ") + kSmall));
  ASSERT_FALSE(lines.empty());
  for (const auto& j : lines) {
    EXPECT_EQ(j.at("length"), 384);
    for (const char* key : {"density", "token_density", "recall_mean", "recall_min", "recall_p01",
                            "rel_error", "cosine", "selector_ms", "executor_ms", "dense_ms", "speedup"})
      EXPECT_TRUE(j.at(key).is_number()) << key;
    EXPECT_GT(j.at("density").get<double>(), 0.0);
    EXPECT_LE(j.at("density").get<double>(), 1.0);
    EXPECT_LE(j.at("recall_min").get<double>(), j.at("recall_mean").get<double>());
    EXPECT_EQ(j.at("per_head_recall").size(), 2u);
    EXPECT_NEAR(j.at("speedup").get<double>(),
                j.at("dense_ms").get<double>() /
                    (j.at("selector_ms").get<double>() + j.at("executor_ms").get<double>()),
                1e-9 * j.at("speedup").get<double>());
  }
  // dense: the full pattern, all mass, output equal to exact attention up to f32 rounding
  EXPECT_EQ(lines[0].at("density"), 1.0);
  EXPECT_NEAR(lines[0].at("recall_mean").get<double>(), 1.0, 1e-12);
  EXPECT_LT(lines[0].at("rel_error").get<double>(), 1e-5);
}

// --device cuda runs every method (GPU selectors where ported, the CUDA executor). Selectors whose
// default blocks are not 128-token tiles (vslash's 64 x 64) select 128 x 128 blocks there, with one
// note line on stderr; block sizes the user sets are kept, and the executor rejects 64 with one
// error line. Skipped where the build or the machine has no CUDA.
TEST(Cli, DeviceCudaRunsEveryMethod) {
  const std::string shape =
      " --length 2048 --heads 2 --kv-heads 1 --head-dim 128 --threads 1 --set dense_below=0";
  const RunResult r = run("attn --device cuda --method all --json" + shape);
  if (r.code != 0 && (r.err.find("no CUDA device") != std::string::npos ||
                      r.err.find("no CUDA backend") != std::string::npos))
    GTEST_SKIP() << r.err;
  const auto lines = method_lines(r);
  ASSERT_FALSE(lines.empty());
  for (const auto& j : lines) {
    EXPECT_EQ(j.at("device"), "cuda");
    const auto& st = j.at("settings");
    for (const char* key : {"block_q", "block_k"}) {
      if (st.contains(key)) {
        EXPECT_EQ(std::stoi(st.at(key).get<std::string>()) % 128, 0) << j.at("method") << " " << key;
      }
    }
    EXPECT_GT(j.at("density").get<double>(), 0.0);
    EXPECT_LE(j.at("recall_mean").get<double>(), 1.0 + 1e-9);
  }
  EXPECT_NEAR(lines[0].at("recall_mean").get<double>(), 1.0, 1e-12);  // dense
  EXPECT_NE(r.err.find("vslash: block_q=128 (default 64), block_k=128 (default 64) on --device cuda"),
            std::string::npos)
      << r.err;
  expect_error("attn --device cuda --method vslash --set vslash.block_q=64 --set vslash.block_k=64" +
                   shape,
               "multiple of 128");
}

// --planted adds the generator's ground truth as a row after the methods: a sparse pattern that
// holds most (not all: the background is spread everywhere) of the mass.
TEST(Cli, PlantedRowReportsTheGroundTruth) {
  const RunResult r =
      run("attn --method dense --planted --json --length 2048 --heads 2 --kv-heads 1 --head-dim 32 --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1].at("method"), "planted");
  EXPECT_GT(lines[1].at("density").get<double>(), 0.0);
  EXPECT_LT(lines[1].at("density").get<double>(), 1.0);
  EXPECT_GT(lines[1].at("recall_mean").get<double>(), 0.5);
  EXPECT_LT(lines[1].at("recall_mean").get<double>(), 1.0);
}

// --plus-planted adds "<method>+planted" rows: each pattern united with the ground truth keeps a
// superset of its pairs, so density and recall can only grow; for `streaming` the union adds the
// stripe and needle columns and the slash blocks it lacks, so its recall must rise.
TEST(Cli, PlusPlantedRowsUniteEachPatternWithTheGroundTruth) {
  const RunResult r = run(
      "attn --method streaming,rr --plus-planted --json --length 2048 --heads 2 --kv-heads 1 "
      "--head-dim 32 --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 4u);
  for (size_t m = 0; m < 2; ++m) {
    const auto& base = lines[m];
    const auto& plus = lines[m + 2];
    EXPECT_EQ(plus.at("method"), base.at("method").get<std::string>() + "+planted");
    EXPECT_GE(plus.at("token_density").get<double>(), base.at("token_density").get<double>());
    EXPECT_GE(plus.at("recall_mean").get<double>(), base.at("recall_mean").get<double>() - 1e-12);
  }
  EXPECT_GT(lines[2].at("recall_mean").get<double>(), lines[0].at("recall_mean").get<double>() + 0.01);
  expect_error("attn --input missing.safetensors --plus-planted", "need the synthetic input");
}

TEST(Cli, TableHasOneRowPerMethod) {
  const RunResult r = run(std::string("attn --method dense,streaming ") + kSmall);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\ndense "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nstreaming "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("recall"), std::string::npos);
}

TEST(Cli, FileInputMatchesTheSyntheticItWasSavedFrom) {
  sieve::attention::SyntheticConfig c;
  c.num_heads_q = 2;
  c.num_heads_kv = 1;
  c.seq_len = 384;
  c.head_dim = 32;
  c.seed = 5;
  c.strength = sieve::attention::kSuiteStrength;  // what `sieve attn` plants
  const auto w = sieve::attention::make_synthetic(c);
  const std::string path = temp_name("qkv.safetensors");
  sieve::save_safetensors(path, {{"q", w.q.view()}, {"k", w.k.view()}, {"v", w.v.view()}});
  const std::string common = " --method streaming --json --threads 1 --set block_q=64 --set block_k=64";
  const RunResult from_file = run("attn --input " + path + common);
  const RunResult synthetic =
      run("attn --seed 5 --length 384 --heads 2 --kv-heads 1 --head-dim 32" + common);
  fs::remove(path);
  ASSERT_EQ(from_file.code, 0) << from_file.err;
  ASSERT_EQ(synthetic.code, 0) << synthetic.err;
  const auto a = json_lines(from_file.out), b = json_lines(synthetic.out);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  for (const char* key : {"recall_mean", "recall_min", "rel_error", "density", "token_density"})
    EXPECT_EQ(a[0].at(key), b[0].at(key)) << key;
  EXPECT_EQ(a[0].at("settings").at("block_q"), "64");
  EXPECT_LT(a[0].at("recall_mean").get<double>(), 1.0);  // streaming drops mass here
}
