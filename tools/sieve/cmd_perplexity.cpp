// `sieve perplexity`: perplexity of a local Llama-family model on a text file, with dense or
// sparse (selector) prefill attention, so that a sparse method can be judged against dense on
// real long inputs.
//
//   sieve perplexity --model DIR --file big.py --context 8192 --attention rr --set tau=0.9
//
// The file is cut into windows of --context tokens; each window is one prefill. With a selector
// the report adds its mean block and token density over all (layer, window) calls.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "command.h"
#include "prefill_attention.h"
#include "sieve/attention/selector.h"
#include "sieve/core/error.h"
#include "sieve/core/progress.h"
#include "sieve/core/text_file.h"
#include "sieve/core/threading.h"
#include "sieve/engine/linear.h"
#include "sieve/engine/model.h"
#include "sieve/engine/perplexity.h"
#include "sieve/engine/tokenizer.h"

namespace sieve::tool {
namespace {

struct PerplexityArgs {
  std::string model, file, tokenizer;
  int64_t context = 2048, windows = 0;
  std::string attention = "dense";
  std::vector<std::string> set;
  int threads = 0;
  bool json = false, no_special = false;
};

void run_perplexity(const PerplexityArgs& a) {
  apply_threads(a.threads);
  const auto selector = prefill_selector(a.attention, a.set);  // before the model loads
  engine::Model model(a.model);
  const engine::Tokenizer tok =
      engine::Tokenizer::from_file(a.tokenizer.empty() ? a.model : a.tokenizer);
  const std::vector<int32_t> tokens = tok.encode(read_whole_file(a.file, "--file"), !a.no_special);
  SIEVE_CHECK(tokens.size() >= 2, "'{}' encodes to {} tokens; perplexity needs at least 2", a.file,
              tokens.size());

  if (selector) model.set_selector(selector);

  engine::PerplexityConfig pc;
  pc.context = a.context;
  pc.max_windows = a.windows;
  const engine::PerplexityPlan plan = engine::perplexity_plan(int64_t(tokens.size()), pc);
  Progress progress(fmt::format("perplexity {} x {} tokens", plan.windows, plan.length),
                    plan.windows);
  const engine::PerplexityResult r =
      engine::perplexity(model, tokens, pc, [&](int64_t, int64_t) { progress.advance(1); });
  progress.finish();

  const engine::AttentionStats& st = r.attention;
  if (a.json) {
    nlohmann::json j;
    j["model"] = a.model;
    j["file"] = a.file;
    j["file_tokens"] = tokens.size();
    j["context"] = a.context;
    j["windows"] = r.windows;
    j["tokens_scored"] = r.tokens_scored;
    j["attention"] = a.attention;
    j["settings"] = a.set;
    j["perplexity"] = r.perplexity();
    j["mean_nll"] = r.mean_nll();
    j["seconds"] = r.seconds;
    j["tokens_per_s"] = r.seconds > 0 ? double(r.windows * plan.length) / r.seconds : 0.0;
    j["attention_s"] = st.attention_seconds;
    j["weights"] = dtype_name(model.weight_dtype());
    j["linear_isa"] = engine::linear_isa_name();
    j["threads"] = num_threads();
    if (st.pattern_calls > 0) {
      j["block_density"] = st.mean_block_density();
      j["token_density"] = st.mean_token_density();
      j["select_s"] = st.select_seconds;
    } else {
      j["block_density"] = 1.0;
      j["token_density"] = 1.0;
    }
    std::printf("%s\n", j.dump(1).c_str());
    return;
  }
  std::printf("perplexity %.4f (mean NLL %.5f nats) over %lld tokens in %lld windows of %lld\n",
              r.perplexity(), r.mean_nll(), static_cast<long long>(r.tokens_scored),
              static_cast<long long>(r.windows), static_cast<long long>(plan.length));
  if (st.pattern_calls > 0) {
    std::printf("attention %s: block density %.4f, token density %.4f (mean over %lld layer "
                "calls), selection %.2f s, attention %.2f s\n",
                a.attention.c_str(), st.mean_block_density(), st.mean_token_density(),
                static_cast<long long>(st.pattern_calls), st.select_seconds, st.attention_seconds);
  } else {
    std::printf("attention dense: density 1, attention %.2f s\n", st.attention_seconds);
  }
  std::printf("time %.2f s (%s weights, %s, %d threads)\n", r.seconds,
              dtype_name(model.weight_dtype()), engine::linear_isa_name(), num_threads());
}

void setup_perplexity(CLI::App& app) {
  auto a = std::make_shared<PerplexityArgs>();
  CLI::App* cmd = app.add_subcommand("perplexity", "perplexity of a local model on a text file");
  cmd->add_option("--model", a->model, "model folder (config.json, safetensors, tokenizer.json)")
      ->required();
  cmd->add_option("--file", a->file, "text file to score")->required();
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json (default: the model folder's)");
  cmd->add_option("--context", a->context, "tokens per window (one prefill each)")
      ->capture_default_str();
  cmd->add_option("--windows", a->windows, "score at most this many windows; 0 = all")
      ->capture_default_str();
  cmd->add_option("--attention", a->attention,
                  "prefill attention: dense (the exact executor) or a selector name")
      ->capture_default_str();
  cmd->add_option("--set", a->set, "selector setting key=value (repeatable)");
  cmd->add_option("--threads", a->threads, "CPU threads; 0 = all")->capture_default_str();
  cmd->add_flag("--no-special", a->no_special, "do not add the tokenizer's BOS/template tokens");
  cmd->add_flag("--json", a->json, "print one JSON report");
  cmd->callback([a] { run_perplexity(*a); });
}

SIEVE_REGISTER_COMMAND(setup_perplexity);

}  // namespace
}  // namespace sieve::tool
