"""Checks that the built-in ViT classifier works in transformers as a plain folder, the way a user loads it.

    python3 tools/builtin/check_vit_folder.py [--model builtin/models/vit-shapes]
                                              [--task builtin/tasks/shapes/test.jsonl] [--expect 97.0]

Loads it with `AutoImageProcessor.from_pretrained(folder)` + `AutoModelForImageClassification.from_pretrained(folder)`
(nothing of our own: the folder's preprocessor_config.json and config.json decide everything), classifies every
shipped test PNG in float32 on the CPU, maps the arg-max through the config's id2label and compares it with the
task's answer; prints the accuracy overall and per type (shape). With --expect (the figure the README and
training_log.json give), exits 1 when the accuracy differs.
"""
import argparse
import json
import os
import sys

import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="builtin/models/vit-shapes")
    p.add_argument("--task", default="builtin/tasks/shapes/test.jsonl")
    p.add_argument("--expect", type=float, default=None, help="accuracy in percent to compare with")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    processor = AutoImageProcessor.from_pretrained(args.model)
    model = AutoModelForImageClassification.from_pretrained(args.model, dtype=torch.float32).eval()
    labels = model.config.id2label

    with open(args.task) as f:
        samples = [json.loads(line) for line in f if line.strip()]
    base = os.path.dirname(os.path.abspath(args.task))
    correct, total = {}, {}
    for i in range(0, len(samples), args.batch):
        chunk = samples[i:i + args.batch]
        images = [Image.open(os.path.join(base, s["image"])).convert("RGB") for s in chunk]
        inputs = processor(images=images, return_tensors="pt")
        predicted = model(**inputs).logits.argmax(-1).tolist()
        for s, k in zip(chunk, predicted):
            kind = s.get("type", "")
            total[kind] = total.get(kind, 0) + 1
            correct[kind] = correct.get(kind, 0) + int(labels[k] == s["answer"])

    accuracy = 100 * sum(correct.values()) / sum(total.values())
    by_type = {k: round(100 * correct[k] / total[k], 2) for k in sorted(total)}
    print(json.dumps({"model": args.model, "samples": len(samples), "accuracy": round(accuracy, 2), "by_type": by_type}))
    if args.expect is not None and abs(accuracy - args.expect) > 0.005:
        print(f"transformers gives {accuracy:.2f}%, the expected figure is {args.expect:.2f}%", file=sys.stderr)
        sys.exit(1)
    if args.expect is not None:
        print(f"ok: transformers loads {args.model} as a folder and scores {accuracy:.2f}%, as expected")


if __name__ == "__main__":
    main()
