"""A folder of still images as the frames of a run (alternative to a video file).

Two naming schemes:

- ``naming="index"``: one image per TR. Files are ordered by the (last) integer in their names
  (``frame_0001.png``, ``tr12.jpg`` ...); the k-th file is TR k of the run. The number of files
  must equal the run's TR count (checked when a TR beyond the end is asked for).
- ``naming="time"``: the (last) number in each name is a time in seconds (``t_12.5.png``,
  ``0012.000.jpg``); the frame at time t is the image with the largest time ``<= t`` (as for
  video frames), the first image before it.

Images are read with Pillow and converted to RGB uint8.
"""

from __future__ import annotations

import os
import re

import numpy as np

from vlmbrain.errors import ConfigError, InputFileError

__all__ = ["FrameFolder", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_NUMBER = re.compile(r"(\d+(?:\.\d+)?)")


class FrameFolder:
    """Frames of one run from a folder of images.

    Parameters
    ----------
    path : str or Path
        The folder.
    naming : {"index", "time"}, default="index"
    size : (width, height), optional
        Resize images.
    tr : float, optional
        Only used in messages.
    """

    def __init__(self, path, naming="index", size=None, tr=None):
        if naming not in ("index", "time"):
            raise ConfigError(f"frame folder naming must be 'index' or 'time', got {naming!r}")
        self.path = str(path)
        self.naming = naming
        self.size = tuple(size) if size is not None else None
        if not os.path.isdir(self.path):
            raise InputFileError(f"{self.path}: not a folder of frames")
        files = [f for f in os.listdir(self.path) if f.lower().endswith(IMAGE_EXTENSIONS)]
        if not files:
            raise InputFileError(f"{self.path}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in the folder")
        keyed = []
        for f in files:
            nums = _NUMBER.findall(os.path.splitext(f)[0])
            if not nums:
                raise InputFileError(f"{os.path.join(self.path, f)}: no number in the file name; name frames by TR index or time")
            keyed.append((float(nums[-1]), f))
        keyed.sort()
        keys = np.array([k for k, _ in keyed])
        if len(np.unique(keys)) != len(keys):
            dup = keys[np.flatnonzero(np.diff(keys) == 0)[0]]
            raise InputFileError(f"{self.path}: two frames share the number {dup:g} in their names")
        self.keys = keys
        self.files = [os.path.join(self.path, f) for _, f in keyed]
        self._shape = None

    def __len__(self):
        return len(self.files)

    def _load(self, file) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(file) as im:
                im = im.convert("RGB")
                if self.size is not None:
                    im = im.resize(self.size)
                return np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as err:
            raise InputFileError(f"{file}: not a readable image ({err})") from err

    @property
    def frame_shape(self):
        if self._shape is None:
            self._shape = self._load(self.files[0]).shape
        return self._shape

    def frame_for_tr(self, k: int) -> np.ndarray:
        """Image of TR ``k`` (index naming)."""
        if self.naming != "index":
            raise ConfigError(f"{self.path}: frames are named by time; ask for times, not TR indices")
        if not 0 <= int(k) < len(self.files):
            raise InputFileError(
                f"{self.path}: has {len(self.files)} frames (one per TR) but TR {int(k)} was requested; "
                "the folder needs one image per TR of the run"
            )
        return self._load(self.files[int(k)])

    def frames_at(self, times) -> list[np.ndarray]:
        """Images on screen at the given times (s) (time naming)."""
        if self.naming != "time":
            raise ConfigError(f"{self.path}: frames are named by TR index; use naming='time' for timed frames")
        times = np.asarray(times, dtype=np.float64)
        pos = np.clip(np.searchsorted(self.keys, times, side="right") - 1, 0, len(self.keys) - 1)
        cache = {}
        return [cache.setdefault(int(p), self._load(self.files[int(p)])) if int(p) not in cache else cache[int(p)]
                for p in pos]

    def frames_for_trs(self, run_trs, times) -> list[list[np.ndarray]]:
        """Per TR a list of images: index naming → that TR's image (one per TR only);
        time naming → images at ``times`` (n_trs, n_frames_per_tr)."""
        times = np.asarray(times, dtype=np.float64)
        if times.ndim == 1:
            times = times[:, None]
        if self.naming == "index":
            if times.shape[1] != 1:
                raise ConfigError(
                    f"{self.path}: a folder with one image per TR gives 1 frame per TR, not {times.shape[1]}; "
                    "set n_frames_per_tr=1 or name frames by time"
                )
            return [[self.frame_for_tr(k)] for k in run_trs]
        flat = self.frames_at(times.ravel())
        n = times.shape[1]
        return [flat[i * n:(i + 1) * n] for i in range(times.shape[0])]
