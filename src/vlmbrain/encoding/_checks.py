"""Input validation shared by the encoder and the shift null."""

from __future__ import annotations

import importlib

import numpy as np
from sklearn.utils.validation import check_array, validate_data

from vlmbrain.errors import ConfigError, DimensionError, MissingDependencyError

__all__ = ["check_runs"]


def check_runs(runs, n_timepoints):
    """Validate ``runs`` and return ``(labels (T,) int, bounds list[(start, stop)])``.

    ``runs`` is an int array (n_timepoints,) with contiguous blocks (the run index of
    every TR, all runs concatenated). ``None`` means one run.
    """
    if runs is None:
        return np.zeros(n_timepoints, dtype=np.int64), [(0, n_timepoints)]
    runs = np.asarray(runs)
    if runs.ndim != 1 or runs.shape[0] != n_timepoints:
        raise DimensionError(
            f"runs has shape {runs.shape} but X/Y have {n_timepoints} timepoints; pass one "
            f"run index per TR, shape ({n_timepoints},).")
    change = np.flatnonzero(runs[1:] != runs[:-1]) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [n_timepoints]])
    labels_seen = runs[starts]
    if len(np.unique(labels_seen)) != len(labels_seen):
        raise DimensionError(
            "runs must label contiguous blocks of TRs (all runs concatenated in order); "
            f"run labels {sorted(set(labels_seen.tolist()))} reappear after other runs. "
            "Sort the TRs by run first.")
    lab = np.repeat(np.arange(len(starts)), stops - starts)
    return lab, list(zip(starts.tolist(), stops.tolist()))


def _check_xy(X, Y, dtype, estimator=None):
    """``X`` as float64 (T, K), ``Y`` as ``dtype`` (T, V) and whether ``Y`` was 1-D."""
    if Y is None:
        raise DimensionError("requires y to be passed, but the target y is None: fit(X, Y, runs).")
    if estimator is not None:
        X = validate_data(estimator, X, reset=True, dtype=np.float64, ensure_min_samples=2)
    else:
        X = check_array(X, dtype=np.float64, ensure_min_samples=2, input_name="X")
    Y = check_array(Y, ensure_2d=False, dtype=[np.float32, np.float64], ensure_all_finite=False,
                    ensure_min_samples=2, input_name="y")
    y_1d = Y.ndim == 1
    if y_1d:
        Y = Y[:, None]
    if Y.ndim != 2:
        raise DimensionError(f"Y must be (n_timepoints, n_grayordinates); got shape {Y.shape}.")
    if X.shape[0] != Y.shape[0]:
        raise DimensionError(
            f"X has {X.shape[0]} timepoints but Y has {Y.shape[0]}; X (n_timepoints, n_atoms) "
            "and Y (n_timepoints, n_grayordinates) must share the time axis.")
    if Y.dtype != dtype:
        Y = Y.astype(dtype)
    return X, Y, y_1d


def _nonfinite_error(bad_columns):
    idx = np.asarray(bad_columns)
    return DimensionError(
        f"Input y contains NaN or inf values in {idx.size} column(s) (first: "
        f"{idx[:5].tolist()}); pass only valid grayordinates, e.g. Y[:, valid] with "
        "BrainData.valid, and write NaN for the others.")


def _check_y_finite(Yc, start):
    """Raise on NaN/inf in a column chunk of ``Y`` starting at column ``start``."""
    if not np.all(np.isfinite(Yc)):
        bad = np.flatnonzero(~np.all(np.isfinite(Yc), axis=0)) + start
        raise DimensionError(
            f"Input y contains NaN or inf values in {bad.size} column(s) of this chunk (first: "
            f"{bad[:5].tolist()}); pass only valid grayordinates, e.g. Y[:, valid] with "
            "BrainData.valid, and write NaN for the others.")


def _torch_module():
    """``vlmbrain.backends.torch_encoding``, imported only when a torch backend is asked for."""
    try:
        return importlib.import_module("vlmbrain.backends.torch_encoding")
    except ImportError as err:  # pragma: no cover - torch is a core dependency
        raise MissingDependencyError("backend='torch' needs PyTorch: pip install torch") from err


def _resolve_backend(backend, device):
    """Moment engine of the encoder: ``None`` (numpy) or a ``TorchStats`` on ``device``."""
    if backend == "numpy":
        return None
    if backend == "torch":
        return _torch_module().TorchStats(device=device)
    raise ConfigError(f"backend={backend!r} is not supported; use 'numpy' or 'torch'.")
