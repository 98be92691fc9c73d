// Model configuration of a Llama-family decoder read from a Hugging Face config.json.
//
// Covers LlamaForCausalLM (Llama 2/3.x, SmolLM), MistralForCausalLM, Qwen2ForCausalLM (q/k/v bias)
// and Qwen3ForCausalLM (per-head q/k RMSNorm): GQA, explicit head_dim, tied embeddings, sliding
// windows, RoPE theta at the top level or under `rope_parameters` (transformers 5), and the
// `linear` and `llama3` RoPE frequency scalings. Anything else is refused with an error that
// names the unsupported field or architecture, never silently approximated.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sieve::engine {

enum class RopeScaling { kNone, kLinear, kLlama3 };

struct RopeConfig {
  double theta = 10000.0;
  RopeScaling scaling = RopeScaling::kNone;
  double factor = 1.0;              // linear and llama3
  double low_freq_factor = 1.0;     // llama3
  double high_freq_factor = 4.0;    // llama3
  int64_t original_max_position = 8192;  // llama3
};

struct ModelConfig {
  std::string architecture;  // e.g. "LlamaForCausalLM"
  std::string model_type;    // "llama", "mistral", "qwen2", "qwen3"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;      // query heads
  int64_t num_kv_heads = 0;   // GQA: num_heads % num_kv_heads == 0
  int64_t head_dim = 0;       // explicit in config.json or hidden_size / num_heads
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;      // biases on q_proj, k_proj, v_proj
  bool o_bias = false;        // bias on o_proj
  bool mlp_bias = false;      // biases on gate/up/down
  bool qk_norm = false;       // Qwen3 per-head RMSNorm of q and k before RoPE
  /// Per layer: attention window in tokens (key visible when pos_q - pos_k < window); 0 = full.
  std::vector<int64_t> layer_window;
  int64_t bos_token_id = -1;          // -1 when absent
  std::vector<int64_t> eos_token_ids;  // may be empty

  int64_t group_size() const { return num_heads / num_kv_heads; }
  /// Number of parameters implied by the shapes (embeddings counted once when tied).
  int64_t num_parameters() const;
  /// Throws sieve::Error when sizes are inconsistent (non-positive, GQA not divisible, ...).
  void validate() const;
  /// One-line summary for logs: "llama: 6 layers, hidden 384, heads 6/2 x 64, vocab 4096".
  std::string summary() const;
};

/// Parses config.json text; `source` names the file in error messages.
/// @throws sieve::Error for invalid JSON, a missing required field, an unsupported architecture
///         (named) or an unsupported RoPE scaling type (named)
ModelConfig parse_model_config(std::string_view json_text, const std::string& source = "config.json");

/// Reads `dir`/config.json (or `dir` itself when it is a file).
/// @throws sieve::Error when the file is missing or invalid
ModelConfig load_model_config(const std::string& dir);

/// Architectures (config.json "architectures"[0]) this engine runs.
std::vector<std::string> supported_architectures();

}  // namespace sieve::engine
