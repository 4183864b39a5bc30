"""Video frames at requested times, decoded with PyAV (any file FFmpeg reads).

Time convention
---------------
A time ``t`` (seconds) is measured from the video stream's first presentation timestamp
(``origin="stream"``, the default; HCP runs start with the movie) or in the container's raw
timestamps (``origin="absolute"``). The frame *at* ``t`` is the frame on screen at ``t``: the
last frame whose timestamp (``frame.time``, from the PTS, never ``index / fps``) is ``<= t``.
Times before the first frame give the first frame. Times after the last frame give the last
frame while they are within ``tolerance`` seconds of the stream's end (last timestamp plus
one frame duration); further out they raise :class:`InputFileError` (the video is shorter than
the timeline: a truncated file or the wrong movie).

Decoding streams: frames are decoded in order, only the requested ones are converted to RGB,
and the decoder position is kept between calls, so successive batches of a 15-min run cost one
pass. A request more than ``seek_threshold`` seconds ahead, or behind the current position,
seeks to the preceding keyframe.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np

from vlmbrain.errors import ConfigError, InputFileError
from vlmbrain.stimulus.timeline import Stimulus, Timeline

logger = logging.getLogger("vlmbrain")

__all__ = ["VideoReader", "VideoStimulus", "frame_times", "probe_video"]


def _open(path):
    import av

    if not os.path.exists(path):
        raise InputFileError(f"{path}: file not found")
    try:
        container = av.open(str(path))
    except Exception as err:
        raise InputFileError(f"{path}: not a readable video ({type(err).__name__}: {err})") from err
    if not container.streams.video:
        container.close()
        raise InputFileError(f"{path}: has no video stream")
    return container


def probe_video(path) -> dict:
    """Header facts of a video file: size, frame rate, duration (s), frame count (if known), codec."""
    container = _open(path)
    try:
        st = container.streams.video[0]
        tb = float(st.time_base) if st.time_base else None
        duration = None
        if st.duration is not None and tb:
            duration = float(st.duration * tb)
        elif container.duration is not None:
            duration = container.duration / 1e6
        start = float(st.start_time * tb) if (st.start_time is not None and tb) else 0.0
        return {
            "width": int(st.codec_context.width),
            "height": int(st.codec_context.height),
            "fps": float(st.average_rate) if st.average_rate else None,
            "duration": duration,
            "start_time": start,
            "n_frames": int(st.frames) if st.frames else None,
            "codec": st.codec_context.name,
        }
    finally:
        container.close()


class VideoReader:
    """Stream frames at requested times out of one video file.

    Parameters
    ----------
    path : str or Path
    size : (width, height), optional
        Resize decoded frames (saves memory); default the native size.
    origin : {"stream", "absolute"}, default="stream"
        Where ``t = 0`` is (see the module docstring).
    tolerance : float, default=1.0
        Seconds past the end of the video still answered with the last frame.
    seek_threshold : float, default=10.0
        Seek instead of decoding through gaps longer than this (s).
    """

    def __init__(self, path, size=None, origin="stream", tolerance=1.0, seek_threshold=10.0):
        if origin not in ("stream", "absolute"):
            raise ConfigError(f"origin must be 'stream' or 'absolute', got {origin!r}")
        self.path = str(path)
        self.size = tuple(size) if size is not None else None
        self.origin = origin
        self.tolerance = float(tolerance)
        self.seek_threshold = float(seek_threshold)
        self.info = probe_video(self.path)  # validates the file
        self._container = None
        self._iter = None
        self._prev = None  # last decoded frame (av.VideoFrame) and its time
        self._prev_t = -np.inf
        self._next = None  # frame decoded but not yet consumed
        self._last_frame_dt = None
        self._eof = False

    # ------------------------------------------------------------ decoder state
    def _start(self):
        self.close()
        self._container = _open(self.path)
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._stream = stream
        tb = float(stream.time_base)
        self._t0 = float(stream.start_time * tb) if (self.origin == "stream" and stream.start_time is not None) else 0.0
        self._iter = self._container.decode(stream)
        self._prev, self._prev_t, self._next, self._eof = None, -np.inf, None, False

    def close(self):
        if self._container is not None:
            self._container.close()
        self._container = self._iter = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_container=None, _iter=None, _prev=None, _prev_t=-np.inf, _next=None, _eof=False)
        state.pop("_stream", None)
        return state

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def _pull(self):
        """Next decoded frame and its time (relative to origin), or None at the end."""
        if self._next is not None:
            out, self._next = self._next, None
            return out
        if self._eof:
            return None
        try:
            frame = next(self._iter)
        except StopIteration:
            self._eof = True
            return None
        except Exception as err:  # corrupt packet
            raise InputFileError(
                f"{self.path}: decoding failed after {max(self._prev_t, 0):.2f} s ({type(err).__name__}: {err}); "
                "the file may be truncated or corrupt"
            ) from err
        if frame.time is None:
            raise InputFileError(f"{self.path}: a frame has no timestamp; remux the file (ffmpeg -i in -c copy out.mp4)")
        return frame, float(frame.time) - self._t0

    def _seek(self, t):
        stream = self._stream
        target = int((t + self._t0) / float(stream.time_base))
        self._container.seek(max(target, 0), stream=stream, backward=True, any_frame=False)
        self._iter = self._container.decode(stream)
        self._prev, self._prev_t, self._next, self._eof = None, -np.inf, None, False
        first = self._pull()
        if first is not None and first[1] > t:  # landed after t: decode from the start instead
            self._start()
        else:
            self._next = first

    def _to_array(self, frame):
        if self.size is not None:
            frame = frame.reformat(width=self.size[0], height=self.size[1])
        return frame.to_ndarray(format="rgb24")

    def _frame_at(self, t):
        """The frame on screen at time t (s from origin); advances the decoder."""
        if self._container is None or t < self._prev_t:
            self._start()
            if t > self.seek_threshold:
                self._seek(t)
        elif self._prev is not None and t - self._prev_t > self.seek_threshold:
            self._seek(t)
        while True:
            item = self._pull()
            if item is None:
                break
            frame, ft = item
            if ft > t and self._prev is not None:
                self._next = item
                break
            if self._prev is not None:
                self._last_frame_dt = ft - self._prev_t
            self._prev, self._prev_t = frame, ft
            if ft > t:  # t before the first frame: the first frame is shown
                break
        if self._prev is None:
            raise InputFileError(f"{self.path}: no frame could be decoded (empty or corrupt video)")
        if item is None:  # past the last frame
            end = self._prev_t + (self._last_frame_dt or 0.0)
            if t > end + self.tolerance:
                raise InputFileError(
                    f"{self.path}: video ends at {end:.2f} s but a frame at {t:.2f} s was requested; the file may be "
                    "truncated or not the movie of this run (or raise tolerance)"
                )
        return self._prev

    def frames_at(self, times: Sequence[float]) -> list[np.ndarray]:
        """RGB frames (H, W, 3) uint8 at the given times (s), in the order given.

        Times are visited in sorted order, so any order works; memory holds only the
        requested frames.
        """
        times = np.asarray(times, dtype=np.float64)
        if times.size and not np.all(np.isfinite(times)):
            raise ConfigError(f"frame times must be finite, got {times[~np.isfinite(times)][:3]}")
        out = [None] * times.size
        cache_id, cache_arr = None, None
        for i in np.argsort(times, kind="stable"):
            frame = self._frame_at(float(times[i]))
            if frame is not cache_id:
                cache_id, cache_arr = frame, self._to_array(frame)
            out[i] = cache_arr
        return out

    def timestamps(self) -> np.ndarray:
        """Every frame's time (s from origin) by demuxing packets (no decoding)."""
        container = _open(self.path)
        try:
            st = container.streams.video[0]
            tb = float(st.time_base)
            t0 = float(st.start_time * tb) if (self.origin == "stream" and st.start_time is not None) else 0.0
            pts = [p.pts for p in container.demux(st) if p.pts is not None]
        finally:
            container.close()
        return np.sort(np.asarray(pts, dtype=np.float64) * tb - t0)


def frame_times(onsets, tr: float, n_frames_per_tr: int = 1, frame_time=None) -> np.ndarray:
    """Sampling times of ``n_frames_per_tr`` frames in each TR.

    Parameters
    ----------
    onsets : ndarray of shape (n_trs,)
        TR onsets (s) in the run's video time.
    tr : float
    n_frames_per_tr : int, default=1
        The TR is split into n equal bins and each bin's midpoint sampled:
        ``onset + (j + 0.5) / n * tr``. With n=1 and ``frame_time`` given, ``frame_time`` is used.
    frame_time : ndarray of shape (n_trs,), optional
        The timeline's ``frame_time`` column (used when n=1).

    Returns
    -------
    ndarray of shape (n_trs, n_frames_per_tr)
    """
    n = int(n_frames_per_tr)
    if n < 1:
        raise ConfigError(f"n_frames_per_tr must be >= 1, got {n_frames_per_tr}")
    onsets = np.asarray(onsets, dtype=np.float64)
    if n == 1 and frame_time is not None:
        return np.asarray(frame_time, dtype=np.float64)[:, None]
    return onsets[:, None] + (np.arange(n) + 0.5)[None, :] / n * float(tr)


class VideoStimulus(Stimulus):
    """Frames (and the timeline's captions) of a movie given as one video or frame folder per run.

    Parameters
    ----------
    timeline : Timeline
    sources : mapping of run name -> path, or sequence of paths in run order
        Video files (anything PyAV reads) or folders of frames (see
        :class:`vlmbrain.stimulus.frames.FrameFolder`).
    n_frames_per_tr : int, default=1
        Frames per TR, spread within the TR (:func:`frame_times`); the caller averages readouts.
    rest_frames : {"blank", "video"}, default="blank"
        Rest TRs get a black frame (docs/method.md §1.4) or the video's frame.
    size : (width, height), optional
        Resize frames when decoding.
    use_captions : bool, default=True
    tolerance : float, default=1.0
        See :class:`VideoReader`.
    """

    def __init__(self, timeline: Timeline, sources, n_frames_per_tr=1, rest_frames="blank", size=None,
                 use_captions=True, tolerance=1.0, frame_naming="index"):
        if rest_frames not in ("blank", "video"):
            raise ConfigError(f"rest_frames must be 'blank' or 'video', got {rest_frames!r}")
        self.timeline = timeline
        names = timeline.run_names
        if not isinstance(sources, Mapping):
            sources = list(sources)
            if len(sources) != len(names):
                raise ConfigError(f"{len(sources)} video sources for {len(names)} runs ({names})")
            sources = dict(zip(names, sources, strict=True))
        missing = [r for r in names if r not in sources]
        if missing:
            raise ConfigError(f"no video given for run(s) {missing}; sources has {sorted(sources)}")
        self.sources = {r: str(sources[r]) for r in names}
        self.n_frames_per_tr = int(n_frames_per_tr)
        self.rest_frames = rest_frames
        self.size = size
        self.tolerance = tolerance
        self.frame_naming = frame_naming
        self.has_frames = True
        self.has_captions = bool(use_captions)
        self._readers = {}
        self._hash = None

    def _reader(self, run):
        if run not in self._readers:
            src = self.sources[run]
            if os.path.isdir(src):
                from vlmbrain.stimulus.frames import FrameFolder

                self._readers[run] = FrameFolder(src, naming=self.frame_naming, size=self.size,
                                                 tr=self.timeline.tr)
            else:
                self._readers[run] = VideoReader(src, size=self.size, tolerance=self.tolerance)
        return self._readers[run]

    def frames(self, tr_indices):
        table = self.timeline.table
        idx = np.asarray(tr_indices, dtype=int)
        rows = table.iloc[idx]
        times = frame_times(rows["onset"].to_numpy(), self.timeline.tr, self.n_frames_per_tr,
                            rows["frame_time"].to_numpy())
        out = [None] * len(idx)
        rest = rows["rest"].to_numpy(bool)
        for run in dict.fromkeys(rows["run"].tolist()):
            sel = np.flatnonzero((rows["run"].to_numpy() == run) & ~(rest & (self.rest_frames == "blank")))
            if sel.size:
                reader = self._reader(run)
                if isinstance(reader, VideoReader):
                    flat = reader.frames_at(times[sel].ravel())
                    imgs = [flat[k * self.n_frames_per_tr:(k + 1) * self.n_frames_per_tr] for k in range(sel.size)]
                else:
                    imgs = reader.frames_for_trs(rows["run_tr"].to_numpy()[sel], times[sel])
                for k, j in enumerate(sel):
                    out[j] = list(imgs[k])
        blank = None
        for j in np.flatnonzero([o is None for o in out]):
            if blank is None:
                blank = np.zeros(self._frame_shape(rows["run"].iloc[j]), np.uint8)
            out[j] = [blank] * self.n_frames_per_tr
        return out

    def _frame_shape(self, run):
        if self.size is not None:
            return (self.size[1], self.size[0], 3)
        reader = self._reader(run)
        if isinstance(reader, VideoReader):
            return (reader.info["height"], reader.info["width"], 3)
        return reader.frame_shape

    def _frames_hash(self) -> str:
        if self._hash is None:
            h = hashlib.sha256()
            for run, src in self.sources.items():
                st = os.stat(src)
                h.update(f"{run}|{os.path.basename(src)}|{st.st_size}|{self.rest_frames}|{self.size}".encode())
                if os.path.isfile(src):
                    with open(src, "rb") as fh:  # head and tail: cheap, catches re-encodes
                        h.update(fh.read(1 << 16))
                        fh.seek(max(st.st_size - (1 << 16), 0))
                        h.update(fh.read())
            self._hash = h.hexdigest()[:16]
        return self._hash

    def __getstate__(self):  # open decoders do not pickle (process pools, Dask): reopen lazily
        state = self.__dict__.copy()
        state["_readers"] = {}
        return state

    def close(self):
        for r in self._readers.values():
            if hasattr(r, "close"):
                r.close()
        self._readers = {}
