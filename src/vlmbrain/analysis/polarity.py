"""Polarity (docs/method.md §6.3).

For atom k: BN⁺_k / BN⁻_k are the grayordinates with a significant positive / negative β;
AN⁺_k / AN⁻_k the ANs with a positive / negative code A_kj. The layer profile of each AN side
is ``P±_k(l) = Σ |A_kj|`` over the ANs of layer l with that sign, divided by the number of ANs
in layer l. The two profiles are **mirrored** when they are anti-correlated across layers:
Pearson r over layers (scipy.stats.pearsonr, two-sided p), mirrored = r < 0 and p < alpha.

Second view (:func:`layer_bn_correlation`): the mean Pearson correlation of each layer's ANs
with the mean time series of BN⁺_k and of BN⁻_k.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from vlmbrain.analysis._common import check_2d, check_neurons, layer_positions, signed_layer_profiles
from vlmbrain.errors import DimensionError


def layer_profiles(codes, neurons: pd.DataFrame, model: str = "", branch: str = "") -> pd.DataFrame:
    """Signed layer profiles P⁺_k(l) and P⁻_k(l).

    Parameters
    ----------
    codes : ndarray of shape (n_atoms, n_neurons)
    neurons : DataFrame
        Neuron table (column ``layer`` used), one row per code column.

    Returns
    -------
    DataFrame
        ``model, branch, atom, side ('AN+'/'AN-'), layer, value, n_layer``: one row per atom, side
        and layer; ``value`` is P±_k(l), ``n_layer`` the layer size. (Long format with
        ``side``/``value``, as the polarity figure reads it.)
    """
    codes = check_2d("codes", codes, (None, None)).astype(float)
    check_neurons(neurons, codes.shape[1])
    layers, P_pos, P_neg, sizes = signed_layer_profiles(codes, neurons)
    K, L = P_pos.shape
    frames = []
    for side, P in (("AN+", P_pos), ("AN-", P_neg)):
        frames.append(pd.DataFrame({
            "atom": np.repeat(np.arange(K), L), "side": side, "layer": np.tile(layers, K),
            "value": P.ravel(), "n_layer": np.tile(sizes, K),
        }))
    out = pd.concat(frames, ignore_index=True).sort_values(["atom", "side", "layer"], kind="stable")
    out.insert(0, "branch", branch)
    out.insert(0, "model", model)
    return out.reset_index(drop=True)


def _pearson(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan, np.nan  # undefined (constant profile or < 3 layers); scipy would warn
    res = stats.pearsonr(x, y)
    return float(res.statistic), float(res.pvalue)


def polarity(beta, q_beta, codes, neurons: pd.DataFrame, alpha: float = 0.05, model: str = "", branch: str = "") -> pd.DataFrame:
    """Per-atom polarity: BN± and AN± sizes and the mirror test of the layer profiles.

    Parameters
    ----------
    beta, q_beta : ndarray of shape (n_atoms, n_grayordinates)
    codes : ndarray of shape (n_atoms, n_neurons)
    neurons : DataFrame
    alpha : float, default=0.05
        Level of the β maps and of the mirror test.
    model, branch : str

    Returns
    -------
    DataFrame
        ``model, branch, atom, n_bn_pos, n_bn_neg, n_an_pos, n_an_neg, n_layers, r_mirror,
        p_mirror, mirrored``. ``r_mirror`` is NaN when a profile is constant (e.g. an atom with
        no negative codes) or there are fewer than 3 layers; ``mirrored`` is then False.
        ``df.attrs["fraction_mirrored"]``: fraction of atoms with a defined r that are mirrored
        (see :func:`mirrored_fraction`).
    """
    from vlmbrain.networks import significant_maps

    beta = check_2d("beta", beta, (None, None))
    K = beta.shape[0]
    q_beta = check_2d("q_beta", q_beta, beta.shape)
    codes = check_2d("codes", codes, (K, None)).astype(float)
    check_neurons(neurons, codes.shape[1])
    pos, neg = significant_maps(beta, q_beta, alpha)
    layers, P_pos, P_neg, _ = signed_layer_profiles(codes, neurons)
    rp = np.array([_pearson(P_pos[k], P_neg[k]) for k in range(K)]).reshape(K, 2)
    table = pd.DataFrame({
        "model": model, "branch": branch, "atom": np.arange(K),
        "n_bn_pos": pos.sum(axis=1), "n_bn_neg": neg.sum(axis=1),
        "n_an_pos": (codes > 0).sum(axis=1), "n_an_neg": (codes < 0).sum(axis=1),
        "n_layers": layers.size, "r_mirror": rp[:, 0], "p_mirror": rp[:, 1],
    })
    table["mirrored"] = (table["r_mirror"] < 0) & (table["p_mirror"] < alpha)
    table.attrs["fraction_mirrored"] = mirrored_fraction(table)
    return table


def mirrored_fraction(table: pd.DataFrame) -> float:
    """Fraction of atoms (with a defined ``r_mirror``) whose profiles are mirrored."""
    defined = table["r_mirror"].notna()
    return float(table.loc[defined, "mirrored"].mean()) if defined.any() else float("nan")


def bn_mean_timeseries(Y, masks, chunk_size: int = 8192) -> np.ndarray:
    """Mean time series of each map's grayordinates.

    Parameters
    ----------
    Y : ndarray of shape (n_timepoints, n_grayordinates)
        Brain data (may be a memory map; read in column chunks).
    masks : ndarray of shape (n_maps, n_grayordinates), bool
    chunk_size : int, default=8192
        Grayordinates read at a time (memory knob: ``n_timepoints × chunk_size`` floats).

    Returns
    -------
    ndarray of shape (n_timepoints, n_maps), float64
        NaN columns for empty maps. NaN samples of ``Y`` are left out of the mean.
    """
    masks = check_2d("masks", masks, (None, None)).astype(bool)
    if Y.ndim != 2 or Y.shape[1] != masks.shape[1]:
        raise DimensionError(
            f"brain data have shape {Y.shape} but the maps have {masks.shape[1]} grayordinates; "
            "expected (n_timepoints, n_grayordinates)"
        )
    T = Y.shape[0]
    sums = np.zeros((T, masks.shape[0]))
    counts = np.zeros((T, masks.shape[0]))
    W = masks.T.astype(np.float64)
    for start in range(0, Y.shape[1], chunk_size):
        block = np.asarray(Y[:, start:start + chunk_size], dtype=np.float64)
        finite = np.isfinite(block)
        sums += np.where(finite, block, 0.0) @ W[start:start + chunk_size]
        counts += finite.astype(np.float64) @ W[start:start + chunk_size]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _zscore_columns(X: np.ndarray) -> np.ndarray:
    X = X - X.mean(axis=0)
    sd = np.sqrt((X**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 0, X / np.where(sd > 0, sd, 1), np.nan)


def layer_bn_correlation(
    activations,
    neurons: pd.DataFrame,
    codes,
    bn_pos,
    bn_neg,
    model: str = "",
    branch: str = "",
) -> pd.DataFrame:
    """Second polarity view: mean correlation of each layer's ANs with the mean BN⁺ / BN⁻ series.

    Parameters
    ----------
    activations : ndarray of shape (n_timepoints, n_neurons)
        Processed AN time courses (HRF-convolved, z-scored: the dictionary's input).
    neurons : DataFrame
    codes : ndarray of shape (n_atoms, n_neurons)
    bn_pos, bn_neg : ndarray of shape (n_timepoints, n_atoms)
        Mean time series of BN⁺_k and BN⁻_k (:func:`bn_mean_timeseries`; NaN columns for empty maps).
    model, branch : str

    Returns
    -------
    DataFrame
        ``model, branch, atom, side, an_sign, layer, value, n_neurons``: ``side`` is 'BN+' or
        'BN-' (which mean series), ``an_sign`` '+' (AN⁺_k of that layer), '-' (AN⁻_k) or 'all'
        (every AN of that layer), ``value`` the mean Pearson r of those ANs with that series
        (NaN where the layer has no such ANs or the BN map is empty).
    """
    X = check_2d("activations", activations, (None, None)).astype(np.float64)
    T, N = X.shape
    codes = check_2d("codes", codes, (None, N)).astype(float)
    K = codes.shape[0]
    check_neurons(neurons, N)
    bn_pos = check_2d("bn_pos", bn_pos, (T, K)).astype(np.float64)
    bn_neg = check_2d("bn_neg", bn_neg, (T, K)).astype(np.float64)
    layers, lpos, _ = layer_positions(neurons)
    Xz = _zscore_columns(X)
    rows = []
    for side, B in (("BN+", bn_pos), ("BN-", bn_neg)):
        R = Xz.T @ _zscore_columns(B)  # (N, K) Pearson r
        for k in range(K):
            groups = {"+": codes[k] > 0, "-": codes[k] < 0, "all": np.ones(N, bool)}
            for an_sign, sel in groups.items():
                for li, layer in enumerate(layers):
                    m = sel & (lpos == li)
                    vals = R[m, k]
                    vals = vals[np.isfinite(vals)]
                    rows.append({"atom": k, "side": side, "an_sign": an_sign, "layer": int(layer),
                                 "value": float(vals.mean()) if vals.size else np.nan, "n_neurons": int(m.sum())})
    out = pd.DataFrame(rows).sort_values(["atom", "side", "an_sign", "layer"], kind="stable").reset_index(drop=True)
    out.insert(0, "branch", branch)
    out.insert(0, "model", model)
    return out
