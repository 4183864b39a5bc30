"""Train the small toy-world CLIP and METER models shipped in ``vlmbrain/toyworld/weights``.

Both are trained from scratch on (frame, caption) pairs drawn fresh from the scene generator at
every step (never the demo movie), and evaluated on held-out scenes from a different seed:

* **CLIP** (Hugging Face ``CLIPModel``): symmetric InfoNCE loss; metric = image→text top-1
  retrieval accuracy among groups of 32 candidates (chance 1/32).
* **METER** (``vlmbrain.models.meter.METER``): image–text matching (ITM, half the pairs get the
  caption of another scene) + masked language modelling (15 % of the caption's words replaced by
  ``<mask>``); metric = ITM accuracy on balanced matched / mismatched pairs (chance 0.5) and
  MLM accuracy on masked words.

Command line (reproduces the shipped weights)::

    python -m vlmbrain.toyworld.train --model all --seed 0 --out src/vlmbrain/toyworld/weights
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

from vlmbrain.errors import ConfigError
from vlmbrain.models.preprocess import CLIP_MEAN, CLIP_STD
from vlmbrain.toyworld.render import render_scene
from vlmbrain.toyworld.scenes import caption_scene, sample_scene
from vlmbrain.toyworld.tokenizer import MAX_LENGTH, build_tokenizer

logger = logging.getLogger("vlmbrain")

#: Seed of the held-out evaluation scenes (never used for training seeds' data streams).
HELDOUT_SEED = 987_654
#: Retrieval group size for CLIP evaluation (chance = 1 / GROUP).
GROUP = 32
#: Number of held-out samples of the quick check the tests repeat.
QUICK_N = 64
#: Frame side of the toy models.
IMAGE_SIZE = 64

#: Default training schedules (steps, batch size, learning rate).
DEFAULTS = {
    "clip": {"steps": 1100, "batch_size": 64, "lr": 1e-3},
    "meter": {"steps": 650, "batch_size": 64, "lr": 1e-3},
}


# ----------------------------------------------------------------------------- data
def sample_pairs(rng: np.random.Generator, n: int, image_size: int = IMAGE_SIZE) -> tuple[np.ndarray, list[str]]:
    """Draw ``n`` fresh scenes and render each at a random time.

    Parameters
    ----------
    rng : numpy.random.Generator
    n : int
    image_size : int

    Returns
    -------
    frames : ndarray of shape (n, image_size, image_size, 3), uint8
    captions : list of str
    """
    frames = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    captions = []
    for i in range(n):
        duration = float(rng.uniform(8.0, 20.0))
        scene = sample_scene(rng, image_size=image_size, duration=duration)
        frames[i] = render_scene(scene, float(rng.uniform(0.0, duration)))
        captions.append(caption_scene(scene))
    return frames, captions


def heldout_pairs(n: int, image_size: int = IMAGE_SIZE) -> tuple[np.ndarray, list[str]]:
    """The first ``n`` held-out (frame, caption) pairs (seed :data:`HELDOUT_SEED`)."""
    return sample_pairs(np.random.default_rng(HELDOUT_SEED), n, image_size)


def pixel_values(frames: np.ndarray):
    """Frames ``(n, H, W, 3)`` uint8 → CLIP-normalised ``(n, 3, H, W)`` float32 tensor.

    Identical to ``CLIPImageProcessor`` with ``size = crop = image_size`` on frames that
    already have that size (no resampling), which is what the saved folders declare.
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(255.0)
    x = (x - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    return x.permute(0, 3, 1, 2).contiguous()


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _setup_torch(seed: int, threads: int | None, device: str = "cpu"):
    import os

    import torch

    if threads:
        torch.set_num_threads(int(threads))
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device={device!r} but no CUDA device is available; use device='cpu'.")
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    # CPU: fully deterministic. CUDA: deterministic where PyTorch has an implementation, else a warning.
    torch.use_deterministic_algorithms(True, warn_only=str(device).startswith("cuda"))
    return torch


def _device_of(model) -> str:
    return str(next(model.parameters()).device)


def save_tokenizer(tokenizer, out: str | Path) -> None:
    """``tokenizer.save_pretrained(out)`` with ``tokenizer_class = "PreTrainedTokenizerFast"``.

    transformers 5 writes its own class name (``TokenizersBackend``), which transformers 4's
    ``AutoTokenizer`` does not know; ``PreTrainedTokenizerFast`` loads in both.
    """
    tokenizer.save_pretrained(out)
    path = Path(out) / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(cfg, indent=2) + "\n")


# ----------------------------------------------------------------------------- CLIP
def toy_clip_config(vocab_size: int, pad_id: int, bos_id: int, eos_id: int):
    """The ``CLIPConfig`` of the toy CLIP (64 px, patch 8; widths 128; 3 layers per tower)."""
    from transformers import CLIPConfig

    text = dict(
        vocab_size=vocab_size, hidden_size=128, intermediate_size=256, num_hidden_layers=3,
        num_attention_heads=4, max_position_embeddings=MAX_LENGTH, pad_token_id=pad_id,
        bos_token_id=bos_id, eos_token_id=eos_id, projection_dim=64,
    )
    vision = dict(
        image_size=IMAGE_SIZE, patch_size=8, hidden_size=128, intermediate_size=256,
        num_hidden_layers=3, num_attention_heads=4, projection_dim=64,
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=64)


def _clip_encode(model, tokenizer, frames, captions, device="cpu"):
    import torch

    enc = tokenizer(captions, padding=True, return_tensors="pt")
    img = model.get_image_features(pixel_values=pixel_values(frames).to(device))
    txt = model.get_text_features(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device))
    if not isinstance(img, torch.Tensor):  # transformers may return a model output object
        img = img.pooler_output
        txt = txt.pooler_output
    return img, txt


def evaluate_clip(model, tokenizer, n: int = 1024, group: int = GROUP) -> dict:
    """Held-out retrieval accuracy of a toy CLIP.

    The first ``n`` held-out pairs are split into groups of ``group``; within a group each
    image retrieves the caption with the highest cosine similarity (and each caption its
    image). A retrieval counts as correct when the retrieved caption string equals the true
    one (duplicates in a group are therefore not penalised).

    Returns
    -------
    dict
        ``image_to_text_top1``, ``text_to_image_top1``, ``n``, ``group``, ``chance``.
    """
    import torch

    frames, captions = heldout_pairs(n)
    model.eval()
    i2t = t2i = 0
    with torch.no_grad():
        for start in range(0, n - group + 1, group):
            f = frames[start:start + group]
            c = captions[start:start + group]
            img, txt = _clip_encode(model, tokenizer, f, c, _device_of(model))
            img = torch.nn.functional.normalize(img.float(), dim=-1)
            txt = torch.nn.functional.normalize(txt.float(), dim=-1)
            sim = (img @ txt.T).cpu()
            best_t = sim.argmax(1).tolist()
            best_i = sim.argmax(0).tolist()
            i2t += sum(c[j] == c[k] for j, k in enumerate(best_t))
            t2i += sum(c[j] == c[k] for j, k in enumerate(best_i))
    used = (n // group) * group
    return {
        "image_to_text_top1": i2t / used,
        "text_to_image_top1": t2i / used,
        "n": used,
        "group": group,
        "chance": 1.0 / group,
    }


def train_clip(seed: int = 0, steps: int | None = None, batch_size: int | None = None, lr: float | None = None,
               max_seconds: float | None = None, threads: int | None = 2, log_every: int = 50,
               device: str = "cpu", sampler=None, stop_after: int | None = None):
    """Train the toy CLIP from scratch.

    ``sampler(rng, n) -> (frames, captions)`` draws each step's batch (default :func:`sample_pairs`:
    fresh scenes every step). ``stop_after`` ends training after that many steps while keeping the
    learning-rate schedule of ``steps`` (to replay the start of a run). Other parameters default
    to :data:`DEFAULTS`.

    Returns
    -------
    model : transformers.CLIPModel
    tokenizer : transformers.PreTrainedTokenizerFast
    record : dict
        Steps, losses (first / final, averaged over 20 steps; ``losses`` every step), seconds.
    """
    torch = _setup_torch(seed, threads, device)
    from transformers import CLIPModel

    d = DEFAULTS["clip"]
    steps = int(steps or d["steps"])
    batch_size = int(batch_size or d["batch_size"])
    lr = float(lr or d["lr"])
    tokenizer = build_tokenizer("clip")
    cfg = toy_clip_config(len(tokenizer), tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id)
    model = CLIPModel(cfg).to(device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, steps, max(1, steps // 20)))
    sampler = sampler or sample_pairs
    rng = np.random.default_rng([seed, 1])
    losses = []
    t0 = time.perf_counter()
    done = 0
    for step in range(steps):
        frames, captions = sampler(rng, batch_size)
        img, txt = _clip_encode(model, tokenizer, frames, captions, device)
        img = torch.nn.functional.normalize(img, dim=-1)
        txt = torch.nn.functional.normalize(txt, dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T
        # pairs with identical captions are both positives: soft targets over equal captions
        same = torch.tensor([[a == b for b in captions] for a in captions], dtype=torch.float32, device=device)
        target = same / same.sum(1, keepdim=True)
        loss = 0.5 * (torch.sum(-target * logits.log_softmax(1), 1).mean()
                      + torch.sum(-target * logits.T.log_softmax(1), 1).mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        done = step + 1
        if log_every and done % log_every == 0:
            logger.info("clip step %d/%d loss %.4f (%.0f s)", done, steps, np.mean(losses[-log_every:]),
                        time.perf_counter() - t0)
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            logger.warning("clip training stopped by the wall-clock cap after %d/%d steps", done, steps)
            break
        if stop_after is not None and done >= stop_after:
            break
    model.eval()
    record = {
        "steps_planned": steps, "steps": done, "batch_size": batch_size, "lr": lr,
        "seconds": round(time.perf_counter() - t0, 1),
        "loss_first": float(np.mean(losses[:20])), "loss_final": float(np.mean(losses[-20:])),
        "stopped_by_wall_clock": done < steps,
        "losses": losses,
    }
    return model, tokenizer, record


def save_clip(model, tokenizer, out: str | Path) -> Path:
    """Save a toy CLIP folder loadable by ``CLIPModel`` / ``AutoTokenizer`` / ``AutoImageProcessor``."""
    from transformers import CLIPImageProcessor

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    save_tokenizer(tokenizer, out)
    CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD),
    ).save_pretrained(out)
    return out


# ----------------------------------------------------------------------------- METER
def toy_meter_config(vocab_size: int):
    """The ``METERConfig`` of the toy METER (64 px, patch 8; widths 96; 3 ViT + 2 RoBERTa + 2 fusion layers; ITM + MLM heads)."""
    from vlmbrain.models.meter import meter_config

    return meter_config(
        "tiny",
        name="toy",
        image_size=IMAGE_SIZE, patch_size=8, vision_width=96, vision_layers=3, vision_heads=4, vision_mlp_ratio=2,
        clip_text_width=32, clip_context_length=8,
        vocab_size=vocab_size, text_hidden_size=96, text_layers=2, text_heads=4, text_intermediate_size=256,
        text_max_positions=MAX_LENGTH + 2, max_text_len=MAX_LENGTH,
        hidden_size=96, num_heads=4, num_top_layer=2, mlp_ratio=2, drop_rate=0.0,
        heads=("mlm", "itm"),
    )


def _mask_tokens(ids, attention, tokenizer, rng: np.random.Generator, p: float = 0.15):
    """Replace ``p`` of the word tokens (at least one per caption) by ``<mask>``; labels -100 elsewhere."""
    import torch

    ids = ids.clone()
    labels = torch.full_like(ids, -100)
    special = {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}
    for b in range(ids.shape[0]):
        words = [j for j in range(ids.shape[1]) if attention[b, j] and int(ids[b, j]) not in special]
        k = max(1, int(round(p * len(words))))
        chosen = rng.choice(words, size=k, replace=False)
        for j in chosen:
            labels[b, j] = ids[b, j]
            ids[b, j] = tokenizer.mask_token_id
    return ids, labels


def _mismatch(rng: np.random.Generator, captions: list[str], pool: list[str]) -> list[str]:
    """For every caption another caption from ``pool`` that differs from it."""
    out = []
    for c in captions:
        while True:
            other = pool[int(rng.integers(len(pool)))]
            if other != c:
                out.append(other)
                break
    return out


def evaluate_meter(model, tokenizer, n: int = 1024, seed_offset: int = 1) -> dict:
    """Held-out ITM accuracy (balanced matched / mismatched) and MLM accuracy of a toy METER.

    The first ``n`` held-out pairs are each scored twice: with their own caption (label 1) and
    with the caption of another held-out pair (label 0, drawn with a fixed generator).

    Returns
    -------
    dict
        ``itm_accuracy`` (chance 0.5), ``mlm_accuracy`` (masked words predicted exactly),
        ``n_pairs``, ``chance``.
    """
    import torch

    frames, captions = heldout_pairs(n)
    rng = np.random.default_rng([HELDOUT_SEED, seed_offset])
    wrong = _mismatch(rng, captions, captions)
    model.eval()
    dev = _device_of(model)
    correct = mlm_hit = mlm_total = 0
    with torch.no_grad():
        for start in range(0, n, 64):
            f = pixel_values(frames[start:start + 64]).to(dev)
            for caps, label in ((captions[start:start + 64], 1), (wrong[start:start + 64], 0)):
                enc = tokenizer(caps, padding=True, return_tensors="pt")
                out = model(f, enc["input_ids"].to(dev), enc["attention_mask"].to(dev))
                correct += int((out["itm_logits"].argmax(-1).cpu() == label).sum())
            enc = tokenizer(captions[start:start + 64], padding=True, return_tensors="pt")
            ids, labels = _mask_tokens(enc["input_ids"], enc["attention_mask"], tokenizer, rng)
            out = model(f, ids.to(dev), enc["attention_mask"].to(dev))
            sel = labels != -100
            mlm_hit += int((out["mlm_logits"].argmax(-1).cpu()[sel] == labels[sel]).sum())
            mlm_total += int(sel.sum())
    return {"itm_accuracy": correct / (2 * n), "mlm_accuracy": mlm_hit / mlm_total, "n_pairs": 2 * n, "chance": 0.5}


def train_meter(seed: int = 0, steps: int | None = None, batch_size: int | None = None, lr: float | None = None,
                max_seconds: float | None = None, threads: int | None = 2, log_every: int = 50,
                device: str = "cpu", sampler=None, stop_after: int | None = None):
    """Train the toy METER from scratch with ITM + MLM.

    ``sampler(rng, n) -> (frames, captions)`` draws each step's batch (default :func:`sample_pairs`);
    ``stop_after`` as in :func:`train_clip`.

    Returns
    -------
    model : vlmbrain.models.meter.METER
    tokenizer : transformers.PreTrainedTokenizerFast
    record : dict
    """
    torch = _setup_torch(seed, threads, device)
    from vlmbrain.models.meter import METER

    d = DEFAULTS["meter"]
    steps = int(steps or d["steps"])
    batch_size = int(batch_size or d["batch_size"])
    lr = float(lr or d["lr"])
    tokenizer = build_tokenizer("roberta")
    model = METER(toy_meter_config(len(tokenizer))).to(device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, steps, max(1, steps // 20)))
    sampler = sampler or sample_pairs
    rng = np.random.default_rng([seed, 2])
    itm_losses, mlm_losses = [], []
    t0 = time.perf_counter()
    done = 0
    half = batch_size // 2
    for step in range(steps):
        frames, captions = sampler(rng, batch_size)
        px = pixel_values(frames).to(device)
        # One forward pass: the first half keeps its captions (ITM label 1, MLM loss), the second
        # half gets another scene's caption (ITM label 0). Both halves are masked the same way so
        # that <mask> tokens carry no information about the ITM label.
        itm_caps = captions[:half] + _mismatch(rng, captions[half:], captions)
        itm_labels = torch.tensor([1] * half + [0] * (batch_size - half), device=device)
        enc = tokenizer(itm_caps, padding=True, return_tensors="pt")
        ids, labels = _mask_tokens(enc["input_ids"], enc["attention_mask"], tokenizer, rng)
        labels[half:] = -100
        ids, labels = ids.to(device), labels.to(device)
        out = model(px, ids, enc["attention_mask"].to(device))
        itm_loss = torch.nn.functional.cross_entropy(out["itm_logits"], itm_labels)
        mlm_loss = torch.nn.functional.cross_entropy(out["mlm_logits"].flatten(0, 1), labels.flatten(), ignore_index=-100)
        loss = itm_loss + mlm_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        itm_losses.append(float(itm_loss.detach()))
        mlm_losses.append(float(mlm_loss.detach()))
        done = step + 1
        if log_every and done % log_every == 0:
            logger.info("meter step %d/%d itm %.4f mlm %.4f (%.0f s)", done, steps, np.mean(itm_losses[-log_every:]),
                        np.mean(mlm_losses[-log_every:]), time.perf_counter() - t0)
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            logger.warning("meter training stopped by the wall-clock cap after %d/%d steps", done, steps)
            break
        if stop_after is not None and done >= stop_after:
            break
    model.eval()
    record = {
        "steps_planned": steps, "steps": done, "batch_size": batch_size, "lr": lr,
        "seconds": round(time.perf_counter() - t0, 1),
        "itm_loss_first": float(np.mean(itm_losses[:20])), "itm_loss_final": float(np.mean(itm_losses[-20:])),
        "mlm_loss_first": float(np.mean(mlm_losses[:20])), "mlm_loss_final": float(np.mean(mlm_losses[-20:])),
        "stopped_by_wall_clock": done < steps,
        "itm_losses": itm_losses,
        "mlm_losses": mlm_losses,
    }
    return model, tokenizer, record


def meter_config_dict(config) -> dict:
    """A ``METERConfig`` as a JSON-able dict (``METERConfig(**d)`` rebuilds it)."""
    d = dataclasses.asdict(config)
    d["heads"] = list(d["heads"])
    return d


def save_meter(model, tokenizer, out: str | Path) -> Path:
    """Save ``model.safetensors`` + ``config.json`` (the METERConfig) + the tokenizer."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt", "model": "vlmbrain-toy-meter"})
    (out / "config.json").write_text(json.dumps(meter_config_dict(model.config), indent=2) + "\n")
    save_tokenizer(tokenizer, out)
    return out


# ----------------------------------------------------------------------------- CLI
def _versions() -> dict:
    import tokenizers
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "numpy": np.__version__, "machine": platform.machine()}


def run(kind: str, seed: int, out: str | Path, steps: int | None = None, max_seconds: float | None = None,
        threads: int | None = 2, eval_n: int = 1024, argv: list[str] | None = None, lr: float | None = None,
        batch_size: int | None = None, device: str = "cpu", quick_n: int = QUICK_N) -> dict:
    """Train, evaluate and save one toy model into ``out/<kind>``; returns the training record."""
    if kind not in ("clip", "meter"):
        raise ConfigError(f"model={kind!r} is not a toy model; use 'clip', 'meter' or 'all'.")
    folder = Path(out) / kind
    if kind == "clip":
        model, tokenizer, record = train_clip(seed=seed, steps=steps, max_seconds=max_seconds, threads=threads,
                                              lr=lr, batch_size=batch_size, device=device)
        model = model.cpu()
        save_clip(model, tokenizer, folder)
        held = evaluate_clip(model, tokenizer, n=eval_n)
        quick = evaluate_clip(model, tokenizer, n=quick_n)
    else:
        model, tokenizer, record = train_meter(seed=seed, steps=steps, max_seconds=max_seconds, threads=threads,
                                               lr=lr, batch_size=batch_size, device=device)
        model = model.cpu()
        save_meter(model, tokenizer, folder)
        held = evaluate_meter(model, tokenizer, n=eval_n)
        quick = evaluate_meter(model, tokenizer, n=quick_n)
    for key in ("losses", "itm_losses", "mlm_losses"):  # per-step curves: keep 50-step means in the record
        if key in record:
            curve = record.pop(key)
            record[key.replace("losses", "loss_curve_50")] = [
                round(float(np.mean(curve[i:i + 50])), 4) for i in range(0, len(curve), 50)]
    info = {
        "model": kind,
        "command": "python -m vlmbrain.toyworld.train " + " ".join(argv if argv is not None else sys.argv[1:]),
        "seed": seed,
        "heldout_seed": HELDOUT_SEED,
        "threads": threads,
        "device": device,
        **record,
        "heldout": held,
        "heldout_quick": quick,
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "versions": _versions(),
        "trained": True,
        "data": "fresh scenes from vlmbrain.toyworld.sample_scene at every step (seeded), never the demo movie",
    }
    (folder / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vlmbrain.toyworld.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("clip", "meter", "all"), default="all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="folder; the weights go to OUT/clip and OUT/meter")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the shipped schedule)")
    parser.add_argument("--max-seconds", type=float, default=None, help="wall-clock cap per model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-n", type=int, default=1024, help="held-out pairs for the metrics")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the shipped schedule)")
    parser.add_argument("--batch-size", type=int, default=None, help="pairs per step (default: the shipped schedule)")
    parser.add_argument("--device", default="cpu", help="'cpu' (the shipped weights) or 'cuda'")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    kinds = ("clip", "meter") if args.model == "all" else (args.model,)
    for kind in kinds:
        info = run(kind, args.seed, args.out, steps=args.steps, max_seconds=args.max_seconds, threads=args.threads,
                   eval_n=args.eval_n, argv=argv, lr=args.lr, batch_size=args.batch_size, device=args.device)
        print(json.dumps({"model": kind, "steps": info["steps"], "seconds": info["seconds"], "heldout": info["heldout"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
