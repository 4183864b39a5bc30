"""The HCP 7T movie-watching protocol: runs, clips, rest blocks, the test-retest montage.

Four runs at TR = 1 s (921, 918, 915, 901 TRs). Each opens with 20 s of rest, has ~20 s of rest
between clips and ~20 s after the last clip; the last clip of every run (``testretest1..4``)
is the same ~83 s validation montage. Clip timing (``clips.csv``, TR indices, ``stop_tr``
exclusive) is from Finn & Bandettini (NeuroImage 2021), shipped in ``vlmbrain/data/hcp7t``.

A TR belongs to a clip when ``start_tr <= run_tr < stop_tr``; every other TR is rest.
"""

from __future__ import annotations

import glob
import os
import re
from importlib import resources

import numpy as np
import pandas as pd

from vlmbrain.errors import ConfigError, InputFileError
from vlmbrain.stimulus.timeline import Timeline

__all__ = [
    "HCP7T_RUNS",
    "HCP7T_TR",
    "find_hcp7t_fmri",
    "find_hcp7t_movies",
    "find_hcp7t_wordnet",
    "hcp7t_clips",
    "hcp7t_mask",
    "hcp7t_rest_intervals",
    "hcp7t_split",
    "hcp7t_stimulus",
    "hcp7t_timeline",
]

HCP7T_TR = 1.0

#: Run name -> (number of TRs, stimulus video file name).
HCP7T_RUNS = {
    "MOVIE1_7T_AP": (921, "7T_MOVIE1_CC1.mp4"),
    "MOVIE2_7T_PA": (918, "7T_MOVIE2_HO1.mp4"),
    "MOVIE3_7T_PA": (915, "7T_MOVIE3_CC2.mp4"),
    "MOVIE4_7T_AP": (901, "7T_MOVIE4_HO2.mp4"),
}


def _data(name: str) -> pd.DataFrame:
    path = resources.files("vlmbrain") / "data" / "hcp7t" / name
    with resources.as_file(path) as p:
        return pd.read_csv(p)


def hcp7t_clips() -> pd.DataFrame:
    """The 18-row clip table (``run, clipno_in_run, clip_name, start_tr, stop_tr``; stop exclusive)."""
    return _data("clips.csv")


def hcp7t_rest_intervals() -> pd.DataFrame:
    """Blank intervals in seconds of each stimulus video (``run, stimulus_file, blank_index, start_s, end_s``)."""
    return _data("rest_intervals_seconds.csv")


def _check_runs(runs):
    if runs is None:
        return list(HCP7T_RUNS)
    if isinstance(runs, str):
        runs = [runs]
    out = []
    for r in runs:
        name = _normalise_run(r)
        if name is None:
            raise ConfigError(f"unknown HCP 7T movie run {r!r}; allowed: {', '.join(HCP7T_RUNS)} (or 1-4)")
        out.append(name)
    return out


def _normalise_run(r):
    if isinstance(r, (int, np.integer)) and 1 <= int(r) <= 4:
        return list(HCP7T_RUNS)[int(r) - 1]
    s = str(r)
    for name in HCP7T_RUNS:
        if s == name or s == name.split("_")[0] or s == f"tfMRI_{name}":
            return name
    return None


def hcp7t_timeline(runs=None, frame_offset: float = 0.5) -> Timeline:
    """The TR grid of the HCP 7T movie runs with clip names and rest flags.

    Parameters
    ----------
    runs : sequence of str or int, optional
        Subset/order of runs (``"MOVIE1_7T_AP"``, ``"MOVIE1"`` or 1..4); default all four.
    frame_offset : float, default=0.5
        Frame sampled at this fraction of each TR (0.5 = midpoint). The video time of TR k is
        ``k * TR + frame_offset * TR`` (the movies start with the run).

    Returns
    -------
    Timeline
        Columns filled: ``clip`` (``""`` on rest), ``rest``; ``caption`` empty (attach captions
        with :func:`vlmbrain.stimulus.captions.attach_captions`).
    """
    runs = _check_runs(runs)
    clips = hcp7t_clips()
    lengths = [HCP7T_RUNS[r][0] for r in runs]
    clip_col, rest_col = [], []
    for r, n in zip(runs, lengths, strict=True):
        names = np.full(n, "", dtype=object)
        for row in clips[clips["run"] == r].itertuples(index=False):
            names[int(row.start_tr):int(row.stop_tr)] = row.clip_name
        clip_col.extend(names.tolist())
        rest_col.extend((names == "").tolist())
    return Timeline.from_runs(lengths, HCP7T_TR, run_names=runs, clips=clip_col, rest=rest_col,
                              frame_offset=frame_offset)


def _is_testretest(timeline: Timeline) -> np.ndarray:
    return timeline.table["clip"].str.startswith("testretest").to_numpy(bool)


def hcp7t_mask(timeline: Timeline, exclude_rest: bool = False, exclude_testretest: bool = False) -> np.ndarray:
    """Boolean mask (n_timepoints,) of the TRs to keep.

    Parameters
    ----------
    timeline : Timeline
        From :func:`hcp7t_timeline`.
    exclude_rest : bool, default=False
        Drop rest TRs (start, between clips, end).
    exclude_testretest : bool, default=False
        Drop the repeated validation montage (the last clip of every run).
    """
    keep = np.ones(timeline.n_timepoints, bool)
    if exclude_rest:
        keep &= ~timeline.rest
    if exclude_testretest:
        keep &= ~_is_testretest(timeline)
    return keep


def hcp7t_split(timeline: Timeline, testretest_as_test: bool = True, exclude_rest: bool = False):
    """Train/test masks: the repeated test-retest montage as the held-out test set.

    Parameters
    ----------
    timeline : Timeline
    testretest_as_test : bool, default=True
        ``True``: test = the four test-retest clips, train = everything else. ``False``: test is
        empty and train is every TR (leave-one-run-out is done by the encoder).
    exclude_rest : bool, default=False
        Remove rest TRs from both sets.

    Returns
    -------
    train, test : ndarray of bool, shape (n_timepoints,)
    """
    tr_ = _is_testretest(timeline) if testretest_as_test else np.zeros(timeline.n_timepoints, bool)
    base = hcp7t_mask(timeline, exclude_rest=exclude_rest)
    return base & ~tr_, base & tr_


_FMRI_RE = re.compile(r"(MOVIE[1-4])_7T_(AP|PA)")


def find_hcp7t_fmri(folder, pattern: str = "*MOVIE*_7T_*.dtseries.nii", runs=None) -> dict[str, str]:
    """Find a subject's movie runs (HCP ``tfMRI_MOVIE1_7T_AP_Atlas_MSMAll_hp2000_clean.dtseries.nii``
    or fMRIPrep ``*task-MOVIE1*``) under ``folder`` (searched recursively).

    Returns
    -------
    dict run name -> path, in run order
        Raises :class:`InputFileError` when a requested run is missing or ambiguous.
    """
    runs = _check_runs(runs)
    files = sorted(glob.glob(os.path.join(str(folder), "**", pattern), recursive=True))
    out = {}
    for r in runs:
        hits = [f for f in files if r in os.path.basename(f)]
        if len(hits) > 1:
            pref = [f for f in hits if "MSMAll" in os.path.basename(f)]
            hits = pref if len(pref) == 1 else hits
        if not hits:
            raise InputFileError(f"{folder}: no file for run {r} matching {pattern!r}")
        if len(hits) > 1:
            raise InputFileError(f"{folder}: {len(hits)} files for run {r} ({[os.path.basename(h) for h in hits]}); "
                                 "give the paths explicitly or narrow the pattern")
        out[r] = hits[0]
    return out


def find_hcp7t_movies(folder, runs=None, prefer_v2: bool = False) -> dict[str, str]:
    """Find the stimulus videos (``7T_MOVIE1_CC1.mp4`` ... or their ``_v2`` versions) in ``folder``.

    ``_v2`` versions were shown to subjects scanned after 2014-08-22; ``prefer_v2`` picks them
    when both exist.
    """
    runs = _check_runs(runs)
    out = {}
    for r in runs:
        base = HCP7T_RUNS[r][1]
        v2 = base.replace(".mp4", "_v2.mp4")
        order = [v2, base] if prefer_v2 else [base, v2]
        for name in order:
            p = os.path.join(str(folder), name)
            if os.path.isfile(p):
                out[r] = p
                break
        else:
            raise InputFileError(f"{folder}: no stimulus video for run {r} ({base} or {v2})")
    return out


def find_hcp7t_wordnet(folder, runs=None) -> dict[str, str]:
    """Find HCP's per-second WordNet label files in ``folder``.

    Looks for ``WordNet_MOVIE1_CC1.txt`` (the name in the HCP movie resources), then for any
    ``.txt`` whose name contains ``wordnet`` and the run's ``MOVIEn`` token (e.g.
    ``WordNet_7T_MOVIE1_CC1.txt``, ``7T_MOVIE1_CC1_v2_WordNet.txt``).
    """
    runs = _check_runs(runs)
    try:
        names = sorted(os.listdir(str(folder)))
    except OSError as err:
        raise InputFileError(f"{folder}: cannot list the WordNet folder ({err})") from err
    out = {}
    for r in runs:
        stem = HCP7T_RUNS[r][1][len("7T_"):-len(".mp4")]  # MOVIE1_CC1
        exact = f"WordNet_{stem}.txt"
        if exact in names:
            out[r] = os.path.join(str(folder), exact)
            continue
        token = stem.split("_")[0]  # MOVIE1
        hits = [n for n in names if n.lower().endswith(".txt") and "wordnet" in n.lower() and token in n]
        if len(hits) != 1:
            what = "no" if not hits else f"{len(hits)} candidate"
            raise InputFileError(f"{folder}: {what} WordNet label file(s) for run {r} (expected {exact}"
                                 f"{'; found ' + ', '.join(hits) if hits else ''})")
        out[r] = os.path.join(str(folder), hits[0])
    return out


def hcp7t_stimulus(movie_dir=None, runs=None, captions=None, *, n_frames_per_tr: int = 1,
                   rest_frames: str = "blank", size=None, prefer_v2: bool = False,
                   caption_rule: str = "overlap", frame_offset: float = 0.5):
    """The HCP 7T movie stimulus: timeline + videos and/or per-TR captions.

    Parameters
    ----------
    movie_dir : str or Path, optional
        Folder with ``7T_MOVIE1_CC1.mp4`` ... (see :func:`find_hcp7t_movies`); ``None`` for a
        captions-only stimulus.
    runs : optional
        Subset of runs (see :func:`hcp7t_timeline`).
    captions : folder, or mapping run -> caption file, optional
        A folder is searched for the WordNet label files (``WordNet_MOVIE1_CC1.txt``); a mapping
        may give any SRT/VTT/TSV/WordNet file per run.
    n_frames_per_tr, rest_frames, size
        See :class:`vlmbrain.stimulus.video.VideoStimulus`.
    caption_rule : str, default="overlap"
        See :func:`vlmbrain.stimulus.captions.captions_to_trs`.

    Returns
    -------
    Stimulus
        A ``VideoStimulus`` when ``movie_dir`` is given, else an ``ArrayStimulus`` with captions.
    """
    from collections.abc import Mapping

    from vlmbrain.stimulus.captions import attach_captions
    from vlmbrain.stimulus.timeline import ArrayStimulus
    from vlmbrain.stimulus.video import VideoStimulus

    if movie_dir is None and captions is None:
        raise ConfigError("hcp7t_stimulus needs movie_dir (videos) and/or captions (WordNet folder or files)")
    timeline = hcp7t_timeline(runs, frame_offset=frame_offset)
    if captions is not None:
        sources = captions if isinstance(captions, Mapping) else find_hcp7t_wordnet(captions, timeline.run_names)
        timeline = attach_captions(timeline, sources, rule=caption_rule)
    if movie_dir is None:
        return ArrayStimulus(timeline)
    videos = find_hcp7t_movies(movie_dir, timeline.run_names, prefer_v2=prefer_v2)
    return VideoStimulus(timeline, videos, n_frames_per_tr=n_frames_per_tr, rest_frames=rest_frames, size=size,
                         use_captions=captions is not None)
