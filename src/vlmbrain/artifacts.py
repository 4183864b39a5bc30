"""The run directory's artifact schema: every file name, table and ``model.json`` field, once.

Stages write through this module and the report (and users' notebooks) read through it, so a
file name or a column is spelled in exactly one place. Three parts:

- :class:`RunLayout` — the path of every artifact of a run directory;
- table schemas (:class:`TableSchema`, :func:`register_table`, :func:`read_table`,
  :func:`write_table`) — the columns and dtypes of every TSV; an analysis that adds a table
  registers its schema next to its code;
- :class:`ModelInfo` — the fixed content of ``activations/<model>/model.json``: the weights
  hash, whether the weights are trained, and every branch with its modality (from the model's
  readout) and its neuron count.

The layout of a run directory::

    config.yaml, versions.json, warnings.json
    stimulus/timeline.tsv
    brain/data.npy, runs.npy, valid.npy, meta.json, space.json
    activations/<model>/<branch>.npy, <branch>.neurons.tsv, model.json
    signal/<model>/<branch>/timecourses.npy, neurons.tsv
    dictionary/<model>/<unit>/atoms.npy, codes.npy, neurons.tsv, summary.json
    encoding/<model>/<unit>/<map>.dscalar.nii | .nii.gz | .L/.R.func.gii | .npy, summary.json
    networks/<model>/<unit>/affiliation.dlabel.nii (only for units with an affiliated atom)
    analysis/<table>.tsv
    report/index.html, report/figures/

Every map is stored once, in the brain space's own format (:data:`MAP_SUFFIXES`): CIFTI
``.dscalar.nii``, NIfTI ``.nii.gz``, GIFTI ``.L.func.gii`` / ``.R.func.gii``, and ``.npy`` only in
a space of plain columns (``BrainSpace.kind == "array"``) or when ``encoding.npy_maps`` asks for
a NumPy copy too. Read a map with :func:`read_map` (whichever file exists), never with
``np.load`` on a guessed name.

A *unit* is what one dictionary is learned on: a branch (``dictionary.scope: branch``) or all
branches of a model joined by ``+`` (``scope: model``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vlmbrain._io import save_json, save_tsv
from vlmbrain.errors import InputFileError

# ----------------------------------------------------------------------------- names
TIMELINE = "timeline.tsv"
MODEL_JSON = "model.json"
SUMMARY_JSON = "summary.json"
SIDECAR = "_stage.json"
REPORT_HTML = "index.html"

#: Maps of the encoding stage: per atom (K, V) and per grayordinate (V,). ``optional`` ones
#: exist only for some methods / p-value choices.
ATOM_MAPS = ("beta", "t", "p", "q")
FIT_MAPS = ("r_cv", "p_r", "q_r")
OPTIONAL_MAPS = ("r2_cv", "alpha", "p_empirical", "p_r_empirical")

#: Maps with one row per atom, (K, V); every other map is one row, (V,).
PER_ATOM_MAPS = ("beta", "t", "p", "q", "p_empirical")

#: The one file a map takes in each kind of brain space (GIFTI: one file per hemisphere,
#: ``<stem>.L.func.gii`` and ``<stem>.R.func.gii``).
MAP_SUFFIXES = {"cifti": ".dscalar.nii", "nifti": ".nii.gz", "gifti": ".func.gii", "array": ".npy"}
_HEMI_TAGS = {"left": "L", "right": "R"}

#: What a branch needs as input (``Readout.modalities``): a cross-modal stream needs both.
MODALITIES = ("image", "text", "image+text")
#: Which input a branch encodes: the stream it belongs to (METER's image stream needs text too).
STREAMS = ("image", "text")


def unit_name(branches) -> str:
    """The folder name of a dictionary unit: its branches joined by ``+``."""
    return "+".join(branches)


@dataclass(frozen=True)
class RunLayout:
    """Paths of a run directory's artifacts (nothing here touches the disk)."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    # run level
    @property
    def config_yaml(self) -> Path:
        return self.root / "config.yaml"

    @property
    def versions_json(self) -> Path:
        return self.root / "versions.json"

    @property
    def warnings_json(self) -> Path:
        return self.root / "warnings.json"

    def stage_dir(self, stage: str, *parts: str) -> Path:
        return self.root.joinpath(stage, *parts)

    # stimulus / brain
    @property
    def stimulus_dir(self) -> Path:
        return self.root / "stimulus"

    @property
    def timeline_tsv(self) -> Path:
        return self.stimulus_dir / TIMELINE

    @property
    def brain_dir(self) -> Path:
        return self.root / "brain"

    # models
    def activations_dir(self, model: str) -> Path:
        return self.root / "activations" / model

    def activations(self, model: str, branch: str) -> Path:
        return self.activations_dir(model) / f"{branch}.npy"

    def activation_neurons(self, model: str, branch: str) -> Path:
        return self.activations_dir(model) / f"{branch}.neurons.tsv"

    def model_json(self, model: str) -> Path:
        return self.activations_dir(model) / MODEL_JSON

    def signal_dir(self, model: str, branch: str) -> Path:
        return self.root / "signal" / model / branch

    def timecourses(self, model: str, branch: str) -> Path:
        return self.signal_dir(model, branch) / "timecourses.npy"

    def signal_neurons(self, model: str, branch: str) -> Path:
        return self.signal_dir(model, branch) / "neurons.tsv"

    def dictionary_dir(self, model: str, unit: str) -> Path:
        return self.root / "dictionary" / model / unit

    def encoding_dir(self, model: str, unit: str) -> Path:
        return self.root / "encoding" / model / unit

    def encoding_map(self, model: str, unit: str, name: str) -> Path:
        """The map's path *without* suffix: read it with :func:`read_map`, list its files with :func:`map_files`."""
        return self.encoding_dir(model, unit) / name

    def networks_dir(self, model: str, unit: str) -> Path:
        return self.root / "networks" / model / unit

    # analysis / report
    @property
    def analysis_dir(self) -> Path:
        return self.root / "analysis"

    def table(self, name: str) -> Path:
        return self.analysis_dir / f"{name}.tsv"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def report_html(self) -> Path:
        return self.report_dir / REPORT_HTML

    # listing
    def models(self) -> list[str]:
        """Model folders that hold a ``model.json``, in name order."""
        base = self.root / "activations"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / MODEL_JSON).is_file())

    def units(self, scope: str | None = None) -> list[Unit]:
        """Every dictionary unit of the run (from the ``model.json`` files and the dictionary scope)."""
        if scope is None:
            scope = _saved_scope(self)
        out = []
        for m in self.models():
            info = read_model_json(self.model_json(m))
            out.extend(info.units(scope))
        return out


def _saved_scope(layout: RunLayout) -> str:
    if layout.config_yaml.is_file():
        import yaml

        cfg = yaml.safe_load(layout.config_yaml.read_text()) or {}
        return str(((cfg.get("dictionary") or {}).get("scope")) or "branch")
    return "branch"


# ----------------------------------------------------------------------------- model.json
@dataclass
class BranchInfo:
    """One branch of a model.

    ``modality`` is the input it needs (``image``, ``text`` or ``image+text``, from the
    readout), ``stream`` the input it encodes (``image`` or ``text``), ``n_neurons`` its AN count.
    """

    name: str
    modality: str
    stream: str
    n_neurons: int


@dataclass
class Unit:
    """A dictionary unit: a model folder and the branches fitted together."""

    model: str
    branches: list[str]
    streams: list[str]

    @property
    def name(self) -> str:
        return unit_name(self.branches)

    @property
    def modality(self) -> str:
        """The stream(s) the unit encodes: ``image``, ``text``, or ``image+text`` for a joint unit of both."""
        return "+".join(sorted(set(self.streams)))


@dataclass
class ModelInfo:
    """The content of ``activations/<model>/model.json``.

    ``trained`` is what the readout says of its weights (``Readout.trained``): ``True`` only for
    weights that say so (a registry alias's known checkpoint, a hub model, the bundled toy
    models, a trainer's output, ``model.options.trained: true``), ``False`` for random ones, and
    ``None`` (JSON null, shown as "unknown") when nothing says either — a folder of weights is
    never assumed trained. ``trained_evidence`` says what it was decided from.
    """

    name: str
    folder: str
    weights_hash: str
    trained: bool | None
    branches: list[BranchInfo]
    site: str = "head-unit"
    pooling: str = "mean"
    description: str = ""
    family: str = ""
    trained_evidence: str = ""

    @property
    def trained_label(self) -> str:
        """``"trained"``, ``"UNTRAINED (random)"`` or ``"unknown"`` (nothing says whether the weights were trained)."""
        return {True: "trained", False: "UNTRAINED (random)"}.get(self.trained, "unknown")

    @property
    def branch_names(self) -> list[str]:
        return [b.name for b in self.branches]

    def branch(self, name: str) -> BranchInfo:
        for b in self.branches:
            if b.name == name:
                return b
        raise KeyError(f"model {self.name!r} has no branch {name!r}; branches: {self.branch_names}")

    def units(self, scope: str = "branch") -> list[Unit]:
        if scope == "model":
            return [Unit(self.folder, self.branch_names, [b.stream for b in self.branches])]
        return [Unit(self.folder, [b.name], [b.stream]) for b in self.branches]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, source: str = "model.json") -> ModelInfo:
        try:
            branches = [BranchInfo(str(b["name"]), str(b["modality"]), str(b["stream"]), int(b["n_neurons"]))
                        for b in d["branches"]]
            info = cls(name=str(d["name"]), folder=str(d["folder"]), weights_hash=str(d["weights_hash"]),
                       trained=d["trained"], branches=branches, site=str(d.get("site", "head-unit")),
                       pooling=str(d.get("pooling", "mean")), description=str(d.get("description", "")),
                       family=str(d.get("family", "")), trained_evidence=str(d.get("trained_evidence") or ""))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputFileError(f"{source}: not a vlmbrain model.json ({exc!r} missing or malformed)") from None
        if info.trained is not None and not isinstance(info.trained, bool):
            raise InputFileError(f"{source}: 'trained' must be true, false or null (unknown), got {info.trained!r}")
        for b in branches:
            if b.modality not in MODALITIES or b.stream not in STREAMS:
                raise InputFileError(f"{source}: branch {b.name!r} has modality {b.modality!r} / stream {b.stream!r}; "
                                     f"expected a modality in {MODALITIES} and a stream in {STREAMS}")
        return info


def write_model_json(info: ModelInfo, path) -> Path:
    ModelInfo.from_dict(info.to_dict(), source=str(path))  # validate before writing
    return save_json(info.to_dict(), path)


def read_model_json(path) -> ModelInfo:
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputFileError(f"{path} does not exist: run the extract stage first") from None
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return ModelInfo.from_dict(d, source=str(path))


# ----------------------------------------------------------------------------- tables
_DTYPES = {"str": object, "int": "int64", "float": "float64", "bool": bool}


@dataclass(frozen=True)
class TableSchema:
    """A TSV table: its name (``analysis/<name>.tsv``), columns ``(name, dtype)`` in order."""

    name: str
    columns: tuple[tuple[str, str], ...]
    description: str = ""
    folder: str = "analysis"

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def empty(self) -> pd.DataFrame:
        return pd.DataFrame({c: pd.Series(dtype=_DTYPES[t]) for c, t in self.columns})

    def conform(self, df: pd.DataFrame, source: str = "") -> pd.DataFrame:
        """The table with exactly the schema's columns, in order; a missing or extra column is an error."""
        where = source or f"table {self.name!r}"
        missing = [c for c in self.column_names if c not in df.columns]
        extra = [c for c in df.columns if c not in self.column_names]
        if missing or extra:
            raise InputFileError(f"{where}: columns {list(df.columns)} do not match the schema of {self.name!r} "
                                 f"(missing {missing}, unexpected {extra})")
        out = df[self.column_names].copy()
        for c, t in self.columns:
            if t == "bool" and out[c].dtype != bool:
                out[c] = out[c].map(lambda v: str(v).strip().lower() in ("true", "1", "1.0")).astype(bool)
            elif t == "int" and len(out) and not pd.api.types.is_integer_dtype(out[c]):
                out[c] = pd.to_numeric(out[c], errors="raise").astype("int64")
            elif t == "float":
                out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
        return out


TABLES: dict[str, TableSchema] = {}


def register_table(schema: TableSchema) -> TableSchema:
    """Declare a table; a second, different declaration of the same name is an error."""
    old = TABLES.get(schema.name)
    if old is not None and old != schema:
        raise ValueError(f"table {schema.name!r} is already registered with other columns")
    TABLES[schema.name] = schema
    return schema


def table_schema(name: str) -> TableSchema:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"no table {name!r} is registered; tables: {sorted(TABLES)}") from None


def table_path(name: str, layout: RunLayout) -> Path:
    """Where the table ``name`` lives in a run directory (its schema's folder)."""
    return layout.root / table_schema(name).folder / f"{name}.tsv"


def write_table(df: pd.DataFrame, name: str, layout: RunLayout) -> Path:
    schema = table_schema(name)
    return save_tsv(schema.conform(df, source=f"{name} as computed"), table_path(name, layout))


def read_table(name: str, layout: RunLayout) -> pd.DataFrame | None:
    """The table as its schema declares it, or None when the run has not written it."""
    schema = table_schema(name)
    path = layout.root / schema.folder / f"{name}.tsv"
    if not path.is_file():
        return None
    df = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""],
                     dtype={c: str for c, t in schema.columns if t == "str"})
    for c, t in schema.columns:
        if t == "str" and c in df.columns:
            df[c] = df[c].fillna("")
    return schema.conform(df, source=str(path))


def _schema(name, spec: str, description: str = "", folder: str = "analysis") -> TableSchema:
    cols = tuple(tuple(item.split(":")) for item in spec.split())
    return register_table(TableSchema(name, cols, description, folder))  # type: ignore[arg-type]


NEURONS = _schema("neurons", "model:str branch:str layer:int module:str head:int unit:int group:str",
                  "one row per artificial neuron, in column order of its activations", folder="")
TIMELINE_TABLE = _schema(
    "timeline", "tr_index:int run:str run_index:int run_tr:int onset:float frame_time:float clip:str rest:bool "
    "caption:str", "one row per TR", folder="stimulus")


# the study's analyses (docs/method.md §5-6); a new analysis registers its own tables the same way
AFFILIATION = _schema(
    "affiliation", "model:str branch:str atom:int sign:str network_id:int network:str n_map:int n_network:int "
    "n_overlap:int overlap_rate:float dice:float jaccard:float p_null:float is_max:bool affiliated:bool null:str",
    "overlap of every atom's significant map (per sign) with every network, and its affiliation")
PREDICTION = _schema(
    "prediction", "model:str branch:str network_id:int network:str n_grayordinates:int n_valid:int mean_r:float "
    "median_r:float n_significant:int fraction_significant:float", "leave-one-run-out r by network")
REDUNDANCY = _schema(
    "redundancy", "model:str branch:str side:str measure:str network_id:int network:str sign:str level:float "
    "value:float n:int", "redundancy on the brain (BN) and the model (AN) side, long format")
POLARITY = _schema(
    "polarity", "model:str branch:str atom:int n_bn_pos:int n_bn_neg:int n_an_pos:int n_an_neg:int n_layers:int "
    "r_mirror:float p_mirror:float mirrored:bool", "per atom: BN+/BN- sizes, AN+/AN- counts, mirror test")
POLARITY_PROFILES = _schema(
    "polarity_profiles", "model:str branch:str atom:int side:str layer:int value:float n_layer:int",
    "signed AN counts of each atom by layer")
POLARITY_BN = _schema(
    "polarity_bn", "model:str branch:str atom:int side:str an_sign:str layer:int value:float n_neurons:int",
    "correlation of AN+/AN- time courses with the mean BN+/BN- time series, by layer")
CROSSMODAL = _schema(
    "crossmodal", "model_a:str branch_a:str model_b:str branch_b:str network_id:int network:str n_network:int "
    "n_a:int n_b:int n_shared:int n_a_only:int n_b_only:int dice:float jaccard:float composition_shared:float "
    "composition_a_only:float composition_b_only:float",
    "shared and branch-only significant grayordinates of two branches, by network")
NOISE_CEILING = _schema(
    "noise_ceiling", "model:str branch:str network_id:int network:str n_reliable:int mean_ceiling:float mean_r:float "
    "mean_r_normalized:float", "prediction against the noise ceiling of repeated clips (r / ceiling)")
HIERARCHY = _schema(
    "hierarchy", "model:str branch:str atom:int sign:str network_id:int network:str centroid_layer:float "
    "depth:float", "centroid layer depth of each affiliated atom")


# ----------------------------------------------------------------------------- maps
def _space_kind(space) -> str:
    return space if isinstance(space, str) else str(space.kind)


def _hemispheres(space) -> tuple[str, ...]:
    hemis = getattr(space, "hemispheres", None)
    if isinstance(space, dict):  # a space.json
        hemis = space.get("hemispheres")
    return tuple(h for h in ("left", "right") if hemis is None or h in hemis)


def map_files(stem, space, npy: bool = False) -> list[Path]:
    """The files of the map ``stem`` (a path without suffix) in ``space``.

    ``space`` is a :class:`~vlmbrain.brain.space.BrainSpace`, the content of its ``space.json``,
    or a kind (``"cifti"``, ``"nifti"``, ``"gifti"``, ``"array"``; a GIFTI kind alone means
    both hemispheres). ``npy=True`` adds the ``.npy`` copy ``encoding.npy_maps`` asks for.
    """
    stem = Path(stem)
    kind = space.get("kind") if isinstance(space, dict) else _space_kind(space)
    if kind not in MAP_SUFFIXES:
        raise ValueError(f"unknown brain space kind {kind!r}; expected one of {sorted(MAP_SUFFIXES)}")
    if kind == "gifti":
        files = [stem.with_name(f"{stem.name}.{_HEMI_TAGS[h]}.func.gii") for h in _hemispheres(space)]
    else:
        files = [stem.with_name(stem.name + MAP_SUFFIXES[kind])]
    if npy and kind != "array":
        files.append(stem.with_name(stem.name + ".npy"))
    return files


def write_map(space, data, stem, names=None, npy: bool = False) -> list[Path]:
    """Write one map in the brain space's own format (its one copy); returns the files written.

    Parameters
    ----------
    space : BrainSpace
    data : ndarray of shape (V,) or (k, V)
    stem : path without suffix (e.g. ``layout.encoding_map(model, unit, "beta")``)
    names : list of str, optional
        Map names inside the file (CIFTI scalar axis, GIFTI ``Name``); one per row.
    npy : bool, default=False
        Also write ``<stem>.npy`` (``encoding.npy_maps``); an array space writes only ``.npy``.
    """
    from vlmbrain._io import save_npy

    stem = Path(stem)
    kind = _space_kind(space)
    arr = np.asarray(data, dtype=np.float32)
    written = []
    if kind == "cifti":
        written.append(space.to_dscalar(arr, stem.with_name(stem.name + ".dscalar.nii"), names=names))
    elif kind == "nifti":
        path = stem.with_name(stem.name + ".nii.gz")
        space.to_nifti(arr, path)
        written.append(path)
    elif kind == "gifti":
        written += space.to_gifti(arr, stem.with_name(stem.name + ".func.gii"), names=names)
    elif kind != "array":
        raise ValueError(f"unknown brain space kind {kind!r}; expected one of {sorted(MAP_SUFFIXES)}")
    if npy or kind == "array":
        written.append(save_npy(arr, stem.with_name(stem.name + ".npy")))
    # a copy in another format left by an earlier run would be read instead of this one
    for suffix in _MAP_FILE_SUFFIXES:
        other = stem.with_name(stem.name + suffix)
        if other not in written and other.is_file():
            other.unlink()
    return written


_MAP_FILE_SUFFIXES = (".npy", ".dscalar.nii", ".nii.gz", ".nii", ".L.func.gii", ".R.func.gii")


def delete_map(stem) -> None:
    """Remove every file of the map ``stem`` (any format), e.g. a map an earlier run wrote and this one does not."""
    stem = Path(stem)
    for suffix in _MAP_FILE_SUFFIXES:
        stem.with_name(stem.name + suffix).unlink(missing_ok=True)


def map_exists(stem) -> bool:
    """Whether any file of the map ``stem`` exists (``.npy``, ``.dscalar.nii``, ``.nii.gz``, ``.func.gii``)."""
    stem = Path(stem)
    return any(stem.with_name(stem.name + suffix).is_file() for suffix in _MAP_FILE_SUFFIXES)


def read_map(stem, space=None, *, per_atom: bool | None = None, mmap: bool = False) -> np.ndarray | None:
    """A map written by :func:`write_map`, from whichever file exists; None when none does.

    Parameters
    ----------
    stem : path without suffix
    space : BrainSpace, optional
        Needed for NIfTI (its mask) and GIFTI maps (its vertices); CIFTI and ``.npy`` maps
        carry their own columns.
    per_atom : bool, optional
        Whether the map has one row per atom (default: its name is in :data:`PER_ATOM_MAPS`):
        such a map is always (k, V); any other single-row map is returned as (V,).
    mmap : bool, default=False
        Memory-map a ``.npy`` map.

    Returns
    -------
    ndarray of shape (V,) or (k, V), float32 (as written), or None
        A ``.npy`` copy is read when present (exactly the array written); NaN where the map
        has no value.
    """
    stem = Path(stem)
    if per_atom is None:
        per_atom = stem.name in PER_ATOM_MAPS
    npy = stem.with_name(stem.name + ".npy")
    if npy.is_file():
        return np.load(npy, mmap_mode="r" if mmap else None)
    arr = None
    cifti = stem.with_name(stem.name + ".dscalar.nii")
    volumes = [p for p in (stem.with_name(stem.name + ".nii.gz"), stem.with_name(stem.name + ".nii")) if p.is_file()]
    giftis = {h: stem.with_name(f"{stem.name}.{t}.func.gii") for h, t in _HEMI_TAGS.items()}
    if cifti.is_file():
        arr = _read_cifti_rows(cifti)                                        # (k, V)
    elif volumes:
        mask_img = getattr(space, "mask_img", None)
        if mask_img is None:
            raise InputFileError(f"{volumes[0]}: reading a NIfTI map needs its brain space (the mask); "
                                 "pass space=BrainSpace.load(<run>/brain)")
        mask = np.asarray(mask_img.dataobj) != 0
        vol = np.asarray(_nib_load(volumes[0]).dataobj, dtype=np.float32)
        if vol.shape[:3] != mask.shape:
            raise InputFileError(f"{volumes[0]}: volume of shape {vol.shape[:3]} but the mask is {mask.shape}")
        return vol[mask] if vol.ndim == 3 else np.ascontiguousarray(vol[mask].T)
    elif any(p.is_file() for p in giftis.values()):
        hemis = getattr(space, "hemispheres", None)
        if hemis is None:
            raise InputFileError(f"{stem}.*.func.gii: reading a GIFTI map needs its brain space (the vertices); "
                                 "pass space=BrainSpace.load(<run>/brain)")
        parts = []
        for hemi, (verts, _) in hemis.items():
            if not giftis[hemi].is_file():
                raise InputFileError(f"{giftis[hemi]} is missing (the {hemi} hemisphere of the map {stem.name})")
            img = _nib_load(giftis[hemi])
            parts.append(np.vstack([np.asarray(d.data, dtype=np.float32) for d in img.darrays])[:, verts])
        arr = np.concatenate(parts, axis=1)
    else:
        return None
    if arr.shape[0] == 1 and not per_atom:
        return arr[0]
    return arr


def _read_cifti_rows(path) -> np.ndarray:
    """The (rows, grayordinates) array of a dense CIFTI-2 file written by :func:`write_map`.

    Read through nibabel's NIfTI-2 container, whose CIFTI extension stays unparsed: the map's
    columns are the run's brain space by construction, and parsing the 91,282-entry XML would
    cost about 0.3 s per map for nothing.
    """
    import nibabel as nib

    try:
        img = nib.Nifti2Image.from_filename(str(path))
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same problem for the user
        raise InputFileError(f"{path}: not a readable map ({type(err).__name__}: {err}); re-run the stage "
                             "that wrote it") from err
    shape = img.shape
    if not any(ext.get_code() == 32 for ext in img.header.extensions) or len(shape) != 6 or shape[:4] != (1,) * 4:
        raise InputFileError(f"{path}: not a dense CIFTI-2 map (NIfTI-2 of shape {shape}, expected "
                             "(1, 1, 1, 1, maps, grayordinates) with a CIFTI extension); re-run the stage that wrote it")
    return np.asarray(img.dataobj, dtype=np.float32).reshape(shape[4], shape[5])


def _nib_load(path):
    import nibabel as nib

    try:
        return nib.load(str(path))
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same problem for the user
        raise InputFileError(f"{path}: not a readable map ({type(err).__name__}: {err}); re-run the stage "
                             "that wrote it") from err


def read_encoding(layout: RunLayout, model: str, unit: str, names=ATOM_MAPS + FIT_MAPS, space=None,
                  mmap: bool = False) -> dict[str, np.ndarray]:
    """The encoding maps of one unit (only those that exist among ``names``), through :func:`read_map`."""
    out = {}
    for n in names:
        arr = read_map(layout.encoding_map(model, unit, n), space, mmap=mmap)
        if arr is not None:
            out[n] = arr
    return out


def affiliation_label_files(layout: RunLayout, model: str, unit: str) -> list[Path]:
    """The affiliation label files of a unit (empty when no atom of it is affiliated)."""
    d = layout.networks_dir(model, unit)
    return sorted(p for p in d.glob("affiliation.*") if p.is_file()) if d.is_dir() else []


def read_json(path, default=None):
    """A JSON file, or ``default`` when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return default


@dataclass
class StageRecord:
    """The sidecar a finished step writes (``<step dir>/_stage.json``)."""

    step: str
    key: str
    params: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    seconds: float = 0.0
