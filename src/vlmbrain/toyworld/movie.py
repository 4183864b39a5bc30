"""A deterministic toy "movie": runs of captioned scene segments separated by rest blocks.

One frame and one caption per TR (the frame shows the scene at the TR midpoint), plus a table of
numeric attributes describing each TR (low-level image statistics, objects, motion, colours,
texture, caption semantics, scene changes, rest) from which a phantom brain can be planted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vlmbrain.errors import ConfigError
from vlmbrain.toyworld.render import blank_frame, render_scene
from vlmbrain.toyworld.scenes import COLORS, Scene, caption_scene, sample_scene

#: Columns of :attr:`ToyMovie.attributes`, in order.
ATTRIBUTE_COLUMNS = (
    "luminance",
    "contrast",
    "edge_energy",
    "object_area",
    "n_objects",
    "motion_energy",
    "speed",
    *COLORS,
    "texture_striped",
    "texture_dotted",
    "size_large",
    "caption_words",
    "sem_spatial",
    "sem_number",
    "sem_motion",
    "scene_change",
    "rest",
)

_LUMA = np.array([0.299, 0.587, 0.114])
_MOTION_DT = 0.5  # s: motion energy is the luminance change over +-0.5 s around the frame time


def frame_luminance(frame: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an RGB uint8 frame, in [0, 1], shape ``(H, W)``."""
    return frame.astype(float) @ _LUMA / 255.0


def image_attributes(frame: np.ndarray) -> dict[str, float]:
    """Low-level statistics of one frame.

    Parameters
    ----------
    frame : ndarray of shape (H, W, 3), uint8

    Returns
    -------
    dict
        ``luminance`` (mean luma in [0, 1]), ``contrast`` (std of luma), ``edge_energy`` (mean
        absolute luma difference between horizontal and vertical neighbours), and one entry per
        colour family: the fraction of pixels with exactly that palette colour.
    """
    lum = frame_luminance(frame)
    out = {
        "luminance": float(lum.mean()),
        "contrast": float(lum.std()),
        "edge_energy": float(0.5 * (np.abs(np.diff(lum, axis=0)).mean() + np.abs(np.diff(lum, axis=1)).mean())),
    }
    n_pix = frame.shape[0] * frame.shape[1]
    for name, rgb in COLORS.items():
        out[name] = float(np.all(frame == np.asarray(rgb, dtype=np.uint8), axis=-1).sum() / n_pix)
    return out


@dataclass
class ToyMovie:
    """A generated toy movie, one entry per TR (all runs concatenated).

    Attributes
    ----------
    frames : ndarray of shape (n_timepoints, H, W, 3), uint8
        The frame at each TR's midpoint (black on rest TRs).
    captions : list of str
        The caption of each TR (``""`` on rest).
    attributes : pandas.DataFrame
        One row per TR, columns :data:`ATTRIBUTE_COLUMNS` (float).
    rest : ndarray of shape (n_timepoints,), bool
    runs : ndarray of shape (n_timepoints,), int
        Run index 0..n_runs-1.
    clips : ndarray of shape (n_timepoints,), str
        Segment name (``""`` on rest).
    segments : ndarray of shape (n_timepoints,), int
        Index into :attr:`scenes` (-1 on rest).
    run_tr : ndarray of shape (n_timepoints,), int
        TR index within its run.
    frame_times : ndarray of shape (n_timepoints,), float
        Scene time (seconds) at which the TR's frame was drawn, ``render_scene(scenes[segments[i]],
        frame_times[i])`` reproduces ``frames[i]`` (NaN on rest). It is the TR midpoint plus a
        0.5 s lead-in (so motion energy can look 0.5 s back).
    scenes : list of Scene
        One per segment.
    tr : float
        Repetition time in seconds.
    seed : int
    """

    frames: np.ndarray
    captions: list[str]
    attributes: pd.DataFrame
    rest: np.ndarray
    runs: np.ndarray
    clips: np.ndarray
    segments: np.ndarray
    run_tr: np.ndarray
    frame_times: np.ndarray
    scenes: list[Scene] = field(repr=False)
    tr: float = 1.0
    seed: int = 0

    @property
    def n_timepoints(self) -> int:
        return int(self.frames.shape[0])

    def timeline_table(self, run_names: list[str] | None = None) -> pd.DataFrame:
        """The movie as a timeline table (columns of ``vlmbrain.stimulus.timeline``).

        Parameters
        ----------
        run_names : list of str, optional
            Names of the runs (default ``"toy_run1"``, ...).

        Returns
        -------
        pandas.DataFrame
            Columns ``tr_index, run, run_index, run_tr, onset, frame_time, clip, rest, caption``;
            ``frame_time`` is the TR midpoint in seconds from the run start.
        """
        n_runs = int(self.runs.max()) + 1 if self.runs.size else 0
        if run_names is None:
            run_names = [f"toy_run{i + 1}" for i in range(n_runs)]
        if len(run_names) != n_runs:
            raise ConfigError(f"run_names has {len(run_names)} names but the movie has {n_runs} runs.")
        onset = self.run_tr * self.tr
        return pd.DataFrame(
            {
                "tr_index": np.arange(self.n_timepoints),
                "run": [run_names[i] for i in self.runs],
                "run_index": self.runs.astype(int),
                "run_tr": self.run_tr.astype(int),
                "onset": onset.astype(float),
                "frame_time": onset + 0.5 * self.tr,
                "clip": self.clips.astype(str),
                "rest": self.rest.astype(bool),
                "caption": list(self.captions),
            }
        )


def _caption_semantics(caption: str) -> dict[str, float]:
    words = caption.split()
    return {
        "caption_words": float(len(words)),
        "sem_spatial": float(any(w in ("above", "below", "of") for w in words)),
        "sem_number": float(any(w in ("two", "three") for w in words)),
        "sem_motion": float(any(w in ("move", "moves") for w in words)),
    }


def _run_layout(
    rng: np.random.Generator,
    run_length: int,
    tr: float,
    rest_every: int | None,
    opening_rest: float,
    rest_block: float,
    segment_seconds: tuple[float, float],
) -> list[tuple[str, int]]:
    """List of ("rest"|"clip", n_trs) blocks filling exactly ``run_length`` TRs."""
    blocks: list[tuple[str, int]] = []
    used = min(run_length, int(round(opening_rest / tr)))
    if used:
        blocks.append(("rest", used))
    n_clips = 0
    while used < run_length:
        n = max(1, int(round(rng.uniform(*segment_seconds) / tr)))
        n = min(n, run_length - used)
        blocks.append(("clip", n))
        used += n
        n_clips += 1
        if rest_every and n_clips % rest_every == 0 and used < run_length:
            r = min(run_length - used, max(1, int(round(rest_block / tr))))
            blocks.append(("rest", r))
            used += r
    return blocks


def generate_movie(
    n_runs: int = 2,
    run_length: int = 150,
    tr: float = 1.0,
    rest_every: int | None = 3,
    seed: int = 0,
    image_size: int = 64,
    opening_rest: float = 10.0,
    rest_block: float = 8.0,
    segment_seconds: tuple[float, float] = (8.0, 20.0),
) -> ToyMovie:
    """Generate a deterministic toy movie.

    Each run opens with ``opening_rest`` seconds of rest (black frames, empty captions), then
    plays segments (clips) of ``segment_seconds`` each; within a segment the scene evolves
    smoothly (objects move), between segments it changes. After every ``rest_every`` segments a
    rest block of ``rest_block`` seconds is inserted.

    Parameters
    ----------
    n_runs : int
        Number of runs (>= 1).
    run_length : int
        TRs per run (>= 1).
    tr : float
        Repetition time in seconds (> 0).
    rest_every : int or None
        Insert a rest block after every this many segments (None or 0: never).
    seed : int
        Random seed; the same seed gives byte-identical frames and identical captions.
    image_size : int
        Frame side in pixels (>= 32).
    opening_rest, rest_block : float
        Durations in seconds of the opening rest of every run and of the rest blocks.
    segment_seconds : (float, float)
        Range of segment durations in seconds (drawn uniformly).

    Returns
    -------
    ToyMovie

    Raises
    ------
    ConfigError
        On a non-positive ``n_runs``, ``run_length``, ``tr``, or an invalid ``segment_seconds``.
    """
    if int(n_runs) < 1:
        raise ConfigError(f"n_runs={n_runs!r} must be >= 1.")
    if int(run_length) < 1:
        raise ConfigError(f"run_length={run_length!r} must be >= 1 TR.")
    if not tr > 0:
        raise ConfigError(f"tr={tr!r} must be > 0 seconds.")
    lo, hi = segment_seconds
    if not 0 < lo <= hi:
        raise ConfigError(f"segment_seconds={segment_seconds!r} must be (min, max) with 0 < min <= max.")
    if rest_every is not None and int(rest_every) < 0:
        raise ConfigError(f"rest_every={rest_every!r} must be a positive int, 0 or None.")

    rng = np.random.default_rng(seed)
    frames, captions, rows = [], [], []
    rest, runs, clips, segments, run_trs, times = [], [], [], [], [], []
    scenes: list[Scene] = []
    blank = blank_frame(image_size)
    zero_row = {c: 0.0 for c in ATTRIBUTE_COLUMNS}
    for run in range(int(n_runs)):
        layout = _run_layout(rng, int(run_length), float(tr), rest_every, opening_rest, rest_block, (lo, hi))
        run_tr = 0
        clip_in_run = 0
        for kind, n in layout:
            if kind == "rest":
                for _ in range(n):
                    frames.append(blank)
                    captions.append("")
                    rows.append(dict(zero_row, rest=1.0))
                    rest.append(True)
                    runs.append(run)
                    clips.append("")
                    segments.append(-1)
                    run_trs.append(run_tr)
                    times.append(np.nan)
                    run_tr += 1
                continue
            clip_in_run += 1
            scene = sample_scene(rng, image_size=image_size, duration=n * tr + 2 * _MOTION_DT)
            scenes.append(scene)
            caption = caption_scene(scene)
            sem = _caption_semantics(caption)
            groups = scene.groups
            n_obj = scene.n_objects
            static = {
                "n_objects": float(n_obj),
                "speed": float(scene.primary.speed * tr),
                "texture_striped": sum(g.count for g in groups if g.texture == "striped") / n_obj,
                "texture_dotted": sum(g.count for g in groups if g.texture == "dotted") / n_obj,
                "size_large": sum(g.count for g in groups if g.size == "large") / n_obj,
                **sem,
                "rest": 0.0,
            }
            name = f"run{run + 1}_clip{clip_in_run:02d}"
            for k in range(n):
                t = (k + 0.5) * tr + _MOTION_DT  # scene time; the scene is valid on [0, n*tr + 2*dt]
                frame = render_scene(scene, t)
                row = dict(static)
                row.update(image_attributes(frame))
                row["object_area"] = float(np.any(frame != scene.background, axis=-1).mean())
                if scene.primary.speed > 0:
                    before = frame_luminance(render_scene(scene, t - _MOTION_DT))
                    after = frame_luminance(render_scene(scene, t + _MOTION_DT))
                    row["motion_energy"] = float(np.abs(after - before).mean() / (2 * _MOTION_DT))
                else:
                    row["motion_energy"] = 0.0
                row["scene_change"] = 1.0 if k == 0 else 0.0
                frames.append(frame)
                captions.append(caption)
                rows.append(row)
                rest.append(False)
                runs.append(run)
                clips.append(name)
                segments.append(len(scenes) - 1)
                run_trs.append(run_tr)
                times.append(t)
                run_tr += 1
    attributes = pd.DataFrame(rows, columns=list(ATTRIBUTE_COLUMNS)).astype(float)
    return ToyMovie(
        frames=np.stack(frames).astype(np.uint8, copy=False),
        captions=captions,
        attributes=attributes,
        rest=np.asarray(rest, dtype=bool),
        runs=np.asarray(runs, dtype=int),
        clips=np.asarray(clips, dtype=object).astype(str),
        segments=np.asarray(segments, dtype=int),
        run_tr=np.asarray(run_trs, dtype=int),
        frame_times=np.asarray(times, dtype=float),
        scenes=scenes,
        tr=float(tr),
        seed=int(seed),
    )
