"""Loading official METER checkpoints safely.

METER releases PyTorch-Lightning ``.ckpt`` files; besides ``state_dict`` they may hold
Lightning objects (``callbacks`` keyed by the ``ModelCheckpoint`` class, hyper-parameter
containers), which ``torch.load(weights_only=True)`` refuses. We then fall back to a
*restricted* unpickler: only torch's tensor-rebuild functions, storage types, ``torch.Size``,
dtypes and ``collections.OrderedDict`` resolve to real objects; every other global becomes an
inert placeholder class, so no code from the file is ever executed.
"""

from __future__ import annotations

import collections
import logging
import os
import pickle
import types
from os import PathLike

import math

import torch
import torch.nn.functional as F

from vlmbrain.errors import DimensionError, InputFileError, ModelNotAvailableError

__all__ = ["MeterState", "load_meter_state_dict", "training_record", "prepare_state_dict", "restricted_pickle", "InertGlobal"]

logger = logging.getLogger("vlmbrain")

# Keys every METER state_dict has (used to recognise one).
_SIGNATURE_KEYS = (
    "cross_modal_text_transform.weight",
    "cross_modal_image_transform.weight",
    "token_type_embeddings.weight",
    "vit_model.visual.positional_embedding",
    "vit_model.visual.conv1.weight",
    "text_transformer.embeddings.word_embeddings.weight",
    "cross_modal_image_layers.0.attention.self.query.weight",
    "cross_modal_text_layers.0.attention.self.query.weight",
    "cross_modal_text_pooler.dense.weight",
)
POS_KEY = "vit_model.visual.positional_embedding"


class InertGlobal:
    """Placeholder for a pickled global that is not allowed: accepts and stores everything, does nothing."""

    _qualname = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.args = args
        obj.kwargs = kwargs
        obj.state = None
        obj.items = {}
        obj.list = []
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __setitem__(self, key, value):
        self.items[key] = value

    def append(self, value):
        self.list.append(value)

    def extend(self, values):
        self.list.extend(values)

    def __repr__(self):
        return f"<inert {self._qualname}>"


_ALLOWED_TORCH_UTILS = {
    "_rebuild_tensor",
    "_rebuild_tensor_v2",
    "_rebuild_tensor_v3",
    "_rebuild_parameter",
    "_rebuild_parameter_with_state",
}


def _allowed_global(module: str, name: str):
    """The real object for an allowed global, or None."""
    if module == "collections" and name == "OrderedDict":
        return collections.OrderedDict
    if module == "torch._utils" and name in _ALLOWED_TORCH_UTILS:
        return getattr(torch._utils, name)
    if module == "torch":
        obj = getattr(torch, name, None)
        if isinstance(obj, torch.dtype) or obj is torch.Size:
            return obj
        if isinstance(obj, type) and name.endswith("Storage"):
            return obj
    return None


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that maps every global outside a small tensor-only allow-list to an inert class."""

    _inert_cache: dict = {}

    def find_class(self, module, name):
        obj = _allowed_global(module, name)
        if obj is not None:
            return obj
        key = (module, name)
        if key not in self._inert_cache:
            self._inert_cache[key] = type(
                str(name), (InertGlobal,), {"_qualname": f"{module}.{name}", "__module__": "vlmbrain.inert"}
            )
        logger.debug("restricted unpickler: %s.%s replaced by an inert placeholder", module, name)
        return self._inert_cache[key]


def _restricted_load(file, **kwargs):
    return RestrictedUnpickler(file, **kwargs).load()


#: A ``pickle``-like module for ``torch.load(..., pickle_module=restricted_pickle)``.
restricted_pickle = types.ModuleType("vlmbrain_restricted_pickle")
restricted_pickle.Unpickler = RestrictedUnpickler
restricted_pickle.load = _restricted_load
restricted_pickle.__version__ = "1"


def _torch_load(path: str):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        logger.info(
            "%s holds non-tensor objects (%s); loading it with the restricted unpickler", path, str(err)[:120]
        )
    return torch.load(path, map_location="cpu", weights_only=False, pickle_module=restricted_pickle)


class MeterState(dict):
    """The METER weights (name → tensor) and what the checkpoint says about their training:
    ``trained`` (True, or None when the file does not say) and ``trained_evidence``."""

    trained: bool | None = None
    trained_evidence: str = ""


def training_record(ckpt, path) -> tuple[bool | None, str]:
    """Whether a METER checkpoint's weights were trained, from its PyTorch-Lightning record.

    A Lightning checkpoint (the official releases) stores the optimiser steps it was saved
    after (``global_step``): > 0 says trained. A bare state_dict, or a dict without that
    record, says nothing (None): random weights saved as a checkpoint look the same.
    """
    name = os.path.basename(os.fspath(path))
    step = ckpt.get("global_step") if isinstance(ckpt, dict) else None
    if isinstance(step, int) and not isinstance(step, bool) and step > 0:
        return True, f"METER checkpoint {name}: saved by PyTorch Lightning after {step} training steps"
    return None, (f"METER checkpoint {name} has no training record (no global_step > 0): nothing says whether "
                  "its weights were trained (set model.options.trained)")


def load_meter_state_dict(path: str | PathLike) -> MeterState:
    """Read the METER weights from a checkpoint file without executing code from it.

    Tries ``torch.load(weights_only=True)``; if the file holds other objects (Lightning), falls
    back to :class:`RestrictedUnpickler`. Returns ``ckpt["state_dict"]`` (or the file itself
    when it is a plain state_dict), with a leading ``model.`` stripped from every key, as a
    :class:`MeterState` that also carries the checkpoint's :func:`training_record`.

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    dict of str to Tensor

    Raises
    ------
    ModelNotAvailableError
        The file does not exist.
    InputFileError
        The file is not a torch checkpoint, or not a METER state_dict.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelNotAvailableError(
            f"METER checkpoint {path!r} does not exist. Download a release file (e.g. "
            "https://github.com/zdou0830/METER/releases/download/checkpoint/meter_clip16_288_roberta_pretrain.ckpt) "
            "and pass its local path."
        )
    try:
        ckpt = _torch_load(path)
    except Exception as err:  # corrupt / not a torch file
        raise InputFileError(
            f"Cannot read METER checkpoint {path!r} as a torch file ({type(err).__name__}: {str(err)[:200]}). "
            "Expected a PyTorch-Lightning .ckpt or a torch.save'd state_dict."
        ) from err
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise InputFileError(
            f"METER checkpoint {path!r} holds a {type(ckpt).__name__}, not a dict with a 'state_dict' entry."
        )
    tensors = MeterState()
    tensors.trained, tensors.trained_evidence = training_record(ckpt, path)
    for k, v in state.items():
        if isinstance(v, torch.Tensor):
            tensors[k[len("model."):] if isinstance(k, str) and k.startswith("model.") else k] = v
    missing = [k for k in _SIGNATURE_KEYS if k not in tensors]
    if missing:
        have = ", ".join(list(map(str, tensors))[:3]) or "no tensors"
        raise InputFileError(
            f"{path!r} is not a METER state_dict: missing keys {missing[:4]} (it has {len(tensors)} tensors, "
            f"e.g. {have}). Pass an official METER CLIP16-RoBERTa checkpoint."
        )
    return tensors


def resize_pos_embed(table: torch.Tensor, new_image_size: int, patch_size: int = 16) -> torch.Tensor:
    """Resize a CLIP position table to another image size (METER ``adapt_position_encoding``).

    Row 0 (CLS) is kept; the ``g0 x g0`` grid rows are interpolated bicubically
    (``align_corners=False``, no antialias) to ``g1 x g1`` with ``g1 = new_image_size // patch_size``.

    Parameters
    ----------
    table : Tensor of shape (g0**2 + 1, width)
    new_image_size : int
    patch_size : int, default=16

    Returns
    -------
    Tensor of shape (g1**2 + 1, width)
    """
    rows, width = table.shape
    g0 = int(math.sqrt(rows - 1))
    if g0 * g0 + 1 != rows:
        raise DimensionError(
            f"Position table has {rows} rows, which is not (grid**2 + 1) for an integer grid; "
            "expected a CLIP/METER visual.positional_embedding."
        )
    g1 = int(new_image_size) // int(patch_size)
    if g1 == g0:
        return table
    cls_row, grid = table[:1], table[1:]
    grid = grid.reshape(1, g0, g0, width).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(g1, g1), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(g1 * g1, width)
    return torch.cat([cls_row, grid], dim=0)


def prepare_state_dict(state: dict[str, torch.Tensor], model: torch.nn.Module, source: str = "state_dict"):
    """Adapt a METER state_dict to ``model``: resize the position table, check keys and shapes.

    Parameters
    ----------
    state : dict of str to Tensor
    model : METER
    source : str
        Name used in error messages.

    Returns
    -------
    dict of str to Tensor, ready for ``model.load_state_dict(..., strict=True)``.
    """
    own = model.state_dict()
    state = dict(state)
    if POS_KEY in state and POS_KEY in own and state[POS_KEY].shape != own[POS_KEY].shape:
        cfg = model.config
        before = tuple(state[POS_KEY].shape)
        state[POS_KEY] = resize_pos_embed(state[POS_KEY], cfg.image_size, cfg.patch_size)
        logger.info("METER: resized %s from %s to %s (image_size=%d)", POS_KEY, before,
                    tuple(state[POS_KEY].shape), cfg.image_size)
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise InputFileError(
            f"{source}: the METER state_dict does not fit the '{model.config.name}' model: "
            f"{len(missing)} missing keys (e.g. {missing[:4]}), {len(unexpected)} unexpected keys "
            f"(e.g. {unexpected[:4]}). Check the variant (pretrain/vqa/nlvr2/snli/flickr/coco)."
        )
    bad = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items() if state[k].shape != v.shape]
    if bad:
        raise DimensionError(
            f"{source}: {len(bad)} METER weights have the wrong shape, e.g. "
            + "; ".join(f"{k}: file {a}, model {b}" for k, a, b in bad[:3])
            + ". Check the variant and the config overrides."
        )
    return state
