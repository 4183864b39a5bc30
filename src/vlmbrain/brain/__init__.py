"""Brain data: spaces (CIFTI / NIfTI / arrays), loaders, streamed group averages, per-subject tasks."""

from vlmbrain.brain.group import group_average
from vlmbrain.brain.loaders import load_cifti, load_nifti, load_npy, load_run, load_runs
from vlmbrain.brain.space import BrainData, BrainSpace
from vlmbrain.brain.subjects import run_per_subject

__all__ = [
    "BrainData",
    "BrainSpace",
    "group_average",
    "load_cifti",
    "load_nifti",
    "load_npy",
    "load_run",
    "load_runs",
    "run_per_subject",
]
