#include "sieve/engine/generate.h"

#include "sieve/core/error.h"
#include "sieve/core/timer.h"

#include <algorithm>

namespace sieve::engine {

double GenerateResult::prefill_tokens_per_second() const {
  return prefill_seconds > 0 ? double(prompt_tokens) / prefill_seconds : 0.0;
}

double GenerateResult::decode_tokens_per_second() const {
  const int64_t steps = int64_t(tokens.size()) - 1;
  return steps > 0 && decode_seconds > 0 ? double(steps) / decode_seconds : 0.0;
}

GenerateResult generate(Model& model, std::span<const int32_t> prompt, const GenerateConfig& config,
                        const TokenCallback& on_token) {
  SIEVE_CHECK(!prompt.empty(), "generate needs a non-empty prompt");
  SIEVE_CHECK(config.max_tokens >= 0, "max_tokens must be >= 0, got {}", config.max_tokens);
  SIEVE_CHECK(config.prefill_chunk >= 0, "prefill_chunk must be >= 0, got {}", config.prefill_chunk);
  std::vector<int64_t> stop = config.stop_tokens;
  if (stop.empty() && config.stop_at_eos) stop = model.config().eos_token_ids;

  GenerateResult r;
  r.prompt_tokens = int64_t(prompt.size());
  Sampler sampler(config.sampler);
  KvCache cache = model.make_cache(int64_t(prompt.size()) + config.max_tokens + 1);
  std::vector<int32_t> history(prompt.begin(), prompt.end());

  Timer t_prefill;
  const int64_t chunk = config.prefill_chunk > 0 ? config.prefill_chunk : int64_t(prompt.size());
  Tensor logits;
  for (int64_t s = 0; s < int64_t(prompt.size()); s += chunk) {
    const int64_t e = std::min<int64_t>(int64_t(prompt.size()), s + chunk);
    ForwardInput in;
    in.tokens = prompt.subspan(size_t(s), size_t(e - s));
    in.logits = e == int64_t(prompt.size()) ? LogitsMode::kLast : LogitsMode::kNone;
    logits = model.forward(in, cache);
  }
  r.prefill_seconds = t_prefill.seconds();
  if (config.max_tokens == 0) return r;

  Timer t_decode;
  for (int64_t step = 0; step < config.max_tokens; ++step) {
    const int64_t vocab = logits.size(1);
    const int32_t next = sampler.sample({logits.data_as<float>(), size_t(vocab)}, history);
    if (step == 0) {
      r.ttft_seconds = t_prefill.seconds();
      t_decode.reset();
    }
    r.tokens.push_back(next);
    history.push_back(next);
    const bool keep_going = on_token ? on_token(next) : true;
    if (std::find(stop.begin(), stop.end(), int64_t(next)) != stop.end()) {
      r.stopped_by_token = true;
      break;
    }
    if (!keep_going || step + 1 == config.max_tokens) break;
    const int32_t tok[1] = {next};
    ForwardInput in;
    in.tokens = tok;
    in.logits = LogitsMode::kLast;
    logits = model.forward(in, cache);
  }
  r.decode_seconds = r.tokens.size() > 1 ? t_decode.seconds() : 0.0;
  return r;
}

}  // namespace sieve::engine
