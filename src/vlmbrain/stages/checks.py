"""Preflight checks of the built-in stages and sources: what the configuration and the inputs'
headers decide before anything is computed.

Every check reads headers only — the shape in a ``.npy`` header, a CIFTI/NIfTI header, a
video's container header, the caption file (text), a model folder's ``config.json`` — never a
model's weights or an fMRI body. An error is one line naming the configuration key or the
file, the value and what is expected; every knob it names is a configuration key.

:class:`InputFacts` carries what a source knows about its data before reading it (run names
and lengths, grayordinates, TR, modalities); the stages compare the stimulus's facts with the
fMRI's and size the dictionary, the shift null and the HRF lag against them.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections import Counter
from pathlib import Path

from vlmbrain.config import RunConfig
from vlmbrain.errors import ConfigError, DimensionError, InputFileError, ModelNotAvailableError
from vlmbrain.stages.sources import BRAIN_SOURCES, STIMULUS_SOURCES, InputFacts

logger = logging.getLogger("vlmbrain")

#: Fewest circular shifts worth a null distribution (its spread is estimated from them).
MIN_SHIFTS = 20

#: The shift null's minimal shift for T training TRs (:func:`vlmbrain.encoding.null.shift_null`).
def min_shift(n_timepoints: int) -> int:
    return max(20, n_timepoints // 20)


def admissible_shifts(n_timepoints: int) -> int:
    """Distinct circular shifts at least :func:`min_shift` TRs away from the original."""
    return max(0, n_timepoints - 2 * min_shift(n_timepoints) + 1)


# ---------------------------------------------------------------------------- facts
def stimulus_facts(config: RunConfig) -> InputFacts:
    kind = config.stimulus.kind
    return STIMULUS_SOURCES.get(kind).facts(config) if kind in STIMULUS_SOURCES else InputFacts()


def brain_facts(config: RunConfig) -> InputFacts:
    kind = config.fmri.kind
    return BRAIN_SOURCES.get(kind).facts(config) if kind in BRAIN_SOURCES else InputFacts()


def run_lengths(config: RunConfig) -> list[int] | None:
    """TRs per run, from the stimulus configuration or else the fMRI headers (None: unknown)."""
    return stimulus_facts(config).run_lengths or brain_facts(config).run_lengths


def _fmt_runs(lengths) -> str:
    if len(set(lengths)) == 1:
        return f"{len(lengths)} run{'s' if len(lengths) != 1 else ''} of {lengths[0]} TRs"
    return f"{len(lengths)} runs of {', '.join(map(str, lengths))} TRs"


def _name(path) -> str:
    return str(path)


# ---------------------------------------------------------------------------- custom stimulus
def _fmri_runs(config: RunConfig) -> list:
    """One subject's fMRI files in run order: fmri.paths, else the first subject's."""
    fm = config.fmri
    if fm.paths:
        return list(fm.paths)
    return list(fm.subjects[0]) if fm.subjects else []


def fmri_run_lengths(config: RunConfig) -> list[int] | None:
    """TRs of every fMRI run (the first subject's) from the fMRI source's headers; None if unreadable."""
    try:
        return brain_facts(config).run_lengths
    except (ConfigError, InputFileError, DimensionError):
        return None


def custom_run_lengths(config: RunConfig) -> list[int]:
    """TRs of every custom stimulus run: its ``n_trs``, else the length of the same fMRI run."""
    runs = config.stimulus.runs
    fmri = fmri_run_lengths(config) if any(r.n_trs is None for r in runs) else []
    lengths = []
    for i, run in enumerate(runs):
        if run.n_trs is not None:
            lengths.append(int(run.n_trs))
        elif fmri is not None and i < len(fmri):
            lengths.append(int(fmri[i]))
        else:
            raise ConfigError(f"stimulus.runs.{i}.n_trs is missing and the fMRI (fmri.kind = {config.fmri.kind!r}) "
                              f"{'has no run ' + str(i + 1) if fmri is not None else 'gives no run lengths'} to take "
                              f"it from; give n_trs for run {run.name}")
    return lengths


def custom_stimulus_facts(config: RunConfig) -> InputFacts:
    st = config.stimulus
    runs = st.runs
    try:
        lengths = custom_run_lengths(config)
    except ConfigError:
        lengths = None       # the preflight says what is missing
    modalities = set()
    if any(r.video is not None or r.frames_dir is not None for r in runs):
        modalities.add("image")
    if any(r.captions is not None for r in runs):
        modalities.add("text")
    return InputFacts(run_names=[r.name for r in runs], run_lengths=lengths or None, tr=st.tr,
                      modalities=frozenset(modalities))


def custom_stimulus_preflight(config: RunConfig) -> None:
    st = config.stimulus
    if not st.runs:
        raise ConfigError("stimulus.kind = 'custom' needs stimulus.runs: a list of {name, n_trs, video | frames_dir, "
                          "captions}")
    names = [r.name for r in st.runs]
    dup = [n for n, c in Counter(names).items() if c > 1]
    if dup:
        where = [i for i, n in enumerate(names) if n == dup[0]]
        raise ConfigError(f"stimulus.runs: the run name {dup[0]!r} is given {len(where)} times (runs "
                          f"{', '.join(map(str, where))}); run names must be unique")
    for i, run in enumerate(st.runs):
        if not str(run.name).strip():
            raise ConfigError(f"stimulus.runs.{i}.name is empty; give every run a name")
        if run.video is not None and run.frames_dir is not None:
            raise ConfigError(f"stimulus.runs.{i} ({run.name}) gives both video and frames_dir; give one of them")
    visual = [r.video is not None or r.frames_dir is not None for r in st.runs]
    if any(visual) and not all(visual):
        missing = [r.name for r, v in zip(st.runs, visual, strict=True) if not v]
        raise ConfigError(f"stimulus.runs: runs {missing} have no video or frames_dir while others do")
    text = [r.captions is not None for r in st.runs]
    if not any(visual) and not any(text):
        raise ConfigError("stimulus.runs give neither video/frames_dir nor captions: nothing for a model to read")
    if any(text) and not all(text):
        missing = [r.name for r, t in zip(st.runs, text, strict=True) if not t]
        raise ConfigError(f"stimulus.runs: runs {missing} have no captions while others do; a text model would read "
                          "empty text for those whole runs: give every run a captions file, or none")
    lengths = custom_run_lengths(config)
    for i, (run, n) in enumerate(zip(st.runs, lengths, strict=True)):
        end = n * st.tr
        if run.video is not None:
            _check_video(f"stimulus.runs.{i}.video", run.video, run.name, n, st)
        if run.frames_dir is not None:
            _check_frames(f"stimulus.runs.{i}.frames_dir", run.frames_dir, run.name, n, st)
        if run.captions is not None:
            _check_captions(f"stimulus.runs.{i}.captions", run.captions, run.name, n, end, i)


def _check_video(key, path, run, n_trs, st) -> None:
    from vlmbrain.stimulus.video import probe_video

    if not Path(path).exists():
        raise InputFileError(f"{key} = {_name(path)}: file not found")
    if Path(path).is_dir():
        raise InputFileError(f"{key} = {_name(path)} is a folder; give a video file, or the folder as frames_dir")
    info = probe_video(path)
    duration = info.get("duration")
    if duration is None:
        return
    n = st.frames_per_tr
    last = (n_trs - 1) * st.tr + (st.frame_offset * st.tr if n == 1 else (n - 0.5) / n * st.tr)
    length = f", {key.rsplit('.', 1)[0]}.n_trs or stimulus.tr" if key.startswith("stimulus.runs.") else ""
    tolerance = 1.0  # VideoStimulus's default: frames up to 1 s past the end repeat the last one
    if last > duration + tolerance:
        raise DimensionError(
            f"{key} = {_name(path)} lasts {duration:.1f} s but run {run} needs frames up to {last:.1f} s "
            f"({n_trs} TRs x {st.tr:g} s): the video is shorter than the run; check the file{length}")


def _check_frames(key, path, run, n_trs, st) -> None:
    from vlmbrain.stimulus.frames import FrameFolder

    if not Path(path).exists():
        raise InputFileError(f"{key} = {_name(path)}: folder not found")
    if not Path(path).is_dir():
        raise InputFileError(f"{key} = {_name(path)} is a file; give a folder of frames (or the file as video)")
    folder = FrameFolder(path, tr=st.tr)
    if st.frames_per_tr != 1:
        raise ConfigError(f"{key}: a folder with one image per TR gives 1 frame per TR, but stimulus.frames_per_tr "
                          f"= {st.frames_per_tr}; set stimulus.frames_per_tr: 1")
    if len(folder) < n_trs:
        raise DimensionError(f"{key} = {_name(path)} has {len(folder)} images but run {run} has {n_trs} TRs; the "
                             "folder needs one image per TR")


def caption_extent(path) -> dict:
    """``{"n_cues", "n_text", "first", "last_onset"}`` of a caption or WordNet label file (seconds)."""
    from vlmbrain.stimulus.captions import read_captions, read_wordnet_labels

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stimulus stage reports the fix-ups when it reads the file
        if os.path.basename(str(path)).lower().startswith("wordnet"):
            labels = read_wordnet_labels(path)
            labelled = [s for s, v in labels.items() if v]
            return {"n_cues": len(labels), "n_text": len(labelled), "last_onset": max(labelled, default=None)}
        cues = read_captions(path)
    text = [c for c in cues if c.text]
    return {"n_cues": len(cues), "n_text": len(text), "last_onset": max((c.onset for c in text), default=None)}


def _check_captions(key, path, run, n_trs, end, index) -> None:
    if not Path(path).exists():
        raise InputFileError(f"{key} = {_name(path)}: file not found")
    if Path(path).is_dir():
        raise InputFileError(f"{key} = {_name(path)} is a folder; give a caption file (.srt, .vtt, .tsv)")
    ext = caption_extent(path)
    if ext["n_text"] == 0:
        raise ConfigError(f"{key} = {_name(path)} has no caption text ({ext['n_cues']} cues, all empty): a text model "
                          f"would read nothing in run {run}; give captions with text")
    if ext["last_onset"] >= end:
        raise DimensionError(
            f"{key} = {_name(path)}: its last cue starts at {ext['last_onset']:g} s, after run {run} ends at {end:g} s "
            f"({n_trs} TRs); cues past the end would be dropped: check the file, stimulus.runs.{index}.n_trs or "
            "stimulus.tr")


# ---------------------------------------------------------------------------- HCP 7T stimulus
def hcp7t_facts(config: RunConfig) -> InputFacts:
    from vlmbrain.stimulus.hcp7t import HCP7T_RUNS

    st = config.stimulus
    modalities = {m for m, folder in (("image", st.movie_dir), ("text", st.wordnet_dir)) if folder is not None}
    return InputFacts(run_names=list(HCP7T_RUNS), run_lengths=[v[0] for v in HCP7T_RUNS.values()], tr=st.tr,
                      modalities=frozenset(modalities))


def hcp7t_preflight(config: RunConfig) -> None:
    from vlmbrain.stimulus.hcp7t import HCP7T_RUNS, HCP7T_TR, find_hcp7t_movies, find_hcp7t_wordnet

    st = config.stimulus
    if st.movie_dir is None and st.wordnet_dir is None:
        raise ConfigError("stimulus.kind = 'hcp7t' needs stimulus.movie_dir (the 7T_MOVIE*.mp4 files) "
                          "and/or stimulus.wordnet_dir (the WordNet_MOVIE*.txt label files)")
    if abs(st.tr - HCP7T_TR) > 1e-9:
        raise ConfigError(f"stimulus.tr = {st.tr} but the HCP 7T movie runs have TR = {HCP7T_TR} s")
    for key, folder in (("stimulus.movie_dir", st.movie_dir), ("stimulus.wordnet_dir", st.wordnet_dir)):
        if folder is not None and not Path(folder).is_dir():
            raise InputFileError(f"{key} = {_name(folder)}: folder not found")
    if st.movie_dir is not None:
        for run, path in find_hcp7t_movies(st.movie_dir).items():
            _check_video("stimulus.movie_dir", path, run, HCP7T_RUNS[run][0], st)
    if st.wordnet_dir is not None:
        for run, path in find_hcp7t_wordnet(st.wordnet_dir).items():
            if caption_extent(path)["n_text"] == 0:
                raise ConfigError(f"stimulus.wordnet_dir: {path} labels no second of run {run}")


# ---------------------------------------------------------------------------- fMRI files
def fmri_facts(config: RunConfig) -> InputFacts:
    """Run lengths, columns and TR from the fMRI headers (the first subject's; None where unknown)."""
    from vlmbrain.inspect import fmri_header

    files = _fmri_runs(config)
    if not files:
        return InputFacts()
    try:
        heads = [fmri_header(p) for p in files]
    except InputFileError:
        return InputFacts()
    columns = {h["n_columns"] for h in heads}
    n_columns = columns.pop() if len(columns) == 1 else None
    if n_columns is None and heads[0]["kind"] == "nifti" and config.fmri.mask is not None:
        n_columns = _mask_size(config.fmri.mask)
    trs = {h["tr"] for h in heads if h["tr"] is not None}
    return InputFacts(run_lengths=[int(h["n_trs"]) for h in heads], n_grayordinates=n_columns,
                      tr=trs.pop() if len(trs) == 1 else None)


def _mask_size(mask) -> int | None:
    """Voxels inside a NIfTI mask (the mask is small: reading it is not reading the fMRI)."""
    import nibabel as nib
    import numpy as np

    try:
        return int(np.count_nonzero(np.asarray(nib.load(str(mask)).dataobj)))
    except Exception:  # noqa: BLE001 - the preflight of the mask reports what is wrong with it
        return None


_SUFFIXES = {"npy": (".npy",), "cifti": (".dtseries.nii",), "nifti": (".nii", ".nii.gz")}


def fmri_preflight(config: RunConfig) -> None:
    """The built-in fMRI sources (cifti, nifti, npy): files, headers, shapes, TRs, mask."""
    from vlmbrain.inspect import fmri_header

    fm = config.fmri
    kind = fm.kind
    if fm.paths and fm.subjects:
        raise ConfigError("fmri.paths (one subject) and fmri.subjects (several) are both given; give one of them")
    if not fm.paths and not fm.subjects:
        raise ConfigError(f"fmri.kind = {kind!r} needs fmri.paths (one file per run) or fmri.subjects (per subject, "
                          "one file per run)")
    if fm.group == "per-subject" and not fm.subjects:
        raise ConfigError("fmri.group = 'per-subject' fits every subject of fmri.subjects, but the runs are given as "
                          "fmri.paths (one subject); list them under fmri.subjects, or use fmri.group: average")
    if fm.ceiling in ("split-half", "loso") and len(fm.subjects) < 2:
        raise ConfigError(f"fmri.ceiling = {fm.ceiling!r} estimates the noise ceiling across subjects, but "
                          f"the data are {'one subject (fmri.paths)' if fm.paths else f'{len(fm.subjects)} subject(s)'}; give two or more subjects, or use 'repeats' "
                          "(a repeated clip), 'auto' or 'none'")
    if kind == "nifti" and fm.mask is None:
        raise ConfigError("fmri.kind = 'nifti' needs fmri.mask (a 3-D brain mask shared by every run): without it "
                          "each run gets its own background mask and the runs' voxels differ")
    if fm.mask is not None and kind != "nifti":
        raise ConfigError(f"fmri.mask is only used with fmri.kind: nifti (fmri.kind is {kind!r}); remove fmri.mask")
    groups = [("fmri.paths", list(fm.paths))] if fm.paths else [
        (f"fmri.subjects.{s}", list(runs)) for s, runs in enumerate(fm.subjects)]
    counts = {len(runs) for _, runs in groups}
    if len(counts) > 1:
        sizes = ", ".join(f"{key}: {len(runs)}" for key, runs in groups)
        raise DimensionError(f"the subjects have different numbers of runs ({sizes}); every subject needs one file per "
                             "stimulus run")
    heads = {}
    for key, runs in groups:
        if not runs:
            raise ConfigError(f"{key} is empty; give one fMRI file per run")
        seen = Counter(str(p) for p in runs)
        twice = [p for p, c in seen.items() if c > 1]
        if twice:
            raise ConfigError(f"{key} names {twice[0]} {seen[twice[0]]} times; give one file per run")
        for i, path in enumerate(runs):
            name = os.path.basename(str(path)).lower()
            if not name.endswith(_SUFFIXES.get(kind, ())) and kind in _SUFFIXES:
                from vlmbrain.brain.loaders import detect_kind

                try:
                    actual = detect_kind(path)
                except InputFileError:
                    actual = None
                hint = f"; it is a {actual} file: set fmri.kind: {actual}" if actual else ""
                raise ConfigError(f"{key}.{i} = {path} is not a {kind} file (expected "
                                  f"{' or '.join(_SUFFIXES[kind])}){hint}")
            heads[(key, i)] = fmri_header(path)
    first = groups[0][1]
    ref = heads[(groups[0][0], 0)]
    for (key, i), h in heads.items():
        path = groups[[k for k, _ in groups].index(key)][1][i]
        if h["n_columns"] is not None and ref["n_columns"] is not None and h["n_columns"] != ref["n_columns"]:
            raise DimensionError(f"{path} has {h['n_columns']} columns but {first[0]} has {ref['n_columns']}; all runs "
                                 "must be in one brain space")
        if fm.n_grayordinates is not None and h["n_columns"] is not None and h["n_columns"] != fm.n_grayordinates:
            raise DimensionError(f"{path} has {h['n_columns']} grayordinates but fmri.n_grayordinates = "
                                 f"{fm.n_grayordinates}")
        if h["tr"] is not None and not math.isclose(h["tr"], config.stimulus.tr, rel_tol=1e-3):
            raise ConfigError(f"{path}: the file's TR is {h['tr']:g} s but stimulus.tr = {config.stimulus.tr:g} s; set "
                              "stimulus.tr to the acquisition TR or check the file")
        if h["kind"] == "nifti" and h["shape"][:3] != ref["shape"][:3]:
            raise DimensionError(f"{path} has volumes of {h['shape'][:3]} but {first[0]} has {ref['shape'][:3]}; all "
                                 "runs must be in one space")
    if kind == "nifti":
        _check_mask(fm.mask, ref, first[0])
    for key, runs in groups[1:]:
        for i, path in enumerate(runs):
            n, n0 = heads[(key, i)]["n_trs"], heads[(groups[0][0], i)]["n_trs"]
            if n != n0:
                raise DimensionError(f"{path} ({key}.{i}) has {n} TRs but {first[i]} (run {i} of the first subject) "
                                     f"has {n0}")


def _check_mask(mask, ref: dict, ref_path) -> None:
    import nibabel as nib

    if not Path(mask).is_file():
        raise InputFileError(f"fmri.mask = {mask}: file not found")
    try:
        img = nib.load(str(mask))
    except Exception as err:
        raise InputFileError(f"fmri.mask = {mask}: not a readable NIfTI file ({type(err).__name__}: {err})") from None
    shape = tuple(int(s) for s in img.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise InputFileError(f"fmri.mask = {mask} has shape {shape}; a mask is one 3-D volume")
    if shape != tuple(ref["shape"][:3]):
        raise DimensionError(f"fmri.mask = {mask} has volumes of {shape} but {ref_path} has {tuple(ref['shape'][:3])}; "
                             "give the mask of the runs' space")
    if _mask_size(mask) == 0:
        raise ConfigError(f"fmri.mask = {mask} is empty (no non-zero voxel)")


def compare_stimulus_and_fmri(config: RunConfig) -> None:
    """Run counts, run lengths and TR of the stimulus against the fMRI headers."""
    st, fm = stimulus_facts(config), brain_facts(config)
    names = st.run_names
    if st.run_lengths is not None and fm.run_lengths is not None:
        key = "fmri.paths" if config.fmri.paths else "fmri.subjects.0" if config.fmri.subjects else "the fMRI"
        ns, nf = len(st.run_lengths), len(fm.run_lengths)
        if ns != nf:
            what = f"stimulus.runs has {ns} runs ({', '.join(names)})" if names else f"the stimulus has {ns} runs"
            raise DimensionError(f"{key} has {nf} files but {what}; give one fMRI file per stimulus run, in the same "
                                 "order")
        files = _fmri_runs(config)
        for i, (a, b) in enumerate(zip(st.run_lengths, fm.run_lengths, strict=True)):
            if a != b:
                run = names[i] if names else str(i + 1)
                raise DimensionError(f"stimulus run {run} has {a} TRs but fMRI run {run} ({files[i] if i < len(files) else key}) "
                                     f"has {b} TRs; check the run order, stimulus.runs.{i}.n_trs, or trim the data")


# ---------------------------------------------------------------------------- models
_TEXT_TYPES = ("bert", "roberta", "distilbert", "mpnet", "xlm-roberta", "electra", "albert", "deberta", "gpt2")
_IMAGE_TYPES = ("vit", "deit", "beit", "dinov2", "swin", "convnext")


def model_modalities(config: RunConfig, index: int) -> frozenset[str] | None:
    """What the model can read ({"image"}, {"text"} or both); None when it cannot be told before loading."""
    import json

    from vlmbrain.models import list_models

    name = config.models[index].name
    table = list_models()
    row = table[table["alias"] == name]
    if len(row):
        family = str(row["family"].iloc[0])
        return {"text": frozenset({"text"}), "vit": frozenset({"image"})}.get(family, frozenset({"image", "text"}))
    cfg = Path(name).expanduser() / "config.json"
    if cfg.is_file():
        try:
            model_type = str(json.loads(cfg.read_text()).get("model_type", ""))
        except (OSError, ValueError):
            return None
        if model_type in _TEXT_TYPES:
            return frozenset({"text"})
        if model_type in _IMAGE_TYPES:
            return frozenset({"image"})
        return frozenset({"image", "text"})
    return None


def models_preflight(config: RunConfig) -> None:
    """Every model resolvable, its weights on this machine, able to read the stimulus."""
    from vlmbrain.models import list_models
    from vlmbrain.stages.model_files import model_dirname

    if not config.models:
        raise ConfigError("'models' is empty: name at least one model (see `vlmbrain models`)")
    table = list_models()
    aliases = list(table["alias"])
    folders: dict[str, int] = {}
    for i, m in enumerate(config.models):
        key = f"models.{i}"
        first = folders.setdefault(model_dirname(m.name), i)
        if first != i:
            raise ConfigError(f"{key}.name = {m.name!r} is given twice (models.{first} writes the same folder "
                              f"activations/{model_dirname(m.name)}); list every model once")
        name = m.name
        row = table[table["alias"] == name]
        if len(row):
            _check_alias(key, m, str(row["family"].iloc[0]), str(row["source"].iloc[0]),
                         str(row["available_offline"].iloc[0]) == "yes")
        else:
            path = Path(name).expanduser()
            if path.is_dir():
                _check_model_folder(key, path, aliases)
            elif path.exists():
                raise ModelNotAvailableError(f"{key}.name = {name!r} is a file; give a registered alias, a model folder "
                                             "(with config.json and weights) or a hub id 'org/name'")
            elif name.count("/") == 1 and not name.startswith((".", "/", "~")):
                _check_hub(key, name, name)
            else:
                raise ModelNotAvailableError(
                    f"{key}.name = {name!r} is not a registered alias ({', '.join(aliases)}), not an existing folder "
                    f"(looked at {str(path.absolute())!r}) and not a hub id 'org/name'; run `vlmbrain models`")
        for opt in ("checkpoint", "tokenizer"):
            value = m.options.get(opt)
            if isinstance(value, str) and not Path(value).expanduser().exists():
                raise ModelNotAvailableError(f"{key}.options.{opt} = {value!r}: file not found")
        if m.device != "cpu":
            _check_device(key, m.device)
    have = stimulus_facts(config).modalities
    if have is not None:
        for i, m in enumerate(config.models):
            reads = model_modalities(config, i)
            if reads is not None and not (reads & have):
                needs = " or ".join(sorted(reads))
                has = " and ".join(sorted(have)) or "nothing"
                fix = "captions" if "text" in reads else "video or frames_dir"
                raise ConfigError(f"models.{i}.name = {m.name!r} reads {needs} but the stimulus has {has}: give the runs "
                                  f"{fix}, or choose a model for the stimulus's modality")


def _check_alias(key, m, family, source, available) -> None:
    if family == "meter":
        from vlmbrain.models.registry import METER_CKPT_ENV

        ckpt = m.options.get("checkpoint") or os.environ.get(METER_CKPT_ENV)
        if not ckpt:
            raise ModelNotAvailableError(f"{key}.name = {m.name!r} needs a METER checkpoint: set {key}.options.checkpoint "
                                         f"to the .ckpt file (or the environment variable {METER_CKPT_ENV})")
        if not Path(ckpt).expanduser().is_file():
            raise ModelNotAvailableError(f"{key}.options.checkpoint = {ckpt!r}: file not found (the METER .ckpt)")
        return
    if available:
        return
    if family in ("clip", "vit", "text") and source.count("/") == 1:
        _check_hub(key, m.name, source)
        return
    raise ModelNotAvailableError(f"{key}.name = {m.name!r}: its weights are not on this machine (`vlmbrain models` "
                                 "lists what is available offline)")


def _check_hub(key, name, repo_id) -> None:
    from vlmbrain.models.hf import hf_cache_dir, hf_offline
    from vlmbrain.stages.model_files import hub_snapshot

    if hub_snapshot(repo_id) or not hf_offline():
        return
    raise ModelNotAvailableError(
        f"{key}.name = {name!r}: the weights of {repo_id} are not in the Hugging Face cache ({hf_cache_dir()}) and "
        "HF_HUB_OFFLINE=1 forbids downloading them; download them once online, or give a local model folder")


def _check_model_folder(key, path: Path, aliases) -> None:
    if not (path / "config.json").is_file():
        raise ModelNotAvailableError(
            f"{key}.name = {str(path)!r} is a folder without config.json; a model folder needs the Hugging Face "
            "config.json and weights (model.save_pretrained(folder))")
    weights = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
               "pytorch_model.bin.index.json")
    if not any((path / w).is_file() for w in weights):
        raise ModelNotAvailableError(f"{key}.name = {str(path)!r} has config.json but no weights "
                                     f"({' or '.join(weights[:2])})")


def _check_device(key, device: str) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{key}.device = {device!r} but no CUDA device is available here; use device: cpu")
    if device.startswith("cuda:"):
        n = torch.cuda.device_count()
        if int(device.split(":", 1)[1]) >= n:
            raise ConfigError(f"{key}.device = {device!r} but this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1})")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"{key}.device = 'mps' but no Apple GPU is available here; use device: cpu")


# ---------------------------------------------------------------------------- signal, dictionary, encoding
def signal_preflight(config: RunConfig) -> None:
    sig = config.signal
    if sig.hrf == "lag" and sig.lag == 0:
        raise ConfigError("signal.hrf = 'lag' with signal.lag = 0 shifts nothing; set signal.lag to the hemodynamic "
                          "delay in TRs (about 5 s / stimulus.tr), or use signal.hrf: none")
    if sig.hrf != "lag" and sig.lag != 0:
        raise ConfigError(f"signal.lag = {sig.lag} is only used with signal.hrf: lag (signal.hrf is {sig.hrf!r}); "
                          "set signal.hrf: lag, or remove signal.lag")
    lengths = run_lengths(config)
    if sig.hrf == "lag" and lengths and sig.lag >= min(lengths):
        raise ConfigError(f"signal.lag = {sig.lag} TRs is not shorter than the shortest run ({min(lengths)} TRs): every "
                          "time course of that run would be zero; use a lag of a few TRs")


def training_shape(config: RunConfig) -> tuple[int, int, int] | None:
    """``(training TRs, runs, longest run)`` as far as known before the timeline exists (rest TRs
    that ``stimulus.exclude_rest`` leaves out are not subtracted: an upper bound)."""
    lengths = run_lengths(config)
    if not lengths:
        return None
    return sum(lengths), len(lengths), max(lengths)


def dictionary_preflight(config: RunConfig) -> None:
    d = config.dictionary
    if d.alpha >= 1:
        raise ConfigError(f"dictionary.alpha = {d.alpha:g} makes every code zero: the AN time courses are scaled to "
                          "unit norm, so no atom gets a code once alpha >= 1; use a value in (0, 1) (default 0.1)")
    shape = training_shape(config)
    if shape is None:
        return
    T, R, longest = shape
    if R < 2:
        return  # the encoding's preflight says that leave-one-run-out needs 2 runs
    limit = T - longest - R
    _warn_atoms_beyond_caption_texts(config)
    if d.n_atoms > limit:
        fix = f"use dictionary.n_atoms <= {limit}" if limit >= 1 else "the runs are too short for any atom"
        raise ConfigError(
            f"dictionary.n_atoms = {d.n_atoms} but the encoding fits the atoms on {T} TRs ({_fmt_runs(run_lengths(config))}): "
            f"a leave-one-run-out fit has {T - longest} TRs for {d.n_atoms} atoms + {R - 1} run "
            f"intercept{'s' if R != 2 else ''}; {fix}")


def caption_texts_per_run(config: RunConfig) -> list[set[str]] | None:
    """The distinct non-empty caption texts on the TRs of every run of a custom stimulus with
    captions (as the stimulus stage assigns them, rule ``overlap``), else ``None``."""
    from vlmbrain.stimulus.captions import captions_to_trs, read_captions

    st = config.stimulus
    if st.kind != "custom" or not st.runs or any(r.captions is None for r in st.runs):
        return None
    try:
        lengths = custom_run_lengths(config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the stimulus stage reports the fix-ups
            return [{t for t in captions_to_trs(read_captions(r.captions), n, st.tr) if t}
                    for r, n in zip(st.runs, lengths, strict=True)]
    except (OSError, ValueError, ConfigError):
        return None   # the stimulus preflight names the file or the length


def _warn_atoms_beyond_caption_texts(config: RunConfig) -> None:
    """A warning when a text branch cannot fill ``dictionary.n_atoms`` dimensions in the training
    runs of some leave-one-run-out fold. A text model's time course is a function of the TR's
    caption text, so the time courses of runs showing m distinct texts span at most m dimensions
    (the HRF and the per-run z-score add none the run-centred encoding keeps), and so do the
    atoms, each a combination of the time courses."""
    if config.dictionary.scope != "branch" or len(config.stimulus.runs) < 2:
        return
    if not any("text" in (model_modalities(config, i) or {"text"}) for i in range(len(config.models))):
        return
    texts = caption_texts_per_run(config)
    if not texts:
        return
    sizes = [len(set().union(*(t for r, t in enumerate(texts) if r != f))) for f in range(len(texts))]
    fold = min(range(len(sizes)), key=sizes.__getitem__)
    n = config.dictionary.n_atoms
    if n >= sizes[fold]:
        logger.warning(
            "dictionary.n_atoms = %d but the training runs of a leave-one-run-out fold show only %d distinct "
            "captions (the fold without run %r): a text branch's time courses span at most %d dimensions there, "
            "so its atoms are collinear within those runs and that fold's r_cv is unstable (the encoding reports "
            "every fold's condition number); use dictionary.n_atoms below %d, or more or longer runs",
            n, sizes[fold], config.stimulus.runs[fold].name, sizes[fold], sizes[fold])


def encoding_preflight(config: RunConfig) -> None:
    enc, fm = config.encoding, config.fmri
    lengths = run_lengths(config)
    if lengths is not None and len(lengths) < 2:
        what = "stimulus.runs has 1 run" if config.stimulus.kind == "custom" else "the stimulus has 1 run"
        raise ConfigError(f"{what}: the leave-one-run-out prediction (r_cv) needs at least 2 runs; give the fMRI of "
                          "2 or more runs (one file per run)")
    if fm.subjects and fm.group == "per-subject":
        return
    if enc.n_shifts == 0:
        return
    shape = training_shape(config)
    if shape is None:
        return
    T = shape[0]
    n_adm = admissible_shifts(T)
    n_eff = min(enc.n_shifts, n_adm)
    if n_adm < 2:
        raise ConfigError(f"encoding.n_shifts = {enc.n_shifts}: the {T} training TRs leave no circular shift of at least "
                          f"{min_shift(T)} TRs; set encoding.n_shifts: 0 (parametric p, encoding.method 'ols' or 'ar1')")
    rank_based = enc.correction == "fwer" or enc.null_pvalues == "empirical"
    need = max(MIN_SHIFTS, math.ceil(1 / enc.q) - 1 if rank_based else 0)
    if n_eff >= need:
        return
    why = (f"the smallest p-value of the shift null is 1/(n_shifts + 1) and must reach encoding.q = {enc.q:g}"
           if rank_based and need > MIN_SHIFTS else "fewer shifts give no usable estimate of the null's spread")
    if enc.n_shifts < need:
        raise ConfigError(f"encoding.n_shifts = {enc.n_shifts} is too few: at least {need} are needed ({why}); set "
                          f"encoding.n_shifts >= {need}, or 0 for the parametric test")
    raise ConfigError(f"encoding.n_shifts = {enc.n_shifts}: the {T} training TRs admit only {n_adm} distinct circular "
                      f"shifts (at least {min_shift(T)} TRs each) but {need} are needed ({why}); give more TRs, or set "
                      "encoding.n_shifts: 0 for the parametric test")
