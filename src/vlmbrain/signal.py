"""Time-course processing: HRF convolution per run, per-run z-scoring, constant-column detection.

docs/method.md §2.6: each AN series is convolved per run with the canonical double-gamma HRF
(nilearn's SPM or Glover kernel), sampled on the TR grid, z-scored per run; near-constant
ANs are dropped. Runs never bleed into each other.

The convolution is computed on the TR grid. Holding each TR's value for the whole TR (a boxcar
at ``tr / oversampling`` resolution), convolving with the oversampled kernel ``k`` and reading
the result at the start of every TR is a linear filter on the TR samples themselves::

    y[t] = Σ_m h[m] x[t − m],   h[0] = k[0],   h[m] = Σ_{s = o(m−1)+1}^{o·m} k[s]   (o = oversampling)

so :func:`tr_kernel` folds the oversampled kernel once into ``h`` (33 taps for a 32 s kernel at
TR = 1 s) and no 16×-oversampled copy of the data is ever made. Columns are processed in chunks
(float64 inside a chunk, float32 out), so the memory in use beyond the output is a few chunk
buffers whatever the number of ANs; :func:`process_timecourses` can write its output straight
into a ``.npy`` file.
"""

from __future__ import annotations

import logging
import mmap
import os
from pathlib import Path

import numpy as np

from vlmbrain.errors import ConfigError, DimensionError

logger = logging.getLogger("vlmbrain")

HRF_MODELS = ("spm", "glover", "none", "lag")

#: Bytes of one float64 chunk buffer at most (a few such buffers are live at a time).
CHUNK_BYTES = 4 << 20


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


def tr_kernel(tr: float, model: str = "spm", oversampling: int = 16, time_length: float = 32.0) -> np.ndarray:
    """The HRF as a causal filter on the TR grid (see the module docstring).

    Filtering the TR samples with ``h`` equals holding every value for its TR at
    ``tr / oversampling`` resolution, convolving with :func:`hrf_kernel` and reading back at the
    start of every TR (nilearn's ``compute_regressor`` for block designs).

    Returns
    -------
    h : ndarray of shape (n_taps,), float64
        ``h[m]`` weighs the value ``m`` TRs back; ``h.sum() == 1``.
    """
    k = hrf_kernel(tr, model=model, oversampling=oversampling, time_length=time_length)
    o = int(oversampling)
    if o < 1:
        raise ConfigError(f"signal.oversampling = {oversampling} must be >= 1")
    n_back = -(-(k.size - 1) // o)                  # ceil((len − 1) / o) TRs after the first sample
    tail = np.zeros(n_back * o)
    tail[: k.size - 1] = k[1:]
    return np.r_[k[0], tail.reshape(n_back, o).sum(axis=1)]


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


def _chunk_columns(n_rows: int, n_cols: int, chunk_size: int | None, budget: float | None = None) -> int:
    """Columns per chunk: ``chunk_size``, or one float64 buffer of ≤ CHUNK_BYTES (and ≤ budget)."""
    if chunk_size is not None:
        if int(chunk_size) < 1:
            raise ConfigError(f"chunk_size={chunk_size!r} must be a positive int")
        return int(chunk_size)
    nbytes = CHUNK_BYTES if budget is None else max(min(CHUNK_BYTES, budget), 1)
    return int(np.clip(nbytes // (8 * max(n_rows, 1)), 8, max(n_cols, 1)))


def _check_model(model: str, lag: int) -> None:
    if model not in HRF_MODELS:
        raise ConfigError(f"signal.hrf = {model!r} is not allowed; choose one of {list(HRF_MODELS)}")
    if model == "lag" and lag < 0:
        raise ConfigError(f"signal.lag = {lag} must be >= 0 TRs")


def _filter_runs(block: np.ndarray, slices: list[slice], model: str, h: np.ndarray | None, lag: int) -> np.ndarray:
    """HRF filter (or shift) of a float64 (T, c) block, run by run; returns a new float64 array."""
    if model == "none":
        return block.copy()
    out = np.zeros_like(block)
    if model == "lag":
        for sl in slices:
            n = sl.stop - sl.start
            if lag < n:
                out[sl.start + lag: sl.stop] = block[sl.start: sl.stop - lag]
        return out
    tmp = np.empty_like(block)
    for sl in slices:
        x, y, w = block[sl], out[sl], tmp[sl]
        n = x.shape[0]
        np.multiply(x, h[0], out=y)
        for m in range(1, min(h.size, n)):       # y[t] += h[m] x[t − m]; nothing from other runs
            np.multiply(x[: n - m], h[m], out=w[: n - m])
            y[m:] += w[: n - m]
    return out


def _run_moments(block: np.ndarray, slices: list[slice], eps: float):
    """Per-run mean and SD of a float64 block, and the columns constant in some run."""
    means, sds = [], []
    const = np.zeros(block.shape[1], dtype=bool)
    for sl in slices:
        b = block[sl]
        mean = b.mean(axis=0)
        sd = b.std(axis=0)
        const |= ~(sd > eps * np.maximum(np.abs(mean), 1.0))
        means.append(mean)
        sds.append(sd)
    return means, sds, const


def convolve_hrf(
    X: np.ndarray,
    runs: np.ndarray,
    tr: float,
    model: str = "spm",
    oversampling: int = 16,
    lag: int = 0,
    chunk_size: int | None = None,
) -> np.ndarray:
    """Convolve every column with the HRF, run by run.

    Each TR's value is held for the whole TR (a boxcar at ``tr / oversampling`` resolution),
    convolved with the kernel, and read back at the start of every TR, as nilearn's
    ``compute_regressor`` does for block designs — computed exactly on the TR grid with
    :func:`tr_kernel`. Nothing crosses a run boundary.

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
    chunk_size : int, optional
        Columns processed at a time (float64 inside a chunk); default: a few MB per chunk.

    Returns
    -------
    ndarray of shape (n_timepoints, n_columns), float32
    """
    _check_model(model, lag)
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    runs = np.asarray(runs)
    if X.shape[0] != runs.shape[0]:
        raise DimensionError(f"X has {X.shape[0]} timepoints but runs has {runs.shape[0]}")
    slices = _run_slices(runs)
    h = tr_kernel(tr, model=model, oversampling=oversampling) if model in ("spm", "glover") else None
    T, N = X.shape
    out = np.empty((T, N), dtype=np.float32)
    step = _chunk_columns(T, N, chunk_size)
    for c0 in range(0, N, step):
        block = np.asarray(X[:, c0:c0 + step], dtype=np.float64)
        out[:, c0:c0 + step] = _filter_runs(block, slices, model, h, lag)
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


def _mapping(a):
    """The ``mmap`` behind a memory-mapped array (or a view of one), else None."""
    while a is not None and not isinstance(a, mmap.mmap):
        a = getattr(a, "base", None)
    return a


def _release(mapping) -> None:
    """Let go of the pages of a file mapping that this process has touched (RSS).

    The data stays in the file and the page cache (written pages were flushed first); a later
    access just maps them again. Without this, reading every column of a memory-mapped input
    and writing every column of a memory-mapped output would leave both files resident in
    the process.
    """
    if mapping is None or not hasattr(mmap, "MADV_DONTNEED"):
        return
    try:
        if not mapping.closed:
            mapping.flush()
            mapping.madvise(mmap.MADV_DONTNEED)
    except (OSError, ValueError, TypeError):    # read-only flush, or a platform without madvise
        try:
            mapping.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError, AttributeError):
            pass


def _release_every(X, step: int) -> int:
    """Chunks between two releases: ≤ 1/8 of the output's size (and ≤ 16 MB) touched per file."""
    T, N = X.shape
    group = min(4 * CHUNK_BYTES, T * N * 4 / 8)
    return max(1, int(group // max(T * X.itemsize * step, 1)))


def _raw_valid(X, slices, step, eps):
    """Columns of X that are finite and non-constant in every run (one chunked pass)."""
    N = X.shape[1]
    ok = np.empty(N, dtype=bool)
    src = _mapping(X)
    every = _release_every(X, step)
    for i, c0 in enumerate(range(0, N, step)):
        if src is not None and i % every == every - 1:
            _release(src)
        block = np.asarray(X[:, c0:c0 + step], dtype=np.float64)
        fin = np.isfinite(block).all(axis=0)
        if not fin.all():
            block[:, ~fin] = 0.0
        _, _, const = _run_moments(block, slices, eps)
        ok[c0:c0 + step] = fin & ~const
    return ok


def process_timecourses(
    X: np.ndarray,
    runs: np.ndarray,
    tr: float,
    hrf: str = "spm",
    lag: int = 0,
    oversampling: int = 16,
    *,
    out: str | os.PathLike | None = None,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """HRF-convolve per run, z-score per run, and drop near-constant columns (docs/method.md §2.6).

    Streams over chunks of columns: memory beyond the output is a few float64 buffers of one
    chunk (at most ~0.4 × the output, and ≤ 4 MB each), so ``X`` may be a read-only memory map
    and, with ``out``, the result is written into a ``.npy`` file without ever being held
    twice. Equal to convolving every column with the oversampled kernel in float64 (the
    method's definition) up to float32 rounding of the output.

    Parameters
    ----------
    X : ndarray of shape (n_timepoints, n_neurons)
        Any float dtype; a ``np.load(..., mmap_mode="r")`` array is read chunk by chunk.
    runs : ndarray of shape (n_timepoints,)
    tr : float
    hrf : {"spm", "glover", "none", "lag"}, default="spm"
    lag : int, default=0
    oversampling : int, default=16
    out : path, optional
        Write Z to this ``.npy`` file (``np.lib.format.open_memmap``); the returned Z is the
        read-write memory map of that file.
    chunk_size : int, optional
        Columns per chunk (default: from the number of timepoints and the output size).

    Returns
    -------
    Z : ndarray of shape (n_timepoints, n_kept), float32
    kept : ndarray of shape (n_neurons,), bool
    """
    _check_model(hrf, lag)
    X = np.asarray(X)
    if X.ndim != 2:
        raise DimensionError(f"X must be 2-D (n_timepoints, n_neurons), got shape {X.shape}")
    runs = np.asarray(runs)
    if X.shape[0] != runs.shape[0]:
        raise DimensionError(f"X has {X.shape[0]} timepoints but runs has {runs.shape[0]}")
    eps = 1e-8
    T, N = X.shape
    slices = _run_slices(runs)
    step = _chunk_columns(T, N, chunk_size, budget=T * N * 4 / 12)
    h = tr_kernel(tr, model=hrf, oversampling=oversampling) if hrf in ("spm", "glover") else None
    # constancy is judged on the raw series: a constant AN gains an onset transient from the
    # convolution but carries no stimulus information
    raw_ok = _raw_valid(X, slices, step, eps)
    n_ok = int(raw_ok.sum())
    if out is None:
        Z = np.empty((T, n_ok), dtype=np.float32)
    else:
        Z = np.lib.format.open_memmap(os.fspath(out), mode="w+", dtype=np.float32, shape=(T, n_ok))
    kept = raw_ok.copy()
    pos = 0
    # memory-mapped input and output: pages touched are let go every few chunks (see _release)
    src, dst = _mapping(X), _mapping(Z)
    every = _release_every(X, step)
    for i, c0 in enumerate(range(0, N, step)):
        if i % every == every - 1:
            _release(src)
            _release(dst)
        sel = raw_ok[c0:c0 + step]
        if not sel.any():
            continue
        block = np.asarray(X[:, c0:c0 + step], dtype=np.float64)
        if not sel.all():
            block = block[:, sel]
        conv = _filter_runs(block, slices, hrf, h, lag)
        del block
        means, sds, const = _run_moments(conv, slices, eps)
        for sl, mean, sd in zip(slices, means, sds, strict=True):
            conv[sl] -= mean
            conv[sl] /= np.where(sd > 0, sd, 1.0)
        Z[:, pos:pos + conv.shape[1]] = conv
        kept[np.flatnonzero(raw_ok[c0:c0 + step]) + c0] = ~const
        pos += conv.shape[1]
    _release(src)
    _release(dst)
    post_ok = kept[raw_ok]
    if not post_ok.all():          # constant only after the convolution (rare): compact the columns
        Z = _drop_columns(Z, post_ok, out)
    n_drop = int((~kept).sum())
    if n_drop:
        logger.info("dropped %d of %d near-constant ANs", n_drop, kept.size)
    return Z, kept


def _drop_columns(Z: np.ndarray, keep: np.ndarray, out) -> np.ndarray:
    """``Z[:, keep]`` without a second full copy: in place row by row, or via a new file."""
    T, n = Z.shape
    nk = int(keep.sum())
    if out is None:
        flat = Z.reshape(-1)
        for t in range(T):      # row t moves to [t·nk, (t+1)·nk) ⊆ [0, (t+1)·n): later rows untouched
            flat[t * nk:(t + 1) * nk] = flat[t * n:(t + 1) * n][keep]
        return flat[: T * nk].reshape(T, nk)
    path = Path(out)
    tmp = path.with_name(path.name + ".compact.npy")
    new = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(T, nk))
    rows = max(1, CHUNK_BYTES // max(4 * n, 1))
    for r0 in range(0, T, rows):
        new[r0:r0 + rows] = Z[r0:r0 + rows][:, keep]
    new.flush()
    del new, Z
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r+")
