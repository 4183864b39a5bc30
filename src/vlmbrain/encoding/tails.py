"""Pooled, standardised shift nulls and their far tails (docs/method.md §4.6).

Why pool. A circular-shift null has few *effectively independent* shifts: neighbouring lags
of slow atoms and autocorrelated data give nearly the same null statistic, so a few hundred
shifts hold a few dozen independent draws per grayordinate. A tail read from one
grayordinate's shifts — a Gaussian of the shifts' variance (``gaussian``) or their rank
(``empirical``) — is then too thin where FDR over 10⁵ grayordinates looks (p ~ 10⁻⁶): the
variance itself is estimated from a few dozen draws, and dividing by a noisy variance makes
the ratio t-like, not Gaussian.

What is pooled. Every grayordinate's statistic is divided by the spread of its own null
(which absorbs the autocorrelation that inflates the parametric t at that grayordinate; for
the atom maps the geometric mean over the atoms of the grayordinate's null variances,
:func:`atom_mean_spread`), and the standardised null values of all grayordinates of one map
form one reference distribution.
A null value is standardised exactly as the observed one is: the observed statistic (lag 0) is
divided by the root mean square of the shifts, which all lie at least ``min_shift`` away from
it; a null value at lag ``s`` is divided by the root mean square of the shifts at least
``min_shift`` away from ``s`` (*leave-window-out*). Standardising a null value by a spread that
contains it and its correlated neighbours would shrink the null tail and make the test liberal.
The reference then carries the noise of the spread estimate, so the observed statistic is
compared with draws of the same kind.

Far tail. Beyond the bulk the pooled reference is summarised by a generalised Pareto
distribution fitted to its largest values (Winkler et al. 2016, NeuroImage 141, as in FSL
PALM), so that p-values below ``1 / n_pooled`` are extrapolated rather than floored. The fit
uses probability-weighted moments (Hosking & Wallis 1987); a fitted shape below 0 (a bounded
tail) is replaced by the exponential tail (shape 0), which is never lighter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PooledNull", "PooledTail", "atom_mean_spread", "gpd_fit_pwm", "gpd_sf", "leave_window_out"]

#: Values above this quantile of the first batch are kept exactly (all go to a histogram).
KEEP_QUANTILE = 0.99
#: Draws per grayordinate in the pooled null: one per block of consecutive shifts. Nearby
#: shifts of slow atoms give nearly the same value, so a few dozen draws spread over all
#: shifts hold most of what the shifts know about one grayordinate's tail.
POOL_DRAWS = 25
#: Fraction of the pooled null in the fitted tail (at least ``MIN_TAIL`` values).
TAIL_FRACTION = 1e-3
MIN_TAIL = 250


def gpd_fit_pwm(excess):
    """Generalised Pareto ``(shape ξ, scale σ)`` of threshold excesses by probability-weighted
    moments (Hosking & Wallis 1987); ``ξ < 0`` is replaced by the exponential tail ``ξ = 0``
    with ``σ`` the mean excess."""
    y = np.sort(np.asarray(excess, dtype=np.float64))
    n = y.size
    a0 = y.mean()
    if n < 3 or a0 <= 0:
        return 0.0, max(a0, 1e-12)
    a1 = np.sum(y * (n - 1 - np.arange(n)) / (n - 1)) / n      # E[Y (1 - F(Y))]
    k = a0 / (a0 - 2 * a1) - 2.0                               # Hosking's k = -ξ
    sigma = 2 * a0 * a1 / (a0 - 2 * a1)
    xi = -k
    if not np.isfinite(xi) or xi < 0 or sigma <= 0:
        return 0.0, a0
    return float(xi), float(sigma)


def gpd_sf(y, xi, sigma):
    """Survival function of the generalised Pareto distribution at excess ``y ≥ 0``."""
    y = np.maximum(np.asarray(y, dtype=np.float64), 0.0)
    if xi == 0:
        return np.exp(-y / sigma)
    return np.exp(-np.log1p(xi * y / sigma) / xi)


def atom_mean_spread(var, axis):
    """Geometric mean over the atoms (``axis``) of a grayordinate's null variances, kept as a
    length-1 axis.

    The scale that standardises an atom's statistic at a grayordinate. Each atom's own null
    variance there is estimated from few effectively independent shifts; its noise makes the
    scaled statistic heavy-tailed and costs power. The K atoms' variances at one grayordinate
    share that grayordinate's noise spectrum: their geometric mean is a far less noisy scale.
    What it misses — a per-atom factor (slower atoms inflate more) — is constant over the map
    and drops out of the pooled p-value, which compares each atom map with its own pooled null.
    Observed statistics and null draws are scaled the same way, so the test stays exact in the
    pooled sense whatever the scale.
    """
    v = np.asarray(var, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if bool(np.all(v > 0)):            # the common case: no NaN to skip (nanmean copies)
            return np.exp(np.log(v).mean(axis=axis, keepdims=True))
        lv = np.where(v > 0, np.log(v), np.nan)
        return np.exp(np.nanmean(lv, axis=axis, keepdims=True))


def leave_window_out(block_sq, total, n_total, block, halfwidth):
    """Mean square over the shifts outside a window of blocks around each block.

    Parameters
    ----------
    block_sq : ndarray (n_blocks, ...)
        Sums of squared null values over consecutive blocks of ``block`` shifts.
    total : ndarray (...)
        Sum of squares over all shifts; ``n_total`` their number.
    halfwidth : int
        Blocks ``b'`` with ``|b' - b| <= halfwidth`` are left out for block ``b``.
    """
    nb = block_sq.shape[0]
    cs = np.empty((nb + 1,) + block_sq.shape[1:], block_sq.dtype)
    cs[0] = 0
    for b in range(nb):                     # (numpy's cumsum along a leading axis is slow)
        np.add(cs[b], block_sq[b], out=cs[b + 1])
    b = np.arange(nb)
    lo = np.maximum(b - halfwidth, 0)
    hi = np.minimum(b + halfwidth + 1, nb)
    window = cs[hi]
    window -= cs[lo]
    n_left = (n_total - block * (hi - lo)).reshape((nb,) + (1,) * (block_sq.ndim - 1))
    np.subtract(total[None], window, out=window)
    window /= n_left
    return window


@dataclass
class PooledTail:
    """The pooled standardised null of one map: histogram of the bulk, exact upper values,
    and a generalised Pareto tail.

    ``sf(w)`` is the p-value ``P(W ≥ w)``: ``(1 + #{W ≥ w}) / (1 + n)`` below the tail
    threshold ``u`` and ``(1 + n_u) / (1 + n) · GPD_sf(w − u)`` above it.
    """

    hist: np.ndarray          # (n_bins,) counts of all values (the last bin open-ended)
    width: float              # bin width
    upper: np.ndarray         # sorted values >= keep_from
    n: int
    keep_from: float = 0.0
    w_min: float = 0.0        # left edge of the histogram (values below count as w_min)
    u: float = np.nan
    n_u: int = 0
    xi: float = 0.0
    sigma: float = 1.0

    def fit(self):
        n_u = int(min(self.upper.size, max(MIN_TAIL, round(TAIL_FRACTION * self.n))))
        if n_u >= 10:
            top = self.upper[self.upper.size - n_u:]
            # threshold just below the n_u largest values (midway to the next one down)
            below = self.upper[self.upper.size - n_u - 1] if self.upper.size > n_u else self.keep_from
            self.u = float(0.5 * (top[0] + below))
            self.n_u = n_u
            self.xi, self.sigma = gpd_fit_pwm(top - self.u)
        return self

    def count_ge(self, w):
        """``#{W ≥ w}`` (exact above ``keep_from``, linear within a histogram bin below)."""
        w = np.asarray(w, dtype=np.float64)
        out = np.empty(w.shape)
        hi = w >= self.keep_from
        out[hi] = self.upper.size - np.searchsorted(self.upper, w[hi], side="left")
        lo = ~hi & np.isfinite(w)
        if lo.any():
            nb = self.hist.size
            above = np.concatenate([np.cumsum(self.hist[::-1])[::-1], [0]]).astype(np.float64)
            pos = np.maximum(w[lo] - self.w_min, 0.0) / self.width
            b = np.minimum(pos.astype(np.int64), nb - 1)
            frac = pos - b
            out[lo] = above[b + 1] + self.hist[b] * (1.0 - frac)
        out[~np.isfinite(w)] = np.nan
        return out

    def sf(self, w):
        w = np.asarray(w, dtype=np.float64)
        p = (1.0 + self.count_ge(w)) / (1.0 + self.n)
        if self.n_u:
            far = w > self.u
            if far.any():
                p[far] = (1.0 + self.n_u) / (1.0 + self.n) * gpd_sf(w[far] - self.u, self.xi, self.sigma)
        return np.minimum(p, 1.0)

    def describe(self):
        return {"n_pooled": int(self.n), "tail_threshold": float(self.u), "tail_n": int(self.n_u),
                "gpd_shape": float(self.xi), "gpd_scale": float(self.sigma)}


class PooledNull:
    """Accumulates standardised null values of ``n_maps`` maps over column chunks.

    ``w_max`` / ``n_bins`` set the histogram grid of the bulk (values beyond ``w_max`` fall
    into the last bin); values above the :data:`KEEP_QUANTILE` quantile of the first batch
    (``keep_from``) are also kept exactly.
    """

    def __init__(self, n_maps, w_max=20.0, n_bins=4000, w_min=0.0):
        self.n_maps = n_maps
        self.w_min = float(w_min)
        self.width = (w_max - w_min) / n_bins
        self.n_bins = n_bins
        self.hist = np.zeros(n_maps * n_bins, np.int64)
        self.upper = [[] for _ in range(n_maps)]
        self.n = np.zeros(n_maps, np.int64)
        self.keep_from = None

    def add(self, W):
        """``W`` (n_draws, n_maps, c) standardised null values (values below ``w_min`` count
        as ``w_min``; NaN are ignored)."""
        nd, m, c = W.shape
        lo = W.dtype.type(self.w_min) if W.dtype.kind == "f" else np.float32(self.w_min)
        # two reductions tell whether every value is finite (a NaN or ±inf reaches min or max)
        allok = bool(W.size == 0 or (np.isfinite(W.min()) and np.isfinite(W.max())))
        if allok:
            # (|t| draws never fall below w_min = 0: no clipped copy then)
            if W.size and W.min() < lo:
                W = np.maximum(W, lo)
            ok = None
        else:
            ok = np.isfinite(W)
            W = np.where(ok, np.maximum(W, lo), lo)
        # bin index per value, in place on one buffer: ((W - lo) / width) clipped to the last bin,
        # cast straight to the index type np.bincount counts (no converted copy there)
        scale = W.dtype.type(1.0 / self.width)
        if lo:
            buf = np.subtract(W, lo, dtype=W.dtype)
            buf *= scale
        else:
            buf = W * scale
        np.minimum(buf, self.n_bins - 1, out=buf)
        idx = buf.astype(np.intp)
        del buf
        idx += (np.arange(m, dtype=np.intp) * self.n_bins)[None, :, None]
        counts = np.bincount(idx.ravel() if allok else idx[ok], minlength=self.hist.size)
        del idx
        self.hist += counts
        self.n += nd * c if allok else ok.sum(axis=(0, 2))
        if self.keep_from is None:
            # the KEEP_QUANTILE quantile of the first batch, to the left edge of its histogram
            # bin (read off the counts just made; no sort of the batch)
            tot = counts.reshape(m, self.n_bins).sum(axis=0)
            cum = np.cumsum(tot)
            if cum[-1]:
                b = int(np.searchsorted(cum, KEEP_QUANTILE * cum[-1], side="left"))
                self.keep_from = self.w_min + b * self.width
            else:
                self.keep_from = 0.0
        # the kept values (~1 %) of every map from one comparison over the batch (flat positions,
        # in order), grouped by map with a stable sort (each map's values in the order its own
        # mask would give)
        flat = np.flatnonzero(W >= W.dtype.type(self.keep_from))
        if flat.size:
            ks = flat // c % m
            vals = np.ascontiguousarray(W).ravel()[flat].astype(np.float64)
            order = np.argsort(ks, kind="stable")
            cuts = np.cumsum(np.bincount(ks, minlength=m))[:-1]
            for k, v in enumerate(np.split(vals[order], cuts)):
                if v.size:
                    self.upper[k].append(v)

    def merge(self, other):
        if other.keep_from is None:
            return
        keep = other.keep_from if self.keep_from is None else max(self.keep_from, other.keep_from)
        self.hist += other.hist
        self.n += other.n
        for k in range(self.n_maps):
            self.upper[k] = [u[u >= keep] for u in self.upper[k] + other.upper[k]]
        self.keep_from = keep

    def tails(self):
        out = []
        for k in range(self.n_maps):
            up = np.sort(np.concatenate(self.upper[k])) if self.upper[k] else np.zeros(0)
            out.append(PooledTail(hist=self.hist[k * self.n_bins:(k + 1) * self.n_bins].copy(), width=self.width,
                                  upper=up.astype(np.float64), n=int(self.n[k]),
                                  keep_from=np.inf if self.keep_from is None else self.keep_from,
                                  w_min=self.w_min).fit())
        return out
