"""The stimulus timeline: one row per TR, with the frame time and caption of every TR.

A :class:`Timeline` is the TR grid of all runs concatenated; a :class:`Stimulus` adds the
content (frames and/or captions) that a model reads for each TR.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vlmbrain.errors import DimensionError

#: Columns of ``Timeline.table``, in this order.
TIMELINE_COLUMNS = ("tr_index", "run", "run_index", "run_tr", "onset", "frame_time", "clip", "rest", "caption")


@dataclass
class Timeline:
    """TR grid of a (multi-run) naturalistic stimulus.

    Parameters
    ----------
    table : pandas.DataFrame of shape (n_timepoints, 9)
        Columns :data:`TIMELINE_COLUMNS`; one row per TR, runs concatenated in order.
    tr : float
        Repetition time in seconds.
    """

    table: pd.DataFrame
    tr: float

    def __post_init__(self):
        missing = [c for c in TIMELINE_COLUMNS if c not in self.table.columns]
        if missing:
            raise DimensionError(f"timeline table lacks column(s) {missing}; expected {list(TIMELINE_COLUMNS)}")
        self.table = self.table.loc[:, list(TIMELINE_COLUMNS)].reset_index(drop=True)
        self.table["caption"] = self.table["caption"].fillna("").astype(str)
        self.table["clip"] = self.table["clip"].fillna("").astype(str)
        self.table["rest"] = self.table["rest"].astype(bool)

    @classmethod
    def from_runs(
        cls,
        run_lengths: Sequence[int],
        tr: float,
        run_names: Sequence[str] | None = None,
        captions: Sequence[str] | None = None,
        rest: Sequence[bool] | np.ndarray | None = None,
        clips: Sequence[str] | None = None,
        frame_offset: float = 0.5,
    ) -> Timeline:
        """Build a timeline from run lengths.

        Parameters
        ----------
        run_lengths : sequence of int
            Number of TRs of each run.
        tr : float
            Repetition time (s).
        run_names : sequence of str, optional
            Default ``run-1``, ``run-2``, ...
        captions, clips : sequence of str of length n_timepoints, optional
        rest : array of bool of shape (n_timepoints,), optional
        frame_offset : float, default=0.5
            Where inside each TR its frame is taken, as a fraction of the TR (0.5 = midpoint).
        """
        run_lengths = [int(n) for n in run_lengths]
        if run_names is None:
            run_names = [f"run-{i + 1}" for i in range(len(run_lengths))]
        if len(run_names) != len(run_lengths):
            raise DimensionError(f"{len(run_names)} run names for {len(run_lengths)} runs")
        n_total = int(sum(run_lengths))
        run_index = np.repeat(np.arange(len(run_lengths)), run_lengths)
        run_tr = np.concatenate([np.arange(n) for n in run_lengths]) if run_lengths else np.zeros(0, int)
        onset = run_tr * float(tr)

        def _check(name, values):
            if values is not None and len(values) != n_total:
                raise DimensionError(f"{name} has {len(values)} entries but the runs have {n_total} TRs in total")

        _check("captions", captions)
        _check("rest", rest)
        _check("clips", clips)
        table = pd.DataFrame(
            {
                "tr_index": np.arange(n_total),
                "run": np.asarray(run_names, dtype=object)[run_index] if n_total else [],
                "run_index": run_index,
                "run_tr": run_tr,
                "onset": onset,
                "frame_time": onset + frame_offset * float(tr),
                "clip": list(clips) if clips is not None else [""] * n_total,
                "rest": np.asarray(rest, bool) if rest is not None else np.zeros(n_total, bool),
                "caption": list(captions) if captions is not None else [""] * n_total,
            }
        )
        return cls(table, float(tr))

    @property
    def n_timepoints(self) -> int:
        return len(self.table)

    @property
    def runs(self) -> np.ndarray:
        """Run index of every TR, shape (n_timepoints,)."""
        return self.table["run_index"].to_numpy()

    @property
    def run_names(self) -> list[str]:
        return list(dict.fromkeys(self.table["run"].tolist()))

    @property
    def run_lengths(self) -> list[int]:
        return [int(n) for n in self.table.groupby("run_index", sort=True).size().tolist()]

    @property
    def rest(self) -> np.ndarray:
        return self.table["rest"].to_numpy(bool)

    def to_tsv(self, path) -> None:
        from vlmbrain._io import save_tsv

        save_tsv(self.table, path)

    @classmethod
    def from_tsv(cls, path, tr: float) -> Timeline:
        table = pd.read_csv(path, sep="\t", keep_default_na=False)
        return cls(table, tr)

    def content_hash(self) -> str:
        h = hashlib.sha256()
        h.update(repr(float(self.tr)).encode())
        h.update(pd.util.hash_pandas_object(self.table, index=False).to_numpy().tobytes())
        return h.hexdigest()[:16]


class Stimulus:
    """A timeline plus the content a model reads for each TR.

    Subclasses implement :meth:`frames`; captions come from the timeline's ``caption`` column.

    Attributes
    ----------
    timeline : Timeline
    has_frames, has_captions : bool
    n_frames_per_tr : int
    """

    timeline: Timeline
    has_frames: bool = False
    has_captions: bool = True
    n_frames_per_tr: int = 1

    def frames(self, tr_indices: Sequence[int]) -> list[list[np.ndarray]]:
        """Per requested TR, a list of ``n_frames_per_tr`` RGB images of shape (H, W, 3), uint8."""
        raise NotImplementedError(f"{type(self).__name__} has no frames")

    def captions(self, tr_indices: Sequence[int]) -> list[str]:
        """Per requested TR, its caption (``""`` for none or rest)."""
        col = self.timeline.table["caption"].to_numpy()
        return [str(col[i]) for i in tr_indices]

    def _frames_hash(self) -> str:
        return "noframes"

    def content_hash(self) -> str:
        """Hash of the timeline and the content (cache key for extraction)."""
        h = hashlib.sha256()
        h.update(self.timeline.content_hash().encode())
        h.update(self._frames_hash().encode())
        h.update(f"{self.has_frames}{self.has_captions}{self.n_frames_per_tr}".encode())
        return h.hexdigest()[:16]


@dataclass
class ArrayStimulus(Stimulus):
    """A stimulus held in memory.

    Parameters
    ----------
    timeline : Timeline
    frames_array : ndarray of shape (n_timepoints, H, W, 3) or (n_timepoints, n_per_tr, H, W, 3), uint8, optional
        Frames per TR; ``None`` for a captions-only stimulus.
    use_captions : bool, default=True
        Whether the timeline's captions are part of the stimulus (``False`` for frames only).
    """

    timeline: Timeline
    frames_array: np.ndarray | None = None
    use_captions: bool = True
    _hash: str | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.frames_array is not None:
            arr = np.asarray(self.frames_array)
            if arr.ndim == 4:
                arr = arr[:, None]
            if arr.ndim != 5 or arr.shape[-1] != 3:
                raise DimensionError(
                    f"frames must be (n_timepoints, H, W, 3) or (n_timepoints, n_per_tr, H, W, 3), got {arr.shape}"
                )
            if arr.shape[0] != self.timeline.n_timepoints:
                raise DimensionError(
                    f"stimulus has {arr.shape[0]} frames but the timeline has {self.timeline.n_timepoints} TRs"
                )
            self.frames_array = arr.astype(np.uint8, copy=False)
        self.has_frames = self.frames_array is not None
        self.has_captions = bool(self.use_captions)
        self.n_frames_per_tr = 1 if self.frames_array is None else int(self.frames_array.shape[1])

    def frames(self, tr_indices):
        if self.frames_array is None:
            return super().frames(tr_indices)
        return [list(self.frames_array[i]) for i in tr_indices]

    def _frames_hash(self) -> str:
        if self.frames_array is None:
            return "noframes"
        if self._hash is None:
            self._hash = hashlib.sha256(np.ascontiguousarray(self.frames_array).tobytes()).hexdigest()[:16]
        return self._hash
