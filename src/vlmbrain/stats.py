"""Multiple-comparison corrections and correlation helpers (numpy/scipy only).

``fdr_bh`` is the Benjamini–Hochberg step-up procedure (tested against
:func:`scipy.stats.false_discovery_control`); ``fwer_maxstat`` turns a
max-statistic null distribution (one maximum per null draw, taken over all
grayordinates) into family-wise-error-corrected p-values (Nichols & Holmes 2002).
"""

from __future__ import annotations

import numpy as np

from vlmbrain.errors import ConfigError, DimensionError

__all__ = ["fdr_bh", "fwer_maxstat", "pearson_r", "permutation_pvalue"]


def fdr_bh(p, alpha=0.05):
    """Benjamini–Hochberg false discovery rate control.

    Parameters
    ----------
    p : array-like of any shape
        p-values in [0, 1]. NaN entries (e.g. invalid grayordinates) are ignored: they
        are not counted in the number of tests and come back with ``reject=False`` and
        ``q=NaN``.
    alpha : float, default=0.05
        FDR level.

    Returns
    -------
    reject : ndarray of bool, same shape as ``p``
        ``q <= alpha``.
    q : ndarray of float64, same shape as ``p``
        BH-adjusted p-values (q-values), ``min(1, min_{j >= i} p_(j) m / j)``.
    """
    if not 0 < float(alpha) < 1:
        raise ConfigError(f"fdr_bh: alpha={alpha!r} must be in (0, 1), e.g. 0.05.")
    p = np.asarray(p, dtype=np.float64)
    finite = ~np.isnan(p)
    pv = p[finite]
    if pv.size and (pv.min() < 0 or pv.max() > 1):
        raise ConfigError(
            f"fdr_bh: p-values must lie in [0, 1]; got min {pv.min():g}, max {pv.max():g}.")
    q = np.full(p.shape, np.nan)
    m = pv.size
    if m:
        order = np.argsort(pv, kind="mergesort")
        ranked = pv[order] * m / np.arange(1, m + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        qv = np.empty(m)
        qv[order] = np.minimum(ranked, 1.0)
        q[finite] = qv
    reject = np.zeros(p.shape, dtype=bool)
    reject[finite] = q[finite] <= alpha
    return reject, q


def fwer_maxstat(observed, null_max, alpha=0.05, tail="greater"):
    """Family-wise error control with the max-statistic method.

    Parameters
    ----------
    observed : array-like of shape (..., n_grayordinates)
        Observed statistics (e.g. ``|t|`` (n_atoms, n_grayordinates) or R² (n_grayordinates,)).
    null_max : array-like of shape (n_null,) or (n_null, ...)
        For every null draw, the maximum of the same statistic over the family
        (all grayordinates). With a leading axis of null draws and trailing axes
        matching ``observed.shape[:-1]`` (e.g. (n_shifts, n_atoms)), each row of
        ``observed`` gets its own family.
    alpha : float, default=0.05
    tail : {"greater", "abs"}, default="greater"
        ``"abs"`` compares ``|observed|`` with ``null_max`` (which must then hold
        maxima of absolute values).

    Returns
    -------
    reject : ndarray of bool, shape of ``observed``
    p_fwer : ndarray of float64, shape of ``observed``
        ``(1 + #{null_max >= observed}) / (1 + n_null)``.
    """
    if tail not in ("greater", "abs"):
        raise ConfigError(f"fwer_maxstat: tail={tail!r}; expected 'greater' or 'abs'.")
    obs = np.asarray(observed, dtype=np.float64)
    if tail == "abs":
        obs = np.abs(obs)
    nm = np.asarray(null_max, dtype=np.float64)
    if nm.ndim == 0 or nm.shape[1:] != obs.shape[:-1]:
        raise DimensionError(
            f"fwer_maxstat: null_max has shape {nm.shape}; expected (n_null,) + "
            f"{obs.shape[:-1]} to match observed of shape {obs.shape}.")
    n_null = nm.shape[0]
    srt = np.sort(nm, axis=0)  # (n_null, ...)
    p = np.empty(obs.shape)
    if obs.ndim == 1:
        n_ge = n_null - np.searchsorted(srt, obs, side="left")
        p = (1.0 + n_ge) / (1.0 + n_null)
    else:
        flat_obs = obs.reshape(-1, obs.shape[-1])
        flat_null = srt.reshape(n_null, -1)
        out = np.empty(flat_obs.shape)
        for i in range(flat_obs.shape[0]):
            n_ge = n_null - np.searchsorted(flat_null[:, i], flat_obs[i], side="left")
            out[i] = (1.0 + n_ge) / (1.0 + n_null)
        p = out.reshape(obs.shape)
    p = np.where(np.isnan(obs), np.nan, p)
    return p <= alpha, p


def permutation_pvalue(count_ge, n_null):
    """``(1 + count) / (1 + n_null)``: the permutation p-value that is never 0."""
    return (1.0 + np.asarray(count_ge, dtype=np.float64)) / (1.0 + n_null)


def pearson_r(a, b, axis=0):
    """Pearson correlation of matching columns (float64 accumulation).

    Parameters
    ----------
    a, b : ndarray of shape (n_timepoints, n_columns)
    axis : int, default=0
        The time axis.

    Returns
    -------
    r : ndarray of shape (n_columns,)
        NaN where either column is constant.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise DimensionError(f"pearson_r: shapes differ: {a.shape} vs {b.shape}.")
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    num = (a * b).sum(axis=axis)
    den = np.sqrt((a * a).sum(axis=axis) * (b * b).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
