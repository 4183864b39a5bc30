"""The run configuration: every option and its default, in one place, validated on load.

A configuration is a YAML file whose sections mirror the pipeline stages. Unknown keys and bad
values are rejected with one message naming the key, the value and what is allowed. The
resolved configuration (defaults filled in) is saved into every run directory.

Precedence: command-line argument > environment (``VLMBRAIN_<SECTION>__<KEY>``) > file > default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vlmbrain.errors import ConfigError, InputFileError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DemoOptions(_Section):
    """Size of the bundled toy-world demo (used when ``stimulus.kind`` / ``fmri.kind`` is ``demo``)."""

    n_runs: int = Field(3, ge=2, description="runs of the demo movie (>= 2 for leave-one-run-out)")
    run_length: int = Field(150, ge=40, description="TRs per run")
    image_size: int = Field(64, ge=16, description="frame size in pixels")
    seed: int = Field(0, description="seed of the movie and of the phantom fMRI")
    noise: float = Field(1.0, gt=0, description="noise SD relative to the planted signal")


class RunSpec(_Section):
    """One run of a custom stimulus."""

    name: str
    n_trs: int | None = Field(None, ge=1, description="TRs of this run (else from the fMRI file)")
    video: Path | None = None
    frames_dir: Path | None = None
    captions: Path | None = None


class StimulusConfig(_Section):
    kind: str = Field("demo", description="a registered stimulus source: 'hcp7t', 'custom', or a plug-in's "
                      "(the bundled 'demo')")
    tr: float = Field(1.0, gt=0, description="repetition time in seconds")
    frames_per_tr: int = Field(1, ge=1, description="frames per TR; their readouts are averaged")
    frame_offset: float = Field(0.5, ge=0, le=1, description="frame position inside its TR (0.5 = midpoint)")
    runs: list[RunSpec] = Field(default_factory=list, description="custom runs (kind: custom)")
    movie_dir: Path | None = Field(None, description="HCP 7T: folder with 7T_MOVIE*.mp4")
    wordnet_dir: Path | None = Field(None, description="HCP 7T: folder with WordNet_MOVIE*.txt")
    exclude_rest: bool = Field(False, description="leave rest TRs out of the fits")
    exclude_testretest: bool = Field(False, description="HCP 7T: leave the repeated clip out")


class BidsOptions(_Section):
    """An fMRIPrep / BIDS derivatives folder as the fMRI source (``fmri.kind: bids``)."""

    root: Path = Field(description="the derivatives folder (holds sub-<label>/[ses-<label>/]func/)")
    space: str = Field(description="output space as in the file names: 'fsLR' (with den: 91k, CIFTI), "
                       "'MNI152NLin2009cAsym' (NIfTI; res: 2...), 'fsaverage5' / 'fsaverage6' / 'fsaverage' (GIFTI), "
                       "'T1w'...; extra entities may follow ('fsLR_den-91k', 'MNI152NLin2009cAsym_res-2')")
    task: str | None = Field(None, description="task label (task-<label>); default: any task")
    subjects: list[str] = Field(default_factory=list, description="subject labels (without 'sub-'); default: every "
                                "subject found; several are averaged (or fitted one by one with fmri.group)")
    session: str | None = Field(None, description="session label (ses-<label>); default: any session")
    den: str | None = Field(None, description="density entity (den-91k for fsLR CIFTI)")
    res: str | None = Field(None, description="resolution entity (res-2...) of volumetric outputs")
    desc: str | None = Field(None, description="desc entity of the BOLD files; default 'preproc' for NIfTI, none else")
    mask_desc: str = Field("brain", description="desc entity of the NIfTI brain mask (desc-brain_mask)")


class FmriConfig(_Section):
    kind: str = Field("demo", description="a registered fMRI source: 'cifti', 'nifti', 'gifti', 'npy', 'bids', or a "
                      "plug-in's (the bundled 'demo')")
    paths: list[Path] = Field(default_factory=list, description="one file per run (single subject); gifti: both "
                              "hemispheres of every run (hemi-L/hemi-R, .L./.R. or lh./rh. in the names)")
    subjects: list[list[Path]] = Field(default_factory=list, description="per subject, one file per run; averaged by streaming")
    mask: Path | None = Field(None, description="NIfTI: brain mask")
    mesh: str = Field("auto", description="gifti: surface mesh ('fsaverage5', 'fsaverage6', 'fsaverage', 'fsLR32k'); "
                      "auto: from the vertex count")
    bids: BidsOptions | None = Field(None, description="bids: the derivatives folder, space, task and subjects")
    zscore: bool = True
    n_grayordinates: int | None = Field(None, ge=1, description="expected count (e.g. 91282); checked on load")
    group: Literal["average", "per-subject"] = Field(
        "average", description="fmri.subjects: fit the streamed group average, or fit every subject and test "
        "the maps across subjects (one-sample t, random effects)")
    scheduler: str | None = Field(
        None, description="per-subject fits: 'serial', 'processes', 'threads', 'dask-local' or a Dask 'tcp://…' address")
    n_jobs: int = Field(1, ge=1, description="workers of a local pool / local Dask cluster")
    ceiling: Literal["auto", "repeats", "split-half", "loso", "none"] = Field(
        "auto", description="noise ceiling of the fitted data: 'repeats' (a clip shown more than once, e.g. HCP's "
        "test-retest montage), 'split-half' or 'loso' (leave-one-subject-out) across fmri.subjects, 'none'; "
        "auto: split-half with two or more subjects, else repeats when a clip repeats, else none")


class ModelConfig(_Section):
    name: str = Field(description="registry alias, hub id or local folder")
    site: Literal["head-unit", "qk", "mlp", "hidden"] = "head-unit"
    pooling: Literal["mean", "cls", "patches"] = "mean"
    batch_size: int = Field(16, ge=1)
    device: str = "cpu"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    options: dict[str, Any] = Field(default_factory=dict, description="extra loader options (e.g. checkpoint)")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not (v == "cpu" or v == "cuda" or v.startswith("cuda:") or v == "mps"):
            raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps', got {v!r}")
        return v


class SignalConfig(_Section):
    hrf: Literal["spm", "glover", "none", "lag"] = "spm"
    lag: int = Field(0, ge=0, description="shift in TRs for hrf: lag")
    oversampling: int = Field(16, ge=1)


class DictionaryConfig(_Section):
    n_atoms: int = Field(64, ge=1)
    alpha: float = Field(0.1, ge=0)
    scope: Literal["branch", "model"] = Field("branch", description="one dictionary per branch, or one joint per model")
    batch_size: int = Field(1024, ge=1, description="ANs per online mini-batch (units with fewer than 4,096 ANs; "
                            "larger ones start on nested column subsets instead, docs/method.md §3.4)")
    n_epochs: int = Field(2, ge=0, description="online mini-batch passes over the ANs (units with fewer than "
                          "4,096 ANs)")
    max_iter: int = Field(30, ge=1, description="maximal full-batch refinement iterations")
    # 3e-4 is the knee of the measured objective-vs-time curve on real activations (benchmarks/RESULTS.md):
    # 1e-5 costs 1.2-2.4x the time for an objective at most 0.24 % lower
    tol: float = Field(3e-4, gt=0, description="relative objective decrease that stops the refinement")
    stability_seeds: int = Field(0, ge=0, description="extra seeds for atom stability (0 = skip)")
    incoherence: float = Field(
        0.0, ge=0, description="penalty on the atoms' pairwise correlations, relative to the mean code energy (0 = "
        "plain sparse coding); ~1 keeps atoms identifiable in the encoding (median VIF near 1) at a small cost in "
        "reconstruction (docs/method.md §3)")


class EncodingConfig(_Section):
    method: str = Field("ols", description="a registered encoding solver: 'ols', 'ar1', 'ridge' "
                        "(vlmbrain.encoding.solvers; plug-ins add more)")
    n_shifts: int = Field(1000, ge=0, description="circular shifts of the null (0 = parametric t-test); when fewer "
                          "are admissible, all of them are used")
    null_pvalues: Literal["pooled", "gaussian", "calibrated", "empirical"] = Field(
        "pooled", description="p from the shift null: 'pooled' (statistic scaled by its own null's spread, tail "
        "pooled over the map's grayordinates, generalised Pareto far tail), 'gaussian' (the earlier per-grayordinate "
        "Gaussian; 'calibrated' is its earlier name) or 'empirical' (rank, >= 1/(n+1))")
    correction: Literal["fdr", "fwer"] = "fdr"
    q: float = Field(0.05, gt=0, lt=1, description="FDR q / FWER alpha")
    high_pass: float | Literal["none"] = Field(
        0.01, description="cosine drift basis per run, cut-off in Hz (nilearn / SPM); 'none' for data already "
        "high-pass filtered (e.g. HCP hp2000)")
    confounds: list[Path] = Field(default_factory=list, description="one confounds TSV per run (fMRIPrep "
                                  "*_desc-confounds_timeseries.tsv), regressed out with the drift")
    confound_columns: list[str] = Field(default_factory=list, description="columns of encoding.confounds to use "
                                        "(e.g. trans_x, …, rot_z, csf, white_matter)")
    chunk_size: int = Field(8192, ge=1, description="grayordinates per chunk (memory knob)")
    backend: Literal["numpy", "torch"] = "numpy"
    npy_maps: bool = Field(False, description="also write every encoding map as .npy (float32, NumPy-ready; doubles "
                           "the maps' disk). Maps are stored once, in the brain space's own format (CIFTI .dscalar.nii, "
                           "NIfTI .nii.gz, GIFTI .L/.R.func.gii); a space of plain columns writes .npy only")

    @field_validator("high_pass", mode="before")
    @classmethod
    def _high_pass(cls, v):
        if v is None or (isinstance(v, str) and v.strip().lower() == "none"):
            return "none"
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                raise ValueError("must be a cut-off in Hz (e.g. 0.01) or 'none'") from None
        if not v > 0:
            raise ValueError("must be a positive cut-off in Hz (e.g. 0.01) or 'none'")
        return v

    @property
    def high_pass_hz(self) -> float | None:
        """The cut-off in Hz, or None."""
        return None if self.high_pass == "none" else float(self.high_pass)


class NetworksConfig(_Section):
    atlas: str = Field("auto", description="'auto' (CAB-NP on HCP 91k data and fsLR 32k surfaces, none elsewhere), "
                       "'none', a registered name ('cabnp', 'yeo7', 'yeo17', 'mmp', 'mmp360', 'cabnp718') or a file: "
                       "CIFTI .dlabel.nii, NIfTI label image, GIFTI .label.gii / FreeSurfer .annot (one hemisphere; "
                       "the other found by name), or a TSV mapping every data column to a network")
    labels: Path | None = Field(None, description="label lookup TSV of a NIfTI / GIFTI / annot atlas: index or name, "
                                "and network (parcels grouped into networks), optional color")
    atlas_right: Path | None = Field(None, description="right-hemisphere file of a surface atlas, when its name "
                                     "does not tell")
    threshold: float = Field(0.15, ge=0, le=1, description="minimal overlap rate for affiliation")
    null: Literal["auto", "spin", "moran", "permutation", "none"] = Field(
        "auto", description="spatial null of the affiliation: spin (surfaces), moran (volumes, ROIs with positions), "
        "permutation (anti-conservative), none; auto picks the first that fits the atlas")
    n_perm: int = Field(1000, ge=0)

    @field_validator("atlas", mode="before")
    @classmethod
    def _no_atlas(cls, v):
        # YAML's null (or an empty value) means no atlas
        return "none" if v is None or (isinstance(v, str) and not v.strip()) else v


class ReportConfig(_Section):
    surface_figures: bool = Field(True, description="draw the static surface figures (a few seconds each)")
    interactive: bool = Field(True, description="embed the interactive surface viewer (rotate, zoom, threshold, "
                              "hover; offline plotly: ~3 MB once per report plus each map's data)")
    atom_peaks: int = Field(5, ge=1, le=50, description="atom cards: TRs shown at each atom's strongest peaks and "
                            "at its strongest troughs")
    atom_top_neurons: int = Field(20, ge=1, le=500, description="atom cards: member ANs listed by |code|")


class RunConfig(_Section):
    """The whole run configuration."""

    seed: int = 0
    stimulus: StimulusConfig = Field(default_factory=StimulusConfig)
    fmri: FmriConfig = Field(default_factory=FmriConfig)
    models: list[ModelConfig] = Field(default_factory=lambda: [ModelConfig(name="toy-clip")])
    signal: SignalConfig = Field(default_factory=SignalConfig)
    dictionary: DictionaryConfig = Field(default_factory=DictionaryConfig)
    encoding: EncodingConfig = Field(default_factory=EncodingConfig)
    networks: NetworksConfig = Field(default_factory=NetworksConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    demo: DemoOptions = Field(default_factory=DemoOptions)

    # ------------------------------------------------------------------ I/O
    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _format_error(err: dict, source: str) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    value = err.get("input")
    kind = err["type"]
    where = f"{source}: " if source else ""
    if kind == "invalid_key":
        # YAML reads some unquoted keys as other types: null / ~ as None, yes / on as True, 1 as a number
        parent = ".".join(str(p) for p in err["loc"][:-1]) or "the top level"
        if value is None:
            return (f"{where}a key under '{parent}' is YAML's null: an unquoted null (or ~) means 'no value'; to "
                    "name the key null, write 'null' in quotes (\"null\": ...)")
        return (f"{where}the key {value!r} under '{parent}' is not text: YAML reads it unquoted as a "
                f"{type(value).__name__}; write it in quotes")
    if kind == "extra_forbidden":
        parent = _section_for(err["loc"][:-1])
        allowed = ", ".join(parent.model_fields) if parent is not None else "see `vlmbrain config --defaults`"
        return f"{where}unknown key '{loc}'; allowed keys here: {allowed}"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"{where}'{loc}' = {value!r} is not allowed; expected one of {expected}"
    if kind == "missing":
        return f"{where}'{loc}' is required but missing"
    msg = err.get("msg", "invalid value").removeprefix("Value error, ")
    return f"{where}'{loc}' = {value!r} is invalid: {msg}"


def _section_for(loc) -> type[BaseModel] | None:
    model: type[BaseModel] = RunConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        inner = getattr(ann, "__args__", None)
        candidates = [ann, *(inner or [])]
        nxt = None
        for c in candidates:
            for cc in [c, *(getattr(c, "__args__", None) or [])]:
                if isinstance(cc, type) and issubclass(cc, BaseModel):
                    nxt = cc
        if nxt is None:
            return None
        model = nxt
    return model


def validate_config(data: dict | None, source: str = "") -> RunConfig:
    """Validate a configuration mapping; raise :class:`ConfigError` with one line per problem."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the configuration must be a mapping of sections, got {type(data).__name__}")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        lines = [_format_error(e, source) for e in exc.errors()]
        raise ConfigError("; ".join(lines)) from None


def _apply_env(data: dict, environ=None) -> dict:
    """Overlay ``VLMBRAIN_<SECTION>__<KEY>=value`` environment variables (YAML-parsed values)."""
    environ = os.environ if environ is None else environ
    for name, raw in environ.items():
        if not name.startswith("VLMBRAIN_") or "__" not in name:
            continue
        path = name[len("VLMBRAIN_") :].lower().split("__")
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[path[-1]] = yaml.safe_load(raw)
    return data


def with_environment(config: RunConfig, environ=None) -> RunConfig:
    """``config`` with the ``VLMBRAIN_<SECTION>__<KEY>`` environment variables laid over it
    (for configurations built in code, e.g. the demo's); the same object when none is set."""
    environ = os.environ if environ is None else environ
    if not any(name.startswith("VLMBRAIN_") and "__" in name for name in environ):
        return config
    return validate_config(_apply_env(config.to_dict(), environ), source="environment (VLMBRAIN_*)")


def load_config(path, overrides: dict | None = None, environ=None) -> RunConfig:
    """Load, overlay environment and overrides, and validate a YAML configuration file.

    Relative paths inside the file are resolved against the file's folder.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"configuration file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping of sections, got {type(data).__name__}")
    data = _apply_env(data, environ)
    for key, value in (overrides or {}).items():
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    config = validate_config(data, source=str(path))
    return resolve_paths(config, path.parent)


def _looks_like_path(value: str) -> bool:
    """An atlas given as a file (a separator or a neuroimaging suffix), not a registered name."""
    v = str(value)
    return "/" in v or "\\" in v or v.endswith((".nii", ".gii", ".annot", ".tsv", ".nii.gz", ".csv", ".txt"))


def resolve_paths(config: RunConfig, base: Path) -> RunConfig:
    """Make the configuration's relative file paths absolute against ``base``."""
    base = Path(base).resolve()

    def fix(p):
        return None if p is None else (p if Path(p).is_absolute() else (base / p))

    st = config.stimulus
    st.movie_dir = fix(st.movie_dir)
    st.wordnet_dir = fix(st.wordnet_dir)
    for run in st.runs:
        run.video = fix(run.video)
        run.frames_dir = fix(run.frames_dir)
        run.captions = fix(run.captions)
    fm = config.fmri
    fm.paths = [fix(p) for p in fm.paths]
    fm.subjects = [[fix(p) for p in subj] for subj in fm.subjects]
    fm.mask = fix(fm.mask)
    config.encoding.confounds = [fix(p) for p in config.encoding.confounds]
    if fm.bids is not None:
        fm.bids.root = fix(fm.bids.root)
    if _looks_like_path(config.networks.atlas):
        config.networks.atlas = str(fix(Path(config.networks.atlas)))
    config.networks.labels = fix(config.networks.labels)
    config.networks.atlas_right = fix(config.networks.atlas_right)
    return config


def demo_config(out_fast: bool = False) -> RunConfig:
    """The configuration ``vlmbrain demo`` runs: toy world, toy CLIP and toy METER, phantom fMRI."""
    cfg = RunConfig(
        stimulus=StimulusConfig(kind="demo"),
        fmri=FmriConfig(kind="demo"),
        models=[ModelConfig(name="toy-clip"), ModelConfig(name="toy-meter")],
        # the toy world has a handful of independent factors: 8 atoms over 300 TRs keep the
        # atoms well conditioned for OLS (16 collinear atoms over-fit a 150-TR training run)
        dictionary=DictionaryConfig(n_atoms=8, alpha=0.1),
        encoding=EncodingConfig(n_shifts=300),
        networks=NetworksConfig(null="spin", n_perm=100),
    )
    if out_fast:
        cfg.demo.n_runs = 2
        cfg.demo.run_length = 60
        # 120 TRs allow too few distinct circular shifts for p-values fine enough to
        # survive FDR over 91k grayordinates: the fast demo uses the parametric t-test
        cfg.encoding.n_shifts = 0
        cfg.networks.n_perm = 20
        cfg.report.surface_figures = False
    return cfg
