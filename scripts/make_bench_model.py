#!/usr/bin/env python3
"""Writes a deterministic random-weight Llama model for speed benchmarks (bench/engine/).

Speed does not depend on weight values, so the model is drawn from a seeded normal distribution
(numpy only, no torch): a Hugging Face folder (config.json + model.safetensors) that sieve loads
and bench/engine/convert_gguf.py converts for llama.cpp.

Default shape (~128M parameters, LlamaForCausalLM): hidden 768, 12 layers, 12 query heads / 4 KV
heads (GQA), head_dim 64, SwiGLU 3072, vocab 32000, tied embeddings, RoPE theta 10000.

  python3 scripts/make_bench_model.py OUT_DIR [--dtype f32|bf16] [--seed 0]
"""
import argparse
import json
import os
import struct

import numpy as np

SHAPE = dict(hidden=768, layers=12, heads=12, kv_heads=4, head_dim=64, inter=3072, vocab=32000)


def bf16_bits(a):
    """float32 -> bf16 bit patterns (round to nearest even; inputs are finite)."""
    u = a.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def save_safetensors(path, tensors, dtype):
    """tensors: name -> float32 array. Stored as F32 or BF16, names sorted, 8-byte aligned header."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name]
        raw = (a.astype(np.float32) if dtype == "f32" else bf16_bits(a)).tobytes()
        header[name] = {"dtype": "F32" if dtype == "f32" else "BF16", "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    header["__metadata__"] = {"format": "pt", "producer": "scripts/make_bench_model.py"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    s = SHAPE
    rng = np.random.default_rng(args.seed)

    def normal(*shape, scale):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(scale))

    h, q, kv = s["hidden"], s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    t = {"model.embed_tokens.weight": normal(s["vocab"], h, scale=1.0),
         "model.norm.weight": 1 + normal(h, scale=0.1)}
    for i in range(s["layers"]):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = 1 + normal(h, scale=0.1)
        t[p + "post_attention_layernorm.weight"] = 1 + normal(h, scale=0.1)
        t[p + "self_attn.q_proj.weight"] = normal(q, h, scale=h ** -0.5)
        t[p + "self_attn.k_proj.weight"] = normal(kv, h, scale=h ** -0.5)
        t[p + "self_attn.v_proj.weight"] = normal(kv, h, scale=h ** -0.5)
        t[p + "self_attn.o_proj.weight"] = normal(h, q, scale=q ** -0.5)
        t[p + "mlp.gate_proj.weight"] = normal(s["inter"], h, scale=h ** -0.5)
        t[p + "mlp.up_proj.weight"] = normal(s["inter"], h, scale=h ** -0.5)
        t[p + "mlp.down_proj.weight"] = normal(h, s["inter"], scale=s["inter"] ** -0.5)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": h, "intermediate_size": s["inter"], "num_hidden_layers": s["layers"],
        "num_attention_heads": s["heads"], "num_key_value_heads": s["kv_heads"],
        "head_dim": s["head_dim"], "vocab_size": s["vocab"], "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "max_position_embeddings": 4096, "tie_word_embeddings": True,
        "bos_token_id": 1, "eos_token_id": 2,
        "torch_dtype": "float32" if args.dtype == "f32" else "bfloat16",
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    save_safetensors(os.path.join(args.out, "model.safetensors"), t, args.dtype)
    n = sum(a.size for a in t.values())
    print(f"wrote {args.out}: {n / 1e6:.1f}M parameters, {args.dtype}")


if __name__ == "__main__":
    main()
