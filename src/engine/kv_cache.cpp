#include "sieve/engine/kv_cache.h"

#include "sieve/core/error.h"

#include <algorithm>
#include <cstring>

namespace sieve::engine {

KvCache::KvCache(int64_t num_layers, int64_t num_kv_heads, int64_t head_dim, int64_t capacity)
    : num_layers_(num_layers), num_kv_heads_(num_kv_heads), head_dim_(head_dim) {
  SIEVE_CHECK(num_layers > 0 && num_kv_heads > 0 && head_dim > 0,
              "KvCache needs positive sizes, got layers {}, kv heads {}, head_dim {}", num_layers,
              num_kv_heads, head_dim);
  SIEVE_CHECK(capacity >= 0, "KvCache capacity must be non-negative, got {}", capacity);
  k_.resize(size_t(num_layers));
  v_.resize(size_t(num_layers));
  reserve(capacity > 0 ? capacity : 256);
}

int64_t KvCache::nbytes() const { return 2 * num_layers_ * num_kv_heads_ * capacity_ * head_dim_ * 4; }

void KvCache::reserve(int64_t rows) {
  SIEVE_CHECK(num_layers_ > 0, "KvCache is not initialised");
  if (rows <= capacity_) return;
  const int64_t cap = std::max(rows, capacity_ + capacity_ / 2);
  for (auto* store : {&k_, &v_}) {
    for (auto& t : *store) {
      Tensor grown(DType::kF32, {num_kv_heads_, cap, head_dim_});
      if (size_ > 0) {
        for (int64_t h = 0; h < num_kv_heads_; ++h) {
          std::memcpy(grown.data_as<float>() + h * cap * head_dim_,
                      t.data_as<float>() + h * capacity_ * head_dim_,
                      size_t(size_ * head_dim_) * sizeof(float));
        }
      }
      t = std::move(grown);
    }
  }
  capacity_ = cap;
  positions_.resize(size_t(cap), 0);
}

void KvCache::truncate(int64_t n) {
  SIEVE_CHECK(n >= 0 && n <= size_, "KvCache::truncate({}) outside [0, {}]", n, size_);
  size_ = n;
}

void KvCache::keep_rows(int64_t base, std::span<const int64_t> rows) {
  SIEVE_CHECK(base >= 0 && base <= size_, "KvCache::keep_rows base {} outside [0, {}]", base,
              size_);
  int64_t prev = base - 1;
  for (int64_t r : rows) {
    SIEVE_CHECK(r > prev && r < size_,
                "KvCache::keep_rows rows must be strictly increasing in [{}, {}), got {} after {}",
                base, size_, r, prev);
    prev = r;
  }
  // Rows only move down (rows[i] >= base + i), so copying in increasing order never overwrites a
  // row that is still to be read.
  for (size_t i = 0; i < rows.size(); ++i) {
    const int64_t src = rows[i], dst = base + int64_t(i);
    if (src == dst) continue;
    for (int64_t l = 0; l < num_layers_; ++l) {
      for (int64_t h = 0; h < num_kv_heads_; ++h) {
        std::memmove(key_row(l, h, dst), key_row(l, h, src), size_t(head_dim_) * sizeof(float));
        std::memmove(value_row(l, h, dst), value_row(l, h, src), size_t(head_dim_) * sizeof(float));
      }
    }
    positions_[size_t(dst)] = positions_[size_t(src)];
  }
  size_ = base + int64_t(rows.size());
}

int64_t KvCache::append(std::span<const int64_t> positions) {
  SIEVE_CHECK(num_layers_ > 0, "KvCache is not initialised");
  const int64_t first = size_;
  reserve(size_ + int64_t(positions.size()));
  for (size_t i = 0; i < positions.size(); ++i) positions_[size_t(first) + i] = positions[i];
  size_ += int64_t(positions.size());
  return first;
}

TensorView KvCache::view(const std::vector<Tensor>& t, int64_t layer) const {
  SIEVE_CHECK(layer >= 0 && layer < num_layers_, "KvCache layer {} outside [0, {})", layer,
              num_layers_);
  TensorView v;
  v.data = t[size_t(layer)].data();
  v.dtype = DType::kF32;
  v.ndim = 3;
  v.shape = {num_kv_heads_, size_, head_dim_, 0};
  v.strides = {capacity_ * head_dim_, head_dim_, 1, 0};
  return v;
}

}  // namespace sieve::engine
