#include "sieve/engine/config.h"

#include "sieve/core/error.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>
#include <sys/stat.h>

namespace sieve::engine {

namespace {

using nlohmann::json;

enum class Family { kLlama, kMistral, kQwen2, kQwen3 };

struct ArchName {
  const char* architecture;
  const char* model_type;
  Family family;
};

constexpr ArchName kArchitectures[] = {
    {"LlamaForCausalLM", "llama", Family::kLlama},
    {"MistralForCausalLM", "mistral", Family::kMistral},
    {"Qwen2ForCausalLM", "qwen2", Family::kQwen2},
    {"Qwen3ForCausalLM", "qwen3", Family::kQwen3},
};

std::string known_list() {
  std::string s;
  for (const auto& a : kArchitectures) s += (s.empty() ? "" : ", ") + std::string(a.architecture);
  return s;
}

bool present(const json& j, const char* key) { return j.contains(key) && !j.at(key).is_null(); }

int64_t get_int(const json& j, const char* key, const std::string& source) {
  SIEVE_CHECK(present(j, key), "{}: missing required field '{}'", source, key);
  const json& v = j.at(key);
  SIEVE_CHECK(v.is_number_integer(), "{}: field '{}' must be an integer, got {}", source, key,
              v.dump());
  return v.get<int64_t>();
}

int64_t get_int_or(const json& j, const char* key, int64_t fallback, const std::string& source) {
  return present(j, key) ? get_int(j, key, source) : fallback;
}

double get_double_or(const json& j, const char* key, double fallback, const std::string& source) {
  if (!present(j, key)) return fallback;
  const json& v = j.at(key);
  SIEVE_CHECK(v.is_number(), "{}: field '{}' must be a number, got {}", source, key, v.dump());
  return v.get<double>();
}

bool get_bool_or(const json& j, const char* key, bool fallback, const std::string& source) {
  if (!present(j, key)) return fallback;
  const json& v = j.at(key);
  SIEVE_CHECK(v.is_boolean(), "{}: field '{}' must be true or false, got {}", source, key,
              v.dump());
  return v.get<bool>();
}

/// An int, a list of ints, or null -> list.
std::vector<int64_t> get_id_list(const json& j, const char* key, const std::string& source) {
  std::vector<int64_t> out;
  if (!present(j, key)) return out;
  const json& v = j.at(key);
  if (v.is_number_integer()) {
    out.push_back(v.get<int64_t>());
  } else {
    SIEVE_CHECK(v.is_array(), "{}: field '{}' must be an integer or a list, got {}", source, key,
                v.dump());
    for (const auto& e : v) {
      SIEVE_CHECK(e.is_number_integer(), "{}: '{}' holds a non-integer {}", source, key, e.dump());
      out.push_back(e.get<int64_t>());
    }
  }
  return out;
}

// RoPE: transformers 5 writes {"rope_parameters": {"rope_theta", "rope_type", ...}}; older files
// write a top-level "rope_theta" and an optional "rope_scaling" {"type"|"rope_type", "factor", ...}.
RopeConfig parse_rope(const json& j, const std::string& source) {
  RopeConfig rope;
  const json* params = nullptr;
  if (present(j, "rope_parameters")) {
    params = &j.at("rope_parameters");
    SIEVE_CHECK(params->is_object(), "{}: 'rope_parameters' must be an object", source);
    // Models with several attention kinds nest one object per kind; this engine has one kind.
    if (!params->contains("rope_theta") && !params->contains("rope_type") &&
        params->contains("full_attention")) {
      params = &params->at("full_attention");
    }
  }
  const std::string psrc = source + " rope_parameters";
  rope.theta = get_double_or(j, "rope_theta", 10000.0, source);
  if (params) rope.theta = get_double_or(*params, "rope_theta", rope.theta, psrc);
  SIEVE_CHECK(rope.theta > 0, "{}: rope_theta must be positive, got {}", source, rope.theta);

  const json* scaling = nullptr;
  std::string ssrc;
  if (params && (params->contains("rope_type") || params->contains("type"))) {
    scaling = params;
    ssrc = psrc;
  } else if (present(j, "rope_scaling")) {
    scaling = &j.at("rope_scaling");
    ssrc = source + " rope_scaling";
    SIEVE_CHECK(scaling->is_object(), "{}: 'rope_scaling' must be an object or null", source);
  }
  const double partial = get_double_or(j, "partial_rotary_factor", 1.0, source);
  SIEVE_CHECK(partial == 1.0, "{}: partial_rotary_factor {} is not supported (only 1.0)", source,
              partial);
  if (!scaling) return rope;

  std::string type = "default";
  if (present(*scaling, "rope_type")) {
    type = scaling->at("rope_type").get<std::string>();
  } else if (present(*scaling, "type")) {
    type = scaling->at("type").get<std::string>();
  }
  if (type == "default") return rope;
  if (type == "linear") {
    rope.scaling = RopeScaling::kLinear;
    rope.factor = get_double_or(*scaling, "factor", 1.0, ssrc);
  } else if (type == "llama3") {
    rope.scaling = RopeScaling::kLlama3;
    rope.factor = get_double_or(*scaling, "factor", 8.0, ssrc);
    rope.low_freq_factor = get_double_or(*scaling, "low_freq_factor", 1.0, ssrc);
    rope.high_freq_factor = get_double_or(*scaling, "high_freq_factor", 4.0, ssrc);
    rope.original_max_position =
        get_int_or(*scaling, "original_max_position_embeddings", 8192, ssrc);
    SIEVE_CHECK(rope.high_freq_factor > rope.low_freq_factor,
                "{}: llama3 RoPE needs high_freq_factor > low_freq_factor, got {} and {}", ssrc,
                rope.high_freq_factor, rope.low_freq_factor);
    SIEVE_CHECK(rope.original_max_position > 0,
                "{}: original_max_position_embeddings must be positive", ssrc);
  } else {
    SIEVE_FAIL("{}: unsupported RoPE scaling type '{}' (supported: default, linear, llama3)", ssrc,
               type);
  }
  SIEVE_CHECK(rope.factor > 0, "{}: RoPE scaling factor must be positive, got {}", ssrc,
              rope.factor);
  return rope;
}

// Per-layer attention window. transformers 5 may list "layer_types"; older Qwen2/3 configs use
// use_sliding_window + max_window_layers (layers >= max_window_layers slide); Mistral slides on
// every layer when sliding_window is set.
std::vector<int64_t> parse_windows(const json& j, Family family, int64_t num_layers,
                                   const std::string& source) {
  std::vector<int64_t> win(size_t(num_layers), 0);
  const int64_t window = get_int_or(j, "sliding_window", 0, source);
  if (present(j, "layer_types")) {
    const json& lt = j.at("layer_types");
    SIEVE_CHECK(lt.is_array() && int64_t(lt.size()) == num_layers,
                "{}: 'layer_types' must list {} entries", source, num_layers);
    for (int64_t i = 0; i < num_layers; ++i) {
      const std::string kind = lt.at(size_t(i)).get<std::string>();
      if (kind == "sliding_attention") {
        SIEVE_CHECK(window > 0, "{}: layer {} is sliding_attention but sliding_window is not set",
                    source, i);
        win[size_t(i)] = window;
      } else {
        SIEVE_CHECK(kind == "full_attention", "{}: unsupported layer type '{}' at layer {}", source,
                    kind, i);
      }
    }
    return win;
  }
  if (window <= 0) return win;
  if (family == Family::kMistral) {
    for (auto& w : win) w = window;
  } else if (family == Family::kQwen2 || family == Family::kQwen3) {
    if (get_bool_or(j, "use_sliding_window", false, source)) {
      const int64_t first = get_int_or(j, "max_window_layers", num_layers, source);
      for (int64_t i = first; i < num_layers; ++i) win[size_t(i)] = window;
    }
  }
  return win;
}

}  // namespace

std::vector<std::string> supported_architectures() {
  std::vector<std::string> out;
  for (const auto& a : kArchitectures) out.emplace_back(a.architecture);
  return out;
}

ModelConfig parse_model_config(std::string_view json_text, const std::string& source) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    SIEVE_FAIL("{}: invalid JSON ({})", source, e.what());
  }
  SIEVE_CHECK(j.is_object(), "{}: expected a JSON object", source);

  ModelConfig c;
  const ArchName* arch = nullptr;
  try {
    if (present(j, "architectures")) {
      const json& a = j.at("architectures");
      SIEVE_CHECK(a.is_array() && !a.empty() && a.at(0).is_string(),
                  "{}: 'architectures' must be a non-empty list of names", source);
      c.architecture = a.at(0).get<std::string>();
      for (const auto& k : kArchitectures) {
        if (c.architecture == k.architecture) arch = &k;
      }
      SIEVE_CHECK(arch, "{}: unsupported architecture '{}' (supported: {})", source,
                  c.architecture, known_list());
    }
    if (present(j, "model_type")) c.model_type = j.at("model_type").get<std::string>();
    if (!arch) {
      SIEVE_CHECK(!c.model_type.empty(), "{}: neither 'architectures' nor 'model_type' is given",
                  source);
      for (const auto& k : kArchitectures) {
        if (c.model_type == k.model_type) arch = &k;
      }
      SIEVE_CHECK(arch, "{}: unsupported model_type '{}' (supported: {})", source, c.model_type,
                  known_list());
      c.architecture = arch->architecture;
    }
    if (c.model_type.empty()) c.model_type = arch->model_type;
    const Family family = arch->family;

    if (present(j, "hidden_act")) {
      const std::string act = j.at("hidden_act").get<std::string>();
      SIEVE_CHECK(act == "silu" || act == "swish",
                  "{}: unsupported hidden_act '{}' (the Llama family uses silu)", source, act);
    }
    c.vocab_size = get_int(j, "vocab_size", source);
    c.hidden_size = get_int(j, "hidden_size", source);
    c.intermediate_size = get_int(j, "intermediate_size", source);
    c.num_layers = get_int(j, "num_hidden_layers", source);
    c.num_heads = get_int(j, "num_attention_heads", source);
    c.num_kv_heads = get_int_or(j, "num_key_value_heads", c.num_heads, source);
    SIEVE_CHECK(c.num_heads > 0, "{}: num_attention_heads must be positive", source);
    c.head_dim = get_int_or(j, "head_dim", c.hidden_size / c.num_heads, source);
    c.rms_norm_eps = get_double_or(j, "rms_norm_eps", 1e-6, source);
    c.max_position_embeddings = get_int_or(j, "max_position_embeddings", 0, source);
    c.tie_word_embeddings = get_bool_or(j, "tie_word_embeddings", false, source);
    c.rope = parse_rope(j, source);
    const bool attention_bias = get_bool_or(j, "attention_bias", false, source);
    switch (family) {
      case Family::kLlama:
        c.qkv_bias = c.o_bias = attention_bias;
        c.mlp_bias = get_bool_or(j, "mlp_bias", false, source);
        break;
      case Family::kMistral:
        break;
      case Family::kQwen2:  // q/k/v always carry a bias, o_proj never
        c.qkv_bias = true;
        break;
      case Family::kQwen3:
        c.qkv_bias = c.o_bias = attention_bias;
        c.qk_norm = true;
        break;
    }
    SIEVE_CHECK(c.num_layers > 0, "{}: num_hidden_layers must be positive", source);
    c.layer_window = parse_windows(j, family, c.num_layers, source);
    const auto bos = get_id_list(j, "bos_token_id", source);
    if (!bos.empty()) c.bos_token_id = bos.front();
    c.eos_token_ids = get_id_list(j, "eos_token_id", source);
  } catch (const nlohmann::json::exception& e) {
    SIEVE_FAIL("{}: a field has the wrong type ({})", source, e.what());
  }
  try {
    c.validate();
  } catch (const Error& e) {
    SIEVE_FAIL("{}: {}", source, e.what());
  }
  return c;
}

ModelConfig load_model_config(const std::string& dir) {
  struct stat st {};
  SIEVE_CHECK(::stat(dir.c_str(), &st) == 0, "model path '{}' does not exist", dir);
  const std::string path = S_ISDIR(st.st_mode) ? dir + "/config.json" : dir;
  std::ifstream in(path, std::ios::binary);
  SIEVE_CHECK(in.good(), "cannot open '{}' (a model folder needs config.json)", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_model_config(ss.str(), path);
}

void ModelConfig::validate() const {
  SIEVE_CHECK(vocab_size > 0, "vocab_size must be positive, got {}", vocab_size);
  SIEVE_CHECK(hidden_size > 0, "hidden_size must be positive, got {}", hidden_size);
  SIEVE_CHECK(intermediate_size > 0, "intermediate_size must be positive, got {}",
              intermediate_size);
  SIEVE_CHECK(num_layers > 0, "num_hidden_layers must be positive, got {}", num_layers);
  SIEVE_CHECK(num_heads > 0 && num_kv_heads > 0,
              "num_attention_heads and num_key_value_heads must be positive, got {} and {}",
              num_heads, num_kv_heads);
  SIEVE_CHECK(num_heads % num_kv_heads == 0,
              "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", num_heads,
              num_kv_heads);
  SIEVE_CHECK(head_dim > 0 && head_dim % 2 == 0, "head_dim must be positive and even, got {}",
              head_dim);
  SIEVE_CHECK(rms_norm_eps > 0, "rms_norm_eps must be positive, got {}", rms_norm_eps);
  SIEVE_CHECK(int64_t(layer_window.size()) == num_layers, "layer_window must have {} entries",
              num_layers);
  for (int64_t e : eos_token_ids) {
    SIEVE_CHECK(e >= 0 && e < vocab_size, "eos_token_id {} is outside the vocabulary [0, {})", e,
                vocab_size);
  }
  SIEVE_CHECK(bos_token_id < vocab_size, "bos_token_id {} is outside the vocabulary [0, {})",
              bos_token_id, vocab_size);
}

int64_t ModelConfig::num_parameters() const {
  const int64_t q = num_heads * head_dim, kv = num_kv_heads * head_dim;
  int64_t per_layer = 2 * hidden_size                                  // two RMSNorms
                      + hidden_size * q + 2 * hidden_size * kv + q * hidden_size  // q k v o
                      + 3 * hidden_size * intermediate_size;           // gate up down
  if (qkv_bias) per_layer += q + 2 * kv;
  if (o_bias) per_layer += hidden_size;
  if (mlp_bias) per_layer += 2 * intermediate_size + hidden_size;
  if (qk_norm) per_layer += 2 * head_dim;
  const int64_t emb = vocab_size * hidden_size * (tie_word_embeddings ? 1 : 2);
  return emb + num_layers * per_layer + hidden_size;
}

std::string ModelConfig::summary() const {
  std::string extras;
  if (qkv_bias) extras += ", qkv bias";
  if (qk_norm) extras += ", q/k norm";
  if (tie_word_embeddings) extras += ", tied embeddings";
  if (rope.scaling == RopeScaling::kLlama3) extras += fmt::format(", llama3 rope x{}", rope.factor);
  if (rope.scaling == RopeScaling::kLinear) extras += fmt::format(", linear rope x{}", rope.factor);
  return fmt::format("{}: {} layers, hidden {}, heads {}/{} x {}, mlp {}, vocab {}, rope theta {:g}{}",
                     model_type, num_layers, hidden_size, num_heads, num_kv_heads, head_dim,
                     intermediate_size, vocab_size, rope.theta, extras);
}

}  // namespace sieve::engine
