"""Atlases in the forms the data come in, each turned into one network label per data column.

Every reader takes the data's brain space (a :class:`vlmbrain.brain.space.BrainSpace`, used
here through its attributes only) and returns an :class:`~vlmbrain.networks.atlas.Atlas` whose
labels follow the space's columns:

- :func:`atlas_from_nifti`: a 3-D NIfTI label image (``.nii``/``.nii.gz``) for volumetric data,
  resampled to the data's grid with nilearn (nearest neighbour) and checked for overlap with
  the mask; also for the volume structures of CIFTI data;
- :func:`atlas_from_surface`: GIFTI ``.label.gii`` or FreeSurfer ``.annot`` files, one per
  hemisphere, for surface data (GIFTI spaces, and CIFTI spaces whose cortex lies on the same
  mesh);
- :func:`atlas_from_columns`: a TSV mapping every column of array data (ROIs, parcels) to a
  network name (optionally with a colour and the ROI's x, y, z in mm, which enable the Moran
  spectral null).

Label names and networks
------------------------
Label ids become networks. A lookup TSV (``networks.labels``; for NIfTI atlases also the
atlas's sidecar ``<atlas>.tsv`` / ``<atlas>_dseg.tsv`` when present) names them: columns
``index`` (label id) or ``name`` (label name, as the file's own table spells it), and
``network`` to group parcels into networks (Schaefer 400 parcels → 7 networks) or ``name``
alone to name the labels; an optional ``color`` (``#rrggbb``) colours the network. Labels that
the lookup does not list, or whose network is empty, ``none`` or ``n/a``, are unassigned (0).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from vlmbrain.errors import ConfigError, DimensionError, InputFileError
from vlmbrain.networks.atlas import Atlas, normalize_network_name

logger = logging.getLogger("vlmbrain")

__all__ = ["PALETTE", "atlas_from_columns", "atlas_from_nifti", "atlas_from_surface", "describe_space",
           "is_path", "other_hemisphere", "read_lookup", "suffix_form"]

#: Colours of networks that come without one (matplotlib's tab20, RGBA in [0, 1]).
PALETTE = tuple(
    tuple(int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)) + (1.0,)
    for h in ("1f77b4", "ff7f0e", "2ca02c", "d62728", "9467bd", "8c564b", "e377c2", "7f7f7f", "bcbd22",
              "17becf", "aec7e8", "ffbb78", "98df8a", "ff9896", "c5b0d5", "c49c94", "f7b6d2", "c7c7c7",
              "dbdb8d", "9edae5")
)
_UNASSIGNED = {"", "none", "n/a", "na", "nan", "unassigned", "unknown", "???", "medial_wall", "medialwall"}


def describe_space(space) -> str:
    """``'487 columns (array data)'``, ``'20484 vertices (fsaverage5 surfaces)'``... for messages."""
    n = space.n_grayordinates
    if space.kind == "array":
        return f"{n} columns (array data)"
    if space.kind == "nifti":
        return f"{n} voxels (NIfTI mask)"
    if space.kind == "gifti":
        return f"{n} vertices ({space.mesh} surface{'s' if len(space.hemispheres) > 1 else ''})"
    return f"{n} grayordinates ({'HCP 91k ' if space.name == 'hcp91k' else ''}CIFTI)"


# ----------------------------------------------------------------------------- lookup tables
def _color(value):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    v = str(value).strip()
    if re.fullmatch(r"#?[0-9a-fA-F]{6}", v):
        v = v.lstrip("#")
        return tuple(int(v[i:i + 2], 16) / 255 for i in (0, 2, 4)) + (1.0,)
    parts = [p for p in re.split(r"[\s,;]+", v) if p]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        return None
    if len(vals) in (3, 4):
        scale = 255.0 if max(vals[:3]) > 1 else 1.0
        rgb = tuple(c / scale for c in vals[:3])
        return rgb + ((vals[3] / scale if len(vals) == 4 else 1.0),)
    return None


def _read_tsv(path, what) -> pd.DataFrame:
    path = str(path)
    if not os.path.isfile(path):
        raise InputFileError(f"{what} {path!r} does not exist")
    sep = "," if path.lower().endswith(".csv") else "\t"
    try:
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except Exception as err:
        raise InputFileError(f"{what} {path!r} is not a readable table ({err})") from err
    table.columns = [str(c).strip().lower() for c in table.columns]
    return table


def read_lookup(path) -> pd.DataFrame:
    """A label lookup TSV as columns ``index`` (int or NaN), ``name``, ``network``, ``color``.

    See the module docstring for the accepted columns; ``network`` defaults to ``name``.
    """
    table = _read_tsv(path, "label lookup")
    if "index" not in table.columns and "name" not in table.columns:
        raise InputFileError(f"label lookup {str(path)!r} needs an 'index' or a 'name' column (has {list(table.columns)})")
    if "network" not in table.columns and "name" not in table.columns:
        raise InputFileError(f"label lookup {str(path)!r} needs a 'network' or a 'name' column (has {list(table.columns)})")
    out = pd.DataFrame({
        "index": pd.to_numeric(table["index"], errors="coerce") if "index" in table else np.nan,
        "name": table["name"].str.strip() if "name" in table else "",
    })
    out["network"] = (table["network"] if "network" in table else table["name"]).str.strip()
    out["color"] = table["color"] if "color" in table else None
    return out


def _networks_from_lookup(lookup: pd.DataFrame, label_names: dict[int, str], source: str):
    """Map the file's label ids to network ids 1..M: (lut dict id -> network id, names, colors)."""
    by_index = {int(r.index): r for r in lookup.itertuples() if np.isfinite(r.index)}
    by_name = {normalize_network_name(r.name): r for r in lookup.itertuples() if r.name}
    net_ids: dict[str, int] = {}
    names, colors, lut = {}, {}, {}
    unmatched = []
    for lid in sorted(label_names):
        row = by_index.get(lid)
        if row is None and label_names[lid]:
            row = by_name.get(normalize_network_name(label_names[lid]))
        if row is None:
            unmatched.append(label_names[lid] or str(lid))
            continue
        network = str(row.network)
        if network.lower() in _UNASSIGNED:
            continue
        key = normalize_network_name(network)
        if key not in net_ids:
            net_ids[key] = len(net_ids) + 1
            names[net_ids[key]] = network
            colors[net_ids[key]] = _color(row.color)
        lut[lid] = net_ids[key]
    if unmatched:
        logger.warning("%s: %d labels are not in the lookup table and stay unassigned (%s%s)", source,
                       len(unmatched), ", ".join(unmatched[:5]), "..." if len(unmatched) > 5 else "")
    return lut, names, colors


def _networks_of_labels(label_names: dict[int, str], label_colors: dict[int, tuple], lookup, source: str):
    """(lut file id -> network id, names, colours) from a lookup table or from the file's own table."""
    if lookup is not None:
        lut, names, colors = _networks_from_lookup(lookup, label_names, source)
    else:
        net_ids: dict[str, int] = {}
        names, colors, lut = {}, {}, {}
        for lid in sorted(label_names):
            name = label_names[lid] or f"label {lid}"
            if name.strip().lower() in _UNASSIGNED:
                continue
            key = normalize_network_name(name) or str(lid)
            if key not in net_ids:
                net_ids[key] = len(net_ids) + 1
                names[net_ids[key]] = name
                colors[net_ids[key]] = label_colors.get(lid)
            lut[lid] = net_ids[key]
    colors = _fill_colors(names, colors)
    return lut, names, colors


def _fill_colors(names, colors):
    """Every network's colour: its own, else the palette's colour for its id."""
    out = {}
    for i in names:
        c = colors.get(i)
        out[i] = tuple(float(x) for x in c) if c is not None else PALETTE[(i - 1) % len(PALETTE)]
    return out


def _apply(lut: dict[int, int], values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.int64)
    out = np.zeros(values.shape, dtype=np.int64)
    for lid, nid in lut.items():
        out[values == lid] = nid
    return out


# ----------------------------------------------------------------------------- NIfTI
def _sidecar_lookup(path: str) -> str | None:
    base = re.sub(r"\.nii(\.gz)?$", "", path)
    for cand in (base + ".tsv", base + "_dseg.tsv", base + ".txt", base + "_labels.tsv"):
        if os.path.isfile(cand):
            return cand
    return None


def atlas_from_nifti(path, space, lookup=None, min_overlap: float = 0.5) -> Atlas:
    """A NIfTI label image as network labels of a volumetric space.

    Parameters
    ----------
    path : str or Path
        3-D integer label image (0 = unlabelled), in the same template as the data (e.g.
        MNI152NLin2009cAsym); any resolution: it is resampled to the data's grid with
        ``nilearn.image.resample_to_img(interpolation="nearest")``.
    space : BrainSpace
        ``kind="nifti"`` (the mask's voxels) or ``kind="cifti"`` with volume structures.
    lookup : str or Path, optional
        Label lookup TSV (module docstring); default the atlas's sidecar TSV if present, else
        every label id is its own network named ``label <id>``.
    min_overlap : float, default=0.5
        Below this fraction of the data's voxels labelled, a warning says so; with no voxel
        labelled the atlas does not fit and :class:`DimensionError` is raised.

    Returns
    -------
    Atlas
        With ``coords`` (voxel centres, mm) for the Moran null.
    """
    import nibabel as nib
    from nilearn.image import resample_to_img

    path = str(path)
    if not os.path.isfile(path):
        raise InputFileError(f"atlas file {path!r} does not exist")
    try:
        img = nib.load(path)
    except Exception as err:
        raise InputFileError(f"atlas file {path!r} is not a readable NIfTI image ({err})") from err
    if isinstance(img, nib.Cifti2Image) or len(img.shape) not in (3, 4) or (len(img.shape) == 4 and img.shape[3] != 1):
        raise InputFileError(f"atlas file {path!r} has shape {img.shape}; a NIfTI label atlas is one 3-D image")
    if len(img.shape) == 4:
        img = nib.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine, img.header)
    data = np.asarray(img.dataobj)
    if not np.allclose(data, np.rint(data)):
        raise InputFileError(f"atlas file {path!r} holds non-integer values; a label atlas holds label ids")
    if space.kind == "nifti":
        target = space.mask_img
        select = np.asarray(target.dataobj) != 0
        where = None
    elif space.kind == "cifti" and space.axis is not None and np.asarray(space.axis.volume_mask).any():
        target = nib.Nifti1Image(np.zeros(space.axis.volume_shape, np.uint8), space.axis.affine)
        vol = np.asarray(space.axis.volume_mask)
        where = (np.flatnonzero(vol), space.axis.voxel[vol])
        select = None
    else:
        raise DimensionError(
            f"atlas {os.path.basename(path)!r} is a NIfTI volume but the data have {describe_space(space)} "
            "without voxels; use a surface atlas (.label.gii/.annot) or a column TSV")
    label_img = nib.Nifti1Image(np.rint(data).astype(np.int32), img.affine)
    resampled = resample_to_img(label_img, target, interpolation="nearest", force_resample=True, copy_header=True)
    grid = np.rint(np.asarray(resampled.dataobj)).astype(np.int64)
    if where is None:
        values = grid[select]
    else:
        values = np.zeros(space.n_grayordinates, dtype=np.int64)
        ijk = where[1]
        values[where[0]] = grid[ijk[:, 0], ijk[:, 1], ijk[:, 2]]
    ids = sorted(int(v) for v in np.unique(values) if v != 0)
    if not ids:
        raise DimensionError(
            f"atlas {os.path.basename(path)!r} labels none of the data's {space.n_grayordinates} voxels after "
            "resampling to their grid; are the atlas and the data in the same template space?")
    lookup = lookup or _sidecar_lookup(path)
    table = read_lookup(lookup) if lookup else None
    label_names = {i: "" for i in ids}
    if table is not None:
        for r in table.itertuples():
            if np.isfinite(r.index) and int(r.index) in label_names:
                label_names[int(r.index)] = r.name
    else:
        label_names = {i: f"label {i}" for i in ids}
    lut, names, colors = _networks_of_labels(label_names, {}, table, path)
    labels = _apply(lut, values)
    n_vox = values.size if where is None else where[0].size
    frac = float((labels != 0).sum()) / max(n_vox, 1)
    if frac < min_overlap:
        logger.warning("atlas %s labels %.0f%% of the data's voxels with a network; the rest are unassigned",
                       os.path.basename(path), 100 * frac)
    return Atlas(name=os.path.basename(path), labels=labels, names=names, colors=colors,
                 space_size=space.n_grayordinates, source=os.path.abspath(path), coords=space.coordinates(),
                 surface=space.surface_vertices() if space.kind == "cifti" else None,
                 mesh_size=space.mesh_vertices() if space.kind == "cifti" else None,
                 mesh=space.mesh if space.kind == "cifti" else None, form="nifti")


# ----------------------------------------------------------------------------- surfaces
_HEMI_SWAPS = (
    (r"hemi-L(?=[_.])", "hemi-R"), (r"hemi-R(?=[_.])", "hemi-L"),
    (r"(?<=[._])L(?=\.)", "R"), (r"(?<=[._])R(?=\.)", "L"),
    (r"^lh\.", "rh."), (r"^rh\.", "lh."),
    (r"(?<=[._-])lh(?=[._-])", "rh"), (r"(?<=[._-])rh(?=[._-])", "lh"),
    (r"(?<=[._-])left(?=[._-])", "right"), (r"(?<=[._-])right(?=[._-])", "left"),
)
_LEFT_MARK = re.compile(r"hemi-L(?=[_.])|(?<=[._])L(?=\.)|^lh\.|(?<=[._-])lh(?=[._-])|(?<=[._-])left(?=[._-])")


def other_hemisphere(path) -> tuple[str, str] | None:
    """(hemisphere of ``path``, path of the other hemisphere's file) from the name's marker, or None."""
    d, name = os.path.split(str(path))
    for pattern, repl in _HEMI_SWAPS:
        if re.search(pattern, name):
            hemi = "left" if _LEFT_MARK.search(name) else "right"
            return hemi, os.path.join(d, re.sub(pattern, repl, name, count=1))
    return None


def _read_surface_labels(path: str):
    """(labels per vertex, {id: name}, {id: rgba}) of a .annot or .label.gii file."""
    import nibabel as nib

    if not os.path.isfile(path):
        raise InputFileError(f"atlas file {path!r} does not exist")
    try:
        if path.endswith(".annot"):
            labels, ctab, names = nib.freesurfer.read_annot(path)
            labels = np.asarray(labels, dtype=np.int64)
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
            table = {i: n for i, n in enumerate(names)}
            colors = {i: tuple(float(c) / 255 for c in ctab[i, :3]) + (1.0,) for i in range(len(names))}
            # read_annot gives -1 for vertices without a label; ids are positions in the colour table,
            # shifted by one so that 0 stays "unlabelled"
            labels = np.where(labels >= 0, labels + 1, 0)
            table = {i + 1: n for i, n in table.items()}
            colors = {i + 1: c for i, c in colors.items()}
            return labels, table, colors
        img = nib.load(path)
    except InputFileError:
        raise
    except Exception as err:
        raise InputFileError(f"atlas file {path!r} cannot be read ({type(err).__name__}: {err})") from err
    if not isinstance(img, nib.gifti.GiftiImage) or not img.darrays:
        raise InputFileError(f"atlas file {path!r} is not a GIFTI label file")
    labels = np.rint(np.asarray(img.darrays[0].data)).astype(np.int64).ravel()
    table, colors = {}, {}
    for lab in img.labeltable.labels:
        table[int(lab.key)] = str(lab.label or "")
        rgba = lab.rgba
        if rgba is not None and all(c is not None for c in rgba):
            colors[int(lab.key)] = tuple(float(c) for c in rgba)
    if not table:
        table = {int(v): f"label {int(v)}" for v in np.unique(labels) if v != 0}
    table.pop(0, None)
    return labels, table, colors


def atlas_from_surface(path, space, right=None, lookup=None) -> Atlas:
    """GIFTI ``.label.gii`` / FreeSurfer ``.annot`` files as network labels of a surface space.

    Parameters
    ----------
    path : str or Path
        One hemisphere's file; the other one is ``right`` or, by default, the same name with the
        hemisphere marker swapped (``lh.``/``rh.``, ``hemi-L``/``hemi-R``, ``.L.``/``.R.``).
    space : BrainSpace
        A GIFTI space, or a CIFTI space whose cortex lies on a mesh of the atlas's size.
    right : str or Path, optional
        The other hemisphere's file.
    lookup : str or Path, optional
        Label lookup TSV (module docstring); default the files' own label tables, labels
        with the same name in both hemispheres being one network.

    Returns
    -------
    Atlas
        With the space's surface vertices and mesh (for the spin test).
    """
    path = str(path)
    hemis = space.surface_vertices() if space.kind in ("gifti", "cifti") else None
    if not hemis:
        raise DimensionError(
            f"atlas {os.path.basename(path)!r} is a surface atlas but the data have {describe_space(space)} "
            "without surface vertices; use a NIfTI label atlas or a column TSV")
    files = {}
    swapped = other_hemisphere(path)
    if right is not None:
        files = {"left": path, "right": str(right)}
    elif swapped is not None:
        hemi, other = swapped
        files = {hemi: path, ("right" if hemi == "left" else "left"): other}
    elif len(hemis) == 1:
        files = {next(iter(hemis)): path}
    else:
        raise ConfigError(f"atlas {path!r}: cannot tell its hemisphere from its name; name it lh./rh., hemi-L/hemi-R "
                          "or .L./.R., or give the right hemisphere's file as networks.atlas_right")
    n_mesh = space.mesh_vertices()
    names_all: dict[str, int] = {}
    per_hemi = {}
    label_names, label_colors = {}, {}
    for hemi in hemis:
        if hemi not in files:
            raise ConfigError(f"atlas {path!r} covers the {', '.join(files)} hemisphere but the data have {hemi} too")
        labels, table, colors = _read_surface_labels(files[hemi])
        if labels.size != n_mesh:
            raise DimensionError(
                f"atlas {os.path.basename(files[hemi])!r} has {labels.size} vertices per hemisphere but the data "
                f"have {n_mesh} ({describe_space(space)}); resample the atlas to the data's mesh")
        # one id space for both hemispheres: labels with the same name are the same label
        remap = {}
        for lid, name in table.items():
            key = name or f"{hemi}:{lid}"
            if key not in names_all:
                names_all[key] = len(names_all) + 1
                label_names[names_all[key]] = name
                if lid in colors:
                    label_colors[names_all[key]] = colors[lid]
            remap[lid] = names_all[key]
        per_hemi[hemi] = _apply(remap, labels)
    table = read_lookup(lookup) if lookup else None
    lut, names, colors = _networks_of_labels(label_names, label_colors, table, path)
    out = np.zeros(space.n_grayordinates, dtype=np.int64)
    for hemi, (index, vertex) in hemis.items():
        out[index] = _apply(lut, per_hemi[hemi][vertex])
    if not (out != 0).any():
        raise DimensionError(f"atlas {os.path.basename(path)!r} assigns no network to any of the data's vertices")
    form = "annot" if path.endswith(".annot") else "gifti"
    return Atlas(name=os.path.basename(path), labels=out, names=names, colors=colors,
                 space_size=space.n_grayordinates, surface=hemis, mesh_size=n_mesh, mesh=space.mesh,
                 source=" + ".join(os.path.abspath(files[h]) for h in hemis), form=form,
                 coords=space.coordinates() if space.kind == "cifti" else None)


# ----------------------------------------------------------------------------- column TSV
def atlas_from_columns(path, n_columns: int) -> Atlas:
    """A TSV mapping every data column (ROI, parcel) to a network.

    Parameters
    ----------
    path : str or Path
        Tab-separated (``.csv``: comma) with a ``network`` column and one row per data column,
        in column order; or with a ``column`` column (0-based index) listing some columns
        (the others are unassigned). Optional: ``name`` (the ROI's name), ``color``
        (``#rrggbb``), ``x``, ``y``, ``z`` (ROI position in mm, for the Moran null).
    n_columns : int
        Columns of the data.

    Raises
    ------
    DimensionError
        The table has another number of rows than the data have columns (both named), or a
        ``column`` index outside the data.
    """
    path = str(path)
    table = _read_tsv(path, "atlas table")
    if "network" not in table.columns:
        raise InputFileError(f"atlas table {path!r} needs a 'network' column (has {list(table.columns)}): one row per "
                             "data column, naming its network")
    if "column" in table.columns:
        try:
            cols = table["column"].astype(int).to_numpy()
        except ValueError as err:
            raise InputFileError(f"atlas table {path!r}: 'column' must hold 0-based column indices ({err})") from None
        if cols.size and (cols.min() < 0 or cols.max() >= n_columns):
            raise DimensionError(f"atlas table {os.path.basename(path)!r} names columns up to {cols.max()} but the data "
                                 f"have {n_columns} columns")
    else:
        if len(table) != n_columns:
            raise DimensionError(f"atlas table {os.path.basename(path)!r} has {len(table)} rows but the data have "
                                 f"{n_columns} columns; give one row per column (or a 'column' index column)")
        cols = np.arange(n_columns)
    net_ids: dict[str, int] = {}
    names, colors = {}, {}
    labels = np.zeros(n_columns, dtype=np.int64)
    color_col = table["color"] if "color" in table.columns else None
    for row, (col, network) in enumerate(zip(cols, table["network"].str.strip(), strict=True)):
        if network.lower() in _UNASSIGNED:
            continue
        key = normalize_network_name(network) or network
        if key not in net_ids:
            net_ids[key] = len(net_ids) + 1
            names[net_ids[key]] = network
            colors[net_ids[key]] = _color(color_col.iloc[row]) if color_col is not None else None
        labels[col] = net_ids[key]
    if not names:
        raise InputFileError(f"atlas table {path!r} assigns no column to a network")
    coords = None
    if {"x", "y", "z"} <= set(table.columns):
        coords = np.full((n_columns, 3), np.nan)
        try:
            coords[cols] = table[["x", "y", "z"]].astype(float).to_numpy()
        except ValueError as err:
            raise InputFileError(f"atlas table {path!r}: x, y, z must be numbers in mm ({err})") from None
    return Atlas(name=os.path.basename(path), labels=labels, names=names, colors=_fill_colors(names, colors),
                 space_size=n_columns, source=os.path.abspath(path), coords=coords, form="tsv")


def suffix_form(path) -> str | None:
    """The atlas form a file name asks for: ``dlabel``, ``nifti``, ``gifti``, ``annot``, ``tsv`` or None."""
    p = str(path).lower()
    if p.endswith(".dlabel.nii"):
        return "dlabel"
    if p.endswith((".nii", ".nii.gz")):
        return "nifti"
    if p.endswith(".gii"):
        return "gifti"
    if p.endswith(".annot"):
        return "annot"
    if p.endswith((".tsv", ".csv", ".txt")):
        return "tsv"
    return None


def is_path(spec) -> bool:
    """Whether an atlas specification names a file (a known suffix, a separator or an existing path)."""
    s = os.fspath(spec)
    return suffix_form(s) is not None or os.path.sep in s or "/" in s or Path(s).exists()
