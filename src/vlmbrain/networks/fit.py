"""Which atlas fits the data: an atlas specification seen from the data's brain space.

:func:`atlas_for_space` turns ``networks.atlas`` (a registered name, or a file in any form of
:mod:`vlmbrain.networks.forms`) into an :class:`~vlmbrain.networks.atlas.Atlas` whose labels
follow the data's columns, or raises a one-line :class:`~vlmbrain.errors.DimensionError` that
names both sizes. :func:`choose_atlas` adds the two non-atlases:

- ``"auto"`` (default): the built-in CAB-NP on HCP 91k grayordinates (CIFTI, or 91,282-column
  arrays) and on fsLR 32k surfaces; no atlas for any other space;
- ``"none"``: no atlas.

Without an atlas the analyses that need networks are skipped and say why in
``analysis/skipped.tsv`` (the table ``skipped`` registered here); everything else is computed
on the whole brain.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from vlmbrain.artifacts import TableSchema, register_table
from vlmbrain.errors import ConfigError, DimensionError
from vlmbrain.networks.atlas import Atlas, FSLR32K_VERTICES, load_atlas, registered_key, registered_size
from vlmbrain.networks.forms import (
    atlas_from_columns,
    atlas_from_nifti,
    atlas_from_surface,
    describe_space,
    is_path,
    suffix_form,
)

logger = logging.getLogger("vlmbrain")

__all__ = ["AUTO", "NONE", "SKIPPED", "AtlasChoice", "atlas_for_space", "choose_atlas", "default_atlas",
           "fit_to_space", "is_none"]

AUTO = "auto"
#: Spellings of "no atlas" (YAML ``none``, ``null`` and an empty value).
NONE = ("none", "null", "")

#: ``analysis/skipped.tsv``: every analysis (and table) the run left out, and why.
SKIPPED = register_table(TableSchema(
    "skipped", (("analysis", "str"), ("table", "str"), ("reason", "str")),
    "analyses left out of this run (no atlas fits the data, ...), one row per table, with the reason"))


def is_none(spec) -> bool:
    return spec is None or str(spec).strip().lower() in NONE


def default_atlas(space) -> tuple[str | None, str]:
    """The atlas ``"auto"`` stands for in ``space``, and why (or why there is none)."""
    n = space.n_grayordinates
    if n == 91282 and space.kind in ("cifti", "array"):
        return "cabnp", "HCP 91k grayordinates: the built-in CAB-NP atlas"
    if space.kind == "gifti" and space.mesh_vertices() == FSLR32K_VERTICES:
        return "cabnp", "fsLR 32k surfaces: the cortex of the built-in CAB-NP atlas"
    return None, (f"no built-in atlas is defined on the data's {describe_space(space)}; set networks.atlas to an "
                  "atlas of this space (NIfTI label image, GIFTI .label.gii / .annot, a TSV mapping columns to "
                  "networks, a CIFTI .dlabel.nii, or a registered name)")


def _project_surface(atlas: Atlas, space) -> Atlas | None:
    """A surface atlas (e.g. the 91k built-ins' cortex) on the vertices of a surface space of the same mesh."""
    target = space.surface_vertices()
    if not atlas.surface or not target or atlas.mesh_size != space.mesh_vertices():
        return None
    labels = np.zeros(space.n_grayordinates, dtype=np.int64)
    for hemi, (index, vertex) in target.items():
        if hemi not in atlas.surface:
            return None
        g, v = atlas.surface[hemi]
        full = np.zeros(int(atlas.mesh_size), dtype=np.int64)
        full[v] = atlas.labels[g]
        labels[index] = full[vertex]
    present = set(np.unique(labels).tolist()) - {0}
    names = {i: n for i, n in atlas.names.items() if i in present}
    return Atlas(name=atlas.name, labels=labels, names=names,
                 colors={i: c for i, c in atlas.colors.items() if i in names}, space_size=space.n_grayordinates,
                 surface=target, mesh_size=atlas.mesh_size, mesh=space.mesh or atlas.mesh,
                 source=f"{atlas.source}, cortex on the data's {space.mesh} vertices", form=atlas.form)


def _mismatch(atlas_name, source, atlas_size, space=None, n=None) -> DimensionError:
    what = describe_space(space) if space is not None else f"{int(n)} grayordinates"
    src = f" ({source})" if source else ""
    return DimensionError(
        f"atlas {atlas_name!r}{src} has {int(atlas_size)} grayordinates but the data have {what}; use an atlas "
        "of the data's space (networks.atlas), or networks.atlas: none to run without networks")


def fit_to_space(atlas: Atlas, space=None, n_grayordinates: int | None = None) -> Atlas:
    """``atlas`` on the data's columns: as is when the sizes agree, projected for surface spaces of its mesh.

    Geometry the atlas lacks is taken from the space: surface vertices and mesh (spin test),
    positions (Moran null).
    """
    n = space.n_grayordinates if space is not None else n_grayordinates
    if n is None:
        return atlas
    if atlas.space_size != int(n):
        projected = _project_surface(atlas, space) if space is not None and space.kind == "gifti" else None
        if projected is None:
            raise _mismatch(atlas.name, atlas.source, atlas.space_size, space, n)
        return projected
    if space is not None:
        if atlas.surface is None and space.kind in ("gifti", "cifti"):
            atlas.surface = space.surface_vertices()
            atlas.mesh_size = space.mesh_vertices()
            atlas.mesh = space.mesh
        if atlas.coords is None:
            coords = space.coordinates()
            if coords is not None and np.isfinite(coords).all():
                atlas.coords = coords
    return atlas


def atlas_for_space(spec, space=None, *, n_grayordinates: int | None = None, labels=None, right=None,
                    map_index: int = 0) -> Atlas:
    """The atlas ``spec`` names, with one label per column of the data.

    Parameters
    ----------
    spec : str or path-like
        A registered atlas name or a file: ``.dlabel.nii``, ``.nii``/``.nii.gz`` (label
        image), ``.label.gii``/``.annot`` (one hemisphere; the other found by name), ``.tsv``
        (one row per column).
    space : BrainSpace, optional
        The data's space; needed for NIfTI, GIFTI/annot and TSV atlases.
    n_grayordinates : int, optional
        The data's column count when no space is given (size check only).
    labels : path, optional
        Label lookup TSV (``networks.labels``, :mod:`vlmbrain.networks.forms`).
    right : path, optional
        Right-hemisphere file of a surface atlas (``networks.atlas_right``).
    map_index : int, default=0
        Label map of a multi-map dlabel file.

    Raises
    ------
    DimensionError
        The atlas does not fit the data (one line naming both sizes).
    ConfigError, InputFileError
        Unknown name, unreadable file, a form that needs the data's space without one.
    """
    spec = os.fspath(spec)
    n = space.n_grayordinates if space is not None else n_grayordinates
    form = None if registered_key(spec) is not None else suffix_form(spec)
    if form in ("nifti", "gifti", "annot", "tsv"):
        if space is None:
            raise ConfigError(f"atlas {spec!r} is a {form} file: it can only be matched to the data once their brain "
                              "space is known")
        if form == "nifti":
            atlas = atlas_from_nifti(spec, space, lookup=labels)
        elif form == "tsv":
            atlas = atlas_from_columns(spec, space.n_grayordinates)
        else:
            atlas = atlas_from_surface(spec, space, right=right, lookup=labels)
        return fit_to_space(atlas, space)
    size = registered_size(spec)
    if size is not None and n is not None and size != int(n) and not (space is not None and space.kind == "gifti"):
        raise _mismatch(spec, "", size, space, n)   # known without loading it
    atlas = load_atlas(spec, map_index=map_index)
    return fit_to_space(atlas, space, n)


@dataclass
class AtlasChoice:
    """The atlas a run uses (None: none fits or none was asked for) and why."""

    atlas: Atlas | None
    spec: str
    reason: str


def choose_atlas(spec, space, *, labels=None, right=None, map_index: int = 0) -> AtlasChoice:
    """The atlas of a run: ``"none"`` → none, ``"auto"`` → :func:`default_atlas`, else :func:`atlas_for_space`.

    ``"auto"`` never fails: when its atlas does not fit either, the choice is no atlas with the
    reason. An explicitly named atlas that does not fit raises.
    """
    if is_none(spec):
        return AtlasChoice(None, "none", "networks.atlas is none")
    spec = os.fspath(spec)
    if spec.strip().lower() == AUTO:
        name, why = default_atlas(space)
        if name is None:
            return AtlasChoice(None, AUTO, why)
        try:
            return AtlasChoice(atlas_for_space(name, space), AUTO, why)
        except (DimensionError, ConfigError) as err:
            return AtlasChoice(None, AUTO, f"the default atlas {name!r} does not fit: {err}")
    atlas = atlas_for_space(spec, space, labels=labels, right=right, map_index=map_index)
    return AtlasChoice(atlas, spec, f"networks.atlas: {spec}" if not is_path(spec) else f"networks.atlas: {atlas.name}")
