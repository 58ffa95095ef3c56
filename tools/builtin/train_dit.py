"""Trains the built-in class-conditional DiT pipeline (builtin/models/dit-shapes) on the CPU.

Three stages, each logged to training_log.json in the output folder:

1. data: 32x32 RGB images of the built-in shapes (tools/builtin/shapes_cls.py: one coloured shape on the
   cluttered grey background, class = shape x colour, the 24 classes of builtin/models/vit-shapes with the
   same ids), drawn at 80x80 by `shapes_cls.sample` and box-filtered to 32x32. The training images come from
   the shapes' training seed, the held-out images from its validation split: both regenerate bit for bit.
   (The classifier, which resizes to 80x80, scores such 32-px images as well as its own 80-px ones.)
2. vae: a tiny diffusers `AutoencoderKL` (block_out_channels 16/32/64, one ResNet per down block, no mid-block
   attention, 4 latent channels): 32x32x3 pixels <-> 8x8x4 latents. Loss: squared error with the object's
   pixels weighted up (the object is what the classifier has to recognise, the clutter is most of the
   image) plus a small KL term. The latent scaling factor is 1 / std of the training latents, as for
   Stable Diffusion's VAE.
3. dit: a diffusers `DiTTransformer2DModel` (patch 2 on the 8x8 latents = 16 tokens, adaLN-Zero, learned
   sigma: 8 output channels) trained as DiT is: the linear 1000-step schedule, epsilon MSE plus the
   variational bound for the variance channels (with the mean held fixed, as in improved DDPM), class
   labels replaced by the null class 1000 (DiTPipeline's hard-coded null id, hence num_embeds_ada_norm 1000;
   only ids 0-23 are trained) for 10% of the samples so that classifier-free guidance works, and an EMA of
   the weights, which is what is saved. Every --eval-every steps the EMA model samples 2 images per class
   through diffusers' own DiTPipeline (DDIM, 25 steps, guidance 4, fixed seed) and the built-in ViT scores
   them: the class accuracy in the log.

The folder is `DiTPipeline.save_pretrained`'s layout: model_index.json, transformer/ (F16), vae/ (F32),
scheduler/ (DDIMScheduler with facebook/DiT-XL-2-256's config). Everything is seeded; with --vae-steps and
--dit-steps fixed and torch on 1 thread, a rerun repeats the weights (the minutes caps only stop a slow run
early; the log records the steps reached).

    python3 tools/builtin/train_dit.py --out builtin/models/dit-shapes

tools/builtin/check_dit_folder.py then writes the folder's reference.json (diffusers' latents for fixed
noise, and the class accuracy of its samples).
"""
import argparse
import copy
import json
import math
import os
import platform
import sys
import time

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402
import shapes_cls  # noqa: E402

IMAGE = 32
NULL_CLASS = 1000  # DiTPipeline's class_null
CLASSES = len(shapes_cls.LABELS)
CLASSIFIER = os.path.join("builtin", "models", "vit-shapes")

# facebook/DiT-XL-2-256's scheduler config (the DDPM training schedule of DiT, sampled with DDIM).
SCHEDULER_CONFIG = {
    "_class_name": "DDIMScheduler",
    "beta_end": 0.02,
    "beta_schedule": "linear",
    "beta_start": 0.0001,
    "clip_sample": False,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": True,
    "steps_offset": 0,
    "trained_betas": None,
}


def log_line(message):
    print(time.strftime("%H:%M:%S"), message, flush=True)


# ---------------------------------------------------------------- data

def object_mask(obj):
    """Fraction of each 32x32 pixel inside the object (4x4 supersampled), from the 224-px drawing's geometry."""
    sub = 4
    scale = scenes.SIZE / (IMAGE * sub)
    centres = (np.arange(IMAGE * sub, dtype=np.float32) + 0.5) * scale - 0.5
    inside = scenes.shape_mask(obj["shape"], centres[None, :] - obj["x"], centres[:, None] - obj["y"],
                               obj["r"], obj["phase"]).astype(np.float32)
    return inside.reshape(IMAGE, sub, IMAGE, sub).mean(axis=(1, 3))


def shrink(image80):
    from PIL import Image
    return np.asarray(Image.fromarray(image80).resize((IMAGE, IMAGE), Image.Resampling.BOX))


def training_images(count, seed):
    """(uint8 [N, 32, 32, 3], labels [N], object masks [N, 32, 32]) from the shapes' training stream."""
    images, labels, masks = [], [], []
    for (image, label, obj), _ in zip(shapes_cls.stream(seed, with_object=True), range(count)):
        images.append(shrink(image))
        labels.append(label)
        masks.append(object_mask(obj))
    return np.stack(images), np.array(labels), np.stack(masks)


def validation_images(count):
    pairs = shapes_cls.split("val", count)
    return np.stack([shrink(im) for im, _ in pairs]), np.array([lb for _, lb in pairs])


def to_pixels(images_u8):
    return torch.as_tensor(images_u8).float().div(127.5).sub(1).permute(0, 3, 1, 2).contiguous()


def to_bytes(pixels):
    """[-1, 1] [B, 3, H, W] -> uint8 [B, H, W, 3] as diffusers' numpy_to_pil rounds it."""
    x = (pixels / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return (x * 255).round().astype(np.uint8)


# ---------------------------------------------------------------- classifier (the judge)

class Judge:
    """The built-in ViT classifier through transformers' own image processor (resize to 80x80, bilinear)."""

    def __init__(self, folder=CLASSIFIER):
        from transformers import ViTForImageClassification, ViTImageProcessor
        self.model = ViTForImageClassification.from_pretrained(folder).eval()
        self.processor = ViTImageProcessor.from_pretrained(folder)

    @torch.no_grad()
    def predict(self, images_u8):
        from PIL import Image
        out = []
        for i in range(0, len(images_u8), 64):
            pil = [Image.fromarray(im) for im in images_u8[i:i + 64]]
            out.append(self.model(**self.processor(images=pil, return_tensors="pt")).logits.argmax(-1))
        return torch.cat(out).numpy()

    def accuracy(self, images_u8, labels):
        return float((self.predict(images_u8) == np.asarray(labels)).mean() * 100)


# ---------------------------------------------------------------- VAE

def build_vae():
    from diffusers import AutoencoderKL
    return AutoencoderKL(
        in_channels=3, out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64), layers_per_block=1, latent_channels=4, norm_num_groups=8,
        sample_size=IMAGE, mid_block_add_attention=False)


def train_vae(args, images, masks, val_images):
    torch.manual_seed(args.seed)
    vae = build_vae()
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(args.seed + 1)
    start, losses, step = time.time(), [], 0
    pixels_all = to_pixels(images)
    weights_all = torch.as_tensor(1 + args.object_weight * masks).unsqueeze(1)
    while step < args.vae_steps and time.time() - start < args.vae_minutes * 60:
        lr = args.vae_lr * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.vae_steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(len(images), (args.vae_batch,), generator=g)
        x, w = pixels_all[idx], weights_all[idx]
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=g)
        recon = vae.decode(z).sample
        rec = (w * (recon - x) ** 2).mean()
        kl = posterior.kl().mean() / z[0].numel()
        loss = rec + args.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        losses.append((rec.item(), kl.item()))
        if step % 50 == 0 or step == 1:
            r = np.mean([a for a, _ in losses[-50:]])
            log_line(f"vae step {step}: weighted mse {r:.5f} kl/dim {losses[-1][1]:.3f} lr {lr:.2e}")
    minutes = (time.time() - start) / 60
    vae.eval()
    with torch.no_grad():
        val = to_pixels(val_images)
        recon = torch.cat([vae.decode(vae.encode(val[i:i + 64]).latent_dist.mean).sample for i in range(0, len(val), 64)])
        val_mse = float(((recon.clamp(-1, 1) - val) ** 2).mean())
    curve = [{"step": s + 1, "weighted_mse": float(np.mean([a for a, _ in losses[max(0, s - 49):s + 1]])),
              "kl_per_dim": losses[s][1]} for s in range(49, len(losses), 50)]
    return vae, recon, {"steps": step, "minutes": round(minutes, 2), "val_mse": val_mse, "loss_curve": curve}


# ---------------------------------------------------------------- diffusion (DiT's training objective)

class Schedule:
    def __init__(self):
        betas = torch.linspace(SCHEDULER_CONFIG["beta_start"], SCHEDULER_CONFIG["beta_end"], 1000, dtype=torch.float64)
        alphas = 1 - betas
        abar = torch.cumprod(alphas, 0)
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        post_var = betas * (1 - abar_prev) / (1 - abar)
        self.betas = betas.float()
        self.sqrt_abar = abar.sqrt().float()
        self.sqrt_1m_abar = (1 - abar).sqrt().float()
        self.log_post_var = torch.log(torch.cat([post_var[1:2], post_var[1:]])).float()
        self.log_betas = torch.log(betas).float()
        self.coef_x0 = (betas * abar_prev.sqrt() / (1 - abar)).float()
        self.coef_xt = ((1 - abar_prev) * alphas.sqrt() / (1 - abar)).float()


def dit_loss(model, sched, x0, labels, g):
    """DiT's hybrid loss: epsilon MSE + the variational bound (bits/dim) for the learned variance only."""
    b = x0.shape[0]
    t = torch.randint(0, 1000, (b,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    view = lambda v: v[t].view(b, 1, 1, 1)  # noqa: E731
    xt = view(sched.sqrt_abar) * x0 + view(sched.sqrt_1m_abar) * noise
    out = model(xt, timestep=t, class_labels=labels).sample
    eps, var_values = out[:, :4], out[:, 4:]
    mse = ((eps - noise) ** 2).mean()
    # Variance interpolated between beta_t and the posterior variance in log space (improved DDPM).
    frac = (var_values + 1) / 2
    model_log_var = frac * view(sched.log_betas) + (1 - frac) * view(sched.log_post_var)
    pred_x0 = (xt - view(sched.sqrt_1m_abar) * eps.detach()) / view(sched.sqrt_abar)
    model_mean = view(sched.coef_x0) * pred_x0 + view(sched.coef_xt) * xt
    true_mean = view(sched.coef_x0) * x0 + view(sched.coef_xt) * xt
    true_log_var = view(sched.log_post_var)
    kl = 0.5 * (-1 + model_log_var - true_log_var + torch.exp(true_log_var - model_log_var)
                + (true_mean - model_mean) ** 2 * torch.exp(-model_log_var))
    # At t = 0 the bound's term is the decoder's likelihood of x0: a Gaussian NLL here (latents are continuous).
    nll = 0.5 * (math.log(2 * math.pi) + model_log_var + (x0 - model_mean) ** 2 * torch.exp(-model_log_var))
    vb = torch.where((t == 0).view(b, 1, 1, 1), nll, kl).mean(dim=(1, 2, 3)) / math.log(2)
    return mse, vb.mean()


def build_dit(args):
    from diffusers import DiTTransformer2DModel
    return DiTTransformer2DModel(
        num_attention_heads=args.heads, attention_head_dim=args.width // args.heads, in_channels=4, out_channels=8,
        num_layers=args.layers, sample_size=IMAGE // 4, patch_size=2, num_embeds_ada_norm=NULL_CLASS,
        norm_elementwise_affine=False)


def make_pipeline(transformer, vae):
    from diffusers import DDIMScheduler, DiTPipeline
    return DiTPipeline(transformer=transformer, vae=vae, scheduler=DDIMScheduler.from_config(SCHEDULER_CONFIG))


@torch.no_grad()
def sample_accuracy(transformer, vae, judge, per_class, steps, guidance, seed):
    """Diffusers' DiTPipeline samples per_class images of every class; the classifier's accuracy on them."""
    pipe = make_pipeline(transformer, vae)
    pipe.set_progress_bar_config(disable=True)
    labels = [c for c in range(CLASSES) for _ in range(per_class)]
    images = pipe(class_labels=labels, num_inference_steps=steps, guidance_scale=guidance,
                  generator=torch.Generator().manual_seed(seed), output_type="np").images
    images = (images * 255).round().astype(np.uint8)
    return judge.accuracy(images, labels), images


def train_dit(args, latents, labels, vae, judge, log, init=None):
    torch.manual_seed(args.seed + 2)
    model = (init if init is not None else build_dit(args)).eval()  # eval: the label embedding's own dropout is off; the 10% drop is explicit below
    ema = copy.deepcopy(model)
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.dit_lr, weight_decay=0.0)
    sched = Schedule()
    g = torch.Generator().manual_seed(args.seed + 3)
    start, curve, evals, step = time.time(), [], [], 0
    window = []
    while step < args.dit_steps and time.time() - start < args.dit_minutes * 60:
        # Warm-up, then (with --dit-decay) cosine to 10% by the step or minute budget, whichever runs out first.
        progress = max(step / args.dit_steps, (time.time() - start) / (args.dit_minutes * 60))
        lr = args.dit_lr * min(1.0, (step + 1) / args.dit_warmup)
        if args.dit_decay:
            lr *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(len(latents), (args.dit_batch,), generator=g)
        x0, y = latents[idx], labels[idx].clone()
        y[torch.rand(len(y), generator=g) < args.label_drop] = NULL_CLASS
        mse, vb = dit_loss(model, sched, x0, y, g)
        loss = mse + vb
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
        window.append((mse.item(), vb.item()))
        if step % 100 == 0:
            m, v = np.mean([a for a, _ in window]), np.mean([b for _, b in window])
            curve.append({"step": step, "mse": float(m), "vb": float(v), "minutes": round((time.time() - start) / 60, 2)})
            window = []
            log_line(f"dit step {step}: mse {m:.4f} vb {v:.4f} lr {lr:.2e}")
        if step % args.eval_every == 0:
            acc, _ = sample_accuracy(ema, vae, judge, 2, 25, 4.0, 0)
            evals.append({"step": step, "accuracy": acc, "minutes": round((time.time() - start) / 60, 2)})
            log_line(f"dit step {step}: EMA sample accuracy {acc:.1f}% (2 per class, DDIM 25, guidance 4)")
            log[stage_name(args)] = {"steps": step, "loss_curve": curve, "evaluations": evals}
            write_log(args.out, log)
    return ema, {"steps": step, "minutes": round((time.time() - start) / 60, 2), "loss_curve": curve, "evaluations": evals}


# ---------------------------------------------------------------- saving

def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def save(out, transformer, vae):
    from diffusers import DDIMScheduler
    pipe = make_pipeline(transformer, vae)
    pipe.save_pretrained(out, safe_serialization=True)
    # The transformer in F16 (a copy: the position-embedding buffer is not saved and stays F32).
    copy.deepcopy(transformer).to(torch.float16).save_pretrained(os.path.join(out, "transformer"), safe_serialization=True)
    DDIMScheduler.from_config(SCHEDULER_CONFIG)  # the config must load
    with open(os.path.join(out, "scheduler", "scheduler_config.json"), "w") as f:
        json.dump(SCHEDULER_CONFIG, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(out, "labels.json"), "w") as f:
        json.dump({str(i): name for i, name in enumerate(shapes_cls.LABELS)}, f, indent=2)
        f.write("\n")


def stage_name(args):
    return "dit_continued" if args.init else "dit"


def write_log(out, log):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "training_log.json"), "w") as f:
        json.dump(log, f, indent=2)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join("builtin", "models", "dit-shapes"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--train-images", type=int, default=24000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--vae-steps", type=int, default=1500)
    parser.add_argument("--vae-minutes", type=float, default=15)
    parser.add_argument("--vae-batch", type=int, default=32)
    parser.add_argument("--vae-lr", type=float, default=2e-3)
    parser.add_argument("--kl-weight", type=float, default=1e-4)
    parser.add_argument("--object-weight", type=float, default=4.0)
    parser.add_argument("--dit-steps", type=int, default=6000)
    parser.add_argument("--dit-minutes", type=float, default=40)
    parser.add_argument("--dit-batch", type=int, default=128)
    parser.add_argument("--dit-lr", type=float, default=1e-3)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--label-drop", type=float, default=0.1)
    parser.add_argument("--ema", type=float, default=0.998)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--dit-warmup", type=int, default=200)
    parser.add_argument("--dit-decay", action="store_true", help="cosine learning-rate decay to 10%% over the budget")
    parser.add_argument("--init", help="continue the DiT of this folder (its VAE kept as is; --out may be the same folder)")
    args = parser.parse_args()
    if args.init:
        return continue_dit(args)
    torch.set_num_threads(args.threads)
    total_start = time.time()
    log = {"command": "python3 tools/builtin/train_dit.py " + " ".join(sys.argv[1:]),
           "arguments": vars(args), "torch": torch.__version__, "threads": args.threads, "device": "cpu",
           "machine": platform.machine()}
    import diffusers
    log["diffusers"] = diffusers.__version__

    t = time.time()
    images, labels, masks = training_images(args.train_images, shapes_cls.SPLIT_SEEDS["train"])
    val_images, val_labels = validation_images(504)
    judge = Judge()
    real_acc = judge.accuracy(val_images, val_labels)
    log["data"] = {"image_size": IMAGE, "train_images": len(images), "train_seed": shapes_cls.SPLIT_SEEDS["train"],
                   "validation_images": len(val_images), "validation_split": "shapes_cls.split('val', 504)",
                   "source": "shapes_cls.sample (80x80) box-filtered to 32x32", "classes": CLASSES,
                   "classifier_accuracy_on_real_32px": real_acc, "minutes": round((time.time() - t) / 60, 2)}
    log_line(f"data: {len(images)} training images, classifier on real 32-px validation images {real_acc:.1f}%")
    write_log(args.out, log)

    vae, recon, vae_log = train_vae(args, images, masks, val_images)
    vae_log["reconstruction_accuracy"] = judge.accuracy(to_bytes(recon), val_labels)
    vae_log["config"] = {k: v for k, v in vae.config.items() if not k.startswith("_")}
    vae_log["batch"], vae_log["lr"], vae_log["kl_weight"], vae_log["object_weight"] = \
        args.vae_batch, args.vae_lr, args.kl_weight, args.object_weight
    log["vae"] = vae_log
    log_line(f"vae: {vae_log['steps']} steps, {vae_log['minutes']} min, val mse {vae_log['val_mse']:.5f}, "
             f"classifier on reconstructions {vae_log['reconstruction_accuracy']:.1f}%")
    write_log(args.out, log)

    t = time.time()
    with torch.no_grad():
        pix = to_pixels(images)
        means = torch.cat([vae.encode(pix[i:i + 256]).latent_dist.mean for i in range(0, len(pix), 256)])
    std = float(means.std())
    vae.register_to_config(scaling_factor=1.0 / std)
    latents = means / std
    log["latents"] = {"shape": list(latents.shape[1:]), "posterior": "mean", "std_before_scaling": std,
                      "scaling_factor": 1.0 / std, "minutes": round((time.time() - t) / 60, 2)}
    log_line(f"latents: std {std:.4f} -> scaling_factor {1 / std:.4f}")
    write_log(args.out, log)

    transformer, dit_log = train_dit(args, latents, torch.as_tensor(labels), vae, judge, log)
    dit_log["config"] = {k: v for k, v in transformer.config.items() if not k.startswith("_")}
    dit_log["parameters"] = sum(p.numel() for p in transformer.parameters())
    dit_log["batch"], dit_log["lr"], dit_log["ema"], dit_log["label_drop"] = args.dit_batch, args.dit_lr, args.ema, args.label_drop
    dit_log["loss"] = "epsilon MSE + variational bound (bits/dim) on the variance channels, mean held fixed"
    log["dit"] = dit_log
    write_log(args.out, log)

    t = time.time()
    save(args.out, transformer, vae)
    log["save"] = {"bytes": folder_bytes(args.out), "transformer_dtype": "float16", "vae_dtype": "float32",
                   "minutes": round((time.time() - t) / 60, 2)}
    log["total_minutes"] = round((time.time() - total_start) / 60, 2)
    write_log(args.out, log)
    log_line(f"saved {args.out}: {log['save']['bytes'] / 1e6:.1f} MB, {log['total_minutes']} min in all")


def continue_dit(args):
    """Continues training the transformer of --init with its VAE and scaling factor unchanged (same data)."""
    from diffusers import AutoencoderKL, DiTTransformer2DModel
    torch.set_num_threads(args.threads)
    total_start = time.time()
    with open(os.path.join(args.init, "training_log.json")) as f:
        log = json.load(f)
    vae = AutoencoderKL.from_pretrained(os.path.join(args.init, "vae")).eval()
    transformer = DiTTransformer2DModel.from_pretrained(os.path.join(args.init, "transformer")).float()
    images, labels, _ = training_images(log["data"]["train_images"], log["data"]["train_seed"])
    judge = Judge()
    with torch.no_grad():
        pix = to_pixels(images)
        means = torch.cat([vae.encode(pix[i:i + 256]).latent_dist.mean for i in range(0, len(pix), 256)])
    latents = means * vae.config.scaling_factor
    log["dit_continued"] = {"command": "python3 tools/builtin/train_dit.py " + " ".join(sys.argv[1:])}
    model, stage = train_dit(args, latents, torch.as_tensor(labels), vae, judge, log, init=transformer)
    stage.update({"command": "python3 tools/builtin/train_dit.py " + " ".join(sys.argv[1:]), "lr": args.dit_lr,
                  "decay": args.dit_decay, "warmup": args.dit_warmup, "batch": args.dit_batch, "ema": args.ema,
                  "note": "the EMA restarts from the loaded (EMA) weights"})
    log["dit_continued"] = stage
    write_log(args.out, log)
    save(args.out, model, vae)
    log["save"] = {"bytes": folder_bytes(args.out), "transformer_dtype": "float16", "vae_dtype": "float32"}
    log["total_minutes"] = round(log.get("total_minutes", 0) + (time.time() - total_start) / 60, 2)
    write_log(args.out, log)
    log_line(f"saved {args.out}: {log['save']['bytes'] / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
