// Model weights from safetensors: one model.safetensors or shards listed in
// model.safetensors.index.json, memory-mapped (sieve::SafetensorsFile), looked up by tensor name.
//
// Every lookup checks that the tensor exists and has the expected shape and a float dtype, and
// throws sieve::Error naming the tensor, the file and the expected vs found shape otherwise.
#pragma once

#include "sieve/core/safetensors.h"
#include "sieve/core/tensor.h"

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sieve::engine {

class WeightStore {
 public:
  /// Opens `dir`/model.safetensors, or the shards named by `dir`/model.safetensors.index.json.
  /// @throws sieve::Error when neither exists, the index is invalid, a shard is missing or corrupt
  explicit WeightStore(const std::string& dir);
  WeightStore(const WeightStore&) = delete;
  WeightStore& operator=(const WeightStore&) = delete;

  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  /// View of tensor `name` (read-only memory of the mapping), checked against `shape`.
  /// @throws sieve::Error when missing, not F32/BF16/F16, or of another shape
  TensorView get(const std::string& name, std::initializer_list<int64_t> shape) const;
  /// Names of all tensors, sorted.
  std::vector<std::string> names() const;
  /// Files opened (one, or the shards).
  std::vector<std::string> files() const;
  /// Total bytes of tensor data over all files.
  int64_t total_bytes() const;
  /// Reads one byte of every page of tensor data, so that page faults happen at load time and not
  /// inside the first (timed) forward passes.
  void prefault() const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;
};

}  // namespace sieve::engine
