#!/usr/bin/env python3
"""PyTorch (CPU, fp32) prefill timings for the shapes of Models.PrefillBenchmark.

Usage: python3 tools/bench/pytorch_prefill.py [--threads N] [--repeats 3]
Prints one line per model: median / min / max milliseconds, same warm-up protocol as the Swift side.
"""
import argparse
import time

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM


def timed(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1000)
    runs.sort()
    return runs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=["decoder", "vision"], default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    if args.only in (None, "decoder"):
        cfg = LlamaConfig(hidden_size=2048, num_attention_heads=16, num_key_value_heads=16, intermediate_size=5632,
                          num_hidden_layers=8, vocab_size=1000, max_position_embeddings=4096)
        cfg._attn_implementation = "sdpa"
        model = LlamaForCausalLM(cfg).eval()
        x = torch.randn(1, 640, 2048)
        runs = timed(lambda: model(inputs_embeds=x, logits_to_keep=1, use_cache=True), args.repeats)
        print(f"decoder d2048 h16 mlp5632 L8, 640 tokens: median {runs[len(runs) // 2]:.1f} ms (min {runs[0]:.1f}, max {runs[-1]:.1f})")
        del model
    if args.only in (None, "vision"):
        cfg = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                               image_size=336, patch_size=14)
        cfg._attn_implementation = "sdpa"
        model = CLIPVisionModel(cfg).eval()
        x = torch.randn(1, 3, 336, 336)
        runs = timed(lambda: model(pixel_values=x), args.repeats)
        print(f"CLIP ViT-L/14-336, 577 tokens: median {runs[len(runs) // 2]:.1f} ms (min {runs[0]:.1f}, max {runs[-1]:.1f})")


if __name__ == "__main__":
    main()
