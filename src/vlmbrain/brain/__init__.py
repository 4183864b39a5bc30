"""Brain data: spaces (CIFTI / NIfTI / arrays), loaders, streamed group averages."""

from vlmbrain.brain.space import BrainData, BrainSpace

__all__ = ["BrainData", "BrainSpace"]
