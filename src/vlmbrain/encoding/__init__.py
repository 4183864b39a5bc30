"""Voxel-wise encoding: OLS / AR(1) GLM / ridge, leave-one-run-out CV, circular-shift nulls.

Everything here is built on **sufficient statistics per run**. For a column chunk of
``Y`` (n_timepoints, n_grayordinates) one pass computes, for every run ``r``, the
run-centred cross products ``Xc_rᵀ Y_r`` (n_atoms, chunk) with a float32 GEMM (the only
O(T·K·V) work) and the run-centred sums of squares of ``Y`` (float64 accumulation
for everything downstream). The per-run intercepts are handled exactly by centring
within runs (Frisch–Waugh–Lovell), and every fit that follows — the full OLS fit, the
leave-one-run-out folds, the AR(1) whitened refit, the ridge inner cross-validation —
is small (K × K) algebra on these statistics. Memory is bounded by ``chunk_size``.

Modules
-------
``statistics``
    :class:`ChunkStats`, :class:`Design`: the per-run (per-block) statistics.
``solvers``
    The registry ``SOLVERS`` (``"ols"``, ``"ar1"``, ``"ridge"``), :func:`register_solver`,
    :func:`get_solver`, :class:`Solver`, :class:`SolverResult`.
``estimator``
    ``VoxelwiseEncoder(method=...).fit(X, Y, runs=runs)``: ``coef_`` (K, V),
    ``tvalues_`` (K, V), ``intercepts_`` (n_runs, V), ``cv_r_`` (V,), ``cv_r2_`` (V,),
    ``alphas_`` (V,) (ridge), ``predict(X, runs)``.
``null``
    ``shift_null(X, Y, runs, n_shifts=1000, random_state=0)``: circular-shift null of the
    atom time courses → :class:`ShiftNullResult`.
``inference``
    :func:`fit_and_infer` (maps, p-values, FDR / FWER), :func:`fdr_per_map`,
    :func:`second_level` (random effects across subjects).
"""

from vlmbrain.encoding._checks import check_runs
from vlmbrain.encoding.estimator import VoxelwiseEncoder
from vlmbrain.encoding.inference import (
    EncodingResult,
    fdr_per_map,
    fit_and_infer,
    parametric_pvalues,
    second_level,
    shift_null_pvalues,
)
from vlmbrain.encoding.null import ShiftNullResult, shift_null
from vlmbrain.encoding.solvers import (
    DEFAULT_RIDGE_ALPHAS,
    SOLVERS,
    FunctionSolver,
    Problem,
    Solver,
    SolverResult,
    get_solver,
    register_solver,
)
from vlmbrain.encoding.statistics import ChunkStats, Design

__all__ = ["VoxelwiseEncoder", "ShiftNullResult", "shift_null", "check_runs",
           "DEFAULT_RIDGE_ALPHAS", "SOLVERS", "Solver", "FunctionSolver", "SolverResult", "Problem",
           "register_solver", "get_solver", "ChunkStats", "Design", "EncodingResult",
           "fit_and_infer", "fdr_per_map", "parametric_pvalues", "shift_null_pvalues",
           "second_level"]
