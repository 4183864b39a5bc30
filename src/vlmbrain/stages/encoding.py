"""Stage ``encoding``: voxel-wise encoding of every unit's atoms (docs/method.md §4).

The stage does the I/O; the statistics — the fit, the null, p-values and their correction,
the second level across subjects — are :mod:`vlmbrain.encoding.inference`. Writes
``encoding/<model>/<unit>/`` maps (:data:`vlmbrain.artifacts.ATOM_MAPS`, ``FIT_MAPS`` and the
optional ones), each stored once in the brain space's own format
(:func:`vlmbrain.artifacts.write_map`: ``.dscalar.nii``, ``.nii.gz``, ``.L/.R.func.gii``, or
``.npy`` for a space of plain columns; ``encoding.npy_maps`` adds a ``.npy`` copy), and
``summary.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vlmbrain._io import save_json, save_npy, save_tsv
from vlmbrain.artifacts import Unit, map_files, read_json, write_map
from vlmbrain.errors import ConfigError, DimensionError
from vlmbrain.stages.base import Stage, StageContext, Step, register_stage
from vlmbrain.stages.brain import brain_of
from vlmbrain.stages.dictionary import units_of
from vlmbrain.stages.stimulus import timeline_of, train_mask

logger = logging.getLogger("vlmbrain")


def full(values: np.ndarray, valid: np.ndarray, fill=np.nan) -> np.ndarray:
    """Scatter (..., n_valid) results back to (..., n_grayordinates) with NaN elsewhere."""
    out = np.full(values.shape[:-1] + (valid.size,), fill, dtype=np.float32)
    out[..., valid] = values
    return out


#: Names inside the neuroimaging files of the per-grayordinate maps.
_FIT_NAMES = {"r_cv": "leave-one-run-out r", "p_r": "p of the model fit", "q_r": "q of the model fit",
              "r2_cv": "leave-one-run-out R2", "alpha": "ridge penalty", "p_r_empirical": "empirical p of the fit"}

#: The maps a finished encoding step must have left (the optional ones depend on the method).
REQUIRED_MAPS = ("beta", "t", "q", "r_cv", "q_r")


def write_maps(space, arrays: dict, out_dir: Path, n_atoms: int, npy: bool = False) -> list[Path]:
    """Every map once, in the space's own format (``.npy`` too with ``npy``); returns the files."""
    files = []
    for name, arr in arrays.items():
        if np.ndim(arr) == 2:
            names = [f"atom-{k} {name}" for k in range(np.shape(arr)[0])]
        else:
            names = [_FIT_NAMES.get(name, name)]
        files += write_map(space, arr, out_dir / name, names=names, npy=npy)
    return files


def _space_json(ctx: StageContext) -> dict | str:
    """The brain space as ``space.json`` says (kind, hemispheres), without loading it."""
    return read_json(ctx.layout.brain_dir / "space.json", default=None) or "array"


def encode_unit(ctx: StageContext, unit: Unit, out_dir: Path) -> dict:
    """Encode one unit's atoms on the (group-average) brain data; write its maps."""
    from vlmbrain.encoding.inference import fit_and_infer
    from vlmbrain.encoding.nuisance import nuisance_matrix
    from vlmbrain.signal import zscore_runs

    cfg = ctx.config.encoding
    brain = brain_of(ctx)
    mask = train_mask(ctx)
    runs = np.asarray(brain.runs)[mask]
    atoms = np.load(ctx.layout.dictionary_dir(unit.model, unit.name) / "atoms.npy")
    if atoms.shape[0] != runs.size:
        raise DimensionError(f"atoms have {atoms.shape[0]} TRs but the fMRI has {runs.size} training TRs")
    X, ok = zscore_runs(atoms, runs)
    if not ok.all():
        logger.warning("%s/%s: %d atoms are constant within a run; their maps are zero", unit.model, unit.name,
                       int((~ok).sum()))
    valid = np.asarray(brain.valid)
    Y = training_data(brain.data, mask, valid)
    # drift basis and confounds per run, on every TR of the run, then the training TRs
    nuisance = nuisance_matrix([int(n) for n in brain.run_lengths], brain.tr, cfg.high_pass_hz,
                               [str(p) for p in cfg.confounds], cfg.confound_columns)
    if nuisance is not None:
        nuisance = nuisance[mask]
    res = fit_and_infer(X, Y, runs, method=cfg.method, n_shifts=cfg.n_shifts, null_pvalues=cfg.null_pvalues,
                        correction=cfg.correction, q=cfg.q, chunk_size=cfg.chunk_size, backend=cfg.backend,
                        random_state=ctx.config.seed, nuisance=nuisance, overwrite_y=True, progress=ctx.progress)
    arrays = {name: full(arr, valid) for name, arr in res.arrays.items()}
    write_maps(brain.space, arrays, out_dir, X.shape[1], npy=cfg.npy_maps)
    _warn_ill_conditioned_folds(unit, res.info.get("loro_condition") or [])
    info = {"n_valid": int(valid.sum()), **res.info, "high_pass": cfg.high_pass,
            "confound_columns": list(cfg.confound_columns) if cfg.confounds else []}
    info["n_significant_fit"] = int(np.nansum(arrays["q_r"] < cfg.q))
    info["median_r_cv"] = float(np.nanmedian(arrays["r_cv"]))
    save_json(info, out_dir / "summary.json")
    logger.info("%s/%s: median LORO r %.3f, %d grayordinates with a significant fit", unit.model, unit.name,
                info["median_r_cv"], info["n_significant_fit"])
    return info


def _warn_ill_conditioned_folds(unit: Unit, conditions: list) -> None:
    """One warning naming the leave-one-run-out folds whose training design is ill-conditioned."""
    from vlmbrain.encoding.statistics import LORO_CONDITION_WARN

    bad = [(r, c) for r, c in enumerate(conditions) if c is None or c > LORO_CONDITION_WARN]
    if bad:
        folds = ", ".join(f"without run {r + 1} ({'singular' if c is None else f'{c:.1e}'})" for r, c in bad)
        logger.warning("%s/%s: leave-one-run-out folds %s fit atoms whose condition number exceeds %.0e "
                       "within the training runs; their held-out r (r_cv) is unstable (it can change by "
                       "0.01-1 when the inputs change by float32 rounding). Use longer or more runs, fewer "
                       "atoms (dictionary.n_atoms) or encoding.method 'ridge'.",
                       unit.model, unit.name, folds, LORO_CONDITION_WARN)


def training_data(data, mask, valid) -> np.ndarray:
    """The training TRs (``mask``) of the valid grayordinates (``valid``) as one new float32 array.

    One gather, so the (memory-mapped) data are copied once, not twice (rows, then columns).
    """
    mask, valid = np.asarray(mask, bool), np.asarray(valid, bool)
    arr = np.asarray(data)
    if mask.all() and valid.all():
        out = np.array(arr, dtype=np.float32)
    elif valid.all():
        out = arr[np.flatnonzero(mask)]
    elif mask.all():
        out = arr[:, np.flatnonzero(valid)]
    else:
        out = arr[np.ix_(np.flatnonzero(mask), np.flatnonzero(valid))]
    return out.astype(np.float32, copy=False)


def fit_subject(subject: str, spec: dict, workdir: Path) -> dict:
    """First level for one subject (a :func:`vlmbrain.brain.run_per_subject` task).

    Loads and z-scores the subject's runs, fits the encoder on the atoms, and writes
    ``beta.npy`` (K, V), ``r_cv.npy`` (V,) and ``valid.npy`` (V,) into ``workdir``.
    """
    from vlmbrain.brain.loaders import load_runs
    from vlmbrain.encoding import VoxelwiseEncoder
    from vlmbrain.signal import zscore_runs

    brain = load_runs(spec["paths"], tr=spec["tr"], expected_trs=spec["expected"], mask=spec["mask"],
                      n_grayordinates=spec["n_grayordinates"])
    mask = np.asarray(spec["train_mask"], bool)
    runs = brain.runs[mask]
    X, _ = zscore_runs(np.load(spec["atoms"]), runs)
    valid = brain.valid
    enc = VoxelwiseEncoder(method=spec["method"], chunk_size=spec["chunk_size"],
                           backend=spec.get("backend", "numpy")).fit(
        X, training_data(brain.data, mask, valid), runs=runs)
    save_npy(full(enc.coef_, valid), Path(workdir) / "beta.npy")
    cv = enc.cv_r_ if enc.cv_r_ is not None else np.full(int(valid.sum()), np.nan, np.float32)
    save_npy(full(cv, valid), Path(workdir) / "r_cv.npy")
    save_npy(valid, Path(workdir) / "valid.npy")
    return {"n_valid": int(valid.sum()), "median_r_cv": float(np.nanmedian(cv))}


def encode_unit_per_subject(ctx: StageContext, unit: Unit, out_dir: Path) -> dict:
    """Per-subject first level (independent, resumable tasks; local pool or Dask) + random-effects second level.

    Maps are the mean over subjects of the betas; p from the one-sample t-test across
    subjects, FDR per atom map; prediction: the mean LORO r with a one-sample test of its
    Fisher-z across subjects, FDR over grayordinates.
    """
    from vlmbrain.brain.subjects import run_per_subject
    from vlmbrain.encoding.inference import fdr_per_map, second_level
    from vlmbrain.stats import fdr_bh

    cfg, fcfg = ctx.config.encoding, ctx.config.fmri
    timeline = timeline_of(ctx)
    atoms_path = ctx.layout.dictionary_dir(unit.model, unit.name) / "atoms.npy"
    spec_common = {"tr": timeline.tr, "expected": timeline.run_lengths, "mask": fcfg.mask and str(fcfg.mask),
                   "n_grayordinates": fcfg.n_grayordinates, "train_mask": train_mask(ctx).tolist(),
                   "atoms": str(atoms_path), "method": cfg.method, "chunk_size": cfg.chunk_size,
                   "backend": cfg.backend}
    subjects = {f"sub-{i:03d}": {**spec_common, "paths": [str(p) for p in paths]}
                for i, paths in enumerate(fcfg.subjects)}
    sub_dir = out_dir / "subjects"
    table = run_per_subject(fit_subject, subjects, sub_dir, scheduler=fcfg.scheduler, n_jobs=fcfg.n_jobs)
    save_tsv(table, out_dir / "subjects.tsv")
    ids = list(subjects)
    res = second_level([sub_dir / s / "beta.npy" for s in ids], [sub_dir / s / "r_cv.npy" for s in ids])
    q_beta = fdr_per_map(res["p"], cfg.q).astype(np.float32)
    q_r = fdr_bh(res["p_r"], alpha=cfg.q)[1].astype(np.float32)
    arrays = {"beta": res["beta"], "t": res["t"], "p": res["p"].astype(np.float32), "q": q_beta,
              "r_cv": res["r_cv"], "p_r": res["p_r"].astype(np.float32), "q_r": q_r}
    write_maps(brain_of(ctx).space, arrays, out_dir, res["beta"].shape[0], npy=cfg.npy_maps)
    info = {"method": cfg.method, "group": "per-subject", "n_subjects": len(ids),
            "test": "one-sample t across subjects", "correction": "fdr", "q": cfg.q,
            "n_significant_fit": int(np.nansum(q_r < cfg.q)), "median_r_cv": float(np.nanmedian(res["r_cv"]))}
    save_json(info, out_dir / "summary.json")
    return info


class EncodingStage(Stage):
    name = "encoding"
    command = "encode"
    help = "encode the fMRI on every unit's atoms: maps, prediction, p and q"
    config_keys = ("encoding", "seed", "fmri.group", "stimulus.exclude_rest", "stimulus.exclude_testretest")
    reads = ("atoms", "brain", "timeline")
    writes = ("encoding maps",)

    def input_files(self, config):
        """The confound tables (one per run) enter the step keys: replacing one refits."""
        return [Path(p) for p in config.encoding.confounds]

    def preflight(self, config):
        from vlmbrain.encoding.solvers import SOLVERS
        from vlmbrain.registry import one_of
        from vlmbrain.stages.checks import encoding_preflight

        enc, fm = config.encoding, config.fmri
        if enc.method not in SOLVERS:
            raise ConfigError(f"'encoding.method' = {enc.method!r} is not allowed; expected one of {one_of(SOLVERS)}")
        encoding_preflight(config)  # runs, and the shift null against the training TRs
        per_subject = bool(fm.subjects) and fm.group == "per-subject"
        if per_subject:
            if len(fm.subjects) < 3:
                raise ConfigError(f"fmri.group = 'per-subject' needs at least 3 subjects for a test across subjects, "
                                  f"got {len(fm.subjects)}; use fmri.group: average")
            if enc.correction != "fdr":
                raise ConfigError("fmri.group = 'per-subject' tests across subjects (one-sample t): use "
                                  "encoding.correction 'fdr'")
            return
        if enc.n_shifts == 0 and enc.method == "ridge":
            raise ConfigError("encoding.n_shifts = 0 (parametric p) needs encoding.method 'ols' or 'ar1'; "
                              "ridge has no t-statistics: set encoding.n_shifts > 0")
        if enc.n_shifts == 0 and enc.correction == "fwer":
            raise ConfigError("encoding.correction = 'fwer' uses the max-statistic of the shift null: "
                              "set encoding.n_shifts > 0, or use correction 'fdr'")

    def check_upstream(self, ctx, finished):
        """All-zero dictionary codes leave atoms that no AN uses: stop before encoding them."""
        if finished != "dictionary":
            return
        for unit in units_of(ctx):
            codes = np.load(ctx.layout.dictionary_dir(unit.model, unit.name) / "codes.npy", mmap_mode="r")
            if not np.any(codes):
                raise ConfigError(
                    f"dictionary.alpha = {ctx.config.dictionary.alpha:g} left every code of {unit.model}/{unit.name} "
                    "zero: its atoms explain no AN and their maps would mean nothing; lower dictionary.alpha "
                    "(default 0.1)")

    def steps(self, ctx):
        fm = ctx.config.fmri
        body = encode_unit_per_subject if (fm.subjects and fm.group == "per-subject") else encode_unit
        steps = []
        space = _space_json(ctx)
        for unit in units_of(ctx):
            out_dir = ctx.layout.encoding_dir(unit.model, unit.name)
            outputs = [p.name for m in REQUIRED_MAPS
                       for p in map_files(out_dir / m, space, npy=ctx.config.encoding.npy_maps)]
            steps.append(Step(f"encoding:{unit.model}/{unit.name}", out_dir, outputs + ["summary.json"],
                              lambda unit=unit, out_dir=out_dir: body(ctx, unit, out_dir),
                              after=[f"dictionary:{unit.model}/{unit.name}", "brain"],
                              input_files=self.input_files(ctx.config)))
        return steps


register_stage(EncodingStage())
