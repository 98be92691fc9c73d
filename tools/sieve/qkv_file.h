// The Q/K/V inputs shared by `sieve attn` and `sieve attn eval`: the tensors of a safetensors dump,
// and the planted suite's configuration from the commands' options.
#pragma once

#include <string>

#include "sieve/attention/synthetic.h"
#include "sieve/core/safetensors.h"
#include "sieve/core/tensor.h"

namespace sieve::tool {

/// Tensor `name` ("q", "k" or "v") of `f` as a [heads, length, head_dim] view: 3 dimensions, or 4
/// with a leading batch of 1 (dropped). Throws sieve::Error naming the file and the tensor when
/// it is missing, has another rank or batch, or holds a non-finite value.
TensorView load_qkv(const SafetensorsFile& f, const std::string& name);

/// The planted suite at length 0 (callers set seq_len) from the options both commands share;
/// throws sieve::Error for an unknown dtype or a negative number of slash lines.
attention::SyntheticConfig planted_suite_config(int64_t heads, int64_t kv_heads, int64_t head_dim,
                                                const std::string& dtype, uint64_t seed,
                                                double strength, int slashes);

}  // namespace sieve::tool
