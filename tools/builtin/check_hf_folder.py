"""Checks that a built-in model folder works in transformers as a plain folder, the way a user loads it.

    python3 tools/builtin/check_hf_folder.py [--model builtin/models/llava] [--task builtin/tasks/scenes/test.jsonl]
                                             [--expect 93.0] [--limit N]

Loads it with `AutoProcessor.from_pretrained(folder)` and `LlavaForConditionalGeneration.from_pretrained(folder)`
(nothing of our own: the folder's processor_config.json, chat_template.json, preprocessor_config.json and
tokenizer files decide everything), answers every question of the task greedily in float32 on the CPU, scores
the answers as `tokc bench` does (trimmed, case-insensitive, a trailing period dropped) and compares the accuracy
with `--expect`, the figure the README gives for `tokc bench`'s uncompressed run. Exits 1 when they differ.
"""
import argparse
import json
import os
import sys

import torch
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration


def normalize(answer):
    s = answer.strip().lower()
    if s.endswith("."):
        s = s[:-1].strip()
    return s


def score(model_folder, task, limit=None, max_new_tokens=8):
    """Accuracy (percent) and per-type accuracy of a folder loaded with the Auto classes on a task."""
    torch.set_grad_enabled(False)
    processor = AutoProcessor.from_pretrained(model_folder)
    model = LlavaForConditionalGeneration.from_pretrained(model_folder, dtype=torch.float32).eval()
    eos = processor.tokenizer.convert_tokens_to_ids("</s>")
    with open(task) as f:
        samples = [json.loads(line) for line in f if line.strip()]
    if limit:
        samples = samples[:limit]
    base = os.path.dirname(os.path.abspath(task))
    correct, total = {}, {}
    for n, s in enumerate(samples):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": s["question"]}]}]
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
        image = Image.open(os.path.join(base, s["image"])).convert("RGB")
        inputs = processor(images=image, text=prompt, return_tensors="pt")
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos,
                             pad_token_id=processor.tokenizer.pad_token_id)
        answer = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        kind = s.get("type", "")
        total[kind] = total.get(kind, 0) + 1
        correct[kind] = correct.get(kind, 0) + int(normalize(answer) == normalize(s["answer"]))
        if (n + 1) % 100 == 0:
            print(f"{n + 1}/{len(samples)}", file=sys.stderr, flush=True)
    return {"samples": len(samples), "accuracy": round(100 * sum(correct.values()) / sum(total.values()), 1),
            "by_type": {k: round(100 * correct[k] / total[k], 1) for k in sorted(total)}}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="builtin/models/llava")
    p.add_argument("--task", default="builtin/tasks/scenes/test.jsonl")
    p.add_argument("--expect", type=float, default=93.0, help="accuracy in percent that tokc reports (README)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--max-new-tokens", type=int, default=8, help="as tokc bench's default")
    args = p.parse_args()

    result = score(args.model, args.task, args.limit, args.max_new_tokens)
    accuracy = result["accuracy"]
    print(json.dumps(result))
    if abs(accuracy - args.expect) > 0.05:
        print(f"transformers gives {accuracy:.1f}%, tokc's figure is {args.expect:.1f}%", file=sys.stderr)
        sys.exit(1)
    print(f"ok: transformers loads {args.model} as a folder and scores {accuracy:.1f}%, as tokc does")


if __name__ == "__main__":
    main()
