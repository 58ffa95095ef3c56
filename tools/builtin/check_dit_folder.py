"""Checks the built-in DiT pipeline (builtin/models/dit-shapes) with diffusers alone and writes its reference.json.

1. Loads the folder with `DiTPipeline.from_pretrained` (the F16 transformer widened to F32, as tokc does).
2. Reference runs for the Swift parity test (Tests/RuntimeTests/BuiltinDiTModelTests.swift): from one fixed
   starting noise (torch seed 7, [1, 4, 8, 8]), DiTPipeline with the folder's DDIM scheduler and with
   DPMSolverMultistepScheduler.from_config(...), a few steps each; per run the class, steps, guidance,
   timesteps, the final latents (before 1 / scaling_factor) and the uint8 image as numpy_to_pil rounds it.
3. Class accuracy of diffusers' own samples: --per-class images of each of the 24 classes (seeded generator,
   batched), scored by the built-in ViT classifier (builtin/models/vit-shapes, through transformers'
   ViTImageProcessor: resize to 80x80) with its label ids = the DiT's class ids; per setting (DDIM 50 steps
   guidance 4 = tokc generate's defaults, and a few others), overall and per shape. Also writes samples.png
   (one row per class, the first setting's images).

    python3 tools/builtin/check_dit_folder.py --folder builtin/models/dit-shapes
"""
import argparse
import json
import os
import sys

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes_cls  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from diffusers_capture import capture_final_latents  # noqa: E402

torch.set_num_threads(1)
torch.set_grad_enabled(False)

RUNS = [  # (name, scheduler class, class id, steps, guidance)
    ("ddim_class3_g4", "DDIMScheduler", 3, 10, 4.0),
    ("dpm_class20_g1", "DPMSolverMultistepScheduler", 20, 8, 1.0),
]
SETTINGS = [  # (scheduler, steps, guidance): the first is tokc generate's default
    ("DDIMScheduler", 50, 4.0),
    ("DDIMScheduler", 50, 1.0),
    ("DDIMScheduler", 20, 4.0),
    ("DPMSolverMultistepScheduler", 20, 4.0),
]


def load(folder):
    from diffusers import DiTPipeline
    pipe = DiTPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def with_scheduler(pipe, name):
    import diffusers
    pipe.scheduler = getattr(diffusers, name).from_config(pipe.scheduler.config)
    return pipe


def to_bytes(images):
    return (images * 255).round().astype(np.uint8)


def reference_runs(pipe):
    import diffusers.pipelines.dit.pipeline_dit as pipeline_dit
    shape = (1, pipe.transformer.config.in_channels, pipe.transformer.config.sample_size, pipe.transformer.config.sample_size)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(7))
    original = pipeline_dit.randn_tensor
    pipeline_dit.randn_tensor = lambda shape, **kw: noise.clone().reshape(shape)
    runs = []
    try:
        for name, scheduler, label, steps, guidance in RUNS:
            with_scheduler(pipe, scheduler)
            captured = capture_final_latents(pipe)
            image = pipe(class_labels=[label], guidance_scale=guidance, num_inference_steps=steps, output_type="np").images[0]
            latents = captured["latents"][0]
            runs.append({"name": name, "scheduler": scheduler, "class": label, "steps": steps, "guidance": guidance,
                         "timesteps": [int(t) for t in pipe.scheduler.timesteps],
                         "latents_shape": list(latents.shape), "latents": [float(v) for v in latents.flatten()],
                         "image_size": list(image.shape), "image": to_bytes(image).flatten().tolist()})
    finally:
        pipeline_dit.randn_tensor = original
    return [float(v) for v in noise.flatten()], runs


def class_accuracy(pipe, judge, per_class, scheduler, steps, guidance, seed):
    with_scheduler(pipe, scheduler)
    labels = [c for c in range(len(shapes_cls.LABELS)) for _ in range(per_class)]
    images = pipe(class_labels=labels, num_inference_steps=steps, guidance_scale=guidance,
                  generator=torch.Generator().manual_seed(seed), output_type="np").images
    images = to_bytes(images)
    predicted = judge.predict(images)
    correct = predicted == np.array(labels)
    n_colors = len(shapes_cls.COLOR_NAMES)
    by_shape = {shape: float(correct[[i for i, y in enumerate(labels) if y // n_colors == s]].mean() * 100)
                for s, shape in enumerate(shapes_cls.SHAPES)}
    colour_right = float(np.mean([p % n_colors == y % n_colors for p, y in zip(predicted, labels)]) * 100)
    shape_right = float(np.mean([p // n_colors == y // n_colors for p, y in zip(predicted, labels)]) * 100)
    return {"scheduler": scheduler, "steps": steps, "guidance": guidance, "seed": seed, "samples": len(labels),
            "accuracy": float(correct.mean() * 100), "by_shape": by_shape,
            "colour_accuracy": colour_right, "shape_accuracy": shape_right}, images, labels


def write_grid(path, images, per_class):
    from PIL import Image
    n = len(images) // per_class
    size = images.shape[1]
    grid = np.full((n * (size + 2), per_class * (size + 2), 3), 255, dtype=np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, per_class)
        grid[r * (size + 2):r * (size + 2) + size, c * (size + 2):c * (size + 2) + size] = im
    Image.fromarray(grid).save(path, optimize=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", default=os.path.join("builtin", "models", "dit-shapes"))
    parser.add_argument("--per-class", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from train_dit import Judge
    import diffusers
    pipe = load(args.folder)
    noise, runs = reference_runs(pipe)
    judge = Judge()
    evaluations = []
    for i, (scheduler, steps, guidance) in enumerate(SETTINGS):
        result, images, _ = class_accuracy(pipe, judge, args.per_class, scheduler, steps, guidance, args.seed)
        evaluations.append(result)
        print(f"{scheduler} steps {steps} guidance {guidance}: accuracy {result['accuracy']:.1f}% "
              f"(shape {result['shape_accuracy']:.1f}%, colour {result['colour_accuracy']:.1f}%) {result['by_shape']}", flush=True)
        if i == 0:
            write_grid(os.path.join(args.folder, "samples.png"), images, args.per_class)
    reference = {
        "generated_by": "python3 tools/builtin/check_dit_folder.py --folder " + args.folder,
        "diffusers": diffusers.__version__, "torch": torch.__version__,
        "noise_seed": 7, "noise_shape": [1, pipe.transformer.config.in_channels] + [pipe.transformer.config.sample_size] * 2,
        "noise": noise, "runs": runs,
        "classifier": "builtin/models/vit-shapes (ViTImageProcessor: bilinear resize to 80x80)",
        "class_accuracy": evaluations,
    }
    with open(os.path.join(args.folder, "reference.json"), "w") as f:
        json.dump(reference, f)
        f.write("\n")


if __name__ == "__main__":
    main()
