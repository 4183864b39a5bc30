"""What a stage is: a named unit of the pipeline that declares what it depends on.

A :class:`Stage` declares

- ``config_keys``: the configuration sections / dotted keys whose values enter the key of
  every step it runs (a change of any of them recomputes the stage and everything downstream);
- ``reads`` / ``writes``: the artifacts it reads and writes (names of :mod:`vlmbrain.artifacts`);
- :meth:`Stage.input_files`: the files outside the run directory it reads (fMRI runs, videos,
  captions, checkpoints, atlases) — the pipeline fingerprints them into the step keys;
- :meth:`Stage.preflight`: checks decidable from the configuration and the inputs' headers,
  run for every stage before any stage computes anything;
- :meth:`Stage.check_upstream`: checks that need what an earlier stage just wrote (the brain
  space, the dictionary codes), run as soon as that stage is done, before the costly stages;
- :meth:`Stage.steps`: the steps it runs (one per model, branch or unit), each with explicit
  inputs: the :class:`StageContext` (configuration, run layout, progress flag) and the
  upstream artifacts it reads from disk. A stage never sees the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmbrain.artifacts import RunLayout
from vlmbrain.config import RunConfig
from vlmbrain.registry import Registry


@dataclass
class Step:
    """One unit of work of a stage: its folder, the files it must leave there, and its body.

    Attributes
    ----------
    name : str
        ``"<stage>"`` or ``"<stage>:<model>/<unit>"``; unique within a run.
    directory : Path
        Where the step writes (its ``_stage.json`` sidecar goes there too).
    outputs : list of str
        Files (relative to ``directory``) that must exist for the step to count as done.
    run : callable
        ``run() -> dict | None``; the dict is added to the sidecar.
    after : list of str
        Upstream step names: their keys enter this step's key.
    params : dict
        Extra parameters of this step (the stage's ``config_keys`` are added by the pipeline).
    input_files : list of Path
        Files outside the run directory this step reads (fingerprinted into its key).
    """

    name: str
    directory: Path
    outputs: list[str]
    run: Callable[[], dict | None]
    after: list[str] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    input_files: list[Path] = field(default_factory=list)


@dataclass
class StageContext:
    """The explicit inputs of a stage: configuration, run layout, progress, an in-process memo.

    ``memo`` holds objects that are expensive to rebuild and shared by stages of one process
    (the stimulus object, the demo movie); it is never a channel for results, which go
    through the run directory.
    """

    config: RunConfig
    layout: RunLayout
    progress: bool = False
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.layout.root

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self.memo:
            self.memo[key] = build()
        return self.memo[key]


class Stage:
    """Base class of the pipeline's stages; subclasses set the class attributes and ``steps``."""

    name: str = ""
    #: CLI subcommand that runs the pipeline up to this stage (None: no own command).
    command: str | None = None
    help: str = ""
    config_keys: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()

    def input_files(self, config: RunConfig) -> list[Path]:
        """Files outside the run directory that this stage reads."""
        return []

    def preflight(self, config: RunConfig) -> None:
        """Raise a :class:`~vlmbrain.errors.VlmbrainError` for what the configuration and headers decide."""

    def check_upstream(self, ctx: StageContext, finished: str) -> None:
        """Raise for what the artifacts of the earlier stage ``finished`` (just done) decide."""

    def steps(self, ctx: StageContext) -> list[Step]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"<stage {self.name}>"


#: The pipeline's stages, in the order they run.
STAGES: Registry[Stage] = Registry("stage")


def register_stage(stage: Stage, before: str | None = None) -> Stage:
    """Add a stage to the pipeline (at the end, or before the stage named ``before``)."""
    return STAGES.register(stage.name, stage, before=before)


def config_value(config: RunConfig, dotted: str):
    """The JSON value of a section or dotted key of the configuration (``"encoding"``, ``"stimulus.tr"``)."""
    node: Any = config
    for part in dotted.split("."):
        node = getattr(node, part)
    return _jsonable(node)


def _jsonable(node):
    dump = getattr(node, "model_dump", None)
    if dump is not None:
        return dump(mode="json")
    if isinstance(node, (list, tuple)):
        return [_jsonable(n) for n in node]
    if isinstance(node, dict):
        return {str(k): _jsonable(v) for k, v in node.items()}
    if isinstance(node, Path):
        return str(node)
    return node
