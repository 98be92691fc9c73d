// A Llama-family decoder (Llama 2/3.x, Mistral, Qwen2/2.5, Qwen3, SmolLM) on the CPU.
//
// forward() takes new tokens with explicit RoPE positions and an optional tree mask, appends their
// K/V to a KvCache and returns logits. Per layer: RMSNorm, q/k/v (+bias), [Qwen3 q/k RMSNorm], RoPE
// (rotate half), attention, o_proj, residual; RMSNorm, SwiGLU MLP, residual; then RMSNorm, lm_head.
// Causal blocks (prefill) go through sieve::attention (dense, or a selector's pattern); decode
// steps and tree blocks use an exact masked attention over the cache. Weights are memory-mapped
// (f32/bf16; f16 widened at load) and the matrices copied once into transparent huge pages
// (faster streaming in decode; SIEVE_WEIGHTS=mmap keeps them in the file mapping). One forward at
// a time per Model; parallel inside (OpenMP).
#pragma once

#include "sieve/core/tensor.h"
#include "sieve/engine/config.h"
#include "sieve/engine/kv_cache.h"
#include "sieve/engine/tree_mask.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

namespace sieve::attention {
class PatternSelector;
}

namespace sieve::engine {

enum class LogitsMode { kNone, kLast, kAll };

struct ForwardInput {
  /// New tokens, each in [0, vocab_size).
  std::span<const int32_t> tokens;
  /// RoPE position of each token; empty means cache.size() + i.
  std::span<const int64_t> positions;
  /// Mask among the new tokens (every cached row stays visible); null means causal.
  const TreeMask* maybe_tree = nullptr;
  /// Which rows get logits: none, the last token, or every token.
  LogitsMode logits = LogitsMode::kLast;
  /// Return those rows' final hidden states (after the last RMSNorm, [rows, hidden_size]) instead
  /// of logits; project() turns them into logits in pieces (long inputs, large vocabularies).
  bool return_hidden = false;
};

/// What the sparse prefill did, summed over layers and calls since the last reset.
struct AttentionStats {
  int64_t pattern_calls = 0;  // (layer, block) attention calls that went through a selector
  double block_density_sum = 0, token_density_sum = 0;
  double select_seconds = 0, attention_seconds = 0;
  double mean_block_density() const { return pattern_calls ? block_density_sum / double(pattern_calls) : 1.0; }
  double mean_token_density() const { return pattern_calls ? token_density_sum / double(pattern_calls) : 1.0; }
};

class Model {
 public:
  /// Loads `dir`/config.json and the safetensors weights (memory-mapped, matrices then copied to
  /// huge pages unless SIEVE_WEIGHTS=mmap).
  /// @throws sieve::Error for missing files, an unsupported architecture, missing tensors or
  ///         shape mismatches (each named)
  explicit Model(const std::string& dir);
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  const ModelConfig& config() const;
  const std::string& dir() const;
  /// dtype of the projection weights as stored ("f32", "bf16"; f16 is reported as loaded: "f32").
  DType weight_dtype() const;
  /// Bytes of weight data in the mapped files.
  int64_t weight_bytes() const;

  /// A cache sized for this model with room for `capacity` rows (grows on demand).
  KvCache make_cache(int64_t capacity = 0) const;

  /// Selector for causal blocks of new tokens; null (the default) means dense attention.
  void set_selector(std::shared_ptr<const attention::PatternSelector> selector);
  const attention::PatternSelector* selector() const;
  /// Blocks shorter than this use the engine's own exact attention rather than an executor
  /// (default 16; selectors only see blocks at least this long).
  void set_executor_min_tokens(int64_t n);
  const AttentionStats& attention_stats() const;
  void reset_attention_stats();

  /// Optional progress callback for long blocks: called after each layer with (done, total).
  void set_layer_callback(std::function<void(int64_t, int64_t)> callback);

  /// Runs the new tokens, appends their K/V to `cache` and returns logits [rows, vocab_size] f32
  /// (rows = 0, 1 or tokens.size() by `in.logits`).
  /// @throws sieve::Error for an out-of-range token id, a negative position, mismatched sizes
  ///         or a cache made for another shape
  Tensor forward(const ForwardInput& in, KvCache& cache);

  /// Logits [rows, vocab_size] of final hidden states `hidden` [rows, hidden_size] (lm_head).
  Tensor project(const float* hidden, int64_t rows) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sieve::engine
