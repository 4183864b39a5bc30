"""Noise ceilings: how well any model could predict each grayordinate, from repeated stimuli.

When the same clip is shown more than once (HCP 7T ends every run with the same test-retest
montage), the response to it is the same signal plus independent noise in every repeat. The
correlation of two repeats estimates the data's reliability ``ρ = var(s) / (var(s) + var(e))``
at each grayordinate, and no prediction of a single presentation can correlate with it better
than ``√ρ`` (the correlation of the signal with signal plus noise). That is the ceiling:

    ceiling = √ρ̂,   ρ̂ = tanh(mean over repeat pairs of arctanh r(repeat_i, repeat_j))

Prediction is then also reported as ``r / ceiling`` (docs/method.md §6.1). The ceiling
is measured on the repeated clip and applied to the whole movie: it assumes the noise level
of the clip is that of the movie. Where ``ρ̂ ≤ 0`` there is no reliable signal to predict and
the ceiling is NaN (normalised r is not defined there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class NoiseCeiling:
    """A per-grayordinate noise ceiling.

    Attributes
    ----------
    ceiling : ndarray (V,)
        √reliability; NaN where the reliability is not positive.
    reliability : ndarray (V,)
        Mean (Fisher-z averaged) correlation between repeats.
    method : str
    n_repeats : int
    n_timepoints : int
        TRs of one repeat.
    clip : str
        The repeated clip.
    """

    ceiling: np.ndarray
    reliability: np.ndarray
    method: str
    n_repeats: int
    n_timepoints: int
    clip: str

    def info(self) -> dict:
        finite = np.isfinite(self.ceiling)
        return {"available": True, "method": self.method, "clip": self.clip, "n_repeats": self.n_repeats,
                "n_timepoints": self.n_timepoints, "n_reliable": int(finite.sum()),
                "median_ceiling": float(np.nanmedian(self.ceiling)) if finite.any() else None}


def repeated_segments(table: pd.DataFrame) -> dict[str, list[np.ndarray]]:
    """Clips shown in two or more runs with the same length: clip → TR indices of each showing.

    ``table`` is a timeline table (columns ``clip``, ``run``, ``tr_index``); rest TRs have an
    empty clip name and are never repeats.
    """
    out = {}
    clips = table[table["clip"].astype(str) != ""]
    for clip, rows in clips.groupby("clip", sort=True):
        showings = [grp["tr_index"].to_numpy(int) for _, grp in rows.groupby("run", sort=False)]
        lengths = {len(s) for s in showings}
        if len(showings) >= 2 and len(lengths) == 1:
            out[str(clip)] = showings
    # HCP 7T names the montage testretest1..4, one per run: the same clip under four names
    trt = {k: v for k, v in _by_prefix(clips, "testretest").items()}
    out.update(trt)
    return out


def _by_prefix(clips: pd.DataFrame, prefix: str) -> dict[str, list[np.ndarray]]:
    rows = clips[clips["clip"].astype(str).str.startswith(prefix)]
    showings = [grp["tr_index"].to_numpy(int) for _, grp in rows.groupby("clip", sort=True)]
    if len(showings) < 2:
        return {}
    n = min(len(s) for s in showings)      # the montage differs by a TR or two at its end
    if n < 10:
        return {}
    return {prefix: [s[:n] for s in showings]}


def _column_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))


def repeat_ceiling(data, showings: list[np.ndarray], clip: str = "", chunk_size: int = 8192) -> NoiseCeiling:
    """The ceiling from repeated showings of one clip.

    Parameters
    ----------
    data : array (T, V)
        The fMRI (a memory map is fine: read in column chunks).
    showings : list of int arrays, each (n,)
        TR indices of each showing (same length).
    """
    if len(showings) < 2:
        raise ValueError("a noise ceiling needs at least two showings of the same clip")
    n = len(showings[0])
    V = data.shape[1]
    rel = np.empty(V, np.float64)
    pairs = [(i, j) for i in range(len(showings)) for j in range(i + 1, len(showings))]
    for a in range(0, V, chunk_size):
        b = min(V, a + chunk_size)
        segs = [np.asarray(data[s, a:b], dtype=np.float64) for s in showings]
        z = np.zeros(b - a)
        for i, j in pairs:
            z += np.arctanh(np.clip(_column_corr(segs[i], segs[j]), -0.999999, 0.999999))
        rel[a:b] = np.tanh(z / len(pairs))
    with np.errstate(invalid="ignore"):
        ceiling = np.where(rel > 0, np.sqrt(np.clip(rel, 0, 1)), np.nan)
    return NoiseCeiling(ceiling.astype(np.float32), rel.astype(np.float32), "repeated clip (Fisher-z mean of "
                        "pairwise repeat correlations; ceiling = sqrt(reliability))", len(showings), n, clip)


def noise_ceiling(data, table: pd.DataFrame) -> NoiseCeiling | None:
    """The ceiling of a run's data from its timeline's repeated clip, or None when nothing repeats."""
    segments = repeated_segments(table)
    if not segments:
        return None
    clip = max(segments, key=lambda c: len(segments[c]) * len(segments[c][0]))
    return repeat_ceiling(data, segments[clip], clip=clip)


__all__ = ["NoiseCeiling", "noise_ceiling", "repeat_ceiling", "repeated_segments"]
