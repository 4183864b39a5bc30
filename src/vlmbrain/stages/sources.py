"""Where a run's stimulus and fMRI come from: two registries keyed by ``stimulus.kind`` / ``fmri.kind``.

A source is a :class:`Source`: a ``build`` function plus what it depends on. The built-in
stimulus sources are ``hcp7t`` and ``custom``; the built-in fMRI sources ``cifti``, ``nifti``
and ``npy``. Plug-ins add more (the bundled demo adds ``demo`` to both).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vlmbrain.config import RunConfig
from vlmbrain.registry import Registry


def _no_files(config: RunConfig) -> list[Path]:
    return []


def _no_checks(config: RunConfig) -> None:
    return None


@dataclass
class Source:
    """A stimulus or fMRI source.

    Attributes
    ----------
    build : callable
        Stimulus: ``build(ctx) -> Stimulus``. fMRI: ``build(ctx, timeline) -> BrainData``.
        ``ctx`` is the :class:`~vlmbrain.stages.base.StageContext`.
    config_keys : tuple of str
        Configuration keys besides the stage's own section whose values enter the step key.
    input_files : callable
        ``input_files(config) -> list[Path]``: files it reads (fingerprinted).
    preflight : callable
        ``preflight(config)``: raises for what the configuration and headers decide.
    description : str
    """

    build: Callable
    config_keys: tuple[str, ...] = ()
    input_files: Callable[[RunConfig], list[Path]] = field(default=_no_files)
    preflight: Callable[[RunConfig], None] = field(default=_no_checks)
    description: str = ""


STIMULUS_SOURCES: Registry[Source] = Registry("stimulus source", key="stimulus.kind")
BRAIN_SOURCES: Registry[Source] = Registry("fMRI source", key="fmri.kind")


def register_stimulus_source(name: str, source: Source) -> Source:
    return STIMULUS_SOURCES.register(name, source)


def register_brain_source(name: str, source: Source) -> Source:
    return BRAIN_SOURCES.register(name, source)
