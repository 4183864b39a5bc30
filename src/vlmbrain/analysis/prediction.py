"""Prediction across networks (docs/method.md §6.1).

Per model/branch, the leave-one-run-out cross-validated r of every grayordinate is summarised
per network: mean and median r and the fraction of grayordinates whose prediction is
significant (``q_r < alpha`` and ``r > 0``: a significantly *negative* held-out correlation is
not a prediction).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vlmbrain.analysis._common import ALL, ALL_ID, check_2d
from vlmbrain.errors import DimensionError


def significant_prediction(r_cv, q_r, alpha: float = 0.05) -> np.ndarray:
    """Grayordinates with a significant positive cross-validated r, shape (n_grayordinates,) bool."""
    r_cv, q_r = np.asarray(r_cv, dtype=float), np.asarray(q_r, dtype=float)
    if r_cv.shape != q_r.shape:
        raise DimensionError(f"r_cv has shape {r_cv.shape} but q_r has shape {q_r.shape}; both must be (n_grayordinates,)")
    with np.errstate(invalid="ignore"):
        return (np.nan_to_num(q_r, nan=1.0) < alpha) & (np.nan_to_num(r_cv, nan=0.0) > 0)


def prediction_by_network(r_cv, q_r, atlas, alpha: float = 0.05, model: str = "", branch: str = "") -> pd.DataFrame:
    """Per-network summary of the cross-validated prediction.

    Parameters
    ----------
    r_cv : ndarray of shape (n_grayordinates,)
        Cross-validated Pearson r (NaN where not fitted).
    q_r : ndarray of shape (n_grayordinates,)
        Corrected p-values of r (NaN where not tested).
    atlas : vlmbrain.networks.Atlas
    alpha : float, default=0.05
    model, branch : str
        Copied into the table.

    Returns
    -------
    DataFrame
        One row per network plus a whole-brain row (``network="all"``, ``network_id=-1``):
        ``model, branch, network_id, network, n_grayordinates, n_valid, mean_r, median_r,
        n_significant, fraction_significant``. ``n_valid`` counts grayordinates with a finite r;
        means and fractions are over those.
    """
    r_cv = check_2d("r_cv", r_cv, (atlas.space_size,)).astype(float)
    q_r = check_2d("q_r", q_r, (atlas.space_size,)).astype(float)
    sig = significant_prediction(r_cv, q_r, alpha)
    valid = np.isfinite(r_cv)
    rows = []
    groups = [(int(i), n, atlas.labels == i) for i, n in zip(atlas.network_ids, atlas.network_names)]
    groups.append((ALL_ID, ALL, np.ones(atlas.space_size, bool)))
    for nid, name, member in groups:
        m = member & valid
        n_valid = int(m.sum())
        rows.append(
            {
                "model": model,
                "branch": branch,
                "network_id": nid,
                "network": name,
                "n_grayordinates": int(member.sum()),
                "n_valid": n_valid,
                "mean_r": float(r_cv[m].mean()) if n_valid else np.nan,
                "median_r": float(np.median(r_cv[m])) if n_valid else np.nan,
                "n_significant": int((sig & m).sum()),
                "fraction_significant": float((sig & m).sum() / n_valid) if n_valid else np.nan,
            }
        )
    return pd.DataFrame(rows)
