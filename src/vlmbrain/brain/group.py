"""Group-average fMRI time series, streamed: one subject (and one column chunk) at a time.

The group series is the mean over subjects of every subject's per-run z-scored series
(docs/method.md §1.8). Only the ``(n_timepoints, n_grayordinates)`` float32 running mean, a
per-grayordinate subject count and one ``(n_timepoints_run, chunk_size)`` block are held in
memory, so memory does not grow with the number of subjects and stays below twice one
subject's data (``.npy`` runs are memory-mapped, CIFTI columns read through nibabel's proxy).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np

from vlmbrain.brain.loaders import check_run, open_run
from vlmbrain.brain.space import BrainData
from vlmbrain.errors import ConfigError, DimensionError

logger = logging.getLogger("vlmbrain")

__all__ = ["group_average"]


def _zscore_block(x: np.ndarray):
    """Column z-score of one run block: :func:`vlmbrain.signal.zscore_runs` on a single run."""
    from vlmbrain.signal import zscore_runs

    return zscore_runs(x, np.zeros(x.shape[0], dtype=int))


def group_average(
    subjects,
    tr: float,
    expected_trs: Sequence[int] | None = None,
    *,
    run_names: Sequence[str] | None = None,
    mask=None,
    n_grayordinates: int | None = None,
    chunk_size: int = 8192,
    min_subject_fraction: float = 1.0,
    rezscore: bool = True,
    space=None,
    progress: bool = False,
    ceiling: str | None = None,
) -> BrainData:
    """Mean of the subjects' per-run z-scored series, computed by streaming.

    Parameters
    ----------
    subjects : mapping subject id -> sequence of run paths, or sequence of such sequences
        Every subject's runs in stimulus order (``.dtseries.nii``, ``.npy``, NIfTI + ``mask``).
    tr : float
        Configured TR (s); checked against every file header.
    expected_trs : sequence of int, optional
        TRs per run in the stimulus; checked for every subject and run.
    run_names : sequence of str, optional
    mask : optional
        3-D mask for NIfTI runs.
    n_grayordinates : int, optional
        Expected grayordinate count.
    chunk_size : int, default=8192
        Grayordinates read and z-scored at once. Memory knob: the working set beyond the output
        is about ``16 * n_timepoints_run * chunk_size`` bytes.
    min_subject_fraction : float, default=1.0
        A grayordinate is valid when it is valid (finite, non-constant in every run) in at least
        this fraction of subjects; its mean is over those subjects only.
    rezscore : bool, default=True
        Z-score the group mean again within each run (the mean of z-scores has SD < 1).
    space : BrainSpace, optional
        Space of ``.npy`` runs.
    progress : bool, default=False
        Show a progress bar (tqdm, with ETA) over subjects.
    ceiling : {"split-half", "loso"}, optional
        Also estimate the noise ceiling of the group mean from the subjects
        (:mod:`vlmbrain.brain.ceiling`). ``"split-half"`` keeps a second running mean (the
        even-numbered subjects') while streaming, so memory grows by one output array;
        ``"loso"`` reads every subject a second time, one column chunk at a time. With fewer
        than two subjects no ceiling is estimated.

    Returns
    -------
    BrainData
        ``data`` (n_timepoints, n_grayordinates) float32; ``meta["n_subjects"]``,
        ``meta["subjects"]``, ``meta["n_valid_subjects_min"]``; ``ceiling`` (a
        :class:`~vlmbrain.brain.ceiling.NoiseCeiling`) when asked for and at least two subjects.
    """
    if isinstance(subjects, Mapping):
        ids = [str(k) for k in subjects]
        specs = list(subjects.values())
    else:
        specs = list(subjects)
        ids = [f"sub-{i + 1:02d}" for i in range(len(specs))]
    if not specs:
        raise ConfigError("group_average needs at least one subject")
    specs = [[s] if isinstance(s, (str, os.PathLike)) else list(s) for s in specs]
    if not 0 < min_subject_fraction <= 1:
        raise ConfigError(f"min_subject_fraction must be in (0, 1], got {min_subject_fraction}")
    if ceiling not in (None, "split-half", "loso"):
        raise ConfigError(f"ceiling must be 'split-half', 'loso' or None, got {ceiling!r}")
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")

    mean = count = None
    half = half_count = None        # split-half ceiling: running mean of the even-numbered subjects
    ref_space, ref_lengths = None, None
    pairs = list(zip(ids, specs, strict=True))
    if progress:
        from tqdm.auto import tqdm

        pairs = tqdm(pairs, desc="group average", unit="subject")
    for i_sub, (sid, paths) in enumerate(pairs):
        in_half = half is not None and i_sub % 2 == 0
        runs = [open_run(p, mask=mask, n_grayordinates=n_grayordinates) for p in paths]
        if expected_trs is not None and len(expected_trs) != len(runs):
            raise DimensionError(f"the stimulus has {len(expected_trs)} runs but subject {sid} has {len(runs)} fMRI runs")
        names = list(run_names) if run_names is not None else [f"run-{i + 1}" for i in range(len(runs))]
        for i, r in enumerate(runs):
            check_run(r.source, r.tr, r.shape[0], tr, None if expected_trs is None else expected_trs[i], i,
                      f"{names[i] if i < len(names) else i} of subject {sid}")
        lengths = [r.shape[0] for r in runs]
        sp = runs[0].space
        if sp.kind == "array" and space is not None:
            if space.n_grayordinates != runs[0].shape[1]:
                raise DimensionError(f"{runs[0].source}: has {runs[0].shape[1]} columns but the given space has "
                                     f"{space.n_grayordinates}")
            sp = space
        for r in runs[1:]:
            if r.shape[1] != runs[0].shape[1] or (r.space.kind != "array" and r.space != runs[0].space):
                raise DimensionError(f"{r.source}: its brain space differs from {runs[0].source}; all runs must share one")
        if ref_space is None:
            ref_space, ref_lengths = sp, lengths
            n_v = sp.n_grayordinates
            mean = np.zeros((sum(lengths), n_v), np.float32)
            count = np.zeros(n_v, np.int64)
            if ceiling == "split-half" and len(specs) >= 2:
                half = np.zeros_like(mean)
                half_count = np.zeros(n_v, np.int64)
        else:
            if lengths != ref_lengths:
                raise DimensionError(f"subject {sid} has runs of {lengths} TRs but {ids[0]} has {ref_lengths}")
            if sp != ref_space and not (sp.kind == "array" and sp.n_grayordinates == ref_space.n_grayordinates):
                raise DimensionError(
                    f"subject {sid}: brain space ({sp.n_grayordinates} grayordinates) differs from subject {ids[0]}'s "
                    f"({ref_space.n_grayordinates}); resample all subjects to one space"
                )
        starts = np.r_[0, np.cumsum(lengths)]
        for a in range(0, n_v, chunk_size):
            b = min(a + chunk_size, n_v)
            zs, ok = [], np.ones(b - a, bool)
            for r in runs:
                z, ok_r = _zscore_block(r.columns(a, b))
                zs.append(z)
                ok &= ok_r
            count[a:b] += ok
            n = np.maximum(count[a:b], 1).astype(np.float32)
            for k, z in enumerate(zs):
                block = mean[starts[k]:starts[k + 1], a:b]
                block += np.where(ok, (z - block) / n, 0.0).astype(np.float32)
            if in_half:
                half_count[a:b] += ok
                n_h = np.maximum(half_count[a:b], 1).astype(np.float32)
                for k, z in enumerate(zs):
                    block = half[starts[k]:starts[k + 1], a:b]
                    block += np.where(ok, (z - block) / n_h, 0.0).astype(np.float32)
            del zs
        del runs
        logger.info("group average: added subject %s (%d so far)", sid, ids.index(sid) + 1)

    n_sub = len(specs)
    valid = count >= int(np.ceil(min_subject_fraction * n_sub))
    noise_ceiling = None
    if ceiling == "split-half" and half is not None:
        noise_ceiling = _split_half_ceiling(mean, count, half, half_count, ref_lengths, chunk_size)
        del half
    elif ceiling == "loso" and n_sub >= 2:
        noise_ceiling = _loso_ceiling(mean, count, pairs, ref_lengths, chunk_size,
                                      dict(mask=mask, n_grayordinates=n_grayordinates))
    if noise_ceiling is not None:
        noise_ceiling.ceiling[~valid] = np.nan
    mean[:, ~valid] = 0.0
    runs_idx = np.repeat(np.arange(len(ref_lengths)), ref_lengths)
    if rezscore:
        starts = np.r_[0, np.cumsum(ref_lengths)]
        for k in range(len(ref_lengths)):
            for a in range(0, n_v, chunk_size):
                b = min(a + chunk_size, n_v)
                z, ok = _zscore_block(mean[starts[k]:starts[k + 1], a:b])
                mean[starts[k]:starts[k + 1], a:b] = z
                valid[a:b] &= ok | ~valid[a:b]
    n_bad = int((~valid).sum())
    if n_bad:
        logger.warning("group average: %d of %d grayordinates are invalid (NaN/constant in too many subjects)", n_bad, n_v)
    names = list(run_names) if run_names is not None else [f"run-{i + 1}" for i in range(len(ref_lengths))]
    meta = {"n_subjects": n_sub, "subjects": ids, "n_valid_subjects_min": int(count.min()) if count.size else 0,
            "rezscored": bool(rezscore), "n_invalid": n_bad, "hrf_shifted": False}
    return BrainData(mean, runs_idx, names, ref_space, float(tr), valid, meta, ceiling=noise_ceiling)


def _zscore_runs_block(x: np.ndarray, lengths) -> np.ndarray:
    """Per-run column z-score of a (T, chunk) block of concatenated runs (:func:`vlmbrain.signal.zscore_runs`)."""
    from vlmbrain.signal import zscore_runs

    return zscore_runs(np.asarray(x, dtype=np.float64), np.repeat(np.arange(len(lengths)), lengths))[0].astype(np.float64)


def _split_half_ceiling(mean, count, half, half_count, lengths, chunk_size):
    """Ceiling from the correlation of the even- and odd-numbered subjects' means (before re-z-scoring)."""
    from vlmbrain.brain.ceiling import column_corr, group_ceiling, reliability_from_halves

    n_v = mean.shape[1]
    other_count = count - half_count
    r = np.full(n_v, np.nan)
    for a in range(0, n_v, chunk_size):
        b = min(a + chunk_size, n_v)
        n_a, n_b = half_count[a:b], other_count[a:b]
        ok = (n_a > 0) & (n_b > 0)
        odd = (count[a:b] * mean[:, a:b].astype(np.float64) - n_a * half[:, a:b].astype(np.float64)) / np.maximum(n_b, 1)
        r[a:b] = np.where(ok, column_corr(_zscore_runs_block(half[:, a:b], lengths), _zscore_runs_block(odd, lengths)),
                          np.nan)
    rho1 = reliability_from_halves(r, half_count, other_count)
    nc = group_ceiling(rho1, count, "split-half", int(count.max()), mean.shape[0])
    logger.info("noise ceiling (split-half, %d + %d subjects): median %.2f", int(half_count.max()),
                int(other_count.max()), float(np.nanmedian(nc.ceiling)) if np.isfinite(nc.ceiling).any() else np.nan)
    return nc


def _loso_ceiling(mean, count, pairs, lengths, chunk_size, open_kw):
    """Ceiling from each subject's correlation with the mean of the others (a second read of every subject)."""
    from vlmbrain.brain.ceiling import column_corr, group_ceiling, reliability_from_loso

    n_v = mean.shape[1]
    z_sum = np.zeros(n_v)
    z_n = np.zeros(n_v, np.int64)
    starts = np.r_[0, np.cumsum(lengths)]
    for _sid, paths in pairs:
        runs = [open_run(p, **open_kw) for p in paths]
        for a in range(0, n_v, chunk_size):
            b = min(a + chunk_size, n_v)
            zs, ok = [], count[a:b] >= 2
            for r in runs:
                z, ok_r = _zscore_block(r.columns(a, b))
                zs.append(z)
                ok &= ok_r
            z = np.concatenate(zs, axis=0).astype(np.float64)
            n = count[a:b].astype(np.float64)
            others = (n * mean[:, a:b].astype(np.float64) - z) / np.maximum(n - 1, 1)
            for k in range(len(lengths)):        # the others' mean, centred per run like z
                seg = others[starts[k]:starts[k + 1]]
                seg -= seg.mean(axis=0)
            r = column_corr(z, others)
            good = ok & np.isfinite(r)
            z_sum[a:b] += np.where(good, np.arctanh(np.clip(r, -0.999999, 0.999999)), 0.0)
            z_n[a:b] += good
        del runs
    with np.errstate(invalid="ignore", divide="ignore"):
        r_mean = np.where(z_n > 0, np.tanh(z_sum / np.maximum(z_n, 1)), np.nan)
    rho1 = reliability_from_loso(r_mean, count)
    nc = group_ceiling(rho1, count, "loso", int(count.max()), mean.shape[0])
    logger.info("noise ceiling (leave-one-subject-out, %d subjects): median %.2f", int(count.max()),
                float(np.nanmedian(nc.ceiling)) if np.isfinite(nc.ceiling).any() else np.nan)
    return nc
