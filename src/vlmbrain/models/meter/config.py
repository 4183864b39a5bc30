"""Configuration of the METER model (CLIP-ViT + RoBERTa + co-attention fusion).

Every size is a field of :class:`METERConfig`, so that the released METER checkpoints
(``meter_config("pretrain_288")`` etc., see ``docs/meter.md`` §1–2), the TINY parity fixture
(``meter_config("tiny")``) and small custom models (toy-world training) share one class.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vlmbrain.errors import ConfigError

#: Task heads a METER model may carry.
HEADS = ("mlm", "itm", "vqa", "nlvr2", "snli", "rank")

#: Named variants of the released CLIP16-RoBERTa checkpoints (docs/meter.md §1, §2).
VARIANTS = ("pretrain_288", "pretrain_224", "vqa_576", "nlvr2_288", "snli_384", "flickr_384", "coco_384", "tiny")


@dataclass
class METERConfig:
    """All sizes of a METER model.

    Attributes
    ----------
    name : str
        Variant name (informational).
    image_size : int, default=288
        Square input size in pixels; the position table has ``(image_size // patch_size)**2 + 1`` rows.
    patch_size : int, default=16
    vision_width, vision_layers, vision_heads : int, default=768, 11, 12
        CLIP ViT width, number of residual blocks (METER drops CLIP's last block: 11), heads.
    vision_mlp_ratio : int, default=4
        ``mlp.c_fc`` has ``vision_mlp_ratio * vision_width`` units.
    vision_ln_eps : float, default=1e-5
    clip_text_width, clip_context_length : int, default=512, 77
        Sizes of the unused CLIP text-tower leftovers ``vit_model.positional_embedding``
        ``(clip_context_length, clip_text_width)`` and ``vit_model.ln_final`` (kept for key parity).
    vocab_size : int, default=50265
        RoBERTa vocabulary (also the MLM head's output size).
    text_hidden_size, text_layers, text_heads, text_intermediate_size : int, default=768, 12, 12, 3072
    text_max_positions : int, default=514
        RoBERTa ``max_position_embeddings`` (= max text length + 2 because of the pad offset).
    text_type_vocab_size : int, default=1
    text_ln_eps : float, default=1e-5
    pad_token_id, bos_token_id, eos_token_id : int, default=1, 0, 2
    max_text_len : int, default=50
        Tokenizer ``max_length`` used by the pre-processing (40 for the IR/TR fine-tunes).
    hidden_size, num_heads, num_top_layer, mlp_ratio : int, default=768, 12, 6, 4
        Fusion width, heads, co-attention layers per stream, FFN ratio.
    fusion_ln_eps : float, default=1e-12
    num_token_types : int, default=2
        Rows of ``token_type_embeddings`` (3 for NLVR2).
    drop_rate : float, default=0.1
        Dropout of the text encoder and the fusion layers (training mode only; CLIP has none).
    heads : tuple of str, default=("mlm", "itm")
        Task heads present, a subset of :data:`HEADS`.
    vqa_label_size : int, default=3129
    snli_label_size : int, default=3
    """

    name: str = "custom"
    # vision (CLIP ViT)
    image_size: int = 288
    patch_size: int = 16
    vision_width: int = 768
    vision_layers: int = 11
    vision_heads: int = 12
    vision_mlp_ratio: int = 4
    vision_ln_eps: float = 1e-5
    clip_text_width: int = 512
    clip_context_length: int = 77
    # text (RoBERTa)
    vocab_size: int = 50265
    text_hidden_size: int = 768
    text_layers: int = 12
    text_heads: int = 12
    text_intermediate_size: int = 3072
    text_max_positions: int = 514
    text_type_vocab_size: int = 1
    text_ln_eps: float = 1e-5
    pad_token_id: int = 1
    bos_token_id: int = 0
    eos_token_id: int = 2
    max_text_len: int = 50
    # fusion
    hidden_size: int = 768
    num_heads: int = 12
    num_top_layer: int = 6
    mlp_ratio: int = 4
    fusion_ln_eps: float = 1e-12
    num_token_types: int = 2
    drop_rate: float = 0.1
    # heads
    heads: tuple[str, ...] = field(default=("mlm", "itm"))
    vqa_label_size: int = 3129
    snli_label_size: int = 3

    def __post_init__(self):
        self.heads = tuple(self.heads)
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> "METERConfig":
        """Check that the sizes are consistent; raise :class:`ConfigError` otherwise."""
        unknown = [h for h in self.heads if h not in HEADS]
        if unknown:
            raise ConfigError(f"METERConfig.heads contains unknown head(s) {unknown}; allowed: {list(HEADS)}.")
        for width, heads, what in (
            (self.vision_width, self.vision_heads, "vision_width/vision_heads"),
            (self.text_hidden_size, self.text_heads, "text_hidden_size/text_heads"),
            (self.hidden_size, self.num_heads, "hidden_size/num_heads"),
        ):
            if heads <= 0 or width % heads:
                raise ConfigError(
                    f"METERConfig {what} = {width}/{heads}: the width must be a positive multiple of the "
                    "number of heads."
                )
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"METERConfig.image_size={self.image_size} is not a multiple of patch_size={self.patch_size}."
            )
        if "nlvr2" in self.heads and self.num_token_types < 3:
            raise ConfigError("METERConfig with the 'nlvr2' head needs num_token_types >= 3 (two image types).")
        if self.text_max_positions < self.max_text_len + self.pad_token_id + 1:
            raise ConfigError(
                f"METERConfig.text_max_positions={self.text_max_positions} is too small for "
                f"max_text_len={self.max_text_len} (RoBERTa positions start at pad_token_id + 1)."
            )
        return self

    @property
    def grid_size(self) -> int:
        """Patches per side, ``image_size // patch_size``."""
        return self.image_size // self.patch_size

    @property
    def num_image_tokens(self) -> int:
        """Image tokens including CLS, ``grid_size**2 + 1``."""
        return self.grid_size**2 + 1

    def replace(self, **overrides: Any) -> "METERConfig":
        """A copy with some fields changed (validated)."""
        return _replace(self, overrides)

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_fixture_meta(cls, meta: dict) -> "METERConfig":
        """Config of the official-code fixture from its ``blob["meta"]`` dict.

        Parameters
        ----------
        meta : dict
            ``meter_reference_io.pt["meta"]``: with ``config`` (the resolved sacred config),
            ``text_encoder_config`` (the RoBERTa config) and ``fake_clip_checkpoint_config``
            (the CLIP checkpoint the vision tower was built from; METER keeps all blocks but the last).
        """
        try:
            c = meta["config"]
            t = meta["text_encoder_config"]
            v = meta["fake_clip_checkpoint_config"]
        except (KeyError, TypeError) as err:
            raise ConfigError(
                "METER fixture meta must have 'config', 'text_encoder_config' and 'fake_clip_checkpoint_config' "
                f"entries; missing {err}."
            ) from None
        losses = c.get("loss_names", {})
        heads = [h for h in ("mlm", "itm", "vqa", "nlvr2", "snli") if losses.get(h, 0) > 0]
        if losses.get("irtr", 0) > 0:
            heads.append("rank")
        return cls(
            name=str(meta.get("which", "fixture")),
            image_size=int(c["image_size"]),
            patch_size=int(c.get("patch_size", v["patch"])),
            vision_width=int(v["vision_width"]),
            vision_layers=int(v["vision_layers"]) - 1,
            vision_heads=int(v["vision_width"]) // 64,
            clip_text_width=int(v["t_width"]),
            clip_context_length=int(v["context_length"]),
            vocab_size=int(t["vocab_size"]),
            text_hidden_size=int(t["hidden_size"]),
            text_layers=int(t["num_hidden_layers"]),
            text_heads=int(t["num_attention_heads"]),
            text_intermediate_size=int(t["intermediate_size"]),
            text_max_positions=int(t["max_position_embeddings"]),
            text_type_vocab_size=int(t["type_vocab_size"]),
            text_ln_eps=float(t["layer_norm_eps"]),
            pad_token_id=int(t["pad_token_id"]),
            bos_token_id=int(t["bos_token_id"]),
            eos_token_id=int(t["eos_token_id"]),
            max_text_len=int(c.get("max_text_len", 50)),
            hidden_size=int(c["hidden_size"]),
            num_heads=int(c["num_heads"]),
            num_top_layer=int(c["num_top_layer"]),
            mlp_ratio=int(c["mlp_ratio"]),
            num_token_types=3 if "nlvr2" in heads else 2,
            heads=tuple(heads),
            vqa_label_size=int(c.get("vqav2_label_size", 3129)),
        )


# The TINY fixture (meter_reference_io.pt["meta"]), written out so that the package works without it.
_TINY = dict(
    name="tiny", image_size=288, patch_size=16, vision_width=128, vision_layers=2, vision_heads=2,
    clip_text_width=64, clip_context_length=77, vocab_size=1000, text_hidden_size=96, text_layers=2,
    text_heads=3, text_intermediate_size=384, text_max_positions=66, max_text_len=50, hidden_size=64,
    num_heads=4, num_top_layer=2, mlp_ratio=4, heads=("mlm", "itm"),
)

_VARIANTS: dict[str, dict[str, Any]] = {
    "pretrain_288": dict(image_size=288, heads=("mlm", "itm")),
    "pretrain_224": dict(image_size=224, heads=("mlm", "itm")),
    "vqa_576": dict(image_size=576, heads=("vqa",)),
    "nlvr2_288": dict(image_size=288, heads=("nlvr2",), num_token_types=3),
    "snli_384": dict(image_size=384, heads=("snli",)),
    "flickr_384": dict(image_size=384, heads=("itm", "rank"), max_text_len=40),
    "coco_384": dict(image_size=384, heads=("itm", "rank"), max_text_len=40),
    "tiny": _TINY,
}


def _replace(cfg: METERConfig, overrides: dict[str, Any]) -> METERConfig:
    names = {f.name for f in dataclasses.fields(METERConfig)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise ConfigError(f"Unknown METERConfig field(s) {bad}; allowed: {sorted(names)}.")
    return dataclasses.replace(cfg, **overrides)


def meter_config(variant: str = "pretrain_288", **overrides: Any) -> METERConfig:
    """The configuration of a named METER variant, optionally with some fields overridden.

    Parameters
    ----------
    variant : str, default="pretrain_288"
        One of :data:`VARIANTS`: the released CLIP16-RoBERTa checkpoints ``pretrain_288``,
        ``pretrain_224``, ``vqa_576``, ``nlvr2_288``, ``snli_384``, ``flickr_384``, ``coco_384``,
        or ``tiny`` (the parity-fixture config).
    **overrides
        Any :class:`METERConfig` field, e.g. ``image_size=224``.

    Returns
    -------
    METERConfig

    Examples
    --------
    >>> meter_config("pretrain_288", image_size=224).num_image_tokens
    197
    """
    if variant not in _VARIANTS:
        raise ConfigError(f"Unknown METER variant {variant!r}; choose one of {list(VARIANTS)}.")
    base = dict(_VARIANTS[variant])
    base.setdefault("name", variant)
    return _replace(METERConfig(**base), overrides)
