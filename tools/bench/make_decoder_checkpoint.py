#!/usr/bin/env python3
"""Writes a LLaMA-shaped decoder checkpoint (config.json + model.safetensors) in F16 or BF16, for
`tokc bench-decode` and tools/bench/pytorch_decode.py: speed depends on shapes and dtype, not on trained values.

Weights are random (normal, std 0.02, norms 1) drawn once into a 16 M-value pool and written as slices
of it at random offsets, so a 13.5 GB 7B file takes about a minute instead of drawing 7 billion values;
`--zeros` writes zeros. NumPy only; the safetensors layout is written by hand (8-byte header length,
JSON header padded to 8 bytes, raw little-endian data).

  python3 tools/bench/make_decoder_checkpoint.py --preset 1b --out /tmp/llama-1b-f16
  python3 tools/bench/make_decoder_checkpoint.py --preset 7b --out /tmp/llama-7b-f16   # 13.5 GB
"""
import argparse
import json
import os

import numpy as np

PRESETS = {
    # LLaMA-2-7B / Vicuna-7B (LLaVA-1.5-7B's language model).
    "7b": dict(hidden=4096, intermediate=11008, layers=32, heads=32, kv_heads=32, vocab=32000),
    # TinyLlama-1.1B.
    "1b": dict(hidden=2048, intermediate=5632, layers=22, heads=32, kv_heads=4, vocab=32000),
    # Seconds to write; for trying the tools.
    "tiny": dict(hidden=256, intermediate=688, layers=2, heads=4, kv_heads=4, vocab=1000),
}


def tensor_shapes(p):
    d, m, hd = p["hidden"], p["intermediate"], p["hidden"] // p["heads"]
    kv = p["kv_heads"] * hd
    shapes = [("model.embed_tokens.weight", (p["vocab"], d))]
    for i in range(p["layers"]):
        l = f"model.layers.{i}."
        shapes += [
            (l + "input_layernorm.weight", (d,)),
            (l + "self_attn.q_proj.weight", (d, d)),
            (l + "self_attn.k_proj.weight", (kv, d)),
            (l + "self_attn.v_proj.weight", (kv, d)),
            (l + "self_attn.o_proj.weight", (d, d)),
            (l + "post_attention_layernorm.weight", (d,)),
            (l + "mlp.gate_proj.weight", (m, d)),
            (l + "mlp.up_proj.weight", (m, d)),
            (l + "mlp.down_proj.weight", (d, m)),
        ]
    shapes += [("model.norm.weight", (d,)), ("lm_head.weight", (p["vocab"], d))]
    return shapes


def to_bits(values, dtype):
    """float32 array -> uint16 bit patterns of F16 or BF16 (round to nearest even)."""
    if dtype == "F16":
        return values.astype(np.float16).view(np.uint16)
    bits = values.astype(np.float32).view(np.uint32)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded >> 16).astype(np.uint16)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="1b")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", choices=["F16", "BF16"], default="F16")
    ap.add_argument("--zeros", action="store_true", help="zero weights instead of random ones")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    p = PRESETS[args.preset]
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    pool_size = 1 << 24
    pool = np.zeros(pool_size, np.uint16) if args.zeros else to_bits(rng.normal(0, 0.02, pool_size).astype(np.float32), args.dtype)
    one = to_bits(np.ones(1, np.float32), args.dtype)[0]

    shapes = tensor_shapes(p)
    header, offset = {}, 0
    for name, shape in shapes:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": args.dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt", "note": "random benchmark weights (tools/bench/make_decoder_checkpoint.py)"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(os.path.join(args.out, "model.safetensors"), "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for name, shape in shapes:
            count = int(np.prod(shape))
            if len(shape) == 1:
                f.write(np.full(count, one, np.uint16).tobytes())
                continue
            written = 0
            while written < count:
                start = int(rng.integers(0, pool_size // 2))
                piece = min(count - written, pool_size - start)
                f.write(memoryview(pool[start:start + piece]))
                written += piece
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": p["hidden"], "intermediate_size": p["intermediate"], "num_hidden_layers": p["layers"],
        "num_attention_heads": p["heads"], "num_key_value_heads": p["kv_heads"], "vocab_size": p["vocab"],
        "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
        "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "bos_token_id": 1, "eos_token_id": 2,
        "torch_dtype": "float16" if args.dtype == "F16" else "bfloat16",
    }
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"wrote {args.out}: {args.preset}, {args.dtype}, {offset / 1e9:.2f} GB of weights")


if __name__ == "__main__":
    main()
