"""Helpers shared by the analyses: input checks, layer bookkeeping, per-network summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vlmbrain.errors import ConfigError, DimensionError

#: Neuron-table columns (mirrors ``vlmbrain.models.base.NEURON_COLUMNS``; not imported, the math
#: core must not depend on the model layer).
NEURON_COLUMNS = ("model", "branch", "layer", "module", "head", "unit", "group")

#: ``network`` value and ``network_id`` of whole-brain summary rows.
ALL = "all"
ALL_ID = -1


def check_2d(name: str, arr, shape: tuple) -> np.ndarray:
    """``arr`` as an ndarray of ``shape`` (None = any), else a DimensionError naming both shapes."""
    arr = np.asarray(arr)
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise DimensionError(f"{name} has shape {arr.shape}; expected {want}")
    return arr


def check_neurons(neurons: pd.DataFrame, n_neurons: int, name: str = "neurons") -> pd.DataFrame:
    """Validate a neuron table against the number of code columns."""
    if not isinstance(neurons, pd.DataFrame):
        raise ConfigError(f"{name} must be a pandas DataFrame (the neuron table), got {type(neurons).__name__}")
    if "layer" not in neurons.columns:
        raise ConfigError(
            f"{name} has no 'layer' column; expected the neuron-table columns {', '.join(NEURON_COLUMNS)}"
        )
    if len(neurons) != n_neurons:
        raise DimensionError(
            f"{name} has {len(neurons)} rows but the codes have {n_neurons} columns (one row per AN expected)"
        )
    return neurons


def layer_positions(neurons: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layers of a neuron table.

    Returns
    -------
    layers : ndarray of shape (n_layers,)
        Sorted distinct layer numbers.
    pos : ndarray of shape (n_neurons,)
        Position of every AN's layer in ``layers``.
    sizes : ndarray of shape (n_layers,)
        ANs per layer.
    """
    layer = neurons["layer"].to_numpy().astype(np.int64)
    layers, pos = np.unique(layer, return_inverse=True)
    sizes = np.bincount(pos, minlength=layers.size)
    return layers, pos, sizes


def signed_layer_profiles(codes: np.ndarray, neurons: pd.DataFrame):
    """P⁺_k(l), P⁻_k(l): Σ|A_kj| over the ANs of layer l with that sign, divided by the layer size.

    Returns
    -------
    layers : ndarray (n_layers,)
    pos_profile, neg_profile : ndarray (n_atoms, n_layers)
    sizes : ndarray (n_layers,)
    """
    layers, pos, sizes = layer_positions(neurons)
    onehot = np.zeros((codes.shape[1], layers.size))
    onehot[np.arange(codes.shape[1]), pos] = 1.0
    P_pos = (np.clip(codes, 0, None) @ onehot) / sizes
    P_neg = (np.clip(-codes, 0, None) @ onehot) / sizes
    return layers, P_pos, P_neg, sizes


def network_columns(atlas):
    """(ids, names) of an atlas' networks followed by the whole-brain row."""
    return list(atlas.network_ids) + [ALL_ID], list(atlas.network_names) + [ALL]
