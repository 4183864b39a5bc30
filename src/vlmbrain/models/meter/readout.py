"""Artificial-neuron readout of METER (docs/method.md §2.2–2.3).

METER is cross-modal: both branches need the TR's frame *and* its caption, so both have
modality ``"image+text"``. One forward pass per batch of (frame, caption) pairs records every
needed intermediate (:meth:`METER.infer` with ``output_intermediates``); nothing is re-run per site.

Branches and layers (the neuron table's ``layer`` column):

``image``
    CLIP ViT blocks ``0 … vision_layers-1`` (module ``self_attn``), then the image-stream fusion
    layers as ``vision_layers + i`` (modules ``self_attn`` and ``cross_attn``; cross = image
    queries attending to the text stream). Real model: layers 0–10 ViT, 11–16 fusion.
``text``
    RoBERTa layers ``0 … text_layers-1`` (module ``self_attn``), then the text-stream fusion
    layers as ``text_layers + i`` (``self_attn``, ``cross_attn`` = text queries attending to the
    image). Real model: 0–11 RoBERTa, 12–17 fusion.

AN sites:

``head-unit`` (default)
    Per-head attention output ``softmax(QKᵀ/√d)V`` before the output projection, heads
    concatenated: ``width`` units per attention module, ``head = unit_index // d_head``,
    ``unit = unit_index % d_head``. Fusion layers give two modules (``self_attn``, ``cross_attn``).
``qk``
    Unit ``d``'s share of the attention logits: for query token ``i``,
    ``qk_d(i) = q_d(i) · k̄_d / √d_head`` with ``k̄_d`` the mean of the key projections over the
    keys the query attends to (text keys: real tokens only; image keys: all). ``q``, ``k`` include
    the projection biases. Summed over a head's units this is the query's mean attention logit.
    Pooled over query tokens like every other site. Same modules as ``head-unit`` (the neuron
    table's ``module`` stays ``self_attn`` / ``cross_attn`` so that self- and cross-attention
    stay distinct; the site is a readout-wide option).
``mlp``
    FFN intermediate units after the activation (QuickGELU in CLIP, erf-GELU elsewhere), the
    input of the second FFN layer; module ``mlp``, ``head = -1``. Fusion layers: one per stream.
``hidden``
    Layer outputs (residual stream; for the ViT the block output *before* ``ln_post``);
    module ``hidden``, ``head = -1``.

Pooling over the module's query tokens (the stream's own tokens):

``mean`` (default)
    Image: CLS + all patches. Text: the caption's real tokens (attention mask, ``<s>``/``</s>`` included).
``cls``
    Token 0 (image CLS / text ``<s>``).
``patches``
    Image: patches without CLS. Text: real tokens without ``<s>`` and ``</s>``; an empty caption
    (no such token) falls back to ``mean``.

Pre-processing (docs/meter.md §5): frames are resized (shorter side, PIL bicubic) to ``image_size``,
centre-cropped (torchvision ``CenterCrop`` rounding), scaled to [0, 1] and normalised with the CLIP
constants; captions are tokenised with ``padding="max_length", truncation=True,
max_length=config.max_text_len``. ``n`` frames of a sample are each paired with the sample's
caption and the readouts averaged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from os import PathLike

import numpy as np
import pandas as pd
import torch

from vlmbrain.errors import ConfigError, DimensionError, ModelNotAvailableError
from vlmbrain.models.base import POOLINGS, SITES, Readout, make_neuron_table
from vlmbrain.models.meter.modeling import METER

__all__ = ["METERReadout", "preprocess_frames", "load_roberta_tokenizer", "CLIP_MEAN", "CLIP_STD"]

logger = logging.getLogger("vlmbrain")

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

# site -> fnmatch patterns of the intermediates it needs
_PATTERNS = {
    "head-unit": ("*attn_context",),
    "qk": ("*attn_query", "*attn_key"),
    "mlp": ("*ffn_intermediate",),
    "hidden": ("text_encoder.*.out", "vis.block.*.out", "fusion.*.out"),
}


# ----------------------------------------------------------------------------- pre-processing
def preprocess_frames(frames: Sequence[np.ndarray], image_size: int) -> torch.Tensor:
    """METER/CLIP image transform of RGB frames.

    Shorter side resized to ``image_size`` (PIL bicubic; the longer side ``int(size * long / short)``
    as in torchvision ``Resize``), centre crop (offsets ``int(round((H - S) / 2))`` as in torchvision
    ``CenterCrop``), ``/255``, CLIP normalisation.

    Parameters
    ----------
    frames : sequence of ndarray (H, W, 3) uint8
    image_size : int

    Returns
    -------
    Tensor of shape (n_frames, 3, image_size, image_size), float32
    """
    from PIL import Image

    s = int(image_size)
    mean = np.asarray(CLIP_MEAN, np.float32)
    std = np.asarray(CLIP_STD, np.float32)
    out = []
    for i, frame in enumerate(frames):
        arr = np.asarray(frame)
        if arr.ndim != 3 or arr.shape[-1] != 3:
            raise DimensionError(f"frame {i} must be an RGB array of shape (H, W, 3), got shape {arr.shape}.")
        if arr.dtype != np.uint8:
            raise DimensionError(f"frame {i} must be uint8 (0..255), got dtype {arr.dtype}; convert with "
                                 ".astype(np.uint8).")
        pil = Image.fromarray(arr).convert("RGB")
        w, h = pil.size
        if (w <= h and w == s) or (h <= w and h == s):
            new_w, new_h = w, h
        elif w < h:
            new_w, new_h = s, int(s * h / w)
        else:
            new_w, new_h = int(s * w / h), s
        if (new_w, new_h) != (w, h):
            pil = pil.resize((new_w, new_h), resample=Image.BICUBIC)
        top = int(round((new_h - s) / 2.0))
        left = int(round((new_w - s) / 2.0))
        pil = pil.crop((left, top, left + s, top + s))
        x = np.asarray(pil, dtype=np.float32) / np.float32(255.0)
        x = (x - mean) / std
        out.append(np.ascontiguousarray(x.transpose(2, 0, 1)))
    if not out:
        return torch.zeros(0, 3, s, s)
    return torch.from_numpy(np.stack(out))


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants

        return os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE
    except ImportError:  # pragma: no cover
        return "~/.cache/huggingface/hub"


def load_roberta_tokenizer(source: str | PathLike = "roberta-base"):
    """A tokenizer from a local folder or the Hugging Face cache (never downloads).

    Raises
    ------
    ModelNotAvailableError
        When ``source`` is neither a folder with tokenizer files nor cached.
    """
    from transformers import AutoTokenizer

    src = os.fspath(source)
    # the hub moved "roberta-base" to "FacebookAI/roberta-base"; a cache may hold either
    candidates = [src] + (["FacebookAI/roberta-base"] if src == "roberta-base" else [])
    err = None
    for cand in candidates:
        try:
            return AutoTokenizer.from_pretrained(cand, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as e:
            err = e
    raise ModelNotAvailableError(
        f"METER tokenizer {src!r} is not available offline ({type(err).__name__}). Looked at the local path "
        f"{os.path.abspath(src)!r} and in the Hugging Face cache {_hf_cache_dir()!r}. To fix: on a machine with "
        f"internet run `huggingface-cli download {src if os.path.sep not in src else 'roberta-base'}` and copy "
        "the cache (or set HF_HOME), or pass tokenizer=<folder with tokenizer.json / vocab.json+merges.txt> "
        "or a tokenizer object."
    ) from err


# ----------------------------------------------------------------------------- readout
class METERReadout(Readout):
    """Per-neuron readout of a :class:`~vlmbrain.models.meter.METER` model.

    Parameters
    ----------
    model : METER
    tokenizer : tokenizer object, str or PathLike, default="roberta-base"
        Any Hugging Face tokenizer (callable with ``padding``/``truncation``/``max_length``), or a
        local folder / cached name loaded offline.
    site : {"head-unit", "qk", "mlp", "hidden"}, default="head-unit"
    pooling : {"mean", "cls", "patches"}, default="mean"
    device : str, default="cpu"
    dtype : torch.dtype or str, default=torch.float32
        Compute dtype; readouts are returned as float32.
    batch_size : int, default=8
        (frame, caption) pairs per forward pass; the memory knob (the real model keeps about
        50 MB of intermediates per pair for ``qk``, half for the other sites).
    name : str, optional
        Model name in the neuron table; default ``"meter-<config.name>"``.

    Attributes
    ----------
    branches : ("image", "text")
    modalities : {"image": "image+text", "text": "image+text"}
    """

    branches = ("image", "text")
    modalities = {"image": "image+text", "text": "image+text"}
    #: each stream of the co-attention model encodes one input while attending to the other
    streams = {"image": "image", "text": "text"}

    def __init__(self, model: METER, tokenizer="roberta-base", site: str = "head-unit", pooling: str = "mean",
                 device="cpu", dtype=torch.float32, batch_size: int = 8, name: str | None = None):
        if not isinstance(model, METER):
            raise ConfigError(f"METERReadout needs a vlmbrain METER model, got {type(model).__name__}.")
        if site not in SITES:
            raise ConfigError(f"site={site!r} is not supported; expected one of {', '.join(map(repr, SITES))}.")
        if pooling not in POOLINGS:
            raise ConfigError(
                f"pooling={pooling!r} is not supported; expected one of {', '.join(map(repr, POOLINGS))}.")
        if isinstance(dtype, str):
            if dtype not in _DTYPES:
                raise ConfigError(f"dtype={dtype!r} is not supported; expected one of {', '.join(_DTYPES)}.")
            dtype = _DTYPES[dtype]
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size={batch_size!r} must be a positive integer.")
        self.config = model.config
        self.device = torch.device(str(device))
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device={device!r} but no CUDA device is available; use device='cpu'.")
        self.dtype = dtype
        self.model = model.to(self.device, dtype).eval()
        if isinstance(tokenizer, (str, PathLike)):
            tokenizer = load_roberta_tokenizer(tokenizer)
        if not callable(tokenizer):
            raise ConfigError(f"tokenizer must be a Hugging Face tokenizer or a path, got {type(tokenizer).__name__}.")
        self.tokenizer = tokenizer
        self.site = site
        self.pooling = pooling
        self.batch_size = int(batch_size)
        self.name = name or f"meter-{self.config.name}"
        self._weights_hash: str | None = None
        self._table: pd.DataFrame | None = None

    @classmethod
    def from_checkpoint(cls, path: str | PathLike, variant: str = "pretrain_288", tokenizer="roberta-base",
                        site: str = "head-unit", pooling: str = "mean", device="cpu", dtype=torch.float32,
                        image_size: int | None = None, **kwargs) -> "METERReadout":
        """Load an official METER checkpoint (see :meth:`METER.from_checkpoint`) and wrap it."""
        model = METER.from_checkpoint(path, variant=variant, image_size=image_size)
        return cls(model, tokenizer, site=site, pooling=pooling, device=device, dtype=dtype, **kwargs)

    # ------------------------------------------------------------------ layout
    def _modules(self, branch: str) -> list[tuple[int, str, str, int]]:
        """(layer, module, intermediate prefix, width) of every AN group of a branch, in column order."""
        cfg = self.config
        if branch == "image":
            uni = [(i, f"vis.block.{i}.", cfg.vision_width) for i in range(cfg.vision_layers)]
            stream = "image"
        else:
            uni = [(i, f"text_encoder.{i}.", cfg.text_hidden_size) for i in range(cfg.text_layers)]
            stream = "text"
        n_uni = len(uni)
        fusion = [(n_uni + i, f"fusion.{stream}.{i}.", cfg.hidden_size) for i in range(cfg.num_top_layer)]
        out = []
        site = self.site
        for layer, prefix, width in uni:
            if site in ("head-unit", "qk"):
                out.append((layer, "self_attn", prefix + "attn", width))
            elif site == "mlp":
                inner = cfg.vision_width * cfg.vision_mlp_ratio if branch == "image" else cfg.text_intermediate_size
                out.append((layer, "mlp", prefix + "ffn_intermediate", inner))
            else:
                out.append((layer, "hidden", prefix + "out", width))
        for layer, prefix, width in fusion:
            if site in ("head-unit", "qk"):
                out.append((layer, "self_attn", prefix + "self_attn", width))
                out.append((layer, "cross_attn", prefix + "cross_attn", width))
            elif site == "mlp":
                out.append((layer, "mlp", prefix + "ffn_intermediate", width * cfg.mlp_ratio))
            else:
                out.append((layer, "hidden", prefix + "out", width))
        return out

    def _n_heads(self, branch: str, layer: int) -> int:
        cfg = self.config
        n_uni = cfg.vision_layers if branch == "image" else cfg.text_layers
        if layer >= n_uni:
            return cfg.num_heads
        return cfg.vision_heads if branch == "image" else cfg.text_heads

    def neuron_table(self) -> pd.DataFrame:
        """One row per AN: image branch first, then text; columns of :data:`NEURON_COLUMNS`."""
        if self._table is None:
            rows = []
            for branch in self.branches:
                for layer, module, _, width in self._modules(branch):
                    per_head = module in ("self_attn", "cross_attn")
                    d = width // self._n_heads(branch, layer) if per_head else width
                    for u in range(width):
                        rows.append(dict(model=self.name, branch=branch, layer=layer, module=module,
                                         head=u // d if per_head else -1, unit=u % d if per_head else u,
                                         group=None))
            self._table = make_neuron_table(rows)
        return self._table.copy()

    def weights_hash(self) -> str:
        """SHA-256 (16 hex digits) over every state_dict entry: name, dtype, shape and bytes (cached)."""
        if self._weights_hash is None:
            from vlmbrain.models.base import state_dict_hash

            self._weights_hash = state_dict_hash(self.model)
        return self._weights_hash

    # ------------------------------------------------------------------ computing
    def tokenize(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions → ``text_ids`` (B, max_text_len) int64 and ``text_masks`` (B, max_text_len)."""
        enc = self.tokenizer(list(captions), padding="max_length", truncation=True,
                             max_length=self.config.max_text_len, return_tensors="pt")
        ids = enc["input_ids"].long()
        masks = enc["attention_mask"].long()
        if ids.numel() and int(ids.max()) >= self.config.vocab_size:
            raise DimensionError(
                f"the tokenizer produced id {int(ids.max())}, but the METER model has vocab_size="
                f"{self.config.vocab_size}; use the model's own tokenizer (roberta-base for the released checkpoints)."
            )
        return ids, masks

    def _weights(self, stream: str, ids: torch.Tensor, masks: torch.Tensor, n_tokens: int) -> torch.Tensor:
        """Pooling weights over a stream's tokens, (B, n_tokens) float."""
        b = ids.shape[0]
        if stream == "image":
            w = torch.ones(b, n_tokens)
            if self.pooling == "cls":
                w.zero_()
                w[:, 0] = 1
            elif self.pooling == "patches":
                w[:, 0] = 0
            return w
        m = masks.float()
        if self.pooling == "cls":
            w = torch.zeros_like(m)
            w[:, 0] = 1
            return w
        if self.pooling == "patches":
            cfg = self.config
            special = (ids == cfg.bos_token_id) | (ids == cfg.eos_token_id) | (ids == cfg.pad_token_id)
            w = m * (~special).float()
            empty = w.sum(1) == 0
            w[empty] = m[empty]
            return w
        return m

    @staticmethod
    def _pool(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        w = w.to(x.device, torch.float32)
        return (x.float() * w[:, :, None]).sum(1) / w.sum(1, keepdim=True)

    def features(self, pixel_values: torch.Tensor, text_ids: torch.Tensor, text_masks: torch.Tensor
                 ) -> dict[str, torch.Tensor]:
        """Readouts of already pre-processed (image, text) pairs, one forward pass.

        Parameters
        ----------
        pixel_values : Tensor (B, 3, S, S)
        text_ids, text_masks : Tensor (B, L)

        Returns
        -------
        dict of branch to Tensor (B, n_neurons_branch), float32, on the CPU
        """
        with torch.no_grad():
            out = self.model.infer(pixel_values.to(self.device, self.dtype), text_ids.to(self.device),
                                   text_masks.to(self.device), output_intermediates=_PATTERNS[self.site])
        inter = out["intermediates"]
        ids, masks = text_ids.cpu(), text_masks.cpu()
        n_img = out["image_feats"].shape[1]
        weights = {"image": self._weights("image", ids, masks, n_img),
                   "text": self._weights("text", ids, masks, ids.shape[1])}
        key_w = {"image": torch.ones(ids.shape[0], n_img), "text": masks.float()}
        result = {}
        for branch in self.branches:
            cols = []
            for layer, module, key, width in self._modules(branch):
                if self.site == "qk":
                    # keys come from the other stream for cross-attention
                    key_stream = branch if module == "self_attn" else ("text" if branch == "image" else "image")
                    q, k = inter[key + "_query"].float(), inter[key + "_key"].float()
                    d = width // self._n_heads(branch, layer)
                    kbar = self._pool(k, key_w[key_stream])  # (B, W)
                    x = q * kbar[:, None, :].to(q.device) / np.sqrt(d)
                elif self.site == "head-unit":
                    x = inter[key + "_context"]
                else:
                    x = inter[key]
                cols.append(self._pool(x, weights[branch]).cpu())
            result[branch] = torch.cat(cols, dim=1)
        return result

    def readout(self, images, captions) -> dict[str, np.ndarray]:
        """Read out one batch of samples (each: its frames paired with its caption).

        Parameters
        ----------
        images : list of list of ndarray (H, W, 3) uint8
            Per sample one or more frames (averaged). Required: METER needs a frame for every sample.
        captions : list of str, or None
            Per sample its caption; ``None`` means empty captions for all.

        Returns
        -------
        dict with ``"image"`` (batch, n_image_neurons) and ``"text"`` (batch, n_text_neurons), float32
        """
        if images is None:
            raise ConfigError(
                "METER reads (frame, caption) pairs: images=None is not possible; give every sample at least one "
                "frame (a blank frame for rest TRs).")
        n = len(images)
        if captions is None:
            captions = [""] * n
        if len(captions) != n:
            raise DimensionError(f"METER readout got {n} samples of frames but {len(captions)} captions.")
        pairs_img, pairs_cap, owner = [], [], []
        for s, (frames, cap) in enumerate(zip(images, captions)):
            if isinstance(frames, np.ndarray) and frames.ndim == 3:
                frames = [frames]
            if len(frames) == 0:
                raise DimensionError(f"sample {s} has no frames; METER needs at least one frame per sample.")
            for f in frames:
                pairs_img.append(f)
                pairs_cap.append("" if cap is None else str(cap))
                owner.append(s)
        n_cols = {b: sum(width for *_, width in self._modules(b)) for b in self.branches}
        sums = {b: np.zeros((n, n_cols[b]), np.float64) for b in self.branches}
        counts = np.bincount(owner, minlength=n).astype(np.float64)
        owner = np.asarray(owner)
        for start in range(0, len(pairs_img), self.batch_size):
            sl = slice(start, start + self.batch_size)
            pix = preprocess_frames(pairs_img[sl], self.config.image_size)
            ids, masks = self.tokenize(pairs_cap[sl])
            feats = self.features(pix, ids, masks)
            for b in self.branches:
                np.add.at(sums[b], owner[sl], feats[b].numpy().astype(np.float64))
        return {b: (sums[b] / counts[:, None]).astype(np.float32) for b in self.branches}
