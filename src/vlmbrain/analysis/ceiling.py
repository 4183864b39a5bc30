"""Prediction against the noise ceiling (docs/method.md §6.1).

Per unit and network: the mean ceiling, the mean cross-validated r and the mean
noise-normalised r (``r / ceiling``) over the grayordinates with a reliable signal (a finite
ceiling, see :mod:`vlmbrain.brain.ceiling`). Registered as the analysis ``noise_ceiling``; it
writes nothing when the data have no ceiling (no repeated clip).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vlmbrain.analysis._common import ALL, ALL_ID, check_2d


def normalised_prediction(r_cv, ceiling, atlas, model: str = "", branch: str = "") -> pd.DataFrame:
    """One row per network and a whole-brain row: ``n_reliable, mean_ceiling, mean_r, mean_r_normalized``.

    Means are over grayordinates where both r and the ceiling are finite; ``mean_r_normalized``
    is the mean of ``r / ceiling`` there (values above 1 are possible for single grayordinates:
    the ceiling is itself an estimate).
    """
    r = check_2d("r_cv", r_cv, (atlas.space_size,)).astype(float)
    c = check_2d("ceiling", ceiling, (atlas.space_size,)).astype(float)
    ok = np.isfinite(r) & np.isfinite(c) & (c > 0)
    groups = [(int(i), n, atlas.labels == i) for i, n in zip(atlas.network_ids, atlas.network_names)]
    groups.append((ALL_ID, ALL, np.ones(atlas.space_size, bool)))
    rows = []
    for nid, name, member in groups:
        m = member & ok
        n = int(m.sum())
        rows.append({"model": model, "branch": branch, "network_id": nid, "network": name, "n_reliable": n,
                     "mean_ceiling": float(c[m].mean()) if n else np.nan,
                     "mean_r": float(r[m].mean()) if n else np.nan,
                     "mean_r_normalized": float((r[m] / c[m]).mean()) if n else np.nan})
    return pd.DataFrame(rows)
