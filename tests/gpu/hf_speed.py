#!/usr/bin/env python3
"""Prompt and decode speed of a checkpoint under Hugging Face transformers on the GPU, the peer
`agent-bench gpu-speed` is compared with on the same directory (tests/gpu/check.sh).

    hf_speed.py MODEL_DIR PROMPT_TOKENS DECODE_TOKENS BATCH[,BATCH...]

bfloat16, greedy, eager (transformers' own MoE code and its default dynamic cache: how
`model.generate` runs out of the box). Each batch row is a different prompt of PROMPT_TOKENS
random token ids. Prompt time is one forward pass over the prompts; decode time is
`generate` of DECODE_TOKENS + 1 new tokens (never stopping early) minus a `generate` of one,
so it holds DECODE_TOKENS decode steps. Times are CUDA-synchronised wall clock, median of three
after a warm-up. Prints one JSON line per batch size, with the peak memory torch allocated.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM


CUDA = torch.cuda.is_available()  # without one (a smoke test of this script), the CPU


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def timed(fn) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


@torch.no_grad()
def main() -> None:
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    model_dir, n, new = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    batches = [int(b) for b in sys.argv[4].split(",")]
    start = time.perf_counter()
    # Straight onto the GPU (device_map needs accelerate, which the GPU machine has).
    placement = {"device_map": "cuda"} if CUDA else {}
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, **placement)
    model.eval()
    load = time.perf_counter() - start
    gen = torch.Generator().manual_seed(0)
    for b in batches:
        ids = torch.randint(1000, 100000, (b, n), generator=gen).to(model.device)
        mask = torch.ones_like(ids)

        def generate(k: int):
            return model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=k,
                                  min_new_tokens=k, do_sample=False, pad_token_id=0)

        if CUDA:
            torch.cuda.reset_peak_memory_stats()
        generate(4)  # warm-up
        prompt = statistics.median(timed(lambda: model(input_ids=ids, attention_mask=mask)) for _ in range(3))
        one = statistics.median(timed(lambda: generate(1)) for _ in range(3))
        full = statistics.median(timed(lambda: generate(new + 1)) for _ in range(3))
        decode = full - one
        print(json.dumps({
            "implementation": f"transformers {transformers.__version__}, torch {torch.__version__}, eager, bf16",
            "model": model_dir, "load_secs": load, "batch": b, "prompt_tokens": n, "decode_tokens": new,
            "prompt_tok_s": b * n / prompt, "decode_tok_s_per_sequence": new / decode,
            "decode_tok_s_total": b * new / decode,
            "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if CUDA else None,
        }), flush=True)


if __name__ == "__main__":
    main()
