// `sieve attn eval`: sweep methods x lengths x thresholds over the planted-structure suite and
// Q/K/V safetensors dumps; write a CSV, a Markdown table, block-mask data and (through
// scripts/plot_attn_eval.py) PNG pictures of the masks and a density-vs-recall plot per method.
//
//   sieve attn eval --out eval/                               all methods, 4K..64K, default sweeps
//   sieve attn eval --method rr,sample --lengths 8192,16384 --sweep rr.tau=0.9,0.97 --out eval/
//   sieve attn eval --no-synthetic --input ../shared/data/qkv/a.safetensors --out eval/
//
// Per point: selector time, density, recall (exact f64 softmax on every --recall-stride'th row,
// counted back from the last), and when the executor runs (--exec): its time, the output error on
// those rows against exact f64 attention, and the speedup over the dense kernel of the same run.
// Dumps are evaluated at their full length and at every sweep length below it (causal prefill of
// a prefix is the same problem at that length).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "command.h"
#include "qkv_file.h"
#include "sieve/attention/executor.h"
#include "sieve/attention/metrics.h"
#include "sieve/attention/selector.h"
#include "sieve/attention/synthetic.h"
#include "sieve/core/error.h"
#include "sieve/core/safetensors.h"
#include "sieve/core/threading.h"
#include "sieve/core/timer.h"

namespace sieve::tool {
namespace {

using namespace sieve::attention;
namespace fs = std::filesystem;

struct EvalArgs {
  std::string method = "all";
  std::vector<int64_t> lengths = {4096, 8192, 16384, 32768, 65536};
  std::vector<std::string> sweeps, set, inputs;
  bool no_synthetic = false;
  bool no_dense = false;
  int64_t heads = 8, kv_heads = 2, head_dim = 128;
  double strength = kSuiteStrength;
  int slashes = SyntheticConfig{}.num_slashes;
  std::string dtype = "bf16";
  uint64_t seed = 0;
  int64_t recall_rows = 512;
  std::string exec = "all";
  std::vector<int64_t> mask_heads = {0, 1, 2, 3};
  int64_t mask_max_length = 16384;
  std::string out;
  std::string plot = "auto";
  int threads = 0;
};

// Threshold key and values swept per method when --sweep does not name the method. The method's
// own default is added where the list lacks it (parse_sweeps), so every default sweep has the
// "(default)" point that --exec default and the mask files use.
const std::map<std::string, std::pair<std::string, std::vector<std::string>>>& default_sweeps() {
  static const std::map<std::string, std::pair<std::string, std::vector<std::string>>> m = {
      {"sample", {"alpha", {"0.9", "0.95", "0.98", "0.99"}}},
      {"rr", {"tau", {"0.9", "0.95", "0.97", "0.99"}}},
      {"unisparse", {"top_p", {"0.9", "0.95", "0.97", "0.99"}}},
      {"xattn", {"tau", {"0.8", "0.9", "0.95", "0.99"}}},
      {"vslash", {"slash_size", {"500", "2000", "6096", "16000"}}},
      {"flexprefill", {"gamma", {"0.9", "0.95", "0.98", "0.99"}}},
      {"streaming", {"local_blocks", {"3", "8", "32", "128"}}},
  };
  return m;
}

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(sep, start), text.size());
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

struct Sweep {
  std::string key;
  std::vector<std::string> values;  // empty: the method's defaults only
};

// Method m's selector with every "m.key=value" of `set` (--set) applied.
std::unique_ptr<PatternSelector> configured_selector(const std::string& m,
                                                     const std::vector<std::string>& set) {
  auto sel = make_selector(m);
  for (const std::string& kv : set) {
    const size_t dot = kv.find('.'), eq = kv.find('=');
    SIEVE_CHECK(dot != std::string::npos && eq != std::string::npos && dot < eq,
                "--set needs method.key=value, got '{}'", kv);
    if (kv.substr(0, dot) == m) sel->set(kv.substr(dot + 1, eq - dot - 1), kv.substr(eq + 1));
  }
  return sel;
}

// `values` of `key` for method m with m's default value (after --set) inserted in numeric order
// unless one of them already is that default (compared as the selector's canonical text: "0.98"
// = "0.980").
std::vector<std::string> with_default(const std::string& m, const std::string& key,
                                      std::vector<std::string> values,
                                      const std::vector<std::string>& set) {
  const std::string def = configured_selector(m, set)->settings().at(key);
  const auto canonical = [&](const std::string& v) {
    auto sel = make_selector(m);
    sel->set(key, v);
    return sel->settings().at(key);
  };
  if (std::any_of(values.begin(), values.end(),
                  [&](const std::string& v) { return canonical(v) == def; }))
    return values;
  const double d = std::stod(def);
  const auto at = std::find_if(values.begin(), values.end(),
                               [&](const std::string& v) { return std::stod(v) > d; });
  values.insert(at, def);
  return values;
}

// "method.key=v1,v2" entries override default_sweeps() for that method; a default sweep gets the
// method's default point, or the value --set gives its key.
std::map<std::string, Sweep> parse_sweeps(const std::vector<std::string>& methods,
                                          const std::vector<std::string>& specs,
                                          const std::vector<std::string>& set) {
  std::map<std::string, Sweep> out;
  for (const auto& m : methods) {
    const auto it = default_sweeps().find(m);
    if (it != default_sweeps().end())
      out[m] = {it->second.first, with_default(m, it->second.first, it->second.second, set)};
    else
      out[m] = {};
  }
  for (const std::string& s : specs) {
    const size_t dot = s.find('.'), eq = s.find('=');
    SIEVE_CHECK(dot != std::string::npos && eq != std::string::npos && dot < eq && eq + 1 < s.size(),
                "--sweep needs method.key=v1,v2,..., got '{}'", s);
    const std::string method = s.substr(0, dot);
    SIEVE_CHECK(out.count(method), "--sweep {}: method '{}' is not among the selected methods", s,
                method);
    out[method] = {s.substr(dot + 1, eq - dot - 1), split(s.substr(eq + 1), ',')};
    for (const auto& v : out[method].values)
      SIEVE_CHECK(!v.empty(), "--sweep {}: empty value in the list", s);
  }
  return out;
}

// One Q/K/V input at one length.
struct Case {
  std::string workload;  // "planted" or the dump's file name
  TensorView q, k, v;
};

// The first `len` rows of a [H, L, D] view (a causal prefix).
TensorView prefix(TensorView t, int64_t len) {
  t.shape[1] = len;
  return t;
}

struct Point {
  std::string workload, method, key, value;
  bool is_default = false;
  int64_t length = 0, heads = 0, kv_heads = 0, head_dim = 0, recall_rows = 0;
  double selector_ms = 0, executor_ms = NAN, dense_ms = 0;
  PatternMetrics m;
};

// Per (query block, key block) share of the tile's causal keys that the last row of the query
// block keeps (1 for selected blocks; columns and band give fractions): the mask picture.
std::vector<float> tile_coverage(const SparsePattern& p, int64_t head) {
  const int64_t nq = p.num_q_blocks(), nk = p.num_k_blocks(), off = p.seq_len_k - p.seq_len_q;
  std::vector<float> cov(static_cast<size_t>(nq * nk), 0.0f);
  std::vector<uint8_t> kept(static_cast<size_t>(p.seq_len_k));
  for (int64_t qb = 0; qb < nq; ++qb) {
    const int64_t i = std::min((qb + 1) * p.block_q, p.seq_len_q) - 1, pos = i + off;
    if (pos < 0) continue;
    std::fill(kept.begin(), kept.end(), 0);
    const int64_t r = p.row(head, qb);
    for (int32_t t = p.block_indptr[size_t(r)]; t < p.block_indptr[size_t(r + 1)]; ++t) {
      const int64_t k0 = int64_t(p.block_indices[size_t(t)]) * p.block_k;
      std::fill(kept.begin() + k0, kept.begin() + std::min(k0 + p.block_k, p.seq_len_k), 1);
    }
    if (p.has_columns())
      for (int32_t t = p.column_indptr[size_t(head)]; t < p.column_indptr[size_t(head + 1)]; ++t)
        kept[size_t(p.columns[size_t(t)])] = 1;
    for (int64_t j = std::max<int64_t>(0, pos - p.band + 1); j <= pos && p.band > 0; ++j)
      kept[size_t(j)] = 1;
    const int64_t visible = std::min(pos + 1, p.seq_len_k);
    for (int64_t kb = 0; kb * p.block_k < visible; ++kb) {
      const int64_t k0 = kb * p.block_k, k1 = std::min(k0 + p.block_k, visible);
      int64_t n = 0;
      for (int64_t j = k0; j < k1; ++j) n += kept[size_t(j)];
      cov[size_t(qb * nk + kb)] = float(n) / float(k1 - k0);
    }
  }
  return cov;
}

void write_mask(const fs::path& dir, const Point& pt, const SparsePattern& p, int64_t head) {
  const int64_t ph = p.per_kv_head ? head / (pt.heads / pt.kv_heads) : head;
  const std::vector<float> cov = tile_coverage(p, ph);
  const fs::path file =
      dir / fmt::format("{}_L{}_{}_h{}.csv", pt.workload, pt.length, pt.method, head);
  std::ofstream f(file);
  SIEVE_CHECK(f.good(), "cannot write {}", file.string());
  const int64_t nq = p.num_q_blocks(), nk = p.num_k_blocks();
  for (int64_t qb = 0; qb < nq; ++qb) {
    for (int64_t kb = 0; kb < nk; ++kb)
      f << (kb ? "," : "") << fmt::format("{:.3g}", cov[size_t(qb * nk + kb)]);
    f << '\n';
  }
}

Tensor gather_rows(const TensorView& out, const std::vector<int64_t>& rows) {
  Tensor t(DType::kF32, {out.shape[0], int64_t(rows.size()), out.shape[2]});
  for (int64_t h = 0; h < out.shape[0]; ++h)
    for (size_t r = 0; r < rows.size(); ++r)
      for (int64_t e = 0; e < out.shape[2]; ++e)
        t.view().set(out.get(h, rows[r], e), h, int64_t(r), e);
  return t;
}

const char* kCsvHeader =
    "workload,length,heads,kv_heads,head_dim,method,threshold_key,threshold,is_default,density,"
    "token_density,recall_mean,recall_min,recall_p01,rel_error,cosine,selector_ms,executor_ms,"
    "dense_ms,selector_share,speedup,recall_rows";

std::string csv_row(const Point& p) {
  const double share = p.selector_ms / p.dense_ms;
  const double speedup = std::isnan(p.executor_ms) ? NAN : p.dense_ms / (p.selector_ms + p.executor_ms);
  const auto num = [](double x) { return std::isnan(x) ? std::string() : fmt::format("{:.6g}", x); };
  return fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}", p.workload,
                     p.length, p.heads, p.kv_heads, p.head_dim, p.method, p.key, p.value,
                     p.is_default ? 1 : 0, num(p.m.block_density), num(p.m.token_density),
                     num(p.m.recall_mean), num(p.m.recall_min), num(p.m.recall_p01),
                     num(p.m.rel_error), num(p.m.cosine), num(p.selector_ms), num(p.executor_ms),
                     num(p.dense_ms), num(share), num(speedup), p.recall_rows);
}

void write_markdown(const fs::path& file, const std::vector<Point>& pts) {
  std::ofstream f(file);
  SIEVE_CHECK(f.good(), "cannot write {}", file.string());
  std::string last;
  for (const Point& p : pts) {
    const std::string group = fmt::format("{} L={}", p.workload, p.length);
    if (group != last) {
      f << fmt::format("\n### {} (Hq={}, Hkv={}, D={}; recall on {} rows/head; dense {:.1f} ms)\n\n",
                       group, p.heads, p.kv_heads, p.head_dim, p.recall_rows, p.dense_ms);
      f << "| method | setting | density | tokens | recall mean | recall min | rel error | "
           "selector share | executor ms | speedup |\n";
      f << "|---|---|---|---|---|---|---|---|---|---|\n";
      last = group;
    }
    const auto opt = [](double x, const char* spec) {
      return std::isnan(x) ? std::string("-") : fmt::format(fmt::runtime(spec), x);
    };
    f << fmt::format("| {} | {}{} | {:.3f} | {:.3f} | {:.4f} | {:.4f} | {} | {} | {} | {} |\n",
                     p.method, p.key.empty() ? "defaults" : p.key + "=" + p.value,
                     p.is_default ? " (default)" : "", p.m.block_density, p.m.token_density,
                     p.m.recall_mean, p.m.recall_min, opt(p.m.rel_error, "{:.2e}"),
                     opt(100.0 * p.selector_ms / p.dense_ms, "{:.2f}%"), opt(p.executor_ms, "{:.0f}"),
                     opt(std::isnan(p.executor_ms) ? NAN : p.dense_ms / (p.selector_ms + p.executor_ms),
                         "{:.2f}x"));
  }
  f << "\ndensity: selected blocks / causal blocks; tokens: kept causal (query, key) pairs / all; "
       "selector share: selector time / dense kernel time; speedup: dense / (selector + "
       "executor).\n";
}

// scripts/plot_attn_eval.py next to the working directory or the source tree of this binary.
std::optional<fs::path> find_plot_script() {
  std::vector<fs::path> candidates = {"scripts/plot_attn_eval.py"};
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (fs::path d = exe.parent_path(); !d.empty() && d != d.root_path(); d = d.parent_path())
      candidates.push_back(d / "scripts" / "plot_attn_eval.py");
  for (const auto& c : candidates)
    if (fs::exists(c)) return c;
  return std::nullopt;
}

void run_eval(const EvalArgs& a) {
  SIEVE_CHECK(!a.out.empty(), "--out DIR is required");
  SIEVE_CHECK(a.exec == "all" || a.exec == "default" || a.exec == "none",
              "--exec must be all, default or none, got '{}'", a.exec);
  SIEVE_CHECK(a.plot == "auto" || a.plot == "yes" || a.plot == "no",
              "--plot must be auto, yes or no, got '{}'", a.plot);
  SIEVE_CHECK(!a.no_dense || a.exec == "none", "--no-dense needs --exec none");
  SIEVE_CHECK(a.recall_rows >= 1, "--recall-rows must be >= 1, got {}", a.recall_rows);
  SIEVE_CHECK(!a.no_synthetic || !a.inputs.empty(), "--no-synthetic needs at least one --input");
  std::vector<int64_t> lengths;
  for (int64_t L : a.lengths) {
    SIEVE_CHECK(L >= 1, "--lengths must be positive, got {}", L);
    if (std::find(lengths.begin(), lengths.end(), L) == lengths.end()) lengths.push_back(L);
  }
  apply_threads(a.threads);

  std::vector<std::string> methods = a.method == "all" ? selector_names() : split(a.method, ',');
  for (const auto& m : methods) make_selector(m);  // unknown names fail now
  const auto sweeps = parse_sweeps(methods, a.sweeps, a.set);
  // Every selector configuration, built and validated before any heavy work.
  struct Config {
    std::string method, key, value;
    bool is_default;
    std::unique_ptr<PatternSelector> selector;
  };
  std::vector<Config> configs;
  for (const auto& m : methods) {
    const Sweep& sw = sweeps.at(m);
    std::vector<std::string> values = sw.values;
    if (values.empty()) values.push_back("");
    // The swept key's value with --set applied is the run's default point (the built-in default
    // unless --set names the key).
    const auto base = configured_selector(m, a.set);
    bool any_default = false;
    for (const auto& v : values) {
      Config c{m, sw.key, v, false, configured_selector(m, a.set)};
      c.is_default = true;
      if (!sw.key.empty()) {
        c.selector->set(sw.key, v);
        // Compare canonical texts ("0.97" and "0.970" are the same threshold).
        c.is_default = base->settings().at(sw.key) == c.selector->settings().at(sw.key);
      }
      any_default = any_default || c.is_default;
      c.selector->validate_config();
      configs.push_back(std::move(c));
    }
    if (!any_default)
      std::fprintf(stderr,
                   "sieve attn eval: note: no %s point has its default %s=%s (add it to the sweep "
                   "or --set it): no masks%s for %s\n",
                   m.c_str(), sw.key.c_str(), base->settings().at(sw.key).c_str(),
                   a.exec == "default" ? " and no executor run" : "", m.c_str());
  }

  // Workloads: the planted suite at every length, then each dump at its length and below. Every
  // dump is opened and its q / k / v checked before anything is written, so a bad file leaves no
  // half-made output folder behind.
  struct Source {
    std::string name;
    std::unique_ptr<SafetensorsFile> file;
    int64_t length;
    TensorView q, k, v;  // checked once (load_qkv scans every value)
  };
  std::vector<Source> sources;
  for (const std::string& path : a.inputs) {
    Source s{fs::path(path).stem().string(), std::make_unique<SafetensorsFile>(path), 0,
             {}, {}, {}};
    for (const Source& other : sources)
      SIEVE_CHECK(other.name != s.name,
                  "--input {}: another dump has the name '{}' (the file name without its "
                  "extension names a workload in the results); rename one",
                  path, s.name);
    s.q = load_qkv(*s.file, "q");
    s.k = load_qkv(*s.file, "k");
    s.v = load_qkv(*s.file, "v");
    const AttentionShape shape = check_attention_inputs(s.q, s.k, s.v);
    // the sweep takes causal prefixes of one length from q, k and v alike
    SIEVE_CHECK(shape.seq_len_q == shape.seq_len_k,
                "--input {}: q has {} rows and k {}; eval needs a prefill dump (equal lengths)",
                path, shape.seq_len_q, shape.seq_len_k);
    s.length = shape.seq_len_k;
    sources.push_back(std::move(s));
  }

  // The planted suite's shape and the mask heads, also before anything is written.
  const SyntheticConfig suite =
      planted_suite_config(a.heads, a.kv_heads, a.head_dim, a.dtype, a.seed, a.strength, a.slashes);
  if (!a.no_synthetic) check_synthetic_config(suite);
  int64_t most_heads = a.no_synthetic ? 0 : a.heads;
  for (const Source& s : sources) most_heads = std::max(most_heads, s.q.shape[0]);
  for (int64_t h : a.mask_heads)
    SIEVE_CHECK(h >= 0 && h < most_heads,
                "--mask-heads {}: no workload has that query head (the most is {}: heads 0..{})",
                h, most_heads, most_heads - 1);

  const fs::path out(a.out);
  {
    std::error_code ec;
    fs::create_directories(out / "masks", ec);
    SIEVE_CHECK(!ec, "cannot create the output folder '{}': {}", (out / "masks").string(),
                ec.message());
  }
  std::ofstream csv(out / "results.csv");
  SIEVE_CHECK(csv.good(), "cannot write {}", (out / "results.csv").string());
  csv << kCsvHeader << '\n';
  std::vector<std::pair<std::string, int64_t>> plan;  // (source, length)
  if (!a.no_synthetic)
    for (int64_t L : lengths) plan.emplace_back("planted", L);
  for (const Source& s : sources) {
    for (int64_t L : lengths)
      if (L < s.length) plan.emplace_back(s.name, L);
    plan.emplace_back(s.name, s.length);
  }

  std::vector<Point> points;
  const AttentionOptions opts;
  const size_t total = plan.size() * configs.size();
  size_t done = 0;
  Timer wall;
  for (const auto& [src, L] : plan) {
    std::optional<SyntheticWorkload> syn;
    Case c;
    c.workload = src;
    if (src == "planted") {
      SyntheticConfig sc = suite;
      sc.seq_len = L;
      fmt::print(stderr, "sieve attn eval: planted suite L={} Hq={} Hkv={} D={}{}\n", L, a.heads,
                 a.kv_heads, a.head_dim,
                 a.slashes != SyntheticConfig{}.num_slashes ? fmt::format(", {} slash lines", a.slashes)
                                                           : std::string());
      syn = make_synthetic(sc);
      c.q = syn->q;
      c.k = syn->k;
      c.v = syn->v;
    } else {
      const Source& s = *std::find_if(sources.begin(), sources.end(),
                                      [&](const Source& x) { return x.name == src; });
      c.q = prefix(s.q, L);
      c.k = prefix(s.k, L);
      c.v = prefix(s.v, L);
      fmt::print(stderr, "sieve attn eval: {} L={}\n", src, L);
    }
    const AttentionShape shape = check_attention_inputs(c.q, c.k, c.v);
    const int64_t stride = std::max<int64_t>(1, (shape.seq_len_q + a.recall_rows - 1) / a.recall_rows);
    const std::vector<int64_t> rows = strided_rows(shape.seq_len_q, stride);

    Tensor out_full(DType::kF32, {shape.num_heads_q, shape.seq_len_q, shape.head_dim});
    double dense_ms = NAN;  // --exec none --no-dense: selectors and recall only
    if (!a.no_dense) {
      Timer t;
      dense_attention(c.q, c.k, c.v, out_full, opts);
      dense_ms = t.ms();
    }
    if (!a.no_dense) fmt::print(stderr, "  dense kernel {:.0f} ms\n", dense_ms);

    std::vector<Point> group;
    std::vector<SparsePattern> patterns;
    std::vector<std::optional<Tensor>> outs;
    for (const Config& cfg : configs) {
      Point p;
      p.workload = src;
      p.method = cfg.method;
      p.key = cfg.key;
      p.value = cfg.value;
      p.is_default = cfg.is_default;
      p.length = L;
      p.heads = shape.num_heads_q;
      p.kv_heads = shape.num_heads_kv;
      p.head_dim = shape.head_dim;
      p.recall_rows = int64_t(rows.size());
      p.dense_ms = dense_ms;
      Timer ts;
      SparsePattern pat = cfg.selector->select(c.q, c.k, opts);
      p.selector_ms = ts.ms();
      std::optional<Tensor> o;
      if (a.exec == "all" || (a.exec == "default" && cfg.is_default)) {
        Timer te;
        block_sparse_attention(c.q, c.k, c.v, pat, out_full, opts);
        p.executor_ms = te.ms();
        o = gather_rows(out_full, rows);
      }
      ++done;
      fmt::print(stderr, "  [{}/{}] {} {}{} select {:.0f} ms{}  ({:.0f} s elapsed)\n", done, total,
                 p.method, p.key.empty() ? "" : p.key + "=", p.value, p.selector_ms,
                 std::isnan(p.executor_ms) ? "" : fmt::format(", execute {:.0f} ms", p.executor_ms),
                 wall.seconds());
      group.push_back(p);
      patterns.push_back(std::move(pat));
      outs.push_back(std::move(o));
    }
    // One exact f64 pass for all patterns of this case (recall) and the dense rows (error).
    fmt::print(stderr, "  exact f64 recall on {} rows per head\n", rows.size());
    std::vector<const SparsePattern*> pp;
    for (const auto& pat : patterns) pp.push_back(&pat);
    ExactRows exact;
    const auto metrics = pattern_recall(c.q, c.k, pp, opts, stride, &c.v, &exact);
    ExactRows compact = exact;
    for (size_t r = 0; r < compact.rows.size(); ++r) compact.rows[r] = int64_t(r);
    for (size_t i = 0; i < group.size(); ++i) {
      group[i].m = metrics[i];
      group[i].m.rel_error = group[i].m.cosine = NAN;
      if (outs[i]) output_error(*outs[i], compact, group[i].m);
      csv << csv_row(group[i]) << '\n';
      if (group[i].is_default && L <= a.mask_max_length)
        for (int64_t h : a.mask_heads)
          if (h >= 0 && h < shape.num_heads_q) write_mask(out / "masks", group[i], patterns[i], h);
      points.push_back(group[i]);
    }
    csv.flush();
  }
  write_markdown(out / "results.md", points);
  fmt::print(stderr, "sieve attn eval: wrote {} and {} ({} points, {:.0f} s)\n",
             (out / "results.csv").string(), (out / "results.md").string(), points.size(),
             wall.seconds());

  if (a.plot == "no") return;
  const auto script = find_plot_script();
  if (!script) {
    SIEVE_CHECK(a.plot != "yes", "--plot yes: scripts/plot_attn_eval.py not found");
    fmt::print(stderr, "sieve attn eval: plot script not found; run python3 "
                       "scripts/plot_attn_eval.py {} for the PNGs\n", out.string());
    return;
  }
  const std::string cmd = fmt::format("python3 '{}' '{}'", script->string(), out.string());
  fmt::print(stderr, "sieve attn eval: {}\n", cmd);
  const int rc = std::system(cmd.c_str());
  SIEVE_CHECK(rc == 0 || a.plot != "yes", "plotting failed ({}): {}", rc, cmd);
  if (rc != 0) fmt::print(stderr, "sieve attn eval: plotting failed (exit {}); CSV and Markdown are written\n", rc);
}

void setup_eval(CLI::App& attn) {
  auto a = std::make_shared<EvalArgs>();
  auto* cmd = attn.add_subcommand(
      "eval", "Sweep methods x lengths x thresholds; write CSV, Markdown, mask data and PNGs");
  cmd->footer(
      "Examples:\n"
      "  sieve attn eval --out eval/\n"
      "  sieve attn eval --method rr,xattn --lengths 8192,32768 --heads 2 --kv-heads 1 --out eval/\n"
      "  sieve attn eval --no-synthetic --input ../shared/data/qkv/x.safetensors --out eval/\n"
      "Default sweeps (override with --sweep method.key=v1,v2): sample alpha, rr tau, unisparse\n"
      "top_p, xattn tau, flexprefill gamma, vslash slash_size, streaming local_blocks, each with the\n"
      "method's default (or the value --set gives the swept key) among its points; dense once.\n"
      "Outputs in --out: results.csv, results.md, masks/*.csv (per-tile kept share for the default\n"
      "setting of each method, heads --mask-heads, lengths <= --mask-max-length) and, through\n"
      "scripts/plot_attn_eval.py (matplotlib), masks_*.png and pareto_<method>.png.");
  cmd->add_option("--out", a->out, "Output directory (created)")->required();
  cmd->add_option("--method", a->method, "Methods: all or a comma-separated list")->capture_default_str();
  cmd->add_option("--lengths", a->lengths, "Sequence lengths of the planted suite (and dump prefixes)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--sweep", a->sweeps, "method.key=v1,v2,... threshold values (repeatable)");
  cmd->add_option("--set", a->set, "method.key=value fixed setting for every point (repeatable)");
  cmd->add_option("--input", a->inputs, "Q/K/V safetensors dump: q [Hq,L,D], k/v [Hkv,L,D] (repeatable)");
  cmd->add_flag("--no-synthetic", a->no_synthetic, "Skip the planted-structure suite");
  cmd->add_flag("--no-dense", a->no_dense,
                "With --exec none: skip the dense kernel (threshold sweeps of density and recall "
                "only; no selector share)");
  cmd->add_option("--heads", a->heads, "Query heads of the planted suite")->capture_default_str();
  cmd->add_option("--kv-heads", a->kv_heads, "KV heads of the planted suite")->capture_default_str();
  cmd->add_option("--head-dim", a->head_dim, "Head dimension of the planted suite")->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "bf16, f16 or f32 (planted suite)")->capture_default_str();
  cmd->add_option("--seed", a->seed, "Seed of the planted suite")
      ->check(non_negative_integer())
      ->capture_default_str();
  cmd->add_option("--strength", a->strength, "Planted logit strength of the suite")
      ->capture_default_str();
  cmd->add_option("--slashes", a->slashes,
                  "Slash lines per KV head of the suite (0: the suite without them, "
                  "docs/results/open-decisions.md)")
      ->capture_default_str();
  cmd->add_option("--recall-rows", a->recall_rows,
                  "Query rows per head for the exact f64 recall/error (strided from the last)")
      ->capture_default_str();
  cmd->add_option("--exec", a->exec,
                  "Run the executor (time, error, speedup) for all points, the default setting "
                  "of each method only, or none")
      ->capture_default_str();
  cmd->add_option("--mask-heads", a->mask_heads, "Heads whose block masks are written")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--mask-max-length", a->mask_max_length, "Write masks up to this length")
      ->capture_default_str();
  cmd->add_option("--plot", a->plot, "auto, yes or no: run scripts/plot_attn_eval.py")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads (0 = all cores)")->capture_default_str();
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace

SIEVE_REGISTER_ATTN_SUBCOMMAND(setup_eval);

}  // namespace sieve::tool
