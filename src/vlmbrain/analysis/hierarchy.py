"""Layer hierarchy (docs/method.md §6.4): each atom's centroid layer depth vs. its affiliated network.

``P_k(l) = Σ_{j ∈ l} |A_kj| / n_l`` (both signs; n_l = ANs in layer l); centroid layer
``c_k = Σ_l l · P_k(l) / Σ_l P_k(l)``; normalised depth ``(c_k − l_min) / (l_max − l_min)``
in [0, 1] over the branch's layers (0 when the branch has a single layer, NaN for an atom with
no codes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vlmbrain.analysis._common import check_2d, check_neurons, signed_layer_profiles


def centroid_depth(codes, neurons: pd.DataFrame) -> pd.DataFrame:
    """Centroid layer and normalised depth of every atom.

    Parameters
    ----------
    codes : ndarray of shape (n_atoms, n_neurons)
    neurons : DataFrame (column ``layer``)

    Returns
    -------
    DataFrame
        ``atom, centroid_layer, depth``.
    """
    codes = check_2d("codes", codes, (None, None)).astype(float)
    check_neurons(neurons, codes.shape[1])
    layers, P_pos, P_neg, _ = signed_layer_profiles(codes, neurons)
    P = P_pos + P_neg
    total = P.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        centroid = np.where(total > 0, (P @ layers.astype(float)) / np.where(total > 0, total, 1), np.nan)
    span = float(layers.max() - layers.min()) if layers.size else 0.0
    depth = (centroid - layers.min()) / span if span > 0 else np.where(np.isfinite(centroid), 0.0, np.nan)
    return pd.DataFrame({"atom": np.arange(codes.shape[0]), "centroid_layer": centroid, "depth": depth})


def hierarchy(codes, neurons: pd.DataFrame, affiliation: pd.DataFrame, model: str = "", branch: str = "") -> pd.DataFrame:
    """Centroid depth of each atom next to the networks its maps are affiliated with.

    Parameters
    ----------
    codes : ndarray of shape (n_atoms, n_neurons)
    neurons : DataFrame
    affiliation : DataFrame
        :func:`vlmbrain.networks.affiliate` table of this branch.
    model, branch : str

    Returns
    -------
    DataFrame
        One row per (atom, sign): ``model, branch, atom, sign, network_id, network,
        centroid_layer, depth`` (``network=""``, ``network_id=0`` when that map is not affiliated).
    """
    from vlmbrain.networks import affiliation_summary

    depth = centroid_depth(codes, neurons)
    summ = affiliation_summary(affiliation)[["atom", "sign", "network_id", "network"]]
    out = summ.merge(depth, on="atom", how="left")
    out.insert(0, "branch", branch)
    out.insert(0, "model", model)
    return out


def depth_by_network(table: pd.DataFrame) -> pd.DataFrame:
    """Mean / sd / count of the depth of affiliated maps per network (from :func:`hierarchy`)."""
    keys = [c for c in ("model", "branch") if c in table.columns] + ["network_id", "network"]
    aff = table[table["network"] != ""]
    return aff.groupby(keys, sort=True)["depth"].agg(mean_depth="mean", sd_depth="std", n="count").reset_index()
