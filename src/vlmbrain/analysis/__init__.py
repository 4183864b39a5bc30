"""The study's analyses (docs/method.md §6), each returning tidy pandas tables.

- :mod:`~vlmbrain.analysis.prediction` — cross-validated r per network;
- :mod:`~vlmbrain.analysis.redundancy` — atoms per grayordinate, affiliated atoms, Jaccard
  within/between networks, ℓ0 of the codes (+ a fault-tolerance hook);
- :mod:`~vlmbrain.analysis.polarity` — BN±/AN±, signed layer profiles, mirror test, BN-correlation view;
- :mod:`~vlmbrain.analysis.crossmodal` — shared / branch-only grayordinates, Dice, network composition;
- :mod:`~vlmbrain.analysis.hierarchy` — centroid layer depth of each atom vs. its network;
- :func:`run_analyses` runs them all on :class:`BranchResult` objects.

Inputs are plain arrays, neuron tables and a :class:`vlmbrain.networks.Atlas`; nothing here
imports torch or the model layer.
"""

from vlmbrain.analysis.crossmodal import crossmodal_overlap, default_pairs
from vlmbrain.analysis.hierarchy import centroid_depth, depth_by_network, hierarchy
from vlmbrain.analysis.polarity import (
    bn_mean_timeseries,
    layer_bn_correlation,
    layer_profiles,
    mirrored_fraction,
    polarity,
)
from vlmbrain.analysis.prediction import prediction_by_network, significant_prediction
from vlmbrain.analysis.redundancy import atoms_per_grayordinate, code_l0, fault_tolerance, redundancy
from vlmbrain.analysis.run import (
    ANALYSES,
    TABLES,
    Analysis,
    AnalysisInputs,
    AnalysisOptions,
    BranchResult,
    SharedState,
    register_analysis,
    run_analyses,
)

__all__ = [
    "ANALYSES",
    "Analysis",
    "SharedState",
    "register_analysis",
    "AnalysisInputs",
    "AnalysisOptions",
    "BranchResult",
    "TABLES",
    "atoms_per_grayordinate",
    "bn_mean_timeseries",
    "centroid_depth",
    "code_l0",
    "crossmodal_overlap",
    "default_pairs",
    "depth_by_network",
    "fault_tolerance",
    "hierarchy",
    "layer_bn_correlation",
    "layer_profiles",
    "mirrored_fraction",
    "polarity",
    "prediction_by_network",
    "redundancy",
    "run_analyses",
    "significant_prediction",
]
