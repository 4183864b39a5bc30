"""Stimulus: the TR grid (timeline), frames and captions of a naturalistic movie."""

from vlmbrain.stimulus.timeline import TIMELINE_COLUMNS, ArrayStimulus, Stimulus, Timeline

__all__ = ["TIMELINE_COLUMNS", "ArrayStimulus", "Stimulus", "Timeline"]
