"""Trains the built-in video model: a tiny `LlavaOnevisionForConditionalGeneration` on tools/builtin/videos.py.

The result is an ordinary Hugging Face folder (config.json, model.safetensors in F16, tokenizer files,
chat_template.json, preprocessor_config.json, video_preprocessor_config.json, processor_config.json,
generation_config.json, training_log.json) that transformers loads with `from_pretrained`
(tools/builtin/check_video_folder.py checks it and scores the shipped test split).

Design, sized for a CPU (no GPU is lent to every session):
- 8 frames of 112 px, patch 14: 8x8 patches per frame; OneVision's video path pools them 2x2 (bilinear, as
  the model's `apply_pooling`) to 4x4 = 16 rows per frame, then one `image_newline`: 8 x 16 + 1 = 129 rows.
- Started from the built-in image LLaVA (builtin/models/llava): its CLIP tower (position embeddings
  interpolated from 16x16 to 8x8; its 6th layer dropped, since that model read layer 5 with
  `vision_feature_layer` -2 and this one reads the last of 5 with -1), projector, decoder and tokenizer
  (plus a `<video>` token). The decoder becomes a Qwen2 config, as in the public OneVision checkpoints:
  LLaMA's layers plus q/k/v biases, which start at zero, so the start is the image model's decoder exactly.
- Each training video carries up to --questions question/answer turns (all about the same video): the
  tower's 8 frames dominate a step's cost, a turn adds ~15 tokens, every answer is a label.

    nice -n 15 python3 tools/builtin/train_video.py --minutes 55 --checkpoint-every 8
    nice -n 15 python3 tools/builtin/train_video.py --init builtin/models/llava-onevision-video --minutes 40 \
        --aux-weight 0.5 --pos-weight 1 --tower-lr-scale 1 --position-lr-scale 25

Two optional training-only losses (their heads are not saved): --aux-weight, a dense label per video row
(its object's motion class, see `cell_labels`) read from a decoder layer; --pos-weight, each patch's grid
position regressed from the projector output (`PositionProbe`), with --position-lr-scale for the tower's
position embeddings. The shipped model's stages and exact commands are in its README and training_log.json.

Every run appends a stage (command, steps, seconds, samples, validation/test accuracy, loss log) to the
folder's training_log.json. `--init` continues from a folder this script wrote. Frames are fed as
`pixel_values_videos` directly (transformers' video processor needs torchvision): resized to the model size
(the shipped frames already are), rescaled by 1/255, normalised with the CLIP mean/std that
video_preprocessor_config.json records.
"""
import argparse
import json
import math
import os
import shlex
import shutil
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import videos  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
IMAGE_MODEL = os.path.join(ROOT, "builtin", "models", "llava")
SIZE, PATCH = videos.SIZE, 14
SIDE = SIZE // PATCH
POOLED = math.ceil(SIDE / 2) ** 2
VIDEO_TOKENS = videos.FRAMES * POOLED + 1
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}USER: "
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n{% elif c['type'] == 'video' %}<video>\n"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %} "
    "{% else %}ASSISTANT: {{ message['content'][0]['text'] }}</s>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
SPECIALS = ["<pad>", "<s>", "</s>", "<image>", "<video>"]


def prompt_text(question):
    """What the chat template renders for one user turn with one video, generation prompt added."""
    return f"<s>USER: <video>\n{question} ASSISTANT:"


def expand(tok, text):
    """Token ids of `text` with the one `<video>` token repeated VIDEO_TOKENS times (as the processor does)."""
    video_id = tok.token_to_id("<video>")
    ids = []
    for t in tok.encode(text).ids:
        ids.extend([video_id] * VIDEO_TOKENS if t == video_id else [t])
    return ids


def normalise(frames_u8):
    """uint8 [..., H, W, 3] -> CLIP-normalised float [..., 3, H, W] (rescale 1/255, then mean/std)."""
    x = (torch.as_tensor(frames_u8).float() / 255.0 - torch.from_numpy(MEAN)) / torch.from_numpy(STD)
    return x.movedim(-1, -3).contiguous()


def write_tokenizer(out):
    """The image model's byte-level BPE tokenizer plus a `<video>` special token (appended: id 380)."""
    from tokenizers import AddedToken, Tokenizer
    tok = Tokenizer.from_file(os.path.join(IMAGE_MODEL, "tokenizer.json"))
    if tok.token_to_id("<video>") is None:
        tok.add_special_tokens([AddedToken("<video>", special=True, normalized=False)])
    tok.save(os.path.join(out, "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "pad_token": "<pad>", "image_token": "<image>", "video_token": "<video>", "model_max_length": 512,
        "extra_special_tokens": {"image_token": "<image>", "video_token": "<video>"},
        "chat_template": CHAT_TEMPLATE, "add_bos_token": False,
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}, f, indent=2)
    return tok


def rename(name):
    """The image folder's (legacy LLaVA layout) weight name -> this model's."""
    if name == "language_model.lm_head.weight":
        return "lm_head.weight"
    if name.startswith("language_model.model."):
        return "model.language_model." + name[len("language_model.model."):]
    return "model." + name


def build_model(tok):
    """A OneVision model whose weights come from the image built-in (see the module docstring)."""
    from safetensors.torch import load_file
    from transformers import CLIPVisionConfig, LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, Qwen2Config
    ids = {t: tok.token_to_id(t) for t in SPECIALS}
    old = json.load(open(os.path.join(IMAGE_MODEL, "config.json")))
    ov, ot = old["vision_config"], old["text_config"]
    layers = ov["num_hidden_layers"] + 1 + old["vision_feature_layer"]  # tower layers the image model reads
    vision = CLIPVisionConfig(hidden_size=ov["hidden_size"], intermediate_size=ov["intermediate_size"],
                              num_hidden_layers=layers, num_attention_heads=ov["num_attention_heads"],
                              image_size=SIZE, patch_size=PATCH, projection_dim=ov["projection_dim"],
                              hidden_act=ov["hidden_act"])
    text = Qwen2Config(vocab_size=tok.get_vocab_size(), hidden_size=ot["hidden_size"],
                       intermediate_size=ot["intermediate_size"], num_hidden_layers=ot["num_hidden_layers"],
                       num_attention_heads=ot["num_attention_heads"], num_key_value_heads=ot["num_key_value_heads"],
                       max_position_embeddings=512, rms_norm_eps=ot["rms_norm_eps"], rope_theta=10000.0,
                       tie_word_embeddings=False, use_sliding_window=False,
                       bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"])
    pinpoints = [[SIZE * a, SIZE * b] for a in range(1, 7) for b in range(1, 7)]
    config = LlavaOnevisionConfig(vision_config=vision, text_config=text, image_token_index=ids["<image>"],
                                  video_token_index=ids["<video>"], projector_hidden_act="gelu",
                                  vision_feature_layer=-1, vision_feature_select_strategy="default",
                                  image_grid_pinpoints=pinpoints, vision_aspect_ratio="anyres_max_9",
                                  tie_word_embeddings=False)
    config.pad_token_id = ids["<pad>"]
    model = LlavaOnevisionForConditionalGeneration(config)

    source = load_file(os.path.join(IMAGE_MODEL, "model.safetensors"))
    state = model.state_dict()
    loaded = {}
    for name, value in source.items():
        value = value.float()
        name = rename(name)
        if ".encoder.layers." in name and int(name.split(".encoder.layers.")[1].split(".")[0]) >= layers:
            continue
        if name.endswith("position_embedding.weight"):
            old_side = int(round(math.sqrt(value.shape[0] - 1)))
            grid = value[1:].reshape(old_side, old_side, -1).permute(2, 0, 1)[None]
            grid = torch.nn.functional.interpolate(grid, size=(SIDE, SIDE), mode="bicubic", align_corners=False)
            value = torch.cat([value[:1], grid[0].permute(1, 2, 0).reshape(SIDE * SIDE, -1)])
        if name not in state:
            raise KeyError(f"image model weight {name} has no place in the OneVision model")
        if name.endswith("embed_tokens.weight") or name == "lm_head.weight":
            extra = state[name].shape[0] - value.shape[0]
            fill = value.mean(0, keepdim=True) if "embed" in name else torch.zeros(1, value.shape[1])
            value = torch.cat([value, fill.repeat(extra, 1)])
        loaded[name] = value
    for name in state:
        if name not in loaded and name.endswith(("q_proj.bias", "k_proj.bias", "v_proj.bias")):
            loaded[name] = torch.zeros_like(state[name])
    missing = [n for n in state if n not in loaded and n != "model.image_newline"]
    if missing:
        raise KeyError(f"weights not found in the image model: {missing}")
    model.load_state_dict(loaded, strict=False)
    return model


MOTION_CLASSES = 3 + 2 * len(videos.DIRECTIONS)


def cell_labels(video, cover=0.1):
    """Training-only dense labels, one per pooled video row (frame-major, 4x4 cells row-major per frame).

    0: no object; 1: a static object seen in an earlier frame; 2: a static object first seen in this frame;
    3 + 2 * direction + fast: a moving object's direction and speed class. Frame 0 rows get -100 (ignored):
    a causal decoder cannot know there what happens next. A cell belongs to the object covering at least
    `cover` of it (later objects win). Why: one answer per question gives the decoder little signal to learn
    to compare rows across frames; these labels ask every object row for what the questions need.
    """
    side = math.ceil(SIDE / 2)
    cell = SIZE // side
    labels = np.zeros((videos.FRAMES, side * side), dtype=np.int64)
    speeds = [o["speed"] for o in video["objects"] if "speed" in o]
    for t in range(videos.FRAMES):
        for o in video["objects"]:
            if o["color"][t] is None:
                continue
            mask = videos.shape_mask(o["shape"], o["x"][t], o["y"][t], o["r"])
            covered = mask.reshape(side, cell, side, cell).mean(axis=(1, 3)).reshape(-1) >= cover
            if "direction" in o:
                label = 3 + 2 * list(videos.DIRECTIONS).index(o["direction"]) + int(o["speed"] == max(speeds))
            else:
                label = 2 if t == 0 or o["color"][t - 1] is None else 1
            labels[t][covered] = label
    labels[0] = -100
    return labels.reshape(-1)


class RowProbe(torch.nn.Module):
    """A training-only linear head on one decoder layer's output at the video rows (see `cell_labels`)."""

    def __init__(self, model, layer):
        super().__init__()
        width = model.config.text_config.hidden_size
        self.head = torch.nn.Sequential(torch.nn.LayerNorm(width), torch.nn.Linear(width, MOTION_CLASSES))
        self.captured = None
        model.model.language_model.layers[layer].register_forward_hook(self._capture)

    def _capture(self, module, inputs, output):
        self.captured = output[0] if isinstance(output, tuple) else output

    def loss(self, rows, labels):
        """Cross-entropy over object rows plus 0.1 x over background rows; accuracy on moving-object rows (None
        when the batch has none)."""
        hidden = self.captured[rows[:, 0], rows[:, 1]]
        per_row = torch.nn.functional.cross_entropy(self.head(hidden.float()), labels, reduction="none", ignore_index=-100)
        valid = labels >= 0
        on_object = (labels > 0).float()
        background = (valid & (labels == 0)).float()
        loss = ((per_row * on_object).sum() / on_object.sum().clamp(min=1)
                + 0.1 * (per_row * background).sum() / background.sum().clamp(min=1))
        moving = labels >= 3
        if not bool(moving.any()):
            return loss, None
        accuracy = (self.head(hidden.float()).argmax(-1)[moving] == labels[moving]).float().mean()
        return loss, float(accuracy)


class PositionProbe(torch.nn.Module):
    """A training-only linear regression of each patch's grid column and row from the projector output.

    Why: a probe on the stage-1 model's pooled rows found no linearly decodable position (held-out R^2 < 0);
    the image tower, trained on colour and shape, had let its position embeddings fade. Direction and speed
    need where an object is in each frame, so this loss keeps the position in the features the decoder reads.
    """

    def __init__(self, model):
        super().__init__()
        width = model.config.text_config.hidden_size
        self.head = torch.nn.Sequential(torch.nn.LayerNorm(width), torch.nn.Linear(width, 2))
        self.captured = None
        model.model.multi_modal_projector.register_forward_hook(self._capture)
        grid = torch.arange(SIDE, dtype=torch.float32)
        grid = (grid - grid.mean()) / grid.std()
        self.register_buffer("target", torch.stack(torch.meshgrid(grid, grid, indexing="ij")[::-1], -1).reshape(-1, 2))

    def _capture(self, module, inputs, output):
        self.captured = output

    def loss(self):
        prediction = self.head(self.captured.float())
        return torch.nn.functional.mse_loss(prediction, self.target.expand_as(prediction))


def named_objects(video, question):
    """The objects a question names, in the order it names them (an object is named by its first colour)."""
    found = []
    for o in video["objects"]:
        name = next(c for c in o["color"] if c is not None)
        at = question.find(f" {name} ")
        if at >= 0:
            found.append((at, o))
    return [o for _, o in sorted(found, key=lambda item: item[0])]


def object_rows(o, frames, cover=0.1):
    """Video-row offsets (frame-major, pooled cells row-major) that object `o` covers in `frames`."""
    side = math.ceil(SIDE / 2)
    cell = SIZE // side
    rows = []
    for t in frames:
        mask = videos.shape_mask(o["shape"], o["x"][t], o["y"][t], o["r"])
        covered = mask.reshape(side, cell, side, cell).mean(axis=(1, 3)).reshape(-1) >= cover
        rows += [t * side * side + j for j in np.nonzero(covered)[0].tolist()]
    return rows


def attention_targets(video, question, heads):
    """Training-only targets for the attention of the position that predicts the answer: per head, the video
    rows it should attend to, or None when the question names no object.

    Why: a model trained on answers alone never learnt to find the rows of the object a question names
    (its direction answers were the same whichever object was named). These targets ask the heads of one
    decoder layer to read the named object at the start of the clip (even heads) and at its end (odd heads);
    for a question naming two objects (speed), heads 0-1 read the first and 2-3 the second. A direction or
    speed answer is then a comparison of what those heads return (where the object was, where it is).
    """
    objs = named_objects(video, question)
    if not objs:
        return None
    targets = []
    for h in range(heads):
        o = objs[(h // 2) % len(objs)] if len(objs) > 1 else objs[0]
        visible = [t for t in range(videos.FRAMES) if o["color"][t] is not None]
        frames = visible[:2] if h % 2 == 0 else visible[-2:]
        rows = object_rows(o, frames)
        if not rows:
            return None
        targets.append(rows)
    return targets


def batch_of(rng, tok, count, questions, motion_share=None, binding=0, heads=0):
    """`count` training videos: normalised frames [B, F, 3, H, W], input ids, attention mask, labels,
    and the dense row labels: (batch, position) of every frame row [N, 2] and its `cell_labels` [N]."""
    frames, rows, row_positions, row_labels, attention = [], [], [], [], []
    video_id = tok.token_to_id("<video>")
    for b in range(count):
        video, asked, description = videos.training_sample(rng, questions, motion_share, binding)
        frames.append(video)
        ids, is_label = [], []
        for turn, (_, question, answer) in enumerate(asked):
            text = prompt_text(question) if turn == 0 else f"USER: {question} ASSISTANT:"
            prompt = expand(tok, text)
            target = tok.encode(" " + answer + "</s>").ids
            wanted = attention_targets(description, question, heads) if heads else None
            if wanted is not None:
                # (batch, the position predicting the answer's first token, per-head video-row offsets)
                attention.append((b, len(ids) + len(prompt) - 1, wanted))
            ids += prompt + target
            is_label += [False] * len(prompt) + [True] * len(target)
        rows.append((ids, is_label))
        first = ids.index(video_id)
        attention = [(bb, q, [[first + r for r in rs] for rs in w]) if bb == b else (bb, q, w) for bb, q, w in attention]
        positions = torch.arange(first, first + VIDEO_TOKENS - 1)
        row_positions.append(torch.stack([torch.full_like(positions, b), positions], dim=1))
        row_labels.append(torch.from_numpy(cell_labels(description)))
    length = max(len(ids) for ids, _ in rows)
    pad = tok.token_to_id("<pad>")
    input_ids = torch.full((count, length), pad, dtype=torch.long)
    labels = torch.full((count, length), -100, dtype=torch.long)
    mask = torch.zeros((count, length), dtype=torch.long)
    for i, (ids, is_label) in enumerate(rows):
        row = torch.tensor(ids)
        input_ids[i, :len(ids)] = row
        labels[i, :len(ids)] = torch.where(torch.tensor(is_label), row, torch.tensor(-100))
        mask[i, :len(ids)] = 1
    return (normalise(np.stack(frames)), input_ids, mask, labels, torch.cat(row_positions), torch.cat(row_labels),
            attention)


def attention_loss(attentions, targets):
    """Mean over supervised (question, head) of −log(the attention mass on the target rows)."""
    terms = []
    for b, q, per_head in targets:
        for h, rows in enumerate(per_head):
            mass = attentions[b, h, q, rows].sum()
            terms.append(-torch.log(mass.clamp(min=1e-6)))
    if not terms:
        return None
    return torch.stack(terms).mean()


@torch.no_grad()
def evaluate(model, tok, samples, max_new=4):
    """Greedy answers for (frames, type, question, answer) samples; accuracy per type and overall."""
    model.eval()
    eos = tok.token_to_id("</s>")
    correct, total = {}, {}
    for frames, kind, question, answer in samples:
        x = torch.tensor([expand(tok, prompt_text(question))])
        pv = normalise(frames)[None]
        out = []
        for _ in range(max_new):
            nxt = int(model(input_ids=x, pixel_values_videos=pv).logits[0, -1].argmax())
            if nxt == eos:
                break
            out.append(nxt)
            x = torch.cat([x, torch.tensor([[nxt]])], dim=1)
        got = tok.decode(out).strip().lower()
        total[kind] = total.get(kind, 0) + 1
        correct[kind] = correct.get(kind, 0) + int(got == answer)
    model.train()
    acc = {k: round(correct[k] / total[k], 4) for k in sorted(total)}
    acc["overall"] = round(sum(correct.values()) / sum(total.values()), 4)
    return acc


def shipped_split(split):
    """(frames, type, question, answer) of a shipped split in builtin/tasks/videos."""
    base = os.path.join(ROOT, "builtin", "tasks", "videos")
    with open(os.path.join(base, f"{split}.jsonl")) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    return [(videos.load_frames(os.path.join(base, s["video"])), s["type"], s["question"], s["answer"]) for s in lines]


def write_processor_files(out):
    """The processor-side files the public llava-hf OneVision folders carry, for this model's sizes."""
    common = {"do_resize": True, "size": {"height": SIZE, "width": SIZE}, "resample": 3, "do_rescale": True,
              "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": MEAN.tolist(),
              "image_std": STD.tolist(), "do_convert_rgb": True}
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "LlavaOnevisionImageProcessor", "processor_class": "LlavaOnevisionProcessor",
                   **common, "do_pad": True,
                   "image_grid_pinpoints": [[SIZE * a, SIZE * b] for a in range(1, 7) for b in range(1, 7)]}, f, indent=2)
    with open(os.path.join(out, "video_preprocessor_config.json"), "w") as f:
        json.dump({"video_processor_type": "LlavaOnevisionVideoProcessor", "processor_class": "LlavaOnevisionProcessor",
                   **common, "do_sample_frames": False}, f, indent=2)
    with open(os.path.join(out, "processor_config.json"), "w") as f:
        json.dump({"processor_class": "LlavaOnevisionProcessor", "image_token": "<image>", "video_token": "<video>",
                   "num_image_tokens": SIDE * SIDE, "vision_feature_select_strategy": "default",
                   "vision_aspect_ratio": "anyres_max_9"}, f, indent=2)
    with open(os.path.join(out, "chat_template.json"), "w") as f:
        json.dump({"chat_template": CHAT_TEMPLATE}, f, indent=2)


def read_log(out):
    path = os.path.join(out, "training_log.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None


def save(model, out, log):
    """Writes the F16 folder and training_log.json (weights first, so a killed run leaves a loadable folder)."""
    import copy
    copy.deepcopy(model).half().save_pretrained(out + ".partial", safe_serialization=True)
    for name in os.listdir(out + ".partial"):
        os.replace(os.path.join(out + ".partial", name), os.path.join(out, name))
    os.rmdir(out + ".partial")
    write_processor_files(out)
    with open(os.path.join(out, "training_log.json"), "w") as f:
        json.dump(log, f, indent=2)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join("builtin", "models", "llava-onevision-video"))
    p.add_argument("--init", help="continue from a folder this script wrote (its weights and tokenizer)")
    p.add_argument("--minutes", type=float, default=55.0, help="wall-clock training budget")
    p.add_argument("--max-steps", type=int, default=1000000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--questions", type=int, default=4, help="question/answer turns per training video")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--tower-lr-scale", type=float, default=0.5)
    p.add_argument("--warmup", type=int, default=60)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--checkpoint-every", type=float, default=10.0, help="minutes between checkpoints (0: end only)")
    p.add_argument("--val-count", type=int, default=100, help="generated validation videos scored at checkpoints")
    p.add_argument("--aux-weight", type=float, default=0.0, help="weight of the dense row loss (0: off)")
    p.add_argument("--position-lr-scale", type=float, default=1.0,
                   help="learning rate of the tower's position embeddings relative to --lr")
    p.add_argument("--pos-weight", type=float, default=0.0, help="weight of the patch-position loss (0: off)")
    p.add_argument("--aux-layer", type=int, default=1, help="decoder layer whose output the row head reads")
    p.add_argument("--motion-share", type=float, default=None,
                   help="probability of a moving-objects video (direction/speed); default: the five types equally")
    p.add_argument("--binding", type=int, default=0,
                   help="training-only questions per video that name an object by colour (videos.binding_questions)")
    p.add_argument("--attn-weight", type=float, default=0.0,
                   help="weight of the answer-position attention loss (`attention_targets`; 0: off)")
    p.add_argument("--attn-layer", type=int, default=2, help="decoder layer whose heads the attention loss steers")
    p.add_argument("--note", help="recorded in the stage's log entry (why the stage was run)")
    p.add_argument("--no-test", action="store_true", help="skip scoring the shipped test split at the end")
    args = p.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    from tokenizers import Tokenizer
    if args.init:
        from transformers import LlavaOnevisionForConditionalGeneration
        for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
            if os.path.abspath(args.init) != os.path.abspath(args.out):
                shutil.copy(os.path.join(args.init, name), args.out)
        tok = Tokenizer.from_file(os.path.join(args.out, "tokenizer.json"))
        model = LlavaOnevisionForConditionalGeneration.from_pretrained(args.init, dtype=torch.float32)
        log = read_log(args.init) or {"stages": []}
    else:
        tok = write_tokenizer(args.out)
        model = build_model(tok)
        log = {"stages": []}
    if args.attn_weight > 0:
        # The attention loss reads attention probabilities, which only the eager kernel returns (training only:
        # the saved config does not record it).
        model.set_attn_implementation("eager")
    model.train()
    params = sum(p.numel() for p in model.parameters())
    log["model"] = {"class": "LlavaOnevisionForConditionalGeneration", "parameters": params,
                    "frames": videos.FRAMES, "size": SIZE, "patch": PATCH, "video_tokens": VIDEO_TOKENS,
                    "started_from": "builtin/models/llava (tower, projector, decoder, tokenizer + <video>)"}
    print(f"parameters: {params}, video tokens {VIDEO_TOKENS}", flush=True)

    # The tower's position embeddings get their own learning rate: the image tower's had faded to a spread of
    # ~0.04 across positions (against norms of ~1-2), and Adam moves a weight about lr per step, so at the
    # tower's rate the position signal direction and speed need would take thousands of steps to grow.
    embed = [q for n, q in model.named_parameters() if "position_embedding" in n]
    tower = [q for n, q in model.named_parameters() if "vision_tower" in n and "position_embedding" not in n]
    rest = [q for n, q in model.named_parameters() if "vision_tower" not in n]
    probe = RowProbe(model, args.aux_layer) if args.aux_weight > 0 else None
    if probe is not None:
        rest += list(probe.head.parameters())
    position = PositionProbe(model) if args.pos_weight > 0 else None
    if position is not None:
        rest += list(position.head.parameters())
    opt = torch.optim.AdamW([{"params": embed, "scale": args.position_lr_scale, "weight_decay": 0.0},
                             {"params": tower, "scale": args.tower_lr_scale}, {"params": rest, "scale": 1.0}],
                            lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    rng = np.random.default_rng(args.seed)
    val_rng = np.random.default_rng(videos.SPLIT_SEEDS["val"] + 1)
    validation = [videos.sample(val_rng, videos.QUESTION_TYPES[i % 5]) for i in range(args.val_count)]
    stage = {"command": "python3 " + " ".join(shlex.quote(a) for a in sys.argv), "init": args.init,
             "seed": args.seed, "batch": args.batch, "questions": args.questions, "lr": args.lr,
             "tower_lr_scale": args.tower_lr_scale, "aux_weight": args.aux_weight, "aux_layer": args.aux_layer,
             "pos_weight": args.pos_weight, "position_lr_scale": args.position_lr_scale,
             "motion_share": args.motion_share, "binding": args.binding,
             "attn_weight": args.attn_weight, "attn_layer": args.attn_layer,
             "threads": args.threads, "torch": torch.__version__,
             "device": "cpu", "steps": 0, "videos": 0, "seconds": 0.0, "checkpoints": [], "log": []}
    if args.note:
        stage["note"] = args.note
    log["stages"].append(stage)
    start = last_checkpoint = time.time()
    budget = args.minutes * 60
    step = 0

    def checkpoint(final):
        stage.update(steps=step, videos=step * args.batch, seconds=round(time.time() - start, 1))
        accuracy = evaluate(model, tok, validation)
        entry = {"step": step, "seconds": stage["seconds"], f"generated_val_accuracy_{args.val_count}": accuracy}
        stage["checkpoints"].append(entry)
        print(json.dumps(entry), flush=True)
        save(model, args.out, log)

    while True:
        elapsed = time.time() - start
        if elapsed > budget or step >= args.max_steps:
            break
        progress = min(1.0, max(elapsed / budget, step / args.max_steps))
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.5 * (1 + math.cos(math.pi * progress)) * 0.95 + 0.05)
        for g in opt.param_groups:
            g["lr"] = lr * g["scale"]
        heads = model.config.text_config.num_attention_heads if args.attn_weight > 0 else 0
        pv, input_ids, mask, labels, rows, row_labels, targets = batch_of(rng, tok, args.batch, args.questions,
                                                                         args.motion_share, args.binding, heads)
        out = model(input_ids=input_ids, attention_mask=mask, pixel_values_videos=pv, labels=labels,
                    output_attentions=args.attn_weight > 0)
        answer_loss = out.loss
        loss = answer_loss
        attn_loss = attention_loss(out.attentions[args.attn_layer], targets) if args.attn_weight > 0 else None
        if attn_loss is not None:
            loss = loss + args.attn_weight * attn_loss
        if probe is not None:
            aux_loss, moving_accuracy = probe.loss(rows, row_labels)
            loss = loss + args.aux_weight * aux_loss
        if position is not None:
            pos_loss = position.loss()
            loss = loss + args.pos_weight * pos_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([q for g in opt.param_groups for q in g["params"]], 1.0)
        opt.step()
        if step % args.log_every == 0:
            entry = {"step": step, "seconds": round(elapsed, 1), "loss": round(float(answer_loss.detach()), 4),
                     "lr": float(f"{lr:.3g}")}
            if probe is not None:
                entry["aux_loss"] = round(float(aux_loss.detach()), 4)
                entry["moving_row_accuracy"] = None if moving_accuracy is None else round(moving_accuracy, 3)
            if position is not None:
                entry["position_loss"] = round(float(pos_loss.detach()), 4)
            if attn_loss is not None:
                entry["attention_loss"] = round(float(attn_loss.detach()), 4)
            stage["log"].append(entry)
            print(json.dumps(entry), flush=True)
        step += 1
        if args.checkpoint_every > 0 and time.time() - last_checkpoint > args.checkpoint_every * 60:
            checkpoint(False)
            last_checkpoint = time.time()

    checkpoint(True)
    if not args.no_test:
        accuracy = evaluate(model.half().float(), tok, shipped_split("test"))
        stage["test_accuracy_training_loop_f16_weights"] = accuracy
        print("test accuracy:", json.dumps(accuracy), flush=True)
        with open(os.path.join(args.out, "training_log.json"), "w") as f:
            json.dump(log, f, indent=2)


if __name__ == "__main__":
    main()
