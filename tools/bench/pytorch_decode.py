#!/usr/bin/env python3
"""PyTorch side of `tokc bench-decode --pytorch`: the same protocol on the same checkpoint in transformers.

Loads the folder with LlamaForCausalLM in --dtype, warms up with a one-token prefill and step, then
prefills --prompt tokens (the same pseudo-random ids as tokc: (i·7919 + 13) mod vocab) and decodes
--tokens tokens greedily with the KV cache, timing each step. Prints one line per phase.
"""
import argparse
import statistics
import time
import warnings

import torch
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers 5 renames past_key_values
    dtype = getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).eval()
    vocab = model.config.vocab_size
    ids = torch.tensor([[(i * 7919 + 13) % vocab for i in range(args.prompt)]])
    with torch.inference_mode():
        out = model(ids[:, :1], use_cache=True)
        model(out.logits[:, -1:].argmax(-1), past_key_values=out.past_key_values, use_cache=True)
        start = time.perf_counter()
        out = model(ids, use_cache=True)
        prefill = time.perf_counter() - start
        cache, steps = out.past_key_values, []
        token = out.logits[:, -1:].argmax(-1)
        for _ in range(args.tokens):
            start = time.perf_counter()
            out = model(token, past_key_values=cache, use_cache=True)
            steps.append(time.perf_counter() - start)
            cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
    print(f"torch {args.dtype}: prefill {args.prompt} tokens {prefill * 1000:.0f} ms = {args.prompt / prefill:.1f} tokens/s; "
          f"decode median {statistics.median(steps) * 1000:.1f} ms/token (min {min(steps) * 1000:.1f}, threads {args.threads})", flush=True)


if __name__ == "__main__":
    main()
