"""Loaders of the bundled, really trained toy-world models (``weights/clip``, ``weights/meter``).

``toy-clip`` is a Hugging Face ``CLIPModel`` folder read by the generic HF readout;
``toy-meter`` is a :class:`vlmbrain.models.meter.METER` (``model.safetensors`` + ``config.json``)
read by :class:`vlmbrain.models.meter.readout.METERReadout`. Both folders carry their word-level
tokenizer (``tokenizer.json``) and ``training.json`` (command, seed, steps, losses, held-out
metrics). See ``README.md`` next to this file for how they were trained.
"""

from __future__ import annotations

import json
from pathlib import Path

from vlmbrain.errors import ConfigError, ModelNotAvailableError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_KINDS = {"clip": "clip", "toy-clip": "clip", "meter": "meter", "toy-meter": "meter"}
_REQUIRED = {
    "clip": ("config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json"),
    "meter": ("config.json", "model.safetensors", "tokenizer.json"),
}


def _kind(kind: str) -> str:
    if kind not in _KINDS:
        raise ConfigError(f"toy model kind={kind!r} is unknown; use one of {sorted(_KINDS)}.")
    return _KINDS[kind]


def toy_model_path(kind: str) -> Path:
    """Folder of a bundled toy model.

    Parameters
    ----------
    kind : {"clip", "meter", "toy-clip", "toy-meter"}

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ConfigError
        Unknown ``kind``.
    ModelNotAvailableError
        The folder or one of its files is missing (e.g. a source checkout without the weights).
    """
    k = _kind(kind)
    folder = WEIGHTS_DIR / k
    missing = [f for f in _REQUIRED[k] if not (folder / f).is_file()]
    if missing:
        raise ModelNotAvailableError(
            f"the bundled toy {k} weights are incomplete: {', '.join(missing)} missing in {folder}. Reinstall "
            f"vlmbrain, or retrain them with `python -m vlmbrain.toyworld.train --model {k} --seed 0 "
            f"--out {WEIGHTS_DIR}`."
        )
    return folder


def training_record(kind: str) -> dict:
    """The ``training.json`` of a bundled toy model (command, seed, losses, held-out metrics)."""
    path = toy_model_path(kind) / "training.json"
    if not path.is_file():
        raise ModelNotAvailableError(f"{path} is missing; retrain with `python -m vlmbrain.toyworld.train`.")
    return json.loads(path.read_text())


def _describe(kind: str, record: dict) -> str:
    held = record.get("heldout", {})
    if kind == "clip":
        metric = f"held-out image→text top-1 {held.get('image_to_text_top1', float('nan')):.3f} among {held.get('group')} (chance {held.get('chance', float('nan')):.3f})"
    else:
        metric = f"held-out ITM accuracy {held.get('itm_accuracy', float('nan')):.3f} (chance 0.5)"
    return (
        f"toy {kind.upper()} trained from scratch on vlmbrain toy-world scenes ({record.get('steps')} steps, "
        f"seed {record.get('seed')}); {metric}. Trained toy weights, not a pretrained release."
    )


def load_toy_meter(device: str = "cpu"):
    """The bundled toy METER model (eval mode) and its tokenizer.

    Returns
    -------
    model : vlmbrain.models.meter.METER
    tokenizer : transformers.PreTrainedTokenizerFast
    """
    from safetensors.torch import load_file

    from vlmbrain.models.meter import METER, METERConfig
    from vlmbrain.toyworld.tokenizer import load_tokenizer

    folder = toy_model_path("meter")
    cfg = METERConfig(**json.loads((folder / "config.json").read_text()))
    model = METER(cfg)
    model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
    return model.to(device).eval(), load_tokenizer(folder)


def load_toy_clip(device: str = "cpu"):
    """The bundled toy CLIP (``transformers.CLIPModel``, eval mode) and its tokenizer."""
    from transformers import CLIPModel

    from vlmbrain.toyworld.tokenizer import load_tokenizer

    folder = toy_model_path("clip")
    return CLIPModel.from_pretrained(str(folder)).to(device).eval(), load_tokenizer(folder)


def load_toy_readout(kind: str, site: str = "head-unit", pooling: str = "mean", device: str = "cpu",
                     dtype: str = "float32", **kw):
    """A per-neuron readout of a bundled toy model.

    Parameters
    ----------
    kind : {"clip", "meter", "toy-clip", "toy-meter"}
    site : {"head-unit", "qk", "mlp", "hidden"}, default="head-unit"
    pooling : {"mean", "cls", "patches"}, default="mean"
    device : str, default="cpu"
    dtype : {"float32", "float16", "bfloat16"}, default="float32"
    **kw
        Passed on to the readout (e.g. ``batch_size``).

    Returns
    -------
    vlmbrain.models.base.Readout
        With ``trained = True``, ``description`` (what it is and its held-out metric) and
        ``training`` (the ``training.json`` record). Its ``name`` is ``"toy-clip"`` / ``"toy-meter"``.
    """
    k = _kind(kind)
    folder = toy_model_path(k)
    record = training_record(k)
    if k == "clip":
        from vlmbrain.models import load_readout

        readout = load_readout(str(folder), site=site, pooling=pooling, device=device, dtype=dtype, **kw)
    else:
        from vlmbrain.models.meter.readout import METERReadout

        model, tokenizer = load_toy_meter()
        readout = METERReadout(model, tokenizer, site=site, pooling=pooling, device=device, dtype=dtype, **kw)
    readout.name = f"toy-{k}"
    readout.trained = True
    readout.training = record
    readout.description = _describe(k, record)
    return readout
