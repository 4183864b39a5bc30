"""The pipeline's stages, one module each, registered in the order they run.

=============  =========================================================================
stimulus       the TR timeline of the movie (:mod:`~vlmbrain.stages.stimulus`)
brain          the fMRI, checked and z-scored (:mod:`~vlmbrain.stages.brain`)
extract        AN readouts of every model (:mod:`~vlmbrain.stages.extract`)
signal         HRF-convolved AN time courses (:mod:`~vlmbrain.stages.signal`)
dictionary     sparse temporal atoms (:mod:`~vlmbrain.stages.dictionary`)
encoding       voxel-wise encoding, p and q maps (:mod:`~vlmbrain.stages.encoding`)
analysis       affiliation and the analyses (:mod:`~vlmbrain.stages.analysis`)
report         the HTML report (:mod:`~vlmbrain.stages.report`)
=============  =========================================================================

Stimulus and fMRI sources (:mod:`~vlmbrain.stages.sources`) and post-analysis hooks are
registries too; plug-ins add to them (see :mod:`vlmbrain.plugins`).
"""

from vlmbrain.stages import stimulus as _stimulus  # noqa: I001  (registration order is the pipeline order)
from vlmbrain.stages import brain as _brain
from vlmbrain.stages import extract as _extract
from vlmbrain.stages import signal as _signal
from vlmbrain.stages import dictionary as _dictionary
from vlmbrain.stages import encoding as _encoding
from vlmbrain.stages import analysis as _analysis
from vlmbrain.stages import report as _report
from vlmbrain.stages import atom_cards as _atom_cards  # the post-analysis hook 'atom-cards'
from vlmbrain.stages.analysis import ANALYSIS_HOOKS, AnalysisHook, register_analysis_hook
from vlmbrain.stages.base import STAGES, Stage, StageContext, Step, register_stage
from vlmbrain.stages.brain import build_brain, check_lengths
from vlmbrain.stages.sources import (
    BRAIN_SOURCES,
    STIMULUS_SOURCES,
    InputFacts,
    Source,
    register_brain_source,
    register_stimulus_source,
)
from vlmbrain.stages.stimulus import build_stimulus

__all__ = [
    "ANALYSIS_HOOKS",
    "AnalysisHook",
    "BRAIN_SOURCES",
    "InputFacts",
    "STAGES",
    "STIMULUS_SOURCES",
    "Source",
    "Stage",
    "StageContext",
    "Step",
    "build_brain",
    "build_stimulus",
    "check_lengths",
    "register_analysis_hook",
    "register_brain_source",
    "register_stage",
    "register_stimulus_source",
]
