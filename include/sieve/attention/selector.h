// Pattern selectors: estimate where attention mass is, cheaply, and write a SparsePattern.
//
// Selectors never execute attention. Each selector is a class registered by name
// (src/attention/selectors/registry.cpp); settings are strings "key=value" so that the command
// line, Python and config files share one path. Every selector understands the common keys of
// SelectorCommon below plus its own (documented in docs/methods.md and by settings()).
#pragma once

#include "sieve/attention/params.h"
#include "sieve/attention/sparse_pattern.h"

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sieve::attention {

/// Settings every selector shares.
struct SelectorCommon {
  int block_q = 128;
  int block_k = 128;
  /// Below this key length the selector returns the dense pattern (selectors lose there).
  int64_t dense_below = 0;
  /// One pattern per KV head (union over its query heads) instead of one per query head.
  bool share_kv_head = false;
};

class PatternSelector {
 public:
  virtual ~PatternSelector() = default;
  /// Registry name, e.g. "rr".
  virtual std::string name() const = 0;
  /// Sets one setting; throws sieve::Error for an unknown key or an invalid value.
  virtual void set(std::string_view key, std::string_view value);
  /// Current settings as key -> value strings (common keys included).
  virtual std::map<std::string, std::string> settings() const;
  /// Checks the whole configuration; called by select(). Throws sieve::Error when invalid.
  virtual void validate_config() const;

  /// @param q [num_heads_q, seq_len_q, head_dim], k [num_heads_kv, seq_len_k, head_dim]
  /// @return a validated pattern with the configured block sizes (dense below `dense_below`)
  SparsePattern select(const TensorView& q, const TensorView& k, const AttentionOptions& opts) const;

  const SelectorCommon& common() const { return common_; }

 protected:
  /// The method itself; called only when seq_len_k >= dense_below, inputs already checked.
  virtual SparsePattern estimate(const TensorView& q, const TensorView& k,
                                 const AttentionOptions& opts, const AttentionShape& shape) const = 0;
  SelectorCommon common_;
};

/// Creates a registered selector; throws sieve::Error listing the known names otherwise.
std::unique_ptr<PatternSelector> make_selector(std::string_view name);
/// Creates and applies "key=value" settings in order; a key may carry the selector's name as a
/// prefix ("rr.tau=0.95" for "rr"), and a prefix naming another method is an error.
std::unique_ptr<PatternSelector> make_selector(std::string_view name,
                                               const std::vector<std::string>& settings);
/// Registered names in a stable order.
std::vector<std::string> selector_names();

/// Setting parsers shared by every selector's set(): the whole value must parse, otherwise
/// sieve::Error "selector 'NAME': setting 'KEY' needs ..., got 'VALUE'".
int64_t parse_setting_int(std::string_view selector, std::string_view key, std::string_view value);
/// true/false, 1/0, yes/no, on/off.
bool parse_setting_bool(std::string_view selector, std::string_view key, std::string_view value);

}  // namespace sieve::attention
