#!/usr/bin/env python3
"""Reference fixtures for sieve's engine (tests/cpp/engine/test_model.cpp) from Hugging Face
transformers, the real reference implementation of these architectures.

Creates tiny random-weight models (hidden 64, 2 layers) of the Llama family, saves them with
save_pretrained (safetensors) and records reference logits and greedy continuations for fixed
token-id prompts (no tokenizer needed). Models:

  llama        LlamaForCausalLM, GQA 4/2, tied embeddings, llama3 RoPE scaling, vocab 1280
               (covers the byte-level test tokenizer, tests/data/engine/tokenizer/bytelevel.json)
  qwen2        Qwen2ForCausalLM, GQA 4/1, q/k/v bias, saved in several shards + index
  qwen3        Qwen3ForCausalLM, explicit head_dim 32 (!= 64/4), per-head q/k RMSNorm, untied
               lm_head, linear RoPE scaling
  mistral      MistralForCausalLM, sliding window 8 (shorter than the prompts)
  qwen2_bf16   qwen2's weights rounded to bf16 and stored as bf16
  qwen3_f16    qwen3's weights rounded to f16 and stored as f16

Weights are drawn from N(0, 1/fan_in) (o_proj, down_proj: N(0, 16/fan_in); norm weights 1 + N(0, 0.2^2), biases N(0, 0.1^2)) so that
logits spread widely and greedy choices are far from ties. References are computed by the
transformers forward in float64 on the CPU (eager attention; RoPE angles stay f32 as transformers
computes them) from the stored weights, and saved as f32:

  tests/data/engine/<name>/               config.json, model.safetensors (or shards + index)
  tests/data/engine/<name>.ref.json       prompts, greedy continuations, top-2 margins
  tests/data/engine/<name>.ref.safetensors
      logits_0  [len(prompt0) + 16, vocab]  every row of prompt0 + its greedy continuation
      logits_1  [len(prompt1), vocab]       every row of prompt1

Run on a machine with torch + transformers (the GPU machine; no GPU is used):
  python3 scripts/make_engine_fixtures.py OUT_DIR      # then copy OUT_DIR/* to tests/data/engine/
"""
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file

NEW_TOKENS = 16


def make_config(cls, **kw):
    """Builds a config; RoPE settings go to rope_parameters (transformers >= 5) or the old keys."""
    rope = kw.pop("rope")
    try:
        cfg = cls(rope_parameters=rope, **kw)
        params = getattr(cfg, "rope_parameters", None)
        if not params or params.get("rope_type") != rope["rope_type"]:
            raise TypeError("rope_parameters not honoured")
    except TypeError:
        old = {k: v for k, v in rope.items() if k != "rope_theta"}
        cfg = cls(rope_theta=rope["rope_theta"],
                  rope_scaling=None if old["rope_type"] == "default" else old, **kw)
    return cfg


def reinit(model, gen):
    with torch.no_grad():
        seen = set()
        for name, p in model.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64))
            else:
                # o_proj / down_proj write into the residual stream: a larger scale makes the
                # attention and MLP outputs outweigh the token's own embedding, so greedy
                # continuations depend on the context instead of repeating the last token.
                scale = 4.0 if ("o_proj" in name or "down_proj" in name) else 1.0
                p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=torch.float64) /
                        p.shape[1] ** 0.5)


def eager(model):
    """Plain eager attention (the readable reference path)."""
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    else:
        model.config._attn_implementation = "eager"
    return model


def logits_of(model64, ids):
    with torch.no_grad():
        return model64(torch.tensor([ids])).logits[0]


def reference(model, prompts):
    model64 = model.to(torch.float64)
    ids = list(prompts[0])
    margins = []
    for _ in range(NEW_TOKENS):
        last = logits_of(model64, ids)[-1]
        top = torch.topk(last, 2).values
        margins.append(float(top[0] - top[1]))
        ids.append(int(torch.argmax(last)))
    full = logits_of(model64, ids)
    # The continuation must also be the argmax of the teacher-forced rows.
    n0 = len(prompts[0])
    assert [int(t) for t in torch.argmax(full[n0 - 1:-1], dim=-1)] == ids[n0:]
    greedy1 = list(prompts[1])
    for _ in range(NEW_TOKENS):
        greedy1.append(int(torch.argmax(logits_of(model64, greedy1)[-1])))
    return {
        "logits_0": full.float().contiguous(),
        "logits_1": logits_of(model64, prompts[1]).float().contiguous(),
    }, {
        "greedy_0": ids[n0:],
        "greedy_1": greedy1[len(prompts[1]):],
        "min_top2_margin_0": min(margins),
    }


def inv_freqs(model):
    return {n: b.detach().float().clone() for n, b in model.named_buffers() if n.endswith("inv_freq")}


def build(out_dir, name, cls_cfg, cls_model, seed, vocab, save_dtype=None, shard=None,
          weights_from=None, **kw):
    torch.manual_seed(seed)
    cfg = make_config(cls_cfg, vocab_size=vocab, hidden_size=64, num_hidden_layers=2,
                      max_position_embeddings=256, bos_token_id=1, eos_token_id=2, **kw)
    model = eager(cls_model(cfg)).to(torch.float32).eval()
    rope_f32 = inv_freqs(model)
    if weights_from is not None:
        model.load_state_dict(weights_from.state_dict())
    else:
        gen = torch.Generator().manual_seed(seed)
        reinit(model, gen)
    f32_state = {k: v.clone() for k, v in model.state_dict().items()}
    if save_dtype is not None:
        model = model.to(save_dtype)
    path = os.path.join(out_dir, name)
    if os.path.isdir(path):
        shutil.rmtree(path)
    kwargs = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(path, **kwargs)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(path, extra)):
            os.remove(os.path.join(path, extra))
    # The reference runs on exactly what the engine reads: config.json + safetensors, reloaded,
    # widened to f64. RoPE frequencies must be the f32 ones transformers computes at init.
    reloaded = eager(cls_model.from_pretrained(path)).to(torch.float64).eval()
    got = inv_freqs(reloaded)
    assert got.keys() == rope_f32.keys() and all(torch.equal(got[k], rope_f32[k]) for k in got), \
        f"{name}: reloaded RoPE frequencies differ from the f32 ones"
    g = torch.Generator().manual_seed(1000 + seed)
    prompts = [torch.randint(3, vocab, (11,), generator=g).tolist(),
               torch.randint(3, vocab, (5,), generator=g).tolist()]
    tensors, info = reference(reloaded, prompts)
    save_file(tensors, os.path.join(out_dir, f"{name}.ref.safetensors"),
              metadata={"producer": "scripts/make_engine_fixtures.py"})
    meta = {"model": name, "architecture": cfg.architectures[0] if cfg.architectures else
            cls_model.__name__, "prompts": prompts, "new_tokens": NEW_TOKENS,
            "transformers": transformers.__version__, "torch": torch.__version__,
            "reference": "transformers forward in float64 (eager) of the saved model, stored as f32",
            **info}
    with open(os.path.join(out_dir, f"{name}.ref.json"), "w") as f:
        json.dump(meta, f, indent=1)
    if name == "mistral":
        wide = cls_model.config_class.from_pretrained(path)
        wide.sliding_window = 4096
        other = eager(cls_model(wide)).to(torch.float64).eval()
        other.load_state_dict(reloaded.state_dict())
        d = (logits_of(other, prompts[0]).float() - tensors["logits_0"][:len(prompts[0])]).abs()
        print(f"{name}: sliding window changes rows >= 8 by {d[8:].max().item():.3g}, "
              f"rows < 8 by {d[:8].max().item():.3g}", flush=True)
    files = sorted(os.listdir(path))
    size = sum(os.path.getsize(os.path.join(path, x)) for x in files)
    print(f"{name}: {files} {size} bytes, margin {info['min_top2_margin_0']:.3f}, "
          f"greedy_0 {info['greedy_0']} greedy_1 {info['greedy_1']}", flush=True)
    model = model.to(torch.float32)
    model.load_state_dict(f32_state)
    return model


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/data/engine"
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(4)
    T = transformers
    build(out_dir, "llama", T.LlamaConfig, T.LlamaForCausalLM, 1, 1280,
          intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
          rms_norm_eps=1e-5, tie_word_embeddings=True,
          rope={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64})
    qwen2 = build(out_dir, "qwen2", T.Qwen2Config, T.Qwen2ForCausalLM, 2, 512, shard="200KB",
                  intermediate_size=128, num_attention_heads=4, num_key_value_heads=1,
                  rms_norm_eps=1e-6, tie_word_embeddings=True,
                  rope={"rope_type": "default", "rope_theta": 1000000.0})
    qwen3 = build(out_dir, "qwen3", T.Qwen3Config, T.Qwen3ForCausalLM, 3, 512,
                  intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
                  head_dim=32, rms_norm_eps=1e-6, tie_word_embeddings=False,
                  rope={"rope_type": "linear", "rope_theta": 1000000.0, "factor": 2.0})
    build(out_dir, "mistral", T.MistralConfig, T.MistralForCausalLM, 4, 256,
          intermediate_size=128, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
          rms_norm_eps=1e-5, tie_word_embeddings=True, sliding_window=8,
          rope={"rope_type": "default", "rope_theta": 10000.0})
    build(out_dir, "qwen2_bf16", T.Qwen2Config, T.Qwen2ForCausalLM, 2, 512,
          save_dtype=torch.bfloat16, weights_from=qwen2,
          intermediate_size=128, num_attention_heads=4, num_key_value_heads=1,
          rms_norm_eps=1e-6, tie_word_embeddings=True,
          rope={"rope_type": "default", "rope_theta": 1000000.0})
    build(out_dir, "qwen3_f16", T.Qwen3Config, T.Qwen3ForCausalLM, 3, 512,
          save_dtype=torch.float16, weights_from=qwen3,
          intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
          head_dim=32, rms_norm_eps=1e-6, tie_word_embeddings=False,
          rope={"rope_type": "linear", "rope_theta": 1000000.0, "factor": 2.0})


if __name__ == "__main__":
    main()
