"""Artificial-neuron readouts of Hugging Face transformers: CLIP, ViT, BERT, RoBERTa.

One forward pass per batch; forward hooks on every transformer block collect the chosen AN
site and pool it over tokens on the fly (only ``(batch, units)`` per layer is kept).

AN sites (docs/method.md §2.2–2.3), per transformer block ``l`` (0-based; block ``l`` outputs
``hidden_states[l + 1]`` of ``output_hidden_states=True``):

``head-unit`` (default)
    The per-head attention output ``softmax(Q Kᵀ / √d_head) V`` of all heads concatenated,
    i.e. the *input* of the attention output projection (``self_attn.out_proj`` in CLIP,
    ``attention.output.dense`` in BERT/RoBERTa, the output projection in ViT).
    ``hidden_size`` units per layer; ``head = unit // d_head``.
``qk``
    Unit ``d``'s share of the attention logits. For query token ``i``:
    ``qk_d(i) = q_d(i) · k̄_d(i) / √d_head`` with ``k̄_d(i)`` the mean of ``k_d(j)`` over the keys ``j``
    that query ``i`` attends to (the caption's real tokens; for CLIP text, causally, ``j ≤ i``;
    all tokens for images). ``q`` and ``k`` are the outputs of the query/key projections
    (biases included). Summed over the ``d_head`` units of a head, ``qk`` is the mean attention
    logit of query ``i``; the value is then pooled over queries ``i`` like every other site.
``mlp``
    The FFN's intermediate activations that enter its second layer (``fc2`` / ``output.dense``):
    ``intermediate_size`` units per layer, ``head = -1``.
``hidden``
    The residual stream after the block (``hidden_states[l + 1]``), ``hidden_size`` units, ``head = -1``.

Pooling over tokens:

``mean`` (default)
    Images: CLS + all patches. Text: the caption's real tokens (attention mask), special tokens included.
``cls``
    Images: the CLS token. BERT/RoBERTa: the first token (``[CLS]`` / ``<s>``). CLIP text: the
    end-of-text token, located as ``CLIPTextModel`` does for its pooled output (first position of
    ``eos_token_id``; ``argmax(input_ids)`` for legacy configs with ``eos_token_id == 2``).
``patches``
    Images: the patches without CLS. Text: the real tokens without special tokens; a caption
    that has no such token (the empty caption of a rest TR) falls back to ``mean``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from vlmbrain.errors import ConfigError, DimensionError, ModelNotAvailableError
from vlmbrain.models.base import POOLINGS, SITES, Readout, make_neuron_table
from vlmbrain.models.preprocess import ImagePreprocessor, check_image, load_image_processor, load_tokenizer

logger = logging.getLogger("vlmbrain")

#: ``config.json`` ``model_type`` → family handled here.
HF_MODEL_TYPES = {"clip": "clip", "vit": "vit", "bert": "text", "roberta": "text", "xlm-roberta": "text"}

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

MODULE_NAMES = {"head-unit": "self_attn", "qk": "qk", "mlp": "mlp", "hidden": "hidden"}

# Candidate attribute paths (they moved between transformers versions).
_LAYER_PATHS = ("encoder.layers", "encoder.layer", "layers", "layer")
_Q_PATHS = ("self_attn.q_proj", "attention.q_proj", "attention.self.query", "attention.attention.query")
_K_PATHS = ("self_attn.k_proj", "attention.k_proj", "attention.self.key", "attention.attention.key")
_OUT_PATHS = ("self_attn.out_proj", "attention.o_proj", "attention.output.dense", "attention.out_proj")
_FC2_PATHS = ("mlp.fc2", "output.dense")


def _get(obj, paths, what):
    for path in paths:
        cur = obj
        for part in path.split("."):
            cur = getattr(cur, part, None)
            if cur is None:
                break
        if cur is not None:
            return cur
    raise ConfigError(
        f"cannot find the {what} in {type(obj).__name__} (tried {', '.join(paths)}); "
        "this transformers version or architecture is not supported by the HF readout"
    )


def check_option(name, value, allowed):
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not supported; expected one of {', '.join(map(repr, allowed))}")
    return value


def resolve_device(device) -> torch.device:
    device = str(device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but no CUDA device is available; use device='cpu'")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ConfigError(f"device={device!r} is not supported; expected 'cpu' or 'cuda' (or 'cuda:N')")
    return torch.device(device)


def resolve_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ConfigError(f"dtype={dtype} is not supported; expected one of {', '.join(DTYPES)}")
        return dtype
    return DTYPES[check_option("dtype", str(dtype), tuple(DTYPES))]


@dataclass
class _Tower:
    """One branch of a model: the module to call and its blocks."""

    branch: str
    modality: str  # "image" | "text"
    module: torch.nn.Module
    layers: list
    n_heads: int
    hidden_size: int
    intermediate_size: int
    text_kind: str | None = None  # "clip" | "bert" for text towers
    eos_token_id: int | None = None

    @property
    def causal(self) -> bool:
        return self.text_kind == "clip"


def _towers(model) -> list[_Tower]:
    mtype = getattr(model.config, "model_type", None)
    family = HF_MODEL_TYPES.get(mtype)
    if family is None:
        raise ConfigError(
            f"model_type {mtype!r} is not supported by the HF readout; supported: {', '.join(HF_MODEL_TYPES)}"
        )

    def tower(branch, modality, module, cfg, **kw):
        return _Tower(
            branch=branch,
            modality=modality,
            module=module,
            layers=list(_get(module, _LAYER_PATHS, "transformer blocks")),
            n_heads=int(cfg.num_attention_heads),
            hidden_size=int(cfg.hidden_size),
            intermediate_size=int(cfg.intermediate_size),
            **kw,
        )

    if family == "clip":
        return [
            tower("vision", "image", model.vision_model, model.config.vision_config),
            tower(
                "text",
                "text",
                model.text_model,
                model.config.text_config,
                text_kind="clip",
                eos_token_id=int(model.config.text_config.eos_token_id),
            ),
        ]
    if family == "vit":
        return [tower("vision", "image", model, model.config)]
    return [tower("text", "text", model, model.config, text_kind="bert")]


class HFReadout(Readout):
    """AN readout of a Hugging Face CLIP, ViT, BERT or RoBERTa model (see the module docstring).

    Parameters
    ----------
    model : transformers.PreTrainedModel
        A ``CLIPModel``, ``ViTModel``, ``BertModel`` or ``RobertaModel`` (or compatible).
        It is put in eval mode and moved to ``device`` / cast to ``dtype`` *in place* (no copy,
        so that a large model is not held twice).
    name : str
        Model name written into the neuron table (registry alias or path).
    site : {"head-unit", "qk", "mlp", "hidden"}, default="head-unit"
    pooling : {"mean", "cls", "patches"}, default="mean"
    image_processor : ImagePreprocessor or HF image processor, optional
        Needed for image branches; default: the CLIP-constant fallback at ``config.image_size``.
    tokenizer : HF tokenizer, optional
        Needed for text branches.
    device : str, default="cpu"
        ``"cpu"`` or ``"cuda"``.
    dtype : {"float32", "float16", "bfloat16"}, default="float32"
        Compute dtype of the forward pass; pooling is done in float32 and outputs are float32.
    batch_size : int, default=32
        Images (frames) or captions per forward pass; trades memory for speed.
    """

    def __init__(
        self,
        model,
        name: str,
        site: str = "head-unit",
        pooling: str = "mean",
        image_processor=None,
        tokenizer=None,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 32,
    ):
        self.site = check_option("site", site, SITES)
        self.pooling = check_option("pooling", pooling, POOLINGS)
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size={batch_size!r} must be a positive integer")
        self.batch_size = int(batch_size)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        self.name = str(name)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self._towers = _towers(self.model)
        self.branches = tuple(t.branch for t in self._towers)
        self.modalities = {t.branch: t.modality for t in self._towers}
        if any(t.modality == "image" for t in self._towers):
            if image_processor is None:
                cfg = getattr(model.config, "vision_config", model.config)
                image_processor = ImagePreprocessor(None, image_size=int(cfg.image_size))
            elif not isinstance(image_processor, ImagePreprocessor):
                image_processor = ImagePreprocessor(image_processor)
        self.image_processor = image_processor
        if any(t.modality == "text" for t in self._towers) and tokenizer is None:
            raise ModelNotAvailableError(f"model {self.name!r} has a text branch but no tokenizer was given")
        self.tokenizer = tokenizer
        self._weights_hash: str | None = None
        self._table: pd.DataFrame | None = None

    # ------------------------------------------------------------------ Readout API
    def neuron_table(self) -> pd.DataFrame:
        if self._table is None:
            self._table = self._build_table()
        return self._table.copy()

    def _build_table(self) -> pd.DataFrame:
        rows = []
        for t in self._towers:
            n_units = t.intermediate_size if self.site == "mlp" else t.hidden_size
            head_dim = t.hidden_size // t.n_heads
            module = MODULE_NAMES[self.site]
            per_head = self.site in ("head-unit", "qk")
            for layer in range(len(t.layers)):
                for unit in range(n_units):
                    rows.append(
                        {
                            "model": self.name,
                            "branch": t.branch,
                            "layer": layer,
                            "module": module,
                            "head": unit // head_dim if per_head else -1,
                            "unit": unit,
                            "group": f"{t.branch}/L{layer}/{module}",
                        }
                    )
        return make_neuron_table(rows)

    def weights_hash(self) -> str:
        """SHA-256 (16 hex digits) of every parameter and buffer: name, dtype, shape, bytes."""
        if self._weights_hash is None:
            from vlmbrain.models.base import state_dict_hash

            self._weights_hash = state_dict_hash(self.model)
        return self._weights_hash

    def readout(self, images, captions) -> dict[str, np.ndarray]:
        if images is None and captions is None:
            raise ConfigError(f"readout of {self.name!r} needs images and/or captions; both are None")
        if images is not None and captions is not None and len(images) != len(captions):
            raise DimensionError(f"{len(images)} image samples but {len(captions)} captions in one batch")
        out = {}
        for t in self._towers:
            if t.modality == "image" and images is not None:
                out[t.branch] = self._read_images(t, images)
            elif t.modality == "text" and captions is not None:
                out[t.branch] = self._read_captions(t, captions)
        return out

    # ------------------------------------------------------------------ internals
    def _read_images(self, t: _Tower, images) -> np.ndarray:
        flat, owner = [], []
        for i, sample in enumerate(images):
            if isinstance(sample, np.ndarray) and sample.ndim == 3:
                sample = [sample]
            if len(sample) == 0:
                raise DimensionError(f"sample {i} has no frames; every sample needs at least one (H, W, 3) frame")
            for j, frame in enumerate(sample):
                flat.append(check_image(frame, f"frame {j} of sample {i}"))
                owner.append(i)
        chunks = []
        for start in range(0, len(flat), self.batch_size):
            pixel_values = self.image_processor(flat[start : start + self.batch_size], device=self.device)
            chunks.append(self._forward(t, {"pixel_values": pixel_values}))
        per_image = np.concatenate(chunks, axis=0)
        counts = np.bincount(np.asarray(owner), minlength=len(images))
        if (counts == 1).all():
            return per_image
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        sums = np.add.reduceat(per_image.astype(np.float64), starts, axis=0)
        return (sums / counts[:, None]).astype(np.float32)

    def _read_captions(self, t: _Tower, captions) -> np.ndarray:
        captions = ["" if c is None else str(c) for c in captions]
        max_len = getattr(t.module.config, "max_position_embeddings", 512)
        chunks = []
        for start in range(0, len(captions), self.batch_size):
            enc = self.tokenizer(
                captions[start : start + self.batch_size],
                padding=True,
                truncation=True,
                max_length=int(max_len),
                return_tensors="pt",
                return_special_tokens_mask=True,
            )
            chunks.append(self._forward(t, dict(enc)))
        return np.concatenate(chunks, axis=0).astype(np.float32, copy=False)

    def _pool_weights(self, t: _Tower, inputs, n_tokens: int, batch: int) -> torch.Tensor:
        """(batch, n_tokens) float32 weights, rows summing to 1."""
        dev = self.device
        if t.modality == "image":
            w = torch.ones(batch, n_tokens, device=dev)
            if self.pooling == "cls":
                w = torch.zeros_like(w)
                w[:, 0] = 1
            elif self.pooling == "patches":
                w[:, 0] = 0
        else:
            mask = inputs["attention_mask"].to(dev).float()
            if self.pooling == "mean":
                w = mask
            elif self.pooling == "cls":
                w = torch.zeros_like(mask)
                if t.text_kind == "clip":
                    ids = inputs["input_ids"].to(dev)
                    if t.eos_token_id == 2:
                        pos = ids.to(torch.int).argmax(dim=-1)
                    else:
                        pos = (ids == t.eos_token_id).int().argmax(dim=-1)
                else:
                    pos = torch.zeros(batch, dtype=torch.long, device=dev)
                w[torch.arange(batch, device=dev), pos] = 1
            else:
                w = mask * (1 - inputs["special_tokens_mask"].to(dev).float())
                empty = w.sum(1) == 0
                w[empty] = mask[empty]
        return w / w.sum(1, keepdim=True)

    def _key_mean(self, t: _Tower, k: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        """Per query token, the mean of k over the keys it attends to: (B, S, D)."""
        if key_mask is None:
            return k.mean(1, keepdim=True).expand_as(k)
        m = key_mask.unsqueeze(-1)
        if t.causal:
            num = torch.cumsum(k * m, dim=1)
            den = torch.cumsum(m, dim=1).clamp_min(1.0)
            return num / den
        return ((k * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1.0)).expand_as(k)

    @torch.inference_mode()
    def _forward(self, t: _Tower, inputs: dict) -> np.ndarray:
        model_inputs = {}
        if t.modality == "image":
            model_inputs["pixel_values"] = inputs["pixel_values"].to(self.device, self.dtype)
            batch = model_inputs["pixel_values"].shape[0]
        else:
            model_inputs["input_ids"] = inputs["input_ids"].to(self.device)
            model_inputs["attention_mask"] = inputs["attention_mask"].to(self.device)
            batch = model_inputs["input_ids"].shape[0]
        key_mask = None if t.modality == "image" else inputs["attention_mask"].to(self.device).float()
        state = {"w": None}
        results: list = [None] * len(t.layers)
        qk_buf: list[dict] = [{} for _ in t.layers]
        head_dim = t.hidden_size // t.n_heads

        def weights(x):
            if state["w"] is None:
                state["w"] = self._pool_weights(t, inputs, x.shape[1], batch)
            return state["w"]

        def pool(x):
            x = x.float()
            return torch.bmm(weights(x).unsqueeze(1), x).squeeze(1)

        def pre_hook(idx):
            def hook(module, args, kwargs=None):
                results[idx] = pool(args[0])

            return hook

        def out_hook(idx):
            def hook(module, args, output):
                x = output[0] if isinstance(output, tuple) else output
                results[idx] = pool(x)

            return hook

        def qk_hook(idx, which):
            def hook(module, args, output):
                buf = qk_buf[idx]
                buf[which] = output.float()
                if "q" in buf and "k" in buf:
                    q, k = buf.pop("q"), buf.pop("k")
                    kbar = self._key_mean(t, k, key_mask)
                    results[idx] = pool(q * kbar) / float(np.sqrt(head_dim))

            return hook

        handles = []
        try:
            for i, layer in enumerate(t.layers):
                if self.site == "head-unit":
                    handles.append(_get(layer, _OUT_PATHS, "attention output projection").register_forward_pre_hook(pre_hook(i)))
                elif self.site == "mlp":
                    handles.append(_get(layer, _FC2_PATHS, "second FFN layer").register_forward_pre_hook(pre_hook(i)))
                elif self.site == "hidden":
                    handles.append(layer.register_forward_hook(out_hook(i)))
                else:
                    handles.append(_get(layer, _Q_PATHS, "query projection").register_forward_hook(qk_hook(i, "q")))
                    handles.append(_get(layer, _K_PATHS, "key projection").register_forward_hook(qk_hook(i, "k")))
            t.module(**model_inputs)
        finally:
            for h in handles:
                h.remove()
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            raise RuntimeError(f"hooks of layers {missing} of {self.name!r}/{t.branch} did not fire")
        return torch.cat(results, dim=1).cpu().numpy().astype(np.float32, copy=False)


# ---------------------------------------------------------------------------- loading
def hf_offline() -> bool:
    """True when Hugging Face downloads are disabled (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hf_cache_dir() -> str:
    """The Hugging Face hub cache folder (``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else the default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _short(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def not_available_message(source: str, reason: str) -> str:
    where = f"the local path {os.path.abspath(source)!r} (no such folder)"
    return (
        f"model {source!r} is not available: {reason}. Looked in the Hugging Face cache {hf_cache_dir()!r} and at "
        f"{where}. To fix: on a machine with internet run `huggingface-cli download {source}` and copy the cache "
        "(or set HF_HOME to it), or pass the path of a local folder with config.json and the weights"
    )


def _model_class(model_type):
    import transformers

    family = HF_MODEL_TYPES[model_type]
    if family == "clip":
        return transformers.CLIPModel
    if family == "vit":
        return transformers.ViTModel
    return transformers.AutoModel


def model_type_of(source, local_files_only: bool) -> str:
    """``model_type`` from ``config.json`` of a folder or hub id."""
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(str(source), local_files_only=local_files_only)
    except (OSError, ValueError) as err:
        raise ModelNotAvailableError(not_available_message(str(source), f"no config.json found ({_short(err)})")) from err
    return cfg.model_type


#: config.json key a user may set before ``save_pretrained`` to say what the weights are
#: (``model.config.vlmbrain_trained = False``); ``model.options.trained`` in the run config wins.
TRAINED_CONFIG_KEY = "vlmbrain_trained"

#: Files only a training run leaves in a model folder (Hugging Face ``Trainer``).
_TRAINER_FILES = ("trainer_state.json", "training_args.bin")


def trained_evidence(source, is_dir: bool | None = None) -> tuple[bool | None, str]:
    """Whether the weights of a Hugging Face folder or hub id were trained, and what says so.

    In this order: the ``vlmbrain_trained`` key of ``config.json`` (true/false); a hub id, or a
    folder inside the Hugging Face cache (``models--org--name/snapshots/``): a published
    checkpoint, True; a ``Trainer``'s ``trainer_state.json`` / ``training_args.bin``: True.
    Anything else — e.g. a folder saved from a model built from its config, whose weights are
    random — is ``None`` ("unknown"): vlmbrain never guesses True.
    """
    import json

    source = str(source)
    is_dir = os.path.isdir(source) if is_dir is None else is_dir
    if not is_dir:
        return True, f"hub checkpoint {source}"
    try:
        with open(os.path.join(source, "config.json"), encoding="utf-8") as fh:
            cfg = json.load(fh)
    except (OSError, ValueError):
        cfg = {}
    marker = cfg.get(TRAINED_CONFIG_KEY)
    if isinstance(marker, bool):
        return marker, f"config.json {TRAINED_CONFIG_KEY}: {str(marker).lower()}"
    parts = os.path.abspath(source).split(os.sep)
    if "snapshots" in parts and any(p.startswith("models--") for p in parts):
        repo = next(p for p in parts if p.startswith("models--"))[len("models--"):].replace("--", "/")
        return True, f"Hugging Face cache snapshot of the hub checkpoint {repo}"
    found = [f for f in _TRAINER_FILES if os.path.isfile(os.path.join(source, f))]
    if found:
        return True, f"a training run's {found[0]} in the folder"
    return None, ("nothing in the folder says whether its weights were trained (set model.options.trained, or "
                  f"config.json {TRAINED_CONFIG_KEY})")


def load_hf_readout(
    source,
    site: str = "head-unit",
    pooling: str = "mean",
    device: str = "cpu",
    dtype: str = "float32",
    batch_size: int = 32,
    name: str | None = None,
    revision: str | None = None,
) -> HFReadout:
    """Load a CLIP / ViT / BERT / RoBERTa readout from a local folder or a hub id.

    Offline (``HF_HUB_OFFLINE=1``) only the local folder or the Hugging Face cache is read;
    online the cache is tried first, then the hub. Missing weights raise
    :class:`~vlmbrain.errors.ModelNotAvailableError` naming the id, where it looked and how to fix it.
    """
    source = str(source)
    check_option("site", site, SITES)
    check_option("pooling", pooling, POOLINGS)
    torch_dtype = resolve_dtype(dtype)
    resolve_device(device)
    is_dir = os.path.isdir(source)
    if not is_dir and (source.startswith((".", "/", "~")) or os.sep + os.sep in source or source.count("/") > 1):
        raise ModelNotAvailableError(not_available_message(source, "it is not an existing folder nor a hub id"))
    attempts = [True] if (is_dir or hf_offline()) else [True, False]
    last = None
    for local_only in attempts:
        try:
            mtype = model_type_of(source, local_only)
            if mtype not in HF_MODEL_TYPES:
                raise ConfigError(
                    f"{source!r} has model_type {mtype!r} in config.json; the HF readout supports "
                    f"{', '.join(HF_MODEL_TYPES)}"
                )
            kw = {"local_files_only": local_only}
            if revision:
                kw["revision"] = revision
            model = _model_class(mtype).from_pretrained(source, dtype=torch_dtype, **kw)
            break
        except ModelNotAvailableError as err:
            last = err
        except OSError as err:
            last = ModelNotAvailableError(not_available_message(source, f"weights not found ({_short(err)})"))
    else:
        if hf_offline() and not is_dir:
            raise ModelNotAvailableError(str(last) + " (offline: HF_HUB_OFFLINE=1, nothing is downloaded)") from last
        raise last
    family = HF_MODEL_TYPES[mtype]
    image_processor = tokenizer = None
    if family in ("clip", "vit"):
        cfg = getattr(model.config, "vision_config", model.config)
        image_processor = load_image_processor(source, local_only, int(cfg.image_size))
    if family in ("clip", "text"):
        text_cfg = getattr(model.config, "text_config", model.config)
        tokenizer = load_tokenizer(source, local_only, vocab_size=getattr(text_cfg, "vocab_size", None))
    readout = HFReadout(
        model,
        name=name or source,
        site=site,
        pooling=pooling,
        image_processor=image_processor,
        tokenizer=tokenizer,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
    )
    readout.trained, readout.trained_evidence = trained_evidence(source, is_dir)
    return readout
