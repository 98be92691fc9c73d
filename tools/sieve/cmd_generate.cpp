// `sieve generate`: run a local Llama-family model (Hugging Face folder: config.json,
// safetensors, tokenizer.json) on a prompt, streaming the text as it is generated.
//
//   sieve generate --model DIR --prompt "def fib(n):" --max-tokens 64 --attention rr
//
// Prefill goes through sieve::attention (dense, or a selector's sparse pattern with --attention
// NAME --set key=value); decoding samples with the given settings (greedy by default). Timing
// (time to first token, prefill and decode tokens/s) goes to stderr, or into the --json report.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "command.h"
#include "prefill_attention.h"
#include "sieve/attention/selector.h"
#include "sieve/core/error.h"
#include "sieve/core/progress.h"
#include "sieve/core/text_file.h"
#include "sieve/core/threading.h"
#include "sieve/engine/generate.h"
#include "sieve/engine/linear.h"
#include "sieve/engine/model.h"
#include "sieve/engine/tokenizer.h"

namespace sieve::tool {
namespace {

struct GenerateArgs {
  std::string model, prompt, prompt_file, tokenizer, ids;
  int64_t max_tokens = 128;
  std::string attention = "dense";
  std::vector<std::string> set;
  float temperature = 0.0f, top_p = 1.0f, min_p = 0.0f, repeat_penalty = 1.0f;
  int64_t top_k = 0;
  uint64_t seed = 0;
  int threads = 0;
  int64_t chunk = 0;
  bool json = false, no_special = false, ignore_eos = false;
};

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const long v = std::stol(item, &used);
      SIEVE_CHECK(used == item.size(), "--ids: '{}' is not an integer", item);
      ids.push_back(int32_t(v));
    } catch (const std::logic_error&) {
      SIEVE_FAIL("--ids: '{}' is not an integer", item);
    }
  }
  return ids;
}

void run_generate(const GenerateArgs& a) {
  apply_threads(a.threads);
  const int sources = int(!a.prompt.empty()) + int(!a.prompt_file.empty()) + int(!a.ids.empty());
  SIEVE_CHECK(sources == 1, "give exactly one of --prompt, --prompt-file or --ids");

  const auto selector = prefill_selector(a.attention, a.set);  // before the model loads
  engine::Model model(a.model);
  std::unique_ptr<engine::Tokenizer> tok;
  std::vector<int32_t> prompt;
  if (!a.ids.empty()) {
    prompt = parse_ids(a.ids);
    if (!a.tokenizer.empty()) {
      tok = std::make_unique<engine::Tokenizer>(engine::Tokenizer::from_file(a.tokenizer));
    }
  } else {
    tok = std::make_unique<engine::Tokenizer>(
        engine::Tokenizer::from_file(a.tokenizer.empty() ? a.model : a.tokenizer));
    const std::string text = a.prompt.empty() ? read_whole_file(a.prompt_file, "--prompt-file") : a.prompt;
    prompt = tok->encode(text, !a.no_special);
  }
  SIEVE_CHECK(!prompt.empty(), "the prompt encodes to no tokens");

  if (selector) model.set_selector(selector);

  // Positions past the model's trained context still run (RoPE has no hard limit, and long-context
  // experiments go there on purpose), but the user should know the output may degrade.
  const int64_t context = model.config().max_position_embeddings;
  if (context > 0 && int64_t(prompt.size()) + a.max_tokens > context)
    std::fprintf(stderr,
                 "sieve: warning: prompt (%lld tokens) + --max-tokens (%lld) passes the model's "
                 "context of %lld tokens (max_position_embeddings in config.json)\n",
                 static_cast<long long>(prompt.size()), static_cast<long long>(a.max_tokens),
                 static_cast<long long>(context));

  engine::GenerateConfig gc;
  gc.max_tokens = a.max_tokens;
  gc.prefill_chunk = a.chunk;
  gc.sampler.temperature = a.temperature;
  gc.sampler.top_k = a.top_k;
  gc.sampler.top_p = a.top_p;
  gc.sampler.min_p = a.min_p;
  gc.sampler.repetition_penalty = a.repeat_penalty;
  gc.sampler.seed = a.seed;
  gc.sampler.validate();
  gc.stop_at_eos = !a.ignore_eos;
  if (gc.stop_at_eos) {
    gc.stop_tokens = model.config().eos_token_ids;
    if (tok) {
      for (int32_t e : tok->eos_ids()) gc.stop_tokens.push_back(e);
    }
  }

  std::unique_ptr<Progress> progress;
  if (prompt.size() >= 512) {
    progress = std::make_unique<Progress>(
        fmt::format("prefill {} tokens", prompt.size()), model.config().num_layers);
    model.set_layer_callback([&](int64_t done, int64_t total) {
      if (progress) progress->advance(1);
      if (done == total) progress.reset();  // prefill done; decode steps stay silent
    });
  }

  std::unique_ptr<engine::TokenStream> stream;
  if (tok) stream = std::make_unique<engine::TokenStream>(*tok, /*skip_special_tokens=*/true);
  std::string text;
  auto on_token = [&](int32_t id) {
    if (stream) {
      const std::string piece = stream->push(id);
      text += piece;
      if (!a.json) {
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      }
    } else if (!a.json) {
      std::printf("%s%d", text.empty() ? "" : " ", id);
      text += " ";
      std::fflush(stdout);
    }
    return true;
  };
  const engine::GenerateResult r = engine::generate(model, prompt, gc, on_token);
  if (stream) {
    const std::string rest = stream->finish();
    text += rest;
    if (!a.json) std::fwrite(rest.data(), 1, rest.size(), stdout);
  }

  const engine::AttentionStats& st = model.attention_stats();
  if (a.json) {
    nlohmann::json j;
    j["model"] = a.model;
    j["architecture"] = model.config().architecture;
    j["weights"] = dtype_name(model.weight_dtype());
    j["linear_isa"] = engine::linear_isa_name();
    j["threads"] = num_threads();
    j["attention"] = a.attention;
    j["sampler"] = gc.sampler.describe();
    j["prompt_tokens"] = r.prompt_tokens;
    j["generated_tokens"] = r.tokens.size();
    j["tokens"] = r.tokens;
    if (tok) j["text"] = text;
    j["stop"] = r.stopped_by_token ? "eos" : "max_tokens";
    j["ttft_s"] = r.ttft_seconds;
    j["prefill_s"] = r.prefill_seconds;
    j["prefill_tokens_per_s"] = r.prefill_tokens_per_second();
    j["decode_s"] = r.decode_seconds;
    j["decode_tokens_per_s"] = r.decode_tokens_per_second();
    if (st.pattern_calls > 0) {
      j["block_density"] = st.mean_block_density();
      j["token_density"] = st.mean_token_density();
      j["select_s"] = st.select_seconds;
    }
    std::printf("%s\n", j.dump(1).c_str());
    return;
  }
  std::printf("\n");
  std::fflush(stdout);
  std::string density;
  if (st.pattern_calls > 0) {
    density = fmt::format(", block density {:.3f} (token {:.3f}), selection {:.2f} s",
                          st.mean_block_density(), st.mean_token_density(), st.select_seconds);
  }
  std::fprintf(stderr,
               "sieve: %s (%s weights, %s, %d threads), attention %s%s\n"
               "sieve: prompt %lld tokens, prefill %.3f s (%.1f tokens/s), time to first token "
               "%.3f s\n"
               "sieve: generated %zu tokens (%s), decode %.1f tokens/s, stop: %s\n",
               model.config().summary().c_str(), dtype_name(model.weight_dtype()),
               engine::linear_isa_name(), num_threads(), a.attention.c_str(), density.c_str(),
               static_cast<long long>(r.prompt_tokens), r.prefill_seconds,
               r.prefill_tokens_per_second(), r.ttft_seconds, r.tokens.size(),
               gc.sampler.describe().c_str(), r.decode_tokens_per_second(),
               r.stopped_by_token ? "end of sequence token" : "max tokens");
}

std::string attention_help() {
  std::string names;
  for (const auto& n : attention::selector_names()) names += (names.empty() ? "" : ", ") + n;
  return "prefill attention: dense (the exact executor) or a selector (" + names + ")";
}

void setup_generate(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "generate text with a local Llama-family model");
  cmd->add_option("--model", a->model, "model folder (config.json, safetensors, tokenizer.json)")
      ->required();
  cmd->add_option("--prompt", a->prompt, "prompt text");
  cmd->add_option("--prompt-file", a->prompt_file, "file holding the prompt text");
  cmd->add_option("--ids", a->ids, "prompt as comma-separated token ids (no tokenizer needed)");
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer.json (default: the model folder's)");
  cmd->add_option("--max-tokens", a->max_tokens, "tokens to generate")->capture_default_str();
  cmd->add_option("--attention", a->attention, attention_help())->capture_default_str();
  cmd->add_option("--set", a->set, "selector setting key=value (repeatable)");
  cmd->add_option("--temperature", a->temperature, "sampling temperature; 0 = greedy")
      ->capture_default_str();
  cmd->add_option("--top-k", a->top_k, "keep the k most likely tokens; 0 = off")
      ->capture_default_str();
  cmd->add_option("--top-p", a->top_p, "nucleus sampling mass; 1 = off")->capture_default_str();
  cmd->add_option("--min-p", a->min_p, "drop tokens below min-p x the top probability")
      ->capture_default_str();
  cmd->add_option("--repeat-penalty", a->repeat_penalty, "repetition penalty (CTRL); 1 = off")
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "sampling seed")
      ->check(non_negative_integer())
      ->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads; 0 = all")->capture_default_str();
  cmd->add_option("--chunk", a->chunk, "prefill chunk in tokens; 0 = whole prompt at once")
      ->capture_default_str();
  cmd->add_flag("--no-special", a->no_special, "do not add the tokenizer's BOS/template tokens");
  cmd->add_flag("--ignore-eos", a->ignore_eos, "keep generating past end-of-sequence tokens");
  cmd->add_flag("--json", a->json, "print one JSON report instead of streaming text");
  cmd->callback([a] { run_generate(*a); });
}

SIEVE_REGISTER_COMMAND(setup_generate);

}  // namespace
}  // namespace sieve::tool
