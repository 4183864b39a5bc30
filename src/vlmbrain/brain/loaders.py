"""fMRI loaders: CIFTI-2 dense time series, NIfTI 4-D volumes with a mask, ``.npy`` arrays.

Every loader returns a ``(n_timepoints, n_grayordinates)`` float32 array plus the
:class:`~vlmbrain.brain.space.BrainSpace` it lives in; :func:`load_runs` stacks runs, checks
them against the stimulus and the configured TR, z-scores every run and marks NaN / constant
grayordinates invalid.

Supported files
---------------
- CIFTI-2 ``*.dtseries.nii`` (HCP ``*_Atlas_MSMAll_hp2000_clean.dtseries.nii``, 91,282 or
  170,494 grayordinates; fMRIPrep ``*_space-fsLR_den-91k_bold.dtseries.nii``): the brain-model
  axis is kept (:meth:`BrainSpace.from_cifti`), the TR is the step of the series axis.
- NIfTI-1/2 4-D ``*.nii`` / ``*.nii.gz`` with a 3-D mask, via nilearn's ``NiftiMasker``
  (no smoothing, no standardisation, no filtering); the TR is ``pixdim[4]``.
- ``*.npy`` arrays of shape (n_timepoints, n_grayordinates), one file per run (or one file for
  all runs with ``run_lengths``); no TR in the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from vlmbrain.brain.space import BrainData, BrainSpace
from vlmbrain.errors import ConfigError, DimensionError, InputFileError

logger = logging.getLogger("vlmbrain")

__all__ = ["RunData", "detect_kind", "load_cifti", "load_nifti", "load_npy", "load_run", "load_runs"]

#: Relative tolerance when comparing a file's TR with the configured TR.
TR_RTOL = 1e-3


@dataclass
class RunData:
    """One run as loaded: ``data (n_timepoints, n_grayordinates)`` float32, its space, its TR."""

    data: np.ndarray
    space: BrainSpace
    tr: float | None
    source: str


def detect_kind(path) -> str:
    """``"cifti"``, ``"nifti"`` or ``"npy"`` from the file name."""
    name = os.path.basename(str(path)).lower()
    if name.endswith((".dtseries.nii", ".dscalar.nii", ".ptseries.nii", ".dlabel.nii")):
        return "cifti"
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    if name.endswith(".npy"):
        return "npy"
    raise InputFileError(
        f"{path}: unsupported fMRI file type; expected .dtseries.nii (CIFTI-2), .nii/.nii.gz (NIfTI, with a mask) or .npy"
    )


def _exists(path) -> None:
    if not os.path.exists(path):
        raise InputFileError(f"{path}: file not found")
    if os.path.isdir(path):
        raise InputFileError(f"{path}: is a folder, expected an fMRI file")


def check_proxy_size(img, path) -> None:
    """Raise :class:`InputFileError` when an uncompressed image file is shorter than its header says."""
    proxy = getattr(img, "dataobj", None)
    offset = getattr(proxy, "offset", None)
    if offset is None or str(path).endswith(".gz"):
        return
    need = int(offset) + int(np.prod(proxy.shape)) * np.dtype(proxy.dtype).itemsize
    have = os.path.getsize(path)
    if have < need:
        raise InputFileError(
            f"{path}: file is truncated ({have} bytes, header needs {need} for shape {tuple(proxy.shape)}); "
            "copy or download it again"
        )


def open_cifti(path):
    """nibabel-load a CIFTI-2 file with clear errors (no data read yet)."""
    _exists(path)
    try:
        img = nib.load(str(path))
    except Exception as err:
        raise InputFileError(f"{path}: not a readable CIFTI-2 file ({type(err).__name__}: {err})") from err
    if not isinstance(img, nib.Cifti2Image):
        raise InputFileError(f"{path}: not a CIFTI-2 file (nibabel reads it as {type(img).__name__})")
    check_proxy_size(img, path)
    return img


def load_cifti(path, n_grayordinates: int | None = None) -> RunData:
    """Load a CIFTI-2 dense time series.

    Parameters
    ----------
    path : str or Path
        ``*.dtseries.nii``.
    n_grayordinates : int, optional
        Expected number of grayordinates (e.g. 91282 or 170494); a different count raises
        :class:`DimensionError`.

    Returns
    -------
    RunData
        ``data`` (n_timepoints, n_grayordinates) float32, ``space`` from the file's brain-model
        axis, ``tr`` the series-axis step in seconds (``None`` if the file has no series axis).
    """
    img = open_cifti(path)
    from nibabel.cifti2 import cifti2_axes

    try:
        ax0 = img.header.get_axis(0)
    except Exception as err:
        raise InputFileError(f"{path}: cannot read the CIFTI time axis ({err})") from err
    space = BrainSpace.from_cifti(img)
    if len(img.shape) != 2:
        raise InputFileError(f"{path}: expected a 2-D dense CIFTI (time x grayordinates), got shape {img.shape}")
    if n_grayordinates is not None and space.n_grayordinates != int(n_grayordinates):
        raise DimensionError(
            f"{path}: has {space.n_grayordinates} grayordinates but {int(n_grayordinates)} were expected "
            "(91282 = HCP 2 mm 91k, 170494 = 1.6 mm 170k); check the file or the configured space"
        )
    tr = None
    if isinstance(ax0, cifti2_axes.SeriesAxis):
        tr = float(ax0.step)
        unit = str(ax0.unit).upper()
        if unit != "SECOND":
            raise InputFileError(f"{path}: the series axis unit is {unit}, expected SECOND (a time series)")
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as err:
        raise InputFileError(f"{path}: cannot read the data ({type(err).__name__}: {err}); the file may be truncated") from err
    return RunData(data, space, tr, str(path))


def load_nifti(path, mask=None) -> RunData:
    """Load a 4-D NIfTI run inside a mask with nilearn's ``NiftiMasker`` (no preprocessing).

    Parameters
    ----------
    path : str or Path
        4-D ``.nii`` / ``.nii.gz``.
    mask : str, Path, nibabel image or BrainSpace, optional
        3-D mask; ``None`` lets nilearn compute a background mask from this run (logged; give
        the same mask for every run).
    """
    from nilearn.maskers import NiftiMasker

    _exists(path)
    try:
        img = nib.load(str(path))
    except Exception as err:
        raise InputFileError(f"{path}: not a readable NIfTI file ({type(err).__name__}: {err})") from err
    if isinstance(img, nib.Cifti2Image) or not hasattr(img, "affine") or len(img.shape) != 4:
        raise InputFileError(f"{path}: expected a 4-D NIfTI volume series, got shape {getattr(img, 'shape', None)}")
    check_proxy_size(img, path)
    zooms = img.header.get_zooms()
    tr = float(zooms[3]) if len(zooms) > 3 and zooms[3] > 0 else None
    if tr is not None:
        units = img.header.get_xyzt_units()[1] if hasattr(img.header, "get_xyzt_units") else "sec"
        if units == "msec":
            tr /= 1000.0
        elif units == "usec":
            tr /= 1e6
    if isinstance(mask, BrainSpace):
        mask = mask.mask_img
    if mask is None:
        logger.info("%s: no mask given; nilearn computes a background mask from this run", path)
    try:
        masker = NiftiMasker(mask_img=mask, standardize=None, detrend=False)
        masker.fit(img if mask is None else None)
        data = masker.transform(img).astype(np.float32)
    except (OSError, EOFError, ValueError) as err:
        raise InputFileError(f"{path}: cannot read the volumes ({type(err).__name__}: {err})") from err
    space = BrainSpace.from_mask(masker.mask_img_)
    return RunData(data, space, tr, str(path))


def load_npy(path, mmap: bool = False) -> RunData:
    """Load a ``(n_timepoints, n_grayordinates)`` ``.npy`` array (no TR, ``kind="array"`` space)."""
    _exists(path)
    try:
        arr = np.load(str(path), mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as err:
        raise InputFileError(f"{path}: not a readable .npy array ({type(err).__name__}: {err})") from err
    if arr.ndim != 2:
        raise DimensionError(f"{path}: expected a 2-D array (n_timepoints, n_grayordinates), got shape {arr.shape}")
    data = arr if mmap else np.asarray(arr, dtype=np.float32)
    return RunData(data, BrainSpace.array(arr.shape[1]), None, str(path))


def load_run(path, mask=None, n_grayordinates: int | None = None) -> RunData:
    """Load one run of any supported kind (see the module docstring)."""
    kind = detect_kind(path)
    if kind == "cifti":
        return load_cifti(path, n_grayordinates=n_grayordinates)
    if kind == "nifti":
        run = load_nifti(path, mask=mask)
    else:
        run = load_npy(path)
    if n_grayordinates is not None and run.data.shape[1] != int(n_grayordinates):
        raise DimensionError(f"{path}: has {run.data.shape[1]} columns but {int(n_grayordinates)} were expected")
    return run


def check_run(path, file_tr, n_trs, tr, expected=None, index=0, name=None) -> None:
    """Check a run's header TR against the configured TR and its length against the stimulus.

    Raises :class:`ConfigError` (TR) or :class:`DimensionError` (TR count), naming both values.
    """
    if file_tr is not None and not np.isclose(file_tr, float(tr), rtol=TR_RTOL, atol=0):
        raise ConfigError(
            f"{path}: the file's TR is {file_tr:g} s but the configured TR is {float(tr):g} s; "
            "set tr to the acquisition TR or check the file"
        )
    if expected is not None and int(n_trs) != int(expected):
        raise DimensionError(
            f"stimulus run {index + 1} has {int(expected)} TRs but fMRI run {name or os.path.basename(str(path))} "
            f"({path}) has {int(n_trs)} TRs; check the run order or trim the data"
        )


def _split_lengths(paths, run_lengths):
    """Expand one file holding all runs into per-run slices."""
    if run_lengths is None:
        return [(p, None) for p in paths]
    if len(paths) != 1:
        raise ConfigError("run_lengths splits a single file into runs; give exactly one path with it")
    starts = np.r_[0, np.cumsum(run_lengths)]
    return [(paths[0], slice(int(a), int(b))) for a, b in zip(starts[:-1], starts[1:], strict=True)]


def load_runs(
    paths: Sequence,
    tr: float,
    expected_trs: Sequence[int] | None = None,
    *,
    run_names: Sequence[str] | None = None,
    mask=None,
    n_grayordinates: int | None = None,
    run_lengths: Sequence[int] | None = None,
    zscore: bool = True,
    hrf_shifted: bool = False,
    space: BrainSpace | None = None,
    chunk_size: int = 8192,
) -> BrainData:
    """Load, check, z-score and concatenate the runs of one subject.

    Parameters
    ----------
    paths : sequence of str or Path
        One file per run, in stimulus order (or one file with ``run_lengths``).
    tr : float
        Configured repetition time (s). A file whose header states another TR raises
        :class:`ConfigError` naming both.
    expected_trs : sequence of int, optional
        TRs per run in the stimulus timeline; a run of another length raises
        :class:`DimensionError` naming the run and both numbers.
    run_names : sequence of str, optional
        Default: the file names.
    mask : optional
        3-D mask for NIfTI runs (see :func:`load_nifti`).
    n_grayordinates : int, optional
        Expected grayordinate count.
    run_lengths : sequence of int, optional
        Split a single ``.npy`` holding all runs.
    zscore : bool, default=True
        Z-score every grayordinate within every run (population SD).
    hrf_shifted : bool, default=False
        The data were already shifted for the hemodynamic lag; stored in ``meta`` for the
        pipeline (which then does not convolve the model time courses).
    space : BrainSpace, optional
        Space of ``.npy`` runs (e.g. ``BrainSpace.hcp91k()`` for 91,282-column arrays); checked
        against the column count.
    chunk_size : int, default=8192
        Grayordinates z-scored at once. Memory knob: peak memory is the output plus one raw run
        plus about ``16 * n_timepoints_run * chunk_size`` bytes.

    Returns
    -------
    BrainData
        ``data`` (n_timepoints, n_grayordinates) float32; NaN or constant (in any run)
        grayordinates are ``valid=False`` and hold 0 (write maps with NaN there).
    """
    from vlmbrain.signal import zscore_runs

    paths = [str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not paths:
        raise ConfigError("no fMRI runs given (paths is empty)")
    items = _split_lengths(paths, run_lengths)
    if run_names is None:
        run_names = [os.path.basename(p) for p, _ in items] if run_lengths is None else [f"run-{i + 1}" for i in range(len(items))]
    run_names = [str(r) for r in run_names]
    if len(run_names) != len(items):
        raise DimensionError(f"{len(run_names)} run names for {len(items)} runs")
    if expected_trs is not None and len(expected_trs) != len(items):
        raise DimensionError(f"the stimulus has {len(expected_trs)} runs but {len(items)} fMRI runs were given")

    # 1) open every run (headers only) and check TRs, lengths and spaces before reading any data
    opened, spaces, lengths = {}, [], []
    for i, (p, sl) in enumerate(items):
        run = opened.get(p) or open_run(p, mask=mask, n_grayordinates=n_grayordinates)
        opened[p] = run
        n_rows = run.shape[0]
        if sl is not None:
            if sl.stop > n_rows:
                raise DimensionError(f"{p}: run_lengths sum to {sl.stop} TRs but the file has {n_rows}")
            n_rows = sl.stop - sl.start
        check_run(p, run.tr, n_rows, tr, None if expected_trs is None else expected_trs[i], i, run_names[i])
        rspace = run.space
        if rspace.kind == "array" and space is not None:
            if space.n_grayordinates != run.shape[1]:
                raise DimensionError(f"{p}: has {run.shape[1]} columns but the given space has {space.n_grayordinates}")
            rspace = space
        if spaces and rspace != spaces[0]:
            hint = ("; without a mask every NIfTI run gets its own background mask: give fmri.mask (one 3-D mask for "
                    "all runs)" if mask is None and detect_kind(p) == "nifti" else "")
            raise DimensionError(
                f"{p}: its brain space ({rspace.n_grayordinates} grayordinates, {rspace.kind}) differs from "
                f"run {run_names[0]}'s ({spaces[0].n_grayordinates}, {spaces[0].kind}); all runs must share one space"
                f"{hint}"
            )
        spaces.append(rspace)
        lengths.append(n_rows)

    # 2) read one run at a time into the preallocated output, z-scoring in column chunks
    n_v = spaces[0].n_grayordinates
    data = np.empty((sum(lengths), n_v), np.float32)
    valid = np.ones(n_v, bool)
    n_nan = n_const = 0
    starts = np.r_[0, np.cumsum(lengths)]
    for i, (p, sl) in enumerate(items):
        run = opened[p]
        raw = run.rows(sl)
        out = data[starts[i]:starts[i + 1]]
        n_usable = 0
        for a in range(0, n_v, int(chunk_size)):
            b = min(a + int(chunk_size), n_v)
            block = raw[:, a:b]
            finite = np.all(np.isfinite(block), axis=0)
            if zscore:
                z, ok = zscore_runs(block, np.zeros(block.shape[0], int))
            else:
                z = np.array(block, dtype=np.float32)
                sd = np.std(np.where(np.isfinite(z), z, 0), axis=0) if z.shape[0] else np.zeros(z.shape[1])
                ok = finite & (sd > 0)
                z[:, ~ok] = 0.0
            out[:, a:b] = z
            n_nan += int((~finite).sum())
            n_const += int((finite & ~ok).sum())
            valid[a:b] &= ok
            n_usable += int(ok.sum())
        del raw
        if n_usable == 0:
            raise DimensionError(
                f"fMRI run {run_names[i]} ({p}) is NaN or constant in every one of its {n_v} columns: there is nothing "
                "to fit; check the file (an empty mask, a failed preprocessing step)")
    data[:, ~valid] = 0.0
    runs = np.repeat(np.arange(len(lengths)), lengths)
    n_bad = int((~valid).sum())
    if n_bad == n_v:
        raise DimensionError(
            f"no grayordinate is usable in every run: each of the {n_v} columns is NaN or constant in some run of "
            f"{', '.join(run_names)}; there is nothing to fit")
    if n_bad:
        logger.warning(
            "%d of %d grayordinates are NaN (%d run-columns) or constant (%d run-columns) in some run; "
            "they are marked invalid, left out of fits and written out as NaN",
            n_bad, valid.size, n_nan, n_const,
        )
    logger.info("loaded %d runs: data (n_timepoints, n_grayordinates) = %s", len(lengths), data.shape)
    meta = {"sources": paths, "hrf_shifted": bool(hrf_shifted), "zscored": bool(zscore), "n_invalid": n_bad}
    return BrainData(data, runs, run_names, spaces[0], float(tr), valid, meta)


@dataclass
class LazyRun:
    """A run opened without reading its data: ``proxy[:, a:b]`` reads columns a..b.

    ``proxy`` is a memory map (``.npy``), a nibabel array proxy (CIFTI) or, for NIfTI runs (which
    need the masker), the loaded array.
    """

    proxy: object
    shape: tuple
    space: BrainSpace
    tr: float | None
    source: str

    def rows(self, sl: slice | None = None) -> np.ndarray:
        """All columns of rows ``sl`` (default all) as float32, shape (n_rows, n_grayordinates)."""
        try:
            block = self.proxy if sl is None else self.proxy[sl]
            return np.asarray(block, dtype=np.float32)
        except Exception as err:
            raise InputFileError(
                f"{self.source}: cannot read the data ({type(err).__name__}: {err}); the file may be truncated"
            ) from err

    def columns(self, a: int, b: int) -> np.ndarray:
        """Columns ``a:b`` of the run as float32, shape (n_timepoints, b - a)."""
        try:
            return np.asarray(self.proxy[:, a:b], dtype=np.float32)
        except Exception as err:
            raise InputFileError(f"{self.source}: cannot read the data ({type(err).__name__}: {err})") from err


def open_run(path, mask=None, n_grayordinates: int | None = None) -> LazyRun:
    """Open one run for chunked reading (see :class:`LazyRun`); headers are checked now."""
    kind = detect_kind(path)
    if kind == "cifti":
        img = open_cifti(path)
        from nibabel.cifti2 import cifti2_axes

        ax0 = img.header.get_axis(0)
        tr = float(ax0.step) if isinstance(ax0, cifti2_axes.SeriesAxis) else None
        space = BrainSpace.from_cifti(img)
        if len(img.shape) != 2:
            raise InputFileError(f"{path}: expected a 2-D dense CIFTI (time x grayordinates), got shape {img.shape}")
        run = LazyRun(img.dataobj, tuple(img.shape), space, tr, str(path))
    elif kind == "npy":
        r = load_npy(path, mmap=True)
        run = LazyRun(r.data, tuple(r.data.shape), r.space, None, str(path))
    else:
        r = load_nifti(path, mask=mask)
        run = LazyRun(r.data, tuple(r.data.shape), r.space, r.tr, str(path))
    if n_grayordinates is not None and run.shape[1] != int(n_grayordinates):
        raise DimensionError(f"{path}: has {run.shape[1]} grayordinates but {int(n_grayordinates)} were expected")
    return run
