"""Writes a random-weight LLaVA-1.5-shaped checkpoint for speed checks (not committed: ~1.7 GB in F32).

LLM: LLaMA-style, width 2048, 16 heads, MLP 5632, 8 layers (the issue's reference decoder); vision: a tiny
CLIP tower at 336 px / patch 14, so the image gives 576 visual tokens as in LLaVA-1.5. The tokenizer, chat
template and preprocessing come from the built-in model, so the bundled task files work unchanged:

    python3 tools/bench/make_random_llava.py /tmp/llava2048
    tokc bench --model /tmp/llava2048 --methods fastv,dart,visionzip,fastervlm --budgets 0.25 --limit 2
"""
import json
import os
import shutil
import sys

import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/llava2048"
src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "builtin", "models", "llava")
cfg = json.load(open(os.path.join(src, "config.json")))
torch.manual_seed(0)
vision = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                          image_size=336, patch_size=14, hidden_act="quick_gelu")
text = LlamaConfig(vocab_size=cfg["text_config"]["vocab_size"], hidden_size=2048, intermediate_size=5632,
                   num_hidden_layers=8, num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=2048,
                   bos_token_id=cfg["text_config"].get("bos_token_id"), eos_token_id=cfg["text_config"].get("eos_token_id"),
                   pad_token_id=cfg["text_config"].get("pad_token_id"))
config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=cfg["image_token_index"],
                     vision_feature_layer=-2, vision_feature_select_strategy="default", image_seq_length=576)
LlavaForConditionalGeneration(config).save_pretrained(out)
for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
    shutil.copy(os.path.join(src, name), out)
pre = json.load(open(os.path.join(src, "preprocessor_config.json")))
pre["size"] = {"shortest_edge": 336}
pre["crop_size"] = {"height": 336, "width": 336}
json.dump(pre, open(os.path.join(out, "preprocessor_config.json"), "w"), indent=2)
print("wrote", out)
