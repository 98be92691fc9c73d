#!/usr/bin/env python3
"""Converts a Hugging Face Llama folder written by scripts/make_bench_model.py (config.json +
model.safetensors, F32 or BF16) to GGUF with the `gguf` package, so that llama.cpp runs the very
same weights as sieve.

What the conversion does (facts of the two formats, written here from their specifications):
  * tensor names: model.embed_tokens -> token_embd, model.layers.N.{input_layernorm -> attn_norm,
    self_attn.{q,k,v,o}_proj -> attn_{q,k,v,output}, post_attention_layernorm -> ffn_norm,
    mlp.{gate,up,down}_proj -> ffn_{gate,up,down}}, model.norm -> output_norm; tied embeddings
    leave `output` out (llama.cpp then reuses token_embd);
  * llama.cpp's "llama" architecture applies RoPE to adjacent pairs (x[2i], x[2i+1]) while
    Hugging Face rotates halves (x[i], x[i + d/2]), so the rows of q_proj and k_proj are reordered
    per head: row (half, i) moves to (i, half);
  * norms stay F32; matrices keep the checkpoint dtype (F32 or BF16, bit for bit);
  * a byte-level vocabulary of the model's size (256 byte tokens, one merge, the rest control
    tokens) so that llama.cpp can load the file; the benchmark feeds token ids, never text.

  python3 bench/engine/convert_gguf.py MODEL_DIR OUT.gguf
"""
import json
import struct
import sys

import gguf
import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    base = 8 + n
    data = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        raw = data[base + b:base + end]
        if e["dtype"] == "F32":
            a = raw.view(np.float32)
        elif e["dtype"] == "BF16":
            a = raw.view(np.uint16)
        else:
            raise SystemExit(f"{name}: dtype {e['dtype']} not handled by this converter")
        out[name] = (e["dtype"], a.reshape(e["shape"]))
    return out


def rope_pairs(w, heads):
    """Rows of a [heads * d, in] projection from rotate-half to adjacent-pair RoPE order."""
    d = w.shape[0] // heads
    return w.reshape(heads, 2, d // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def bytes_to_unicode():
    """GPT-2's printable stand-ins for the 256 byte values."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def main():
    src, dst = sys.argv[1], sys.argv[2]
    cfg = json.load(open(f"{src}/config.json"))
    assert cfg["architectures"] == ["LlamaForCausalLM"], cfg["architectures"]
    t = read_safetensors(f"{src}/model.safetensors")
    heads, kv_heads = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    bf16 = t["model.layers.0.self_attn.q_proj.weight"][0] == "BF16"

    w = gguf.GGUFWriter(dst, "llama")
    w.add_name("sieve-bench-llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16 if bf16 else gguf.LlamaFileType.ALL_F32)

    vocab = cfg["vocab_size"]
    # llama.cpp insists on a merges list: one merge ("Ġ" + "t") and its result as token 256.
    tokens = bytes_to_unicode() + ["\u0120t"] + [f"<|ctrl_{i}|>" for i in range(vocab - 257)]
    types = [gguf.TokenType.NORMAL] * 257 + [gguf.TokenType.CONTROL] * (vocab - 257)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(["\u0120 t"])
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])

    def put(name, key):
        dtype, a = t[key]
        if "q_proj" in key:
            a = rope_pairs(a, heads)
        elif "k_proj" in key:
            a = rope_pairs(a, kv_heads)
        a = np.ascontiguousarray(a)
        if dtype == "BF16" and a.ndim == 2:
            w.add_tensor(name, a, raw_shape=a.shape, raw_dtype=gguf.GGMLQuantizationType.BF16)
        elif dtype == "BF16":  # norms: F32 (exact widening)
            w.add_tensor(name, (a.astype(np.uint32) << 16).view(np.float32))
        else:
            w.add_tensor(name, a)

    put("token_embd.weight", "model.embed_tokens.weight")
    put("output_norm.weight", "model.norm.weight")
    if not cfg.get("tie_word_embeddings", False):
        put("output.weight", "lm_head.weight")
    names = {"input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    for i in range(cfg["num_hidden_layers"]):
        for hf, gg in names.items():
            put(f"blk.{i}.{gg}.weight", f"model.layers.{i}.{hf}.weight")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {dst} ({'bf16' if bf16 else 'f32'})")


if __name__ == "__main__":
    main()
