"""Sparse-Tuning's Dense Adapters on the frozen built-in ViT classifier, trained with and without EViT
token sparsification: the dual-phase study (does token compression speed up training as well as inference?).

Reproduces `liuting20/Sparse-Tuning` (`models/vit_image.py`, `models/adapter.py`, `main_image.py`; spec
/work/shared/methods/vit-video.md §2) on builtin/models/vit-shapes (8 blocks of width d = 128, 100 patch
tokens + [CLS]), scaled from its 12-block ViT-B by 8/12:

* Every block b gets an adapter on u = the residual stream after the attention residual (and after the
  block's pruning): h0 = ReLU(W1 u + b1) (d -> 64), h1 = W2 h0 + b2 (64 -> 32), h2 = W3 h1 + b3 (32 -> 64,
  weight zero-initialised), h3 = W4 [h1; h2] + b4 + h0 (96 -> 64), a_b = W5 h3 + b5 (64 -> d, weight
  zero-initialised); block output x = u + MLP(LN2(u)) + a_b. W1, W2, W4 take PyTorch's default Linear
  initialisation (kaiming-uniform, a = sqrt 5), every bias starts at zero.
* Dense feeding: the blocks fall into four groups that start at the pruning blocks, (0, 1), (2, 3),
  (4, 5), (6, 7) (ViT-B: (0-2), (3-5), (6-8), (9-11)); after the last block of a group the sum of its
  adapter outputs is added to x again, the first group's sum also holding the embeddings (patches +
  [CLS] + positions), the last group's leaving out the last block's adapter (ViT-B: a_9 + a_10, not a_11):
  after block 1: x += emb + a_0 + a_1; after 3: x += a_2 + a_3; after 5: x += a_4 + a_5; after 7: x += a_6.
* Sparsification (the `sparse` run; the `dense` run has none): at blocks 2, 4, 6 (ViT-B: 3, 6, 9), between the attention residual and
  the adapter/MLP, EViT keeps the left = ceil(0.7 (N - 1)) non-[CLS] tokens with the largest head-mean
  [CLS] attention (softmax row 0 of that block, patch columns), in descending order, and fuses the rest
  into one last token sum_j a_j x_j with the unnormalised attention weights: 101 -> 72 -> 52 -> 38 tokens.
* Head: the model's final LayerNorm (frozen) on [CLS], then BatchNorm1d(affine=False, eps=1e-6) and a new
  Linear (weight trunc-normal std 0.01, bias 0), as `main_image.py` does; trainable: the adapters and
  that Linear (and the BatchNorm's running statistics). Everything of the classifier is frozen.

The two runs see the same images in the same order, start from the same initial adapters and head, and
are interleaved step by step in one process, so that the load of the shared machine falls on both alike;
each run's training time is the sum of its own steps' wall-clock times (the batch's generation is not
counted). Writes builtin/models/vit-shapes/adapters/{sparse,dense}.safetensors, reference.json (logits of
the first test images for a runtime to check against) and the section "dense_adapters" of the model's
training_log.json:

    python3 tools/builtin/train_dense_adapters.py            # 600 steps per run, about 8 minutes on 2 cores
    python3 tools/builtin/train_dense_adapters.py --check    # the saved files reproduce the log
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as in train_vit.py: no spinning threads on shared cores
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes_cls  # noqa: E402
import train_vit  # noqa: E402

KEEP_RATE = 0.7
BN_EPS = 1e-6


def layout(depth):
    """Pruning blocks and dense groups scaled from ViT-B's 12 blocks (pruning at 3, 6, 9; groups end at
    2, 5, 8, 11): pruning at round(b * depth / 12) for b in 3, 6, 9; a group runs from one pruning block
    (or 0) to the block before the next (or the last block)."""
    prune = [round(b * depth / 12) for b in (3, 6, 9)]
    if len(set(prune)) != 3 or prune[0] < 1 or prune[-1] > depth - 2:
        raise SystemExit(f"depth {depth} is too shallow for three pruning blocks and four dense groups")
    starts = [0] + prune
    groups = [list(range(s, e)) for s, e in zip(starts, starts[1:] + [depth])]
    # What each group's sum holds: ViT-B leaves the last block's adapter out of the last sum.
    summed = [g if i < 3 else g[:-1] for i, g in enumerate(groups)]
    return prune, groups, summed


class DenseAdapter(torch.nn.Module):
    """`models/adapter.py`'s Adapter at width d (its down1, down2, up1, down3, up2 are w1, w2, w3, w4, w5)."""

    def __init__(self, d):
        super().__init__()
        self.w1 = torch.nn.Linear(d, 64)
        self.w2 = torch.nn.Linear(64, 32)
        self.w3 = torch.nn.Linear(32, 64)
        self.w4 = torch.nn.Linear(96, 64)
        self.w5 = torch.nn.Linear(64, d)
        with torch.no_grad():
            for lin in (self.w1, self.w2, self.w4):
                torch.nn.init.kaiming_uniform_(lin.weight, a=math.sqrt(5))
            for lin in (self.w3, self.w5):
                torch.nn.init.zeros_(lin.weight)
            for lin in (self.w1, self.w2, self.w3, self.w4, self.w5):
                torch.nn.init.zeros_(lin.bias)

    def forward(self, u):
        h0 = F.relu(self.w1(u))
        h1 = self.w2(h0)
        h2 = self.w3(h1)
        h3 = self.w4(torch.cat([h1, h2], dim=-1)) + h0
        return self.w5(h3)


class SparseTuned(torch.nn.Module):
    """The frozen classifier with Dense Adapters, a BatchNorm + Linear head and optional EViT pruning."""

    def __init__(self, classifier, sparse):
        super().__init__()
        config = classifier.config
        # Frozen modules are shared, not copied: two runs can hold the same classifier.
        self.frozen = [classifier]
        for p in classifier.parameters():
            p.requires_grad_(False)
        self.depth = config.num_hidden_layers
        self.heads = config.num_attention_heads
        d = config.hidden_size
        self.prune, self.groups, self.summed = layout(self.depth)
        self.sparse = sparse
        self.adapters = torch.nn.ModuleList([DenseAdapter(d) for _ in range(self.depth)])
        self.norm = torch.nn.BatchNorm1d(d, affine=False, eps=BN_EPS)
        self.linear = torch.nn.Linear(d, config.num_labels)
        with torch.no_grad():
            torch.nn.init.trunc_normal_(self.linear.weight, std=0.01)
            torch.nn.init.zeros_(self.linear.bias)

    def trainable(self):
        return list(self.adapters.parameters()) + list(self.linear.parameters())

    def forward(self, pixels, adapters=True, own_head=False, trace=None):
        """Logits. `adapters=False, own_head=True`: the frozen classifier itself (pruned when sparse).
        `trace`, a dict, receives "tokens" (rows each block's MLP ran on) and "kept" (per pruning block, the
        kept rows' indices among the non-[CLS] rows entering it, in kept order, per image)."""
        classifier = self.frozen[0]
        vit = classifier.vit
        emb = vit.embeddings(pixels)
        x = emb
        group_sum = None
        for b, layer in enumerate(vit.layers):
            x = self.attention(layer, x, prune=self.sparse and b in self.prune, trace=trace)
            if trace is not None:
                trace.setdefault("tokens", []).append(x.shape[1])
            u = x
            x = u + layer.mlp(layer.layernorm_after(u))
            if not adapters:
                continue
            a = self.adapters[b](u)
            x = x + a
            g = next(i for i, group in enumerate(self.groups) if b in group)
            if b in self.summed[g]:
                if b == self.groups[g][0]:
                    group_sum = emb + a if g == 0 else a
                else:
                    group_sum = group_sum + a
            if b == self.groups[g][-1]:
                x = x + group_sum
                group_sum = None
        cls = vit.layernorm(x[:, 0])
        if own_head:
            return classifier.classifier(cls)
        return self.linear(self.norm(cls))

    def attention(self, layer, x, prune, trace=None):
        """x after the block's attention residual; with `prune`, after EViT's reorganisation as well."""
        att = layer.attention
        h = layer.layernorm_before(x)
        B, N, d = h.shape
        q = att.q_proj(h).view(B, N, self.heads, -1).transpose(1, 2)
        k = att.k_proj(h).view(B, N, self.heads, -1).transpose(1, 2)
        v = att.v_proj(h).view(B, N, self.heads, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, scale=att.scaling)
        x = x + att.o_proj(out.transpose(1, 2).reshape(B, N, d))
        if not prune:
            return x
        left = math.ceil(KEEP_RATE * (N - 1))
        if left == N - 1:
            return x
        # Row 0 of the block's softmax attention per head ([CLS] query over all keys), averaged over heads,
        # patch columns: the authors' numbers (they take it from the full matrix), computed for one row.
        cls_attn = torch.softmax((q[:, :, :1] @ k.transpose(-2, -1)) * att.scaling, dim=-1).mean(dim=1)[:, 0, 1:]
        idx = torch.topk(cls_attn, left, dim=1, largest=True, sorted=True).indices
        if trace is not None:
            trace.setdefault("kept", []).append(idx.tolist())
        rest = x[:, 1:]
        kept = torch.gather(rest, 1, idx.unsqueeze(-1).expand(-1, -1, d))
        dropped = torch.ones(B, N - 1, dtype=torch.bool)
        dropped[torch.arange(B).unsqueeze(1), idx] = False
        compl = dropped.nonzero()[:, 1].view(B, N - 1 - left)  # ascending, as complement_idx
        weights = torch.gather(cls_attn, 1, compl)
        fused = (torch.gather(rest, 1, compl.unsqueeze(-1).expand(-1, -1, d)) * weights.unsqueeze(-1)).sum(1, keepdim=True)
        return torch.cat([x[:, :1], kept, fused], dim=1)


def token_plan(model):
    """(tokens entering each block's attention, tokens its MLP and adapter run on), from a forward pass."""
    trace = {}
    training = model.training
    model.eval()  # a batch of one, and no update of the BatchNorm statistics
    with torch.no_grad():
        model(torch.zeros(1, 3, shapes_cls.SIZE, shapes_cls.SIZE), trace=trace)
    model.train(training)
    n = model.frozen[0].config.image_size // model.frozen[0].config.patch_size
    return [n * n + 1] + trace["tokens"][:-1], trace["tokens"]


def flops(model):
    """Analytic multiply-adds per image (forward, and a training step's forward + backward), in GFLOPs
    (1 multiply-add = 2 FLOPs). Counted: every matrix product (patch embedding, q/k/v/o projections,
    QK^T and AV, MLP, adapters, head; with pruning also the [CLS] attention row q_0 K^T and the fused
    token's weighted sum). Not counted: LayerNorm, BatchNorm, softmax, GELU/ReLU, residual adds, top-k.
    Backward: a frozen projection needs only its input gradient (1x its forward), an attention product
    needs both operands' gradients (2x), an adapter or head linear needs its weight and input gradients
    (2x); block 0's attention and MLP need no backward, nor does the input of block 0's adapter (nothing
    trainable lies before them)."""
    config = model.frozen[0].config
    d, f, c = config.hidden_size, config.intermediate_size, config.num_labels
    patches = (config.image_size // config.patch_size) ** 2
    entering, after = token_plan(model)
    adapter = 64 * d + 32 * 64 + 64 * 32 + 64 * 96 + d * 64
    fwd = patches * 3 * config.patch_size ** 2 * d
    bwd = 0
    for b, (n, m) in enumerate(zip(entering, after)):
        projections = 4 * n * d * d
        products = 2 * n * n * d
        pruning = (n * d + (n - 1 - (m - 2)) * d) if m != n else 0
        mlp = 2 * m * d * f
        fwd += projections + products + pruning + mlp + m * adapter
        frozen_backward = 0 if b == 0 else projections + 2 * products + 2 * pruning + mlp
        # Block 0's adapter input needs no gradient: its first linear computes only its weight gradient.
        bwd += frozen_backward + m * (2 * adapter - (64 * d if b == 0 else 0))
    fwd += d * c
    bwd += 2 * d * c
    return {"forward_gflops": round(2 * fwd / 1e9, 4), "training_gflops": round(2 * (fwd + bwd) / 1e9, 4),
            "tokens_entering_blocks": entering, "tokens_after_pruning": after}


def save_adapters(model, path, metadata):
    from safetensors.torch import save_file
    tensors = {}
    for b, adapter in enumerate(model.adapters):
        for name in ("w1", "w2", "w3", "w4", "w5"):
            lin = getattr(adapter, name)
            tensors[f"adapters.{b}.{name}.weight"] = lin.weight.detach().contiguous()
            tensors[f"adapters.{b}.{name}.bias"] = lin.bias.detach().contiguous()
    tensors["head.norm.running_mean"] = model.norm.running_mean.detach().clone()
    tensors["head.norm.running_var"] = model.norm.running_var.detach().clone()
    tensors["head.linear.weight"] = model.linear.weight.detach().contiguous()
    tensors["head.linear.bias"] = model.linear.bias.detach().contiguous()
    save_file(tensors, path, metadata={k: str(v) for k, v in metadata.items()})


def timed_inference(runs, test, passes, batch=64):
    """Seconds each model takes to classify the test split `passes` times, batch by batch, interleaved
    (the order alternating), so that the shared machine's load falls on both alike."""
    seconds = {mode: 0.0 for mode in runs}
    for model in runs.values():
        model.eval()
    with torch.no_grad():
        for n in range(passes):
            for i, (images, _) in enumerate(train_vit.batches(test, batch)):
                x = train_vit.pixels(images)
                for mode in sorted(runs, reverse=(n + i) % 2 == 1):
                    wall = time.perf_counter()
                    runs[mode](x)
                    seconds[mode] += time.perf_counter() - wall
    return seconds


def load_adapters(model, path):
    """Puts the tensors `save_adapters` wrote back into `model` (strict: every name, every shape)."""
    from safetensors.torch import load_file
    tensors = load_file(path)
    expected = {f"adapters.{b}.{name}.{kind}" for b in range(model.depth) for name in ("w1", "w2", "w3", "w4", "w5")
                for kind in ("weight", "bias")}
    expected |= {"head.norm.running_mean", "head.norm.running_var", "head.linear.weight", "head.linear.bias"}
    if set(tensors) != expected:
        raise SystemExit(f"{path}: unexpected tensor names {sorted(set(tensors) ^ expected)}")
    with torch.no_grad():
        for b, adapter in enumerate(model.adapters):
            for name in ("w1", "w2", "w3", "w4", "w5"):
                getattr(adapter, name).weight.copy_(tensors[f"adapters.{b}.{name}.weight"])
                getattr(adapter, name).bias.copy_(tensors[f"adapters.{b}.{name}.bias"])
        model.norm.running_mean.copy_(tensors["head.norm.running_mean"])
        model.norm.running_var.copy_(tensors["head.norm.running_var"])
        model.linear.weight.copy_(tensors["head.linear.weight"])
        model.linear.bias.copy_(tensors["head.linear.bias"])


def reference(runs, images, names):
    """Logits, token counts and kept rows of a few test images: for a runtime to compare against."""
    x = train_vit.pixels(np.stack(images))
    out = {"images": names}
    cases = [("sparse", runs["sparse"], {}), ("dense", runs["dense"], {}),
             ("evit_without_adapters", runs["sparse"], {"adapters": False, "own_head": True})]
    for name, model, options in cases:
        model.eval()
        trace = {}
        with torch.no_grad():
            logits = model(x, trace=trace, **options)
        out[name] = {"tokens_after_pruning": trace["tokens"], "kept": trace.get("kept", []),
                     "logits": [[round(v, 5) for v in row] for row in logits.tolist()]}
    return out


def write_reference(ref, path):
    """JSON with one line per list of numbers (logits row, kept rows of one image)."""
    lines = ["{", f' "images": {json.dumps(ref["images"])},']
    cases = [k for k in ref if k != "images"]
    for i, name in enumerate(cases):
        case = ref[name]
        lines.append(f' "{name}": {{')
        lines.append(f'  "tokens_after_pruning": {json.dumps(case["tokens_after_pruning"])},')
        kept = [",\n   ".join(json.dumps(image) for image in block) for block in case["kept"]]
        lines.append('  "kept": [' + ", ".join(f"[\n   {k}]" for k in kept) + "],")
        lines.append('  "logits": [\n   ' + ",\n   ".join(json.dumps(row) for row in case["logits"]) + "]")
        lines.append(" }" + ("," if i < len(cases) - 1 else ""))
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(path) as f:
        if json.load(f) != ref:
            raise AssertionError("reference.json does not read back")


def check(args, classifier, runs, test):
    """--check: the saved adapters reproduce the logged test accuracy and reference.json."""
    out_dir = os.path.join(args.model, "adapters")
    with open(os.path.join(args.model, "training_log.json")) as f:
        logged = json.load(f)["dense_adapters"]["runs"]
    ok = True
    for mode, model in runs.items():
        load_adapters(model, os.path.join(out_dir, f"{mode}.safetensors"))
        model.eval()
        with torch.no_grad():
            result = train_vit.evaluate(model, test)
        same = result["accuracy"] == logged[mode]["test"]["accuracy"]
        ok &= same
        print(f"{mode}: test accuracy {result['accuracy']}% (logged {logged[mode]['test']['accuracy']}%)")
    with open(os.path.join(out_dir, "reference.json")) as f:
        saved = json.load(f)
    count = len(saved["images"])
    again = reference(runs, [s[0] for s in test[:count]], saved["images"])
    for name in ("sparse", "dense", "evit_without_adapters"):
        gap = float(np.abs(np.array(again[name]["logits"]) - np.array(saved[name]["logits"])).max())
        same = gap <= 2e-5 and again[name]["kept"] == saved[name]["kept"]
        ok &= same
        print(f"{name}: reference logits max |difference| {gap:.1e}, kept rows {'identical' if same else 'DIFFER'}")
    if not ok:
        raise SystemExit("the saved adapters do not reproduce the log")
    print("ok: the saved adapters reproduce the logged test accuracy and reference.json")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="builtin/models/vit-shapes")
    p.add_argument("--steps", type=int, default=600, help="training steps of each run")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--test-count", type=int, default=504)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--eval-every", type=int, default=100, help="validation accuracy of both runs every N steps (not timed)")
    p.add_argument("--val-count", type=int, default=504)
    p.add_argument("--reference-images", type=int, default=4)
    p.add_argument("--inference-passes", type=int, default=3, help="timed inference passes over the test split")
    p.add_argument("--check", action="store_true",
                   help="train nothing: load the saved adapters, compare test accuracy and reference.json with the log")
    args = p.parse_args()

    from transformers import ViTForImageClassification
    torch.set_num_threads(args.threads)
    classifier = ViTForImageClassification.from_pretrained(args.model, dtype=torch.float32).eval()
    runs = {}
    for mode in ("sparse", "dense"):
        torch.manual_seed(args.seed)  # the same initial adapters and head for both runs
        runs[mode] = SparseTuned(classifier, sparse=mode == "sparse")
    test = shapes_cls.split("test", args.test_count)

    # Our block loop without adapters, with the model's own head, is the classifier itself.
    probe = train_vit.pixels(np.stack([s[0] for s in test[:16]]))
    with torch.no_grad():
        ours = runs["dense"].eval()(probe, adapters=False, own_head=True)
        theirs = classifier(pixel_values=probe).logits
    gap = float((ours - theirs).abs().max())
    print(f"block loop vs ViTForImageClassification: max |logit difference| {gap:.2e}", flush=True)
    if gap > 1e-4:
        raise SystemExit("the re-implemented forward does not match the classifier")

    if args.check:
        check(args, classifier, runs, test)
        return

    def accuracy(forward):
        return train_vit.evaluate(forward, test)

    with torch.no_grad():
        baselines = {"classifier": accuracy(lambda x: runs["dense"](x, adapters=False, own_head=True)),
                     "classifier_evit_no_adapters": accuracy(lambda x: runs["sparse"](x, adapters=False, own_head=True))}
    print("frozen classifier on the test split:", json.dumps(baselines), flush=True)

    optimizers = {m: torch.optim.AdamW(r.trainable(), lr=args.lr, weight_decay=0.0) for m, r in runs.items()}
    seconds = {m: 0.0 for m in runs}
    cpu = {m: 0.0 for m in runs}
    logs = {m: [] for m in runs}
    evals = {m: [] for m in runs}
    validation = shapes_cls.split("val", args.val_count)
    data = shapes_cls.stream([shapes_cls.SPLIT_SEEDS["train"], args.seed, 1000])
    for r in runs.values():
        r.train()
    for step in range(args.steps):
        lr = args.lr * min(1.0, (step + 1) / args.warmup) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        drawn = [next(data) for _ in range(args.batch)]
        images, labels = next(train_vit.batches(drawn, args.batch))
        x = train_vit.pixels(images)
        # Alternate which run goes first, so that neither always follows the batch generation.
        for mode in (("sparse", "dense") if step % 2 == 0 else ("dense", "sparse")):
            model, opt = runs[mode], optimizers[mode]
            for g in opt.param_groups:
                g["lr"] = lr
            wall, proc = time.perf_counter(), time.process_time()
            loss = F.cross_entropy(model(x), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seconds[mode] += time.perf_counter() - wall
            cpu[mode] += time.process_time() - proc
            if step % args.log_every == 0 or step == args.steps - 1:
                logs[mode].append({"step": step, "seconds": round(seconds[mode], 1), "loss": round(float(loss.detach()), 4)})
        if step % args.log_every == 0 or step == args.steps - 1:
            print(json.dumps({"step": step, "lr": round(lr, 7),
                              **{m: logs[m][-1] for m in runs}}), flush=True)
        if (step + 1) % args.eval_every == 0:
            for mode, model in runs.items():
                model.eval()
                with torch.no_grad():
                    result = train_vit.evaluate(model, validation)
                model.train()
                evals[mode].append({"step": step + 1, "seconds": round(seconds[mode], 1), "val_accuracy": result["accuracy"]})
            print(json.dumps({m: evals[m][-1] for m in runs}), flush=True)

    results = {}
    out_dir = os.path.join(args.model, "adapters")
    os.makedirs(out_dir, exist_ok=True)
    inference = timed_inference(runs, test, args.inference_passes)
    for mode, model in runs.items():
        model.eval()
        with torch.no_grad():
            result = accuracy(model)
        plan = flops(model)
        results[mode] = {
            "pruning": {"blocks": model.prune, "keep_rate": KEEP_RATE, "fuse_token": True} if model.sparse else None,
            "steps": args.steps, "batch": args.batch, "images": args.steps * args.batch,
            "training_seconds": round(seconds[mode], 1), "training_cpu_seconds": round(cpu[mode], 1),
            "images_per_second": round(args.steps * args.batch / seconds[mode], 1),
            "test": result,
            "inference_images_per_second": round(args.inference_passes * len(test) / inference[mode], 1),
            **plan, "evaluations": evals[mode], "log": logs[mode],
        }
        print(mode, json.dumps({k: v for k, v in results[mode].items() if k != "log"}), flush=True)
        metadata = {"method": "sparse-tuning dense adapters", "base_model": os.path.basename(os.path.normpath(args.model)),
                    "prune_blocks": ",".join(map(str, model.prune)) if model.sparse else "",
                    "keep_rate": KEEP_RATE if model.sparse else 1.0, "fuse_token": "true" if model.sparse else "false",
                    "groups": ";".join(",".join(map(str, g)) for g in model.groups),
                    "group_sums": ";".join(",".join(map(str, g)) for g in model.summed),
                    "first_group_adds_embeddings": "true", "head": "layernorm,batchnorm,linear", "batchnorm_eps": BN_EPS}
        save_adapters(model, os.path.join(out_dir, f"{mode}.safetensors"), metadata)
    count = args.reference_images
    write_reference(reference(runs, [s[0] for s in test[:count]], [f"test-{i:05d}" for i in range(count)]),
                    os.path.join(out_dir, "reference.json"))

    study = {
        "command": "python3 tools/builtin/train_dense_adapters.py " + " ".join(sys.argv[1:]),
        "threads": args.threads, "lr": args.lr, "warmup": args.warmup, "seed": args.seed, "optimizer": "AdamW, weight decay 0",
        "schedule": "linear warm-up, cosine to 0 over the steps", "loss": "cross-entropy",
        "timing": "the two runs interleaved step by step in one process on the same batches; a run's seconds are "
                  "the sum of its steps' wall-clock times (forward, backward, optimizer step), batch generation excluded; "
                  "inference: both models on the same test batches of 64, interleaved, over all passes",
        "inference_passes": args.inference_passes,
        "trainable_parameters": sum(t.numel() for t in runs["sparse"].trainable()),
        "frozen_classifier": baselines,
        "speedup": {"training_wall_clock": round(seconds["dense"] / seconds["sparse"], 3),
                    "training_cpu": round(cpu["dense"] / cpu["sparse"], 3),
                    "inference_wall_clock": round(inference["dense"] / inference["sparse"], 3),
                    "training_flops": round(results["dense"]["training_gflops"] / results["sparse"]["training_gflops"], 3),
                    "inference_flops": round(results["dense"]["forward_gflops"] / results["sparse"]["forward_gflops"], 3)},
        "runs": results,
    }
    print("speedup:", json.dumps(study["speedup"]), flush=True)
    path = os.path.join(args.model, "training_log.json")
    with open(path) as f:
        log = json.load(f)
    log["dense_adapters"] = study
    with open(path, "w") as f:
        json.dump(log, f, indent=2)
        f.write("\n")
    print(f"saved {out_dir}/sparse.safetensors, dense.safetensors, reference.json and {path}")


if __name__ == "__main__":
    main()
