"""Affiliation of atoms' significant maps with networks, tested against a spatial null.

Method: docs/method.md. For atom k the significant positive map S⁺_k and negative map S⁻_k
(:func:`significant_maps`) are treated separately; each is affiliated with the network of
maximal overlap rate OR (:mod:`vlmbrain.networks.overlap`) when that OR is ≥ ``threshold``
and, unless ``null=None``, its OR exceeds a spatial null (p < ``alpha``). The nulls
(``"spin"``, default, ``"moran"``, ``"permutation"``, and ``"auto"`` which picks one of them
for the atlas) are described in :mod:`vlmbrain.networks.nulls`;
the null p-value of a (map, network) pair is ``(1 + #{null OR ≥ observed OR}) / (1 + n_perm)``,
where the null OR divides by the null network's size.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from vlmbrain.errors import ConfigError, DimensionError
from vlmbrain.networks.atlas import Atlas
from vlmbrain.networks.nulls import choose_null, null_labels, null_memberships
from vlmbrain.networks.overlap import _check_masks, overlap_table

logger = logging.getLogger("vlmbrain")

__all__ = ["NULLS", "affiliate", "affiliation_summary", "significant_maps"]

#: Spatial nulls accepted by :func:`affiliate`.
NULLS = ("spin", "moran", "permutation", "none", "auto")


def _bar(total, desc, progress):
    """A tqdm progress bar (with ETA, on stderr) of the spatial null; silent unless ``progress``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="perm", disable=not progress, leave=False)


def _moran_exceedances(masks, atlas, observed_or, n_perm, random_state, progress=False, desc=""):
    """As :func:`_null_overlap_exceedances` for the per-network Moran null (null sizes are the networks')."""
    K, M = observed_or.shape
    exceed = np.zeros((K, M), dtype=np.int64)
    sizes = np.tile(atlas.sizes(), (n_perm, 1))
    obs = np.nan_to_num(observed_or, nan=np.inf) - 1e-12
    S = masks.astype(np.float32)
    with _bar(n_perm * M, f"{desc + ': ' if desc else ''}moran null", progress) as bar:
        for m, members in null_memberships(atlas, "moran", n_perm, random_state):
            n = max(int(sizes[0, m]), 1)
            inter = S @ members.T.astype(np.float32)          # (K, b)
            exceed[:, m] += (inter / n >= obs[:, m:m + 1]).sum(axis=1)
            bar.update(members.shape[0])
    return exceed, sizes


def _null_overlap_exceedances(masks, atlas, observed_or, null, n_perm, random_state, n_jobs=1, progress=False,
                              desc=""):
    """Count, per (map, network), null ORs ≥ the observed OR. Returns (counts (K,M), null sizes (n_perm, M))."""
    if null == "moran":
        return _moran_exceedances(masks, atlas, observed_or, n_perm, random_state, progress, desc)
    K, M = observed_or.shape
    kk, vv = np.nonzero(masks)  # every (map, grayordinate) pair in a map, computed once
    nnz = max(kk.size, 1)
    base = (kk * (M + 1)).astype(np.int32)
    # chunk so that the (chunk, nnz) gather stays under ~8M elements
    chunk = int(max(1, min(256, 8_000_000 // nnz)))
    exceed = np.zeros((K, M), dtype=np.int64)
    sizes = np.zeros((n_perm, M), dtype=np.int64)
    obs = np.nan_to_num(observed_or, nan=np.inf) - 1e-12
    done = 0
    bar = _bar(n_perm, f"{desc + ': ' if desc else ''}{null} null", progress)
    for block in null_labels(atlas, null, n_perm, random_state, chunk=chunk, n_jobs=n_jobs, progress=progress):
        b = block.shape[0]
        col = atlas.network_index(block)  # (b, V), -1 unassigned
        col = np.where(col >= 0, col, M).astype(np.int32)  # unassigned -> spare bin M
        nsz = np.stack([np.bincount(c, minlength=M + 1)[:M] for c in col])  # (b, M)
        flat = col[:, vv]  # (b, nnz) int32, in place below (3x faster than int64 temporaries)
        flat += base[None, :]
        flat += (K * (M + 1) * np.arange(b, dtype=np.int32))[:, None]
        inter = np.bincount(flat.ravel(), minlength=b * K * (M + 1)).reshape(b, K, M + 1)[:, :, :M]
        sizes[done : done + b] = nsz
        with np.errstate(invalid="ignore", divide="ignore"):
            null_or = np.where(nsz[:, None, :] > 0, inter / np.maximum(nsz[:, None, :], 1), 0.0)
        exceed += (null_or >= obs[None]).sum(axis=0)
        done += b
        bar.update(b)
    bar.close()
    return exceed, sizes


def significant_maps(beta, q, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Significant positive and negative maps of every atom.

    Parameters
    ----------
    beta : ndarray of shape (n_atoms, n_grayordinates)
    q : ndarray of shape (n_atoms, n_grayordinates)
        Corrected p-values (NaN = not tested).
    alpha : float, default=0.05

    Returns
    -------
    pos, neg : ndarray of shape (n_atoms, n_grayordinates), bool
        ``q < alpha`` and ``beta > 0`` (resp. ``< 0``).
    """
    beta, q = np.asarray(beta), np.asarray(q)
    if beta.shape != q.shape:
        raise DimensionError(f"beta has shape {beta.shape} but q has shape {q.shape}; they must match (n_atoms, n_grayordinates)")
    with np.errstate(invalid="ignore"):
        sig = np.nan_to_num(q, nan=1.0) < alpha
        return sig & (beta > 0), sig & (beta < 0)


def _check_null(null) -> str:
    if null is None:
        return "none"
    if null not in NULLS:
        raise ConfigError(f"null={null!r} is not allowed; use one of {', '.join(map(repr, NULLS))} or None")
    return null


def affiliate(
    pos,
    neg,
    atlas: Atlas,
    threshold: float = 0.15,
    null: str | None = "spin",
    n_perm: int = 1000,
    random_state: int = 0,
    alpha: float = 0.05,
    n_jobs: int = 1,
    progress: bool = False,
    desc: str = "",
) -> pd.DataFrame:
    """Affiliate each atom's positive and negative maps with a network (docs/method.md).

    Parameters
    ----------
    pos, neg : ndarray of shape (n_atoms, n_grayordinates), bool
        Significant positive / negative maps S⁺_k, S⁻_k (see :func:`significant_maps`).
    atlas : Atlas
    threshold : float, default=0.15
        Minimal overlap rate of the best network.
    null : {"spin", "moran", "permutation", "auto", "none"} or None, default="spin"
        Spatial null of the overlap rate (see :mod:`vlmbrain.networks.nulls`); ``"auto"`` picks
        one for the atlas (:func:`~vlmbrain.networks.nulls.choose_null`); None/"none": threshold only.
    n_perm : int, default=1000
        Rotations / permutations.
    random_state : int, default=0
    alpha : float, default=0.05
        Significance level of the null.
    n_jobs : int, default=1
        Threads of the spin test's kd-tree queries.
    progress : bool, default=False
        Progress bars (tqdm, with ETA, on stderr) over the null's rotations / permutations.
    desc : str, default=""
        What the bars are of (e.g. ``"model/branch"``).

    Returns
    -------
    DataFrame
        Tidy, one row per (atom, sign, network): ``atom, sign ('+'/'-'), network_id, network,
        n_map, n_network, n_overlap, overlap_rate, dice, jaccard, p_null, is_max, affiliated``.
        ``p_null = (1 + #{null OR ≥ observed}) / (1 + n_perm)`` (NaN when ``null`` is none);
        ``is_max`` marks the network of maximal OR of that map; ``affiliated`` is True on that
        row only, when OR ≥ threshold and p_null < alpha. ``df.attrs`` holds the null,
        n_perm, threshold and alpha; the column ``null`` names the null too.
    """
    null = _check_null(null)
    if null == "auto":
        null, note = choose_null(null, atlas)
        logger.info("affiliation null: %s", note)
    pos = _check_masks(pos, atlas, "pos")
    neg = _check_masks(neg, atlas, "neg")
    if pos.shape != neg.shape:
        raise DimensionError(f"pos has shape {pos.shape} but neg has shape {neg.shape}")
    if not 0 <= threshold <= 1:
        raise ConfigError(f"threshold={threshold} must be an overlap rate in [0, 1]")
    if null != "none" and n_perm < 1:
        raise ConfigError(f"n_perm={n_perm} must be ≥ 1 with null={null!r} (or use null='none')")
    K = pos.shape[0]
    M = atlas.n_networks
    masks = np.concatenate([pos, neg], axis=0)  # (2K, V): signs stacked
    table = overlap_table(masks, atlas)
    orate = table["overlap_rate"].to_numpy().reshape(2 * K, M)
    if null == "none":
        p = np.full((2 * K, M), np.nan)
    else:
        exceed, _ = _null_overlap_exceedances(masks, atlas, orate, null, n_perm, random_state, n_jobs, progress, desc)
        p = (1.0 + exceed) / (1.0 + n_perm)
    filled = np.nan_to_num(orate, nan=-np.inf)
    best = np.argmax(filled, axis=1) if M else np.zeros(2 * K, dtype=np.int64)  # an atlas without networks
    is_max = np.zeros((2 * K, M), dtype=bool)
    has_any = masks.any(axis=1) & (M > 0)
    is_max[np.arange(2 * K)[has_any], best[has_any]] = True
    ok = (orate >= threshold) & is_max
    if null != "none":
        ok &= p < alpha
    sign = np.repeat(np.array(["+", "-"], dtype=object), K)
    table["atom"] = np.repeat(np.concatenate([np.arange(K), np.arange(K)]), M)
    table.insert(1, "sign", np.repeat(sign, M))
    table["p_null"] = p.ravel()
    table["is_max"] = is_max.ravel()
    table["affiliated"] = ok.ravel()
    table["null"] = null
    table = table.sort_values(["atom", "sign", "network_id"], kind="stable").reset_index(drop=True)
    table.attrs.update({"null": null, "n_perm": int(n_perm) if null != "none" else 0,
                        "threshold": float(threshold), "alpha": float(alpha)})
    logger.info(
        "affiliation: %d atoms x 2 signs x %d networks, null=%s (n_perm=%d): %d maps affiliated",
        K, M, null, n_perm if null != "none" else 0, int(ok.sum()),
    )
    return table


def affiliation_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (atom, sign) of an :func:`affiliate` table.

    Returns
    -------
    DataFrame
        ``atom, sign, network, network_id, overlap_rate, p_null, n_map`` where ``network`` is
        the affiliated network's name or ``""`` (network_id 0) when the map is not affiliated;
        ``overlap_rate``/``p_null`` are those of the best network. Extra key columns
        (``model``, ``branch``) are carried over.
    """
    keys = [c for c in ("model", "branch") if c in table.columns] + ["atom", "sign"]
    best = table[table["is_max"]].set_index(keys)
    allmaps = table[keys].drop_duplicates().set_index(keys)
    out = allmaps.join(best[["network", "network_id", "overlap_rate", "p_null", "n_map", "affiliated"]])
    out["n_map"] = out["n_map"].fillna(0).astype(int)
    aff = out["affiliated"].fillna(False).astype(bool)
    out["network"] = np.where(aff, out["network"].fillna(""), "")
    out["network_id"] = np.where(aff, out["network_id"].fillna(0), 0).astype(int)
    return out.drop(columns="affiliated").reset_index()
