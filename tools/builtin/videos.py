"""Deterministic synthetic short videos with questions whose answer needs time, not one frame.

Each video is FRAMES (8) RGB frames of SIZE x SIZE (112) pixels: a flat grey background and 1-5 flat-coloured
shapes (circle, square, triangle) in six colours. Objects are named by colour in the questions, so one word
answers each question. Five question types, each about what happens over the clip:

  direction  "Which way does the red object move?"                 left / right / up / down
  speed      "Which moves faster, the red or the blue object?"     a colour
  appear     "Which object appears first?" / "... disappears first?" a colour
  count      "How many different objects appear in the video?"      2-5 (objects enter and leave: no frame shows all)
  color      "What color does the red object become?"              a colour (the object is named by its first colour)

The flat background is deliberate: most of a frame's patches, and most patches from frame to frame, are
near-duplicates, the regime in which video token-compression methods differ. Small frames and few colours
keep the shipped split small (PNG frames compress to a few hundred bytes).

    python3 tools/builtin/videos.py --split test --count 300 --out builtin/tasks/videos
writes builtin/tasks/videos/test.jsonl and builtin/tasks/videos/frames/test-00000/000.png ... 007.png
(one JSONL line per video: id, video (the frame folder), question, answer, type).

    python3 tools/builtin/videos.py --check [--out builtin/tasks/videos]
regenerates every shipped split (its count read from its JSONL) in a temporary folder and compares it with
the shipped files: the JSONL bytes and every frame's pixels must be identical (exit 1 otherwise); it also
reports whether the PNG bytes are identical (they depend on the zlib build, the pixels do not).
"""
import argparse
import hashlib
import json
import os
import sys
import tempfile

import numpy as np

SIZE = 112
FRAMES = 8
SHAPES = ["circle", "square", "triangle"]
COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 225),
    "yellow": (235, 210, 40),
    "purple": (150, 60, 190),
    "orange": (245, 140, 30),
}
COLOR_NAMES = list(COLORS)
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
QUESTION_TYPES = ["direction", "speed", "appear", "count", "color"]
SPLIT_SEEDS = {"test": 20261207, "val": 7070, "sample": 4343}

_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)


def shape_mask(shape, cx, cy, r):
    """Boolean [SIZE, SIZE] mask of one shape with outer radius r centred at (cx, cy); hard edges."""
    x, y = _XX - cx, _YY - cy
    if shape == "circle":
        return x * x + y * y <= r * r
    if shape == "square":
        h = r * 0.85
        return (np.abs(x) <= h) & (np.abs(y) <= h)
    if shape == "triangle":
        top, bottom = -r, r * 0.75
        t = (y - top) / (bottom - top)
        return (y >= top) & (y <= bottom) & (np.abs(x) <= t * r * 1.05)
    raise ValueError(shape)


def render(video):
    """All frames of a video description as uint8 [FRAMES, SIZE, SIZE, 3].

    An object is a dict with shape, r, and per-frame lists x, y, color (None where it is not visible)."""
    frames = np.empty((FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
    frames[:] = video["background"]
    for t in range(FRAMES):
        for o in video["objects"]:
            if o["color"][t] is not None:
                frames[t][shape_mask(o["shape"], o["x"][t], o["y"][t], o["r"])] = COLORS[o["color"][t]]
    return frames


def _pick(rng, items):
    return items[int(rng.integers(len(items)))]


def _static_positions(rng, radii):
    """Non-overlapping static centres for objects of the given radii, or None after too many tries."""
    placed = []
    for r in radii:
        for _ in range(200):
            x, y = (float(v) for v in rng.uniform(r + 3, SIZE - r - 3, size=2))
            if all(np.hypot(x - px, y - py) > r + pr + 6 for px, py, pr in placed):
                placed.append((x, y, r))
                break
        else:
            return None
    return [(x, y) for x, y, _ in placed]


def _base(rng):
    return {"background": int(rng.integers(150, 196)), "objects": []}


def motion_video(rng):
    """Two objects moving in straight lines, one fast and one slow (total travel >= 2.3x).

    Questions: each object's direction, and which one is faster."""
    while True:
        video = _base(rng)
        colors = rng.choice(len(COLOR_NAMES), size=2, replace=False)
        speeds = [float(rng.uniform(3.0, 4.0)), float(rng.uniform(9.0, 10.5))]
        if rng.random() < 0.5:
            speeds.reverse()
        for k in range(2):
            r = float(rng.uniform(8, 11))
            name = _pick(rng, list(DIRECTIONS))
            dx, dy = DIRECTIONS[name]
            travel = speeds[k] * (FRAMES - 1)
            lo, hi = r + 2, SIZE - r - 2
            # The coordinate along the motion starts where the whole path stays inside the frame.
            along = float(rng.uniform(lo, hi - travel))
            if dx + dy < 0:
                along = SIZE - along
            across = float(rng.uniform(lo, hi))
            path = [along + (dx + dy) * speeds[k] * t for t in range(FRAMES)]
            xs, ys = (path, [across] * FRAMES) if dx else ([across] * FRAMES, path)
            video["objects"].append({"shape": _pick(rng, SHAPES), "r": r, "x": xs, "y": ys,
                                     "color": [COLOR_NAMES[colors[k]]] * FRAMES, "direction": name,
                                     "speed": speeds[k]})
        a, b = video["objects"]
        if all(np.hypot(a["x"][t] - b["x"][t], a["y"][t] - b["y"][t]) > a["r"] + b["r"] + 3 for t in range(FRAMES)):
            return video


def events_video(rng, count=None):
    """2-5 static objects, each visible for a window of frames; no frame shows all of them.

    Questions: which appears first, which disappears first (when unique), how many objects in all."""
    while True:
        n = count or int(rng.integers(2, 6))
        radii = [float(rng.uniform(8, 11)) for _ in range(n)]
        centres = _static_positions(rng, radii)
        if centres is None:
            continue
        windows = []
        for _ in range(n):
            start = int(rng.integers(0, FRAMES - 1))
            end = int(rng.integers(start + 1, FRAMES))
            windows.append((start, end))
        if any(all(s <= t <= e for s, e in windows) for t in range(FRAMES)):
            continue
        video = _base(rng)
        colors = rng.choice(len(COLOR_NAMES), size=n, replace=False)
        for k in range(n):
            s, e = windows[k]
            video["objects"].append({"shape": _pick(rng, SHAPES), "r": radii[k],
                                     "x": [centres[k][0]] * FRAMES, "y": [centres[k][1]] * FRAMES,
                                     "color": [COLOR_NAMES[colors[k]] if s <= t <= e else None for t in range(FRAMES)],
                                     "window": windows[k]})
        return video


def change_video(rng):
    """2-3 static objects; one changes to a colour no other object has, between frames 2 and 5."""
    while True:
        n = int(rng.integers(2, 4))
        radii = [float(rng.uniform(8, 11)) for _ in range(n)]
        centres = _static_positions(rng, radii)
        if centres is not None:
            break
    video = _base(rng)
    colors = [COLOR_NAMES[i] for i in rng.choice(len(COLOR_NAMES), size=n + 1, replace=False)]
    at = int(rng.integers(2, 6))
    for k in range(n):
        seq = [colors[k]] * FRAMES
        if k == 0:
            seq = [colors[0]] * at + [colors[n]] * (FRAMES - at)
        video["objects"].append({"shape": _pick(rng, SHAPES), "r": radii[k], "x": [centres[k][0]] * FRAMES,
                                 "y": [centres[k][1]] * FRAMES, "color": seq})
    video["change"] = (colors[0], colors[n])
    return video


def questions(video):
    """Every (type, question, answer) the video supports."""
    found = []
    objs = video["objects"]
    if "change" in video:
        before, after = video["change"]
        found.append(("color", f"What color does the {before} object become?", after))
        return found
    if all("direction" in o for o in objs):
        for o in objs:
            found.append(("direction", f"Which way does the {o['color'][0]} object move?", o["direction"]))
        a, b = objs
        fast = a if a["speed"] > b["speed"] else b
        found.append(("speed", f"Which moves faster, the {a['color'][0]} or the {b['color'][0]} object?",
                      fast["color"][0]))
        return found
    name = lambda o: next(c for c in o["color"] if c is not None)  # noqa: E731
    starts = sorted(o["window"][0] for o in objs)
    if starts[0] < starts[1]:
        first = min(objs, key=lambda o: o["window"][0])
        found.append(("appear", "Which object appears first?", name(first)))
    ends = sorted(o["window"][1] for o in objs)
    if ends[0] < ends[1]:
        first = min(objs, key=lambda o: o["window"][1])
        found.append(("appear", "Which object disappears first?", name(first)))
    found.append(("count", "How many different objects appear in the video?", str(len(objs))))
    return found


def make_video(rng, kind):
    """A video that supports a question of type `kind`."""
    if kind in ("direction", "speed"):
        return motion_video(rng)
    if kind == "color":
        return change_video(rng)
    return events_video(rng)


def sample(rng, kind):
    """One (frames uint8 [FRAMES, SIZE, SIZE, 3], type, question, answer) with a question of type `kind`."""
    while True:
        video = make_video(rng, kind)
        fitting = [q for q in questions(video) if q[0] == kind]
        if fitting:
            q = _pick(rng, fitting)
            return render(video), q[0], q[1], q[2]


def binding_questions(video):
    """Training-only questions that name an object by its colour and ask what a single frame shows of it.

    Why: the test questions that name an object (direction, speed) were the ones a model trained on the five
    types failed: its answer logits were the same whichever object a direction question named (differences
    of ~0.01), i.e. it never learnt to find the named object's rows, since appear, count and colour-change can
    be answered without that. These questions teach that look-up alone: the object's shape (as the image
    built-in's "What shape is the red object?"), and, for a moving object, which half of the frame it is in
    at the start and at the end (the two reads a direction answer combines). Never part of a shipped split.
    """
    found = []
    margin = 12
    for o in video["objects"]:
        name = next(c for c in o["color"] if c is not None)
        found.append(("shape", f"What shape is the {name} object?", o["shape"]))
        if "direction" not in o:
            continue
        for when, t in (("start", 0), ("end", FRAMES - 1)):
            if abs(o["x"][t] - SIZE / 2) > margin:
                side = "left" if o["x"][t] < SIZE / 2 else "right"
                found.append(("where", f"Is the {name} object on the left or the right at the {when}?", side))
            if abs(o["y"][t] - SIZE / 2) > margin:
                side = "top" if o["y"][t] < SIZE / 2 else "bottom"
                found.append(("where", f"Is the {name} object at the top or the bottom at the {when}?", side))
    return found


def training_sample(rng, max_questions, motion_share=None, binding=0):
    """A random video, up to `max_questions` of its questions (shuffled) and its description, for training.

    `motion_share`: the probability of a moving-objects video (direction/speed questions; None: the five
    types equally, 2/5); `binding`: how many `binding_questions` join the video's own (shuffled in)."""
    if motion_share is None:
        kind = _pick(rng, QUESTION_TYPES)
    elif rng.random() < motion_share:
        kind = "direction"
    else:
        kind = _pick(rng, ["appear", "count", "color"])
    video = make_video(rng, kind)
    qs = questions(video)
    if binding > 0:
        extra = binding_questions(video)
        qs = qs + [extra[i] for i in rng.permutation(len(extra))[:binding]]
    order = rng.permutation(len(qs))[:max_questions]
    return render(video), [qs[i] for i in order], video


def write_split(split, count, out):
    """Writes split.jsonl and frames/split-NNNNN/TTT.png; the types cycle so each gets count/5 videos."""
    from PIL import Image
    rng = np.random.default_rng(SPLIT_SEEDS[split])
    with open(os.path.join(out, f"{split}.jsonl"), "w") as f:
        for i in range(count):
            frames, kind, question, answer = sample(rng, QUESTION_TYPES[i % len(QUESTION_TYPES)])
            folder = f"frames/{split}-{i:05d}"
            os.makedirs(os.path.join(out, folder), exist_ok=True)
            for t in range(FRAMES):
                Image.fromarray(frames[t]).save(os.path.join(out, folder, f"{t:03d}.png"), optimize=True)
            f.write(json.dumps({"id": f"{split}-{i:05d}", "video": folder, "question": question,
                                "answer": answer, "type": kind}) + "\n")


def load_frames(folder):
    """uint8 [frames, H, W, 3] from a folder of frame images sorted by name."""
    from PIL import Image
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(".png"))
    return np.stack([np.asarray(Image.open(os.path.join(folder, n)).convert("RGB")) for n in names])


def check(out):
    """Regenerates every split shipped in `out` and compares it; returns True when the pixels all match."""
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for split in sorted(SPLIT_SEEDS):
            shipped = os.path.join(out, f"{split}.jsonl")
            if not os.path.exists(shipped):
                continue
            with open(shipped, "rb") as f:
                lines = f.read()
            count = lines.count(b"\n")
            write_split(split, count, tmp)
            with open(os.path.join(tmp, f"{split}.jsonl"), "rb") as f:
                same_jsonl = f.read() == lines
            same_pixels = same_bytes = 0
            for i in range(count):
                folder = f"frames/{split}-{i:05d}"
                a, b = os.path.join(out, folder), os.path.join(tmp, folder)
                same_pixels += int(os.path.isdir(a) and np.array_equal(load_frames(a), load_frames(b)))
                same_bytes += int(os.path.isdir(a) and sorted(os.listdir(a)) == sorted(os.listdir(b)) and all(
                    _digest(os.path.join(a, n)) == _digest(os.path.join(b, n)) for n in os.listdir(b)))
            print(f"{split}: {count} videos, jsonl {'identical' if same_jsonl else 'DIFFERS'}, "
                  f"pixels identical in {same_pixels}/{count}, PNG bytes identical in {same_bytes}/{count}")
            ok = ok and same_jsonl and same_pixels == count
    return ok


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def corpus():
    """Every question and answer string the generator can produce (for tokenizer checks)."""
    lines = ["Which object appears first?", "Which object disappears first?",
             "How many different objects appear in the video?"]
    for c in COLOR_NAMES:
        lines.append(f"Which way does the {c} object move?")
        lines.append(f"What color does the {c} object become?")
        for d in COLOR_NAMES:
            if c != d:
                lines.append(f"Which moves faster, the {c} or the {d} object?")
    return lines + COLOR_NAMES + list(DIRECTIONS) + ["2", "3", "4", "5"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=sorted(SPLIT_SEEDS), default="test")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--out", default="builtin/tasks/videos")
    parser.add_argument("--check", action="store_true", help="regenerate the shipped splits and compare")
    args = parser.parse_args()
    if args.check:
        sys.exit(0 if check(args.out) else 1)
    os.makedirs(args.out, exist_ok=True)
    write_split(args.split, args.count, args.out)
