"""Voxel-wise encoding: OLS / AR(1) GLM / ridge, leave-one-run-out CV, circular-shift nulls.

Everything here is built on **sufficient statistics per run**. For a column chunk of
``Y`` (n_timepoints, n_grayordinates) one pass computes, for every run ``r``, the
run-centred cross products ``Xc_rᵀ Y_r`` (n_atoms, chunk) with a float32 GEMM (the only
O(T·K·V) work) and the run-centred sums of squares of ``Y`` (float64 accumulation
for everything downstream). The per-run intercepts are handled exactly by centring
within runs (Frisch–Waugh–Lovell), and every fit that follows — the full OLS fit, the
leave-one-run-out folds, the AR(1) whitened refit, the ridge inner cross-validation —
is small (K × K) algebra on these statistics. Memory is bounded by ``chunk_size``.

Public API
----------
``VoxelwiseEncoder(method="ols" | "ar1" | "ridge").fit(X, Y, runs=runs)``
    ``coef_`` (K, V), ``tvalues_`` (K, V), ``intercepts_`` (n_runs, V),
    ``cv_r_`` (V,), ``cv_r2_`` (V,), ``alphas_`` (V,) (ridge), ``predict(X, runs)``.
``shift_null(X, Y, runs, n_shifts=1000, random_state=0)``
    circular-shift null of the atom time courses → :class:`ShiftNullResult`.
"""

from __future__ import annotations

import importlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import scipy.fft as sfft
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from threadpoolctl import ThreadpoolController, threadpool_limits

from vlmbrain.errors import ConfigError, DimensionError, MissingDependencyError
from vlmbrain.stats import fwer_maxstat, permutation_pvalue

logger = logging.getLogger("vlmbrain")

__all__ = ["VoxelwiseEncoder", "ShiftNullResult", "shift_null", "check_runs",
           "DEFAULT_RIDGE_ALPHAS"]

DEFAULT_RIDGE_ALPHAS = np.logspace(-2, 4, 7)
_METHODS = ("ols", "ar1", "ridge")


# ----------------------------------------------------------------------------- inputs
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


def _check_y_finite(Yc, start):
    if not np.all(np.isfinite(Yc)):
        bad = np.flatnonzero(~np.all(np.isfinite(Yc), axis=0)) + start
        raise DimensionError(
            f"Input y contains NaN or inf values in {bad.size} column(s) of this chunk (first: "
            f"{bad[:5].tolist()}); pass only valid grayordinates, e.g. Y[:, valid] with "
            "BrainData.valid, and write NaN for the others.")


def _resolve_backend(backend, device):
    if backend == "numpy":
        return None
    if backend == "torch":
        try:
            mod = importlib.import_module("vlmbrain.backends.torch_encoding")
        except ImportError as err:  # pragma: no cover - torch is a core dependency
            raise MissingDependencyError(
                "backend='torch' needs PyTorch: pip install torch") from err
        return mod.TorchStats(device=device)
    raise ConfigError(f"backend={backend!r} is not supported; use 'numpy' or 'torch'.")


# --------------------------------------------------------------------- chunk statistics
@dataclass
class _ChunkStats:
    """Per-run sufficient statistics for one column chunk (all float64)."""

    n: np.ndarray            # (R,)
    xbar: np.ndarray         # (R, K)
    G: np.ndarray            # (R, K, K) run-centred Gram
    C: np.ndarray            # (R, K, c) Xc_rᵀ Y_r
    ybar: np.ndarray         # (R, c)
    yy: np.ndarray           # (R, c) run-centred sum of squares
    # AR(1) only (z = [Xc_r, 1], y run-centred):
    Cp: np.ndarray | None = None    # (R, K+1, c) sum_t z_{t-1} y_t (within run)
    Cm: np.ndarray | None = None    # (R, K+1, c) sum_t z_t y_{t-1}
    yl: np.ndarray | None = None    # (R, c) sum_t y_t y_{t-1}
    yfirst: np.ndarray | None = None  # (R, c)
    ylast: np.ndarray | None = None   # (R, c)


def _numpy_raw_moments(Z, Yr, lag):
    """Raw moments of one run block: ``Zᵀ Y``, ``Σ y²`` (+ lag-1 terms). ``Z = [Xc_r, 1]``."""
    out = {"CZ": Z.T @ Yr, "ss": np.einsum("ij,ij->j", Yr, Yr)}
    if lag:
        out["P"] = Z[:-1].T @ Yr[1:]           # Σ z_{t-1} y_t
        out["M"] = Z[1:].T @ Yr[:-1]           # Σ z_t y_{t-1}
        out["yl"] = np.einsum("ij,ij->j", Yr[1:], Yr[:-1])
    return out


def _centred_moments(raw, Xc, Yr, lag):
    """Run-centred statistics from raw moments (float64); exact recomputation for columns
    whose mean is large compared with their spread (cancellation in float32)."""
    n, K = Xc.shape
    CZ = raw["CZ"].astype(np.float64)
    ybar = CZ[K] / n
    ss = raw["ss"].astype(np.float64)
    yy = ss - n * ybar * ybar
    d = dict(C=CZ[:K].astype(np.float32), ybar=ybar, yy=yy)
    if lag:
        y0 = Yr[0].astype(np.float64)
        yL = Yr[-1].astype(np.float64)
        head = np.append(-Xc[-1], n - 1.0)     # Σ_{t<n-1} z_t  (Σ xc = 0)
        tail = np.append(-Xc[0], n - 1.0)      # Σ_{t>=1} z_t
        d["Cp"] = (raw["P"] - np.outer(head, ybar)).astype(np.float32)
        d["Cm"] = (raw["M"] - np.outer(tail, ybar)).astype(np.float32)
        d["yl"] = raw["yl"].astype(np.float64) - ybar * (2 * CZ[K] - y0 - yL) + (n - 1) * ybar**2
        d["yfirst"] = y0 - ybar
        d["ylast"] = yL - ybar
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero((yy * 16.0 <= ss) & np.isfinite(ss))
    if bad.size:
        Yb = Yr[:, bad].astype(np.float64)
        mb = Yb.mean(axis=0)
        Yb -= mb
        d["ybar"][bad] = mb
        d["C"][:, bad] = Xc.T @ Yb
        d["yy"][bad] = np.einsum("ij,ij->j", Yb, Yb)
        if lag:
            Zb = np.concatenate([Xc, np.ones((n, 1))], axis=1)
            d["Cp"][:, bad] = Zb[:-1].T @ Yb[1:]
            d["Cm"][:, bad] = Zb[1:].T @ Yb[:-1]
            d["yl"][bad] = np.einsum("ij,ij->j", Yb[1:], Yb[:-1])
            d["yfirst"][bad] = Yb[0]
            d["ylast"][bad] = Yb[-1]
    return d


class _Design:
    """Run-centred design and its per-run Gram matrices (float64)."""

    def __init__(self, X, bounds):
        self.bounds = bounds
        self.n = np.array([b - a for a, b in bounds], dtype=np.float64)
        self.xbar = np.stack([X[a:b].mean(axis=0) for a, b in bounds])
        self.Xc = [X[a:b] - m for (a, b), m in zip(bounds, self.xbar)]
        self.G = np.stack([x.T @ x for x in self.Xc])
        self.K = X.shape[1]

    def all_stats(self, Y, lag, backend, col_block=32768):
        """Per-run statistics for every column of ``Y`` (row blocks read contiguously)."""
        R, V = len(self.bounds), Y.shape[1]
        K = self.K
        C = np.empty((R, K, V), np.float32)
        ybar = np.empty((R, V))
        yy = np.empty((R, V))
        if lag:
            Cp = np.empty((R, K + 1, V), np.float32)
            Cm = np.empty((R, K + 1, V), np.float32)
            yl, yf, ylast = np.empty((R, V)), np.empty((R, V)), np.empty((R, V))
        for r, (a, b) in enumerate(self.bounds):
            Z = np.empty((b - a, K + 1), Y.dtype)
            Z[:, :K] = self.Xc[r]
            Z[:, K] = 1.0
            for c0 in range(0, V, col_block):
                sl = slice(c0, min(V, c0 + col_block))
                Yr = Y[a:b, sl]
                with np.errstate(invalid="ignore", over="ignore"):   # non-finite: checked below
                    raw = (_numpy_raw_moments(Z, Yr, lag) if backend is None
                           else backend.raw_moments(Z, Yr, lag))
                    d = _centred_moments(raw, self.Xc[r], Yr, lag)
                C[r, :, sl], ybar[r, sl], yy[r, sl] = d["C"], d["ybar"], d["yy"]
                if lag:
                    Cp[r, :, sl], Cm[r, :, sl] = d["Cp"], d["Cm"]
                    yl[r, sl], yf[r, sl], ylast[r, sl] = d["yl"], d["yfirst"], d["ylast"]
        bad = ~np.all(np.isfinite(yy), axis=0)
        if lag:
            bad |= ~np.all(np.isfinite(yl), axis=0)
        if bad.any():
            idx = np.flatnonzero(bad)
            raise DimensionError(
                f"Input y contains NaN or inf values in {idx.size} column(s) (first: "
                f"{idx[:5].tolist()}); pass only valid grayordinates, e.g. Y[:, valid] with "
                "BrainData.valid, and write NaN for the others.")
        st = _ChunkStats(n=self.n, xbar=self.xbar, G=self.G, C=C, ybar=ybar, yy=yy)
        if lag:
            st.Cp, st.Cm, st.yl, st.yfirst, st.ylast = Cp, Cm, yl, yf, ylast
        return st


def _cols(st, sl):
    """Column slice of all-V statistics, float64."""
    out = _ChunkStats(n=st.n, xbar=st.xbar, G=st.G, C=st.C[:, :, sl].astype(np.float64),
                      ybar=st.ybar[:, sl], yy=st.yy[:, sl])
    if st.Cp is not None:
        out.Cp = st.Cp[:, :, sl].astype(np.float64)
        out.Cm = st.Cm[:, :, sl].astype(np.float64)
        out.yl, out.yfirst, out.ylast = st.yl[:, sl], st.yfirst[:, sl], st.ylast[:, sl]
    return out


def _solve_sym(G, C):
    """Solve G B = C for symmetric positive (semi)definite G; pseudo-inverse fallback."""
    try:
        cho = np.linalg.cholesky(G)
    except np.linalg.LinAlgError:
        Ginv = np.linalg.pinv(G, hermitian=True)
        return Ginv @ C, Ginv
    Linv = np.linalg.inv(cho)
    Ginv = Linv.T @ Linv
    return Ginv @ C, Ginv


def _fold_r(beta, C_f, G_f, yy_f):
    """Pearson r and R² on a held-out run from its centred statistics."""
    cov = np.einsum("kc,kc->c", beta, C_f)
    varp = np.einsum("kc,kc->c", beta, G_f @ beta)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(varp * yy_f)
        r2 = 1.0 - (yy_f - 2 * cov + varp) / yy_f
    return r, r2


# ------------------------------------------------------------------------------ AR(1)
class _AR1Space:
    """Design z = [Xc (run-centred atoms), one dummy per selected run] and its lag terms.

    The whitening follows nilearn's ``ARModel`` exactly: the first sample of each
    segment is left as is, later samples become ``y_t - rho * y_{t-1}``. ``scope``
    decides what a segment is: ``"concat"`` = the selected runs concatenated (what
    nilearn ``run_glm`` does on the concatenated data), ``"run"`` = every run.
    """

    def __init__(self, design, sel, scope):
        K = design.K
        self.K, self.sel, self.scope = K, list(sel), scope
        P = K + len(self.sel)
        self.P = P
        G0 = np.zeros((P, P))
        Gp = np.zeros((P, P))
        Lzz = np.zeros((P, P))
        zf, zl = [], []
        for j, r in enumerate(self.sel):
            Xc = design.Xc[r]
            Z = np.zeros((Xc.shape[0], P))
            Z[:, :K] = Xc
            Z[:, K + j] = 1.0
            G0 += Z.T @ Z
            Gp += Z[:-1].T @ Z[1:]
            zf.append(Z[0].copy())
            zl.append(Z[-1].copy())
        segs_last = self._segment_lasts()
        for j in segs_last:
            Lzz += np.outer(zl[j], zl[j])
        if scope == "concat":
            for j in range(len(self.sel) - 1):
                Gp += np.outer(zl[j], zf[j + 1])
        self.G0, self.Gp, self.Lzz, self.zf, self.zl = G0, Gp, Lzz, zf, zl
        self.n = float(sum(design.n[r] for r in self.sel))
        self.n_seg = 1 if scope == "concat" else len(self.sel)

    def _segment_lasts(self):
        return [len(self.sel) - 1] if self.scope == "concat" else list(range(len(self.sel)))

    def chunk(self, st):
        """Cross products in z-space for one chunk: C0, Cpm = Cp + Cm, Lzy, yy, yl, Lyy."""
        K, P = self.K, self.P
        c = st.C.shape[2]
        C0 = np.zeros((P, c))
        Cpm = np.zeros((P, c))
        yy = np.zeros(c)
        yl = np.zeros(c)
        for j, r in enumerate(self.sel):
            C0[:K] += st.C[r]
            # dummy row of C0 is sum of run-centred y = 0
            for M in (st.Cp[r], st.Cm[r]):
                Cpm[:K] += M[:K]
                Cpm[K + j] += M[K]
            yy += st.yy[r]
            yl += st.yl[r]
        Lzy = np.zeros((P, c))
        Lyy = np.zeros(c)
        for j in self._segment_lasts():
            r = self.sel[j]
            Lzy += np.outer(self.zl[j], st.ylast[r])
            Lyy += st.ylast[r] ** 2
        if self.scope == "concat":
            for j in range(len(self.sel) - 1):
                r0, r1 = self.sel[j], self.sel[j + 1]
                Cpm += np.outer(self.zl[j], st.yfirst[r1])   # z_{t-1} y_t over the boundary
                Cpm += np.outer(self.zf[j + 1], st.ylast[r0])  # z_t y_{t-1}
                yl += st.ylast[r0] * st.yfirst[r1]
        return C0, Cpm, Lzy, yy, yl, Lyy

    def rho(self, st, bins):
        """nilearn's Yule–Walker AR(1) estimate on OLS residuals, then binned."""
        C0, Cpm, _, yy, yl, _ = self.chunk(st)
        beta, _ = _solve_sym(self.G0, C0)
        ee = yy - np.einsum("pc,pc->c", beta, C0)
        elag = yl - np.einsum("pc,pc->c", beta, Cpm) + np.einsum("pc,pc->c", beta, self.Gp @ beta)
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = (elag / (self.n - self.n_seg)) / (ee / self.n)
        rho = np.nan_to_num(rho)
        if bins is not None:
            rho = np.trunc(rho * bins) / bins   # nilearn: (rho * bins).astype(int) / bins
        return rho

    def fit(self, st, rho):
        """Whitened GLS fit for every column with its own rho (grouped by value)."""
        C0, Cpm, Lzy, yy, yl, Lyy = self.chunk(st)
        c = C0.shape[1]
        beta = np.empty((self.P, c))
        t = np.empty((self.K, c))
        rss = np.empty(c)
        df = self.n - self.P
        for val in np.unique(rho):
            idx = np.flatnonzero(rho == val)
            Gw = self.G0 - val * (self.Gp + self.Gp.T) + val**2 * (self.G0 - self.Lzz)
            Cw = C0[:, idx] - val * Cpm[:, idx] + val**2 * (C0[:, idx] - Lzy[:, idx])
            yyw = yy[idx] - 2 * val * yl[idx] + val**2 * (yy[idx] - Lyy[idx])
            b, Ginv = _solve_sym(Gw, Cw)
            beta[:, idx] = b
            rs = np.maximum(yyw - np.einsum("pc,pc->c", b, Cw), 0.0)
            rss[idx] = rs
            disp = rs / df
            t[:, idx] = b[: self.K] / np.sqrt(np.outer(np.diag(Ginv)[: self.K], disp))
        return beta, t, rss


# ------------------------------------------------------------------------------ ridge
def _pool(n, xbar, ybar, G, C, yy, idx):
    """Pool centred statistics of blocks ``idx`` around their common mean (Chan et al.)."""
    nn = n[idx]
    N = nn.sum()
    xm = (nn[:, None] * xbar[idx]).sum(0) / N
    ym = (nn[:, None] * ybar[idx]).sum(0) / N
    dx = xbar[idx] - xm
    dy = ybar[idx] - ym
    Gp = G[idx].sum(0) + np.einsum("b,bk,bj->kj", nn, dx, dx)
    Cp = C[idx].sum(0) + np.einsum("b,bk,bc->kc", nn, dx, dy)
    yyp = yy[idx].sum(0) + np.einsum("b,bc->c", nn, dy * dy)
    return N, xm, ym, Gp, Cp, yyp


class _RidgeBlocks:
    """Blocks = runs ∩ contiguous CV segments; statistics per block (as _ChunkStats)."""

    def __init__(self, run_lab, bounds, cv):
        T = run_lab.shape[0]
        if cv == "runs":
            seg = run_lab.copy()
        else:
            seg = np.empty(T, dtype=np.int64)
            for i, part in enumerate(np.array_split(np.arange(T), int(cv))):
                seg[part] = i
        key = run_lab * (seg.max() + 1) + seg
        change = np.flatnonzero(key[1:] != key[:-1]) + 1
        starts = np.concatenate([[0], change])
        stops = np.concatenate([change, [T]])
        self.bounds = list(zip(starts.tolist(), stops.tolist()))
        self.run = run_lab[starts]
        self.seg = seg[starts]


class _RidgeCache:
    """X-side quantities of ridge fits (independent of the Y chunk), computed once per fit."""

    def __init__(self, n, xbar, G, blk):
        self.n, self.xbar, self.G, self.blk = n, xbar, G, blk
        self._train = {}
        self._val = {}

    def _pool_x(self, idx):
        nn = self.n[idx]
        xm = (nn[:, None] * self.xbar[idx]).sum(0) / nn.sum()
        dx = self.xbar[idx] - xm
        return xm, self.G[idx].sum(0) + np.einsum("b,bk,bj->kj", nn, dx, dx)

    def train(self, train):
        """Per run of the training blocks: (run, block idx, x mean); eigh of the FWL Gram."""
        key = tuple(int(i) for i in train)
        if key not in self._train:
            parts = []
            Gt = 0.0
            for r in np.unique(self.blk.run[train]):
                bi = train[self.blk.run[train] == r]
                xm, Gp = self._pool_x(bi)
                Gt = Gt + Gp
                parts.append((r, bi, xm))
            s, U = np.linalg.eigh(Gt)
            self._train[key] = (parts, np.maximum(s, 0.0), U)
        return self._train[key]

    def val(self, train, val):
        """Per validation block: (block, reference x mean, U'G_bU, U'(x̄_b − x̄_ref))."""
        key = (tuple(int(i) for i in train), tuple(int(i) for i in val))
        if key not in self._val:
            parts, s, U = self.train(train)
            ref = {r: (bi, xm) for r, bi, xm in parts}
            out = []
            for b in val:
                r = self.blk.run[b]
                if r in ref:
                    rb, xm = ref[r]
                else:
                    rb = val[self.blk.run[val] == r]
                    xm, _ = self._pool_x(rb)
                out.append((b, rb, U.T @ self.G[b] @ U, U.T @ (self.xbar[b] - xm)))
            self._val[key] = out
        return self._val[key]


def _pool_y(n, ybar, C, yy, xbar, idx, xm):
    """Y-side pooled centred statistics of blocks ``idx`` (x mean ``xm`` given)."""
    nn = n[idx]
    ym = (nn[:, None] * ybar[idx]).sum(0) / nn.sum()
    dx = xbar[idx] - xm
    dy = ybar[idx] - ym
    Cp = C[idx].sum(0) + np.einsum("b,bk,bc->kc", nn, dx, dy)
    yyp = yy[idx].sum(0) + np.einsum("b,bc->c", nn, dy * dy)
    return ym, Cp, yyp


def _ridge_scores(st, cache, train, folds, alphas, scoring):
    """Mean validation score (n_alphas, c) over inner folds (lists of block indices)."""
    n, xb, yb, C, yy = st.n, st.xbar, st.ybar, st.C, st.yy
    c = C.shape[2]
    total = np.zeros((len(alphas), c))
    alphas = np.asarray(alphas, dtype=np.float64)
    for val in folds:
        val = np.asarray(val)
        vs = set(val.tolist())
        tr = np.array([b for b in train if b not in vs])
        parts, s, U = cache.train(tr)
        Ct = 0.0
        ym_run = {}
        for r, bi, xm in parts:
            ym, Cp, _ = _pool_y(n, yb, C, yy, xb, bi, xm)
            Ct = Ct + Cp
            ym_run[r] = ym
        Ct_rot = U.T @ Ct                                        # (K, c)
        W = 1.0 / (s[:, None] + alphas[None, :])                 # (K, n_alpha)
        nv = n[val].sum()
        ymv = (n[val][:, None] * yb[val]).sum(0) / nv
        sst = yy[val].sum(0) + np.einsum("b,bc->c", n[val], (yb[val] - ymv) ** 2)
        sse = np.zeros((len(alphas), c))
        for b, rb, Gb_rot, dx_rot in cache.val(tr, val):
            r = cache.blk.run[b]
            ym = ym_run[r] if r in ym_run else (n[rb][:, None] * yb[rb]).sum(0) / n[rb].sum()
            dy = yb[b] - ym
            Cb_rot = U.T @ C[b]
            lin = (W.T @ (Ct_rot * Cb_rot))                       # (n_alpha, c): beta'C_b
            dxb = (W * dx_rot[:, None]).T @ Ct_rot                 # (n_alpha, c): dx'beta
            for ia in range(len(alphas)):
                bt = Ct_rot * W[:, ia:ia + 1]
                quad = np.einsum("kc,kc->c", bt, Gb_rot @ bt)
                d = dy - dxb[ia]
                sse[ia] += yy[b] - 2 * lin[ia] + quad + n[b] * d * d
        if scoring == "r2":
            with np.errstate(invalid="ignore", divide="ignore"):
                total += 1.0 - sse / sst
        else:
            total += -sse / nv
    return total / len(folds)


def _ridge_fit(st, cache, train, alphas_v):
    """Ridge with per-run unpenalised intercepts on blocks ``train``, per-column alpha."""
    parts, s, U = cache.train(train)
    Ct = 0.0
    for r, bi, xm in parts:
        Ct = Ct + _pool_y(st.n, st.ybar, st.C, st.yy, st.xbar, bi, xm)[1]
    return U @ ((U.T @ Ct) / (s[:, None] + alphas_v[None, :]))


# ---------------------------------------------------------------------------- encoder
class VoxelwiseEncoder(RegressorMixin, BaseEstimator):
    """Voxel-wise linear encoding model with one intercept per run.

    For every target column ``y_v`` (a grayordinate) fits ``y_v = X β_v + D γ_v + ε``
    with ``X`` (n_timepoints, n_atoms) the atom time courses and ``D`` one indicator
    column per run (the per-run intercepts, never penalised).

    Parameters
    ----------
    method : {"ols", "ar1", "ridge"}, default="ols"
        ``"ols"``: ordinary least squares, ``t = β / se`` with
        ``df = n_timepoints - n_atoms - n_runs``. ``"ar1"``: nilearn's AR(1) GLM
        (``run_glm(noise_model="ar1")``): OLS residuals → lag-1 Yule–Walker
        coefficient per column, truncated to ``1/ar1_bins`` steps, prewhitening
        (first sample of a segment unchanged, then ``y_t − ρ y_{t−1}``), OLS on the
        whitened data; ``t`` from the whitened residual variance. ``"ridge"``: ridge on
        the atoms with a per-column ``alpha`` chosen from ``alphas`` by inner
        cross-validation (``cv``); ``tvalues_`` is ``None`` for ridge.
    alphas : array-like of float, default=None
        Ridge penalties (``None`` → ``numpy.logspace(-2, 4, 7)``).
    cv : int or "runs", default=5
        Ridge inner cross-validation: ``int`` = that many contiguous folds over the
        concatenated timeline (scikit-learn ``KFold(cv)`` without shuffling, folds cut
        at run boundaries too); ``"runs"`` = leave-one-run-out among the training runs.
        A validation sample whose run also has training samples gets that run's
        training intercept; a run that is entirely held out is centred with its own mean.
    scoring : {"r2", "l2"}, default="r2"
        Ridge inner-CV score: R² per fold (scikit-learn) or ``-SSE / n`` (himalaya's
        ``l2_neg_loss``); averaged over folds.
    ar1_bins : int, default=100
        nilearn's ``bins``. ``ar1_scope``: ``"concat"`` (default) whitens the runs as one
        concatenated series exactly as ``run_glm`` does on concatenated data;
        ``"run"`` restarts the whitening at every run (no lag across run boundaries).
    compute_cv : {"auto", True, False}, default="auto"
        Leave-one-run-out prediction (``cv_r_``, ``cv_r2_``): for every run, fit on
        the other runs (same method; AR(1) uses the full-data ρ of each column; ridge
        nests its inner CV), predict the held-out run, and score after centring the
        held-out run (its intercept is unknown to the training runs; Pearson r does
        not depend on it). ``cv_r_`` / ``cv_r2_`` are the means over folds and
        ``cv_r_folds_`` (n_runs, V) keeps each fold. ``"auto"``: computed when there are
        ≥ 2 runs, otherwise skipped (``cv_r_ = None``, logged). ``True`` with one run
        raises :class:`~vlmbrain.errors.DimensionError`.
    chunk_size : int, default=8192
        Columns handled at once by the K × K algebra (and the column width of the blocks
        read from ``Y``, at least 32768). Memory beyond ``Y`` and the outputs: the per-run
        statistics, ``4 × n_runs × (n_atoms + 1) × n_grayordinates`` bytes (× 3 for AR(1)),
        plus temporaries ∝ ``chunk_size``. ``Y`` itself is never copied.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the big GEMM (``Xᵀ Y``) and of ``Y`` chunks; every small solve
        and all accumulated statistics are float64.
    backend : {"numpy", "torch"}, default="numpy"
        ``"torch"`` runs the GEMMs with PyTorch on ``device`` (module
        ``vlmbrain.backends.torch_encoding``, imported only then).
    device : str, default=None
        Torch device (``"cuda"``, ``"cpu"``); ignored by the numpy backend.

    Attributes
    ----------
    coef_ : ndarray of shape (n_atoms, n_grayordinates), float32
    tvalues_ : ndarray of shape (n_atoms, n_grayordinates), float32, or None (ridge)
    intercepts_ : ndarray of shape (n_runs, n_grayordinates), float32
    r2_ : ndarray of shape (n_grayordinates,)
        In-sample R² of the atoms after removing the run means.
    cv_r_, cv_r2_ : ndarray of shape (n_grayordinates,) or None
    cv_r_folds_, cv_r2_folds_ : ndarray of shape (n_runs, n_grayordinates) or None
    alphas_ : ndarray of shape (n_grayordinates,) (ridge only)
    cv_scores_ : ndarray of shape (n_alphas, n_grayordinates) (ridge only)
    ar1_rho_ : ndarray of shape (n_grayordinates,) (ar1 only), binned ρ
    dof_ : float, residual degrees of freedom (ols / ar1)
    n_runs_ : int, n_features_in_ : int

    Notes
    -----
    A 1-D ``y`` gives 1-D attributes (scikit-learn convention). NaN/inf in ``Y``
    raises: pass only valid columns.
    """

    def __init__(self, method="ols", *, alphas=None, cv=5, scoring="r2", ar1_bins=100,
                 ar1_scope="concat", compute_cv="auto", chunk_size=8192, dtype="float32",
                 backend="numpy", device=None):
        self.method = method
        self.alphas = alphas
        self.cv = cv
        self.scoring = scoring
        self.ar1_bins = ar1_bins
        self.ar1_scope = ar1_scope
        self.compute_cv = compute_cv
        self.chunk_size = chunk_size
        self.dtype = dtype
        self.backend = backend
        self.device = device

    # .................................................................. validation
    def _validate_params(self):
        if self.method not in _METHODS:
            raise ConfigError(f"VoxelwiseEncoder: method={self.method!r}; expected one of {_METHODS}.")
        if self.dtype not in ("float32", "float64", np.float32, np.float64):
            raise ConfigError(f"VoxelwiseEncoder: dtype={self.dtype!r}; use 'float32' or 'float64'.")
        if not (isinstance(self.chunk_size, (int, np.integer)) and self.chunk_size >= 1):
            raise ConfigError(
                f"VoxelwiseEncoder: chunk_size={self.chunk_size!r} must be a positive int.")
        if self.compute_cv not in ("auto", True, False):
            raise ConfigError(
                f"VoxelwiseEncoder: compute_cv={self.compute_cv!r}; use 'auto', True or False.")
        if self.ar1_scope not in ("concat", "run"):
            raise ConfigError(
                f"VoxelwiseEncoder: ar1_scope={self.ar1_scope!r}; use 'concat' or 'run'.")
        if self.ar1_bins is not None and not (isinstance(self.ar1_bins, (int, np.integer))
                                              and self.ar1_bins >= 1):
            raise ConfigError(f"VoxelwiseEncoder: ar1_bins={self.ar1_bins!r} must be a positive int.")
        if self.scoring not in ("r2", "l2"):
            raise ConfigError(f"VoxelwiseEncoder: scoring={self.scoring!r}; use 'r2' or 'l2'.")
        if self.method == "ridge":
            if not (self.cv == "runs" or (isinstance(self.cv, (int, np.integer)) and self.cv >= 2)):
                raise ConfigError(
                    f"VoxelwiseEncoder: cv={self.cv!r}; use an int >= 2 or 'runs'.")
            alphas = DEFAULT_RIDGE_ALPHAS if self.alphas is None else np.atleast_1d(
                np.asarray(self.alphas, dtype=np.float64))
            if alphas.ndim != 1 or alphas.size == 0 or np.any(alphas < 0):
                raise ConfigError(
                    f"VoxelwiseEncoder: alphas={self.alphas!r} must be non-negative floats.")
            return alphas
        return None

    # ......................................................................... fit
    def fit(self, X, y, runs=None):
        """Fit the encoding model.

        Parameters
        ----------
        X : array-like of shape (n_timepoints, n_atoms)
            Atom time courses (the regressors).
        y : array-like of shape (n_timepoints, n_grayordinates) or (n_timepoints,)
            fMRI data (only valid grayordinates; no NaN).
        runs : array-like of int, shape (n_timepoints,), default=None
            Run index of every TR (contiguous blocks). ``None``: one run.

        Returns
        -------
        self
        """
        alphas = self._validate_params()
        dtype = np.dtype(self.dtype)
        X, Y, y_1d = _check_xy(X, y, dtype, estimator=self)
        T, K = X.shape
        V = Y.shape[1]
        run_lab, bounds = check_runs(runs, T)
        R = len(bounds)
        method = self.method
        min_len = min(b - a for a, b in bounds)
        if min_len < 2:
            raise DimensionError(f"every run needs at least 2 timepoints; the shortest has {min_len}.")
        do_cv = self.compute_cv
        if do_cv == "auto":
            do_cv = R >= 2
            if not do_cv:
                logger.info("VoxelwiseEncoder: one run only; leave-one-run-out CV skipped (cv_r_=None).")
        elif do_cv and R < 2:
            raise DimensionError(
                "compute_cv=True needs at least 2 runs for leave-one-run-out prediction, but "
                "runs has 1 run; pass runs=(n_timepoints,) labels or compute_cv=False.")
        df = T - K - R
        if method in ("ols", "ar1") and df < 1:
            raise DimensionError(
                f"{T} timepoints leave no residual degrees of freedom for {K} atoms + {R} "
                "run intercepts; use fewer atoms or method='ridge'.")
        be = _resolve_backend(self.backend, self.device)
        design = _Design(X, bounds)
        if method == "ridge":
            blk = _RidgeBlocks(run_lab, bounds, self.cv)
            if self.cv == "runs" and R < 2:
                raise DimensionError("cv='runs' needs at least 2 runs; use cv=5 with one run.")
            bdesign = _Design(X, blk.bounds)
        else:
            blk = None
            bdesign = None
        f32 = np.float32
        coef = np.empty((K, V), f32)
        tval = None if method == "ridge" else np.empty((K, V), f32)
        icpt = np.empty((R, V), f32)
        r2 = np.empty(V, f32)
        cvr = np.empty((R, V), f32) if do_cv else None
        cvr2 = np.empty((R, V), f32) if do_cv else None
        alph = np.empty(V, np.float64) if method == "ridge" else None
        scores = np.empty((len(alphas), V)) if method == "ridge" else None
        rho_all = np.empty(V, f32) if method == "ar1" else None
        if method == "ar1":
            ar_full = _AR1Space(design, range(R), self.ar1_scope)
            ar_folds = ([_AR1Space(design, [q for q in range(R) if q != f], self.ar1_scope)
                         for f in range(R)] if do_cv else [])
        cs = int(self.chunk_size)
        ctl = ThreadpoolController()
        # one pass over Y (row blocks of each run, read contiguously): the big GEMMs use the
        # BLAS threads; the K x K algebra then runs per column chunk, single-threaded
        # (multi-threaded BLAS on 64 x 64 problems is slower, badly so on a busy machine)
        if method == "ridge":
            st_all = bdesign.all_stats(Y, False, be, col_block=max(cs, 32768))
        else:
            st_all = design.all_stats(Y, method == "ar1", be, col_block=max(cs, 32768))
        for start in range(0, V, cs):
            stop = min(V, start + cs)
            sl = slice(start, stop)
            st = _cols(st_all, sl)
            if method == "ridge":
                with ctl.limit(limits=1, user_api="blas"):
                    self._ridge_chunk(st, blk, R, alphas, do_cv, sl, coef, icpt, r2, cvr, cvr2,
                                      alph, scores)
                continue
            with ctl.limit(limits=1, user_api="blas"):
                self._glm_chunk(st, method, design, df, K, R, do_cv, sl, coef, tval, icpt, r2,
                                cvr, cvr2, rho_all, ar_full if method == "ar1" else None,
                                ar_folds if method == "ar1" else None)
        self._rcache = None
        self.n_features_in_ = K
        self.n_runs_ = R
        self.n_targets_ = V
        self.dof_ = float(df) if method != "ridge" else None
        sq = (lambda a: a[..., 0]) if y_1d else (lambda a: a)
        self.coef_ = sq(coef)
        self.tvalues_ = None if tval is None else sq(tval)
        self.intercepts_ = sq(icpt)
        self.r2_ = sq(r2)
        if do_cv:
            self.cv_r_folds_ = sq(cvr)
            self.cv_r2_folds_ = sq(cvr2)
            self.cv_r_ = sq(np.nanmean(cvr, axis=0) if np.all(np.isfinite(cvr)) else cvr.mean(0))
            self.cv_r2_ = sq(cvr2.mean(axis=0))
        else:
            self.cv_r_folds_ = self.cv_r2_folds_ = self.cv_r_ = self.cv_r2_ = None
        if method == "ridge":
            self.alphas_ = sq(alph)
            self.cv_scores_ = sq(scores)
        if method == "ar1":
            self.ar1_rho_ = sq(rho_all)
        self._y_1d = y_1d
        return self

    def _glm_chunk(self, st, method, design, df, K, R, do_cv, sl, coef, tval, icpt, r2, cvr,
                   cvr2, rho_all, ar_full, ar_folds):
        Gs = st.G.sum(0)
        Cs = st.C.sum(0)
        yys = st.yy.sum(0)
        if method == "ols":
            beta, Ginv = _solve_sym(Gs, Cs)
            rss = np.maximum(yys - np.einsum("kc,kc->c", beta, Cs), 0.0)
            se = np.sqrt(np.outer(np.diag(Ginv), rss / df))
            with np.errstate(invalid="ignore", divide="ignore"):
                tval[:, sl] = beta / se
        else:
            rho = ar_full.rho(st, self.ar1_bins)
            rho_all[sl] = rho
            bz, t, _ = ar_full.fit(st, rho)
            beta = bz[:K]
            tval[:, sl] = t
        coef[:, sl] = beta
        icpt[:, sl] = st.ybar - st.xbar @ beta
        with np.errstate(invalid="ignore", divide="ignore"):
            r2[sl] = 1.0 - (yys - 2 * np.einsum("kc,kc->c", beta, Cs)
                            + np.einsum("kc,kc->c", beta, Gs @ beta)) / yys
        if do_cv:
            for f in range(R):
                if method == "ols":
                    bf, _ = _solve_sym(Gs - st.G[f], Cs - st.C[f])
                else:
                    bf = ar_folds[f].fit(st, rho)[0][:K]
                cvr[f, sl], cvr2[f, sl] = _fold_r(bf, st.C[f], st.G[f], st.yy[f])

    def _ridge_chunk(self, st, blk, R, alphas, do_cv, sl, coef, icpt, r2, cvr, cvr2, alph, scores):
        if getattr(self, "_rcache", None) is None or self._rcache.blk is not blk:
            self._rcache = _RidgeCache(st.n, st.xbar, st.G, blk)
        cache = self._rcache
        nb = len(blk.bounds)
        allb = np.arange(nb)

        def inner_folds(train):
            key = blk.run if self.cv == "runs" else blk.seg
            groups = [train[key[train] == g] for g in np.unique(key[train])]
            if len(groups) < 2:
                raise DimensionError(
                    "ridge inner cross-validation needs at least 2 folds among the training "
                    f"data; cv={self.cv!r} gives {len(groups)}. Use a larger int cv.")
            return groups

        def choose(train):
            sc = _ridge_scores(st, cache, train, inner_folds(train), alphas, self.scoring)
            best = np.argmax(np.where(np.isnan(sc), -np.inf, sc), axis=0)
            return alphas[best], sc

        a_v, sc = choose(allb)
        beta = _ridge_fit(st, cache, allb, a_v)
        coef[:, sl] = beta
        alph[sl] = a_v
        scores[:, sl] = sc
        for r in range(R):
            bi = allb[blk.run == r]
            _, xm, ym, Gr, Cr, yyr = _pool(st.n, st.xbar, st.ybar, st.G, st.C, st.yy, bi)
            icpt[r, sl] = ym - xm @ beta
        # in-sample R² after run centring
        Gs = 0.0
        Cs = 0.0
        yys = 0.0
        runstats = []
        for r in range(R):
            bi = allb[blk.run == r]
            _, xm, ym, Gr, Cr, yyr = _pool(st.n, st.xbar, st.ybar, st.G, st.C, st.yy, bi)
            runstats.append((Gr, Cr, yyr))
            Gs, Cs, yys = Gs + Gr, Cs + Cr, yys + yyr
        with np.errstate(invalid="ignore", divide="ignore"):
            r2[sl] = 1.0 - (yys - 2 * np.einsum("kc,kc->c", beta, Cs)
                            + np.einsum("kc,kc->c", beta, Gs @ beta)) / yys
        if do_cv:
            for f in range(R):
                train = allb[blk.run != f]
                a_f, _ = choose(train)
                bf = _ridge_fit(st, cache, train, a_f)
                Gr, Cr, yyr = runstats[f]
                cvr[f, sl], cvr2[f, sl] = _fold_r(bf, Cr, Gr, yyr)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    # ..................................................................... predict
    def predict(self, X, runs=None):
        """Predict ``Y`` from atom time courses.

        Parameters
        ----------
        X : array-like of shape (n_timepoints, n_atoms)
        runs : array-like of int, shape (n_timepoints,), default=None
            Run index (0..n_runs-1 of the fitted runs) of each row, selecting that
            run's intercept. ``None``: the mean of the fitted runs' intercepts.

        Returns
        -------
        Y_pred : ndarray of shape (n_timepoints, n_grayordinates), float64
        """
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        coef = self.coef_[:, None] if self._y_1d else self.coef_
        icpt = self.intercepts_[:, None] if self._y_1d else self.intercepts_
        pred = X @ coef.astype(np.float64)
        if runs is None:
            pred += icpt.mean(axis=0)
        else:
            runs = np.asarray(runs)
            if runs.shape != (X.shape[0],) or runs.min() < 0 or runs.max() >= self.n_runs_:
                raise DimensionError(
                    f"runs must be (n_timepoints,)={X.shape[0]} ints in 0..{self.n_runs_ - 1}; "
                    f"got shape {runs.shape}.")
            pred += icpt[runs]
        return pred[:, 0] if self._y_1d else pred


# ------------------------------------------------------------------------ shift null
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
    variance (Satterthwaite) for R². (numpy backend only; ``None`` with the torch backend.)
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
               chunk_size=32, return_null=False, n_jobs=-1, backend="numpy", device=None):
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
    TRs, well beyond the HRF). For speed the candidate lags are the multiples of the
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
    if n_shifts > n_adm:
        raise ConfigError(
            f"shift_null: n_shifts={n_shifts} but only {n_adm} distinct shifts lie in "
            f"[min_shift={min_shift}, T-min_shift={T - min_shift}] for T={T}; lower n_shifts "
            "or min_shift.")
    df = T - K - R
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
    design = _Design(X, bounds)
    Xc = np.concatenate(design.Xc, axis=0)
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
    Mz = (Linv.T / np.sqrt(ginv_diag)[:, None]).astype(np.float32)
    S = n_shifts
    cnt_z = np.zeros((K, V), np.int32)
    cnt_r = np.zeros(V, np.int32)
    beta_obs = np.empty((K, V), np.float32)
    t_obs = np.empty((K, V), np.float32)
    r2_obs = np.empty(V, np.float32)
    beta_null = np.empty((S, K, V), np.float32) if return_null else None
    z2 = np.full((K, V), np.nan, np.float32)        # null moments (numpy path)
    r2m = np.full(V, np.nan, np.float32)
    r2v = np.full(V, np.nan, np.float32)
    sqg = np.sqrt(ginv_diag)

    def one_chunk(start):
        stop = min(V, start + cs)
        sl = slice(start, stop)
        Yk = Y[:, sl]
        c = stop - start
        Ycen = np.empty((T, c), np.float64)
        for a, b in bounds:
            Ycen[a:b] = Yk[a:b] - Yk[a:b].mean(axis=0, dtype=np.float64)
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
        t0a = np.abs(t0).astype(np.float32).T                                   # (c, K)
        fac = (sigma**2 / yy).astype(np.float32)
        r20f = r20.astype(np.float32)
        if tb is not None:
            cz, mz, cr, mr = tb.null_chunk(Ys, t0a, fac, r20f, df=df)
            cnt_z[:, sl] = cz.T
            cnt_r[sl] = cr
            return mz, mr
        Yh = sfft.rfft(Ys.reshape(L, d, c), axis=0)                           # (F, d, c)
        Yh = np.ascontiguousarray(Yh.transpose(1, 2, 0))[:, :, None, :]       # (d, c, 1, F)
        H = Yh[0] * Qh[0]                                                       # (c, K, F)
        for p in range(1, d):
            H += Yh[p] * Qh[p]
        P = sfft.irfft(H, n=L, axis=-1)[:, :, js]                             # (c, K, S) view
        del H
        ess = np.einsum("cks,cks->cs", P, P)                                   # sigma units
        Z = np.matmul(Mz, P)                                                    # (c, K, S)
        del P
        if return_null:
            se = (sqg[:, None] * sigma).astype(np.float32).T                   # (c, K)
            beta_null[:, :, sl] = (Z * se[:, :, None]).transpose(2, 1, 0)
        # studentize: every shift gets its own residual variance, t_s = z_s * sigma / sigma_s
        Z *= _studentize(ess, fac, df)[:, None, :]
        z2[:, sl] = (np.einsum("cks,cks->ck", Z, Z) / S).T
        np.abs(Z, out=Z)
        cz = np.count_nonzero(Z >= t0a[:, :, None], axis=2)
        mz = Z.max(axis=0)                                                      # (K, S)
        del Z
        r2n = ess * fac[:, None]                                                # (c, S)
        r2m[sl] = r2n.mean(axis=1)
        r2v[sl] = r2n.var(axis=1)
        cr = np.count_nonzero(r2n >= r20f[:, None], axis=1)
        cnt_z[:, sl] = cz.T
        cnt_r[sl] = cr
        return mz, r2n.max(axis=0)

    cs = int(chunk_size)
    tb = None
    if backend != "numpy":
        if backend != "torch":
            raise ConfigError(f"shift_null: backend={backend!r}; use 'numpy' or 'torch'.")
        if return_null:
            raise ConfigError("shift_null: return_null=True needs backend='numpy'.")
        mod = importlib.import_module("vlmbrain.backends.torch_encoding")
        tb = mod.TorchShiftNull(Qh, Mz, L, d, js, device=device)
        n_jobs = 1
    starts = list(range(0, V, cs))
    n_jobs = os.cpu_count() if n_jobs in (None, -1) else max(1, int(n_jobs))
    null_max_z = np.zeros((K, S), np.float32)
    null_max_r2 = np.zeros(S, np.float32)
    with threadpool_limits(limits=1):
        if n_jobs == 1:
            results = map(one_chunk, starts)
            for mz, mr in results:
                np.maximum(null_max_z, mz, out=null_max_z)
                np.maximum(null_max_r2, mr, out=null_max_r2)
        else:
            with ThreadPoolExecutor(max_workers=n_jobs) as pool:
                for mz, mr in pool.map(one_chunk, starts):
                    np.maximum(null_max_z, mz, out=null_max_z)
                    np.maximum(null_max_r2, mr, out=null_max_r2)
    logger.info("shift_null: %d shifts (multiples of %d TRs) for X %s, Y %s", S, d, X.shape, Y.shape)
    return ShiftNullResult(
        shifts=shifts, beta=beta_obs, tvalues=t_obs, r2=r2_obs,
        p_beta=permutation_pvalue(cnt_z, S), p_r2=permutation_pvalue(cnt_r, S),
        null_max_z=np.ascontiguousarray(null_max_z.T), null_max_r2=null_max_r2,
        dof=float(df), decimation=d, beta_null=beta_null,
        null_z_var=None if tb is not None else z2, null_r2_mean=None if tb is not None else r2m,
        null_r2_var=None if tb is not None else r2v)
