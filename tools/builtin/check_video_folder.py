"""Checks the built-in video model folder in transformers, the way a user loads it, and scores a video task.

    python3 tools/builtin/check_video_folder.py [--model builtin/models/llava-onevision-video]
        [--task builtin/tasks/videos/test.jsonl] [--limit N] [--expect 90.0] [--no-log]

Loads `LlavaOnevisionForConditionalGeneration.from_pretrained(folder)` in float32 on the CPU and the folder's
tokenizer with `AutoTokenizer` (its chat template renders the prompt with the `<video>` token). Frames are fed
as `pixel_values_videos` by this script, because transformers' video processor needs torchvision, which has no
CPU wheel on the package index here: each frame (a folder of PNGs, sorted by name) is resized to the size in
video_preprocessor_config.json (bicubic, only if it differs), rescaled and normalised with that file's factors,
and the `<video>` token is repeated frames x ceil(side/2)^2 + 1 times, as the OneVision processor does.
Answers come from `generate` (greedy), scored as `tokc bench` does (trimmed, case-insensitive, a trailing
period dropped). Prints per-type and overall accuracy and appends them as a stage to training_log.json.

It also writes the folder's reference.json from builtin/tasks/videos/sample.jsonl: per sample the prompt's
token ids (video token expanded), the greedy answer's tokens and text, and the top 5 logits of the first
generated step, for parity tests of other runtimes (the Swift one) against transformers.
"""
import argparse
import json
import math
import os
import shlex
import sys
import time

import numpy as np
import torch
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def normalize(answer):
    s = answer.strip().lower()
    if s.endswith("."):
        s = s[:-1].strip()
    return s


class VideoInputs:
    """The folder's own description of its video input: preprocessing factors and video-token count."""

    def __init__(self, folder, config):
        with open(os.path.join(folder, "video_preprocessor_config.json")) as f:
            pre = json.load(f)
        self.height, self.width = pre["size"]["height"], pre["size"]["width"]
        self.rescale = pre["rescale_factor"] if pre.get("do_rescale", True) else 1.0
        self.mean = np.array(pre["image_mean"], dtype=np.float32) if pre.get("do_normalize", True) else np.zeros(3, np.float32)
        self.std = np.array(pre["image_std"], dtype=np.float32) if pre.get("do_normalize", True) else np.ones(3, np.float32)
        self.resample = pre.get("resample", 3)
        vision = config.vision_config
        side = vision.image_size // vision.patch_size
        self.rows_per_frame = math.ceil(side / 2) ** 2

    def pixel_values(self, frame_folder):
        """float [1, frames, 3, H, W] from a folder of frame images."""
        names = sorted(n for n in os.listdir(frame_folder) if n.lower().endswith((".png", ".jpg", ".jpeg")))
        if not names:
            raise ValueError(f"no frame images in {frame_folder}")
        frames = []
        for n in names:
            image = Image.open(os.path.join(frame_folder, n)).convert("RGB")
            if image.size != (self.width, self.height):
                image = image.resize((self.width, self.height), resample=self.resample)
            x = (np.asarray(image, dtype=np.float32) * self.rescale - self.mean) / self.std
            frames.append(x.transpose(2, 0, 1))
        return torch.from_numpy(np.stack(frames))[None]

    def video_tokens(self, frames):
        return frames * self.rows_per_frame + 1


def load(folder):
    from transformers import AutoTokenizer, LlavaOnevisionForConditionalGeneration
    torch.set_grad_enabled(False)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(folder, dtype=torch.float32).eval()
    return tokenizer, model, VideoInputs(folder, model.config)


def prompt_ids(tokenizer, model, inputs, question, frames):
    """Chat-template prompt with the `<video>` token expanded to the model's video rows, as [1, T] ids."""
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    video_id = model.config.video_token_index
    ids = []
    for t in tokenizer(text, add_special_tokens=False)["input_ids"]:
        ids.extend([video_id] * inputs.video_tokens(frames) if t == video_id else [t])
    return torch.tensor([ids])


def read_task(task, limit=None):
    with open(task) as f:
        samples = [json.loads(line) for line in f if line.strip()]
    return samples[:limit] if limit else samples


def score(folder, task, limit=None, max_new_tokens=8):
    """Accuracy (percent) overall and per type of the folder on a video task, with `generate`."""
    tokenizer, model, inputs = load(folder)
    eos = tokenizer.convert_tokens_to_ids("</s>")
    base = os.path.dirname(os.path.abspath(task))
    samples = read_task(task, limit)
    correct, total = {}, {}
    for n, s in enumerate(samples):
        pv = inputs.pixel_values(os.path.join(base, s["video"]))
        ids = prompt_ids(tokenizer, model, inputs, s["question"], pv.shape[1])
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values_videos=pv,
                             max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos,
                             pad_token_id=tokenizer.pad_token_id)
        answer = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
        kind = s.get("type", "")
        total[kind] = total.get(kind, 0) + 1
        correct[kind] = correct.get(kind, 0) + int(normalize(answer) == normalize(s["answer"]))
        if (n + 1) % 50 == 0:
            print(f"{n + 1}/{len(samples)}", file=sys.stderr, flush=True)
    return {"samples": len(samples), "accuracy": round(100 * sum(correct.values()) / sum(total.values()), 1),
            "by_type": {k: round(100 * correct[k] / total[k], 1) for k in sorted(total)}}


def reference(folder, task, max_new_tokens=8):
    """Greedy answers and first-step top-5 logits of the folder on a (small) task, for parity tests."""
    tokenizer, model, inputs = load(folder)
    eos = tokenizer.convert_tokens_to_ids("</s>")
    base = os.path.dirname(os.path.abspath(task))
    rows = []
    for s in read_task(task):
        pv = inputs.pixel_values(os.path.join(base, s["video"]))
        ids = prompt_ids(tokenizer, model, inputs, s["question"], pv.shape[1])
        logits = model(input_ids=ids, pixel_values_videos=pv).logits[0, -1]
        top = torch.topk(logits, 5)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values_videos=pv,
                             max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos,
                             pad_token_id=tokenizer.pad_token_id)
        new = out[0, ids.shape[1]:].tolist()
        rows.append({"id": s["id"], "video": os.path.relpath(os.path.join(base, s["video"]), ROOT),
                     "question": s["question"], "expected_answer": s["answer"], "frames": pv.shape[1],
                     "input_ids": ids[0].tolist(), "greedy_tokens": new,
                     "greedy_answer": tokenizer.decode(new, skip_special_tokens=True),
                     "first_step_top5": {"token_ids": top.indices.tolist(),
                                         "logits": [round(float(v), 5) for v in top.values]}})
    return {"note": "transformers " + __import__("transformers").__version__ + ", float32 compute on the "
                    "folder's float16 weights, CPU; frames fed as pixel_values_videos (see "
                    "tools/builtin/check_video_folder.py); greedy, up to " + str(max_new_tokens) + " new tokens",
            "samples": rows}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.path.join("builtin", "models", "llava-onevision-video"))
    p.add_argument("--task", default=os.path.join("builtin", "tasks", "videos", "test.jsonl"))
    p.add_argument("--reference-task", default=os.path.join("builtin", "tasks", "videos", "sample.jsonl"))
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--max-new-tokens", type=int, default=8, help="as tokc bench's default")
    p.add_argument("--expect", type=float, default=None, help="fail (exit 1) unless the accuracy is this percent")
    p.add_argument("--no-log", action="store_true", help="do not write training_log.json and reference.json")
    args = p.parse_args()
    torch.set_num_threads(1)

    start = time.time()
    result = score(args.model, args.task, args.limit, args.max_new_tokens)
    print(json.dumps(result))
    if not args.no_log:
        path = os.path.join(args.model, "training_log.json")
        with open(path) as f:
            log = json.load(f)
        log["stages"].append({"stage": "check_video_folder", "command": "python3 " + " ".join(shlex.quote(a) for a in sys.argv),
                              "task": args.task, "seconds": round(time.time() - start, 1),
                              "transformers": __import__("transformers").__version__, **result})
        with open(path, "w") as f:
            json.dump(log, f, indent=2)
        with open(os.path.join(args.model, "reference.json"), "w") as f:
            json.dump(reference(args.model, args.reference_task, args.max_new_tokens), f, indent=1)
    if args.expect is not None and abs(result["accuracy"] - args.expect) > 0.05:
        print(f"transformers gives {result['accuracy']:.1f}%, expected {args.expect:.1f}%", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
