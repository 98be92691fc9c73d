// Q/K/V tensors of a safetensors dump, shared by `sieve attn` and `sieve attn eval`.
#pragma once

#include <string>

#include "sieve/core/safetensors.h"
#include "sieve/core/tensor.h"

namespace sieve::tool {

/// Tensor `name` ("q", "k" or "v") of `f` as a [heads, length, head_dim] view: 3 dimensions, or 4
/// with a leading batch of 1 (dropped). Throws sieve::Error naming the file and the tensor when
/// it is missing, has another rank or batch, or holds a non-finite value.
TensorView load_qkv(const SafetensorsFile& f, const std::string& name);

}  // namespace sieve::tool
