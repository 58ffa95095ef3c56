"""Trains the built-in ViT classifier (builtin/models/vit-shapes) from scratch on the shapes task.

A small `ViTForImageClassification` (80x80 input, 8-px patches = 100 patch tokens + [CLS], 8 blocks of
width 128 with 4 heads) learns the 24 shape x colour classes of tools/builtin/shapes_cls.py from an
endless seeded stream of training images, with transformers + torch on the CPU (2 threads by default),
time-boxed by --minutes. Besides the class cross-entropy, a training-only linear head on the final patch
rows predicts each patch's shape (`PatchProbe`, --aux-weight). A first run without it, on smaller
objects (2-5 patches each), had learned colour but little shape after 1,000 steps (47% validation accuracy);
with it and the task's present object sizes the model reached 98% after 750 steps (both changed at once).
The result is an ordinary Hugging Face folder: config.json (with id2label),
model.safetensors (F32), preprocessor_config.json for `ViTImageProcessor` (resize to 80x80, rescale by
1/255, normalise with mean = std = 0.5 — exactly what the training applies) and training_log.json
(command, minutes, steps, losses, validation and test accuracy, under "classifier").

    python3 tools/builtin/train_vit.py --out builtin/models/vit-shapes --minutes 20

The learning-rate schedule follows the wall clock (warm-up, then cosine to 5% of the peak at --minutes);
with --steps N it follows the step count instead and the run is reproducible (the log records the
steps a time-boxed run reached). tools/builtin/check_vit_folder.py loads the folder with the Auto classes
and scores the shipped test split.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

# Idle OpenMP threads sleep instead of spinning: on 2 cores shared with other work, spinning threads
# made a step 2-5x slower (and slowed the other work); set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes_cls  # noqa: E402

MEAN = [0.5, 0.5, 0.5]
STD = [0.5, 0.5, 0.5]


def build_model(width=128, layers=8, heads=4):
    from transformers import ViTConfig, ViTForImageClassification
    config = ViTConfig(image_size=shapes_cls.SIZE, patch_size=8, num_channels=3, hidden_size=width,
                       intermediate_size=4 * width, num_hidden_layers=layers, num_attention_heads=heads,
                       hidden_act="gelu", layer_norm_eps=1e-12, qkv_bias=True,
                       id2label={i: name for i, name in enumerate(shapes_cls.LABELS)},
                       label2id={name: i for i, name in enumerate(shapes_cls.LABELS)})
    config.architectures = ["ViTForImageClassification"]
    return ViTForImageClassification(config)


def pixels(images_u8):
    """uint8 [B, H, W, 3] -> float [B, 3, H, W]: rescale by 1/255, then (x - 0.5) / 0.5, as
    ViTImageProcessor does with the saved preprocessor_config.json (the images already have the model's size)."""
    x = torch.as_tensor(np.asarray(images_u8)).float() / 255.0
    mean, std = torch.tensor(MEAN), torch.tensor(STD)
    return ((x - mean) / std).permute(0, 3, 1, 2).contiguous()


def batches(samples, size):
    for i in range(0, len(samples), size):
        chunk = samples[i:i + size]
        yield np.stack([s[0] for s in chunk]), torch.tensor([s[1] for s in chunk])


@torch.no_grad()
def evaluate(forward, samples, batch=128):
    """Accuracy overall and per shape (the task's `type`) of `forward(pixels) -> logits`."""
    correct = np.zeros(len(shapes_cls.LABELS))
    total = np.zeros(len(shapes_cls.LABELS))
    for images, labels in batches(samples, batch):
        predicted = forward(pixels(images)).argmax(-1)
        for y, p in zip(labels.tolist(), predicted.tolist()):
            total[y] += 1
            correct[y] += int(y == p)
    per_shape = {}
    n_colors = len(shapes_cls.COLOR_NAMES)
    for s, shape in enumerate(shapes_cls.SHAPES):
        group = slice(s * n_colors, (s + 1) * n_colors)
        per_shape[shape] = round(100 * correct[group].sum() / max(1, total[group].sum()), 2)
    return {"accuracy": round(100 * correct.sum() / total.sum(), 2), "by_type": per_shape,
            "samples": int(total.sum())}


class PatchProbe(torch.nn.Module):
    """Training-only dense objective: a linear head on the final patch rows predicts each patch's shape
    (4 shapes + background, `shapes_cls.patch_shapes`). Why: the class label is one signal per image,
    and from it alone the ViT learned colour at once but shape slowly (the object covers a few of 100
    patches and its outline falls anywhere in them); the per-patch labels tell every object patch what it
    belongs to. The head is not part of the checkpoint (a continuation with --init starts a new one)."""

    def __init__(self, width):
        super().__init__()
        self.head = torch.nn.Linear(width, len(shapes_cls.SHAPES) + 1)

    def loss(self, patch_rows, shapes):
        """Cross-entropy averaged over object patches + 0.1 x the average over background patches (about
        90 of 100 patches are background and easy; a plain mean would drown the object patches)."""
        logits = self.head(patch_rows)
        per_patch = torch.nn.functional.cross_entropy(logits.transpose(1, 2), shapes, reduction="none")
        on_object = (shapes < len(shapes_cls.SHAPES)).float()
        return ((per_patch * on_object).sum() / on_object.sum().clamp(min=1)
                + 0.1 * (per_patch * (1 - on_object)).sum() / (1 - on_object).sum().clamp(min=1))


def write_preprocessor_config(out):
    size = shapes_cls.SIZE
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "ViTImageProcessor", "do_resize": True,
                   "size": {"height": size, "width": size}, "resample": 2, "do_rescale": True,
                   "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": MEAN, "image_std": STD,
                   "do_convert_rgb": True}, f, indent=2)
        f.write("\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="builtin/models/vit-shapes")
    p.add_argument("--minutes", type=float, default=20.0, help="wall-clock training budget")
    p.add_argument("--init", help="continue from a folder written by this script (its weights; a fresh optimizer)")
    p.add_argument("--steps", type=int, default=None, help="train exactly this many steps (schedule by steps)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--aux-weight", type=float, default=1.0,
                   help="weight of the per-patch shape loss on the final patch rows (0: off)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--val-count", type=int, default=504)
    p.add_argument("--test-count", type=int, default=504)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=1000)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    previous = []
    if args.init:
        from transformers import ViTForImageClassification
        model = ViTForImageClassification.from_pretrained(args.init, dtype=torch.float32)
        with open(os.path.join(args.init, "training_log.json")) as f:
            previous = json.load(f)["classifier"]["stages"]
    else:
        model = build_model(args.width, args.layers, args.heads)
    params = sum(t.numel() for t in model.parameters())
    print(f"parameters: {params}", flush=True)
    probe = PatchProbe(model.config.hidden_size)
    named = list(model.named_parameters()) + ([("probe." + n, t) for n, t in probe.named_parameters()]
                                               if args.aux_weight > 0 else [])
    decay = [t for n, t in named if t.ndim >= 2 and "position_embeddings" not in n]
    rest = [t for n, t in named if not (t.ndim >= 2 and "position_embeddings" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.999))
    data = shapes_cls.stream([shapes_cls.SPLIT_SEEDS["train"], args.seed, len(previous)], with_object=True)
    validation = shapes_cls.split("val", args.val_count)

    def forward(x):
        return model(pixel_values=x).logits

    budget = args.minutes * 60
    log, evals = [], []
    step = 0
    start = time.time()
    model.train()
    while True:
        elapsed = time.time() - start
        if (args.steps is not None and step >= args.steps) or (args.steps is None and elapsed >= budget):
            break
        progress = step / args.steps if args.steps is not None else elapsed / budget
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
        for g in opt.param_groups:
            g["lr"] = lr
        drawn = [next(data) for _ in range(args.batch)]
        images, labels = next(batches(drawn, args.batch))
        hidden = model.vit(pixel_values=pixels(images)).last_hidden_state
        class_loss = torch.nn.functional.cross_entropy(model.classifier(hidden[:, 0]), labels)
        loss = class_loss
        if args.aux_weight > 0:
            shapes = torch.from_numpy(np.stack([shapes_cls.patch_shapes(obj) for _, _, obj in drawn]))
            aux_loss = probe.loss(hidden[:, 1:], shapes)
            loss = loss + args.aux_weight * aux_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([t for _, t in named], 1.0)
        opt.step()
        if step % args.log_every == 0:
            entry = {"step": step, "seconds": round(elapsed, 1), "loss": round(float(class_loss.detach()), 4), "lr": round(lr, 7)}
            if args.aux_weight > 0:
                entry["aux_loss"] = round(float(aux_loss.detach()), 4)
            log.append(entry)
            print(json.dumps(entry), flush=True)
        step += 1
        if step % args.eval_every == 0:
            model.eval()
            result = evaluate(forward, validation)
            model.train()
            evals.append({"step": step, "seconds": round(time.time() - start, 1), "val_accuracy": result["accuracy"]})
            print(json.dumps(evals[-1]), flush=True)
    seconds = time.time() - start

    model.eval()
    val = evaluate(forward, validation)
    test = evaluate(forward, shapes_cls.split("test", args.test_count))
    print("validation:", json.dumps(val), flush=True)
    print("test:", json.dumps(test), flush=True)

    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    write_preprocessor_config(args.out)
    config = model.config
    stage = {
        "command": "python3 tools/builtin/train_vit.py " + " ".join(sys.argv[1:]),
        "minutes": round(seconds / 60, 2), "steps": step, "batch": args.batch, "images_seen": step * args.batch,
        "lr": args.lr, "weight_decay": args.weight_decay, "warmup": args.warmup, "seed": args.seed,
        "aux_weight": args.aux_weight,
        "threads": args.threads, "device": "cpu", "torch": torch.__version__, "dtype": "float32",
        "validation": val, "test": test, "evaluations": evals, "log": log,
    }
    stages = previous + [stage]
    summary = {
        "parameters": params, "width": config.hidden_size, "layers": config.num_hidden_layers,
        "heads": config.num_attention_heads, "image_size": config.image_size, "patch_size": config.patch_size,
        "classes": config.num_labels, "minutes": round(sum(s["minutes"] for s in stages), 2),
        "steps": sum(s["steps"] for s in stages), "test": test, "validation": val, "stages": stages,
    }
    path = os.path.join(args.out, "training_log.json")
    with open(path, "w") as f:
        json.dump({"classifier": summary}, f, indent=2)
        f.write("\n")
    print(f"saved {args.out} (test accuracy {test['accuracy']}%)")


if __name__ == "__main__":
    main()
