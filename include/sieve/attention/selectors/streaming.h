// The `streaming` selector: StreamingLLM (Xiao et al., ICLR 2024) attention sinks plus a local
// window, called A-shape in MInference. No estimation: the pattern depends only on the sizes.
//   mode=block (default): per query block, key blocks [0, sink_blocks) and the local_blocks key
//     blocks ending at the query block's last visible key block (diagonal included); defaults 1 + 3
//     blocks of 128, the block-streaming setting of mit-han-lab/Block-Sparse-Attention.
//   mode=token: key columns [0, sink_tokens) and a band of local_tokens keys ending at each
//     query's own position; defaults 64 + 256 tokens (the same library's token-streaming setting).
// Input q [Hq, Lq, D], k [Hkv, Lk, D]; the same pattern for every head.
#pragma once

#include "sieve/attention/selector.h"

namespace sieve::attention {

struct StreamingConfig {
  enum class Mode { kBlock, kToken } mode = Mode::kBlock;
  int64_t sink_blocks = 1;
  int64_t local_blocks = 3;  // includes the diagonal block
  int64_t sink_tokens = 64;
  int64_t local_tokens = 256;  // includes the query's own key
};

class StreamingSelector final : public PatternSelector {
 public:
  explicit StreamingSelector(StreamingConfig config = {}) : config_(config) {}
  std::string name() const override { return "streaming"; }
  void set(std::string_view key, std::string_view value) override;
  std::map<std::string, std::string> settings() const override;
  void validate_config() const override;
  const StreamingConfig& config() const { return config_; }

 protected:
  SparsePattern estimate(const TensorView& q, const TensorView& k, const AttentionOptions& opts,
                         const AttentionShape& shape) const override;

 private:
  StreamingConfig config_;
};

}  // namespace sieve::attention
