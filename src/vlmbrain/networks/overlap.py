"""Overlap of boolean brain maps with networks.

Method: docs/method.md. Overlap of a boolean map ``S`` with a network ``N``:

- overlap rate ``OR(S, N) = |S ∩ N| / |N|``
- Dice ``2 |S ∩ N| / (|S| + |N|)``
- Jaccard ``|S ∩ N| / |S ∪ N|``

The scalar functions take one network mask; :func:`overlap_table` computes all three for every
(map, network) pair of an :class:`~vlmbrain.networks.atlas.Atlas` at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vlmbrain.errors import ConfigError, DimensionError
from vlmbrain.networks.atlas import Atlas

__all__ = ["dice", "intersections", "jaccard", "overlap_rate", "overlap_table", "pairwise_jaccard"]


def _as_bool(S, name="S") -> np.ndarray:
    S = np.asarray(S)
    if S.dtype != bool:
        raise ConfigError(f"{name} must be a boolean map, got dtype {S.dtype}; threshold it first (e.g. q < 0.05)")
    return S


def _check_last(S, N):
    if S.shape[-1] != N.shape[-1]:
        raise DimensionError(f"map has {S.shape[-1]} grayordinates but the network has {N.shape[-1]}")


def overlap_rate(S, N) -> np.ndarray | float:
    """``|S ∩ N| / |N|``.

    Parameters
    ----------
    S : ndarray of shape (..., n_grayordinates), bool
    N : ndarray of shape (n_grayordinates,), bool

    Returns
    -------
    float or ndarray of shape (...); NaN where ``N`` is empty.
    """
    S, N = _as_bool(S), _as_bool(N, "N")
    _check_last(S, N)
    inter = np.count_nonzero(S & N, axis=-1)
    n = np.count_nonzero(N)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / n if n else np.full(np.shape(inter), np.nan)[()]


def dice(S, N) -> np.ndarray | float:
    """``2 |S ∩ N| / (|S| + |N|)``; NaN where both are empty. Shapes as :func:`overlap_rate`."""
    S, N = _as_bool(S), _as_bool(N, "N")
    _check_last(S, N)
    inter = np.count_nonzero(S & N, axis=-1)
    den = np.count_nonzero(S, axis=-1) + np.count_nonzero(N, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2.0 * inter / np.maximum(den, 1), np.nan)[()]


def jaccard(S, N) -> np.ndarray | float:
    """``|S ∩ N| / |S ∪ N|``; NaN where both are empty. Shapes as :func:`overlap_rate`."""
    S, N = _as_bool(S), _as_bool(N, "N")
    _check_last(S, N)
    inter = np.count_nonzero(S & N, axis=-1)
    union = np.count_nonzero(S | N, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)[()]


def pairwise_jaccard(masks) -> np.ndarray:
    """Jaccard of every pair of rows of ``masks`` (n_maps, n_grayordinates) bool → (n_maps, n_maps).

    NaN where both maps are empty.
    """
    M = _as_bool(masks, "masks").astype(np.float32)
    inter = M @ M.T
    n = M.sum(axis=1)
    union = n[:, None] + n[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def intersections(masks: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    """``|S_k ∩ N_m|`` for every map k (rows of ``masks``) and network m (columns of ``onehot``).

    Parameters
    ----------
    masks : ndarray of shape (n_maps, n_grayordinates), bool
    onehot : ndarray of shape (n_grayordinates, n_networks), bool
        Network membership, e.g. :meth:`Atlas.onehot`.

    Returns
    -------
    ndarray of shape (n_maps, n_networks), int64
    """
    # float32 matmul is exact for counts < 2**24
    return np.rint(masks.astype(np.float32) @ onehot.astype(np.float32)).astype(np.int64)


def _check_masks(masks, atlas: Atlas, name: str = "masks") -> np.ndarray:
    masks = _as_bool(masks, name)
    if masks.ndim == 1:
        masks = masks[None, :]
    if masks.ndim != 2 or masks.shape[1] != atlas.space_size:
        raise DimensionError(
            f"{name} has shape {masks.shape} but atlas {atlas.name!r} has {atlas.space_size} grayordinates; "
            "expected (n_atoms, n_grayordinates)"
        )
    return masks


def overlap_table(masks, atlas: Atlas) -> pd.DataFrame:
    """Overlap of every map with every network.

    Parameters
    ----------
    masks : ndarray of shape (n_atoms, n_grayordinates), bool
    atlas : Atlas

    Returns
    -------
    DataFrame
        One row per (atom, network): ``atom, network_id, network, n_map, n_network, n_overlap,
        overlap_rate, dice, jaccard``.
    """
    masks = _check_masks(masks, atlas)
    onehot = atlas.onehot()
    inter = intersections(masks, onehot)  # (K, M)
    n_map = masks.sum(axis=1)[:, None]
    n_net = onehot.sum(axis=0)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        orate = np.where(n_net > 0, inter / np.maximum(n_net, 1), np.nan)
        dsc = np.where(n_map + n_net > 0, 2.0 * inter / np.maximum(n_map + n_net, 1), np.nan)
        union = n_map + n_net - inter
        jac = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    K, M = inter.shape
    return pd.DataFrame(
        {
            "atom": np.repeat(np.arange(K), M),
            "network_id": np.tile(atlas.network_ids, K),
            "network": np.tile(np.array(atlas.network_names, dtype=object), K),
            "n_map": np.repeat(n_map[:, 0], M),
            "n_network": np.tile(n_net[0], K),
            "n_overlap": inter.ravel(),
            "overlap_rate": orate.ravel(),
            "dice": dsc.ravel(),
            "jaccard": jac.ravel(),
        }
    )
