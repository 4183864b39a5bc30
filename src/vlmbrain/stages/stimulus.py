"""Stage ``stimulus``: the TR timeline (frame time, caption, rest flag per TR) of the movie.

Writes ``stimulus/timeline.tsv``. The stimulus itself (frames and captions, read lazily) comes
from the source that ``stimulus.kind`` names (:data:`vlmbrain.stages.sources.STIMULUS_SOURCES`).
"""

from __future__ import annotations

from pathlib import Path

from vlmbrain.config import RunConfig
from vlmbrain.errors import ConfigError
from vlmbrain.stages.base import Stage, StageContext, Step, config_value, register_stage
from vlmbrain.stages.sources import STIMULUS_SOURCES, Source, register_stimulus_source


def stimulus_of(ctx: StageContext):
    """The run's :class:`~vlmbrain.stimulus.Stimulus` (built once per process)."""
    source = STIMULUS_SOURCES.get(ctx.config.stimulus.kind)
    return ctx.cached("stimulus", lambda: source.build(ctx))


def timeline_of(ctx: StageContext):
    """The timeline as the stimulus stage wrote it."""
    from vlmbrain.stimulus import Timeline

    return Timeline.from_tsv(ctx.layout.timeline_tsv, ctx.config.stimulus.tr)


def train_mask(ctx: StageContext):
    """TRs used by the dictionary and the encoding (rest / the repeated clip left out on request)."""
    import numpy as np

    table = timeline_of(ctx).table
    mask = np.ones(len(table), bool)
    if ctx.config.stimulus.exclude_rest:
        mask &= ~table["rest"].to_numpy(bool)
    if ctx.config.stimulus.exclude_testretest:
        mask &= ~table["clip"].str.startswith("testretest").to_numpy()
    return mask


class StimulusStage(Stage):
    name = "stimulus"
    help = "build the TR timeline of the movie"
    config_keys = ("stimulus",)
    writes = ("timeline",)

    def source(self, config: RunConfig) -> Source:
        return STIMULUS_SOURCES.get(config.stimulus.kind)

    def input_files(self, config):
        return self.source(config).input_files(config)

    def preflight(self, config):
        self.source(config).preflight(config)

    def steps(self, ctx):
        source = self.source(ctx.config)

        def work():
            stim = stimulus_of(ctx)
            stim.timeline.to_tsv(ctx.layout.timeline_tsv)
            return {"n_timepoints": stim.timeline.n_timepoints, "runs": stim.timeline.run_names,
                    "content_hash": stim.content_hash(), "has_frames": stim.has_frames,
                    "has_captions": stim.has_captions}

        return [Step("stimulus", ctx.layout.stimulus_dir, ["timeline.tsv"], work,
                     params={k: config_value(ctx.config, k) for k in source.config_keys},
                     input_files=self.input_files(ctx.config))]


# ---------------------------------------------------------------------------- built-in sources
def build_stimulus(cfg, fmri=None):
    """The :class:`~vlmbrain.stimulus.Stimulus` of an ``hcp7t`` or ``custom`` stimulus section.

    Parameters
    ----------
    cfg : vlmbrain.config.StimulusConfig
    fmri : vlmbrain.config.FmriConfig, optional
        Used to take run lengths from the fMRI files when a custom run gives no ``n_trs``.
    """
    if cfg.kind == "hcp7t":
        return _hcp7t_stimulus(cfg)
    if cfg.kind == "custom":
        return _custom_stimulus(cfg, fmri)
    raise ConfigError(f"'stimulus.kind' = {cfg.kind!r} has no built-in builder; expected 'hcp7t' or 'custom'")


def _hcp7t_stimulus(cfg):
    from vlmbrain.stimulus.hcp7t import HCP7T_TR, hcp7t_stimulus

    if cfg.movie_dir is None and cfg.wordnet_dir is None:
        raise ConfigError("stimulus.kind = 'hcp7t' needs stimulus.movie_dir (the 7T_MOVIE*.mp4 files) "
                          "and/or stimulus.wordnet_dir (the WordNet_MOVIE*.txt label files)")
    if abs(cfg.tr - HCP7T_TR) > 1e-9:
        raise ConfigError(f"stimulus.tr = {cfg.tr} but the HCP 7T movie runs have TR = {HCP7T_TR} s")
    return hcp7t_stimulus(movie_dir=cfg.movie_dir, captions=cfg.wordnet_dir, n_frames_per_tr=cfg.frames_per_tr,
                          frame_offset=cfg.frame_offset)


def _custom_stimulus(cfg, fmri=None, lengths=None):
    """``lengths``: TRs per run when known (:func:`vlmbrain.stages.checks.custom_run_lengths`);
    otherwise a run without ``n_trs`` takes the length of ``fmri.paths[i]``."""
    from vlmbrain.stimulus import ArrayStimulus, Timeline
    from vlmbrain.stimulus.captions import attach_captions
    from vlmbrain.stimulus.video import VideoStimulus

    if not cfg.runs:
        raise ConfigError("stimulus.kind = 'custom' needs stimulus.runs: a list of {name, n_trs, video | frames_dir, "
                          "captions}")
    if lengths is None:
        fmri_paths = list(fmri.paths) if fmri is not None else []
        lengths = []
        for i, run in enumerate(cfg.runs):
            if run.n_trs is not None:
                lengths.append(run.n_trs)
            elif i < len(fmri_paths):
                from vlmbrain.inspect import inspect_path

                lengths.append(int(inspect_path(fmri_paths[i])["n_trs"]))
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


def _hcp7t_files(config: RunConfig) -> list[Path]:
    st = config.stimulus
    files: list[Path] = []
    for folder, pattern in ((st.movie_dir, "7T_MOVIE*.mp4"), (st.wordnet_dir, "WordNet_MOVIE*.txt")):
        if folder is not None and Path(folder).is_dir():
            files.extend(sorted(Path(folder).glob(pattern)))
    return files


def _custom_files(config: RunConfig) -> list[Path]:
    """The runs' videos, frame folders and captions; the fMRI files too when a run takes its length from them."""
    files: list[Path] = []
    for run in config.stimulus.runs:
        files.extend(Path(p) for p in (run.video, run.frames_dir, run.captions) if p is not None)
    if any(run.n_trs is None for run in config.stimulus.runs):
        from vlmbrain.stages.sources import BRAIN_SOURCES

        if config.fmri.kind in BRAIN_SOURCES:
            files.extend(Path(p) for p in BRAIN_SOURCES.get(config.fmri.kind).input_files(config))
    return files


def _build_custom(ctx: StageContext):
    from vlmbrain.stages.checks import custom_run_lengths

    return _custom_stimulus(ctx.config.stimulus, ctx.config.fmri, lengths=custom_run_lengths(ctx.config))


def _hcp7t_preflight(config: RunConfig) -> None:
    from vlmbrain.stages.checks import hcp7t_preflight

    hcp7t_preflight(config)


def _hcp7t_facts(config: RunConfig):
    from vlmbrain.stages.checks import hcp7t_facts

    return hcp7t_facts(config)


def _custom_preflight(config: RunConfig) -> None:
    from vlmbrain.stages.checks import custom_stimulus_preflight

    custom_stimulus_preflight(config)


def _custom_facts(config: RunConfig):
    from vlmbrain.stages.checks import custom_stimulus_facts

    return custom_stimulus_facts(config)


register_stimulus_source("hcp7t", Source(lambda ctx: _hcp7t_stimulus(ctx.config.stimulus), input_files=_hcp7t_files,
                                         preflight=_hcp7t_preflight, facts=_hcp7t_facts,
                                         description="the HCP 7T movies (Cutting-Edge clips) and WordNet labels"))
register_stimulus_source("custom", Source(_build_custom, config_keys=("fmri.paths",),
                                          input_files=_custom_files,
                                          preflight=_custom_preflight, facts=_custom_facts,
                                          description="your runs: video or frame folders, caption files"))
register_stage(StimulusStage())
