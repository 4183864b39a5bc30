"""Inference on encoding maps: p-values, multiple-comparison correction, second level
(docs/method.md §4.6–4.9).

One subject (or a group average), :func:`fit_and_infer`:

- maps from the registered solver (``method``), leave-one-run-out prediction r;
- drift and confounds (``nuisance``) projected out of atoms and data, run by run;
- p for every (atom, grayordinate) and for every grayordinate's fit from the circular-shift
  null of the fitted model (all atoms shifted jointly, the nuisance held fixed: OLS
  :func:`vlmbrain.encoding.shift_null`; AR(1) and ridge :mod:`vlmbrain.encoding.refit_null`)
  — *pooled* (default: the statistic scaled by its own null's spread, compared with the
  scaled null pooled over the map's grayordinates, generalised Pareto far tail), *gaussian*
  (the earlier per-grayordinate Gaussian / scaled χ²) or *empirical* (rank among the
  shifts) — or, with ``n_shifts = 0``, parametric (Student t with the model's residual dof
  for β, F(K, dof) for R²);
- correction: Benjamini–Hochberg FDR *per atom map* (each atom's map is its own family)
  and over grayordinates for the model fit (:func:`fdr_per_map`), or max-statistic FWER
  from the same shift null.

Several subjects, :func:`second_level`: random effects, a one-sample t-test across
subjects of the betas and of the Fisher-z of the prediction r (docs/method.md §4.9).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from vlmbrain.encoding.estimator import VoxelwiseEncoder
from vlmbrain.encoding.null import shift_null
from vlmbrain.encoding.statistics import loro_conditions
from vlmbrain.errors import ConfigError
from vlmbrain.stats import fdr_bh

logger = logging.getLogger("vlmbrain")

__all__ = ["EncodingResult", "NULL_MODELS", "NULL_PVALUE_METHODS", "fit_and_infer", "fdr_per_map", "fwer_pvalues",
           "parametric_pvalues", "shift_null_pvalues", "second_level"]


@dataclass
class EncodingResult:
    """Maps and summary of :func:`fit_and_infer`, over the valid columns only.

    Attributes
    ----------
    arrays : dict of str → ndarray
        ``beta``, ``t``, ``p``, ``q`` (n_atoms, V); ``r_cv``, ``p_r``, ``q_r`` (V,); and
        ``r2_cv`` / ``alpha`` (V,) when the method gives them, ``p_empirical`` /
        ``p_r_empirical`` when calibrated shift-null p-values replace the empirical ones.
        ``t`` and ``r_cv`` are NaN where the method has no t-values / no CV.
    info : dict
        ``method``, ``n_timepoints``, ``n_atoms``, ``correction``, ``q``, ``null``
        (``"circular-shift"`` | ``"parametric"``), and ``n_shifts`` / ``null_pvalues``
        (shift null) or ``dof`` (parametric); ``note`` when the p-values come from the
        OLS null but the maps from another method.
    """

    arrays: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def fdr_per_map(p, q):
    """Benjamini–Hochberg q-values per row of a (K, V) array (each atom map its own family)."""
    p = np.asarray(p)
    return np.vstack([fdr_bh(p[k], alpha=q)[1] for k in range(p.shape[0])])


def parametric_pvalues(tvalues, r2, dof, n_atoms):
    """Two-sided Student-t p of every t-value and the F-test p of every R².

    ``F = (R² / K) / ((1 − R²) / dof)`` with ``(K, dof)`` degrees of freedom; R² is
    clipped to ``[0, 1 − 1e-12]``.
    """
    from scipy import stats as sps

    p_beta = 2 * sps.t.sf(np.abs(tvalues), dof)
    r2 = np.clip(np.asarray(r2, dtype=np.float64), 0, 1 - 1e-12)
    fstat = (r2 / n_atoms) / ((1 - r2) / dof)
    p_r = sps.f.sf(fstat, n_atoms, dof)
    return p_beta, p_r


#: What each ``null_pvalues`` value means, as written into ``summary.json``.
NULL_PVALUE_METHODS = {
    "pooled": "each grayordinate's statistic scaled by the spread of its own shift null; p from the scaled "
              "null values of all grayordinates of the map pooled (each scaled leaving out the shifts within "
              "min_shift of it), generalised Pareto far tail (Winkler et al. 2016); each scale also corrected "
              "by the expected null second moment at its lag relative to its shifts' (AR(1) noise, the "
              "fitted model's own nuisance-projected directions, for AR(1) prewhitened, for ridge at the "
              "grayordinate's penalty: the seam correction); for ridge's held-out r from the folds' expected "
              "cross-products (ratio of expectations)",
    "gaussian": "Gaussian tail of each grayordinate's shift-null variance (t); Satterthwaite scaled chi2 (R2)",
    "empirical": "rank among the shifts: (1 + #{null >= observed}) / (1 + n_shifts)",
}
NULL_PVALUE_METHODS["calibrated"] = NULL_PVALUE_METHODS["gaussian"]

#: The model whose shift null gives the p-values, per encoding method.
NULL_MODELS = {
    "ols": "OLS t (atom maps) and in-sample R2 (fit)",
    "ar1": "prewhitened AR(1) GLM refitted on every shift (rho re-estimated per grayordinate): t (atom maps) and "
           "in-sample R2 (fit)",
    "ridge": "ridge (alpha per grayordinate tuned again by the inner CV on every shift): coefficients over "
             "their own standard errors (atom maps) and leave-one-run-out prediction r (fit)",
}


def shift_null_pvalues(null, null_pvalues="pooled", backend="numpy"):
    """``(p_beta, p_r, empirical)`` from a shift-null result.

    ``null_pvalues`` is ``"pooled"`` (default), ``"gaussian"`` (``"calibrated"``, its earlier
    name) or ``"empirical"``; the empirical p-values come back as ``empirical = (p_beta, p_r)``
    unless they are the ones chosen (then ``None``). A null without what the kind needs falls
    back to empirical p-values with a warning.
    """
    emp = null.pvalues("empirical")
    if null_pvalues == "empirical":
        return emp[0], emp[1], None
    p_beta, p_r = null.pvalues(null_pvalues)
    if p_beta is None:
        logger.warning("the %s backend returns no null moments: empirical shift-null p-values", backend)
        return emp[0], emp[1], None
    return p_beta, p_r, emp


def fwer_pvalues(null, p_beta, p_r, null_pvalues, q=0.05):
    """Family-wise error p-values per atom map and for the fit → ``(p_fwer_beta, p_fwer_r)``.

    With pooled p-values: Bonferroni over each map's valid grayordinates (exact for independent
    grayordinates, conservative for correlated ones). The max-statistic method ranks the
    observed map maximum among the shifts' maxima; neighbouring shifts of slow atoms give nearly
    the same maximum, so a few hundred shifts hold only a few dozen independent maxima, and the
    rank among them rejects more often than α (6.9 % [4.8, 9.5] of null maps at α = 0.05,
    ρ = 0.5, 120 shifts). It is kept for the empirical and Gaussian p-values.
    """
    if null_pvalues != "pooled":
        return null.fwer_t(q)[1], null.fwer_r2(q)[1]
    p_beta = np.asarray(p_beta, np.float64)
    m = np.sum(np.isfinite(p_beta), axis=1, keepdims=True)
    p_r = np.asarray(p_r, np.float64)
    return np.minimum(1.0, p_beta * m), np.minimum(1.0, p_r * np.sum(np.isfinite(p_r)))


def fit_and_infer(X, Y, runs, *, method="ols", n_shifts=1000, null_pvalues="pooled",
                  correction="fdr", q=0.05, chunk_size=8192, backend="numpy",
                  random_state=0, nuisance=None, overwrite_y=False, progress=False) -> EncodingResult:
    """Fit the encoding model and test every map.

    Parameters
    ----------
    X : ndarray of shape (n_timepoints, n_atoms)
        Atom time courses, already z-scored within runs.
    Y : ndarray of shape (n_timepoints, n_valid), float32
        fMRI data of the valid grayordinates.
    runs : ndarray of int, shape (n_timepoints,)
        Run index of every TR.
    method : str, default="ols"
        A registered solver (:data:`vlmbrain.encoding.SOLVERS`).
    n_shifts : int, default=1000
        Circular shifts of the null; ``0`` → parametric p-values (needs t-values). When
        fewer shifts are admissible, all of them are used (``info["n_shifts"]``).
    null_pvalues : {"pooled", "gaussian", "calibrated", "empirical"}, default="pooled"
        See :data:`NULL_PVALUE_METHODS`. ``"gaussian"`` (and its earlier name
        ``"calibrated"``) is the earlier calibration, kept as it was: the OLS null whatever
        the method, shifted atoms refitted without the nuisance.
    correction : {"fdr", "fwer"}, default="fdr"
        FWER (needs ``n_shifts > 0``): Bonferroni on the pooled p-values, or the max-statistic
        of the shift null for the empirical / Gaussian ones (:func:`fwer_pvalues`).
    q : float, default=0.05
        FDR level / FWER alpha (the q-values themselves do not depend on it).
    chunk_size : int, default=8192
        Columns per chunk of the encoder; the shift null uses ``min(chunk_size, 512)``.
    backend : {"numpy", "torch"}, default="numpy"
        Used by the encoder and by the shift null.
    random_state : int, default=0
        Seed of the shift null.
    nuisance : ndarray of shape (n_timepoints, n_columns), default=None
        Drift basis and confounds (:func:`vlmbrain.encoding.nuisance.nuisance_matrix`),
        projected out of ``X`` and ``Y`` with the run intercepts before every fit; the
        shift null keeps them in place.
    overwrite_y : bool, default=False
        With ``nuisance``, residualise ``Y`` in place (saves a copy of the data).
    progress : bool, default=False
        A progress bar (tqdm, with ETA, on stderr) over the shift null.

    Returns
    -------
    EncodingResult
    """
    from vlmbrain.encoding.nuisance import residualize
    from vlmbrain.encoding.refit_null import refit_shift_null

    if null_pvalues not in NULL_PVALUE_METHODS:
        raise ConfigError(f"null_pvalues={null_pvalues!r}; use one of {sorted(NULL_PVALUE_METHODS)}")
    if n_shifts <= 0:
        if method == "ridge":
            raise ConfigError("encoding.n_shifts = 0 (parametric p) needs encoding.method 'ols' or 'ar1'; "
                              "ridge has no t-statistics: set encoding.n_shifts > 0")
        if correction == "fwer":
            raise ConfigError("encoding.correction = 'fwer' uses the max-statistic of the shift null: "
                              "set encoding.n_shifts > 0, or use correction 'fdr'")
    n_nuis = 0
    if nuisance is not None:
        X, _ = residualize(np.asarray(X, np.float64), runs, nuisance)
        Y, n_nuis = residualize(Y, runs, nuisance, out=Y if overwrite_y else None)
    enc = VoxelwiseEncoder(method=method, chunk_size=chunk_size, backend=backend, n_nuisance=n_nuis).fit(
        X, Y, runs=runs)
    coef = enc.coef_
    tvals = enc.tvalues_ if enc.tvalues_ is not None else np.full_like(coef, np.nan)
    cv_r = enc.cv_r_ if enc.cv_r_ is not None else np.full(Y.shape[1], np.nan, np.float32)
    n_atoms = X.shape[1]
    info = {"method": method, "n_timepoints": int(Y.shape[0]), "n_atoms": int(n_atoms),
            "correction": correction, "q": q, "n_nuisance": int(n_nuis),
            "loro_condition": [c if np.isfinite(c) else None for c in loro_conditions(X, runs)]}
    extra = {}
    if n_shifts > 0:
        legacy = null_pvalues in ("gaussian", "calibrated")
        if legacy or method not in ("ar1", "ridge"):
            # the OLS null: the OLS method, the earlier calibration, and a plug-in method
            # (whose maps are then tested on the OLS model: info["note"])
            null = shift_null(X, Y, runs=runs, n_shifts=n_shifts, random_state=random_state,
                              chunk_size=min(chunk_size, 512), backend=backend, nuisance=nuisance,
                              exact_nuisance=not legacy, pooled=null_pvalues == "pooled", progress=progress)
            null_model = "ols"
        else:
            null = refit_shift_null(X, Y, runs, method=method, n_shifts=n_shifts, random_state=random_state,
                                    nuisance=nuisance, pooled=null_pvalues == "pooled", progress=progress)
            null_model = method
        p_beta, p_r, empirical = shift_null_pvalues(null, null_pvalues, backend)
        if empirical is not None:
            extra["p_empirical"], extra["p_r_empirical"] = empirical
        info.update(null="circular-shift", n_shifts=null.n_shifts, n_shifts_requested=null.n_shifts_requested,
                    null_pvalues=null_pvalues, null_pvalues_method=NULL_PVALUE_METHODS[null_pvalues],
                    null_model=NULL_MODELS[null_model])
        if null_pvalues == "pooled":
            info["pooled_tails"] = null.describe()
        if correction == "fwer":
            q_beta, q_r = fwer_pvalues(null, p_beta, p_r, null_pvalues, q)
            info["fwer_method"] = ("Bonferroni over the map's grayordinates on the pooled p" if null_pvalues == "pooled"
                                   else "max-statistic over grayordinates (Nichols & Holmes 2002)")
        if null_model != method:
            info["note"] = ("p-values from the shift null of the OLS model; coefficient maps from "
                            f"the {method} fit")
    else:
        if enc.tvalues_ is None:
            raise ConfigError(f"encoding.n_shifts = 0 (parametric p) needs t-values; method {method!r} "
                              "gives none: set encoding.n_shifts > 0")
        dof = float(enc.dof_)
        p_beta, p_r = parametric_pvalues(tvals, enc.r2_, dof, n_atoms)
        info.update(null="parametric", dof=dof)
    if correction == "fdr":
        q_beta = fdr_per_map(p_beta, q)
        q_r = fdr_bh(p_r, alpha=q)[1]
    arrays = {"beta": coef, "t": tvals, "p": p_beta, "q": q_beta, "r_cv": cv_r, "p_r": p_r, "q_r": q_r}
    if getattr(enc, "cv_r2_", None) is not None:
        arrays["r2_cv"] = enc.cv_r2_
    if getattr(enc, "alphas_", None) is not None:
        arrays["alpha"] = np.asarray(enc.alphas_, np.float32)
    arrays.update(extra)
    return EncodingResult(arrays=arrays, info=info)


def second_level(beta_paths, r_paths) -> dict:
    """Random-effects test across subjects, streamed (one subject's maps in memory at a time).

    Per (atom, grayordinate): one-sample t-test of the subjects' betas against 0 (two-sided).
    Per grayordinate: one-sample t-test of the Fisher-z of the subjects' LORO r against 0
    (one-sided, r > 0). Grayordinates missing (NaN) in some subject are tested on the others.

    Returns
    -------
    dict with ``beta`` (mean, K×V), ``t``, ``p`` (K×V), ``r_cv`` (mean r, V), ``t_r``, ``p_r`` (V),
    ``n`` (subjects per grayordinate).
    """
    from scipy import stats as sps

    sums = {}
    for name, paths in (("beta", beta_paths), ("r", r_paths)):
        s1 = s2 = n = None
        for path in paths:
            x = np.load(path, mmap_mode="r").astype(np.float64)
            if name == "r":
                x = np.arctanh(np.clip(x, -0.999999, 0.999999))
            ok = np.isfinite(x)
            x = np.where(ok, x, 0.0)
            if s1 is None:
                s1, s2, n = np.zeros_like(x), np.zeros_like(x), np.zeros(x.shape, np.int64)
            s1 += x
            s2 += x * x
            n += ok
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s1 / n
            var = (s2 - n * mean**2) / (n - 1)
            t = mean / np.sqrt(var / n)
        sums[name] = (mean, t, n)
    mean_b, t_b, n_b = sums["beta"]
    mean_z, t_r, n_r = sums["r"]
    with np.errstate(invalid="ignore"):
        p = 2 * sps.t.sf(np.abs(t_b), n_b - 1)
        p_r = sps.t.sf(t_r, n_r - 1)
    return {"beta": mean_b.astype(np.float32), "t": t_b.astype(np.float32), "p": p,
            "r_cv": np.tanh(mean_z).astype(np.float32), "t_r": t_r.astype(np.float32), "p_r": p_r,
            "n": n_b[0] if n_b.ndim == 2 else n_b}
