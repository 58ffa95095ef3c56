"""Deterministic synthetic scenes and questions for the built-in vision-language model.

Each scene is a 224x224 RGB image (16x16 patches of 14 px = 256 visual tokens) with 1-4
coloured shapes on a cluttered, shaded grey background. Most background patches are near-duplicates and
the answer depends on a few object patches: the regime in which token-compression methods differ.

Questions have one-word answers and five types: color, shape, count, exist, position.

    python3 tools/builtin/scenes.py --split test --count 500 --out builtin/tasks/scenes
writes builtin/tasks/scenes/test.jsonl and builtin/tasks/scenes/images/test-00000.png ...
(the JSONL format is the `tokc bench` task format: id, image, question, answer, type).
"""
import argparse
import json
import math
import os

import numpy as np

SIZE = 224
SHAPES = ["circle", "square", "triangle", "star"]
COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 225),
    "yellow": (235, 210, 40),
    "purple": (150, 60, 190),
    "orange": (245, 140, 30),
}
COLOR_NAMES = list(COLORS)
NUMBERS = ["0", "1", "2", "3", "4"]
QUESTION_TYPES = ["color", "shape", "count", "exist", "position"]

_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)


def _window(cx, cy, r):
    """Pixel window (slices and coordinate grids relative to the centre) covering radius r."""
    x0, x1 = max(0, int(cx - r - 2)), min(SIZE, int(cx + r + 3))
    y0, y1 = max(0, int(cy - r - 2)), min(SIZE, int(cy + r + 3))
    return (slice(y0, y1), slice(x0, x1)), _XX[y0:y1, x0:x1] - cx, _YY[y0:y1, x0:x1] - cy


def shape_mask(shape, x, y, r, phase):
    """Boolean mask of one shape with outer radius r, on centred coordinates x, y."""
    if shape == "circle":
        return x * x + y * y <= r * r
    if shape == "square":
        h = r * 0.85
        return (np.abs(x) <= h) & (np.abs(y) <= h)
    if shape == "triangle":
        top, bottom = -r, r * 0.75
        t = (y - top) / (bottom - top)
        return (y >= top) & (y <= bottom) & (np.abs(x) <= t * r * 1.05)
    if shape == "star":
        rho = np.sqrt(x * x + y * y)
        theta = np.arctan2(y, x) + phase
        boundary = r * (0.42 + 0.58 * ((np.cos(5 * theta) + 1) / 2) ** 1.5)
        return rho <= boundary
    raise ValueError(shape)


def render(objects, rng):
    """Draws the background clutter and the objects; returns uint8 [224, 224, 3]."""
    base = rng.uniform(140, 200)
    tint = rng.uniform(-8, 8, size=3).astype(np.float32)
    img = np.empty((SIZE, SIZE, 3), dtype=np.float32)
    img[:] = base + tint
    # A gentle horizontal shading instead of per-pixel noise: background patches stay
    # near-duplicates, and the shipped test split compresses to a few KB per PNG (per-pixel noise
    # made it 68 KB per image; the model trained with noise answered the same without it).
    img += (np.linspace(-1, 1, SIZE, dtype=np.float32) * rng.uniform(-6, 6))[None, :, None]
    # Clutter: faint grey dots and strokes that are not objects.
    for _ in range(rng.integers(10, 25)):
        cx, cy = rng.uniform(0, SIZE, size=2)
        level = base + rng.uniform(-35, 35)
        if rng.random() < 0.5:
            rr = rng.uniform(1.5, 4)
            window, x, y = _window(cx, cy, rr)
            m = x * x + y * y <= rr * rr
        else:
            angle = rng.uniform(0, math.pi)
            length = rng.uniform(8, 30)
            window, x, y = _window(cx, cy, length / 2)
            d = np.abs(x * math.sin(angle) - y * math.cos(angle))
            along = x * math.cos(angle) + y * math.sin(angle)
            m = (d <= 1.0) & (np.abs(along) <= length / 2)
        img[window][m] = level
    for o in objects:
        window, x, y = _window(o["x"], o["y"], o["r"])
        m = shape_mask(o["shape"], x, y, o["r"], o["phase"])
        colour = np.array(COLORS[o["color"]], dtype=np.float32) + rng.uniform(-12, 12, size=3).astype(np.float32)
        img[window][m] = colour
    return np.clip(img, 0, 255).astype(np.uint8)


def patch_labels(objects, patch=14, cover=0.25):
    """Per-patch shape and colour indices (len(SHAPES) / len(COLOR_NAMES) for background).

    A patch takes an object's labels when at least `cover` of its pixels belong to the object.
    Used only for the dense auxiliary loss in train.py; draws nothing from the rng.
    """
    grid = SIZE // patch
    owner = np.full((SIZE, SIZE), -1, dtype=np.int8)
    for i, o in enumerate(objects):
        window, x, y = _window(o["x"], o["y"], o["r"])
        owner[window][shape_mask(o["shape"], x, y, o["r"], o["phase"])] = i
    blocks = owner.reshape(grid, patch, grid, patch).transpose(0, 2, 1, 3).reshape(grid * grid, patch * patch)
    shapes = np.full(grid * grid, len(SHAPES), dtype=np.int64)
    colors = np.full(grid * grid, len(COLOR_NAMES), dtype=np.int64)
    for i, o in enumerate(objects):
        covered = (blocks == i).mean(axis=1) >= cover
        shapes[covered] = SHAPES.index(o["shape"])
        colors[covered] = COLOR_NAMES.index(o["color"])
    return shapes, colors


def place_objects(rng):
    """1-4 non-overlapping objects with random shape, colour and size."""
    count = int(rng.integers(1, 5))
    objects = []
    attempts = 0
    while len(objects) < count and attempts < 200:
        attempts += 1
        r = float(rng.uniform(14, 28))
        x = float(rng.uniform(r + 4, SIZE - r - 4))
        y = float(rng.uniform(r + 4, SIZE - r - 4))
        if any(math.hypot(x - o["x"], y - o["y"]) < r + o["r"] + 8 for o in objects):
            continue
        objects.append({
            "shape": SHAPES[int(rng.integers(len(SHAPES)))],
            "color": COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))],
            "x": x, "y": y, "r": r, "phase": float(rng.uniform(0, 2 * math.pi)),
        })
    return objects


def make_question(objects, rng):
    """One question with a one-word answer, or None when the drawn type does not fit the scene."""
    kind = QUESTION_TYPES[int(rng.integers(len(QUESTION_TYPES)))]
    by_shape = {s: [o for o in objects if o["shape"] == s] for s in SHAPES}
    by_color = {c: [o for o in objects if o["color"] == c] for c in COLOR_NAMES}
    if kind == "color":
        unique = [s for s in SHAPES if len(by_shape[s]) == 1]
        if not unique:
            return None
        s = unique[int(rng.integers(len(unique)))]
        return kind, f"What color is the {s}?", by_shape[s][0]["color"]
    if kind == "shape":
        unique = [c for c in COLOR_NAMES if len(by_color[c]) == 1]
        if not unique:
            return None
        c = unique[int(rng.integers(len(unique)))]
        return kind, f"What shape is the {c} object?", by_color[c][0]["shape"]
    if kind == "count":
        if rng.random() < 0.4:
            return kind, "How many objects are there?", NUMBERS[len(objects)]
        s = SHAPES[int(rng.integers(len(SHAPES)))]
        return kind, f"How many {s}s are there?", NUMBERS[len(by_shape[s])]
    if kind == "exist":
        if rng.random() < 0.5:
            o = objects[int(rng.integers(len(objects)))]
            return kind, f"Is there a {o['color']} {o['shape']}?", "yes"
        for _ in range(20):
            c = COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
            s = SHAPES[int(rng.integers(len(SHAPES)))]
            if not any(o["color"] == c and o["shape"] == s for o in objects):
                return kind, f"Is there a {c} {s}?", "no"
        return None
    if kind == "position":
        unique = [o for o in objects
                  if sum(p["color"] == o["color"] and p["shape"] == o["shape"] for p in objects) == 1
                  and abs(o["x"] - SIZE / 2) > 20]
        if not unique:
            return None
        o = unique[int(rng.integers(len(unique)))]
        answer = "left" if o["x"] < SIZE / 2 else "right"
        return kind, f"Is the {o['color']} {o['shape']} on the left or the right?", answer
    raise ValueError(kind)


def sample(rng):
    """One (image uint8 [224,224,3], question type, question, answer, objects)."""
    while True:
        objects = place_objects(rng)
        q = make_question(objects, rng)
        if q is not None:
            kind, question, answer = q
            return render(objects, rng), kind, question, answer, objects


SPLIT_SEEDS = {"test": 20261126, "val": 777, "sample": 4242}


def write_split(split, count, out):
    from PIL import Image
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    rng = np.random.default_rng(SPLIT_SEEDS[split])
    with open(os.path.join(out, f"{split}.jsonl"), "w") as f:
        for i in range(count):
            image, kind, question, answer, _ = sample(rng)
            name = f"images/{split}-{i:05d}.png"
            Image.fromarray(image).save(os.path.join(out, name), optimize=True)
            f.write(json.dumps({"id": f"{split}-{i:05d}", "image": name, "question": question,
                                "answer": answer, "type": kind}) + "\n")


def corpus():
    """Every question and answer string the generator can produce (for tokenizer training)."""
    lines = []
    for s in SHAPES:
        lines.append(f"What color is the {s}?")
        lines.append(f"How many {s}s are there?")
        for c in COLOR_NAMES:
            lines.append(f"Is there a {c} {s}?")
            lines.append(f"Is the {c} {s} on the left or the right?")
    for c in COLOR_NAMES:
        lines.append(f"What shape is the {c} object?")
    lines.append("How many objects are there?")
    lines += SHAPES + COLOR_NAMES + NUMBERS + ["yes", "no", "left", "right"]
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=sorted(SPLIT_SEEDS), default="test")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--out", default="builtin/tasks/scenes")
    args = parser.parse_args()
    write_split(args.split, args.count, args.out)
