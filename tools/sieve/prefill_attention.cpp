#include "prefill_attention.h"

#include "sieve/core/error.h"

namespace sieve::tool {

std::shared_ptr<const attention::PatternSelector> prefill_selector(
    const std::string& name, const std::vector<std::string>& settings) {
  if (name == "dense") {
    SIEVE_CHECK(settings.empty(), "--set needs a sparse --attention method (dense has no settings)");
    return nullptr;
  }
  return attention::make_selector(name, settings);
}

}  // namespace sieve::tool
