#include "sieve/attention/params.h"

namespace sieve::attention {

namespace {
void check_head_dim_contiguous(const TensorView& t, const char* what) {
  SIEVE_CHECK(t.strides[2] == 1, "{} must have a contiguous last dimension (stride 1), got stride {}",
              what, t.strides[2]);
}
}  // namespace

AttentionShape check_attention_inputs(const TensorView& q, const TensorView& k, const TensorView& v,
                                      const TensorView* maybe_out, const TensorView* maybe_lse) {
  check_ndim(q, 3, "q [num_heads_q, seq_len_q, head_dim]");
  check_ndim(k, 3, "k [num_heads_kv, seq_len_k, head_dim]");
  check_ndim(v, 3, "v [num_heads_kv, seq_len_k, head_dim]");
  AttentionShape s;
  s.num_heads_q = q.shape[0];
  s.seq_len_q = q.shape[1];
  s.head_dim = q.shape[2];
  s.num_heads_kv = k.shape[0];
  s.seq_len_k = k.shape[1];
  SIEVE_CHECK(s.num_heads_q > 0 && s.num_heads_kv > 0, "attention needs at least one head (q {}, k {})",
              q.describe(), k.describe());
  SIEVE_CHECK(s.head_dim > 0, "head_dim must be positive, q is {}", q.describe());
  SIEVE_CHECK(k.shape[2] == s.head_dim, "k head_dim {} differs from q head_dim {}", k.shape[2], s.head_dim);
  SIEVE_CHECK(v.shape[0] == k.shape[0] && v.shape[1] == k.shape[1] && v.shape[2] == k.shape[2],
              "v {} must have the shape of k {}", v.describe(), k.describe());
  SIEVE_CHECK(s.num_heads_q % s.num_heads_kv == 0,
              "num_heads_q ({}) must be a multiple of num_heads_kv ({}) for GQA", s.num_heads_q,
              s.num_heads_kv);
  SIEVE_CHECK(s.seq_len_q <= s.seq_len_k, "seq_len_q ({}) exceeds seq_len_k ({})", s.seq_len_q, s.seq_len_k);
  SIEVE_CHECK(q.dtype == k.dtype && k.dtype == v.dtype, "q, k, v must share a dtype (got {}, {}, {})",
              dtype_name(q.dtype), dtype_name(k.dtype), dtype_name(v.dtype));
  check_head_dim_contiguous(q, "q");
  check_head_dim_contiguous(k, "k");
  check_head_dim_contiguous(v, "v");
  if (maybe_out) {
    const TensorView& o = *maybe_out;
    check_ndim(o, 3, "out [num_heads_q, seq_len_q, head_dim]");
    SIEVE_CHECK(o.shape[0] == s.num_heads_q && o.shape[1] == s.seq_len_q && o.shape[2] == s.head_dim,
                "out {} must have the shape of q {}", o.describe(), q.describe());
    SIEVE_CHECK(o.dtype == DType::kF32 || o.dtype == q.dtype, "out dtype {} must be f32 or the input dtype {}",
                dtype_name(o.dtype), dtype_name(q.dtype));
    check_head_dim_contiguous(o, "out");
  }
  if (maybe_lse) {
    const TensorView& l = *maybe_lse;
    check_ndim(l, 2, "lse [num_heads_q, seq_len_q]");
    SIEVE_CHECK(l.shape[0] == s.num_heads_q && l.shape[1] == s.seq_len_q && l.dtype == DType::kF32,
                "lse must be [{}, {}] f32, got {}", s.num_heads_q, s.seq_len_q, l.describe());
  }
  return s;
}

}  // namespace sieve::attention
