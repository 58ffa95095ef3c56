"""A DiT-S/2-sized random DiT pipeline (12 blocks, width 384, 6 heads, 256 tokens at a 32x32 latent) for
timing the caching methods in `tokc generate`; weights are random (no image quality to judge), F16.

    python tools/bench/make_random_dit.py OUT_DIR
"""
import json
import os
import sys

import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel

torch.set_num_threads(1)


def main(out):
    g = torch.Generator().manual_seed(0)
    transformer = DiTTransformer2DModel(
        num_attention_heads=6, attention_head_dim=64, in_channels=4, out_channels=8, num_layers=12,
        sample_size=32, patch_size=2, num_embeds_ada_norm=1000, norm_elementwise_affine=False).eval()
    with torch.no_grad():
        for _, p in transformer.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), block_out_channels=(8, 16),
        layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=64).eval()
    scheduler = DDIMScheduler(beta_schedule="linear", clip_sample=False, set_alpha_to_one=True)
    pipe = DiTPipeline(transformer=transformer.to(torch.float16), vae=vae, scheduler=scheduler)
    pipe.save_pretrained(out, safe_serialization=True)
    with open(os.path.join(out, "scheduler", "scheduler_config.json")) as f:
        json.load(f)  # written by diffusers; read back as a check


if __name__ == "__main__":
    main(sys.argv[1])
