"""Bodies of the pipeline stages that tie library pieces together.

Kept apart from :mod:`vlmbrain.pipeline` (which only does the step mechanics: keys,
sidecars, skip/resume) so that each body reads as the method it implements.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from vlmbrain._io import save_json, save_npy, save_tsv
from vlmbrain.errors import ConfigError, DimensionError

logger = logging.getLogger("vlmbrain")


# ---------------------------------------------------------------------------- stimulus
def build_stimulus(cfg, movie=None, fmri=None):
    """Build the :class:`~vlmbrain.stimulus.Stimulus` a configuration describes.

    Parameters
    ----------
    cfg : vlmbrain.config.StimulusConfig
    movie : vlmbrain.toyworld.ToyMovie, optional
        The demo movie (``cfg.kind == "demo"``).
    fmri : vlmbrain.config.FmriConfig, optional
        Used to take run lengths from the fMRI files when a custom run gives no ``n_trs``.
    """
    from vlmbrain.stimulus import ArrayStimulus, Timeline

    if cfg.kind == "demo":
        if movie is None:
            raise ConfigError("stimulus.kind = 'demo' needs the demo movie")
        lengths = np.bincount(movie.runs).tolist()
        timeline = Timeline.from_runs(
            lengths, cfg.tr, run_names=[f"demo-run-{i + 1}" for i in range(len(lengths))],
            captions=list(movie.captions), rest=movie.rest, clips=list(movie.clips),
            frame_offset=cfg.frame_offset,
        )
        return ArrayStimulus(timeline, movie.frames)
    if cfg.kind == "hcp7t":
        return _hcp7t_stimulus(cfg)
    return _custom_stimulus(cfg, fmri)


def _hcp7t_stimulus(cfg):
    from vlmbrain.stimulus.hcp7t import HCP7T_TR, hcp7t_stimulus

    if cfg.movie_dir is None and cfg.wordnet_dir is None:
        raise ConfigError("stimulus.kind = 'hcp7t' needs stimulus.movie_dir (the 7T_MOVIE*.mp4 files) "
                          "and/or stimulus.wordnet_dir (the WordNet_MOVIE*.txt label files)")
    if abs(cfg.tr - HCP7T_TR) > 1e-9:
        raise ConfigError(f"stimulus.tr = {cfg.tr} but the HCP 7T movie runs have TR = {HCP7T_TR} s")
    return hcp7t_stimulus(movie_dir=cfg.movie_dir, captions=cfg.wordnet_dir, n_frames_per_tr=cfg.frames_per_tr,
                          frame_offset=cfg.frame_offset)


def _custom_stimulus(cfg, fmri):
    from vlmbrain.stimulus import ArrayStimulus, Timeline
    from vlmbrain.stimulus.captions import attach_captions
    from vlmbrain.stimulus.video import VideoStimulus

    if not cfg.runs:
        raise ConfigError("stimulus.kind = 'custom' needs stimulus.runs: a list of {name, n_trs, video | frames_dir, "
                          "captions}")
    fmri_paths = list(fmri.paths) if fmri is not None else []
    lengths = []
    for i, run in enumerate(cfg.runs):
        if run.n_trs is not None:
            lengths.append(run.n_trs)
        elif i < len(fmri_paths):
            from vlmbrain.inspect import inspect_path

            info = inspect_path(fmri_paths[i])
            lengths.append(int(info["n_trs"]))
        else:
            raise ConfigError(f"stimulus.runs.{i}.n_trs is missing and there is no fmri.paths[{i}] to take it from")
    names = [run.name for run in cfg.runs]
    timeline = Timeline.from_runs(lengths, cfg.tr, run_names=names, frame_offset=cfg.frame_offset)
    captions = {run.name: run.captions for run in cfg.runs if run.captions is not None}
    if captions:
        timeline = attach_captions(timeline, captions)
    visual = {run.name: (run.video or run.frames_dir) for run in cfg.runs}
    have = [v is not None for v in visual.values()]
    if any(have) and not all(have):
        missing = [n for n, v in visual.items() if v is None]
        raise ConfigError(f"stimulus.runs: runs {missing} have no video or frames_dir while others do")
    if not any(have) and not captions:
        raise ConfigError("stimulus.runs give neither video/frames_dir nor captions: nothing for a model to read")
    if all(have):
        return VideoStimulus(timeline, visual, n_frames_per_tr=cfg.frames_per_tr, use_captions=bool(captions))
    return ArrayStimulus(timeline, None)


# ---------------------------------------------------------------------------- brain
def build_brain(cfg, tr, timeline=None, progress=False):
    """Load the fMRI a configuration names (one subject, or a streamed group average)."""
    from vlmbrain.brain.loaders import load_runs

    expected = timeline.run_lengths if timeline is not None else None
    run_names = timeline.run_names if timeline is not None else None
    space = None
    if cfg.kind == "npy" and cfg.n_grayordinates == 91282:
        # plain arrays on the HCP grayordinates: results can still be written as CIFTI
        from vlmbrain.brain.space import BrainSpace

        space = BrainSpace.hcp91k()
    if cfg.subjects:
        from vlmbrain.brain.group import group_average

        brain = group_average(cfg.subjects, tr=tr, mask=cfg.mask, n_grayordinates=cfg.n_grayordinates,
                              expected_trs=expected, progress=progress, run_names=run_names, space=space)
    elif cfg.paths:
        brain = load_runs(cfg.paths, tr=tr, mask=cfg.mask, n_grayordinates=cfg.n_grayordinates,
                          expected_trs=expected, zscore=cfg.zscore, space=space, run_names=run_names)
    else:
        raise ConfigError(f"fmri.kind = {cfg.kind!r} needs fmri.paths (one file per run) or fmri.subjects")
    return brain


# ---------------------------------------------------------------------------- encoding
def _full(values: np.ndarray, valid: np.ndarray, fill=np.nan) -> np.ndarray:
    """Scatter (..., n_valid) results back to (..., n_grayordinates) with NaN elsewhere."""
    out = np.full(values.shape[:-1] + (valid.size,), fill, dtype=np.float32)
    out[..., valid] = values
    return out


def encode_unit(pipe, mdir: str, unit: str, out_dir: Path) -> dict:
    """Voxel-wise encoding of one dictionary's atoms (METHOD.md §4).

    Atoms are z-scored per run and regressed on every valid grayordinate with one
    intercept per run. Coefficient maps come from ``encoding.method``; prediction is
    leave-one-run-out Pearson r. Significance: the circular-shift null of the OLS
    model (all atoms shifted jointly; ``encoding.n_shifts``) gives p for every (atom,
    grayordinate) from |t| and for every grayordinate from the full-model R² — by default
    *calibrated* (the null's spread at each grayordinate, tail from a fitted Gaussian /
    scaled χ²; see :class:`vlmbrain.encoding.ShiftNullResult`), or the empirical rank; with
    ``n_shifts = 0`` the parametric t-test (p from Student's t with the model's
    residual dof). Correction: FDR (Benjamini–Hochberg) *per atom map* (each atom's
    map is its own family, as each is read as its own map) and over grayordinates for
    the model fit; or max-statistic FWER from the same null.
    """
    from scipy import stats as sps

    from vlmbrain.encoding import VoxelwiseEncoder, shift_null
    from vlmbrain.signal import zscore_runs
    from vlmbrain.stats import fdr_bh

    cfg = pipe.config.encoding
    if pipe.config.fmri.subjects and pipe.config.fmri.group == "per-subject":
        return encode_unit_per_subject(pipe, mdir, unit, out_dir)
    brain = pipe.brain(mmap=True)
    mask = pipe.train_mask()
    runs = np.asarray(brain.runs)[mask]
    atoms = np.load(pipe.run_dir / "dictionary" / mdir / unit / "atoms.npy")
    if atoms.shape[0] != runs.size:
        raise DimensionError(f"atoms have {atoms.shape[0]} TRs but the fMRI has {runs.size} training TRs")
    X, ok = zscore_runs(atoms, runs)
    if not ok.all():
        logger.warning("%s/%s: %d atoms are constant within a run; their maps are zero", mdir, unit, int((~ok).sum()))
    valid = np.asarray(brain.valid)
    Y = np.asarray(brain.data[mask][:, valid], dtype=np.float32)

    enc = VoxelwiseEncoder(method=cfg.method, chunk_size=cfg.chunk_size, backend=cfg.backend).fit(X, Y, runs=runs)
    coef = enc.coef_
    tvals = enc.tvalues_ if enc.tvalues_ is not None else np.full_like(coef, np.nan)
    cv_r = enc.cv_r_ if enc.cv_r_ is not None else np.full(Y.shape[1], np.nan, np.float32)

    info = {"method": cfg.method, "n_timepoints": int(Y.shape[0]), "n_valid": int(valid.sum()),
            "n_atoms": int(X.shape[1]), "correction": cfg.correction, "q": cfg.q}
    if cfg.n_shifts > 0:
        null = shift_null(X, Y, runs=runs, n_shifts=cfg.n_shifts, random_state=pipe.config.seed,
                          chunk_size=min(cfg.chunk_size, 512))
        p_beta, p_r = null.p_t, null.p_r2
        if cfg.null_pvalues == "calibrated":
            if null.null_z_var is None:
                logger.warning("the %s backend returns no null moments: empirical shift-null p-values", cfg.backend)
            else:
                save_npy(_full(p_beta, valid), out_dir / "p_empirical.npy")
                save_npy(_full(p_r, valid), out_dir / "p_r_empirical.npy")
                p_beta, p_r = null.p_t_calibrated, null.p_r2_calibrated
        info.update(null="circular-shift", n_shifts=null.n_shifts, null_pvalues=cfg.null_pvalues)
        if cfg.correction == "fwer":
            _, q_beta = null.fwer_t(cfg.q)
            _, q_r = null.fwer_r2(cfg.q)
        if cfg.method != "ols":
            info["note"] = ("p-values from the shift null of the OLS model; coefficient maps from "
                            f"the {cfg.method} fit")
    else:
        if cfg.method == "ridge":
            raise ConfigError("encoding.n_shifts = 0 (parametric p) needs encoding.method 'ols' or 'ar1'; "
                              "ridge has no t-statistics: set encoding.n_shifts > 0")
        dof = float(enc.dof_)
        p_beta = 2 * sps.t.sf(np.abs(tvals), dof)
        k = X.shape[1]
        r2 = np.clip(np.asarray(enc.r2_, dtype=np.float64), 0, 1 - 1e-12)
        fstat = (r2 / k) / ((1 - r2) / dof)
        p_r = sps.f.sf(fstat, k, dof)
        info.update(null="parametric", dof=dof)
        if cfg.correction == "fwer":
            raise ConfigError("encoding.correction = 'fwer' uses the max-statistic of the shift null: "
                              "set encoding.n_shifts > 0, or use correction 'fdr'")
    if cfg.correction == "fdr":
        q_beta = np.vstack([fdr_bh(p_beta[k], alpha=cfg.q)[1] for k in range(p_beta.shape[0])])
        q_r = fdr_bh(p_r, alpha=cfg.q)[1]

    arrays = {
        "beta": _full(coef, valid), "t": _full(tvals, valid), "p": _full(p_beta, valid), "q": _full(q_beta, valid),
        "r_cv": _full(cv_r, valid), "p_r": _full(p_r, valid), "q_r": _full(q_r, valid),
    }
    if getattr(enc, "cv_r2_", None) is not None:
        arrays["r2_cv"] = _full(enc.cv_r2_, valid)
    if getattr(enc, "alphas_", None) is not None:
        arrays["alpha"] = _full(np.asarray(enc.alphas_, np.float32), valid)
    _write_maps(brain.space, arrays, out_dir, coef.shape[0])
    n_sig = int(np.nansum(arrays["q_r"] < cfg.q))
    info["n_significant_fit"] = n_sig
    info["median_r_cv"] = float(np.nanmedian(arrays["r_cv"]))
    save_json(info, out_dir / "summary.json")
    logger.info("%s/%s: median LORO r %.3f, %d grayordinates with a significant fit", mdir, unit,
                info["median_r_cv"], n_sig)
    return info


def _write_maps(space, arrays: dict, out_dir: Path, n_atoms: int) -> None:
    for name, arr in arrays.items():
        save_npy(arr, out_dir / f"{name}.npy")
    if space.kind != "array":
        names = [f"atom-{k}" for k in range(n_atoms)]
        space.to_dscalar(arrays["beta"], out_dir / "beta.dscalar.nii", names=[f"{n} beta" for n in names])
        space.to_dscalar(arrays["t"], out_dir / "t.dscalar.nii", names=[f"{n} t" for n in names])
        space.to_dscalar(arrays["q"], out_dir / "q.dscalar.nii", names=[f"{n} q" for n in names])
        space.to_dscalar(np.vstack([arrays["r_cv"], arrays["q_r"]]), out_dir / "r_cv.dscalar.nii",
                         names=["leave-one-run-out r", "q of the model fit"])


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
    enc = VoxelwiseEncoder(method=spec["method"], chunk_size=spec["chunk_size"]).fit(
        X, brain.data[mask][:, valid], runs=runs)
    save_npy(_full(enc.coef_, valid), Path(workdir) / "beta.npy")
    cv = enc.cv_r_ if enc.cv_r_ is not None else np.full(int(valid.sum()), np.nan, np.float32)
    save_npy(_full(cv, valid), Path(workdir) / "r_cv.npy")
    save_npy(valid, Path(workdir) / "valid.npy")
    return {"n_valid": int(valid.sum()), "median_r_cv": float(np.nanmedian(cv))}


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


def encode_unit_per_subject(pipe, mdir: str, unit: str, out_dir: Path) -> dict:
    """Per-subject first level (independent, resumable tasks; local pool or Dask) + second level.

    Maps are the mean over subjects of the betas; p from the one-sample t-test across
    subjects (random effects), FDR per atom map; prediction: the mean LORO r with a
    one-sample test of its Fisher-z across subjects, FDR over grayordinates.
    """
    from vlmbrain.brain.subjects import run_per_subject
    from vlmbrain.stats import fdr_bh

    cfg, fcfg = pipe.config.encoding, pipe.config.fmri
    if len(fcfg.subjects) < 3:
        raise ConfigError(f"fmri.group = 'per-subject' needs at least 3 subjects for a test across subjects, "
                          f"got {len(fcfg.subjects)}; use fmri.group: average")
    if cfg.correction != "fdr":
        raise ConfigError("fmri.group = 'per-subject' tests across subjects (one-sample t): use encoding.correction 'fdr'")
    timeline = pipe.timeline()
    atoms_path = pipe.run_dir / "dictionary" / mdir / unit / "atoms.npy"
    spec_common = {"tr": timeline.tr, "expected": timeline.run_lengths, "mask": fcfg.mask and str(fcfg.mask),
                   "n_grayordinates": fcfg.n_grayordinates, "train_mask": pipe.train_mask().tolist(),
                   "atoms": str(atoms_path), "method": cfg.method, "chunk_size": cfg.chunk_size}
    subjects = {f"sub-{i:03d}": {**spec_common, "paths": [str(p) for p in paths]}
                for i, paths in enumerate(fcfg.subjects)}
    sub_dir = out_dir / "subjects"
    table = run_per_subject(fit_subject, subjects, sub_dir, scheduler=fcfg.scheduler, n_jobs=fcfg.n_jobs)
    save_tsv(table, out_dir / "subjects.tsv")
    ids = list(subjects)
    res = second_level([sub_dir / s / "beta.npy" for s in ids], [sub_dir / s / "r_cv.npy" for s in ids])
    q_beta = np.vstack([fdr_bh(pk, alpha=cfg.q)[1] for pk in res["p"]]).astype(np.float32)
    q_r = fdr_bh(res["p_r"], alpha=cfg.q)[1].astype(np.float32)
    arrays = {"beta": res["beta"], "t": res["t"], "p": res["p"].astype(np.float32), "q": q_beta,
              "r_cv": res["r_cv"], "p_r": res["p_r"].astype(np.float32), "q_r": q_r}
    brain = pipe.brain(mmap=True)
    _write_maps(brain.space, arrays, out_dir, res["beta"].shape[0])
    info = {"method": cfg.method, "group": "per-subject", "n_subjects": len(ids), "test": "one-sample t across subjects",
            "correction": "fdr", "q": cfg.q, "n_significant_fit": int(np.nansum(q_r < cfg.q)),
            "median_r_cv": float(np.nanmedian(res["r_cv"]))}
    save_json(info, out_dir / "summary.json")
    return info


# ---------------------------------------------------------------------------- analysis
def analyze_run(pipe) -> dict:
    """Network affiliation and the four analyses over every model / branch of a run (METHOD.md §5–6).

    Writes ``analysis/<table>.tsv`` for every table of :func:`vlmbrain.analysis.run_analyses`,
    one CIFTI dlabel per dictionary with, per atom, its significant grayordinates labelled by
    the network that atom's map of that sign is affiliated with (``networks/<model>/<unit>/``),
    and — for the demo — ``demo/recovery.tsv`` (planted vs recovered per network).
    """
    from vlmbrain.analysis import AnalysisInputs, AnalysisOptions, BranchResult, run_analyses
    from vlmbrain.networks import load_atlas, significant_maps

    cfg = pipe.config
    run_dir = pipe.run_dir
    brain = pipe.brain(mmap=True)
    atlas = load_atlas(cfg.networks.atlas, n_grayordinates=brain.n_grayordinates)
    mask = pipe.train_mask()
    branches = []
    for mdir, blist in pipe.units():
        unit = "+".join(blist)
        ddir = run_dir / "dictionary" / mdir / unit
        edir = run_dir / "encoding" / mdir / unit
        acts = np.concatenate([np.load(run_dir / "signal" / mdir / b / "timecourses.npy") for b in blist], axis=1)
        branches.append(BranchResult(
            model=mdir, branch=unit, atoms=np.load(ddir / "atoms.npy"), codes=np.load(ddir / "codes.npy"),
            neurons=pd.read_csv(ddir / "neurons.tsv", sep="\t"), beta=np.load(edir / "beta.npy"),
            q_beta=np.load(edir / "q.npy"), r_cv=np.load(edir / "r_cv.npy"), q_r=np.load(edir / "q_r.npy"),
            activations=acts[mask],
        ))
    data = brain.data if mask.all() else np.asarray(brain.data[mask])
    options = AnalysisOptions(alpha=cfg.encoding.q, threshold=cfg.networks.threshold,
                              null=None if cfg.networks.null == "none" else cfg.networks.null,
                              n_perm=cfg.networks.n_perm, random_state=cfg.seed)
    tables = run_analyses(AnalysisInputs(branches=branches, atlas=atlas, brain=data, options=options))
    for name, table in tables.items():
        save_tsv(table, run_dir / "analysis" / f"{name}.tsv")

    aff = tables["affiliation"]
    if brain.space.kind != "array":
        table = {0: ("none", (1.0, 1.0, 1.0, 0.0))}
        table.update({nid: (atlas.names[nid], tuple(atlas.colors[nid])) for nid in atlas.network_ids})
        for b in branches:
            pos, neg = significant_maps(b.beta, b.q_beta, cfg.encoding.q)
            labels = np.zeros((2 * b.beta.shape[0], brain.n_grayordinates), dtype=np.int32)
            names = []
            sub = aff[(aff["model"] == b.model) & (aff["branch"] == b.branch) & aff["affiliated"].astype(bool)]
            for k in range(b.beta.shape[0]):
                for j, (sign, m) in enumerate((("+", pos[k]), ("-", neg[k]))):
                    hit = sub[(sub["atom"] == k) & (sub["sign"] == sign)]
                    if len(hit):
                        labels[2 * k + j, m] = int(hit["network_id"].iloc[0])
                    names.append(f"atom-{k} {sign}")
            brain.space.to_dlabel(labels, run_dir / "networks" / b.model / b.branch / "affiliation.dlabel.nii",
                                  table, names=names)
    info = {"tables": sorted(tables), "n_affiliated": int(aff["affiliated"].astype(bool).sum()) if len(aff) else 0}
    if pipe.is_demo and (run_dir / "demo" / "truth.tsv").is_file():
        info["recovered"] = _demo_recovery(pipe, branches, aff, mask)
    return info


def _demo_recovery(pipe, branches, aff, mask) -> int:
    from vlmbrain.demo.recovery import score_recovery, summarize_recovery

    run_dir = pipe.run_dir
    truth = pd.read_csv(run_dir / "demo" / "truth.tsv", sep="\t")
    drivers = pd.read_csv(run_dir / "demo" / "drivers.tsv", sep="\t")[mask].reset_index(drop=True)
    atoms = {(b.model, b.branch): b.atoms for b in branches}
    rec = score_recovery(truth, drivers, atoms, aff)
    summary = summarize_recovery(rec)
    save_tsv(rec, run_dir / "demo" / "recovery_by_branch.tsv")
    save_tsv(summary, run_dir / "demo" / "recovery.tsv")
    return int(summary["recovered"].sum())


__all__ = ["build_stimulus", "build_brain", "encode_unit", "analyze_run"]
