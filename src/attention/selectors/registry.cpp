// Name -> factory table of every selector. Adding a selector is one include and one line here;
// the order of the table is the order of selector_names() and of `sieve attn --method all`.
#include "sieve/attention/selector.h"
#include "sieve/attention/selectors/dense.h"
#include "sieve/attention/selectors/flex_prefill.h"
#include "sieve/attention/selectors/rr_attention.h"
#include "sieve/attention/selectors/sample_attention.h"
#include "sieve/attention/selectors/streaming.h"
#include "sieve/attention/selectors/unisparse.h"
#include "sieve/attention/selectors/vertical_slash.h"
#include "sieve/attention/selectors/xattention.h"
#include "sieve/core/error.h"

namespace sieve::attention {

namespace {

template <class T>
std::unique_ptr<PatternSelector> make() {
  return std::make_unique<T>();
}

struct Entry {
  const char* name;
  std::unique_ptr<PatternSelector> (*make)();
};

constexpr Entry kSelectors[] = {
    {"dense", &make<DenseSelector>},
    {"streaming", &make<StreamingSelector>},
    {"sample", &make<SampleAttentionSelector>},
    {"rr", &make<RRSelector>},
    {"unisparse", &make<UniSparseSelector>},
    {"xattn", &make<XAttentionSelector>},
    {"vslash", &make<VerticalSlashSelector>},
    {"flexprefill", &make<FlexPrefillSelector>},
};

}  // namespace

std::vector<std::string> selector_names() {
  std::vector<std::string> names;
  for (const Entry& e : kSelectors) names.emplace_back(e.name);
  return names;
}

std::unique_ptr<PatternSelector> make_selector(std::string_view name) {
  for (const Entry& e : kSelectors)
    if (name == e.name) return e.make();
  std::string known;
  for (const Entry& e : kSelectors) known += std::string(known.empty() ? "" : ", ") + e.name;
  SIEVE_FAIL("unknown attention method '{}' (known: {})", name, known);
}

std::unique_ptr<PatternSelector> make_selector(std::string_view name,
                                               const std::vector<std::string>& settings) {
  auto s = make_selector(name);
  for (const std::string& kv : settings) {
    const size_t eq = kv.find('=');
    SIEVE_CHECK(eq != std::string::npos && eq > 0,
                "selector '{}': setting '{}' must look like key=value", name, kv);
    std::string_view key = std::string_view(kv).substr(0, eq);
    // "name.key" (as `sieve attn --set` writes it) names this selector's key
    const size_t dot = key.find('.');
    if (dot != std::string_view::npos) {
      SIEVE_CHECK(key.substr(0, dot) == name, "selector '{}': setting '{}' is for method '{}'", name,
                  kv, key.substr(0, dot));
      key = key.substr(dot + 1);
    }
    s->set(key, std::string_view(kv).substr(eq + 1));
  }
  return s;
}

}  // namespace sieve::attention
