"""Circular-shift nulls of the AR(1) and ridge models (docs/method.md §4.6).

The null of a test must be the null of the model that produced the statistic.

:func:`refit_shift_null` (used by :func:`vlmbrain.encoding.fit_and_infer` for ``ar1`` and
``ridge``): every shifted design is refitted by the method itself, tuning included — AR(1)
re-estimates its ρ per grayordinate from the shifted model's residuals and prewhitens, ridge
chooses its penalty per grayordinate again by its inner cross-validation. Held fixed, a
tuning parameter chosen on the observed data favours the observed alignment over every
shift (a liberal test: on null phantoms, AR(1) with ρ held fixed gave 6.4 % fit p < 0.05).
The statistics: AR(1) t (atom maps) and R² (fit); ridge coefficients over their own standard
errors (atom maps, :func:`_ridge_z`) and the leave-one-run-out prediction r (fit). The p-values are read like the OLS null's: pooled
standardised null with a generalised Pareto tail (:mod:`vlmbrain.encoding.tails`), or the
rank among shifts. The cost is one fit of the method per shift.

:func:`ar1_shift_null` is the fast alternative for AR(1) with ρ held fixed: data and atoms
prewhitened with each grayordinate's ρ, grouped by (binned) ρ, and the FFT shift null of
:func:`vlmbrain.encoding.shift_null` run on the whitened series with the whitened run
intercepts as the nuisance that stays in place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from vlmbrain.encoding._checks import check_runs
from vlmbrain.encoding.null import (SEAM_MAX_LAG, _ar1_powers, _choose_decimation, _lag1_autocorrelation, _lag1_bias_inverse,
                                    SeamOperator, _run_autocov, _seam_factors, shift_null)
from vlmbrain.encoding.tails import POOL_DRAWS, PooledNull, atom_mean_spread, leave_window_out
from vlmbrain.errors import ConfigError
from vlmbrain.stats import fwer_maxstat, permutation_pvalue

logger = logging.getLogger("vlmbrain")

__all__ = ["RefitNullResult", "ar1_shift_null", "refit_shift_null", "ridge_shift_null", "whiten_ar1"]


@dataclass
class RefitNullResult:
    """p-values of a refitted model's shift null (AR(1), ridge), any kind.

    ``p`` holds ``{"pooled": (p_beta, p_r), "empirical": (p_beta, p_r)}`` ((K, V), (V,)).
    """

    shifts: np.ndarray
    p: dict
    null_max_z: np.ndarray           # (S, K) per shift, max over grayordinates of the atom statistic
    null_max_r: np.ndarray           # (S,)
    obs_z: np.ndarray                # (K, V) statistic compared with null_max_z
    obs_r: np.ndarray                # (V,)
    n_shifts_requested: int
    tails: dict = field(default_factory=dict)

    @property
    def n_shifts(self):
        return int(self.shifts.size)

    def pvalues(self, kind="pooled"):
        if kind in ("gaussian", "calibrated"):
            raise ConfigError(f"null_pvalues {kind!r} exists for the OLS shift null only; use 'pooled' or 'empirical'")
        return self.p[kind]

    def fwer_t(self, alpha=0.05):
        return fwer_maxstat(self.obs_z, self.null_max_z, alpha=alpha)

    def fwer_r2(self, alpha=0.05):
        return fwer_maxstat(self.obs_r, self.null_max_r, alpha=alpha)

    def describe(self):
        return self.tails


def whiten_ar1(A, rho, starts):
    """nilearn's AR(1) prewhitening: ``a_t − ρ a_{t−1}``, the first sample of every segment
    (``starts``) unchanged. ``rho`` is a scalar or one value per column."""
    A = np.asarray(A, dtype=np.float64)
    out = A.copy()
    out[1:] -= np.asarray(rho)[None] * A[:-1] if np.ndim(rho) else rho * A[:-1]
    out[starts] = A[starts]
    return out


def _unwhiten_ar1_transpose(U, rho, starts):
    """``Wᵀ U`` for the prewhitening ``W`` of :func:`whiten_ar1`: ``u_t − ρ u_{t+1}``, except
    before a segment start."""
    out = U.copy()
    out[:-1] -= rho * U[1:]
    for s in starts:
        if s > 0:
            out[s - 1] += rho * U[s]
    return out


def _run_crosscov(A, B, bounds, n_lag):
    """``Σ_{t, t+τ in one run} a(t) b(t+τ) + b(t) a(t+τ)`` for τ = 1 … n_lag − 1 and
    ``Σ_t a(t) b(t)`` at τ = 0 of every column pair of ``A`` and ``B`` (T, m) → (m, n_lag): the
    lag products of the bilinear form ``aᵀ Σ b`` (conventions of
    :func:`vlmbrain.encoding.null._run_autocov`)."""
    import scipy.fft as sfft

    out = np.zeros((A.shape[1], n_lag))
    for a, b in bounds:
        n = sfft.next_fast_len(b - a + n_lag, real=True)
        fa = sfft.rfft(A[a:b].astype(np.float32), n=n, axis=0)
        fb = sfft.rfft(B[a:b].astype(np.float32), n=n, axis=0)
        cc = sfft.irfft(np.conj(fa) * fb, n=n, axis=0)      # cc[τ] = Σ a(t) b(t+τ), cc[n−τ] = Σ a(t+τ) b(t)
        m = min(n_lag, b - a)
        out[:, :m] += cc[:m].T
        out[:, 1:m] += cc[n - np.arange(1, m)].T
    return out


def _ar1_seam_lag_products(Xc, Nb, bounds, lags, rho, starts, max_lag=SEAM_MAX_LAG, max_columns=4096):
    """Lag products of the AR(1) GLM's null directions, prewhitened with ``rho``, at the given
    lags (the AR(1) counterpart of :func:`vlmbrain.encoding.null._seam_lag_products`).

    The AR(1) fit of a design ``Z = [X_s, run dummies]`` is linear in the data: its atom
    coefficients are ``β = Aᵀ y`` with ``A = Wᵀ Z_w (Z_wᵀ Z_w)⁻¹`` (atom columns), ``W`` the
    prewhitening and ``Z_w = W Z``. Under noise of autocovariance Σ, projected off the nuisance
    ``Nb`` as the data are, the t's numerator has second moment ``a_kᵀ Σ a_k / g_kk``
    (``a_k`` projected off ``Nb``, ``g_kk`` the whitened model's ``(Z_wᵀ Z_w)⁻¹``), and the
    in-sample R² (``2 βᵀ X_sᵀ y − βᵀ X_sᵀ X_s β`` over the shift-invariant ``yᵀy``) has mean
    ``2 tr(X_sᵀ Σ A) − tr(X_sᵀ X_s Aᵀ Σ A)``. Rows ``:K`` hold the atoms' lag products, row
    ``K`` the R²'s, for :func:`vlmbrain.encoding.null._seam_factors`. The lags are batched
    into FFTs of at most ``max_columns`` columns.
    """
    Xc = np.asarray(Xc, dtype=np.float64)
    T, K = Xc.shape
    n_lag = int(min(max_lag, T // 4)) + 1
    D = np.zeros((T, len(bounds)))
    for r, (a, b) in enumerate(bounds):
        D[a:b, r] = 1.0
    lags = np.asarray(lags)
    out = np.empty((lags.size, K + 1, n_lag))
    step = max(1, max_columns // (3 * K))
    for i0 in range(0, lags.size, step):
        auto, left, right = [], [], []
        for s in lags[i0:i0 + step]:
            Xs = np.roll(Xc, int(s), axis=0)
            Xs -= Nb @ (Nb.T @ Xs)
            Zw = whiten_ar1(np.concatenate([Xs, D], axis=1), rho, starts)
            Gi = np.linalg.inv(Zw.T @ Zw)
            A = _unwhiten_ar1_transpose(Zw @ Gi[:, :K], rho, starts)
            A -= Nb @ (Nb.T @ A)
            auto += [A / np.sqrt(np.diag(Gi)[:K]), A @ np.linalg.cholesky(Xs.T @ Xs)]
            left.append(Xs)
            right.append(A)
        n = len(left)
        ac = _run_autocov(np.concatenate(auto, axis=1), bounds, n_lag).reshape(n, 2, K, n_lag)
        cc = _run_crosscov(np.concatenate(left, axis=1), np.concatenate(right, axis=1), bounds,
                           n_lag).reshape(n, K, n_lag)
        out[i0:i0 + n, :K] = ac[:, 0]
        out[i0:i0 + n, K] = 2.0 * cc.sum(1) - ac[:, 1].sum(1)
    return out


def ar1_shift_null(X, Y, runs, rho, *, n_shifts=1000, random_state=0, scope="concat", dof_loss=0,
                   chunk_size=512, backend="numpy", pooled=True, progress=False):
    """Shift null of the AR(1) GLM (``X``, ``Y`` with drift and confounds already projected
    out; ``rho`` (V,) the fitted model's binned AR(1) coefficients) → :class:`RefitNullResult`."""
    X = np.asarray(X, dtype=np.float64)
    T, K = X.shape
    V = Y.shape[1]
    _, bounds = check_runs(runs, T)
    starts = [0] if scope == "concat" else [a for a, _ in bounds]
    D = np.zeros((T, len(bounds)))
    for r, (a, b) in enumerate(bounds):
        D[a:b, r] = 1.0
    rho = np.asarray(rho, dtype=np.float64)
    values = np.unique(rho)
    p_emp = np.empty((K, V))
    p_r_emp = np.empty(V)
    w_t = np.empty((K, V))
    w_r = np.empty(V)
    t_obs = np.empty((K, V))
    r2_obs = np.empty(V)
    pool_t = pool_r = None
    max_z = max_r = None
    shifts = None
    n_req = n_shifts
    for val in values:
        cols = np.flatnonzero(rho == val)
        Xw = whiten_ar1(X, val, starts)
        Dw = whiten_ar1(D, val, starts)
        Yw = whiten_ar1(Y[:, cols], val, starts).astype(np.float32)
        res = shift_null(Xw, Yw, runs=None, n_shifts=n_shifts, random_state=random_state, nuisance=Dw,
                         intercepts=False, dof_loss=dof_loss, chunk_size=min(chunk_size, 512), backend=backend,
                         pooled=pooled, progress=progress, desc=f"AR(1) shift null, rho={val:.2f}",
                         seam_correction=False)    # (its observed statistics below are scaled without it)
        shifts, n_req = res.shifts, res.n_shifts_requested
        p_emp[:, cols], p_r_emp[cols] = res.p_beta, res.p_r2
        t_obs[:, cols], r2_obs[cols] = res.tvalues, res.r2
        with np.errstate(invalid="ignore", divide="ignore"):
            w_t[:, cols] = np.abs(res.tvalues) / np.sqrt(res.null_z_var)
            w_r[cols] = res.r2 / res.null_r2_mean
        max_z = res.null_max_z if max_z is None else np.maximum(max_z, res.null_max_z)
        max_r = res.null_max_r2 if max_r is None else np.maximum(max_r, res.null_max_r2)
        if pooled:
            pt, pr = res.pool_accumulators
            if pool_t is None:
                pool_t, pool_r = pt, pr
            else:
                pool_t.merge(pt)
                pool_r.merge(pr)
    p = {"empirical": (p_emp, p_r_emp)}
    tails = {}
    if pooled:
        tt, tr_ = pool_t.tails(), pool_r.tails()[0]
        p["pooled"] = (np.vstack([tail.sf(w_t[k]) for k, tail in enumerate(tt)]), tr_.sf(w_r))
        tails = {"atoms": [t.describe() for t in tt], "fit": tr_.describe()}
    logger.info("ar1 shift null: %d shifts, %d AR(1) coefficient groups", shifts.size, values.size)
    return RefitNullResult(shifts=shifts, p=p, null_max_z=max_z, null_max_r=max_r, obs_z=np.abs(t_obs),
                           obs_r=r2_obs, n_shifts_requested=n_req, tails=tails)


def _select_shifts(T, n_shifts, random_state, min_shift=None):
    """The OLS null's shifts (same rule, same seed)."""
    if min_shift is None:
        min_shift = max(20, T // 20)
    n_adm = max(0, T - 2 * min_shift + 1)
    n_req = int(n_shifts)
    if n_shifts > n_adm:
        logger.warning("ridge shift null: %d shifts asked for, but only %d distinct shifts lie in [%d, %d] TRs: "
                       "using all %d", n_shifts, n_adm, min_shift, T - min_shift, n_adm)
        n_shifts = n_adm
    d = _choose_decimation(T, n_shifts, min_shift)
    cand = np.array([j for j in range(T // d) if min_shift <= d * j <= T - min_shift])
    rng = np.random.default_rng(random_state)
    j0 = int(rng.integers(0, cand.size - n_shifts + 1))
    return cand[j0:j0 + n_shifts] * d, d, min_shift, n_req


def _ridge_seam_lag_products(Xc, Nb, bounds, lags, alpha, max_lag=SEAM_MAX_LAG):
    """Lag products of the ridge fit's atom directions with penalty ``alpha`` at the given lags
    (the ridge counterpart of :func:`vlmbrain.encoding.null._seam_lag_products`).

    The ridge coefficients of a design ``X_s`` (projected off the nuisance) are ``β = Aᵀ y`` with
    ``A = X_s (G_s + αI)⁻¹``; the atom statistic :func:`_ridge_z` divides ``β_k`` by its white-noise
    standard error ``σ |a_k|``. Under noise of autocovariance Σ the numerator's second moment in
    those units is ``a_kᵀ Σ a_k / |a_k|²``: rows ``:K`` hold the lag products of the unit
    directions ``a_k / |a_k|``. Row ``K`` (the fit's, leave-one-run-out r, whose factors come
    from :class:`RidgeFitSeam` instead) is a unit at lag 0 for every lag, so its factors are
    exactly 1.
    """
    Xc = np.asarray(Xc, dtype=np.float64)
    T, K = Xc.shape
    n_lag = int(min(max_lag, T // 4)) + 1
    lags = np.asarray(lags)
    dirs = []
    for s in lags:
        Xs = np.roll(Xc, int(s), axis=0)
        Xs -= Nb @ (Nb.T @ Xs)
        A = Xs @ np.linalg.inv(Xs.T @ Xs + float(alpha) * np.eye(K))
        dirs.append(A / np.sqrt(np.maximum(np.einsum("tk,tk->k", A, A), 1e-300))[None, :])
    ac = _run_autocov(np.concatenate(dirs, axis=1), bounds, n_lag).reshape(lags.size, K, n_lag)
    out = np.zeros((lags.size, K + 1, n_lag))
    out[:, :K] = ac
    out[:, K, 0] = 1.0
    return out


class RidgeFitSeam:
    """Seam factors of ridge's fit statistic, the leave-one-run-out r averaged over the folds.

    Fold ``f`` predicts run ``f`` from the others: ``r_f = cov_f / √(varp_f · yy_f)`` with
    ``cov_f = y_fᵀ X_f W_f X_{−f}ᵀ y_{−f}``, ``varp_f = |X_f W_f X_{−f}ᵀ y_{−f}|²``,
    ``yy_f = |y_f|²`` and ``W_f = (G_{−f} + αI)⁻¹`` (the design and the data projected off the
    nuisance, which is block-diagonal over runs, so ``X_fᵀ y_f = X_fᵀ e_f`` for the noise e).
    Under noise independent across runs with covariance Σ_r in run r, with
    ``M_r = X_rᵀ Σ_r X_r``:

        E[cov_f²] = Σ_{r≠f} tr(W_f M_f W_f M_r),   E[cov_f cov_g] = tr(W_f M_g W_g M_f)  (f ≠ g),
        E[varp_f] = Σ_{r≠f} tr(W_f G_f W_f M_r),   E[yy_f] = tr(Σ_f) − tr(N_fᵀ Σ_f N_f),

    and the null second moment of the fold mean is taken as ``Σ_{f,g} E[cov_f cov_g] /
    √(E[varp_f] E[yy_f] E[varp_g] E[yy_g]) / R²`` (ratios of expectations; the folds' r are
    strongly correlated — with two runs they measure nearly the same alignment — so the cross
    terms stay). With AR(1) noise ``Σ_{tu} = ρ^|t−u|`` every ``M_r = Σ_τ ρ^τ Λ_r(τ)`` is linear in
    the run's lag cross-products ``Λ_r(τ)`` of the design's columns, so each expectation is a
    quadratic (cov) or linear (varp, yy) form in the vector ``ρ^τ``: prepared per penalty α
    (:meth:`operator`) at the observed design (lag 0) and at the pooled blocks' centres, and
    evaluated per grayordinate. The factors are on r's own scale (square roots of the second-
    moment ratios), as the pooled null divides r itself.
    """

    def __init__(self, Xc, Nb, bounds, lags, max_lag=SEAM_MAX_LAG):
        Xc = np.asarray(Xc, dtype=np.float64)
        T, K = Xc.shape
        self.n_lag = n_lag = int(min(max_lag, T // 4)) + 1
        bounds = list(bounds)
        ii, jj = np.divmod(np.arange(K * K), K)
        lam = []
        for s in np.asarray(lags):
            Xs = np.roll(Xc, int(s), axis=0)
            Xs -= Nb @ (Nb.T @ Xs)
            # Λ_r(τ)[i, j]: lag-τ cross-products of columns i, j within run r (τ > 0 both ways)
            lam.append(np.stack([_run_crosscov(Xs[:, ii], Xs[:, jj], [ab], n_lag).T.reshape(n_lag, K, K)
                                 for ab in bounds]))
        self.lam = np.stack(lam).astype(np.float32)                          # (L, R, n_lag, K, K)
        # E[yy_f] = Σ_τ ρ^τ yy[f, τ]
        self.yy = np.zeros((len(bounds), n_lag))
        for f, (a, b) in enumerate(bounds):
            self.yy[f, 0] = b - a
            self.yy[f] -= _run_autocov(np.asarray(Nb, dtype=np.float64), [(a, b)], n_lag).sum(0)
        self._ops = {}

    def operator(self, alpha):
        """The quadratic and linear forms at penalty ``alpha`` (cached)."""
        key = float(alpha)
        if key in self._ops:
            return self._ops[key]
        L, R, n_lag, K, _ = self.lam.shape
        quad = np.zeros((L, R, R, n_lag, n_lag))
        lin = np.zeros((L, R, n_lag))
        eye = np.eye(K)
        for li in range(L):
            lam = self.lam[li].astype(np.float64)                            # (R, n_lag, K, K)
            G = lam[:, 0]
            W = [np.linalg.inv(G.sum(0) - G[f] + key * eye) for f in range(R)]
            # WL[f, r, τ] = W_f Λ_r(τ), flattened; WLt the transposes
            WL = np.stack([W[f][None, None] @ lam for f in range(R)])       # (R, R, n_lag, K, K)
            WLt = WL.transpose(0, 1, 2, 4, 3).reshape(R, R, n_lag, K * K)
            WL = WL.reshape(R, R, n_lag, K * K)
            lamf = lam.reshape(R, n_lag, K * K)
            for f in range(R):
                WGW = (W[f] @ G[f] @ W[f]).reshape(K * K)
                for r in range(R):
                    if r == f:
                        continue
                    # tr(W_f Λ_f(τ) W_f Λ_r(τ')), tr(W_f G_f W_f Λ_r(τ')) and, for g = r,
                    # tr(W_g Λ_f(τ) W_f Λ_g(τ')) (rows τ, columns τ')
                    quad[li, f, f] += WL[f, f] @ WLt[f, r].T
                    lin[li, f] += lamf[r] @ WGW
                    quad[li, f, r] = WL[r, f] @ WLt[f, r].T
        op = (quad.reshape(L * R * R * n_lag, n_lag), lin.reshape(L * R, n_lag))
        self._ops[key] = op
        return op

    def moments(self, alpha, rho):
        """``E[cov_f cov_g]`` (L, R, R, c), ``E[varp_f]`` (L, R, c) and ``E[yy_f]`` (R, c) at every
        prepared lag for penalty ``alpha`` and AR(1) noise of lag-1 autocorrelation ``rho``
        (c,) and unit variance (|ρ| capped as in :func:`vlmbrain.encoding.null._seam_factors`)."""
        quad, lin = self.operator(alpha)
        L, R = self.lam.shape[:2]
        n_lag = self.n_lag
        Rm = _ar1_powers(rho, n_lag)
        q = np.einsum("xtc,tc->xc", (quad @ Rm).reshape(L * R * R, n_lag, -1), Rm).reshape(L, R, R, -1)
        return q, (lin @ Rm).reshape(L, R, -1), self.yy @ Rm

    def factors(self, alpha, rho, hb):
        """``k_obs`` (c,) and ``k_null`` (nb, c) for penalty ``alpha`` and lag-1 autocorrelations
        ``rho`` (c,), on r's scale (see :func:`vlmbrain.encoding.null._seam_factors`)."""
        q, vp, yy = self.moments(alpha, rho)
        with np.errstate(invalid="ignore", divide="ignore"):
            d = 1.0 / np.sqrt(np.maximum(vp * yy[None], 1e-300))
            E = np.einsum("lfgc,lfc,lgc->lc", q, d, d)                       # (L, c), up to 1/R²
            cen = E[1:]
            nb = cen.shape[0]
            total = cen.sum(axis=0)
            k_obs = np.sqrt(E[0] / (total / nb))
            k_null = np.sqrt(cen / leave_window_out(cen, total, nb, 1, hb))
        return k_obs, k_null


def _gram_eig(X):
    """``(G, λ, U)`` of a design: its Gram ``XᵀX`` and that Gram's eigen-decomposition (λ ≥ 0)."""
    X = np.asarray(X, dtype=np.float64)
    G = X.T @ X
    lam, U = np.linalg.eigh(G)
    return G, np.clip(lam, 0.0, None), U


def _ridge_z(X, Y, coef, alphas, gram=None):
    """Ridge coefficients over their own standard errors (K, c): the atom statistic of the ridge null.

    For a design ``X`` (T, K, intercepts and nuisance already projected out, so ``G = XᵀX``) and
    a column's penalty α, ``β = (G + αI)⁻¹ Xᵀy`` has covariance ``σ² (G + αI)⁻¹ G (G + αI)⁻¹``
    under white noise; ``σ²`` is estimated from the residual sum of squares
    ``yᵀy − βᵀGβ − 2α βᵀβ`` (from the normal equations ``Xᵀy = (G + αI)β``). With orthogonal
    atoms ``β_k`` over the square root of that diagonal is ``x_kᵀy / √n`` whatever α, as in the
    OLS t, so a fit that picks a small α at one lag and a large one at the others no longer
    scales every atom's statistic of that grayordinate together (what made the raw coefficients
    liberal on null phantoms: benchmarks/RESULTS.md). The
    residual degrees of freedom are a constant factor, left out: the pooled null standardises
    the statistic by its own shifts. ``gram``: :func:`_gram_eig` of ``X`` when already computed
    (a design's is the same for every column chunk).
    """
    G, lam, U = _gram_eig(X) if gram is None else gram
    B = np.asarray(coef, dtype=np.float64)
    a = np.asarray(alphas, dtype=np.float64)
    Yd = np.asarray(Y, dtype=np.float64)
    yy = np.einsum("tc,tc->c", Yd, Yd)
    GB = G @ B
    rss = np.maximum(yy - np.einsum("kc,kc->c", B, GB) - 2.0 * a * np.einsum("kc,kc->c", B, B), 1e-12 * yy)
    # diag((G + αI)⁻¹ G (G + αI)⁻¹) for every column's α: Σ_j U_kj² λ_j / (λ_j + α)²
    w = lam[:, None] / (lam[:, None] + a[None, :]) ** 2                      # (K eigen, c)
    m = (U * U) @ w                                                          # (K, c)
    with np.errstate(invalid="ignore", divide="ignore"):
        return B / np.sqrt(rss[None, :] * m)


def ridge_shift_null(X, Y, runs, **kw):
    """Shift null of ridge (:func:`refit_shift_null` with ``method="ridge"``)."""
    return refit_shift_null(X, Y, runs, method="ridge", **kw)


def refit_shift_null(X, Y, runs, *, method="ridge", n_shifts=1000, random_state=0, nuisance=None,
                     chunk_size=None, pooled=True, params=None, progress=False, seam_correction=True):
    """Shift null of a method by refitting it on every shifted design → :class:`RefitNullResult`.

    Statistics: ridge — the coefficients over their standard errors (atom maps, :func:`_ridge_z`)
    and the leave-one-run-out prediction r
    (fit); AR(1) — the t-values and the in-sample R². ``X``, ``Y``: drift and confounds
    (``nuisance``) already projected out. Every shifted design is refitted exactly as the
    observed one — ridge chooses its penalty per grayordinate again by the same inner
    cross-validation, AR(1) estimates its ρ again from the shifted model's residuals — so that
    a tuning that favours the observed alignment favours every shift alike; the run intercepts
    and ``nuisance`` stay in place (the shifted atoms are projected off them again). ``params``:
    further encoder parameters (``alphas``, ``cv``, ``scoring``, ``ar1_bins``, ``ar1_scope``).
    ``progress``: a progress bar (tqdm, with ETA, on stderr) over the refits (chunks × shifts).

    ``seam_correction`` (pooled p-values): as in the OLS null
    (:func:`vlmbrain.encoding.shift_null`), every standardised statistic is also divided by the
    ratio of its expected null second moment to that of the shifts it is standardised by, here
    for the AR(1) fit's own directions — the design prewhitened with the grayordinate's fitted ρ
    (binned to 0.01), fitted with the run dummies, projected off the nuisance
    (:func:`_ar1_seam_lag_products`) — under AR(1) noise with the lag-1 autocorrelation of the
    grayordinate's nuisance-projected data within runs. The observed design's run boundaries
    are the data's; a shifted design's are not, and its prewhitened directions see less of the
    noise there (runs restart the noise, the concatenated prewhitening does not). Without it,
    2 × 150 TRs at ρ = 0.8 gave 7 % of the fit's p below 0.05. For ridge the atom maps are
    corrected with the ridge fit's own directions at the grayordinate's penalty
    (:func:`_ridge_seam_lag_products`), and its fit statistic (the leave-one-run-out r averaged
    over the folds) with that r's own null second moments (:class:`RidgeFitSeam`).
    """
    from tqdm.auto import tqdm

    from vlmbrain.encoding.estimator import VoxelwiseEncoder
    from vlmbrain.encoding.null import _nuisance_basis

    X = np.asarray(X, dtype=np.float64)
    T, K = X.shape
    V = Y.shape[1]
    lab, bounds = check_runs(runs, T)
    Nb = _nuisance_basis(bounds, nuisance, T)
    n_nuis = Nb.shape[1] - len(bounds)
    Xc = X - Nb @ (Nb.T @ X)
    shifts, d, min_shift, n_req = _select_shifts(T, n_shifts, random_state)
    S = shifts.size
    g = max(1, S // POOL_DRAWS)
    nb = S // g
    h = max(0, -(-min_shift // d) - 1)
    hb = min(-(-h // g), max(0, (nb - max(5, nb // 4)) // 2))
    params = dict(params or {})

    def fits(Xs, Yc, full=False, gram=None):
        """Atom statistic (K, c) and fit statistic (c,) of one design, tuned as observed (and
        the encoder, with ``full``); ``gram``: the design's :func:`_gram_eig` (ridge)."""
        if method == "ridge":
            enc = VoxelwiseEncoder(method="ridge", compute_cv=True, n_nuisance=n_nuis, **params).fit(
                Xs, Yc, runs=runs)
            out = _ridge_z(Xs, Yc, enc.coef_, enc.alphas_, gram), enc.cv_r_.astype(np.float64)
        else:
            enc = VoxelwiseEncoder(method=method, compute_cv=False, n_nuisance=n_nuis, **params).fit(
                Xs, Yc, runs=runs)
            out = enc.tvalues_.astype(np.float64), np.asarray(enc.r2_, np.float64)
        return out + (enc,) if full else out

    seam = None
    if pooled and seam_correction and method in ("ar1", "ridge"):
        # lag products of the fit's directions at lag 0 and the pooled blocks' centres, one
        # set per AR(1) prewhitening coefficient (binned to 0.01) or per ridge penalty of the
        # α grid, computed when first needed
        seam = {}
        seam_lags = np.r_[0, shifts[g // 2: nb * g: g]]
        seam_starts = [0] if params.get("ar1_scope", "concat") == "concat" else [a for a, _ in bounds]
        rho_inverse = _lag1_bias_inverse(bounds, Nb)
        fit_seam = RidgeFitSeam(Xc, Nb, bounds, seam_lags) if method == "ridge" else None

    def seam_chunk(enc, Yc):
        """Seam factors of one chunk: (K + 1, c) for the observed statistics, (nb, K + 1, c)
        for the pooled draws (rows: atoms, then the fit)."""
        c = Yc.shape[1]
        if method == "ar1":
            par = np.round(np.clip(np.asarray(enc.ar1_rho_, np.float64), -0.99, 0.99) * 100) / 100
        else:                                  # ridge: the column's penalty (from the α grid)
            par = np.asarray(enc.alphas_, np.float64)
        rho_n = rho_inverse(_lag1_autocorrelation(Yc, bounds))
        k_obs = np.empty((K + 1, c))
        k_null = np.empty((nb, K + 1, c))
        for val in np.unique(par):
            cols = np.flatnonzero(par == val)
            key = float(val)
            if key not in seam:
                seam[key] = SeamOperator(_ar1_seam_lag_products(Xc, Nb, bounds, seam_lags, key, seam_starts)
                                         if method == "ar1" else
                                         _ridge_seam_lag_products(Xc, Nb, bounds, seam_lags, key), hb)
            k_obs[:, cols], k_null[:, :, cols] = _seam_factors(seam[key], rho_n[cols], hb)
            if method == "ridge":
                # the fit's row: the leave-one-run-out r's own factors (RidgeFitSeam)
                k_obs[K, cols], k_null[:, K, cols] = fit_seam.factors(key, rho_n[cols], hb)
        return k_obs, k_null

    p_emp = np.empty((K, V))
    p_r_emp = np.empty(V)
    w_b = np.empty((K, V))
    w_r = np.empty(V)
    obs_b = np.empty((K, V))
    obs_r = np.empty(V)
    max_b = np.zeros((S, K))
    max_r = np.full(S, -np.inf)
    # the fit statistic of ridge (held-out r) is signed: one-sided, its pooled null keeps the sign
    pool_b = PooledNull(K)
    pool_r = PooledNull(1, w_min=-20.0, w_max=20.0, n_bins=8000) if method == "ridge" else PooledNull(1, 80.0, 8000)
    if chunk_size is None:
        chunk_size = int(np.clip(2e7 // (K * S), 64, 8192))
    designs = []
    for s_ in shifts:
        Xs = np.roll(Xc, s_, axis=0)
        designs.append(Xs - Nb @ (Nb.T @ Xs))
    # ridge: every design's Gram and its eigen-decomposition once, not once per column chunk
    grams = [_gram_eig(Xs) for Xs in designs] if method == "ridge" else [None] * S
    gram0 = _gram_eig(Xc) if method == "ridge" else None
    n_chunks = -(-V // chunk_size)
    bar = tqdm(total=n_chunks * S, desc=f"{method} shift null ({S} shifts)", unit="fit", disable=not progress,
               leave=False, smoothing=0.1)
    with threadpool_limits(limits=None), bar:
        for c0 in range(0, V, chunk_size):
            sl = slice(c0, min(V, c0 + chunk_size))
            Yc = np.asarray(Y[:, sl], dtype=np.float64)
            Yc -= Nb @ (Nb.T @ Yc)
            b0, r0, enc0 = fits(Xc, Yc, full=True, gram=gram0)
            c = b0.shape[1]
            kb, kr = 1.0, 1.0
            if seam is not None:
                k_obs, k_null = seam_chunk(enc0, Yc)
                kb, kr = k_null[:, :K], k_null[:, K]
            nb_ = np.empty((c, K, S))
            nr_ = np.empty((c, S))
            for i in range(S):
                bs, rs = fits(designs[i], Yc, gram=grams[i])
                nb_[:, :, i] = bs.T
                nr_[:, i] = rs
                bar.update(1)
            ab = np.abs(nb_)
            cnt_b = (ab >= np.abs(b0).T[:, :, None]).sum(2)
            cnt_r = (nr_ >= r0[:, None]).sum(1)
            p_emp[:, sl] = permutation_pvalue(cnt_b, S).T
            p_r_emp[sl] = permutation_pvalue(cnt_r, S)
            sq_b = nb_ ** 2
            sq_r = nr_ ** 2
            tot_b, tot_r = sq_b.sum(2), sq_r.sum(1)
            with np.errstate(invalid="ignore", divide="ignore"):
                rms_b, rms_r = np.sqrt(atom_mean_spread(tot_b / S, axis=1)), np.sqrt(tot_r / S)
                w_b[:, sl] = (np.abs(b0).T / rms_b).T
                w_r[sl] = r0 / rms_r
                obs_b[:, sl], obs_r[sl] = w_b[:, sl], w_r[sl]     # (the max-statistic null: uncorrected)
                if seam is not None:
                    w_b[:, sl] /= np.sqrt(k_obs[:K])
                    w_r[sl] /= k_obs[K]
                max_b = np.maximum(max_b, np.nanmax(ab / rms_b[:, :, None], axis=0).T)
                max_r = np.maximum(max_r, np.nanmax(nr_ / rms_r[:, None], axis=0))
                if pooled:
                    # (block, atom, column) layout of vlmbrain.encoding.tails
                    bsum = sq_b[:, :, :nb * g].reshape(c, K, nb, g).sum(-1).transpose(2, 1, 0)
                    rsum = sq_r[:, :nb * g].reshape(c, nb, g).sum(-1).T
                    cb = ab[:, :, g // 2: nb * g: g].transpose(2, 1, 0)
                    cr = nr_[:, g // 2: nb * g: g].T
                    pool_b.add(cb / np.sqrt(atom_mean_spread(leave_window_out(bsum, tot_b.T, S, g, hb), axis=1) * kb))
                    pool_r.add((cr / (np.sqrt(leave_window_out(rsum, tot_r, S, g, hb)) * kr))[:, None, :])
    p = {"empirical": (p_emp, p_r_emp)}
    tails = {}
    if pooled:
        tb, tr_ = pool_b.tails(), pool_r.tails()[0]
        p["pooled"] = (np.vstack([tail.sf(w_b[k]) for k, tail in enumerate(tb)]), tr_.sf(w_r))
        tails = {"atoms": [t.describe() for t in tb], "fit": tr_.describe()}
    logger.info("ridge shift null: %d shifts refitted for X %s, Y %s", S, X.shape, Y.shape)
    return RefitNullResult(shifts=shifts, p=p, null_max_z=max_b, null_max_r=max_r, obs_z=obs_b, obs_r=obs_r,
                           n_shifts_requested=n_req, tails=tails)
