"""Where a run's stimulus and fMRI come from: two registries keyed by ``stimulus.kind`` / ``fmri.kind``.

A source is a :class:`Source`: a ``build`` function plus what it depends on. The built-in
stimulus sources are ``hcp7t`` and ``custom``; the built-in fMRI sources ``cifti``, ``nifti``,
``gifti`` (surface runs per hemisphere), ``npy`` and ``bids`` (fMRIPrep derivatives). Plug-ins
add more (the bundled demo adds ``demo`` to both).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vlmbrain.config import RunConfig
from vlmbrain.registry import Registry


@dataclass(frozen=True)
class InputFacts:
    """What a source knows about its data before reading it; ``None`` where it cannot tell.

    The preflight compares the stimulus's facts with the fMRI's and sizes the dictionary, the
    shift null and the HRF lag against them.

    Attributes
    ----------
    run_names : list of str
    run_lengths : list of int
        TRs per run.
    n_grayordinates : int
        Columns of the fMRI data (fMRI sources).
    tr : float
        Repetition time in seconds (from the configuration or the files' headers).
    modalities : frozenset of str
        ``"image"`` and/or ``"text"``: what the stimulus gives a model to read.
    """

    run_names: list[str] | None = None
    run_lengths: list[int] | None = None
    n_grayordinates: int | None = None
    tr: float | None = None
    modalities: frozenset[str] | None = None


def _no_files(config: RunConfig) -> list[Path]:
    return []


def _no_checks(config: RunConfig) -> None:
    return None


def _no_facts(config: RunConfig) -> InputFacts:
    return InputFacts()


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
        ``preflight(config)``: raises for what the configuration and headers decide (headers
        only: no data body is read).
    description : str
    facts : callable
        ``facts(config) -> InputFacts``: run lengths, grayordinates, TR, modalities as far as
        the configuration and headers tell (the default knows nothing).
    space : callable
        fMRI sources: ``space(config) -> BrainSpace | None``, the data's brain space from the
        headers (None when only the data tell); the atlas is matched to it before extraction.
    """

    build: Callable
    config_keys: tuple[str, ...] = ()
    input_files: Callable[[RunConfig], list[Path]] = field(default=_no_files)
    preflight: Callable[[RunConfig], None] = field(default=_no_checks)
    description: str = ""
    facts: Callable[[RunConfig], InputFacts] = field(default=_no_facts)
    space: Callable[[RunConfig], object] = field(default=_no_checks)


STIMULUS_SOURCES: Registry[Source] = Registry("stimulus source", key="stimulus.kind")
BRAIN_SOURCES: Registry[Source] = Registry("fMRI source", key="fmri.kind")


def register_stimulus_source(name: str, source: Source) -> Source:
    return STIMULUS_SOURCES.register(name, source)


def register_brain_source(name: str, source: Source) -> Source:
    return BRAIN_SOURCES.register(name, source)
