"""Stimulus: the TR grid (timeline), frames and captions of a naturalistic movie."""

from vlmbrain.stimulus.timeline import TIMELINE_COLUMNS, ArrayStimulus, Stimulus, Timeline

__all__ = [
    "TIMELINE_COLUMNS",
    "ArrayStimulus",
    "Stimulus",
    "Timeline",
    "VideoStimulus",
    "attach_captions",
    "hcp7t_timeline",
    "hcp7t_stimulus",
]


def __getattr__(name):  # lazy: PyAV and webvtt load only when used
    if name == "VideoStimulus":
        from vlmbrain.stimulus.video import VideoStimulus

        return VideoStimulus
    if name == "attach_captions":
        from vlmbrain.stimulus.captions import attach_captions

        return attach_captions
    if name in ("hcp7t_timeline", "hcp7t_stimulus"):
        from vlmbrain.stimulus import hcp7t

        return getattr(hcp7t, name)
    raise AttributeError(f"module 'vlmbrain.stimulus' has no attribute {name!r}")
