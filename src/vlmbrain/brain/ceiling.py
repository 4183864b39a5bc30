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

With several subjects the fitted data are the group mean, and its reliability comes from the
subjects themselves over the whole movie. Every subject's z-scored series is modelled as the
shared signal plus its own noise, ``x_s = s + e_s``, so that one subject's reliability is
``ρ₁ = var(s)`` and the mean of ``k`` subjects has the Spearman–Brown reliability
``ρ_k = k ρ₁ / (1 + (k − 1) ρ₁)``. Two estimators of ``ρ₁``:

* split-half: the correlation of the mean of the even-numbered subjects with the mean of the
  odd-numbered ones is ``√(ρ_a ρ_b)`` for halves of ``a`` and ``b`` subjects;
* leave-one-subject-out: the correlation of each subject with the mean of the others is
  ``√(ρ₁ ρ_{n−1})``; the subjects' correlations are Fisher-z averaged.

Either is solved for ``ρ₁`` and the ceiling of the group mean of ``n`` subjects is ``√ρ_n``.
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
        How it was estimated, in words.
    n_repeats : int
        Showings of the clip (``source == "repeats"``) or subjects (``"split-half"``, ``"loso"``).
    n_timepoints : int
        TRs of one repeat, or of the whole series for the subject estimators.
    clip : str
        The repeated clip ("" for the subject estimators).
    source : str
        ``"repeats"``, ``"split-half"`` or ``"loso"``.
    """

    ceiling: np.ndarray
    reliability: np.ndarray
    method: str
    n_repeats: int
    n_timepoints: int
    clip: str

    source: str = "repeats"

    def info(self) -> dict:
        finite = np.isfinite(self.ceiling)
        out = {"available": True, "source": self.source, "method": self.method, "n_timepoints": self.n_timepoints,
               "n_reliable": int(finite.sum()),
               "median_ceiling": float(np.nanmedian(self.ceiling)) if finite.any() else None}
        if self.source == "repeats":
            out.update(clip=self.clip, n_repeats=self.n_repeats)
        else:
            out.update(n_subjects=self.n_repeats)
        return out


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


def column_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching columns of two (T, V) blocks (NaN for a constant column)."""
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
            z += np.arctanh(np.clip(column_corr(segs[i], segs[j]), -0.999999, 0.999999))
        rel[a:b] = np.tanh(z / len(pairs))
    with np.errstate(invalid="ignore"):
        ceiling = np.where(rel > 0, np.sqrt(np.clip(rel, 0, 1)), np.nan)
    return NoiseCeiling(ceiling.astype(np.float32), rel.astype(np.float32), "repeated clip (Fisher-z mean of "
                        "pairwise repeat correlations; ceiling = sqrt(reliability))", len(showings), n, clip)


def spearman_brown(rho1, k):
    """Reliability of the mean of ``k`` subjects whose single-subject reliability is ``rho1``."""
    rho1 = np.asarray(rho1, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    return k * rho1 / (1.0 + (k - 1.0) * rho1)


def _solve_increasing(target, fun, n_iter: int = 60):
    """``ρ`` in (0, 1) with ``fun(ρ) = target`` for an increasing ``fun`` (vectorised bisection).

    ``target ≤ fun(0)`` gives NaN (no positive reliability); ``target ≥ fun(1)`` gives 1.
    """
    target = np.asarray(target, dtype=np.float64)
    lo = np.zeros_like(target)
    hi = np.ones_like(target)
    for _ in range(n_iter):
        mid = 0.5 * (lo + hi)
        below = fun(mid) < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    out = 0.5 * (lo + hi)
    with np.errstate(invalid="ignore"):
        return np.where(~np.isfinite(target) | (target <= 0), np.nan, out)


def reliability_from_halves(r, n_a, n_b):
    """Single-subject reliability ``ρ₁`` from the correlation ``r`` of two half-group means.

    ``r = √(ρ_a ρ_b)`` with ``ρ_k`` the Spearman–Brown reliability of ``k`` subjects; ``n_a``,
    ``n_b`` may be arrays (subjects valid at each grayordinate). NaN where ``r ≤ 0``.
    """
    r = np.clip(np.asarray(r, dtype=np.float64), -1.0, 1.0)
    return _solve_increasing(r * r * np.sign(r), lambda p: spearman_brown(p, n_a) * spearman_brown(p, n_b))


def reliability_from_loso(r_mean, n):
    """Single-subject reliability ``ρ₁`` from the mean correlation of a subject with the other ``n − 1``.

    ``r = √(ρ₁ ρ_{n−1})``; NaN where ``r ≤ 0``.
    """
    r = np.clip(np.asarray(r_mean, dtype=np.float64), -1.0, 1.0)
    return _solve_increasing(r * r * np.sign(r), lambda p: p * spearman_brown(p, np.asarray(n) - 1.0))


SUBJECT_METHODS = {
    "split-half": "split-half across subjects (correlation of the even- and odd-numbered subjects' means, "
                  "Spearman-Brown to the whole group; ceiling = sqrt(reliability of the group mean))",
    "loso": "leave-one-subject-out (Fisher-z mean correlation of each subject with the mean of the others, "
            "Spearman-Brown to the whole group; ceiling = sqrt(reliability of the group mean))",
}


def subject_method(choice: str, n_subjects: int) -> str | None:
    """The subject estimator ``fmri.ceiling`` asks for, given the number of subjects averaged (None: none)."""
    if n_subjects < 2:
        return None
    if choice in SUBJECT_METHODS:
        return choice
    return "split-half" if choice == "auto" else None


def group_ceiling(rho1, n, source: str, n_subjects: int, n_timepoints: int) -> NoiseCeiling:
    """The ceiling of the mean of ``n`` subjects (``n`` per grayordinate or one number) from ``ρ₁``.

    ``source`` is ``"split-half"`` or ``"loso"`` (the estimator of ``ρ₁``).
    """
    rel = spearman_brown(rho1, n)
    with np.errstate(invalid="ignore"):
        ceiling = np.where(rel > 0, np.sqrt(np.clip(rel, 0, 1)), np.nan)
    return NoiseCeiling(ceiling.astype(np.float32), rel.astype(np.float32), SUBJECT_METHODS[source],
                        int(n_subjects), int(n_timepoints), "", source)


def noise_ceiling(data, table: pd.DataFrame) -> NoiseCeiling | None:
    """The ceiling of a run's data from its timeline's repeated clip, or None when nothing repeats."""
    segments = repeated_segments(table)
    if not segments:
        return None
    clip = max(segments, key=lambda c: len(segments[c]) * len(segments[c][0]))
    return repeat_ceiling(data, segments[clip], clip=clip)


__all__ = ["NoiseCeiling", "group_ceiling", "noise_ceiling", "reliability_from_halves", "reliability_from_loso",
           "repeat_ceiling", "repeated_segments", "spearman_brown", "subject_method", "SUBJECT_METHODS"]
