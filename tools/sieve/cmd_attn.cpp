// `sieve attn`: compare sparse-attention methods on one Q/K/V workload.
//
//   sieve attn                                  every method on the built-in synthetic workload
//   sieve attn --method rr,xattn --length 16384 --set tau=0.95
//   sieve attn --input dump.safetensors --method all --json
//
// Per method: the selector builds a SparsePattern (timed), the CPU block-sparse executor computes
// attention over it (timed), and both are compared with exact attention: recall of the true
// softmax mass and the output error against an f64 reference on the evaluated rows (see
// --recall-stride). dense_ms is the dense CPU kernel on the same inputs, in the same run.
// Subcommands of `attn` (e.g. `sieve attn eval`) register through attn_subcommand_registry().
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "command.h"
#include "qkv_file.h"
#include "sieve/attention/executor.h"
#include "sieve/attention/metrics.h"
#include "sieve/attention/oracle.h"
#include "sieve/attention/selector.h"
#include "sieve/attention/synthetic.h"
#include "sieve/core/error.h"
#include "sieve/core/progress.h"
#include "sieve/core/safetensors.h"
#include "sieve/core/threading.h"
#include "sieve/core/timer.h"
#if defined(SIEVE_HAS_CUDA)
#include "sieve/attention/cuda/host_run.h"
#endif

namespace sieve::tool {
namespace {

using namespace sieve::attention;

struct AttnArgs {
  std::string method = "all";
  std::string input = "synthetic";
  int64_t length = 8192, heads = 8, kv_heads = 2, head_dim = 128;
  std::string dtype = "bf16";
  uint64_t seed = 0;
  double strength = kSuiteStrength, background = SyntheticConfig{}.background;
  int slashes = SyntheticConfig{}.num_slashes;
  std::vector<std::string> set;
  bool json = false, list = false;
  int threads = 0;
  int64_t recall_stride = 0;  // 0: auto
  int repeat = 1;
  std::string device = "cpu";  // cpu, or cuda (selectors with a GPU port and the CUDA executor)
  double oracle = 0;  // > 0: add the "oracle" block pattern holding this share of the true mass
  bool planted = false;  // add the "planted" row: the synthetic suite's ground-truth pattern
  bool plus_planted = false;  // add "<method>+planted" rows: each pattern united with the planted
  std::vector<const CLI::Option*> synthetic_options;  // to reject them with a file input
};

// Evaluated rows per head when --recall-stride is auto: enough for stable percentiles (and every
// needle of the synthetic workload keeps several rows), bounded so the f64 pass stays cheap.
constexpr int64_t kAutoRecallRows = 2048;

std::vector<std::string> split_methods(const std::string& text) {
  if (text == "all") return selector_names();
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string name = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    SIEVE_CHECK(!name.empty(), "--method needs a method name or a comma-separated list, got '{}'", text);
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// Applies --set pairs: "name.key=value" to that method only; a bare "key=value" to every selected
// method that has the key (an error when none has it).
void apply_settings(const std::vector<std::string>& pairs, const std::vector<std::string>& names,
                    std::vector<std::unique_ptr<PatternSelector>>& selectors) {
  for (const std::string& text : pairs) {
    const size_t eq = text.find('=');
    SIEVE_CHECK(eq != std::string::npos && eq > 0, "--set needs key=value, got '{}'", text);
    std::string key = text.substr(0, eq);
    const std::string value = text.substr(eq + 1);
    const size_t dot = key.find('.');
    if (dot != std::string::npos) {
      const std::string target = key.substr(0, dot);
      key = key.substr(dot + 1);
      const auto it = std::find(names.begin(), names.end(), target);
      SIEVE_CHECK(it != names.end(), "--set {}: method '{}' is not among the selected methods", text,
                  target);
      selectors[size_t(it - names.begin())]->set(key, value);
      continue;
    }
    int applied = 0;
    for (auto& s : selectors) {
      if (!s->settings().count(key)) continue;
      s->set(key, value);
      ++applied;
    }
    if (applied == 0) {
      if (selectors.size() == 1) selectors[0]->set(key, value);  // its own "unknown setting" error
      SIEVE_FAIL("--set {}: no selected method has a setting '{}' (see sieve attn --list)", text, key);
    }
  }
}

#if defined(SIEVE_HAS_CUDA)
// Whether --set names `key` for method `name` ("name.key=..." or a bare "key=...").
bool user_sets(const std::vector<std::string>& pairs, const std::string& name, const std::string& key) {
  for (const std::string& text : pairs) {
    const std::string k = text.substr(0, text.find('='));
    if (k == key || k == name + "." + key) return true;
  }
  return false;
}

// --device cuda: every CUDA executor kernel runs 128-row query tiles over whole 128-key tiles, so a
// selector whose default blocks are smaller (vslash's 64 x 64, MInference's kernel blocks) selects
// 128 x 128 blocks there, with a note on stderr; block sizes the user set are left alone (the
// executor then names the mismatch).
void fit_blocks_to_cuda(const std::vector<std::string>& pairs, const std::vector<std::string>& names,
                        std::vector<std::unique_ptr<PatternSelector>>& selectors) {
  constexpr int kTile = 128;
  for (size_t m = 0; m < selectors.size(); ++m) {
    const auto st = selectors[m]->settings();
    std::string changed;
    for (const char* key : {"block_q", "block_k"}) {
      const auto it = st.find(key);
      if (it == st.end() || user_sets(pairs, names[m], key)) continue;
      if (std::stoi(it->second) % kTile == 0) continue;
      selectors[m]->set(key, std::to_string(kTile));
      changed += fmt::format("{}{}={} (default {})", changed.empty() ? "" : ", ", key, kTile,
                             it->second);
    }
    if (!changed.empty())
      fmt::print(stderr, "sieve attn: {}: {} on --device cuda: the CUDA executor runs {}-token "
                 "tiles\n", names[m], changed, kTile);
  }
}
#endif

// Q/K/V views plus whatever owns their memory.
struct Workload {
  std::string description;
  SyntheticConfig config;  // synthetic only
  std::optional<SyntheticWorkload> synthetic;
  std::unique_ptr<SafetensorsFile> file;
  TensorView q, k, v;
};

Workload make_workload(const AttnArgs& a) {
  Workload w;
  if (a.input == "synthetic") {
    SIEVE_CHECK(a.length >= 1 && a.heads >= 1 && a.kv_heads >= 1 && a.head_dim >= 1,
                "--length, --heads, --kv-heads and --head-dim must be positive");
    SIEVE_CHECK(a.heads % a.kv_heads == 0, "--heads ({}) must be a multiple of --kv-heads ({})", a.heads,
                a.kv_heads);
    SyntheticConfig c =
        planted_suite_config(a.heads, a.kv_heads, a.head_dim, a.dtype, a.seed, a.strength, a.slashes);
    c.seq_len = a.length;
    c.background = float(a.background);
    w.config = c;
    w.synthetic = make_synthetic(c);
    w.q = w.synthetic->q;
    w.k = w.synthetic->k;
    w.v = w.synthetic->v;
    // the suite's knobs that differ from the defaults, so that a report names its variant
    w.description = fmt::format("synthetic (seed {}", a.seed);
    if (a.strength != double(kSuiteStrength)) w.description += fmt::format(", strength {}", a.strength);
    if (a.background != double(SyntheticConfig{}.background))
      w.description += fmt::format(", background {}", a.background);
    if (a.slashes != SyntheticConfig{}.num_slashes)
      w.description += fmt::format(", slashes {}", a.slashes);
    w.description += ")";
  } else {
    for (const CLI::Option* o : a.synthetic_options)
      SIEVE_CHECK(o->count() == 0, "{} describes the synthetic workload; {} defines its own shapes and dtype",
                  o->get_name(), a.input);
    w.file = std::make_unique<SafetensorsFile>(a.input);
    w.q = load_qkv(*w.file, "q");
    w.k = load_qkv(*w.file, "k");
    w.v = load_qkv(*w.file, "v");
    w.description = a.input;
  }
  check_attention_inputs(w.q, w.k, w.v);
  return w;
}

struct MethodResult {
  std::string name;
  std::map<std::string, std::string> settings;
  SparsePattern pattern;
  double selector_ms = 0, executor_ms = 0;
  Tensor out_rows;  // [Hq, evaluated rows, D] f32: the executor output on the evaluated rows
  PatternMetrics metrics;
};

// Copies the evaluated rows of out [Hq, Lq, D] into a compact [Hq, rows, D] tensor.
Tensor gather_rows(const TensorView& out, const std::vector<int64_t>& rows) {
  Tensor t(DType::kF32, {out.shape[0], int64_t(rows.size()), out.shape[2]});
  for (int64_t h = 0; h < out.shape[0]; ++h)
    for (size_t r = 0; r < rows.size(); ++r)
      for (int64_t e = 0; e < out.shape[2]; ++e) t.view().set(out.get(h, rows[r], e), h, int64_t(r), e);
  return t;
}

std::string fmt_ratio(double x) { return x >= 0.99995 && x < 1 ? "0.9999+" : fmt::format("{:.4f}", x); }

void list_methods() {
  for (const std::string& n : selector_names()) {
    fmt::print("{}\n", n);
    for (const auto& [k, v] : make_selector(n)->settings()) fmt::print("    {}={}\n", k, v);
  }
}

void run_attn(AttnArgs& a) {
  if (a.list) {
    list_methods();
    return;
  }
  SIEVE_CHECK(a.repeat >= 1, "--repeat must be >= 1, got {}", a.repeat);
  SIEVE_CHECK(a.oracle >= 0 && a.oracle <= 1, "--oracle must be in (0, 1] (0 = off), got {}", a.oracle);
  SIEVE_CHECK(a.recall_stride >= 0, "--recall-stride must be >= 0 (0 = auto), got {}", a.recall_stride);
  apply_threads(a.threads);
  // Methods and settings first: bad names or keys fail before any heavy work.
  const std::vector<std::string> names = split_methods(a.method);
  std::vector<std::unique_ptr<PatternSelector>> selectors;
  for (const std::string& n : names) selectors.push_back(make_selector(n));
  apply_settings(a.set, names, selectors);
  for (auto& s : selectors) s->validate_config();

  SIEVE_CHECK(!(a.planted || a.plus_planted) || a.input == "synthetic",
              "--planted and --plus-planted need the synthetic input ({} has no planted ground "
              "truth)", a.input);
  const Workload w = make_workload(a);
  const AttentionShape shape = check_attention_inputs(w.q, w.k, w.v);
  const AttentionOptions opts;  // causal prefill, scale 1/sqrt(D)
  const int64_t stride = a.recall_stride > 0
                             ? a.recall_stride
                             : std::max<int64_t>(1, (shape.seq_len_q + kAutoRecallRows - 1) / kAutoRecallRows);
  const std::vector<int64_t> rows = strided_rows(shape.seq_len_q, stride);

  Tensor out(DType::kF32, {shape.num_heads_q, shape.seq_len_q, shape.head_dim});
  double dense_ms = 1e300;
  SIEVE_CHECK(a.device == "cpu" || a.device == "cuda", "--device must be cpu or cuda, got '{}'", a.device);
#if defined(SIEVE_HAS_CUDA)
  std::unique_ptr<cuda::HostWorkload> gpu;
  if (a.device == "cuda") {
    gpu = std::make_unique<cuda::HostWorkload>(w.q, w.k, w.v);
    fit_blocks_to_cuda(a.set, names, selectors);
    dense_ms = gpu->dense(opts, out, a.repeat);
  }
#else
  SIEVE_CHECK(a.device == "cpu", "--device cuda: this build has no CUDA backend");
#endif
  for (int r = 0; r < a.repeat && a.device == "cpu"; ++r) {
    Timer t;
    dense_attention(w.q, w.k, w.v, out, opts);
    dense_ms = std::min(dense_ms, t.ms());
  }

  std::vector<MethodResult> results;
  Progress progress("sieve attn: methods", int64_t(selectors.size()));
  for (size_t m = 0; m < selectors.size(); ++m) {
    MethodResult res;
    res.name = names[m];
    res.settings = selectors[m]->settings();
    res.selector_ms = res.executor_ms = 1e300;
#if defined(SIEVE_HAS_CUDA)
    if (gpu) {
      const cuda::HostRunTimes t = gpu->run(*selectors[m], opts, res.pattern, out, a.repeat);
      res.selector_ms = t.select_ms;
      res.executor_ms = t.execute_ms;
      res.settings["selector_device"] = t.selector_on_device ? "cuda" : "cpu";
    }
#endif
    for (int r = 0; r < a.repeat && a.device == "cpu"; ++r) {
      Timer t;
      res.pattern = selectors[m]->select(w.q, w.k, opts);
      res.selector_ms = std::min(res.selector_ms, t.ms());
    }
    for (int r = 0; r < a.repeat && a.device == "cpu"; ++r) {
      Timer t;
      block_sparse_attention(w.q, w.k, w.v, res.pattern, out, opts);
      res.executor_ms = std::min(res.executor_ms, t.ms());
    }
    res.out_rows = gather_rows(out, rows);
    results.push_back(std::move(res));
    progress.advance();
  }
  progress.finish();
  // Rows that are not selectors: run the executor on a given pattern and keep its output rows.
  const auto add_fixed_row = [&](std::string name, std::map<std::string, std::string> settings,
                                 SparsePattern pattern, double selector_ms) {
    MethodResult res;
    res.name = std::move(name);
    res.settings = std::move(settings);
    res.pattern = std::move(pattern);
    res.selector_ms = selector_ms;
    Timer te;
    block_sparse_attention(w.q, w.k, w.v, res.pattern, out, opts);
    res.executor_ms = te.ms();
    res.out_rows = gather_rows(out, rows);
    results.push_back(std::move(res));
  };
  if (a.plus_planted) {  // how much of each method's error is planted structure it missed
    const size_t n = results.size();
    for (size_t m = 0; m < n; ++m) {
      const SparsePattern& p = results[m].pattern;
      SparsePattern u = SparsePattern::united(
          p, planted_pattern(w.config, w.synthetic->planted, p.block_q, p.block_k));
      add_fixed_row(results[m].name + "+planted", results[m].settings, std::move(u), 0);
    }
  }
  if (a.planted)  // not a selector: the structure the generator planted, 128 x 128 tiles
    add_fixed_row("planted", {{"strength", fmt::format("{}", a.strength)}},
                  planted_pattern(w.config, w.synthetic->planted, 128, 128), 0);
  if (a.oracle > 0) {  // not a selector: it reads the exact attention it is judged against
    Timer t;
    SparsePattern p = oracle_pattern(w.q, w.k, shape, rows, a.oracle, 128);
    const double ms = t.ms();
    add_fixed_row("oracle", {{"share", fmt::format("{}", a.oracle)}, {"rows", "evaluated rows"}},
                  std::move(p), ms);
  }

  // One f64 pass over the evaluated rows: recall of every pattern and the exact output.
  std::vector<const SparsePattern*> patterns;
  for (const auto& r : results) patterns.push_back(&r.pattern);
  ExactRows exact;
  const std::vector<PatternMetrics> metrics = pattern_recall(w.q, w.k, patterns, opts, stride, &w.v, &exact);
  ExactRows compact = exact;  // out_rows hold row r of the evaluation at index r
  for (size_t r = 0; r < compact.rows.size(); ++r) compact.rows[r] = int64_t(r);
  for (size_t m = 0; m < results.size(); ++m) {
    results[m].metrics = metrics[m];
    output_error(results[m].out_rows, compact, results[m].metrics);
  }

  const char* dtype = dtype_name(w.q.dtype);
  if (a.json) {
    for (const auto& r : results) {
      const PatternMetrics& pm = r.metrics;
      nlohmann::json j;
      j["method"] = r.name;
      j["input"] = w.description;
      j["length"] = shape.seq_len_k;
      j["length_q"] = shape.seq_len_q;
      j["heads"] = shape.num_heads_q;
      j["kv_heads"] = shape.num_heads_kv;
      j["head_dim"] = shape.head_dim;
      j["dtype"] = dtype;
      j["density"] = pm.block_density;
      j["token_density"] = pm.token_density;
      j["recall_mean"] = pm.recall_mean;
      j["recall_min"] = pm.recall_min;
      j["recall_p01"] = pm.recall_p01;
      j["rel_error"] = pm.rel_error;
      j["cosine"] = pm.cosine;
      j["selector_ms"] = r.selector_ms;
      j["executor_ms"] = r.executor_ms;
      j["dense_ms"] = dense_ms;
      j["speedup"] = dense_ms / (r.selector_ms + r.executor_ms);
      j["recall_stride"] = stride;
      j["recall_rows"] = int64_t(rows.size());
      j["threads"] = num_threads();
      j["isa"] = cpu_kernel_isa();
      j["device"] = a.device;
      j["settings"] = r.settings;
      nlohmann::json heads = nlohmann::json::array();
      for (const HeadRecall& h : pm.per_head)
        heads.push_back({{"mean", h.mean}, {"min", h.min}, {"p01", h.p01}, {"token_density", h.token_density}});
      j["per_head_recall"] = heads;
      fmt::print("{}\n", j.dump());
    }
    return;
  }
  fmt::print("sieve attn: {}, L={}{} Hq={} Hkv={} D={} {}, causal\n", w.description, shape.seq_len_k,
             shape.seq_len_q != shape.seq_len_k ? fmt::format(" (queries {})", shape.seq_len_q) : "",
             shape.num_heads_q, shape.num_heads_kv, shape.head_dim, dtype);
  fmt::print("dense {} kernel: {:.1f} ms ({}, {} threads); recall and error vs exact f64 attention on "
             "{} of {} query rows per head{}\n\n",
             a.device == "cuda" ? "CUDA" : "CPU", dense_ms, a.device == "cuda" ? "cuda" : cpu_kernel_isa(),
             num_threads(), rows.size(), shape.seq_len_q,
             stride > 1 ? fmt::format(" (every {}th, counted back from the last)", stride) : "");
  size_t width = 12;  // the method column fits the longest name ("flexprefill+planted")
  for (const auto& r : results) width = std::max(width, r.name.size());
  fmt::print("{:<{}} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>10} {:>10} {:>8}\n", "method", width,
             "density", "tokens", "recall", "min", "p01", "rel_err", "cosine", "select_ms", "exec_ms",
             "speedup");
  for (const auto& r : results) {
    const PatternMetrics& pm = r.metrics;
    fmt::print("{:<{}} {:>8.3f} {:>8.3f} {:>8} {:>8.4f} {:>8.4f} {:>9.2e} {:>8} {:>10.1f} {:>10.1f} {:>7.2f}x\n",
               r.name, width, pm.block_density, pm.token_density, fmt_ratio(pm.recall_mean), pm.recall_min,
               pm.recall_p01, pm.rel_error, fmt_ratio(pm.cosine), r.selector_ms, r.executor_ms,
               dense_ms / (r.selector_ms + r.executor_ms));
  }
  fmt::print("\ndensity: selected blocks / causal blocks; tokens: kept causal (query, key) pairs / all; "
             "speedup: dense_ms / (select_ms + exec_ms)\n");
}

void setup_attn(CLI::App& app) {
  auto args = std::make_shared<AttnArgs>();
  auto* cmd = app.add_subcommand("attn", "Compare sparse-attention methods on one Q/K/V workload");
  cmd->footer(
      "Examples:\n"
      "  sieve attn                                    all methods, built-in workload\n"
      "  sieve attn --method rr,xattn --set tau=0.95 --length 16384\n"
      "  sieve attn --input qkv.safetensors --json     q [Hq,L,D], k/v [Hkv,L,D], f32/bf16/f16\n"
      "Accuracy: recall is the share of each query row's exact softmax mass that the pattern keeps;\n"
      "rel_err and cosine compare the executor output with exact attention computed in f64 on the\n"
      "same rows (every --recall-stride'th row counted back from the last; auto keeps ~2048 rows\n"
      "per head, 1 = every row). Times are the best of --repeat runs (on the GPU after one\n"
      "untimed warm-up call).");
  cmd->add_option("--method", args->method, "Method name, comma-separated names, or all (see --list)")
      ->capture_default_str();
  cmd->add_option("--input", args->input, "synthetic, or a .safetensors file with q, k, v")
      ->capture_default_str();
  args->synthetic_options = {
      cmd->add_option("--length", args->length, "Sequence length (synthetic)")->capture_default_str(),
      cmd->add_option("--heads", args->heads, "Query heads (synthetic)")->capture_default_str(),
      cmd->add_option("--kv-heads", args->kv_heads, "KV heads (synthetic)")->capture_default_str(),
      cmd->add_option("--head-dim", args->head_dim, "Head dimension (synthetic)")->capture_default_str(),
      cmd->add_option("--dtype", args->dtype, "bf16, f16 or f32 (synthetic)")->capture_default_str(),
      cmd->add_option("--seed", args->seed, "Seed (synthetic)")
          ->check(non_negative_integer())
          ->capture_default_str(),
      cmd->add_option("--strength", args->strength, "Planted logit strength (synthetic)")
          ->capture_default_str(),
      cmd->add_option("--background", args->background, "Background logit std (synthetic)")
          ->capture_default_str(),
      cmd->add_option("--slashes", args->slashes,
                      "Slash lines per KV head (synthetic; 0: a suite without them, "
                      "docs/results/open-decisions.md)")
          ->capture_default_str()};
  cmd->add_option("--set", args->set,
                  "Selector setting key=value (repeatable): a bare key goes to every selected method "
                  "that has it, method.key=value to one method");
  cmd->add_flag("--json", args->json, "One JSON object per method per line instead of the table");
  cmd->add_option("--threads", args->threads, "Threads (0 = all cores)")->capture_default_str();
  cmd->add_option("--recall-stride", args->recall_stride,
                  "Evaluate recall/error on every S-th query row (0 = auto, 1 = all rows)")
      ->capture_default_str();
  cmd->add_option("--repeat", args->repeat, "Timed runs per method (best is reported)")->capture_default_str();
  cmd->add_option("--oracle", args->oracle,
                  "Also report the oracle block pattern holding this share of the exact mass of the "
                  "evaluated rows (e.g. 0.95): the density floor for block selectors")
      ->capture_default_str();
  cmd->add_flag("--planted", args->planted,
                "Also report the ground-truth pattern of the synthetic suite (sink, stripe and needle "
                "columns, the band, the blocks each slash crosses): how much of the mass the planted "
                "structure explains");
  cmd->add_flag("--plus-planted", args->plus_planted,
                "Also report each method's pattern united with the planted ground truth (rows "
                "'<method>+planted'): how much of its error is planted structure it missed");
  cmd->add_flag("--list", args->list, "List the methods and their settings with defaults");
  cmd->add_option("--device", args->device,
                  "cpu, or cuda: GPU selectors where ported (else the CPU selector), CUDA executor")
      ->capture_default_str();
  for (CommandSetup setup : attn_subcommand_registry()) setup(*cmd);
  cmd->callback([cmd, args] {
    if (!cmd->get_subcommands().empty()) return;  // e.g. `sieve attn eval`: that command runs
    run_attn(*args);
  });
}

}  // namespace

SIEVE_REGISTER_COMMAND(setup_attn);

}  // namespace sieve::tool
