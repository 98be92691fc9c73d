// KV cache of a decoder: per layer K and V as [num_kv_heads, capacity, head_dim] f32, plus the RoPE
// position of every row.
//
// Rows are appended by Model::forward. truncate(n) drops rows >= n (rollback after rejected
// speculation); keep_rows(base, rows) gathers accepted rows of a verified tree into
// [base, base + rows.size()) (EAGLE/Medusa-style compaction). Both are exact: rows are copied
// bit for bit, so a forward afterwards equals one on a cache built fresh from the kept tokens.
#pragma once

#include "sieve/core/tensor.h"

#include <cstdint>
#include <span>
#include <vector>

namespace sieve::engine {

class KvCache {
 public:
  KvCache() = default;
  /// @param capacity initial rows per layer (grows on demand; 0 picks a small default)
  KvCache(int64_t num_layers, int64_t num_kv_heads, int64_t head_dim, int64_t capacity = 0);

  int64_t num_layers() const { return num_layers_; }
  int64_t num_kv_heads() const { return num_kv_heads_; }
  int64_t head_dim() const { return head_dim_; }
  /// Committed rows.
  int64_t size() const { return size_; }
  int64_t capacity() const { return capacity_; }
  /// RoPE position of each committed row.
  std::span<const int64_t> positions() const { return {positions_.data(), size_t(size_)}; }
  /// Bytes held by K and V.
  int64_t nbytes() const;

  /// Grows capacity to at least `rows`, keeping contents.
  void reserve(int64_t rows);
  /// Keeps rows [0, n). @throws sieve::Error when n > size()
  void truncate(int64_t n);
  void clear() { truncate(0); }
  /// Moves rows[i] to row base + i for each i and sets size() = base + rows.size(). `rows` must be
  /// strictly increasing, each in [base, size()).  @throws sieve::Error otherwise
  void keep_rows(int64_t base, std::span<const int64_t> rows);

  /// Appends `positions.size()` rows (contents to be written by the caller) and returns the first
  /// new row index.
  int64_t append(std::span<const int64_t> positions);

  /// K / V of `layer`: [num_kv_heads, size(), head_dim] f32 strided views.
  TensorView keys(int64_t layer) const { return view(k_, layer); }
  TensorView values(int64_t layer) const { return view(v_, layer); }
  float* key_row(int64_t layer, int64_t head, int64_t row) { return row_ptr(k_, layer, head, row); }
  float* value_row(int64_t layer, int64_t head, int64_t row) {
    return row_ptr(v_, layer, head, row);
  }
  const float* key_row(int64_t layer, int64_t head, int64_t row) const {
    return row_ptr(k_, layer, head, row);
  }
  const float* value_row(int64_t layer, int64_t head, int64_t row) const {
    return row_ptr(v_, layer, head, row);
  }

 private:
  TensorView view(const std::vector<Tensor>& t, int64_t layer) const;
  float* row_ptr(const std::vector<Tensor>& t, int64_t layer, int64_t head, int64_t row) const {
    return t[size_t(layer)].data_as<float>() + (head * capacity_ + row) * head_dim_;
  }

  int64_t num_layers_ = 0, num_kv_heads_ = 0, head_dim_ = 0;
  int64_t size_ = 0, capacity_ = 0;
  std::vector<Tensor> k_, v_;  // per layer [num_kv_heads, capacity, head_dim]
  std::vector<int64_t> positions_;
};

}  // namespace sieve::engine
