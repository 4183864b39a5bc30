"""Solvers of the voxel-wise encoding model, and the registry that names them.

A solver turns the sufficient statistics of a column chunk (:class:`ChunkStats`, one
entry per run) into coefficients and whatever else its method gives. The estimator
(:class:`vlmbrain.encoding.VoxelwiseEncoder`) computes the statistics once, cuts the
columns into chunks, and calls ``solver.solve(stats, problem, state)`` on every chunk;
``problem`` describes the fit (design, runs, hyper-parameters) and ``state`` is whatever
``solver.prepare(problem)`` returned once per fit (the X-side algebra shared by all
chunks).

Built in: ``"ols"`` (:func:`solve_ols`), ``"ar1"`` (:func:`solve_ar1`) and ``"ridge"``
(:func:`solve_ridge`). A new method needs one call::

    def halved_ols(stats):                       # ChunkStats -> coefficients (K, c)
        G, C, _ = stats.totals()
        return 0.5 * np.linalg.solve(G, C)

    register_solver("half-ols", halved_ols)
    VoxelwiseEncoder(method="half-ols").fit(X, Y, runs=runs)

A plain function receives the chunk's run statistics and returns the coefficients (or a
:class:`SolverResult`); the per-run intercepts, the in-sample R² and the leave-one-run-out
r / R² (the function refitted on the statistics of the training runs,
``stats.select(train)``) are then derived from the same statistics. Subclass
:class:`Solver` for t-values, other row blocks, lag-1 statistics or a fit-wide state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from vlmbrain.encoding.statistics import (
    ChunkStats,
    Design,
    fold_r,
    pool,
    pool_y,
    r2_from_totals,
    run_intercepts,
    solve_sym,
)
from vlmbrain.errors import ConfigError, DimensionError

__all__ = ["SOLVERS", "Solver", "FunctionSolver", "SolverResult", "Problem", "register_solver",
           "get_solver", "solve_ols", "solve_ar1", "solve_ridge", "OLSSolver", "AR1Solver",
           "RidgeSolver", "DEFAULT_RIDGE_ALPHAS"]

DEFAULT_RIDGE_ALPHAS = np.logspace(-2, 4, 7)


# ------------------------------------------------------------------------ protocol
@dataclass
class Problem:
    """What a solver knows about a fit besides the column statistics.

    Attributes
    ----------
    X : ndarray of shape (n_timepoints, n_atoms), float64
    runs : ndarray of int, shape (n_timepoints,)
        Run index 0..n_runs-1 of every row.
    bounds : list of (start, stop)
        Row range of every run.
    design : Design
        Run-centred atoms and per-run Gram matrices.
    do_cv : bool
        Whether leave-one-run-out prediction is wanted (``cv_r`` / ``cv_r2``).
    params : dict
        Estimator hyper-parameters (``alphas``, ``cv``, ``scoring``, ``ar1_bins``,
        ``ar1_scope``), as returned by :meth:`Solver.check_params`.
    """

    X: np.ndarray
    runs: np.ndarray
    bounds: list
    design: Design
    do_cv: bool
    params: dict = field(default_factory=dict)
    n_nuisance: int = 0

    @property
    def n_timepoints(self):
        return int(self.X.shape[0])

    @property
    def n_atoms(self):
        return int(self.X.shape[1])

    @property
    def n_runs(self):
        return len(self.bounds)

    @property
    def dof(self):
        """Residual degrees of freedom of the model with one intercept per run (and
        ``n_nuisance`` nuisance columns already projected out of the data)."""
        return self.n_timepoints - self.n_atoms - self.n_runs - self.n_nuisance


@dataclass
class SolverResult:
    """What a solver returns for a chunk of ``c`` columns (float64 or float32).

    ``coef`` is required; a field left ``None`` is derived by the estimator from the run
    statistics (``intercepts``, ``r2``; ``cv_r`` / ``cv_r2`` by refitting the solver on the
    training runs when leave-one-run-out prediction is wanted) or left out (``tvalues``).
    ``extra`` holds per-column outputs of the method, stored by the estimator as the
    attribute ``<name>_`` (e.g. ``alphas`` → ``alphas_``); the last axis is the column.
    """

    coef: np.ndarray                       # (K, c)
    tvalues: np.ndarray | None = None      # (K, c)
    intercepts: np.ndarray | None = None   # (n_runs, c)
    r2: np.ndarray | None = None           # (c,) in-sample R² after removing run means
    cv_r: np.ndarray | None = None         # (n_runs, c) Pearson r on every held-out run
    cv_r2: np.ndarray | None = None        # (n_runs, c) R² on every held-out run
    extra: dict = field(default_factory=dict)


class Solver:
    """Base class of an encoding method.

    Class attributes
    ----------------
    tvalues : bool
        The method gives t-values with ``n_timepoints - n_atoms - n_runs`` residual
        degrees of freedom (the estimator checks that they are positive, sets ``dof_``,
        and parametric p-values become available).
    lag : bool
        The statistics carry the lag-1 cross products (AR(1) noise models).
    """

    tvalues = False
    lag = False

    def check_params(self, params: dict) -> dict:
        """Validate / normalise the estimator hyper-parameters this method uses."""
        return params

    def prepare(self, problem: Problem) -> Any:
        """X-side work done once per fit; the result is passed to every :meth:`solve`."""
        return None

    def design(self, problem: Problem, state) -> Design:
        """The row blocks the statistics are computed over (default: the runs)."""
        return problem.design

    def solve(self, stats: ChunkStats, problem: Problem, state) -> SolverResult:
        raise NotImplementedError

    def loro(self, stats: ChunkStats, problem: Problem, state):
        """Leave-one-run-out r and R² (n_runs, c): refit on the other runs' statistics,
        score on the held-out run's."""
        R = stats.n_blocks
        cvr = np.empty((R, stats.n_columns))
        cvr2 = np.empty((R, stats.n_columns))
        for f in range(R):
            train = stats.select([r for r in range(R) if r != f])
            bf = np.asarray(self.solve(train, problem, state).coef, dtype=np.float64)
            cvr[f], cvr2[f] = fold_r(bf, stats.C[f], stats.G[f], stats.yy[f])
        return cvr, cvr2


class FunctionSolver(Solver):
    """A solver from a function ``fn(stats) -> coef (K, c) | SolverResult``.

    Parameters
    ----------
    fn : callable
        Receives the :class:`ChunkStats` of the runs (all runs for the fit, the training
        runs for a cross-validation fold).
    tvalues : bool, default=False
        Set when ``fn`` returns t-values with the OLS degrees of freedom.
    """

    def __init__(self, fn: Callable, tvalues: bool = False):
        self.fn = fn
        self.tvalues = bool(tvalues)

    def solve(self, stats, problem, state):
        out = self.fn(stats)
        return out if isinstance(out, SolverResult) else SolverResult(coef=np.asarray(out))

    def __repr__(self):
        return f"FunctionSolver({getattr(self.fn, '__name__', self.fn)!r})"


SOLVERS: dict[str, Solver] = {}


def register_solver(name: str, solver) -> Solver:
    """Register ``solver`` (a :class:`Solver` or a function, see :class:`FunctionSolver`)
    under ``name`` for ``VoxelwiseEncoder(method=name)``; an existing name is replaced."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"register_solver: name={name!r} must be a non-empty string.")
    if not isinstance(solver, Solver):
        if not callable(solver):
            raise ConfigError(f"register_solver: {solver!r} is neither a Solver nor a function.")
        solver = FunctionSolver(solver)
    SOLVERS[name] = solver
    return solver


def get_solver(name: str) -> Solver:
    """The solver registered as ``name``; :class:`~vlmbrain.errors.ConfigError` otherwise."""
    try:
        return SOLVERS[name]
    except (KeyError, TypeError):
        allowed = ", ".join(repr(k) for k in SOLVERS)
        raise ConfigError(f"method={name!r} is not a registered encoding solver; expected one of "
                          f"{allowed} (add one with vlmbrain.encoding.register_solver).") from None


# ----------------------------------------------------------------------------- OLS
def ols_algebra(G):
    """The X-side algebra of :func:`solve_ols` from the per-run centred Grams ``G`` (R, K, K).

    Returns ``(G_total⁻¹, [W_f])`` with ``W_f = [H_f⁻¹; S_f H_f⁻¹]`` for every held-out run
    ``f`` (``H_f`` the other runs' Gram, ``S_fᵀS_f = G_f``): the same for every column chunk, so a
    fit computes it once.
    """
    G = np.asarray(G, dtype=np.float64)
    Gs = G.sum(0)
    folds = []
    if G.shape[0] >= 2:
        for f in range(G.shape[0]):
            Hinv = _sym_inverse(Gs - G[f])
            folds.append(np.concatenate([Hinv, _gram_root(G[f]) @ Hinv]))
    return _sym_inverse(Gs), folds


def solve_ols(st, *, dof, do_cv, algebra=None):
    """OLS with one intercept per run: ``β = G⁻¹ C`` on the run-summed statistics,
    ``t = β / se`` with ``se² = diag(G⁻¹) RSS / dof``; leave-one-run-out refits use the
    totals minus the held-out run.

    ``algebra``: :func:`ols_algebra` of ``st.G`` when already computed (a fit's column chunks
    share it).
    """
    Gs, Cs, yys = st.totals()
    R = st.n_blocks
    Ginv, folds = algebra if algebra is not None else ols_algebra(st.G)
    beta = Ginv @ Cs
    rss = np.maximum(yys - np.einsum("kc,kc->c", beta, Cs), 0.0)
    se = np.sqrt(np.outer(np.diag(Ginv), rss / dof))
    with np.errstate(invalid="ignore", divide="ignore"):
        t = beta / se
        r2 = 1.0 - rss / yys        # = r2_from_totals: at the OLS solution βᵀGβ = βᵀC
    out = SolverResult(coef=beta, tvalues=t, intercepts=run_intercepts(st, beta), r2=r2)
    if do_cv:
        out.cv_r, out.cv_r2 = np.empty((R, st.n_columns)), np.empty((R, st.n_columns))
        K = Ginv.shape[0]
        for f in range(R):
            # β_f = H_f⁻¹C' (H_f, C' the other runs' statistics) and the held-out variance of
            # the prediction β_fᵀG_fβ_f = ‖S_f β_f‖², both from one product W_f C'
            P = folds[f] @ (Cs - st.C[f])
            cov = np.einsum("kc,kc->c", P[:K], st.C[f])
            varp = np.einsum("kc,kc->c", P[K:], P[K:])
            yy_f = st.yy[f]
            with np.errstate(invalid="ignore", divide="ignore"):
                out.cv_r[f] = cov / np.sqrt(varp * yy_f)
                out.cv_r2[f] = 1.0 - (yy_f - 2 * cov + varp) / yy_f
    return out


class OLSSolver(Solver):
    """Ordinary least squares; ``t`` with ``n_timepoints - n_atoms - n_runs`` dof."""

    tvalues = True

    def prepare(self, problem):
        return {"G": problem.design.G, "algebra": ols_algebra(problem.design.G)}

    def solve(self, stats, problem, state):
        algebra = state["algebra"] if isinstance(state, dict) and stats.G is state.get("G") else None
        return solve_ols(stats, dof=problem.dof, do_cv=problem.do_cv, algebra=algebra)


def _sym_inverse(G):
    """``G⁻¹`` of a symmetric positive (semi)definite matrix (Cholesky; pseudo-inverse if singular)."""
    return solve_sym(G, np.eye(G.shape[0]))[1]


def _gram_root(G):
    """``S`` with ``SᵀS = G`` for a symmetric positive semidefinite ``G`` (eigen-decomposition)."""
    w, V = np.linalg.eigh(G)
    return np.sqrt(np.clip(w, 0.0, None))[:, None] * V.T




# ---------------------------------------------------------------------------- AR(1)
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
        beta, _ = solve_sym(self.G0, C0)
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
        df = self.n - self.P - getattr(self, "extra_dof", 0)
        for val in np.unique(rho):
            idx = np.flatnonzero(rho == val)
            Gw = self.G0 - val * (self.Gp + self.Gp.T) + val**2 * (self.G0 - self.Lzz)
            Cw = C0[:, idx] - val * Cpm[:, idx] + val**2 * (C0[:, idx] - Lzy[:, idx])
            yyw = yy[idx] - 2 * val * yl[idx] + val**2 * (yy[idx] - Lyy[idx])
            b, Ginv = solve_sym(Gw, Cw)
            beta[:, idx] = b
            rs = np.maximum(yyw - np.einsum("pc,pc->c", b, Cw), 0.0)
            rss[idx] = rs
            disp = rs / df
            t[:, idx] = b[: self.K] / np.sqrt(np.outer(np.diag(Ginv)[: self.K], disp))
        return beta, t, rss


def solve_ar1(st, full, folds, *, bins, do_cv):
    """nilearn's AR(1) GLM from the statistics: OLS residuals → binned Yule–Walker ρ per
    column → prewhitened refit (``full``, an :class:`_AR1Space` over all runs); the
    leave-one-run-out refits (``folds``) keep each column's full-data ρ."""
    K = full.K
    Gs, Cs, yys = st.totals()
    rho = full.rho(st, bins)
    bz, t, _ = full.fit(st, rho)
    beta = bz[:K]
    out = SolverResult(coef=beta, tvalues=t, intercepts=run_intercepts(st, beta),
                       r2=r2_from_totals(beta, Gs, Cs, yys), extra={"ar1_rho": rho.astype(np.float32)})
    if do_cv:
        R = st.n_blocks
        out.cv_r, out.cv_r2 = np.empty((R, st.n_columns)), np.empty((R, st.n_columns))
        for f in range(R):
            bf = folds[f].fit(st, rho)[0][:K]
            out.cv_r[f], out.cv_r2[f] = fold_r(bf, st.C[f], st.G[f], st.yy[f])
    return out


class AR1Solver(Solver):
    """AR(1) GLM (nilearn ``run_glm(noise_model="ar1")``); ``ar1_bins``, ``ar1_scope``."""

    tvalues = True
    lag = True

    def prepare(self, problem):
        scope = problem.params.get("ar1_scope", "concat")
        R = problem.n_runs
        full = _AR1Space(problem.design, range(R), scope)
        full.extra_dof = problem.n_nuisance
        folds = ([_AR1Space(problem.design, [q for q in range(R) if q != f], scope) for f in range(R)]
                 if problem.do_cv else [])
        return full, folds

    def solve(self, stats, problem, state):
        full, folds = state
        return solve_ar1(stats, full, folds, bins=problem.params.get("ar1_bins", 100),
                         do_cv=problem.do_cv)


# ---------------------------------------------------------------------------- ridge
class _RidgeBlocks:
    """Blocks = runs ∩ contiguous CV segments; statistics per block (as ChunkStats)."""

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
            ym, Cp, _ = pool_y(n, yb, C, yy, xb, bi, xm)
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
        Ct = Ct + pool_y(st.n, st.ybar, st.C, st.yy, st.xbar, bi, xm)[1]
    return U @ ((U.T @ Ct) / (s[:, None] + alphas_v[None, :]))


def solve_ridge(st, cache, *, n_runs, alphas, cv, scoring, do_cv):
    """Ridge with unpenalised per-run intercepts and a per-column penalty chosen by inner
    cross-validation, from the statistics of the blocks run ∩ CV segment (``cache.blk``).

    The inner folds are the CV segments (``cv`` int) or the runs (``cv="runs"``) among
    the training blocks; the score is R² or ``-SSE / n`` averaged over folds. The
    leave-one-run-out refits nest their own inner CV on the training runs.
    """
    blk = cache.blk
    R = n_runs
    allb = np.arange(len(blk.bounds))

    def inner_folds(train):
        key = blk.run if cv == "runs" else blk.seg
        groups = [train[key[train] == g] for g in np.unique(key[train])]
        if len(groups) < 2:
            raise DimensionError(
                "ridge inner cross-validation needs at least 2 folds among the training "
                f"data; cv={cv!r} gives {len(groups)}. Use a larger int cv.")
        return groups

    def choose(train):
        sc = _ridge_scores(st, cache, train, inner_folds(train), alphas, scoring)
        best = np.argmax(np.where(np.isnan(sc), -np.inf, sc), axis=0)
        return alphas[best], sc

    a_v, sc = choose(allb)
    beta = _ridge_fit(st, cache, allb, a_v)
    icpt = np.empty((R, st.n_columns))
    for r in range(R):
        bi = allb[blk.run == r]
        _, xm, ym, Gr, Cr, yyr = pool(st.n, st.xbar, st.ybar, st.G, st.C, st.yy, bi)
        icpt[r] = ym - xm @ beta
    # in-sample R² after run centring
    Gs = 0.0
    Cs = 0.0
    yys = 0.0
    runstats = []
    for r in range(R):
        bi = allb[blk.run == r]
        _, xm, ym, Gr, Cr, yyr = pool(st.n, st.xbar, st.ybar, st.G, st.C, st.yy, bi)
        runstats.append((Gr, Cr, yyr))
        Gs, Cs, yys = Gs + Gr, Cs + Cr, yys + yyr
    out = SolverResult(coef=beta, intercepts=icpt, r2=r2_from_totals(beta, Gs, Cs, yys),
                       extra={"alphas": a_v, "cv_scores": sc})
    if do_cv:
        out.cv_r, out.cv_r2 = np.empty((R, st.n_columns)), np.empty((R, st.n_columns))
        for f in range(R):
            train = allb[blk.run != f]
            a_f, _ = choose(train)
            bf = _ridge_fit(st, cache, train, a_f)
            Gr, Cr, yyr = runstats[f]
            out.cv_r[f], out.cv_r2[f] = fold_r(bf, Cr, Gr, yyr)
    return out


class RidgeSolver(Solver):
    """Ridge with per-column ``alpha`` from ``alphas`` by inner CV (``cv``, ``scoring``)."""

    def check_params(self, params):
        cv = params.get("cv", 5)
        if not (cv == "runs" or (isinstance(cv, (int, np.integer)) and cv >= 2)):
            raise ConfigError(f"cv={cv!r}; use an int >= 2 or 'runs'.")
        raw = params.get("alphas")
        alphas = DEFAULT_RIDGE_ALPHAS if raw is None else np.atleast_1d(np.asarray(raw, dtype=np.float64))
        if alphas.ndim != 1 or alphas.size == 0 or np.any(alphas < 0):
            raise ConfigError(f"alphas={raw!r} must be non-negative floats.")
        return {**params, "alphas": alphas}

    def prepare(self, problem):
        cv = problem.params.get("cv", 5)
        blk = _RidgeBlocks(problem.runs, problem.bounds, cv)
        if cv == "runs" and problem.n_runs < 2:
            raise DimensionError("cv='runs' needs at least 2 runs; use cv=5 with one run.")
        bdesign = Design(problem.X, blk.bounds)
        return bdesign, _RidgeCache(bdesign.n, bdesign.xbar, bdesign.G, blk)

    def design(self, problem, state):
        return state[0]

    def solve(self, stats, problem, state):
        p = problem.params
        return solve_ridge(stats, state[1], n_runs=problem.n_runs, alphas=p["alphas"],
                           cv=p.get("cv", 5), scoring=p.get("scoring", "r2"), do_cv=problem.do_cv)


register_solver("ols", OLSSolver())
register_solver("ar1", AR1Solver())
register_solver("ridge", RidgeSolver())
