"""Trains the built-in LLaVA model on synthetic scenes (tools/builtin/scenes.py) with `transformers`.

The result is an ordinary Hugging Face `LlavaForConditionalGeneration` folder (config.json,
model.safetensors in F16, tokenizer.json, tokenizer_config.json and chat_template.json with the chat
template, preprocessor_config.json, processor_config.json) that the Swift runtime and transformers'
Auto classes load like any other checkpoint (tools/builtin/check_hf_folder.py checks the latter).

    python3 tools/builtin/train.py --out builtin/models/llava --minutes 7 --device cuda

The shipped checkpoint took three stages (README "Built-in task and model"; every command is in its
training_log.json); the last one, which lifted shape answers from 50% to 100%, continues with
`--init M --questions 4 --aux-weight 1 --tower-lr-scale 3 --lr 3e-4 --warmup 100`.

Seeded and reproducible up to GPU kernel non-determinism. CPU works too (slowly: --device cpu).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402

IMAGE_TOKENS = 256
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}USER: "
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %} "
    "{% else %}ASSISTANT: {{ message['content'][0]['text'] }}</s>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def prompt_text(question):
    """What the chat template renders for one user turn with one image, generation prompt added."""
    return f"<s>USER: <image>\n{question} ASSISTANT:"


def build_tokenizer(out):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=["<pad>", "<s>", "</s>", "<image>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    lines = scenes.corpus() + ["USER: ", " ASSISTANT:", "\n", "A chat."]
    tok.train_from_iterator(lines * 20 + [" " + w for w in lines] * 20, trainer)
    tok.save(os.path.join(out, "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "pad_token": "<pad>", "image_token": "<image>", "model_max_length": 512,
        "chat_template": CHAT_TEMPLATE, "add_bos_token": False,
    }
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}, f, indent=2)
    return tok


def build_model(vocab, ids):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
    vision = CLIPVisionConfig(hidden_size=192, intermediate_size=768, num_hidden_layers=6, num_attention_heads=3,
                              image_size=224, patch_size=14, projection_dim=192, hidden_act="quick_gelu")
    text = LlamaConfig(vocab_size=vocab, hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                       rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                       bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"])
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=ids["<image>"],
                         projector_hidden_act="gelu", vision_feature_layer=-2,
                         vision_feature_select_strategy="default", image_seq_length=IMAGE_TOKENS)
    config.pad_token_id = ids["<pad>"]
    return LlavaForConditionalGeneration(config)


def pixels(image):
    x = (image.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x.transpose(2, 0, 1).copy())


def questions_for(objects, rng, count):
    """Up to `count` distinct questions about one scene (the first as `scenes.sample` would draw it)."""
    found, seen = [], set()
    for _ in range(4 * count):
        q = scenes.make_question(objects, rng)
        if q is not None and q[1] not in seen:
            seen.add(q[1])
            found.append(q)
            if len(found) == count:
                break
    return found


class SceneStream(torch.utils.data.IterableDataset):
    """Endless (image, token ids, label mask, patch labels) samples, seeded per DataLoader worker.

    With `questions` > 1 one image carries several question/answer turns in the chat template's
    multi-turn form (`... ASSISTANT: a</s>USER: q2 ASSISTANT: a2</s>`). Why: the vision tower
    and the 256 image tokens dominate the cost of a step, a turn adds ~15 tokens, and every answer
    is a label for the tower; the first turn is exactly the single-question prompt used at test time.
    Images travel as uint8 and are normalised on the training device (4x less to copy).
    """

    def __init__(self, tokenizer_path, seed, questions=1):
        self.tokenizer_path = tokenizer_path
        self.seed = seed
        self.questions = questions

    def __iter__(self):
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(self.tokenizer_path)
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        image_id = tok.token_to_id("<image>")
        while True:
            objects = scenes.place_objects(rng)
            asked = questions_for(objects, rng, self.questions)
            if not asked:
                continue
            image = scenes.render(objects, rng)
            shapes, colors = scenes.patch_labels(objects)
            ids, is_label = [], []
            for turn, (_, question, answer) in enumerate(asked):
                text = prompt_text(question) if turn == 0 else f"USER: {question} ASSISTANT:"
                for t in tok.encode(text).ids:
                    expanded = [image_id] * IMAGE_TOKENS if t == image_id else [t]
                    ids.extend(expanded)
                    is_label.extend([False] * len(expanded))
                target = tok.encode(" " + answer + "</s>").ids
                ids.extend(target)
                is_label.extend([True] * len(target))
            yield torch.from_numpy(image), ids, is_label, torch.from_numpy(shapes), torch.from_numpy(colors)


def collate(batch, pad_id):
    length = max(len(ids) for _, ids, _, _, _ in batch)
    input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), length), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), length), dtype=torch.long)
    for i, (_, ids, is_label, _, _) in enumerate(batch):
        row = torch.tensor(ids)
        input_ids[i, :len(ids)] = row
        labels[i, :len(ids)] = torch.where(torch.tensor(is_label), row, torch.tensor(-100))
        mask[i, :len(ids)] = 1
    return (torch.stack([b[0] for b in batch]), input_ids, mask, labels,
            torch.stack([b[3] for b in batch]), torch.stack([b[4] for b in batch]))


def normalise(images_u8):
    """uint8 [B, H, W, 3] on any device -> CLIP-normalised float [B, 3, H, W]."""
    mean = torch.tensor(MEAN, device=images_u8.device)
    std = torch.tensor(STD, device=images_u8.device)
    return ((images_u8.float() / 255.0 - mean) / std).permute(0, 3, 1, 2).contiguous()


class PatchProbe(torch.nn.Module):
    """Dense auxiliary objective: a linear head on the vision features the projector reads
    (the layer `vision_feature_layer` selects) predicts each patch's shape and colour.

    Why: the answer loss gives one label per image, and from it alone the tower learned colour and
    position but little shape (a linear probe on its object patches found 43% shape accuracy, 4
    classes). Per-patch labels give 256 labels per image. The head is training-only and not part of
    the checkpoint (it is kept beside it as aux_head.pt so that a later stage can continue it).
    """

    def __init__(self, model):
        super().__init__()
        tower = model.model.vision_tower
        layer = model.config.vision_feature_layer
        count = len(tower.encoder.layers)
        # hidden_states[k] is the output of encoder layer k - 1 (hidden_states[0] = embeddings).
        index = (layer if layer >= 0 else count + 1 + layer) - 1
        width = model.config.vision_config.hidden_size
        # LayerNorm first: the residual stream the projector reads is far from unit scale, and a
        # plain linear head started with a cross-entropy of ~30 whose gradient swamped the answer loss.
        self.head = torch.nn.Sequential(torch.nn.LayerNorm(width),
                                        torch.nn.Linear(width, len(scenes.SHAPES) + len(scenes.COLOR_NAMES) + 2))
        self.captured = None
        tower.encoder.layers[index].register_forward_hook(self._capture)

    def _capture(self, module, inputs, output):
        self.captured = output[0] if isinstance(output, tuple) else output

    def loss(self, shapes, colors):
        """Cross-entropy averaged over object patches, plus 0.1 x the average over background patches.

        Why the split: about 230 of 256 patches are background and become easy at once; a plain mean
        would scale the object patches' signal down by ~10x.
        """
        logits = self.head(self.captured[:, 1:].float())
        n_shape = len(scenes.SHAPES) + 1
        shape_logits, color_logits = logits[..., :n_shape], logits[..., n_shape:]
        per_patch = (torch.nn.functional.cross_entropy(shape_logits.transpose(1, 2), shapes, reduction="none")
                     + torch.nn.functional.cross_entropy(color_logits.transpose(1, 2), colors, reduction="none"))
        on_object = shapes < len(scenes.SHAPES)
        objects = on_object.float()
        loss = ((per_patch * objects).sum() / objects.sum().clamp(min=1)
                + 0.1 * (per_patch * (1 - objects)).sum() / (1 - objects).sum().clamp(min=1))
        accuracy = (shape_logits.argmax(-1)[on_object] == shapes[on_object]).float().mean()
        return loss, accuracy.detach()


@torch.no_grad()
def evaluate(model, tok, samples, device, max_new=4):
    """Greedy answers for (image, type, question, answer) samples; accuracy per type."""
    model.eval()
    image_id, eos = tok.token_to_id("<image>"), tok.token_to_id("</s>")
    correct, total = {}, {}
    for image, kind, question, answer in samples:
        ids = []
        for t in tok.encode(prompt_text(question)).ids:
            ids.extend([image_id] * IMAGE_TOKENS if t == image_id else [t])
        x = torch.tensor([ids], device=device)
        pv = pixels(image)[None].to(device)
        out = []
        for _ in range(max_new):
            logits = model(input_ids=x, pixel_values=pv).logits[0, -1]
            nxt = int(logits.argmax())
            if nxt == eos:
                break
            out.append(nxt)
            x = torch.cat([x, torch.tensor([[nxt]], device=device)], dim=1)
        got = tok.decode(out).strip()
        total[kind] = total.get(kind, 0) + 1
        correct[kind] = correct.get(kind, 0) + int(got == answer)
    model.train()
    acc = {k: correct[k] / total[k] for k in sorted(total)}
    acc["overall"] = sum(correct.values()) / sum(total.values())
    return acc


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="builtin/models/llava")
    p.add_argument("--skip-folder-check", action="store_true",
                   help="do not reload the saved folder with transformers' Auto classes to check its test accuracy")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--minutes", type=float, default=7.0, help="wall-clock training budget")
    p.add_argument("--max-steps", type=int, default=100000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=7e-4)
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--eval-count", type=int, default=500)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--init", help="continue from a folder written by this script (its tokenizer and weights)")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--aux-weight", type=float, default=0.0,
                   help="weight of the dense per-patch shape/colour loss on the vision features (0: off)")
    p.add_argument("--questions", type=int, default=1, help="question/answer turns per training image")
    p.add_argument("--tower-lr-scale", type=float, default=1.0,
                   help="learning rate of the vision tower (and the aux head) relative to --lr")
    p.add_argument("--checkpoint-every", type=float, default=0.0,
                   help="minutes between checkpoints written to --out (0: only at the end)")
    p.add_argument("--checkpoint-tar", help="also pack --out into this tar file at every checkpoint")
    args = p.parse_args()

    torch.manual_seed(args.seed)
    if args.device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    os.makedirs(args.out, exist_ok=True)
    if args.init:
        import shutil
        from tokenizers import Tokenizer
        from transformers import LlavaForConditionalGeneration
        for name in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
            if os.path.abspath(args.init) != os.path.abspath(args.out):
                shutil.copy(os.path.join(args.init, name), args.out)
        tok = Tokenizer.from_file(os.path.join(args.out, "tokenizer.json"))
        ids = {t: tok.token_to_id(t) for t in ["<pad>", "<s>", "</s>", "<image>"]}
        model = LlavaForConditionalGeneration.from_pretrained(args.init, dtype=torch.float32).to(args.device)
    else:
        tok = build_tokenizer(args.out)
        ids = {t: tok.token_to_id(t) for t in ["<pad>", "<s>", "</s>", "<image>"]}
        model = build_model(tok.get_vocab_size(), ids).to(args.device)
    params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {params}", flush=True)

    stream = SceneStream(os.path.join(args.out, "tokenizer.json"), args.seed, args.questions)
    loader = torch.utils.data.DataLoader(stream, batch_size=args.batch, num_workers=args.workers,
                                         collate_fn=lambda b: collate(b, ids["<pad>"]), prefetch_factor=4 if args.workers else None,
                                         persistent_workers=args.workers > 0, pin_memory=args.device.startswith("cuda"))
    probe = None
    tower = [p for n, p in model.named_parameters() if "vision_tower" in n]
    rest = [p for n, p in model.named_parameters() if "vision_tower" not in n]
    if args.aux_weight > 0:
        probe = PatchProbe(model).to(args.device)
        saved = os.path.join(args.init or "", "aux_head.pt")
        if args.init and os.path.exists(saved):
            probe.head.load_state_dict(torch.load(saved))
        tower += list(probe.head.parameters())
    trained = tower + rest
    groups = [{"params": tower, "scale": args.tower_lr_scale}, {"params": rest, "scale": 1.0}]
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    budget = args.minutes * 60
    warmup = args.warmup
    start = time.time()
    last_checkpoint = start
    rng = np.random.default_rng(scenes.SPLIT_SEEDS["val"])
    validation = [scenes.sample(rng)[:4] for _ in range(100)]
    log = []
    step = 0
    use_bf16 = args.device.startswith("cuda")

    def summary(accuracy, final):
        return {"parameters": params, "steps": step, "batch": args.batch, "seconds": round(time.time() - start, 1),
                "device": torch.cuda.get_device_name() if use_bf16 else "cpu", "torch": torch.__version__,
                "seed": args.seed, "init": args.init, "lr": args.lr, "tower_lr_scale": args.tower_lr_scale,
                "aux_weight": args.aux_weight, "questions": args.questions, "final": final,
                ("test_accuracy" if final else "validation_accuracy_100"): accuracy, "log": log}

    for images, input_ids, mask, labels, shapes, colors in loader:
        elapsed = time.time() - start
        if elapsed > budget or step >= args.max_steps:
            break
        progress = min(1.0, max(elapsed / budget, step / args.max_steps))
        lr = args.lr * min(1.0, (step + 1) / warmup) * (0.5 * (1 + math.cos(math.pi * progress)) * 0.95 + 0.05)
        for g in opt.param_groups:
            g["lr"] = lr * g["scale"]
        images, input_ids, mask, labels, shapes, colors = (
            t.to(args.device, non_blocking=True) for t in (images, input_ids, mask, labels, shapes, colors))
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_bf16):
            answer_loss = model(input_ids=input_ids, attention_mask=mask, pixel_values=normalise(images), labels=labels).loss
        loss = answer_loss
        if probe is not None:
            aux_loss, shape_accuracy = probe.loss(shapes, colors)
            loss = loss + args.aux_weight * aux_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        if step % args.log_every == 0:
            entry = {"step": step, "seconds": round(elapsed, 1), "loss": round(float(answer_loss.detach()), 4), "lr": lr}
            if probe is not None:
                entry["aux_loss"] = round(float(aux_loss.detach()), 4)
                entry["patch_shape_accuracy"] = round(float(shape_accuracy), 3)
            log.append(entry)
            print(json.dumps(entry), flush=True)
        step += 1
        if args.checkpoint_every > 0 and time.time() - last_checkpoint > args.checkpoint_every * 60:
            accuracy = evaluate(model, tok, validation, args.device)
            print("validation accuracy (100):", json.dumps(accuracy), flush=True)
            save(model, probe, args.out, summary(accuracy, False), args.checkpoint_tar)
            last_checkpoint = time.time()

    rng = np.random.default_rng(scenes.SPLIT_SEEDS["test"])
    test = [scenes.sample(rng)[:4] for _ in range(args.eval_count)]
    model = model.float()
    accuracy = evaluate(model, tok, test, args.device)
    print("test accuracy:", json.dumps(accuracy), flush=True)
    save(model, probe, args.out, summary(accuracy, True), args.checkpoint_tar)
    # The saved folder as a user loads it: transformers' Auto classes on the shipped test split must
    # score what the training loop measured (within one answer of 500: the F16 cast may flip a tie).
    if not args.skip_folder_check:
        import check_hf_folder
        shipped = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "builtin", "tasks", "scenes", "test.jsonl")
        folder_accuracy = check_hf_folder.score(args.out, shipped)["accuracy"]
        print(f"transformers Auto classes on the saved folder: {folder_accuracy:.1f}%", flush=True)
        if abs(folder_accuracy - 100 * accuracy["overall"]) > 0.25:
            sys.exit(f"the saved folder scores {folder_accuracy:.1f}% in transformers, the training loop {100 * accuracy['overall']:.1f}%")


def write_processor_files(out):
    """processor_config.json and chat_template.json, as the public llava-hf folders carry them, so
    that `AutoProcessor.from_pretrained(out)` builds a working LlavaProcessor (it needs patch_size and
    the feature-select strategy to count the image tokens) and has the chat template."""
    with open(os.path.join(out, "processor_config.json"), "w") as f:
        json.dump({"processor_class": "LlavaProcessor", "image_token": "<image>", "patch_size": 14,
                   "vision_feature_select_strategy": "default", "num_additional_image_tokens": 1}, f, indent=2)
    with open(os.path.join(out, "chat_template.json"), "w") as f:
        json.dump({"chat_template": CHAT_TEMPLATE}, f, indent=2)


def save(model, probe, out, summary, tar_path=None):
    """Writes the F16 Hugging Face folder (and the aux head beside it); packs it into tar_path if given."""
    import copy
    if probe is not None:
        torch.save(probe.head.state_dict(), os.path.join(out, "aux_head.pt"))
    copy.deepcopy(model).to("cpu").half().save_pretrained(out, safe_serialization=True)
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": 224},
                   "do_center_crop": True, "crop_size": {"height": 224, "width": 224}, "do_rescale": True,
                   "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": MEAN.tolist(),
                   "image_std": STD.tolist(), "do_convert_rgb": True, "resample": 3}, f, indent=2)
    write_processor_files(out)
    with open(os.path.join(out, "training_log.json"), "w") as f:
        json.dump(summary, f, indent=2)
    if tar_path:
        import tarfile
        with tarfile.open(tar_path + ".partial", "w") as tar:
            tar.add(out, arcname=os.path.basename(os.path.normpath(out)))
        os.replace(tar_path + ".partial", tar_path)


if __name__ == "__main__":
    main()
