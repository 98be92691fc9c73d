#include "sieve/engine/model.h"

#include "cpu/cache_attention.h"
#include "cpu/linear_kernels.h"
#include "sieve/attention/executor.h"
#include "sieve/attention/selector.h"
#include "sieve/core/error.h"
#include "sieve/core/threading.h"
#include "sieve/core/timer.h"
#include "sieve/engine/linear.h"
#include "sieve/engine/rope.h"
#include "sieve/engine/weights.h"

#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

namespace sieve::engine {

namespace {

struct LayerWeights {
  const float* attn_norm = nullptr;
  Matrix q, k, v, o;
  const float *bq = nullptr, *bk = nullptr, *bv = nullptr, *bo = nullptr;
  const float *q_norm = nullptr, *k_norm = nullptr;
  const float* mlp_norm = nullptr;
  Matrix gate, up, down;
  const float *bgate = nullptr, *bup = nullptr, *bdown = nullptr;
};

/// y[i] = x[i] / sqrt(mean(x^2) + eps) * w[i], as transformers' LlamaRMSNorm in f32.
void rms_norm(const float* x, const float* w, int64_t n, double eps, float* y) {
  double ss = 0;
  for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * double(x[i]);
  const float r = float(1.0 / std::sqrt(ss / double(n) + eps));
  for (int64_t i = 0; i < n; ++i) y[i] = w[i] * (x[i] * r);
}

/// Anonymous memory backed by transparent huge pages where the kernel grants them.
///
/// Decode streams every weight once per token, so it runs at memory bandwidth; with the file
/// mapping's 4 KiB pages the hardware prefetchers stop at every page and the TLB misses every
/// 4 KiB. Copying the matrices once at load into 2 MiB pages read ~15-30% more GB/s per core in a
/// GEMV microbenchmark on an AVX2 EPYC. The page cache copy of the file stays reclaimable.
class HugeArena {
 public:
  HugeArena() = default;
  HugeArena(const HugeArena&) = delete;
  HugeArena& operator=(const HugeArena&) = delete;
  ~HugeArena() {
    if (base_) ::munmap(base_, size_);
  }
  /// Maps `bytes` (rounded up to 2 MiB); false when the mapping fails (the caller keeps the file
  /// mapping then).
  bool reserve(size_t bytes) {
    constexpr size_t kHuge = size_t(2) << 20;
    size_ = (bytes + kHuge - 1) / kHuge * kHuge;
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    base_ = p;
#ifdef MADV_HUGEPAGE
    ::madvise(base_, size_, MADV_HUGEPAGE);  // advisory: without THP these stay 4 KiB pages
#endif
    return true;
  }
  /// A copy of `bytes` at 64-byte alignment inside the arena.
  void* copy(const void* src, size_t bytes) {
    char* dst = static_cast<char*>(base_) + used_;
    std::memcpy(dst, src, bytes);
    used_ += (bytes + 63) / 64 * 64;
    return dst;
  }

 private:
  void* base_ = nullptr;
  size_t size_ = 0, used_ = 0;
};

/// SIEVE_WEIGHTS=mmap keeps matrices in the file mapping (no copy, less memory); the default
/// copies them into huge pages.
bool weights_in_huge_pages() {
  const char* env = std::getenv("SIEVE_WEIGHTS");
  return !(env && std::string_view(env) == "mmap");
}

}  // namespace

struct Model::Impl {
  ModelConfig cfg;
  std::string dir;
  std::unique_ptr<WeightStore> store;
  std::vector<Tensor> owned;  // converted weights (f16 -> f32, misaligned copies, norms)
  HugeArena arena;            // in-place matrices copied to huge pages (see HugeArena)
  Matrix embed, lm_head;
  const float* final_norm = nullptr;
  std::vector<LayerWeights> layers;
  std::vector<float> inv_freq;
  std::shared_ptr<const attention::PatternSelector> selector;
  int64_t executor_min_tokens = 16;
  AttentionStats stats;
  std::function<void(int64_t, int64_t)> layer_callback;

  // A float vector of `n` elements (any float dtype in the file), converted to owned f32.
  const float* vec(const std::string& name, int64_t n) {
    const TensorView t = store->get(name, {n});
    Tensor f = Tensor::from(t, DType::kF32);
    owned.push_back(f);
    return f.data_as<float>();
  }
  const float* maybe_vec(const std::string& name, int64_t n, bool expected) {
    if (!expected) {
      SIEVE_CHECK(!store->contains(name),
                  "tensor '{}' is present but config.json does not enable it (check "
                  "attention_bias / mlp_bias)",
                  name);
      return nullptr;
    }
    return vec(name, n);
  }
  // A matrix used in place when f32/bf16 and suitably aligned; converted to f32 otherwise.
  Matrix mat(const std::string& name, int64_t rows, int64_t cols) {
    const TensorView t = store->get(name, {rows, cols});
    const auto addr = reinterpret_cast<uintptr_t>(t.data);
    const bool aligned = addr % uintptr_t(dtype_size(t.dtype)) == 0;
    if (t.dtype == DType::kF16 || !aligned) {
      Tensor f = Tensor::from(t, t.dtype == DType::kF16 ? DType::kF32 : t.dtype);
      owned.push_back(f);
      return Matrix{f.data(), f.dtype(), rows, cols};
    }
    return Matrix{t.data, t.dtype, rows, cols};
  }

  void load() {
    const ModelConfig& c = cfg;
    const int64_t h = c.hidden_size, qd = c.num_heads * c.head_dim, kvd = c.num_kv_heads * c.head_dim;
    embed = mat("model.embed_tokens.weight", c.vocab_size, h);
    final_norm = vec("model.norm.weight", h);
    if (c.tie_word_embeddings) {
      lm_head = embed;
    } else {
      lm_head = mat("lm_head.weight", c.vocab_size, h);
    }
    layers.resize(size_t(c.num_layers));
    for (int64_t l = 0; l < c.num_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      LayerWeights& L = layers[size_t(l)];
      L.attn_norm = vec(p + "input_layernorm.weight", h);
      L.q = mat(p + "self_attn.q_proj.weight", qd, h);
      L.k = mat(p + "self_attn.k_proj.weight", kvd, h);
      L.v = mat(p + "self_attn.v_proj.weight", kvd, h);
      L.o = mat(p + "self_attn.o_proj.weight", h, qd);
      L.bq = maybe_vec(p + "self_attn.q_proj.bias", qd, c.qkv_bias);
      L.bk = maybe_vec(p + "self_attn.k_proj.bias", kvd, c.qkv_bias);
      L.bv = maybe_vec(p + "self_attn.v_proj.bias", kvd, c.qkv_bias);
      L.bo = maybe_vec(p + "self_attn.o_proj.bias", h, c.o_bias);
      if (c.qk_norm) {
        L.q_norm = vec(p + "self_attn.q_norm.weight", c.head_dim);
        L.k_norm = vec(p + "self_attn.k_norm.weight", c.head_dim);
      }
      L.mlp_norm = vec(p + "post_attention_layernorm.weight", h);
      L.gate = mat(p + "mlp.gate_proj.weight", c.intermediate_size, h);
      L.up = mat(p + "mlp.up_proj.weight", c.intermediate_size, h);
      L.down = mat(p + "mlp.down_proj.weight", h, c.intermediate_size);
      L.bgate = maybe_vec(p + "mlp.gate_proj.bias", c.intermediate_size, c.mlp_bias);
      L.bup = maybe_vec(p + "mlp.up_proj.bias", c.intermediate_size, c.mlp_bias);
      L.bdown = maybe_vec(p + "mlp.down_proj.bias", h, c.mlp_bias);
    }
    inv_freq = rope_inv_freq(c.rope, c.head_dim);
  }

  // Moves every matrix still in the file mapping into the huge-page arena. Returns false (and
  // changes nothing) when disabled or the arena cannot be mapped.
  bool copy_to_huge_pages() {
    if (!weights_in_huge_pages()) return false;
    std::vector<Matrix*> mats;
    auto add = [&](Matrix& m) {
      if (std::find_if(owned.begin(), owned.end(),
                       [&](const Tensor& t) { return t.data() == m.data; }) == owned.end()) {
        mats.push_back(&m);
      }
    };
    add(embed);
    if (!cfg.tie_word_embeddings) add(lm_head);
    for (LayerWeights& L : layers) {
      for (Matrix* m : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down}) add(*m);
    }
    auto bytes_of = [](const Matrix& m) { return size_t(m.rows * m.cols) * dtype_size(m.dtype); };
    size_t total = 0;
    for (const Matrix* m : mats) total += (bytes_of(*m) + 63) / 64 * 64;
    if (!arena.reserve(total)) return false;
    for (Matrix* m : mats) m->data = arena.copy(m->data, bytes_of(*m));
    if (cfg.tie_word_embeddings) lm_head = embed;
    return true;
  }

  void attention_layer(int64_t l, const float* q, KvCache& cache, int64_t first, int64_t n,
                       const TreeMask* tree, float* out);
  Tensor forward(const ForwardInput& in, KvCache& cache);
};

Model::Model(const std::string& dir) : impl_(std::make_unique<Impl>()) {
  impl_->cfg = load_model_config(dir);
  impl_->dir = dir;
  impl_->store = std::make_unique<WeightStore>(dir);
  impl_->load();
  // The copy reads every matrix once, which also faults the file in; otherwise pre-fault it so
  // that the first timed forward does not pay for page faults.
  if (!impl_->copy_to_huge_pages()) impl_->store->prefault();
}

Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

const ModelConfig& Model::config() const { return impl_->cfg; }
const std::string& Model::dir() const { return impl_->dir; }
DType Model::weight_dtype() const { return impl_->layers.front().q.dtype; }
int64_t Model::weight_bytes() const { return impl_->store->total_bytes(); }

KvCache Model::make_cache(int64_t capacity) const {
  const ModelConfig& c = impl_->cfg;
  return KvCache(c.num_layers, c.num_kv_heads, c.head_dim, capacity);
}

void Model::set_selector(std::shared_ptr<const attention::PatternSelector> selector) {
  impl_->selector = std::move(selector);
}
const attention::PatternSelector* Model::selector() const { return impl_->selector.get(); }
void Model::set_executor_min_tokens(int64_t n) {
  SIEVE_CHECK(n >= 1, "executor_min_tokens must be >= 1, got {}", n);
  impl_->executor_min_tokens = n;
}
const AttentionStats& Model::attention_stats() const { return impl_->stats; }
void Model::reset_attention_stats() { impl_->stats = {}; }
void Model::set_layer_callback(std::function<void(int64_t, int64_t)> callback) {
  impl_->layer_callback = std::move(callback);
}

Tensor Model::forward(const ForwardInput& in, KvCache& cache) { return impl_->forward(in, cache); }

Tensor Model::project(const float* hidden, int64_t rows) const {
  SIEVE_CHECK(rows >= 0 && (rows == 0 || hidden), "project: null hidden states");
  Tensor logits(DType::kF32, {rows, impl_->cfg.vocab_size});
  if (rows > 0) linear(hidden, rows, impl_->lm_head, logits.data_as<float>());
  return logits;
}

// Attention of the n new queries (rows [first, first + n) of the cache) for layer l.
void Model::Impl::attention_layer(int64_t l, const float* q, KvCache& cache, int64_t first,
                                  int64_t n, const TreeMask* tree, float* out) {
  const ModelConfig& c = cfg;
  const int64_t d = c.head_dim, hq = c.num_heads;
  const int64_t window = c.layer_window[size_t(l)];
  bool windowed = false;
  if (window > 0) {  // the executors know no window: only use them when it cannot cut anything
    const auto pos = cache.positions();
    const auto [lo, hi] = std::minmax_element(pos.begin(), pos.end());
    windowed = *hi - *lo >= window;
  }
  const bool causal = tree == nullptr || tree->is_causal();
  if (!causal || windowed || n < executor_min_tokens) {
    detail::CacheAttentionArgs a;
    a.q = q;
    a.out = out;
    a.num_heads = hq;
    a.cache = &cache;
    a.layer = l;
    a.first_new = first;
    a.num_new = n;
    a.maybe_tree = causal ? nullptr : tree;
    a.window = window;
    a.scale = 1.0f / std::sqrt(float(d));
    detail::cache_attention(a);
    return;
  }
  // Causal block: sieve::attention with bottom-right alignment (query i sits at row first + i).
  TensorView qv, ov;
  for (TensorView* v : {&qv, &ov}) {
    v->dtype = DType::kF32;
    v->ndim = 3;
    v->shape = {hq, n, d, 0};
    v->strides = {d, hq * d, 1, 0};
  }
  qv.data = const_cast<float*>(q);
  ov.data = out;
  const TensorView kv = cache.keys(l), vv = cache.values(l);
  attention::AttentionOptions opts;
  opts.causal = true;
  if (selector) {
    Timer ts;
    const attention::SparsePattern pattern = selector->select(qv, kv, opts);
    stats.select_seconds += ts.seconds();
    stats.pattern_calls += 1;
    stats.block_density_sum += pattern.block_density();
    stats.token_density_sum += pattern.token_density();
    Timer ta;
    attention::block_sparse_attention(qv, kv, vv, pattern, ov, opts);
    stats.attention_seconds += ta.seconds();
  } else {
    Timer ta;
    attention::dense_attention(qv, kv, vv, ov, opts);
    stats.attention_seconds += ta.seconds();
  }
}

Tensor Model::Impl::forward(const ForwardInput& in, KvCache& cache) {
  const ModelConfig& c = cfg;
  const int64_t n = int64_t(in.tokens.size());
  SIEVE_CHECK(n > 0, "forward needs at least one token");
  SIEVE_CHECK(cache.num_layers() == c.num_layers && cache.num_kv_heads() == c.num_kv_heads &&
                  cache.head_dim() == c.head_dim,
              "the KV cache ({} layers, {} kv heads, head_dim {}) was not made for this model "
              "({} layers, {} kv heads, head_dim {})",
              cache.num_layers(), cache.num_kv_heads(), cache.head_dim(), c.num_layers,
              c.num_kv_heads, c.head_dim);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t t = in.tokens[size_t(i)];
    SIEVE_CHECK(t >= 0 && t < c.vocab_size, "token id {} at index {} is outside the vocabulary [0, {})",
                t, i, c.vocab_size);
  }
  std::vector<int64_t> positions(static_cast<size_t>(n));
  if (in.positions.empty()) {
    for (int64_t i = 0; i < n; ++i) positions[size_t(i)] = cache.size() + i;
  } else {
    SIEVE_CHECK(int64_t(in.positions.size()) == n, "{} positions given for {} tokens",
                in.positions.size(), n);
    for (int64_t i = 0; i < n; ++i) {
      SIEVE_CHECK(in.positions[size_t(i)] >= 0, "position {} at index {} is negative",
                  in.positions[size_t(i)], i);
      positions[size_t(i)] = in.positions[size_t(i)];
    }
  }
  if (in.maybe_tree) {
    SIEVE_CHECK(in.maybe_tree->size() == n, "tree mask is {}x{} but {} tokens are given",
                in.maybe_tree->size(), in.maybe_tree->size(), n);
  }

  const int64_t h = c.hidden_size, d = c.head_dim, hq = c.num_heads, hkv = c.num_kv_heads;
  const int64_t qd = hq * d, kvd = hkv * d, inter = c.intermediate_size;
  const int nt = detail::team_size(n * std::max(qd, inter));

  const int64_t first = cache.append(positions);
  std::vector<float> x(static_cast<size_t>(n * h)), xn(size_t(n * h));
  std::vector<float> q(static_cast<size_t>(n * qd)), k(size_t(n * kvd)), v(size_t(n * kvd));
  std::vector<float> att(static_cast<size_t>(n * qd)), tmp(size_t(n * h));
  std::vector<float> g(static_cast<size_t>(n * inter)), u(size_t(n * inter));

  // Embedding rows as f32.
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = in.tokens[size_t(i)];
    const char* row = static_cast<const char*>(embed.data) + t * h * dtype_size(embed.dtype);
    for (int64_t j = 0; j < h; ++j) x[size_t(i * h + j)] = load_as_f32(row, embed.dtype, j);
  }

  try {
    for (int64_t l = 0; l < c.num_layers; ++l) {
      const LayerWeights& L = layers[size_t(l)];
#pragma omp parallel for schedule(static) num_threads(nt)
      for (int64_t i = 0; i < n; ++i) rms_norm(&x[size_t(i * h)], L.attn_norm, h, c.rms_norm_eps, &xn[size_t(i * h)]);
      const LinearTarget qkv[3] = {{L.q, q.data(), L.bq}, {L.k, k.data(), L.bk},
                                   {L.v, v.data(), L.bv}};
      linear_many(xn.data(), n, qkv);
#pragma omp parallel for schedule(static) num_threads(nt)
      for (int64_t i = 0; i < n; ++i) {
        float* qi = &q[size_t(i * qd)];
        float* ki = &k[size_t(i * kvd)];
        if (c.qk_norm) {
          for (int64_t hh = 0; hh < hq; ++hh) rms_norm(qi + hh * d, L.q_norm, d, c.rms_norm_eps, qi + hh * d);
          for (int64_t hh = 0; hh < hkv; ++hh) rms_norm(ki + hh * d, L.k_norm, d, c.rms_norm_eps, ki + hh * d);
        }
        apply_rope(qi, hq, d, positions[size_t(i)], inv_freq);
        apply_rope(ki, hkv, d, positions[size_t(i)], inv_freq);
        for (int64_t hh = 0; hh < hkv; ++hh) {
          std::memcpy(cache.key_row(l, hh, first + i), ki + hh * d, size_t(d) * sizeof(float));
          std::memcpy(cache.value_row(l, hh, first + i), &v[size_t(i * kvd + hh * d)],
                      size_t(d) * sizeof(float));
        }
      }
      attention_layer(l, q.data(), cache, first, n, in.maybe_tree, att.data());
      linear(att.data(), n, L.o, tmp.data(), L.bo);
      for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];

#pragma omp parallel for schedule(static) num_threads(nt)
      for (int64_t i = 0; i < n; ++i) rms_norm(&x[size_t(i * h)], L.mlp_norm, h, c.rms_norm_eps, &xn[size_t(i * h)]);
      const LinearTarget gate_up[2] = {{L.gate, g.data(), L.bgate}, {L.up, u.data(), L.bup}};
      linear_many(xn.data(), n, gate_up);
#pragma omp parallel for schedule(static) num_threads(nt)
      for (int64_t i = 0; i < n * inter; ++i) {
        const float a = g[size_t(i)];
        g[size_t(i)] = a / (1.0f + std::exp(-a)) * u[size_t(i)];
      }
      linear(g.data(), n, L.down, tmp.data(), L.bdown);
      for (size_t i = 0; i < x.size(); ++i) x[i] += tmp[i];
      if (layer_callback) layer_callback(l + 1, c.num_layers);
    }
  } catch (...) {
    cache.truncate(first);  // a failed forward leaves the cache as it was
    throw;
  }

  const int64_t rows = in.logits == LogitsMode::kAll ? n : in.logits == LogitsMode::kLast ? 1 : 0;
  const int64_t row0 = n - rows;
  Tensor hidden(DType::kF32, {rows, h});
  for (int64_t i = 0; i < rows; ++i) {
    rms_norm(&x[size_t((row0 + i) * h)], final_norm, h, c.rms_norm_eps,
             hidden.data_as<float>() + i * h);
  }
  if (in.return_hidden) return hidden;
  Tensor logits(DType::kF32, {rows, c.vocab_size});
  if (rows > 0) linear(hidden.data_as<float>(), rows, lm_head, logits.data_as<float>());
  return logits;
}

}  // namespace sieve::engine
