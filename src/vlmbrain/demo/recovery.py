"""Score what the framework recovered against what the phantom planted.

For every planted network and every (model, branch): among the atoms affiliated with that
network, take the one whose time course follows the planted driver most closely
(|Pearson r|). Its *recovered sign* is the sign of its map (``+`` if affiliated through its
positive-β map, ``-`` through its negative map) times the sign of that correlation — the
network's coupling with the planted attribute, independent of the arbitrary sign of an atom.
The network is *recovered* when such an atom exists, follows the driver (``|r| >= min_r``),
and the recovered sign equals the planted one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Leading columns of ``recovery.tsv`` (one row per planted network), then the details.
RECOVERY_COLUMNS = (
    "network",
    "planted_sign",
    "recovered_sign",
    "recovered",
    "model",
    "branch",
    "attribute",
    "atom",
    "atom_driver_r",
    "overlap_rate",
)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / den) if den > 0 else 0.0


def score_recovery(
    truth: pd.DataFrame,
    drivers: pd.DataFrame,
    atoms: dict[tuple[str, str], np.ndarray],
    affiliation: pd.DataFrame,
    min_r: float = 0.2,
) -> pd.DataFrame:
    """One row per (planted network, model, branch).

    Parameters
    ----------
    truth : pandas.DataFrame
        ``network, attribute, planted_sign`` (from :class:`~vlmbrain.demo.phantom.Phantom`).
    drivers : pandas.DataFrame of shape (n_timepoints, n_planted)
        Planted driver per network (columns = network names), on the TRs the atoms cover.
    atoms : dict of (model, branch) to ndarray of shape (n_timepoints, n_atoms)
    affiliation : pandas.DataFrame
        Columns ``model, branch, atom, sign ('+'/'-' or +1/-1), network, overlap_rate, affiliated``.
    min_r : float, default=0.2

    Returns
    -------
    pandas.DataFrame with columns :data:`RECOVERY_COLUMNS`
    """
    rows = []
    aff = affiliation[affiliation["affiliated"].astype(bool)] if len(affiliation) else affiliation
    for (model, branch), D in atoms.items():
        sub = aff[(aff["model"] == model) & (aff["branch"] == branch)] if len(aff) else aff
        for _, t in truth.iterrows():
            net = t["network"]
            driver = drivers[net].to_numpy(float)
            cand = sub[sub["network"] == net] if len(sub) else sub
            best = None
            for _, c in cand.iterrows():
                k = int(c["atom"])
                r = _corr(D[:, k], driver)
                s_map = 1 if str(c["sign"]) in ("+", "1", "pos", "positive") else -1
                if best is None or abs(r) > abs(best[1]):
                    best = (k, r, s_map, float(c.get("overlap_rate", np.nan)))
            if best is None:
                rec_sign, rec, atom, r, ov = 0, False, -1, np.nan, np.nan
            else:
                atom, r, s_map, ov = best
                rec_sign = int(s_map * np.sign(r)) if r != 0 else 0
                rec = bool(abs(r) >= min_r and rec_sign == int(t["planted_sign"]))
            rows.append(
                {
                    "network": net,
                    "planted_sign": int(t["planted_sign"]),
                    "recovered_sign": rec_sign,
                    "recovered": rec,
                    "model": model,
                    "branch": branch,
                    "attribute": t["attribute"],
                    "atom": atom,
                    "atom_driver_r": r,
                    "overlap_rate": ov,
                }
            )
    return pd.DataFrame(rows, columns=list(RECOVERY_COLUMNS))


def summarize_recovery(recovery: pd.DataFrame) -> pd.DataFrame:
    """Per planted network: recovered by any branch of any model, with the best branch's sign.

    This is ``demo/recovery.tsv`` (columns ``network, planted_sign, recovered_sign, recovered,
    attribute, by``); the per-branch detail of :func:`score_recovery` is
    ``demo/recovery_by_branch.tsv``.
    """
    out = []
    for net, grp in recovery.groupby("network", sort=False):
        hit = grp[grp["recovered"]]
        pick = hit.iloc[0] if len(hit) else grp.iloc[grp["atom_driver_r"].abs().fillna(-1).to_numpy().argmax()]
        out.append(
            {
                "network": net,
                "planted_sign": int(grp["planted_sign"].iloc[0]),
                "recovered_sign": int(pick["recovered_sign"]),
                "recovered": bool(len(hit) > 0),
                "attribute": grp["attribute"].iloc[0],
                "by": ", ".join(f"{m}/{b}" for m, b in zip(hit["model"], hit["branch"])) or "-",
            }
        )
    return pd.DataFrame(out)
