"""Deterministic single-object classification images for the built-in ViT classifier.

One coloured shape per image on the cluttered, shaded grey background of the built-in scenes: the
class is shape x colour (4 shapes x 6 colours = 24 classes, named "red circle", "green circle", ...).
The drawing is `scenes.render` (imported, not copied): the scene is drawn at the scenes' 224x224 and
box-filtered down to 80x80, which a ViT with 8-pixel patches sees as 10x10 = 100 patch tokens + [CLS],
most of them near-duplicate background: the regime in which token merging and pruning differ.

Splits come from distinct seeds: `train` (an endless stream for training, `stream`), `val` and `test`.
The fixed test split ships in builtin/tasks/shapes (test.jsonl in the `tokc bench` task format
{"id", "image", "answer": class name, "type": shape} + PNGs, and labels.json = id2label):

    python3 tools/builtin/shapes_cls.py --split test --count 504 --out builtin/tasks/shapes

rewrites it bit for bit. In the written splits image i has class i mod 24 (504 = 21 images per class);
in the training stream the class is drawn at random.
"""
import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402

SIZE = 80
SHAPES = scenes.SHAPES
COLOR_NAMES = scenes.COLOR_NAMES
LABELS = [f"{c} {s}" for s in SHAPES for c in COLOR_NAMES]
SPLIT_SEEDS = {"test": 960524, "val": 960777, "train": 961234}
# Object radius at the scenes' 224x224 scale: 9.3-15.7 px once scaled to 80x80, so that an object covers
# about 5-12 of the 100 patches. (With radii 18-36, 2-5 patches per object, and no per-patch loss, a ViT
# trained from scratch on the CPU had learned colour but little shape after 1,000 steps: 47% validation.)
RADIUS = (26.0, 44.0)


def label_of(shape, color):
    return SHAPES.index(shape) * len(COLOR_NAMES) + COLOR_NAMES.index(color)


def place_object(rng, label):
    """The one object of an image, in `scenes.render`'s object format, anywhere with a margin."""
    r = float(rng.uniform(*RADIUS))
    x, y = (float(v) for v in rng.uniform(r + 6, scenes.SIZE - r - 6, size=2))
    return {"shape": SHAPES[label // len(COLOR_NAMES)], "color": COLOR_NAMES[label % len(COLOR_NAMES)],
            "x": x, "y": y, "r": r, "phase": float(rng.uniform(0, 2 * math.pi))}


def sample(rng, label=None, with_object=False):
    """(uint8 image [80, 80, 3], label[, object]); a random class unless `label` is given."""
    from PIL import Image
    if label is None:
        label = int(rng.integers(len(LABELS)))
    obj = place_object(rng, label)
    image = scenes.render([obj], rng)
    small = np.asarray(Image.fromarray(image).resize((SIZE, SIZE), Image.Resampling.BOX))
    return (small, label, obj) if with_object else (small, label)


def patch_shapes(obj, patch=8, cover=0.25):
    """Per-patch shape index (row-major over the 10x10 patch grid; len(SHAPES) for background): a patch
    takes the object's shape when at least `cover` of its pixels lie inside the object. Evaluates
    `scenes.shape_mask` at the centres of the 80x80 pixels mapped back to the 224x224 drawing; draws
    nothing from any rng. Used only for train_vit.py's auxiliary per-patch loss."""
    scale = scenes.SIZE / SIZE
    centres = (np.arange(SIZE, dtype=np.float32) + 0.5) * scale - 0.5
    x = centres[None, :] - obj["x"]
    y = centres[:, None] - obj["y"]
    inside = scenes.shape_mask(obj["shape"], x, y, obj["r"], obj["phase"]).astype(np.float32)
    grid = SIZE // patch
    covered = inside.reshape(grid, patch, grid, patch).mean(axis=(1, 3)).reshape(-1) >= cover
    return np.where(covered, SHAPES.index(obj["shape"]), len(SHAPES)).astype(np.int64)


def stream(seed=SPLIT_SEEDS["train"], with_object=False):
    """Endless training samples (image, label[, object]) from `seed`, distinct from the val and test seeds."""
    rng = np.random.default_rng(seed)
    while True:
        yield sample(rng, with_object=with_object)


def split(name, count):
    """The fixed split `name` (val or test) as a list of (image, label); image i has class i mod 24."""
    rng = np.random.default_rng(SPLIT_SEEDS[name])
    return [sample(rng, i % len(LABELS)) for i in range(count)]


def write_split(name, count, out):
    from PIL import Image
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    with open(os.path.join(out, f"{name}.jsonl"), "w") as f:
        for i, (image, label) in enumerate(split(name, count)):
            ident = f"{name}-{i:05d}"
            path = f"images/{ident}.png"
            Image.fromarray(image).save(os.path.join(out, path), optimize=True)
            f.write(json.dumps({"id": ident, "image": path, "answer": LABELS[label],
                                "type": SHAPES[label // len(COLOR_NAMES)]}) + "\n")
    with open(os.path.join(out, "labels.json"), "w") as f:
        json.dump({str(i): name for i, name in enumerate(LABELS)}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=["test", "val"], default="test")
    parser.add_argument("--count", type=int, default=504)
    parser.add_argument("--out", default="builtin/tasks/shapes")
    args = parser.parse_args()
    write_split(args.split, args.count, args.out)
