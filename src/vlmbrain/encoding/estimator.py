"""scikit-learn estimator of the voxel-wise encoding model.

:class:`VoxelwiseEncoder` validates the inputs, computes the per-run sufficient
statistics of ``Y`` in one pass (:mod:`vlmbrain.encoding.statistics`), cuts the columns
into chunks and hands every chunk to the solver its ``method`` names in the registry
(:mod:`vlmbrain.encoding.solvers`). Memory is bounded by ``chunk_size``.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import ThreadpoolController

from vlmbrain.encoding._checks import _check_xy, _nonfinite_error, _resolve_backend, check_runs
from vlmbrain.encoding.solvers import Problem, SolverResult, get_solver
from vlmbrain.encoding.statistics import (
    Design,
    column_slice,
    r2_from_totals,
    run_intercepts,
)
from vlmbrain.errors import ConfigError, DimensionError

logger = logging.getLogger("vlmbrain")

__all__ = ["VoxelwiseEncoder"]

# Columns read and solved per task by the numpy backend (``chunk_size`` caps it further).
# 2,048 against 8,192: the OLS fit 15 % faster at T = 3,600, V = 91,282, K = 64 on 2 cores
# (benchmarks/RESULTS.md, "Encoding against the floor"); 1,024 and 512 are no faster.
_SOLVE_COLUMNS = 2048


class VoxelwiseEncoder(RegressorMixin, BaseEstimator):
    """Voxel-wise linear encoding model with one intercept per run.

    For every target column ``y_v`` (a grayordinate) fits ``y_v = X β_v + D γ_v + ε``
    with ``X`` (n_timepoints, n_atoms) the atom time courses and ``D`` one indicator
    column per run (the per-run intercepts, never penalised).

    Parameters
    ----------
    method : str, default="ols"
        A solver of :data:`vlmbrain.encoding.SOLVERS` (checked at fit time; add one with
        :func:`vlmbrain.encoding.register_solver`). Built in: ``"ols"``: ordinary least
        squares, ``t = β / se`` with ``df = n_timepoints - n_atoms - n_runs``. ``"ar1"``:
        nilearn's AR(1) GLM (``run_glm(noise_model="ar1")``): OLS residuals → lag-1
        Yule–Walker coefficient per column, truncated to ``1/ar1_bins`` steps,
        prewhitening (first sample of a segment unchanged, then ``y_t − ρ y_{t−1}``), OLS
        on the whitened data; ``t`` from the whitened residual variance. ``"ridge"``:
        ridge on the atoms with a per-column ``alpha`` chosen from ``alphas`` by inner
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
        Columns handled at once by the K × K algebra. numpy backend: columns are read and
        solved in tasks of ``min(chunk_size, 2048)``, a few tasks per core in flight, so
        memory beyond ``Y`` and the outputs is temporaries ∝ that width. torch backend: the
        raw moments of all columns first (blocks of at least 32,768 columns; ``4 × n_runs ×
        (n_atoms + 1) × n_grayordinates`` bytes, × 3 for AR(1)), then the algebra per
        ``chunk_size`` columns. ``Y`` itself is never copied.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the big GEMM (``Xᵀ Y``) and of ``Y`` chunks; every small solve
        and all accumulated statistics are float64.
    backend : {"numpy", "torch"}, default="numpy"
        ``"torch"`` runs the GEMMs with PyTorch on ``device`` (module
        ``vlmbrain.backends.torch_encoding``, imported only then).
    device : str, default=None
        Torch device (``"cuda"``, ``"cpu"``); ignored by the numpy backend.
    n_nuisance : int, default=0
        Nuisance columns (drift, confounds) already projected out of ``X`` and ``y`` within
        runs (:func:`vlmbrain.encoding.nuisance.residualize`); subtracted from the residual
        degrees of freedom.

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
    dof_ : float, residual degrees of freedom (methods with t-values) or None
    n_runs_ : int, n_features_in_ : int

    Notes
    -----
    A 1-D ``y`` gives 1-D attributes (scikit-learn convention). NaN/inf in ``Y``
    raises: pass only valid columns.
    """

    def __init__(self, method="ols", *, alphas=None, cv=5, scoring="r2", ar1_bins=100,
                 ar1_scope="concat", compute_cv="auto", chunk_size=8192, dtype="float32",
                 backend="numpy", device=None, n_nuisance=0):
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
        self.n_nuisance = n_nuisance

    # .................................................................. validation
    def _validate_params(self):
        """The registered solver and its hyper-parameters, validated."""
        try:
            solver = get_solver(self.method)
        except ConfigError as err:
            raise ConfigError(f"VoxelwiseEncoder: {err}") from None
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
        params = {"alphas": self.alphas, "cv": self.cv, "scoring": self.scoring,
                  "ar1_bins": self.ar1_bins, "ar1_scope": self.ar1_scope}
        try:
            params = solver.check_params(params)
        except ConfigError as err:
            raise ConfigError(f"VoxelwiseEncoder: {err}") from None
        return solver, params

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
        solver, params = self._validate_params()
        dtype = np.dtype(self.dtype)
        X, Y, y_1d = _check_xy(X, y, dtype, estimator=self)
        T, K = X.shape
        V = Y.shape[1]
        run_lab, bounds = check_runs(runs, T)
        R = len(bounds)
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
        df = T - K - R - int(self.n_nuisance)
        if solver.tvalues and df < 1:
            raise DimensionError(
                f"{T} timepoints leave no residual degrees of freedom for {K} atoms + {R} "
                "run intercepts; use fewer atoms or method='ridge'.")
        be = _resolve_backend(self.backend, self.device)
        problem = Problem(X=X, runs=run_lab, bounds=bounds, design=Design(X, bounds),
                          do_cv=bool(do_cv), params=params, n_nuisance=int(self.n_nuisance))
        state = solver.prepare(problem)
        cs = int(self.chunk_size)
        ctl = ThreadpoolController()
        design = solver.design(problem, state)
        out = {}

        def finish(st, sl):
            res = solver.solve(st, problem, state)
            if not isinstance(res, SolverResult):
                raise TypeError(f"solver {self.method!r} returned {type(res).__name__}, expected a SolverResult")
            return _complete(res, solver, st, problem, state)

        if be is None:
            # numpy: one pass over column chunks, each read run block by run block and solved at
            # once, on a thread per core with single-threaded BLAS: the GEMMs, the sums of squares
            # and the K x K algebra of every chunk all run in parallel (numpy releases the GIL)
            # and the statistics of only a few chunks are held at a time
            # at most _SOLVE_COLUMNS columns per task: a smaller working set for the chunk's
            # statistics and K x K algebra, and enough tasks for the cores to balance
            step = min(cs, _SOLVE_COLUMNS)
            slices = [slice(a, min(V, a + step)) for a in range(0, V, step)]

            def chunk(sl):
                st = design.all_stats(Y[:, sl], solver.lag, None, col_block=step)
                return finish(column_slice(st, slice(None)), sl)

            n_workers = _blas_threads(ctl)
            with ctl.limit(limits=1, user_api="blas"):
                try:
                    for sl, res in zip(slices, _map_chunks(chunk, slices, n_workers), strict=True):
                        _store(out, res, sl, V, first=sl.start == 0, method=self.method,
                               shape=(K, R, sl.stop - sl.start))
                except DimensionError:
                    bad = np.flatnonzero(~np.all(np.isfinite(Y), axis=0))
                    if bad.size:      # name every non-finite column, not those of one chunk
                        raise _nonfinite_error(bad) from None
                    raise
        else:
            # another backend (torch): its raw moments in one pass over Y, then the K x K
            # algebra per column chunk, single-threaded
            st_all = design.all_stats(Y, solver.lag, be, col_block=max(cs, 32768))
            for start in range(0, V, cs):
                sl = slice(start, min(V, start + cs))
                with ctl.limit(limits=1, user_api="blas"):
                    res = finish(column_slice(st_all, sl), sl)
                _store(out, res, sl, V, first=start == 0, method=self.method, shape=(K, R, sl.stop - start))
        self.n_features_in_ = K
        self.n_runs_ = R
        self.n_targets_ = V
        self.dof_ = float(df) if solver.tvalues else None
        sq = (lambda a: a[..., 0]) if y_1d else (lambda a: a)
        self.coef_ = sq(out["coef"])
        self.tvalues_ = sq(out["tvalues"]) if "tvalues" in out else None
        self.intercepts_ = sq(out["intercepts"])
        self.r2_ = sq(out["r2"])
        if do_cv:
            cvr, cvr2 = out["cv_r"], out["cv_r2"]
            self.cv_r_folds_ = sq(cvr)
            self.cv_r2_folds_ = sq(cvr2)
            self.cv_r_ = sq(np.nanmean(cvr, axis=0) if np.all(np.isfinite(cvr)) else cvr.mean(0))
            self.cv_r2_ = sq(cvr2.mean(axis=0))
        else:
            self.cv_r_folds_ = self.cv_r2_folds_ = self.cv_r_ = self.cv_r2_ = None
        for name, arr in out.items():
            if name.startswith("extra:"):
                setattr(self, name[len("extra:"):] + "_", sq(arr))
        self._y_1d = y_1d
        return self

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


def _blas_threads(ctl) -> int:
    """Threads the BLAS would use (respects ``OMP_NUM_THREADS`` & co.): the number of chunk workers."""
    counts = [int(info.get("num_threads") or 1) for info in ctl.info() if info.get("user_api") == "blas"]
    return max(1, max(counts, default=1))


def _map_chunks(fn, items, n_workers):
    """``fn`` over ``items`` in order, on ``n_workers`` threads (at most two chunks ahead per worker)."""
    if n_workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        pending = []
        it = iter(items)
        for item in it:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * n_workers:
                break
        for item in it:
            yield pending.pop(0).result()
            pending.append(pool.submit(fn, item))
        for fut in pending:
            yield fut.result()


def _complete(res, solver, st, problem, state):
    """Fill the fields a solver left out from the run statistics of the chunk."""
    beta = np.asarray(res.coef, dtype=np.float64)
    if res.intercepts is None:
        res.intercepts = run_intercepts(st, beta)
    if res.r2 is None:
        res.r2 = r2_from_totals(beta, *st.totals())
    if problem.do_cv and (res.cv_r is None or res.cv_r2 is None):
        res.cv_r, res.cv_r2 = solver.loro(st, problem, state)
    return res


_F32 = ("coef", "tvalues", "intercepts", "r2", "cv_r", "cv_r2")


def _store(out, res, sl, V, *, first, method, shape):
    """Write one chunk's results into the (…, V) outputs, allocated on the first chunk:
    the model's fields as float32, the method's extras in the dtype it returns."""
    K, R, c = shape
    want = {"coef": (K, c), "tvalues": (K, c), "intercepts": (R, c), "r2": (c,),
            "cv_r": (R, c), "cv_r2": (R, c)}
    fields = {name: getattr(res, name) for name in _F32}
    fields.update({f"extra:{k}": v for k, v in res.extra.items()})
    present = {k for k, v in fields.items() if v is not None}
    if not first and present != set(out):
        raise ValueError(f"solver {method!r} returned fields {sorted(present)} for a chunk "
                         f"but {sorted(out)} for the first one")
    for name in present:
        val = np.asarray(fields[name])
        if name in want and val.shape != want[name]:
            raise DimensionError(f"solver {method!r} returned {name} of shape {val.shape}; "
                                 f"expected {want[name]}")
        if first:
            dtype = np.float32 if name in _F32 else val.dtype
            out[name] = np.empty(val.shape[:-1] + (V,), dtype)
        out[name][..., sl] = val
