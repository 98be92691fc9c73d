// safetensors files: memory-mapped reading and atomic writing.
//
// Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape,
// data_offsets: [begin, end]}, "__metadata__": {...}}, then the data. Reading validates everything
// (header bounds, JSON, dtype names, offsets inside the file and consistent with shape x dtype
// size) and throws sieve::Error naming the file and the problem; corrupt input never crashes.
// Writing goes to "<path>.tmp" and renames, so a failed write leaves no half-written file.
#pragma once

#include "sieve/core/tensor.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sieve {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;            // as in the file: "F32", "BF16", "F16", "I64", ...
  std::vector<int64_t> shape;
  const void* data = nullptr;   // points into the mapping
  int64_t nbytes = 0;
};

class SafetensorsFile {
 public:
  /// Maps and validates `path`. @throws sieve::Error
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  /// @throws sieve::Error when missing
  const SafetensorsEntry& at(const std::string& name) const;
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// View of a float tensor (F32/BF16/F16) pointing into the mapping (read-only in practice).
  /// @throws sieve::Error when missing or not a float dtype
  TensorView view(const std::string& name) const;

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

/// Writes tensors (float dtypes, any strides; stored contiguous) atomically.
void save_safetensors(const std::string& path, const std::map<std::string, TensorView>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace sieve
