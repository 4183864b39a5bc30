"""fMRIPrep / BIDS derivatives as an fMRI source (``fmri.kind: bids``).

The derivatives folder is searched for the BOLD runs of the configured space, task, session
and subjects, from the file names alone (BIDS entities ``sub-``, ``ses-``, ``task-``,
``run-``, ``hemi-``, ``space-``, ``den-``, ``res-``, ``desc-`` and the ``bold`` suffix):

=====================================  ==========================================================
``space: fsLR`` (+ ``den: 91k``)       ``*_space-fsLR_den-91k_bold.dtseries.nii`` → CIFTI
``space: MNI152NLin2009cAsym`` ...     ``*_space-…_desc-preproc_bold.nii.gz`` + ``*_desc-brain_mask.nii.gz`` → NIfTI
``space: fsaverage5`` ...              ``*_hemi-L_space-…_bold.func.gii`` + ``hemi-R`` → GIFTI
=====================================  ==========================================================

Each stimulus run is matched to one BIDS run by name (:func:`match_runs`): the stimulus run
``r1``, ``run1``, ``run-01`` or ``1`` is BIDS ``run-1``; a stimulus run named like a task label
(``movie1``) is ``task-movie1``; ``task-movie_run-2`` is matched entity by entity. A missing or
ambiguous run, or a run whose ``RepetitionTime`` (JSON sidecar, found by the BIDS inheritance
principle: the file's own sidecar, then the same name without ``hemi-`` / ``desc-``, then
``task-<task>_bold.json`` at the top) differs from ``stimulus.tr``, is one error naming the
subject, the run and what was found.

pybids was tried for the discovery: it works but pulls ten packages (SQLAlchemy, formulaic,
bids-validator, ...) and builds an SQL index of the whole tree, slow on large derivatives
folders and rebuilt by every preflight; the entities needed here are in the file names, so
they are parsed directly (``sub-<label>/[ses-<label>/]func/`` only).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from vlmbrain.errors import ConfigError, InputFileError

__all__ = ["BidsRun", "discover", "match_runs", "parse_name", "space_entities"]

_EXTENSIONS = {".dtseries.nii": "cifti", ".func.gii": "gifti", ".nii.gz": "nifti", ".nii": "nifti"}
_ENTITY = re.compile(r"^([a-zA-Z0-9]+)-([a-zA-Z0-9+]+)$")


def parse_name(path) -> dict | None:
    """BIDS entities of a file name (``{'sub': '01', 'task': 'movie', ..., 'suffix': 'bold', 'extension': '.func.gii'}``).

    None when the name is not ``key-value_..._suffix.ext``.
    """
    name = os.path.basename(str(path))
    dot = name.find(".")
    if dot <= 0:
        return None
    stem, ext = name[:dot], name[dot:]
    parts = stem.split("_")
    if len(parts) < 2 or "-" in parts[-1]:
        return None
    out = {}
    for part in parts[:-1]:
        m = _ENTITY.match(part)
        if m is None:
            return None
        out[m.group(1)] = m.group(2)
    out["suffix"], out["extension"] = parts[-1], ext
    return out


def space_entities(space: str) -> dict:
    """``'fsLR_den-91k'`` → ``{'space': 'fsLR', 'den': '91k'}``; a bare label → ``{'space': label}``."""
    parts = [p for p in str(space).split("_") if p]
    out = {"space": parts[0].removeprefix("space-")}
    for p in parts[1:]:
        m = _ENTITY.match(p)
        if m is None:
            raise ConfigError(f"fmri.bids.space = {space!r}: {p!r} is not a BIDS entity (key-value)")
        out[m.group(1)] = m.group(2)
    return out


@dataclass
class BidsRun:
    """One BOLD run of one subject in the derivatives folder.

    ``files`` is ``{"bold": path}`` (CIFTI / NIfTI) or ``{"left": path, "right": path}``
    (GIFTI); ``mask`` the NIfTI brain mask; ``tr`` the sidecar's RepetitionTime (None: none).
    """

    subject: str
    entities: dict
    kind: str
    files: dict = field(default_factory=dict)
    mask: str | None = None
    tr: float | None = None

    @property
    def label(self) -> str:
        """``task-movie_run-1`` (with ``ses-``/``acq-``/``dir-``/``echo-`` when present): the run's name."""
        keys = ("ses", "task", "acq", "dir", "run", "echo")
        return "_".join(f"{k}-{self.entities[k]}" for k in keys if k in self.entities)


def _func_dirs(root: Path, subject: str, session: str | None):
    base = root / f"sub-{subject}"
    if (base / "func").is_dir() and session is None:
        yield base / "func"
    sessions = [base / f"ses-{session}"] if session else sorted(base.glob("ses-*"))
    for ses in sessions:
        if (ses / "func").is_dir():
            yield ses / "func"


def _sidecar_tr(root: Path, path: str, ent: dict) -> float | None:
    """RepetitionTime from the nearest JSON sidecar (BIDS inheritance, see the module docstring)."""
    d, name = os.path.split(path)
    stem = name[: name.find(".")]
    candidates = [stem, re.sub(r"_hemi-[LR]", "", stem), re.sub(r"_desc-[a-zA-Z0-9]+", "", re.sub(r"_hemi-[LR]", "", stem))]
    paths = [os.path.join(d, c + ".json") for c in dict.fromkeys(candidates)]
    if "task" in ent:
        paths.append(str(root / f"task-{ent['task']}_bold.json"))
    for p in paths:
        if os.path.isfile(p):
            try:
                meta = json.loads(Path(p).read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise InputFileError(f"{p}: not a readable JSON sidecar ({err})") from None
            if "RepetitionTime" in meta:
                try:
                    return float(meta["RepetitionTime"])
                except (TypeError, ValueError):
                    raise InputFileError(f"{p}: RepetitionTime is {meta['RepetitionTime']!r}, not a number") from None
    return None


def discover(root, space: str, *, task=None, subjects=(), session=None, den=None, res=None, desc=None,
             mask_desc: str = "brain") -> dict[str, list[BidsRun]]:
    """The BOLD runs of every subject: ``{subject: [BidsRun, ...]}`` (runs in name order).

    Raises
    ------
    InputFileError
        The folder does not exist, a named subject is absent, a subject has no run of that
        space, or a NIfTI run has no brain mask.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(f"fmri.bids.root = {root}: no such folder (give the fMRIPrep derivatives folder)")
    want = space_entities(space)
    for key, value in (("den", den), ("res", res)):
        if value is not None:
            want[key] = str(value).removeprefix(f"{key}-")
    found_subjects = sorted(p.name[4:] for p in root.glob("sub-*") if p.is_dir())
    subjects = [str(s).removeprefix("sub-") for s in subjects] or found_subjects
    if not subjects:
        raise InputFileError(f"fmri.bids.root = {root}: no sub-<label> folder")
    missing = [s for s in subjects if s not in found_subjects]
    if missing:
        raise InputFileError(f"fmri.bids.subjects: {', '.join('sub-' + s for s in missing)} not in {root} (subjects "
                             f"there: {', '.join('sub-' + s for s in found_subjects) or 'none'})")
    out: dict[str, list[BidsRun]] = {}
    for sub in subjects:
        runs: dict[tuple, BidsRun] = {}
        masks: dict[tuple, str] = {}
        spaces_seen = set()
        for func in _func_dirs(root, sub, session):
            for f in sorted(func.iterdir()):
                ent = parse_name(f)
                if ent is None or ent.get("sub") != sub:
                    continue
                if "space" in ent:
                    spaces_seen.add("_".join(f"{k}-{ent[k]}" for k in ("space", "den", "res") if k in ent))
                if any(ent.get(k) != v for k, v in want.items()):
                    continue
                if task is not None and ent.get("task") != task:
                    continue
                if session is not None and ent.get("ses") != session:
                    continue
                if ent["suffix"] == "mask" and ent["extension"] in (".nii.gz", ".nii") and ent.get("desc") == mask_desc:
                    masks[_run_key(ent)] = str(f)
                    continue
                if ent["suffix"] != "bold" or ent["extension"] not in _EXTENSIONS:
                    continue
                kind = _EXTENSIONS[ent["extension"]]
                wanted_desc = desc if desc is not None else ("preproc" if kind == "nifti" else None)
                if ent.get("desc") != wanted_desc:
                    continue
                key = _run_key(ent)
                run = runs.setdefault(key, BidsRun(sub, {k: v for k, v in ent.items() if k not in ("hemi", "extension")},
                                                   kind))
                if run.kind != kind:
                    raise InputFileError(f"sub-{sub} {run.label}: both {run.kind} and {kind} files in space {space}; "
                                         "give fmri.bids.den / res / desc to choose one")
                slot = {"L": "left", "R": "right"}.get(ent.get("hemi"), "bold") if kind == "gifti" else "bold"
                if slot in run.files:
                    raise InputFileError(f"sub-{sub} {run.label}: two files match ({run.files[slot]}, {f}); give "
                                         "fmri.bids.den / res / desc / session to choose one")
                run.files[slot] = str(f)
                tr = _sidecar_tr(root, str(f), ent)
                if tr is not None:
                    run.tr = tr
        if not runs:
            what = f"space-{space}" + (f", task-{task}" if task else "") + (f", ses-{session}" if session else "")
            raise InputFileError(f"sub-{sub}: no BOLD run ({what}) under {root / ('sub-' + sub)}; spaces found: "
                                 f"{', '.join(sorted(spaces_seen)) or 'none'}")
        for key, run in runs.items():
            if run.kind == "gifti" and set(run.files) != {"left", "right"}:
                raise InputFileError(f"sub-{sub} {run.label}: only the {', '.join(run.files)} hemisphere is there "
                                     f"({next(iter(run.files.values()))}); fMRIPrep writes hemi-L and hemi-R")
            if run.kind == "nifti":
                run.mask = masks.get(key)
                if run.mask is None:
                    raise InputFileError(f"sub-{sub} {run.label}: no brain mask (*_desc-{mask_desc}_mask.nii.gz) next "
                                         f"to {run.files['bold']}")
        out[sub] = sorted(runs.values(), key=lambda r: _sort_key(r.entities))
    return out


def _run_key(ent: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in ent.items()
                        if k not in ("hemi", "extension", "suffix", "desc")))


def _sort_key(ent: dict):
    run = ent.get("run", "")
    return (ent.get("ses", ""), ent.get("task", ""), int(run) if run.isdigit() else 0, run)


_RUN_NUMBER = re.compile(r"^(?:r|run)?[-_]?0*(\d+)$", re.IGNORECASE)


def _matches(name: str, run: BidsRun) -> bool:
    ent = run.entities
    if name == run.label:
        return True
    m = _RUN_NUMBER.match(name)
    if m and "run" in ent and ent["run"].isdigit() and int(ent["run"]) == int(m.group(1)):
        return True
    if name == ent.get("task"):
        return True
    parts = [_ENTITY.match(p) for p in name.split("_")]
    if parts and all(parts):
        return all(str(ent.get(p.group(1), "")).lstrip("0") == p.group(2).lstrip("0") for p in parts)
    return False


def match_runs(subject: str, runs: list[BidsRun], names, tr: float | None = None, root=None) -> list[BidsRun]:
    """The subject's BIDS run of every stimulus run (in stimulus order); one error for a missing run or TR.

    Parameters
    ----------
    subject : str
    runs : list of BidsRun
        The subject's runs (:func:`discover`).
    names : list of str
        Stimulus run names, in order.
    tr : float, optional
        ``stimulus.tr``; a run whose sidecar says otherwise raises :class:`ConfigError`.
    """
    out = []
    labels = ", ".join(r.label or os.path.basename(next(iter(r.files.values()))) for r in runs)
    for name in names:
        hits = [r for r in runs if _matches(str(name), r)]
        if len(hits) == 1:
            run = hits[0]
        elif not hits and len(runs) == 1 and len(names) == 1:
            run = runs[0]
        elif not hits:
            raise InputFileError(f"stimulus run {name!r} has no BIDS run for sub-{subject}"
                                 f"{f' in {root}' if root else ''} (runs there: {labels}); name the stimulus runs "
                                 "after the BIDS runs (run-1 → 1 or r1; task-movie1 → movie1)")
        else:
            raise InputFileError(f"stimulus run {name!r} matches several BIDS runs of sub-{subject} "
                                 f"({', '.join(h.label for h in hits)}); name it by task and run (task-x_run-1)")
        if tr is not None and run.tr is not None and abs(run.tr - float(tr)) > 1e-3 * float(tr):
            raise ConfigError(f"sub-{subject} {run.label}: RepetitionTime is {run.tr:g} s (JSON sidecar) but "
                              f"stimulus.tr is {float(tr):g} s; every run must have the stimulus's TR")
        out.append(run)
    return out


# ----------------------------------------------------------------------------- as a configured source
def _options(config):
    opts = config.fmri.bids
    if opts is None:
        raise ConfigError("fmri.kind = 'bids' needs fmri.bids: {root: <derivatives folder>, space: <space>, task: ..., "
                          "subjects: [...]}")
    return opts


def config_runs(config, names=None) -> dict[str, list[BidsRun]]:
    """Every subject's BIDS run of every stimulus run (``names``; default the ``stimulus.runs`` names).

    Without stimulus run names (a stimulus whose runs are only known once built), every
    subject's runs in name order.
    """
    opts = _options(config)
    found = discover(opts.root, opts.space, task=opts.task, subjects=opts.subjects, session=opts.session,
                     den=opts.den, res=opts.res, desc=opts.desc, mask_desc=opts.mask_desc)
    if names is None and config.stimulus.runs:
        names = [r.name for r in config.stimulus.runs]
    out = {}
    for sub, runs in found.items():
        if names is not None:
            runs = match_runs(sub, runs, names, config.stimulus.tr, opts.root)
        else:
            for run in runs:
                match_runs(sub, [run], [run.label], config.stimulus.tr, opts.root)  # the TR check alone
        out[sub] = runs
    kinds = {r.kind for runs in out.values() for r in runs}
    if len(kinds) > 1:
        raise InputFileError(f"fmri.bids.space = {opts.space!r} gives {', '.join(sorted(kinds))} files; give den / res "
                             "/ desc so that one form is chosen")
    return out


def _mask(runs: dict[str, list[BidsRun]]):
    """The intersection of every run's brain mask (NIfTI runs share one mask, as the loaders need)."""
    import nibabel as nib
    import numpy as np

    ref, inter = None, None
    for run in (r for rs in runs.values() for r in rs):
        img = nib.load(run.mask)
        data = np.asarray(img.dataobj) != 0
        if ref is None:
            ref, inter = img, data
            continue
        if data.shape != inter.shape or not np.allclose(img.affine, ref.affine, atol=1e-4):
            raise InputFileError(f"{run.mask}: its grid differs from {next(iter(runs.values()))[0].mask}; give "
                                 "fmri.bids.res so that every run has the same resolution")
        inter &= data
    if not inter.any():
        raise InputFileError("the brain masks of the BIDS runs do not overlap")
    return nib.Nifti1Image(inter.astype(np.uint8), ref.affine)


def config_space(config):
    """The brain space of a ``fmri.kind: bids`` configuration from the headers (None when unreadable)."""
    from vlmbrain.brain.gifti import surface_space
    from vlmbrain.brain.space import BrainSpace
    from vlmbrain.errors import DimensionError

    try:
        runs = config_runs(config)
        first = next(iter(runs.values()))[0]
        if first.kind == "cifti":
            return BrainSpace.from_cifti(first.files["bold"])
        if first.kind == "nifti":
            return BrainSpace.from_mask(_mask(runs))
        return surface_space([first.files])
    except (ConfigError, InputFileError, DimensionError, StopIteration, IndexError):
        return None


def _length(run: BidsRun) -> int:
    import nibabel as nib

    from vlmbrain.brain.gifti import read_gifti_header

    if run.kind == "gifti":
        n = {read_gifti_header(p).n_timepoints for p in run.files.values()}
        if len(n) != 1:
            raise InputFileError(f"sub-{run.subject} {run.label}: the hemispheres have {sorted(n)} time points")
        return n.pop()
    img = nib.load(run.files["bold"])
    return int(img.shape[0] if run.kind == "cifti" else img.shape[3])


def config_facts(config) -> dict:
    """Run names, lengths, columns and TR of the first subject (headers only; {} when unreadable)."""
    try:
        runs = config_runs(config)
        first = next(iter(runs.values()))
        lengths = [_length(r) for r in first]
    except (ConfigError, InputFileError, StopIteration, OSError):
        return {}
    space = config_space(config)
    trs = {r.tr for r in first if r.tr is not None}
    return {"run_names": [r.label for r in first], "run_lengths": lengths,
            "n_grayordinates": space.n_grayordinates if space is not None else None,
            "tr": trs.pop() if len(trs) == 1 else None}


def config_preflight(config) -> None:
    """The derivatives folder, every subject's runs, their match to the stimulus runs and their TRs."""
    fm = config.fmri
    if fm.paths or fm.subjects:
        raise ConfigError("fmri.kind = 'bids' finds the runs in fmri.bids.root; remove fmri.paths / fmri.subjects")
    if fm.mask is not None:
        raise ConfigError("fmri.kind = 'bids' takes the brain masks from the derivatives; remove fmri.mask")
    if fm.group == "per-subject":
        raise ConfigError("fmri.group = 'per-subject' is not available for fmri.kind: bids yet; use fmri.group: average")
    runs = config_runs(config)
    for rs in runs.values():
        for r in rs:
            _length(r)
    if next(iter(runs.values()))[0].kind == "nifti":
        _mask(runs)


def build(config, timeline=None, progress: bool = False):
    """The (group-average) brain data of the BIDS runs matched to the stimulus's runs."""
    from vlmbrain.brain.gifti import average_subjects, load_gifti_runs
    from vlmbrain.brain.group import group_average
    from vlmbrain.brain.loaders import load_runs

    fm = config.fmri
    names = timeline.run_names if timeline is not None else None
    expected = timeline.run_lengths if timeline is not None else None
    runs = config_runs(config, names)
    tr = config.stimulus.tr
    kind = next(iter(runs.values()))[0].kind
    run_names = names or [r.label for r in next(iter(runs.values()))]
    if kind == "gifti":
        brains = [load_gifti_runs([r.files for r in rs], tr, expected, run_names=run_names, zscore=fm.zscore,
                                  trs=[r.tr for r in rs]) for rs in runs.values()]
        brain = average_subjects(brains)
    else:
        mask = _mask(runs) if kind == "nifti" else None
        files = [[r.files["bold"] for r in rs] for rs in runs.values()]
        if len(files) == 1:
            brain = load_runs(files[0], tr=tr, expected_trs=expected, run_names=run_names, mask=mask, zscore=fm.zscore)
        else:
            from vlmbrain.brain.ceiling import subject_method

            brain = group_average(dict(zip(runs, files, strict=True)), tr=tr, expected_trs=expected,
                                  run_names=run_names, mask=mask, progress=progress,
                                  ceiling=subject_method(fm.ceiling, len(files)))
    brain.meta["bids"] = {"root": str(_options(config).root), "space": _options(config).space,
                          "subjects": list(runs), "runs": [r.label for r in next(iter(runs.values()))]}
    return brain


def input_files(config) -> list[Path]:
    """Every BOLD file and mask the configuration reads (none when the folder cannot be searched yet)."""
    try:
        runs = config_runs(config)
    except (ConfigError, InputFileError):
        return []
    files = []
    for rs in runs.values():
        for r in rs:
            files += [Path(p) for p in r.files.values()] + ([Path(r.mask)] if r.mask else [])
    return files
