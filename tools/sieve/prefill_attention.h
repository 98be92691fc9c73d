// --attention NAME and --set key=value of the engine commands (sieve generate, sieve perplexity).
#pragma once

#include "sieve/attention/selector.h"

#include <memory>
#include <string>
#include <vector>

namespace sieve::tool {

/// The prefill selector for `--attention name` configured by `--set` (null for "dense", whose
/// settings are an error). Built before the model loads, so a bad name or setting fails at once.
std::shared_ptr<const attention::PatternSelector> prefill_selector(
    const std::string& name, const std::vector<std::string>& settings);

}  // namespace sieve::tool
