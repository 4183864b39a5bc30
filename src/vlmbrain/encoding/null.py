"""Circular-shift null of the atom time courses for the OLS encoding model.

The atoms, centred within runs, are shifted jointly and circularly over the concatenated
timeline, and the data are refitted on every shifted design. A joint circular shift
permutes the rows, so the Gram matrix is unchanged and every null fit comes from the
circular cross-correlations of the orthonormalised atoms with the data, computed for all
lags at once with FFTs. :func:`shift_null` returns the observed statistics, empirical
p-values, the max-statistic nulls for FWER, and the null moments used for calibrated
p-values (:class:`ShiftNullResult`), with the numpy or the torch backend.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft
from threadpoolctl import threadpool_limits

from vlmbrain.encoding import _kernels
from vlmbrain.encoding._checks import _check_xy, _check_y_finite, _torch_module, check_runs
from vlmbrain.encoding.statistics import Design
from vlmbrain.encoding.tails import POOL_DRAWS, PooledNull, atom_mean_spread, leave_window_out
from vlmbrain.errors import ConfigError, DimensionError
from vlmbrain.stats import fwer_maxstat, permutation_pvalue

logger = logging.getLogger("vlmbrain")

__all__ = ["ShiftNullResult", "shift_null"]


@dataclass
class ShiftNullResult:
    """Result of :func:`shift_null`.

    Attributes
    ----------
    shifts : ndarray of int, shape (n_shifts,)
        The circular shifts (in TRs) that were applied to the atom time courses.
    beta, tvalues : ndarray of shape (n_atoms, n_grayordinates)
        Observed OLS estimates (identical to ``VoxelwiseEncoder(method="ols")``).
    r2 : ndarray of shape (n_grayordinates,)
        Observed in-sample R² of the full model (after removing run means).
    p_beta : ndarray of shape (n_atoms, n_grayordinates)
        Two-sided p-values of the t-value, ``(1 + #{s: |t_s| >= |t|}) / (1 + n_shifts)``,
        where ``t_s = beta_s / se_s`` re-estimates the residual variance for every shift (a
        studentized permutation statistic: with the observed residual variance, a strong
        effect would shrink the observed ``se`` and inflate every null value, costing power
        exactly where the signal is). ``p_t`` is an alias.
    p_r2 : ndarray of shape (n_grayordinates,)
        One-sided p-value of the full-model fit (R²; equivalently the multiple
        correlation R = sqrt(R²)). ``p_r`` is the same array.
    null_max_z : ndarray of shape (n_shifts, n_atoms)
        Per shift and atom, max over grayordinates of ``|t_s|`` (the null counterpart of
        ``|tvalues|``, for max-statistic FWER per atom map).
    null_max_r2 : ndarray of shape (n_shifts,)
        Per shift, max over grayordinates of R².
    dof : float
    beta_null : ndarray of shape (n_shifts, n_atoms, n_grayordinates) or None
        Only with ``return_null=True`` (small problems / tests).
    null_z_var : ndarray of shape (n_atoms, n_grayordinates) or None
        Mean over shifts of ``t_s²``: the null variance of the t-value at every (atom,
        grayordinate) — above 1 where autocorrelated noise inflates it.
    null_r2_mean, null_r2_var : ndarray of shape (n_grayordinates,) or None
        Mean and variance over shifts of the null R².

    Notes
    -----
    Empirical p-values cannot go below ``1 / (n_shifts + 1)``; with few shifts (short data)
    no map survives FDR over ~10⁵ grayordinates. :attr:`p_t_calibrated` and
    :attr:`p_r2_calibrated` keep the null's calibration (its spread at every grayordinate,
    from the same shifts) but read the tail from a fitted distribution: a centred Gaussian
    of variance ``null_z_var`` for ``t``, and a scaled χ² matched to the null R²'s mean and
    variance (Satterthwaite) for R². Both backends return the null moments.
    :attr:`p_t_pooled` and :attr:`p_r2_pooled` compare the statistic, standardised by its
    own null's spread, with the standardised null values pooled over all grayordinates of the
    map, with a generalised Pareto far tail (:mod:`vlmbrain.encoding.tails`): the default
    (``null_pvalues="pooled"``), because the per-grayordinate Gaussian tail is too thin far
    in the tail.
    """

    shifts: np.ndarray
    beta: np.ndarray
    tvalues: np.ndarray
    r2: np.ndarray
    p_beta: np.ndarray
    p_r2: np.ndarray
    null_max_z: np.ndarray
    null_max_r2: np.ndarray
    dof: float
    decimation: int = 1
    beta_null: np.ndarray | None = field(default=None, repr=False)
    null_z_var: np.ndarray | None = field(default=None, repr=False)
    null_r2_mean: np.ndarray | None = field(default=None, repr=False)
    null_r2_var: np.ndarray | None = field(default=None, repr=False)
    pooled_t: list | None = field(default=None, repr=False)
    pooled_r2: object | None = field(default=None, repr=False)
    n_shifts_requested: int | None = None
    min_shift: int | None = None
    pool_accumulators: tuple | None = field(default=None, repr=False)
    seam_t: np.ndarray | None = field(default=None, repr=False)
    seam_r2: np.ndarray | None = field(default=None, repr=False)

    def pvalues(self, kind="pooled"):
        """``(p_beta, p_r)`` of one kind: ``"pooled"``, ``"gaussian"`` (also ``"calibrated"``)
        or ``"empirical"``; ``None`` where the null has not got what that kind needs."""
        if kind == "pooled":
            return self.p_t_pooled, self.p_r2_pooled
        if kind in ("gaussian", "calibrated"):
            return self.p_t_calibrated, self.p_r2_calibrated
        if kind == "empirical":
            return self.p_beta, self.p_r2
        raise ConfigError(f"null p-values {kind!r}: use 'pooled', 'gaussian' or 'empirical'")

    def describe(self):
        """The pooled tails, for the summary: one entry per atom map and one for the fit."""
        if self.pooled_t is None:
            return {}
        return {"atoms": [t.describe() for t in self.pooled_t], "fit": self.pooled_r2.describe()}

    @property
    def p_t_pooled(self):
        """Two-sided p of ``|t|`` scaled by the grayordinate's null spread (geometric mean over
        the atoms of the null variances) against the pooled scaled null of its atom map
        (:mod:`vlmbrain.encoding.tails`)."""
        if self.pooled_t is None:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = atom_mean_spread(self.null_z_var, axis=0)
            if self.seam_t is not None:
                spread = spread * self.seam_t
            w = np.abs(self.tvalues.astype(np.float64)) / np.sqrt(spread)
        return np.vstack([tail.sf(w[k]) for k, tail in enumerate(self.pooled_t)])

    @property
    def p_r2_pooled(self):
        """One-sided p of ``R² / mean(null R²)`` against the pooled standardised null of the fit."""
        if self.pooled_r2 is None:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.null_r2_mean.astype(np.float64)
            if self.seam_r2 is not None:
                mean = mean * self.seam_r2
            w = self.r2.astype(np.float64) / mean
        return self.pooled_r2.sf(w)

    @property
    def p_t_calibrated(self):
        """Two-sided p of ``t`` against N(0, null_z_var) at each (atom, grayordinate)."""
        if self.null_z_var is None:
            return None
        from scipy.special import ndtr

        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.abs(self.tvalues.astype(np.float64)) / np.sqrt(self.null_z_var.astype(np.float64))
        return 2.0 * ndtr(-z)

    @property
    def p_r2_calibrated(self):
        """One-sided p of R² against a scaled χ² fitted to the null R² at each grayordinate."""
        if self.null_r2_mean is None:
            return None
        from scipy.stats import chi2

        m = self.null_r2_mean.astype(np.float64)
        v = np.maximum(self.null_r2_var.astype(np.float64), 1e-30)
        scale = v / (2.0 * np.maximum(m, 1e-30))
        dof = 2.0 * m * m / v
        return chi2.sf(self.r2.astype(np.float64) / scale, dof)

    @property
    def p_r(self):
        """Alias of ``p_r2`` (the multiple correlation R = sqrt(R²) is monotone in R²)."""
        return self.p_r2

    @property
    def p_t(self):
        """Alias of ``p_beta`` (see the class docstring)."""
        return self.p_beta

    @property
    def n_shifts(self):
        return int(self.shifts.size)

    def fwer_t(self, alpha=0.05):
        """Max-statistic FWER p-values of ``|t|`` per atom map → ``(reject, p)`` (K, V)."""
        return fwer_maxstat(np.abs(self.tvalues), self.null_max_z, alpha=alpha)

    def fwer_r2(self, alpha=0.05):
        """Max-statistic FWER p-values of R² → ``(reject, p)`` (V,)."""
        return fwer_maxstat(self.r2, self.null_max_r2, alpha=alpha)


def _studentize(ess, fac, df):
    """``sigma / sigma_s`` per (column, shift) from the null's explained sum of squares.

    ``ess`` is in units of the observed residual variance ``sigma²`` and ``fac = sigma² / yy``,
    so the shifted model's residual variance is ``sigma_s² = sigma² (1/fac - ess) / df``.
    """
    rss = np.maximum(1.0 / np.maximum(fac[:, None], 1e-30) - ess, 1e-12)
    return np.sqrt(df / rss).astype(np.float32)


def _nuisance_basis(bounds, nuisance, T, intercepts=True):
    """Orthonormal basis (T, M) of the run intercepts and the nuisance columns."""
    D = np.zeros((T, len(bounds) if intercepts else 0))
    for r, (a, b) in enumerate(bounds if intercepts else []):
        D[a:b, r] = 1.0
    if nuisance is None:
        if not intercepts:
            raise ConfigError("shift_null: intercepts=False needs the nuisance columns.")
        return D / np.sqrt(D.sum(axis=0))
    N = np.asarray(nuisance, dtype=np.float64)
    if N.ndim != 2 or N.shape[0] != T:
        raise DimensionError(f"nuisance has shape {N.shape}; expected ({T}, n_columns).")
    U, sv, _ = np.linalg.svd(np.concatenate([D, N], axis=1), full_matrices=False)
    return U[:, sv > sv[0] * 1e-10]


def _exact_nuisance(Q, Nb, Linv, ginv_diag, shifts):
    """Per-shift maps of the refit with the nuisance held fixed (float32 for the chunks).

    With ``A_s = Nᵀ Q_s`` (M, K) the shifted orthonormal atoms' coordinates in the nuisance
    space, the Gram of the shifted atoms after projecting out the nuisance is ``I − A_sᵀA_s``,
    whose inverse is ``I + A_sᵀ W_s A_s``, ``W_s = (I − A_s A_sᵀ)⁻¹`` (Woodbury). For a chunk's
    cross-products ``P_s = Q_sᵀ y`` (K, c) the shifted model's

    - standardised coefficients are ``z_s = D_s ⊙ (Mz + B_s A_s) P_s``, ``Mz = L⁻ᵀ / sqrt(diag
      G⁻¹)``, ``B_s = L⁻ᵀ A_sᵀ W_s / sqrt(diag G⁻¹)`` and ``D_s`` the rescaling to the shifted
      model's standard error: one K × K map per shift, ``zmap``;
    - explained sum of squares is ``|P_s|² + |E_s P_s|²`` with ``E_sᵀE_s = A_sᵀ W_s A_s``
      (``emap``, min(M, K) rows).

    Returns ``zmapT`` (S, K, K) and ``emapT`` (S, K, R), transposed for the chunks' (shift,
    column, atom) products ``P_s @ map_sᵀ``, ``zmap`` / ``emap`` untransposed (the torch
    path) and ``D`` (S, K).
    """
    T, K = Q.shape
    M = Nb.shape[1]
    Qf = sfft.rfft(Q, axis=0)
    Nf = sfft.rfft(Nb, axis=0)
    # A[s, k, m] = sum_t Q[t, k] N[t + s, m], the same circular cross-correlation as the null
    A = sfft.irfft(np.conj(Qf)[:, :, None] * Nf[:, None, :], n=T, axis=0)[shifts]   # (S, K, M)
    At = np.ascontiguousarray(A.transpose(0, 2, 1))                                # (S, M, K)
    # I − A Aᵀ = U diag(λ) Uᵀ  →  W = U diag(1/λ) Uᵀ,  E = diag(λ^-½) Uᵀ A
    lam, Ue = np.linalg.eigh(np.eye(M)[None] - At @ A)
    lam = np.maximum(lam, 1e-12)
    E = (Ue.transpose(0, 2, 1) @ At) / np.sqrt(lam)[:, :, None]                    # (S, M, K)
    if M > K:                          # |E P|² = |R P|² for E = Q R: K rows suffice
        E = np.linalg.qr(E, mode="r")
    LA = Linv.T[None] @ A                                                          # (S, K, M)
    LAW = ((LA @ Ue) / lam[:, None, :]) @ Ue.transpose(0, 2, 1)                    # L⁻ᵀ Aᵀ W
    e = np.einsum("skm,skm->sk", LAW, LA)
    sqg = np.sqrt(ginv_diag)
    D = np.sqrt(ginv_diag[None] / (ginv_diag[None] + e))                           # (S, K)
    zmap = D[:, :, None] * ((Linv.T / sqg[:, None])[None] + (LAW / sqg[None, :, None]) @ At)
    zmap = zmap.astype(np.float32)
    E = E.astype(np.float32)
    return {"zmapT": np.ascontiguousarray(zmap.transpose(0, 2, 1)),
            "emapT": np.ascontiguousarray(E.transpose(0, 2, 1)),
            "zmap": zmap, "emap": E, "D": D.astype(np.float32)}


#: Columns per block of the cross-spectra and their inverse FFT in a chunk (see ``one_chunk``).
FFT_BLOCK = 2

#: Bytes of float32 t per slab of shifts in a chunk (cache-sized; see ``one_chunk``).
SLAB_BYTES = 1 << 20

#: Largest lag of the AR(1) noise model behind the seam correction (``_seam_lag_products``).
SEAM_MAX_LAG = 60


def _run_autocov(B, bounds, n_lag):
    """``Σ_{t, t+τ in one run} b(t) b(t+τ)`` for τ = 0 … n_lag − 1 (τ > 0 counted twice) of every
    column of ``B`` (T, m) → (m, n_lag), by FFTs zero-padded by ``n_lag`` per run."""
    out = np.zeros((B.shape[1], n_lag))
    for a, b in bounds:
        n = sfft.next_fast_len(b - a + n_lag, real=True)
        f = sfft.rfft(B[a:b].astype(np.float32), n=n, axis=0)      # float32: ~1e-6 relative, half the cost
        f = f.real * f.real + f.imag * f.imag
        ac = sfft.irfft(f, n=n, axis=0)[:min(n_lag, b - a)]          # (lags, m)
        out[:, :ac.shape[0]] += ac.T
    out[:, 1:] *= 2.0
    return out


def _seam_lag_products(Xc, Nb, bounds, lags, max_lag=SEAM_MAX_LAG):
    """Lag products of the null's test directions at the given lags, for the seam correction.

    Why. At lag 0 the atoms are orthogonal to the nuisance (run intercepts, drift, confounds),
    having been projected off it; a shifted design is projected off it again in the refit, which
    removes from it what the shift moved into the nuisance space — its run means and slow
    content relative to the *data's* runs, where smooth noise has most of its variance. The
    shifted test directions then see less noise variance than the observed one under the null,
    and the shifts' spread underestimates the observed statistic's: a liberal test in short runs
    of smooth noise (2 × 150 TRs at ρ = 0.8: 6.8 % of the fit's p below 0.05; 6 × 50 TRs:
    7.9 %). Under a noise autocovariance γ (runs independent), the null second moment along a
    unit direction ``v`` is ``Σ_τ γ(τ) a(τ)``, ``a(τ) = Σ_{t, t+τ in one run} v(t) v(t+τ)``.

    Returns ``a`` (n, K + 1, n_lag) over ``lags`` (n,): rows ``:K`` of the unit t-directions of
    every atom in the refit with the nuisance, row ``K`` summed over an orthonormal basis of the
    projected shifted design (the R²'s ``tr(H C)``). Voxel-independent;
    :func:`_seam_factors` weighs them with each grayordinate's AR(1) autocorrelation.
    """
    Xc = np.asarray(Xc, dtype=np.float64)
    T, K = Xc.shape
    n_lag = int(min(max_lag, T // 4)) + 1
    out = np.empty((len(lags), K + 1, n_lag))
    for i, s in enumerate(lags):
        Xs = np.roll(Xc, int(s), axis=0)
        Xs -= Nb @ (Nb.T @ Xs)
        G = Xs.T @ Xs
        Gi = np.linalg.inv(G)
        # unit t-directions V = Xs G⁻¹ / sqrt(diag G⁻¹) and an orthonormal basis B = Xs L⁻ᵀ
        M = np.concatenate([Gi / np.sqrt(np.maximum(np.diag(Gi), 1e-300))[None, :],
                            np.linalg.inv(np.linalg.cholesky(G)).T], axis=1)
        a = _run_autocov(Xs @ M, bounds, n_lag)
        out[i, :K] = a[:K]
        out[i, K] = a[K:].sum(0)
    return out


def _ar1_powers(rho, n_lag):
    """``ρ^τ`` for τ = 0 … n_lag − 1 of every column (n_lag, c), the AR(1) autocorrelation the seam
    corrections weigh their lag products with. |ρ| is capped where ``|ρ|^n_lag = 0.05`` (see
    :func:`_seam_factors`); powers below 1e-30 are set to 0 (as float32 they would be subnormal,
    which is slow)."""
    rho = np.asarray(rho, dtype=np.float64)
    cap = min(0.99, 0.05 ** (1.0 / n_lag))
    R = np.empty((n_lag, rho.size))
    R[0] = 1.0
    R[1:] = np.clip(rho, -cap, cap)[None, :]
    np.cumprod(R, axis=0, out=R)
    R[np.abs(R) < 1e-30] = 0.0
    return R


class SeamOperator:
    """The seam factors' linear part, prepared once per design: :func:`_seam_lag_products` at
    ``[0, block centres...]`` (n, m, n_lag) as numerator rows (lag 0, every centre) and
    denominator rows (the mean over the centres, every centre's leave-window-out mean).

    The expected null second moment at a lag is linear in the AR(1) autocovariance
    (``E = lp @ ρ^τ``) and so is every leave-window-out mean of them: both sides of every
    factor are one float32 product of these rows with the chunk's ``ρ^τ`` (n_lag, c) — per
    chunk a GEMM and a division, no window sums."""

    def __init__(self, lp, hb):
        lp = np.asarray(lp, dtype=np.float64)
        n, m, n_lag = lp.shape
        cen = lp[1:]
        nb = cen.shape[0]
        total = cen.sum(axis=0)
        rows = np.concatenate([lp[:1], cen, total[None] / nb, leave_window_out(cen, total, nb, 1, hb)])
        self.rows = np.ascontiguousarray(rows.reshape(2 * n * m, n_lag), dtype=np.float32)
        self.shape = (n, m, n_lag)

    def factors(self, rho):
        """``k_obs`` (m, c) and ``k_null`` (nb, m, c) for lag-1 autocorrelations ``rho`` (c,)
        (see :func:`_seam_factors`)."""
        n, m, n_lag = self.shape
        # float32 products (~1e-7 relative: a variance ratio's precision is ample)
        E = (self.rows @ _ar1_powers(rho, n_lag).astype(np.float32)).reshape(2, n, m, -1)
        with np.errstate(invalid="ignore", divide="ignore"):
            k = np.divide(E[0], E[1], dtype=np.float64)
        return k[0], k[1:]


def _seam_factors(lp, rho, hb):
    """Seam factors of one chunk from :func:`_seam_lag_products` at ``[0, block centres...]``:
    ``E(lag 0) / E(mean over the centres)`` (m, c) for the observed statistic and
    ``E(centre b) / E(mean over the centres outside b's window)`` (nb, m, c) for the pooled
    draws, under AR(1) noise of lag-1 autocorrelation ``rho`` (c,) (E: expected null second
    moments; rows as in :func:`_seam_lag_products`). ``lp`` may be a :class:`SeamOperator`
    prepared from them (then ``hb`` is its own). The autocovariance is truncated after
    ``n_lag − 1`` lags, which is no longer positive definite (factors far off, even negative)
    once ``ρ^n_lag`` is not small: |ρ| is capped where ``|ρ|^n_lag = 0.05`` (0.91 at 30 lags,
    0.95 at 60)."""
    op = lp if isinstance(lp, SeamOperator) else SeamOperator(lp, hb)
    return op.factors(np.asarray(rho, dtype=np.float64))


def _lag1_autocorrelation(Ycen, bounds):
    """Lag-1 autocorrelation within runs of every column of ``Ycen`` (T, c)."""
    num = np.zeros(Ycen.shape[1])
    for a, b in bounds:
        num += np.einsum("tc,tc->c", Ycen[a:b - 1], Ycen[a + 1:b])
    den = np.einsum("tc,tc->c", Ycen, Ycen)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, 0.0)


#: Grid of the true lag-1 autocorrelation on which :func:`_lag1_bias_inverse` inverts the bias.
LAG1_GRID = np.linspace(-0.5, 0.99, 1491)


def _lag1_bias_inverse(bounds, Nb, grid=LAG1_GRID):
    """Inverse of the bias of :func:`_lag1_autocorrelation` on nuisance-projected runs:
    a function mapping the sample lag-1 autocorrelations ``r`` (c,) to the AR(1) ρ whose
    expected sample value they are (clipped to ``grid``).

    With ``M = I − Nb Nbᵀ`` (``Nb`` (T, m) orthonormal: the run intercepts, drift and
    confounds the data were projected off), ``L`` the symmetrised lag-1 form within runs
    (``yᵀ L y = Σ_{t, t+1 in one run} y_t y_{t+1}``) and ``Σ = Σ_ρ`` block-diagonal over runs
    with ``Σ_{ts} = ρ^|t−s|`` (the innovation scale cancels), the sample value is
    ``r = N / D``, ``N = yᵀ M L M y``, ``D = yᵀ M y``, y ~ N(0, Σ). Its expectation,

        g(ρ) = E[N] / E[D] − Cov(N, D) / E[D]² + E[N] Var(D) / E[D]³,

        E[N] = tr(L K),  E[D] = tr(K),  Var(D) = 2 tr(K²),  Cov(N, D) = 2 tr(L K²),
        K = M Σ M,

    the first term the ratio of expectations ``tr(M L M Σ) / tr(M Σ)`` (for one run of n with
    its mean removed ≈ ρ − (1 + 3ρ)/n: short runs, and more so a drift basis, bias ``r`` low),
    the other two its second-order (delta-method) correction, which matters once the whole
    series is short (one run of 50 TRs at ρ = 0.8: 0.71 simulated, 0.74 from the first term).
    With ``U = [Nb, Σ Nb]`` (T, 2m) and ``W = [[C, −I], [−I, 0]]``, ``C = Nbᵀ Σ Nb``,
    ``K = Σ + U W Uᵀ``, so every trace is a per-run closed form in ρ (``tr Σ²``, ``tr L Σ``,
    ``tr L Σ²``) plus small (2m × 2m) products of ``U``, ``Σ U`` and ``L U``; ``Σ`` applied to
    columns is two first-order recursions per run: O(T m²) per ρ, never T × T. g is computed
    at 37 nodes of ``grid``'s range (denser above 0.9), interpolated onto ``grid`` by PCHIP
    (monotone), made non-decreasing, and inverted by linear interpolation."""
    from scipy.interpolate import PchipInterpolator
    from scipy.signal import lfilter

    grid = np.asarray(grid, dtype=np.float64)
    nodes = np.unique(np.r_[np.linspace(grid[0], 0.9, 29), np.linspace(0.9, grid[-1], 9)])
    P = np.asarray(Nb, dtype=np.float64)
    T, m = P.shape
    lens = np.array([b - a for a, b in bounds])

    def lag(X):
        out = np.zeros_like(X)
        for a, b in bounds:
            out[a:b - 1] += 0.5 * X[a + 1:b]
            out[a + 1:b] += 0.5 * X[a:b - 1]
        return out

    def sig(X, r):
        out = np.empty_like(X)
        for a, b in bounds:
            f = lfilter([1.0], [1.0, -r], X[a:b], axis=0)
            bk = lfilter([1.0], [1.0, -r], X[a:b][::-1], axis=0)[::-1]
            out[a:b] = f + bk - X[a:b]
        return out

    def g_at(r):
        S1 = sig(P, r)
        S2 = sig(S1, r)
        LS1 = lag(S1)
        C, B11, B12 = P.T @ S1, S1.T @ S1, S1.T @ S2
        E1, E11, E2, E12 = P.T @ LS1, S1.T @ LS1, LP.T @ S2, LS1.T @ S2
        W = np.block([[C, -eye], [-eye, zero]])
        UU = np.block([[eye, C], [C, B11]])                 # Uᵀ U
        USU = np.block([[C, B11], [B11, B12]])              # Uᵀ Σ U
        LUU = np.block([[PLP, E1], [E1.T, E11]])            # Uᵀ L U
        LSU = np.block([[E1, E2], [E11, E12]])              # (L U)ᵀ Σ U
        # per-run closed forms: tr Σ, tr LΣ, tr Σ², tr LΣ² (partial sums G of ρ^{2j})
        tr_s = tr_ls = tr_s2 = tr_ls2 = 0.0
        for n in lens:
            G = np.cumsum(r ** (2.0 * np.arange(n)))
            t = np.arange(n)
            tr_s += n
            tr_ls += r * (n - 1)
            tr_s2 += np.sum(G[t] + G[n - 1 - t] - 1.0)
            tr_ls2 += r * np.sum(G[t[:-1]] + G[n - 2 - t[:-1]])
        UW = UU @ W
        e_n = tr_ls + np.sum(LUU * W)
        e_d = tr_s + np.trace(UW)
        # tr K² = tr Σ² + 2 tr(Uᵀ Σ U W) + tr((UᵀU W)²); tr L K² likewise with L on one side
        var_d = 2.0 * (tr_s2 + 2.0 * np.sum(USU * W) + np.sum(UW * UW.T))
        cov = 2.0 * (tr_ls2 + 2.0 * np.sum(LSU * W) + np.trace(LUU @ W @ UW))
        return e_n / e_d - cov / e_d ** 2 + e_n * var_d / e_d ** 3

    eye, zero = np.eye(m), np.zeros((m, m))
    LP = lag(P)
    PLP = P.T @ LP
    g_nodes = np.array([g_at(r) for r in nodes])
    g = np.maximum.accumulate(PchipInterpolator(nodes, g_nodes)(grid))

    def invert(r):
        return np.interp(np.asarray(r, dtype=np.float64), g, grid)

    invert.g = g
    invert.grid = grid
    return invert


def _choose_decimation(T, n_cand_needed, min_shift):
    """Largest divisor d of T with enough admissible lags that are multiples of d."""
    best = 1
    for d in range(1, T + 1):
        if T % d:
            continue
        L = T // d
        n_ok = sum(1 for j in range(L) if min_shift <= d * j <= T - min_shift)
        if n_ok >= n_cand_needed:
            best = d
    return best


def shift_null(X, Y, runs=None, n_shifts=1000, random_state=0, *, min_shift=None,
               chunk_size=32, return_null=False, n_jobs=-1, backend="numpy", device=None,
               nuisance=None, exact_nuisance=True, pooled=True, intercepts=True, dof_loss=0, progress=False,
               desc="shift null", seam_correction=True):
    """Circular-shift null of the atom time courses for the OLS encoding model.

    **What is shifted.** The atoms are first centred within each run (this is what the
    per-run intercepts do to them: Frisch–Waugh–Lovell), giving ``Xc``. The null
    shifts all atoms *jointly* and *circularly over the concatenated timeline*:
    ``Xc_s = numpy.roll(Xc, s, axis=0)``, and refits ``Y_c`` (Y centred within runs) on
    ``Xc_s`` by least squares. A joint circular shift is a permutation of the rows, so
    ``Xc_sᵀ Xc_s = Xcᵀ Xc`` for every ``s``: all null betas come from the circular
    cross-correlations ``(Xc G⁻¹)_sᵀ Y_c``, computed for all lags at once with FFTs (no
    GEMM per shift). The observed statistics (``s = 0``) are exactly those of
    ``VoxelwiseEncoder(method="ols")``. Shifting over the concatenation (rather than
    within each run) keeps ``DᵀD`` exactly invariant and allows more distinct shifts
    than the shortest run; the price is that a shifted design is only approximately
    centred within runs (its run means are not re-removed, which keeps the refit exact
    as a regression of ``Y_c`` on ``Xc_s``). The residual degrees of freedom are those
    of the observed model (``T - K - n_runs``) for every shift.

    **Which shifts.** Lags ``s`` with ``min_shift <= s <= T - min_shift`` (so the
    shifted design is far from the original; default ``min_shift = max(20, T // 20)``
    TRs, well beyond the HRF). When fewer than ``n_shifts`` lags are admissible, all of
    them are used (logged as a warning; ``n_shifts_requested`` keeps the request). For speed the candidate lags are the multiples of the
    largest divisor ``d`` of ``T`` that still leaves at least ``n_shifts`` candidates
    (the FFT then has length ``T / d``); the null uses ``n_shifts`` *consecutive*
    candidates starting at a position drawn with ``numpy.random.default_rng(random_state)``
    (distinct shifts, reproducible from the seed; e.g. T = 3600, 1000 shifts: every 3rd
    lag, 1000 of the ~1130 admissible ones).

    Parameters
    ----------
    X : array-like of shape (n_timepoints, n_atoms)
    Y : array-like of shape (n_timepoints, n_grayordinates)
        Valid grayordinates only (no NaN).
    runs : array-like of int, shape (n_timepoints,), default=None
    n_shifts : int, default=1000
    random_state : int or numpy Generator, default=0
    min_shift : int, default=None
    chunk_size : int, default=32
        Grayordinates per FFT chunk and thread; memory per thread ≈
        ``(12 × T/d + 8 × n_shifts) × n_atoms × chunk_size`` bytes. Small chunks stay in
        the CPU caches, which matters more than BLAS efficiency here.
    return_null : bool, default=False
        Also return all null betas (n_shifts, n_atoms, n_grayordinates) — tests only.
    n_jobs : int, default=-1
        Threads over chunks (``-1`` → all cores); BLAS is limited to one thread inside.
    backend : {"numpy", "torch"}, default="numpy"
        ``"torch"`` runs the FFTs, the products and the counting on ``device`` (module
        ``vlmbrain.backends.torch_encoding``); use a larger ``chunk_size`` there (e.g. 1024).
    device : str, default=None
        Torch device (``None`` → CUDA when available).
    nuisance : ndarray of shape (n_timepoints, n_columns), default=None
        Nuisance regressors besides the run intercepts (a drift basis and confounds, each
        column nonzero within one run). They are projected out of ``X`` and ``Y`` (with the
        run intercepts), count against the residual degrees of freedom, and stay in place
        while the atoms are shifted.
    intercepts : bool, default=True
        Model one intercept per run. ``False`` (with ``nuisance``): the nuisance columns are
        the whole nuisance model (e.g. the prewhitened run intercepts of an AR(1) fit).
    dof_loss : int, default=0
        Further columns already projected out of ``X`` and ``Y`` by the caller, subtracted
        from the residual degrees of freedom.
    exact_nuisance : bool, default=True
        Refit every shifted design *together with* the fixed nuisance (run intercepts and
        ``nuisance``): a shifted atom is no longer orthogonal to the nuisance, and fitting it
        alone would shrink the null R² and t a little (a liberal test). Done exactly by a
        rank-``n_nuisance`` update of every shift's Gram matrix (Woodbury). ``False`` is the
        earlier null (shifted run-centred atoms refitted alone).
    pooled : bool, default=True
        Also accumulate the pooled standardised nulls behind :attr:`ShiftNullResult.p_t_pooled`
        (one draw per block of consecutive shifts, about 25 per grayordinate; :mod:`vlmbrain.encoding.tails`).
    seam_correction : bool, default=True
        With ``pooled``: every standardised statistic (observed and pooled null draws) is
        divided, besides its shifts' spread, by the ratio of its expected null second moment to
        that of the shifts it is standardised by, under AR(1) noise with the grayordinate's
        lag-1 autocorrelation (within runs) — the run boundaries of a shifted design no longer
        fall on the data's, which makes the shifts' null a little narrower than the observed
        statistic's under the null in short runs of smooth noise (:func:`_seam_lag_products`).
    progress : bool, default=False
        A progress bar (tqdm, with ETA, on stderr) over the grayordinate chunks, each of which
        runs every shift.
    desc : str, default="shift null"
        The bar's label.

    Returns
    -------
    ShiftNullResult
        ``p_beta`` (n_atoms, n_grayordinates), ``p_r2`` (n_grayordinates,),
        ``null_max_z`` (n_shifts, n_atoms), ``null_max_r2`` (n_shifts,) for
        :func:`vlmbrain.stats.fwer_maxstat`; use :func:`vlmbrain.stats.fdr_bh` on the p's.
    """
    X, Y, _ = _check_xy(X, Y, np.dtype(np.float32))
    T, K = X.shape
    V = Y.shape[1]
    run_lab, bounds = check_runs(runs, T)
    R = len(bounds)
    if min_shift is None:
        min_shift = max(20, T // 20)
    min_shift = int(min_shift)
    n_adm = max(0, T - 2 * min_shift + 1)
    if not isinstance(n_shifts, (int, np.integer)) or n_shifts < 1:
        raise ConfigError(f"shift_null: n_shifts={n_shifts!r} must be a positive int.")
    n_req = int(n_shifts)
    if n_adm < 2:
        raise DimensionError(f"shift_null: {T} timepoints leave no circular shift of at least "
                             f"{min_shift} TRs; use the parametric test (n_shifts=0).")
    if n_shifts > n_adm:
        logger.warning("shift_null: %d shifts asked for, but only %d distinct shifts lie in "
                       "[%d, %d] TRs for %d timepoints: using all %d", n_shifts, n_adm, min_shift,
                       T - min_shift, T, n_adm)
        n_shifts = n_adm
    Nb = _nuisance_basis(bounds, nuisance, T, intercepts)
    df = T - K - Nb.shape[1] - int(dof_loss)
    if df < 1:
        raise DimensionError(f"{T} timepoints leave no residual degrees of freedom for {K} atoms.")
    d = _choose_decimation(T, n_shifts, min_shift)
    L = T // d
    cand = np.array([j for j in range(L) if min_shift <= d * j <= T - min_shift])
    rng = np.random.default_rng(random_state)
    # n_shifts consecutive candidate lags from a random start (a contiguous block of the
    # FFT output, read without a gather)
    j0 = int(rng.integers(0, cand.size - n_shifts + 1))
    jsel = cand[j0:j0 + n_shifts]
    js = slice(int(jsel[0]), int(jsel[-1]) + 1)
    shifts = jsel * d
    # design: run-centred atoms, orthonormalised  Q = Xc L^{-T}, beta = L^{-T} Q'Y
    if intercepts:
        design = Design(X, bounds)
        Xc = np.concatenate(design.Xc, axis=0)
    else:
        Xc = X
    if nuisance is not None:
        Xc = Xc - Nb @ (Nb.T @ Xc)
    G = Xc.T @ Xc
    try:
        chol = np.linalg.cholesky(G)
    except np.linalg.LinAlgError as err:
        raise DimensionError("shift_null: the run-centred atoms are collinear (X'X singular).") from err
    Linv = np.linalg.inv(chol)
    Q = Xc @ Linv.T                       # (T, K), orthonormal columns
    ginv_diag = np.sum(Linv * Linv, axis=0)   # diag(G^-1)
    # polyphase FFT of Q: Qp[p] = Q[p::d] -> (d, L, K); Mz maps Q'y/sigma to z = beta / se
    Qp = Q.reshape(L, d, K).transpose(1, 0, 2)
    Qh = np.conj(sfft.rfft(Qp, axis=1)).astype(np.complex64)              # (d, F, K)
    Qh = np.ascontiguousarray(Qh.transpose(0, 2, 1))[:, None, :, :]        # (d, 1, K, F)
    Qr, Qi = np.ascontiguousarray(Qh[:, 0].real), np.ascontiguousarray(Qh[:, 0].imag)   # (the kernel's planes)
    Mz = (Linv.T / np.sqrt(ginv_diag)[:, None]).astype(np.float32)
    S = n_shifts
    exact = _exact_nuisance(Q, Nb, Linv, ginv_diag, shifts) if exact_nuisance else None
    MzT = np.ascontiguousarray(Mz.T)
    cnt_z = np.zeros((K, V), np.int32)
    cnt_r = np.zeros(V, np.int32)
    beta_obs = np.empty((K, V), np.float32)
    t_obs = np.empty((K, V), np.float32)
    r2_obs = np.empty(V, np.float32)
    beta_null = np.empty((S, K, V), np.float32) if return_null else None
    z2 = np.full((K, V), np.nan, np.float32)        # null moments
    r2m = np.full(V, np.nan, np.float32)
    r2v = np.full(V, np.nan, np.float32)
    sqg = np.sqrt(ginv_diag)
    # pooled standardised null: blocks of g consecutive shifts; one draw per block (its
    # centre), standardised by the shifts outside a window of min_shift around it
    g = max(1, S // POOL_DRAWS)
    nb = S // g
    h = max(0, -(-min_shift // d) - 1)                 # candidate steps closer than min_shift
    hb = min(-(-h // g), max(0, (nb - max(5, nb // 4)) // 2))
    # slabs of whole pooling blocks, at most 255 shifts (byte counts) and ~1 MB of float32 t
    slab = max(1, min(255, SLAB_BYTES // (4 * K * max(1, min(int(chunk_size), V)))))
    slab = slab // g * g if g <= slab else slab
    seam = None
    seam_t = seam_r2 = None
    if pooled and seam_correction:
        # the exact refit's directions at lag 0 and at the pooled blocks' centres
        with threadpool_limits(limits=1):
            seam = SeamOperator(_seam_lag_products(Xc, Nb, bounds, np.r_[0, shifts[g // 2: nb * g: g]]), hb)
            rho_inverse = _lag1_bias_inverse(bounds, Nb)
        seam_t = np.full((K, V), np.nan)
        seam_r2 = np.full(V, np.nan)

    def pool_chunk(bz, cz_abs, zrem, br, cr, rrem, kz=1.0, kr=1.0):
        """Standardised draws of one chunk (t per atom, R²). Arrays are (block, column, atom):
        block sums of t², |t| at the block centres, the sum of t² over the shifts after the
        last block, the seam factors (block, atom, column) or 1; then the same for R² without
        the atom axis. Returns the draws (block, atom, column) for :class:`PooledNull`."""
        tot = bz.sum(0) + zrem
        with np.errstate(invalid="ignore", divide="ignore"):
            spread = atom_mean_spread(leave_window_out(bz, tot, S, g, hb), axis=2)   # (nb, c, 1)
            if not np.isscalar(kz):
                spread = spread * kz.transpose(0, 2, 1)
            wz = np.divide(cz_abs, np.sqrt(spread, out=spread), dtype=np.float32)
            rt = br.sum(0) + rrem
            wr = (cr / (leave_window_out(br, rt, S, g, hb) * kr)).astype(np.float32)
        return wz.transpose(0, 2, 1), wr[:, None, :]

    def one_chunk(start):
        stop = min(V, start + cs)
        sl = slice(start, stop)
        Yk = Y[:, sl]
        c = stop - start
        if nuisance is None:
            Ycen = np.empty((T, c), np.float64)
            for a, b in bounds:
                Ycen[a:b] = Yk[a:b] - Yk[a:b].mean(axis=0, dtype=np.float64)
        else:
            Ycen = Yk.astype(np.float64)
            Ycen -= Nb @ (Nb.T @ Ycen)
        yy = np.einsum("tc,tc->c", Ycen, Ycen)
        if not np.all(np.isfinite(yy)):
            _check_y_finite(Yk, start)
        # observed statistics (float64)
        P0 = Q.T @ Ycen
        b0 = Linv.T @ P0
        ess0 = np.einsum("kc,kc->c", P0, P0)
        sigma = np.sqrt(np.maximum(yy - ess0, 0.0) / df)
        with np.errstate(invalid="ignore", divide="ignore"):
            t0 = b0 / (sqg[:, None] * sigma)
            r20 = ess0 / yy
            inv_sigma = np.where(sigma > 0, 1.0 / sigma, 0.0)
        beta_obs[:, sl], t_obs[:, sl], r2_obs[sl] = b0, t0, r20
        # null: every lag j*d at once via the polyphase FFT of Y / sigma
        Ys = (Ycen * inv_sigma).astype(np.float32)
        kz = kr = 1.0
        if seam is not None:
            # (the lag-1 autocorrelation is scale-free: from the float32 Y / sigma, half the bytes)
            rho = rho_inverse(_lag1_autocorrelation(Ys, bounds))
            k_obs, k_null = seam.factors(rho)
            seam_t[:, sl], seam_r2[sl] = k_obs[:K], k_obs[K]
            kz, kr = k_null[:, :K], k_null[:, K]
        t0a = np.abs(t0).astype(np.float32).T                                   # (c, K)
        fac = (sigma**2 / yy).astype(np.float32)
        r20f = r20.astype(np.float32)
        if tb is not None:
            o = tb.null_chunk(Ys, t0a, fac, r20f, df=df, block=g, n_blocks=nb)
            cnt_z[:, sl] = o["count_z"].T
            cnt_r[sl] = o["count_r2"]
            z2[:, sl] = o["z_var"].T
            r2m[sl] = o["r2_mean"]
            r2v[sl] = o["r2_var"]
            pools = None
            if pooled:
                pools = pool_chunk(o["z_blocks"].transpose(2, 0, 1), o["z_centres"].transpose(2, 0, 1),
                                   o["z_rest"], o["r2_blocks"].T, o["r2_centres"].T, o["r2_rest"], kz, kr)
            return o["max_z"], o["max_r2"], pools
        Yh = sfft.rfft(Ys.reshape(L, d, c), axis=0).transpose(1, 2, 0)        # (d, c, F)
        if kernel:
            Yr, Yi = np.ascontiguousarray(Yh.real), np.ascontiguousarray(Yh.imag)
        else:
            Yh = np.ascontiguousarray(Yh)[:, :, None, :]                       # (d, c, 1, F)
        # cross-spectra and their inverse FFT two columns at a time, in the core's cache
        # (H, 2 x K x F complex64, ~0.6 MB at T = 3,600): the whole chunk's H is ten times that
        # and every product and sum over it went to memory
        P = np.empty((S, c, K), np.float32)        # the chunk's cross-products, (shift, column, atom)
        H = np.empty((min(FFT_BLOCK, c), K, Qh.shape[-1]), np.complex64)
        Hv = H.view(np.float32).reshape(H.shape + (2,))
        tmp = None if kernel else np.empty_like(H)
        for c0 in range(0, c, FFT_BLOCK):
            n = min(FFT_BLOCK, c - c0)
            h = H[:n]
            if kernel:
                _kernels.cross_spectra(Yr, Yi, Qr, Qi, c0, Hv[:n])
            else:
                t = tmp[:n]
                np.multiply(Yh[0, c0:c0 + n], Qh[0], out=h)
                for p in range(1, d):
                    np.multiply(Yh[p, c0:c0 + n], Qh[p], out=t)
                    h += t
            # transposed into place while the block is in cache
            P[:, c0:c0 + n, :] = sfft.irfft(h, n=L, axis=-1, overwrite_x=True)[:, :, js].transpose(2, 0, 1)
        del H, tmp
        # every array below is (shift, column, atom): the products with the atom maps are GEMMs
        # over whole rows (one K x K map per shift for the refit with the nuisance), the maxima
        # over columns and the block sums over shifts reduce outer axes, and the pooled null's
        # draws are whole rows. The shifts are processed in slabs of whole pooling blocks that
        # stay in the core's cache from the GEMM to the counts.
        ess = np.empty((S, c), np.float32)
        mz = np.empty((S, K), np.float32)
        cz = np.zeros((c, K), np.int32)
        bz = np.zeros((nb + 1, c, K))                  # block sums of t_s², then the rest
        cen_rows = []
        czc = np.empty((nb, c, K), np.float32)         # |t_s| at the block centres
        if kernel:
            t0c = np.ascontiguousarray(t0a)
        ge = np.empty((slab, c, K), np.bool_)
        for s0 in range(0, S, slab):
            n = min(slab, S - s0)
            Ps = P[s0:s0 + n]
            es = np.einsum("sck,sck->sc", Ps, Ps)                               # sigma units
            if exact is None:
                Zs = (Ps.reshape(n * c, K) @ MzT).reshape(n, c, K)
            else:
                # the refit with the nuisance in place: the shift's own map (D folded in) and
                # the extra explained sum of squares |E_s P_s|² (_exact_nuisance)
                Zs = np.matmul(Ps, exact["zmapT"][s0:s0 + n])
                Ex = np.matmul(Ps, exact["emapT"][s0:s0 + n])
                es += np.einsum("scr,scr->sc", Ex, Ex)
            ess[s0:s0 + n] = es
            if return_null:
                se = (sqg[None, :] * sigma[:, None]).astype(np.float32)        # (c, K)
                zb = Zs if exact is None else Zs / exact["D"][s0:s0 + n, None, :]
                beta_null[s0:s0 + n, :, sl] = (zb * se[None]).transpose(0, 2, 1)
            # studentize: every shift gets its own residual variance, t_s = z_s sigma / sigma_s
            fs = _studentize(es.T, fac, df).T
            if kernel:
                # all the passes below in one, compiled (vlmbrain.encoding._kernels)
                _kernels.slab_stats(Zs, np.ascontiguousarray(fs), t0c, blocks[s0:s0 + n],
                                    centres[s0:s0 + n], bz, cz, mz[s0:s0 + n], czc)
                continue
            Zs *= fs[:, :, None]
            # block sums of t_s² (float32 within a block's part of the slab, float64 across)
            for a in [s0, *range((s0 // g + 1) * g, s0 + n, g)]:
                blk = min(a // g, nb)
                e = s0 + n if blk == nb else min(s0 + n, (blk + 1) * g)
                Zb = Zs[a - s0:e - s0]
                bz[blk] += np.einsum("sck,sck->ck", Zb, Zb)
                if blk < nb and pooled and a <= blk * g + g // 2 < e:
                    cen_rows.append((blk, blk * g + g // 2 - s0))
            np.abs(Zs, out=Zs)
            # counts of |t_s| >= |t_obs|: byte sums of the comparisons (slab < 256)
            np.greater_equal(Zs, t0a[None], out=ge[:n])
            cz += ge[:n].view(np.uint8).sum(axis=0, dtype=np.uint8)
            mz[s0:s0 + n] = Zs.max(axis=1)
            for blk, row in cen_rows:
                czc[blk] = Zs[row]
            cen_rows.clear()
        del P, ge
        zrem = bz[nb]
        bz = bz[:nb]
        z2[:, sl] = ((bz.sum(0) + zrem) / S).T
        mz = mz.T                                                               # (K, S)
        r2n = ess * fac[None, :]                                                # (S, c)
        r2m[sl] = r2n.mean(axis=0)
        r2v[sl] = r2n.var(axis=0)
        cr = np.count_nonzero(r2n >= r20f[None, :], axis=0)
        cnt_z[:, sl] = cz.T
        cnt_r[sl] = cr
        pools = None
        if pooled:
            r64 = r2n.astype(np.float64)
            br = r64[:nb * g].reshape(nb, g, c).sum(1)
            rrem = r64[nb * g:].sum(0)
            pools = pool_chunk(bz, czc, zrem, br, r64[g // 2: nb * g: g], rrem, kz, kr)
        return mz, r2n.max(axis=1), pools

    cs = int(chunk_size)
    tb = None
    # with numba: per shift its pooling block (the rest after the last: nb) and, at a block's
    # centre, the block (else -1), for the compiled slab pass
    kernel = backend == "numpy" and _kernels.available()
    blocks = np.minimum(np.arange(S) // g, nb).astype(np.intp)
    centres = np.full(S, -1, np.intp)
    if pooled:
        centres[g // 2: nb * g: g] = np.arange(nb)
    if backend != "numpy":
        if backend != "torch":
            raise ConfigError(f"shift_null: backend={backend!r}; use 'numpy' or 'torch'.")
        if return_null:
            raise ConfigError("shift_null: return_null=True needs backend='numpy'.")
        tb = _torch_module().TorchShiftNull(Qh, Mz, L, d, js, device=device, exact=exact)
        n_jobs = 1
    starts = list(range(0, V, cs))
    n_jobs = os.cpu_count() if n_jobs in (None, -1) else max(1, int(n_jobs))
    null_max_z = np.zeros((K, S), np.float32)
    null_max_r2 = np.zeros(S, np.float32)
    pool_t = PooledNull(K) if pooled else None
    pool_r = PooledNull(1, w_max=80.0, n_bins=8000) if pooled else None

    from tqdm.auto import tqdm

    def collect(results):
        buf = []

        def flush():
            if buf:
                pool_t.add(np.concatenate([b[0] for b in buf], axis=2))
                pool_r.add(np.concatenate([b[1] for b in buf], axis=2))
                buf.clear()

        for mz, mr, pools in tqdm(results, total=len(starts), desc=f"{desc} ({S} shifts)", unit="chunk",
                                  disable=not progress, leave=False, smoothing=0.1):
            np.maximum(null_max_z, mz, out=null_max_z)
            np.maximum(null_max_r2, mr, out=null_max_r2)
            if pools is not None:
                buf.append(pools)
                if sum(b[0].shape[2] for b in buf) >= 2048:
                    flush()
        flush()

    with threadpool_limits(limits=1):
        if n_jobs == 1:
            collect(map(one_chunk, starts))
        else:
            with ThreadPoolExecutor(max_workers=n_jobs) as pool:
                collect(pool.map(one_chunk, starts))
    logger.info("shift_null: %d shifts (multiples of %d TRs) for X %s, Y %s", S, d, X.shape, Y.shape)
    return ShiftNullResult(
        shifts=shifts, beta=beta_obs, tvalues=t_obs, r2=r2_obs,
        p_beta=permutation_pvalue(cnt_z, S), p_r2=permutation_pvalue(cnt_r, S),
        null_max_z=np.ascontiguousarray(null_max_z.T), null_max_r2=null_max_r2,
        dof=float(df), decimation=d, beta_null=beta_null,
        null_z_var=z2, null_r2_mean=r2m, null_r2_var=r2v,
        pooled_t=pool_t.tails() if pooled else None,
        pooled_r2=pool_r.tails()[0] if pooled else None,
        n_shifts_requested=n_req, min_shift=min_shift,
        pool_accumulators=(pool_t, pool_r) if pooled else None, seam_t=seam_t, seam_r2=seam_r2)
