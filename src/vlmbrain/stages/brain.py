"""Stage ``brain``: the fMRI as z-scored (T × V) data with its brain space, checked against the timeline.

Writes ``brain/`` (data, runs, valid mask, space). The data come from the source that
``fmri.kind`` names (:data:`vlmbrain.stages.sources.BRAIN_SOURCES`): ``cifti``, ``nifti``,
``gifti`` (:mod:`vlmbrain.brain.gifti`), ``npy``, ``bids`` (:mod:`vlmbrain.brain.bids`), or a
plug-in's.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from vlmbrain.config import RunConfig
from vlmbrain.errors import ConfigError, DimensionError
from vlmbrain.stages.base import Stage, StageContext, Step, config_value, register_stage
from vlmbrain.stages.sources import BRAIN_SOURCES, Source, register_brain_source
from vlmbrain.stages.stimulus import timeline_of

logger = logging.getLogger("vlmbrain")


def brain_of(ctx: StageContext, mmap: bool = True):
    """The brain data as the brain stage wrote them (memory-mapped by default)."""
    from vlmbrain.brain.space import BrainData

    return ctx.cached(f"brain:{mmap}", lambda: BrainData.load(ctx.layout.brain_dir, mmap=mmap))


def check_lengths(timeline, brain) -> None:
    """Stimulus and fMRI must agree run by run; the message names both numbers and the run."""
    t_lengths = timeline.run_lengths
    b_lengths = brain.run_lengths
    names = timeline.run_names
    if len(t_lengths) != len(b_lengths):
        raise DimensionError(f"the stimulus has {len(t_lengths)} runs but the fMRI has {len(b_lengths)} runs")
    for name, nt, nb in zip(names, t_lengths, b_lengths, strict=True):
        if nt != nb:
            raise DimensionError(f"stimulus has {nt} TRs but fMRI run {name} has {nb} TRs")


def choose_ceiling(choice: str, brain, timeline):
    """The noise ceiling ``fmri.ceiling`` asks for: ``(NoiseCeiling, None)`` or ``(None, reason)``.

    Subject estimators come with the group average (``brain.ceiling``); ``repeats`` is computed
    here from the timeline's repeated clip; ``auto`` takes the subjects' ceiling when there is
    one, else the repeated clip's.
    """
    from vlmbrain.brain.ceiling import noise_ceiling

    n_subjects = int(brain.meta.get("n_subjects", 1) or 1)
    if choice == "none":
        return None, "fmri.ceiling is 'none'"
    if choice in ("split-half", "loso", "auto") and brain.ceiling is not None:
        return brain.ceiling, None
    if choice in ("split-half", "loso"):
        return None, (f"fmri.ceiling = {choice!r} needs two or more subjects in fmri.subjects (the data have "
                      f"{n_subjects})")
    nc = noise_ceiling(brain.data, timeline.table)
    if nc is None:
        return None, ("no clip is shown more than once in this stimulus and the data are not a group average of "
                      "two or more subjects (a noise ceiling needs repeated showings or several subjects)")
    return nc, None


def write_ceiling(ctx: StageContext, brain, timeline) -> None:
    """The ceiling map ``brain/ceiling`` (one copy, in the data's own format) and ``ceiling.json`` saying how it
    was estimated, or why there is none (then no ceiling map is left from an earlier run)."""
    from vlmbrain._io import save_json
    from vlmbrain.artifacts import delete_map, write_map

    stem = ctx.layout.brain_dir / "ceiling"
    nc, reason = choose_ceiling(ctx.config.fmri.ceiling, brain, timeline)
    if nc is None:
        delete_map(stem)
        if ctx.config.fmri.ceiling in ("split-half", "loso", "repeats"):
            logger.warning("no noise ceiling: %s", reason)
        save_json({"available": False, "reason": reason}, ctx.layout.brain_dir / "ceiling.json")
        return
    ceiling = np.where(np.asarray(brain.valid), nc.ceiling, np.nan).astype(np.float32)
    write_map(brain.space, ceiling, stem, names=["noise ceiling"], npy=ctx.config.encoding.npy_maps)
    save_json(nc.info(), ctx.layout.brain_dir / "ceiling.json")
    logger.info("noise ceiling (%s): median %.2f", nc.source,
                float(np.nanmedian(ceiling)) if np.isfinite(ceiling).any() else float("nan"))


class BrainStage(Stage):
    name = "brain"
    help = "load, check and z-score the fMRI"
    config_keys = ("fmri", "stimulus.tr", "encoding.npy_maps")
    reads = ("timeline",)
    writes = ("brain",)

    def source(self, config: RunConfig) -> Source:
        return BRAIN_SOURCES.get(config.fmri.kind)

    def input_files(self, config):
        return self.source(config).input_files(config)

    def preflight(self, config):
        from vlmbrain.stages.checks import compare_stimulus_and_fmri

        self.source(config).preflight(config)
        compare_stimulus_and_fmri(config)

    def steps(self, ctx):
        source = self.source(ctx.config)

        def work():
            timeline = timeline_of(ctx)
            brain = source.build(ctx, timeline)
            check_lengths(timeline, brain)
            brain.save(ctx.layout.brain_dir)
            write_ceiling(ctx, brain, timeline)
            n_bad = int((~brain.valid).sum())
            if n_bad:
                logger.warning("%d of %d grayordinates are NaN or constant in some run; left out of the fits "
                               "and written as NaN", n_bad, brain.n_grayordinates)
            return {"n_timepoints": brain.n_timepoints, "n_grayordinates": brain.n_grayordinates,
                    "n_invalid": n_bad, "space": brain.space.name}

        return [Step("brain", ctx.layout.brain_dir, ["data.npy", "runs.npy", "valid.npy", "meta.json", "ceiling.json"],
                     work,
                     after=["stimulus"], params={k: config_value(ctx.config, k) for k in source.config_keys},
                     input_files=self.input_files(ctx.config))]


# ---------------------------------------------------------------------------- built-in sources
def build_brain(cfg, tr, timeline=None, progress=False):
    """Load the fMRI an ``fmri`` section names (one subject, or a streamed group average)."""
    from vlmbrain.brain.loaders import load_runs

    expected = timeline.run_lengths if timeline is not None else None
    run_names = timeline.run_names if timeline is not None else None
    space = None
    if cfg.kind == "npy" and cfg.n_grayordinates == 91282:
        # plain arrays on the HCP grayordinates: results can still be written as CIFTI
        from vlmbrain.brain.space import BrainSpace

        space = BrainSpace.hcp91k()
    if cfg.subjects:
        from vlmbrain.brain.ceiling import subject_method
        from vlmbrain.brain.group import group_average

        brain = group_average(cfg.subjects, tr=tr, mask=cfg.mask, n_grayordinates=cfg.n_grayordinates,
                              expected_trs=expected, progress=progress, run_names=run_names, space=space,
                              ceiling=subject_method(cfg.ceiling, len(cfg.subjects)))
    elif cfg.paths:
        brain = load_runs(cfg.paths, tr=tr, mask=cfg.mask, n_grayordinates=cfg.n_grayordinates,
                          expected_trs=expected, zscore=cfg.zscore, space=space, run_names=run_names)
    else:
        raise ConfigError(f"fmri.kind = {cfg.kind!r} needs fmri.paths (one file per run) or fmri.subjects")
    return brain


def fmri_files(config: RunConfig) -> list[Path]:
    """Every fMRI file a configuration reads (runs of every subject, and the mask)."""
    fm = config.fmri
    files = [Path(p) for p in fm.paths] + [Path(p) for subj in fm.subjects for p in subj]
    if fm.mask is not None:
        files.append(Path(fm.mask))
    return files


def _load(ctx: StageContext, timeline):
    return build_brain(ctx.config.fmri, tr=ctx.config.stimulus.tr, timeline=timeline, progress=ctx.progress)


def _preflight(config: RunConfig) -> None:
    from vlmbrain.stages.checks import fmri_preflight

    fmri_preflight(config)


def _facts(config: RunConfig):
    from vlmbrain.stages.checks import fmri_facts

    return fmri_facts(config)


def _space(config: RunConfig):
    from vlmbrain.brain.space import BrainSpace

    fm = config.fmri
    paths = list(fm.paths) or (list(fm.subjects[0]) if fm.subjects else [])
    return BrainSpace.from_headers(fm.kind, paths, mask=fm.mask, n_grayordinates=fm.n_grayordinates)


def _facts_of(module: str):
    """A source's ``facts`` from the dict its module's ``config_facts`` returns."""
    def facts(config: RunConfig):
        import importlib

        from vlmbrain.stages.sources import InputFacts

        return InputFacts(**importlib.import_module(module).config_facts(config))

    return facts


def _module_source(module: str, description: str) -> Source:
    """An fMRI source whose functions live in ``module`` (``build``, ``config_preflight``, ``config_space``...)."""
    import importlib

    def mod():
        return importlib.import_module(module)

    def build(ctx: StageContext, timeline):
        return mod().build(ctx.config, timeline, progress=ctx.progress)

    return Source(build, input_files=lambda c: mod().input_files(c), preflight=lambda c: mod().config_preflight(c),
                  facts=_facts_of(module), space=lambda c: mod().config_space(c), description=description)


for _kind, _what in (("cifti", "CIFTI dtseries (.dtseries.nii), one per run"),
                     ("nifti", "4-D NIfTI runs and a brain mask"),
                     ("npy", "(T, V) .npy arrays, one per run")):
    register_brain_source(_kind, Source(_load, input_files=fmri_files, preflight=_preflight, facts=_facts,
                                        space=_space, description=_what))
register_brain_source("gifti", _module_source(
    "vlmbrain.brain.gifti", "GIFTI surface runs (.func.gii), left and right hemisphere of every run"))
register_brain_source("bids", _module_source(
    "vlmbrain.brain.bids", "fMRIPrep / BIDS derivatives: CIFTI, NIfTI or GIFTI runs found by space, task, subject"))
register_stage(BrainStage())
