"""Time-course processing: HRF convolution per run, per-run z-scoring, constant-column detection.

METHOD.md §2: each AN series is convolved per run with the canonical double-gamma HRF
(nilearn's SPM or Glover kernel), sampled on the TR grid, z-scored per run; near-constant
ANs are dropped. Runs never bleed into each other.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.signal import fftconvolve

from vlmbrain.errors import ConfigError, DimensionError

logger = logging.getLogger("vlmbrain")

HRF_MODELS = ("spm", "glover", "none", "lag")


def hrf_kernel(tr: float, model: str = "spm", oversampling: int = 16, time_length: float = 32.0) -> np.ndarray:
    """Canonical HRF sampled at ``tr / oversampling`` (nilearn's kernels, normalised to unit sum).

    Parameters
    ----------
    tr : float
        Repetition time (s).
    model : {"spm", "glover"}, default="spm"
    oversampling : int, default=16
    time_length : float, default=32.0
        Kernel length (s).

    Returns
    -------
    ndarray of shape (n_samples,)
    """
    from nilearn.glm.first_level.hemodynamic_models import glover_hrf, spm_hrf

    if model == "spm":
        kernel = spm_hrf(tr, oversampling=oversampling, time_length=time_length)
    elif model == "glover":
        kernel = glover_hrf(tr, oversampling=oversampling, time_length=time_length)
    else:
        raise ConfigError(f"hrf model {model!r} has no kernel; allowed: 'spm', 'glover'")
    kernel = np.asarray(kernel, dtype=np.float64)
    return kernel / kernel.sum()


def _run_slices(runs: np.ndarray) -> list[slice]:
    runs = np.asarray(runs)
    if runs.ndim != 1:
        raise DimensionError(f"runs must be 1-D (n_timepoints,), got shape {runs.shape}")
    if runs.size == 0:
        return []
    change = np.flatnonzero(np.diff(runs)) + 1
    starts = np.r_[0, change]
    stops = np.r_[change, runs.size]
    labels = runs[starts]
    if len(np.unique(labels)) != len(labels):
        raise DimensionError("runs must form contiguous blocks (each run's TRs together)")
    return [slice(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def convolve_hrf(
    X: np.ndarray,
    runs: np.ndarray,
    tr: float,
    model: str = "spm",
    oversampling: int = 16,
    lag: int = 0,
) -> np.ndarray:
    """Convolve every column with the HRF, run by run.

    Each TR's value is held for the whole TR (a boxcar at ``tr / oversampling`` resolution),
    convolved with the kernel, and read back at the start of every TR, as nilearn's
    ``compute_regressor`` does for block designs. Nothing crosses a run boundary.

    Parameters
    ----------
    X : ndarray of shape (n_timepoints, n_columns)
    runs : ndarray of shape (n_timepoints,)
    tr : float
    model : {"spm", "glover", "none", "lag"}, default="spm"
        ``"none"``: no convolution (data already shifted for the hemodynamic lag);
        ``"lag"``: a pure shift by ``lag`` TRs within each run (zeros shifted in).
    oversampling : int, default=16
    lag : int, default=0
        Shift in TRs for ``model="lag"``.

    Returns
    -------
    ndarray of shape (n_timepoints, n_columns), float32
    """
    if model not in HRF_MODELS:
        raise ConfigError(f"signal.hrf = {model!r} is not allowed; choose one of {list(HRF_MODELS)}")
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    runs = np.asarray(runs)
    if X.shape[0] != runs.shape[0]:
        raise DimensionError(f"X has {X.shape[0]} timepoints but runs has {runs.shape[0]}")
    out = np.empty(X.shape, dtype=np.float32)
    if model == "none":
        out[:] = X
        return out
    if model == "lag":
        if lag < 0:
            raise ConfigError(f"signal.lag = {lag} must be >= 0 TRs")
        for sl in _run_slices(runs):
            block = X[sl]
            shifted = np.zeros_like(block, dtype=np.float32)
            if lag < block.shape[0]:
                shifted[lag:] = block[: block.shape[0] - lag]
            out[sl] = shifted
        return out
    kernel = hrf_kernel(tr, model=model, oversampling=oversampling)
    for sl in _run_slices(runs):
        block = np.asarray(X[sl], dtype=np.float64)
        n = block.shape[0]
        hi = np.repeat(block, oversampling, axis=0)
        conv = fftconvolve(hi, kernel[:, None], mode="full", axes=0)[: n * oversampling]
        out[sl] = conv[::oversampling]
    return out


def zscore_runs(X: np.ndarray, runs: np.ndarray, eps: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """Z-score every column within each run (population SD).

    Parameters
    ----------
    X : ndarray of shape (n_timepoints, n_columns)
    runs : ndarray of shape (n_timepoints,)
    eps : float, default=1e-8
        A column whose SD is below ``eps`` times its scale in some run is *constant* there.

    Returns
    -------
    Z : ndarray of shape (n_timepoints, n_columns), float32
        Constant columns (in any run) and columns with NaN are set to 0.
    valid : ndarray of shape (n_columns,), bool
        False for columns that are constant in a run or contain NaN/inf.
    """
    X = np.asarray(X)
    runs = np.asarray(runs)
    if X.shape[0] != runs.shape[0]:
        raise DimensionError(f"X has {X.shape[0]} timepoints but runs has {runs.shape[0]}")
    Z = np.empty(X.shape, dtype=np.float32)
    valid = np.all(np.isfinite(X), axis=0)
    for sl in _run_slices(runs):
        block = np.asarray(X[sl], dtype=np.float64)
        mean = block.mean(axis=0)
        sd = block.std(axis=0)
        scale = np.maximum(np.abs(mean), 1.0)
        const = ~(sd > eps * scale)
        valid &= ~const
        Z[sl] = (block - mean) / np.where(const, 1.0, sd)
    Z[:, ~valid] = 0.0
    return Z, valid


def process_timecourses(
    X: np.ndarray,
    runs: np.ndarray,
    tr: float,
    hrf: str = "spm",
    lag: int = 0,
    oversampling: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """HRF-convolve per run, z-score per run, and drop near-constant columns (METHOD.md §2).

    Parameters
    ----------
    X : ndarray of shape (n_timepoints, n_neurons)
    runs : ndarray of shape (n_timepoints,)
    tr : float
    hrf : {"spm", "glover", "none", "lag"}, default="spm"
    lag : int, default=0

    Returns
    -------
    Z : ndarray of shape (n_timepoints, n_kept), float32
    kept : ndarray of shape (n_neurons,), bool
    """
    # constancy is judged on the raw series: a constant AN gains an onset transient from the
    # convolution but carries no stimulus information
    _, raw_ok = zscore_runs(X, runs)
    convolved = convolve_hrf(X, runs, tr, model=hrf, lag=lag, oversampling=oversampling)
    Z, kept = zscore_runs(convolved, runs)
    kept &= raw_ok
    n_drop = int((~kept).sum())
    if n_drop:
        logger.info("dropped %d of %d near-constant ANs", n_drop, kept.size)
    return np.ascontiguousarray(Z[:, kept]), kept
