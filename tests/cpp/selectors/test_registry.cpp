// The six selectors are registered under their names and expose their settings.
#include "common.h"
#include "sieve/core/threading.h"

namespace sieve::attention::selector_test {
namespace {

TEST(SelectorRegistry, MethodsAreRegisteredWithTheirSettings) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> expected = {
      {"sample", {"alpha", "window_ratio", "sample_ratio", "chunk"}},
      {"rr", {"stride", "tau", "offset", "key_agg", "outliers", "moments", "variance"}},
      {"unisparse", {"granularities", "top_p", "combine", "moments"}},
      {"xattn", {"stride", "tau"}},
      {"vslash", {"last_q", "vertical_size", "slash_size", "force_columns", "force_diagonals"}},
      {"flexprefill", {"gamma", "tau", "min_budget", "max_budget"}}};
  const auto names = selector_names();
  for (const auto& [name, keys] : expected) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
    auto s = make_selector(name);
    EXPECT_EQ(s->name(), name);
    const auto settings = s->settings();
    for (const auto& key : keys) EXPECT_TRUE(settings.count(key)) << name << " lacks " << key;
    for (const auto& key : {"block_q", "block_k", "dense_below", "share_kv_head"})
      EXPECT_TRUE(settings.count(key)) << name << " lacks common key " << key;
    // Settings round-trip through set().
    auto t = make_selector(name);
    for (const auto& [k, v] : settings) t->set(k, v);
    EXPECT_EQ(t->settings(), settings) << name;
  }
}

TEST(SelectorRegistry, PatternsDoNotDependOnTheThreadCount) {
  const Workload& w = shared_workload(1024);
  for (const std::string name : {"sample", "rr", "unisparse", "xattn", "vslash", "flexprefill"}) {
    const auto sel = make(name, {"dense_below=0"});
    set_num_threads(1);
    const SparsePattern a = run(*sel, w);
    set_num_threads(3);
    const SparsePattern b = run(*sel, w);
    set_num_threads(0);
    EXPECT_EQ(a.block_indices, b.block_indices) << name;
    EXPECT_EQ(a.block_indptr, b.block_indptr) << name;
    EXPECT_EQ(a.columns, b.columns) << name;
    EXPECT_EQ(a.band, b.band) << name;
  }
}

}  // namespace
}  // namespace sieve::attention::selector_test
