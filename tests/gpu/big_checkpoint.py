#!/usr/bin/env python3
"""A random-weight checkpoint with the exact widths of a published Qwen3 model, written where
it will run (a GPU machine: such a checkpoint is gigabytes and cannot be carried there).

    big_checkpoint.py SHAPE LAYERS TOKENIZER_DIR OUT_DIR

SHAPE is `qwen3-30b-a3b` (Qwen3MoeForCausalLM: hidden 2048, 128 experts of width 768, 8 active,
32 query and 4 KV heads of 128, one tensor per expert as the release ships) or `qwen3-8b`
(Qwen3ForCausalLM: hidden 4096, MLP 12288, 32 query and 8 KV heads of 128). LAYERS may be fewer
than the release's (48 and 36) so that the file fits the machine's disk; every layer has the
release's widths. Weights are bfloat16, drawn on the GPU when there is one (N(0, 0.02), norms 1),
so that matrix products see real numbers, never zeros. TOKENIZER_DIR holds the real Qwen3
tokenizer.json and tokenizer_config.json (tests/fixtures/build.sh's fixtures/tokenizer-qwen3).

Prints one JSON line: the shape, the parameter count, and the bytes of weights one decoded token
reads (the attention and the active experts of every layer, the router, the norms, one row of
the embedding and the whole output layer), which is what memory bandwidth bounds.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file

SHAPES = {
    "qwen3-30b-a3b": dict(
        architectures=["Qwen3MoeForCausalLM"], model_type="qwen3_moe", hidden_size=2048,
        intermediate_size=6144, moe_intermediate_size=768, num_experts=128, num_experts_per_tok=8,
        norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[], num_attention_heads=32,
        num_key_value_heads=4, head_dim=128, full_layers=48),
    "qwen3-8b": dict(
        architectures=["Qwen3ForCausalLM"], model_type="qwen3", hidden_size=4096,
        intermediate_size=12288, num_attention_heads=32, num_key_value_heads=8, head_dim=128,
        full_layers=36),
}
COMMON = dict(
    vocab_size=151936, max_position_embeddings=40960, rope_theta=1000000.0, rms_norm_eps=1e-6,
    hidden_act="silu", attention_bias=False, attention_dropout=0.0, tie_word_embeddings=False,
    bos_token_id=151643, eos_token_id=151645, torch_dtype="bfloat16", use_cache=True,
    sliding_window=None, use_sliding_window=False, max_window_layers=48, initializer_range=0.02)


def main() -> None:
    if len(sys.argv) != 5 or sys.argv[1] not in SHAPES:
        sys.exit(__doc__)
    shape, layers, tok_dir, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    spec = dict(SHAPES[shape])
    full = spec.pop("full_layers")
    config = {**COMMON, **spec, "num_hidden_layers": layers}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator(device=device).manual_seed(0)
    h, hd = config["hidden_size"], config["head_dim"]
    q, kv = config["num_attention_heads"] * hd, config["num_key_value_heads"] * hd
    weights: dict[str, torch.Tensor] = {}
    per_token = 0  # bytes of weights one decoded token reads

    def rand(name: str, *dims: int, read: float = 1.0) -> None:
        nonlocal per_token
        t = torch.empty(*dims, dtype=torch.bfloat16, device=device).normal_(0.0, 0.02, generator=gen)
        weights[name] = t.cpu()
        per_token += int(t.numel() * 2 * read)

    def ones(name: str, n: int) -> None:
        nonlocal per_token
        weights[name] = torch.ones(n, dtype=torch.bfloat16)
        per_token += n * 2

    vocab = config["vocab_size"]
    # One row of the embedding is read per token.
    rand("model.embed_tokens.weight", vocab, h, read=1 / vocab)
    for i in range(layers):
        p = f"model.layers.{i}"
        ones(f"{p}.input_layernorm.weight", h)
        ones(f"{p}.post_attention_layernorm.weight", h)
        rand(f"{p}.self_attn.q_proj.weight", q, h)
        rand(f"{p}.self_attn.k_proj.weight", kv, h)
        rand(f"{p}.self_attn.v_proj.weight", kv, h)
        rand(f"{p}.self_attn.o_proj.weight", h, q)
        ones(f"{p}.self_attn.q_norm.weight", hd)
        ones(f"{p}.self_attn.k_norm.weight", hd)
        if "num_experts" in config:
            e, w = config["num_experts"], config["moe_intermediate_size"]
            active = config["num_experts_per_tok"] / e
            rand(f"{p}.mlp.gate.weight", e, h)
            for x in range(e):
                rand(f"{p}.mlp.experts.{x}.gate_proj.weight", w, h, read=active)
                rand(f"{p}.mlp.experts.{x}.up_proj.weight", w, h, read=active)
                rand(f"{p}.mlp.experts.{x}.down_proj.weight", h, w, read=active)
        else:
            w = config["intermediate_size"]
            rand(f"{p}.mlp.gate_proj.weight", w, h)
            rand(f"{p}.mlp.up_proj.weight", w, h)
            rand(f"{p}.mlp.down_proj.weight", h, w)
    ones("model.norm.weight", h)
    rand("lm_head.weight", vocab, h)

    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    # Shards of about 4 GB, as releases are split, with the index that names each tensor's shard.
    shards, current, size = [], {}, 0
    for name, t in weights.items():
        if current and size + t.numel() * 2 > 4 << 30:
            shards.append(current)
            current, size = {}, 0
        current[name] = t
        size += t.numel() * 2
    shards.append(current)
    index = {"metadata": {"total_size": sum(t.numel() * 2 for t in weights.values())}, "weight_map": {}}
    for n, shard in enumerate(shards, 1):
        fname = f"model-{n:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, os.path.join(tmp, fname), metadata={"format": "pt"})
        index["weight_map"].update({name: fname for name in shard})
    with open(os.path.join(tmp, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    with open(os.path.join(tmp, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 151643, "eos_token_id": [151645, 151643]}, f)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tok_dir, name), os.path.join(tmp, name))
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    params = sum(t.numel() for t in weights.values())
    print(json.dumps({"shape": shape, "layers": layers, "release_layers": full, "params": params,
                      "bytes": params * 2, "bytes_read_per_token": per_token, "dir": out}))


if __name__ == "__main__":
    main()
