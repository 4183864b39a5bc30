"""Surface fMRI as GIFTI time series, one file per hemisphere and run (``fmri.kind: gifti``).

fMRIPrep writes surface runs as ``sub-01_task-x_run-1_hemi-L_space-fsaverage5_bold.func.gii``
and its ``hemi-R`` twin; HCP / Workbench name them ``<name>.L.func.gii`` / ``<name>.R.func.gii``;
FreeSurfer ``lh.<name>.gii`` / ``rh.<name>.gii``. :func:`pair_hemispheres` groups a list of
such files into runs (each run = its left and right file, matched by the name without the
hemisphere marker); :func:`load_gifti_runs` reads them into a
:class:`~vlmbrain.brain.space.BrainData` on a surface :class:`~vlmbrain.brain.space.BrainSpace`
(columns: every vertex of the left mesh, then of the right one), z-scored per run as
:func:`vlmbrain.brain.loaders.load_runs` does for the other kinds.

The hemisphere of a file is its ``AnatomicalStructurePrimary`` metadata (``CortexLeft`` /
``CortexRight``) when present, else the marker in its name. The TR is read from the
``TimeStep`` metadata of the data arrays when a tool wrote one (FreeSurfer writes
milliseconds; values above 20 are read as milliseconds, smaller ones as seconds; 0 means
unknown); BIDS sources take it from the sidecar JSON instead.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from vlmbrain.brain.space import BrainData, BrainSpace
from vlmbrain.errors import ConfigError, DimensionError, InputFileError

logger = logging.getLogger("vlmbrain")

__all__ = ["GiftiHeader", "hemisphere_of", "load_gifti_runs", "pair_hemispheres", "read_gifti_header",
           "read_gifti_run", "run_label", "surface_space"]

#: Hemisphere markers in file names, as (pattern, left text, right text); the first that
#: matches decides. ``{}`` in the pattern is the hemisphere's text.
_MARKERS = (
    (r"hemi-{}(?=[_.])", "L", "R"),          # BIDS / fMRIPrep
    (r"(?<=[._]){}(?=\.)", "L", "R"),         # HCP / Workbench: name.L.func.gii
    (r"^{}(?=\.)", "lh", "rh"),               # FreeSurfer: lh.name.gii
    (r"(?<=[._-]){}(?=[._-])", "lh", "rh"),   # name_lh_..., name.lh.gii
    (r"(?<=[._-]){}(?=[._-])", "left", "right"),
)
_STRUCTURES = {"cortexleft": "left", "cortexright": "right"}


def hemisphere_of(path) -> tuple[str | None, str]:
    """The hemisphere a file name marks (``"left"``/``"right"``/None) and the name without its marker.

    The second value pairs the two hemispheres of a run: it is the same for
    ``..._hemi-L_...`` and ``..._hemi-R_...``.
    """
    name = os.path.basename(str(path))
    for pattern, left, right in _MARKERS:
        for hemi, text in (("left", left), ("right", right)):
            rx = re.compile(pattern.format(re.escape(text)), flags=re.IGNORECASE if len(text) > 1 else 0)
            if rx.search(name):
                return hemi, os.path.join(os.path.dirname(str(path)), rx.sub("<hemi>", name, count=1))
    return None, str(path)


def run_label(path) -> str:
    """A file name without its hemisphere marker (``sub-01_task-x_run-1_space-fsaverage5_bold.func.gii``)."""
    name = os.path.basename(hemisphere_of(path)[1])
    return re.sub(r"[._-]?<hemi>", "", name).lstrip("._-")


@dataclass
class GiftiHeader:
    """What a GIFTI file's XML says without decoding its data."""

    path: str
    n_vertices: int
    n_timepoints: int
    tr: float | None
    hemisphere: str | None


_DA_RX = re.compile(rb"<DataArray\b([^>]*)>", re.S)
_ATTR_RX = re.compile(rb'(\w+)\s*=\s*"([^"]*)"')
_MD_RX = re.compile(rb"<Name>\s*(?:<!\[CDATA\[)?\s*([^<\]]*?)\s*(?:\]\]>)?\s*</Name>\s*"
                    rb"<Value>\s*(?:<!\[CDATA\[)?\s*([^<\]]*?)\s*(?:\]\]>)?\s*</Value>", re.S)


def _tr_of(value) -> float | None:
    try:
        step = float(value)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(step) or step <= 0:
        return None
    return step / 1000.0 if step > 20 else step


def read_gifti_header(path) -> GiftiHeader:
    """Vertices, time points, TR and hemisphere of a GIFTI time series, from its XML only.

    The data arrays are counted, not decoded: cheap enough for the preflight checks.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise InputFileError(f"{path}: file not found")
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise InputFileError(f"{path}: cannot read ({err})") from err
    arrays = [dict((k.decode(), v.decode()) for k, v in _ATTR_RX.findall(m)) for m in _DA_RX.findall(raw)]
    if b"<GIFTI" not in raw[:4096] or not arrays:
        raise InputFileError(f"{path}: not a GIFTI file with data arrays (expected a .func.gii time series)")
    meta = {k.decode().strip().lower(): v.decode().strip() for k, v in _MD_RX.findall(raw)}
    first = arrays[0]
    try:
        n_vertices = int(first.get("Dim0", "0"))
        dims = int(first.get("Dimensionality", "1"))
    except ValueError as err:
        raise InputFileError(f"{path}: malformed DataArray dimensions ({err})") from None
    if len(arrays) == 1 and dims == 2:
        n_t = int(first.get("Dim1", "1"))  # GIFTI: Dim0 = vertices, Dim1 = time
    else:
        n_t = len(arrays)
        sizes = {int(a.get("Dim0", "0")) for a in arrays}
        if len(sizes) != 1:
            raise InputFileError(f"{path}: its data arrays have different vertex counts {sorted(sizes)}")
    hemi = _STRUCTURES.get(meta.get("anatomicalstructureprimary", "").lower())
    if hemi is None:
        hemi = hemisphere_of(path)[0]
    return GiftiHeader(path, n_vertices, n_t, _tr_of(meta.get("timestep")), hemi)


def read_gifti_run(path) -> tuple[np.ndarray, GiftiHeader]:
    """The data of a GIFTI time series as (n_timepoints, n_vertices) float32, and its header."""
    header = read_gifti_header(path)
    try:
        img = nib.load(str(path))
    except Exception as err:
        raise InputFileError(f"{path}: not a readable GIFTI file ({type(err).__name__}: {err})") from err
    if not isinstance(img, nib.gifti.GiftiImage):
        raise InputFileError(f"{path}: not a GIFTI file (nibabel reads it as {type(img).__name__})")
    darrays = img.darrays
    if len(darrays) == 1 and np.ndim(darrays[0].data) == 2:
        data = np.asarray(darrays[0].data, dtype=np.float32)
        if data.shape[0] == header.n_vertices:
            data = data.T
    else:
        data = np.stack([np.asarray(d.data, dtype=np.float32).ravel() for d in darrays])
    return np.ascontiguousarray(data), header


def pair_hemispheres(paths) -> list[dict[str, str]]:
    """Group GIFTI files into runs: ``[{"left": path, "right": path}, ...]`` in order of first appearance.

    Files whose names differ only by the hemisphere marker form one run. A run may hold one
    hemisphere only if every run does (single-hemisphere data).

    Raises
    ------
    ConfigError
        A file without a recognisable hemisphere, two files of the same hemisphere for one
        run, or runs with different hemispheres.
    """
    runs: dict[str, dict[str, str]] = {}
    for p in paths:
        p = str(p)
        hemi, key = hemisphere_of(p)
        if hemi is None:
            if os.path.isfile(p):
                hemi = read_gifti_header(p).hemisphere
            if hemi is None:
                raise ConfigError(
                    f"{p}: cannot tell its hemisphere; name GIFTI runs with hemi-L/hemi-R (fMRIPrep), .L./.R. "
                    "(Workbench) or lh./rh. (FreeSurfer), or set AnatomicalStructurePrimary")
        run = runs.setdefault(key, {})
        if hemi in run:
            raise ConfigError(f"{p} and {run[hemi]} are both the {hemi} hemisphere of one run")
        run[hemi] = p
    out = [dict(sorted(r.items())) for r in runs.values()]
    kinds = {tuple(r) for r in out}
    if len(kinds) > 1:
        lone = next(r for r in out if len(r) == 1)
        (hemi, path), = lone.items()
        other = "right" if hemi == "left" else "left"
        raise ConfigError(f"{path}: no {other}-hemisphere file for this run (the other runs have both); "
                          f"list both hemispheres of every run in fmri.paths")
    return out


def surface_space(runs: list[dict[str, str]], mesh: str | None = None) -> BrainSpace:
    """The surface space of the first run's files (headers only); every run must match it."""
    spaces = []
    for run in runs:
        hemis = {}
        for hemi, path in run.items():
            h = read_gifti_header(path)
            if h.hemisphere is not None and h.hemisphere != hemi:
                raise InputFileError(f"{path}: its name says {hemi} hemisphere but its metadata say {h.hemisphere}")
            hemis[hemi] = h.n_vertices
        spaces.append((run, hemis))
    first_run, first = spaces[0]
    for run, hemis in spaces[1:]:
        if hemis != first:
            raise DimensionError(
                f"{next(iter(run.values()))}: {hemis} vertices per hemisphere, but "
                f"{next(iter(first_run.values()))} has {first}; all runs must lie on one mesh")
    return BrainSpace.from_surfaces(first, mesh=mesh)


def load_gifti_runs(paths, tr: float, expected_trs=None, *, run_names=None, zscore: bool = True,
                    mesh: str | None = None, trs=None) -> BrainData:
    """Load, check, z-score and concatenate GIFTI runs (both hemispheres of every run).

    Parameters
    ----------
    paths : list of path, or list of dict
        The files of every run and hemisphere (paired by :func:`pair_hemispheres`), or runs
        already paired as ``{"left": path, "right": path}``.
    tr : float
        Configured TR (s); a file whose ``TimeStep`` (or the given ``trs``) says otherwise raises.
    expected_trs : list of int, optional
        TRs per stimulus run; a run of another length raises :class:`DimensionError`.
    run_names : list of str, optional
        Default: the file names without the hemisphere marker.
    zscore : bool, default=True
        Z-score every vertex within every run; constant or NaN vertices (the medial wall of
        fsaverage files is often all zero) are marked invalid.
    mesh : str, optional
        Mesh name; default from the vertex count.
    trs : list of float or None, optional
        TR of every run from elsewhere (BIDS sidecars); overrides the files' ``TimeStep``.

    Returns
    -------
    BrainData
    """
    from vlmbrain.brain.loaders import check_run
    from vlmbrain.signal import zscore_runs

    runs = paths if paths and isinstance(paths[0], dict) else pair_hemispheres(paths)
    if not runs:
        raise ConfigError("no GIFTI runs given (fmri.paths is empty)")
    if run_names is None:
        run_names = [run_label(next(iter(r.values()))) for r in runs]
    if len(run_names) != len(runs):
        raise DimensionError(f"{len(run_names)} run names for {len(runs)} GIFTI runs")
    if expected_trs is not None and len(expected_trs) != len(runs):
        raise DimensionError(f"the stimulus has {len(expected_trs)} runs but {len(runs)} fMRI runs were given")
    space = surface_space(runs, mesh)
    # headers first: TRs and lengths of every run before any data is decoded
    lengths = []
    for i, run in enumerate(runs):
        heads = [read_gifti_header(p) for p in run.values()]
        n_t = {h.n_timepoints for h in heads}
        if len(n_t) != 1:
            raise DimensionError(f"run {run_names[i]}: the hemispheres have {sorted(n_t)} time points "
                                 f"({', '.join(run.values())})")
        file_tr = trs[i] if trs is not None and trs[i] is not None else next(
            (h.tr for h in heads if h.tr is not None), None)
        n = n_t.pop()
        check_run(next(iter(run.values())), file_tr, n, tr, None if expected_trs is None else expected_trs[i], i,
                  run_names[i])
        lengths.append(n)
    data = np.empty((sum(lengths), space.n_grayordinates), np.float32)
    valid = np.ones(space.n_grayordinates, bool)
    starts = np.r_[0, np.cumsum(lengths)]
    for i, run in enumerate(runs):
        block = np.concatenate([read_gifti_run(run[h])[0] for h in space.hemispheres], axis=1)
        finite = np.all(np.isfinite(block), axis=0)
        if zscore:
            z, ok = zscore_runs(block, np.zeros(block.shape[0], int))
        else:
            z = np.where(np.isfinite(block), block, 0).astype(np.float32)
            ok = finite & (z.std(axis=0) > 0)
        data[starts[i]:starts[i + 1]] = z
        valid &= ok & finite
    data[:, ~valid] = 0.0
    n_bad = int((~valid).sum())
    if n_bad:
        logger.info("%d of %d surface vertices are NaN or constant in some run (medial wall?); left out of the fits",
                    n_bad, valid.size)
    meta = {"sources": [p for r in runs for p in r.values()], "hrf_shifted": False, "zscored": bool(zscore),
            "n_invalid": n_bad, "mesh": space.mesh}
    return BrainData(data, np.repeat(np.arange(len(runs)), lengths), run_names, space, float(tr), valid, meta)


# ----------------------------------------------------------------------------- as a configured source
def config_runs(fm) -> list[list[dict[str, str]]]:
    """Per subject (``fmri.subjects``, or ``fmri.paths`` as one subject) the paired runs."""
    groups = [list(s) for s in fm.subjects] if fm.subjects else [list(fm.paths)]
    return [pair_hemispheres(g) for g in groups]


def config_space(config) -> BrainSpace | None:
    """The surface space of a ``fmri.kind: gifti`` configuration, from the first run's headers."""
    try:
        return surface_space(config_runs(config.fmri)[0], config.fmri.mesh)
    except (ConfigError, InputFileError, DimensionError):
        return None


def config_facts(config) -> dict:
    """Run lengths, vertices and TR of the first subject's GIFTI runs (headers only; {} when unreadable)."""
    try:
        runs = config_runs(config.fmri)[0]
        heads = [[read_gifti_header(p) for p in r.values()] for r in runs]
    except (ConfigError, InputFileError):
        return {}
    trs = {h.tr for hs in heads for h in hs if h.tr is not None}
    return {"run_names": [run_label(next(iter(r.values()))) for r in runs],
            "run_lengths": [hs[0].n_timepoints for hs in heads],
            "n_grayordinates": sum(h.n_vertices for h in heads[0]) if heads else None,
            "tr": trs.pop() if len(trs) == 1 else None}


def config_preflight(config) -> None:
    """Files, hemispheres, meshes, lengths and TRs of a ``fmri.kind: gifti`` configuration (headers only)."""
    from vlmbrain.brain.loaders import check_run

    fm = config.fmri
    if fm.paths and fm.subjects:
        raise ConfigError("fmri.paths (one subject) and fmri.subjects (several) are both given; give one of them")
    if not fm.paths and not fm.subjects:
        raise ConfigError("fmri.kind = 'gifti' needs fmri.paths (both hemispheres of every run) or fmri.subjects")
    if fm.mask is not None:
        raise ConfigError("fmri.mask is only used with fmri.kind: nifti; surface runs use every vertex (remove fmri.mask)")
    if fm.subjects and fm.group == "per-subject":
        raise ConfigError("fmri.group = 'per-subject' is not available for GIFTI runs yet; use fmri.group: average")
    ref = None
    for s, runs in enumerate(config_runs(fm)):
        space = surface_space(runs, fm.mesh)
        if ref is not None and space != ref:
            raise DimensionError(f"fmri.subjects.{s}: {describe(space)} but subject 0 has {describe(ref)}")
        ref = ref or space
        for i, run in enumerate(runs):
            heads = [read_gifti_header(p) for p in run.values()]
            n_t = {h.n_timepoints for h in heads}
            if len(n_t) != 1:
                raise DimensionError(f"the hemispheres of run {i + 1} have {sorted(n_t)} time points "
                                     f"({', '.join(run.values())})")
            tr = next((h.tr for h in heads if h.tr is not None), None)
            check_run(next(iter(run.values())), tr, n_t.pop(), config.stimulus.tr, None, i)


def describe(space) -> str:
    hemis = ", ".join(f"{h} {v.size}" for h, (v, _) in space.hemispheres.items())
    return f"{space.mesh} vertices ({hemis})"


def average_subjects(brains: list[BrainData], rezscore: bool = True) -> BrainData:
    """Mean over subjects of their per-run z-scored series (re-z-scored per run), as for the other kinds."""
    from vlmbrain.signal import zscore_runs

    first = brains[0]
    if len(brains) == 1:
        return first
    data = np.zeros_like(first.data)
    valid = np.ones(first.n_grayordinates, bool)
    for b in brains:
        if b.space != first.space or b.run_lengths != first.run_lengths:
            raise DimensionError("the subjects' GIFTI runs differ in mesh or run lengths; every subject needs the same")
        data += b.data
        valid &= b.valid
    data /= len(brains)
    if rezscore:
        data, ok = zscore_runs(data, first.runs)
        valid &= ok
    data[:, ~valid] = 0.0
    meta = dict(first.meta, n_subjects=len(brains), sources=[s for b in brains for s in b.meta.get("sources", [])])
    return BrainData(data, first.runs, first.run_names, first.space, first.tr, valid, meta)


def build(config, timeline=None, progress: bool = False) -> BrainData:
    """The (group-average) brain data of a ``fmri.kind: gifti`` configuration."""
    fm = config.fmri
    expected = timeline.run_lengths if timeline is not None else None
    names = timeline.run_names if timeline is not None else None
    brains = [load_gifti_runs(runs, config.stimulus.tr, expected, run_names=names, zscore=fm.zscore, mesh=fm.mesh)
              for runs in config_runs(fm)]
    return average_subjects(brains)


def input_files(config) -> list[Path]:
    fm = config.fmri
    return [Path(p) for p in fm.paths] + [Path(p) for subj in fm.subjects for p in subj]
