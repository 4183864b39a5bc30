"""Describe an input file before a run: what it is, how long, how big, and whether it is broken.

:func:`inspect_path` returns a dict of facts; :func:`describe` one line of text (the
``vlmbrain inspect`` command). A broken or unsupported file raises
:class:`~vlmbrain.errors.InputFileError` whose message is one line saying what is wrong.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

from vlmbrain.errors import InputFileError, VlmbrainError

__all__ = ["describe", "fmri_header", "inspect_path"]

VIDEO_EXT = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".ts", ".mpg", ".mpeg")
_SPACES = {91282: "HCP 91k, 2 mm", 170494: "HCP 170k, 1.6 mm"}
_CIFTI_KINDS = {
    ".dtseries.nii": "dtseries", ".dscalar.nii": "dscalar", ".dlabel.nii": "dlabel",
    ".ptseries.nii": "ptseries", ".pscalar.nii": "pscalar", ".dconn.nii": "dconn",
}


def _cifti(path) -> dict:
    from nibabel.cifti2 import cifti2_axes

    from vlmbrain.brain.loaders import open_cifti

    img = open_cifti(path)  # checks it is CIFTI-2 and not truncated
    name = os.path.basename(path).lower()
    sub = next((v for k, v in _CIFTI_KINDS.items() if name.endswith(k)), "cifti")
    info = {"kind": f"cifti-{sub}", "shape": tuple(int(s) for s in img.shape)}
    try:
        axes = [img.header.get_axis(i) for i in range(len(img.shape))]
    except Exception as err:
        raise InputFileError(f"{path}: CIFTI header cannot be read ({type(err).__name__}: {err})") from err
    for ax in axes:
        if isinstance(ax, cifti2_axes.SeriesAxis):
            info["n_trs"] = int(ax.size)
            info["tr"] = float(ax.step)
            info["duration"] = float(ax.size * ax.step)
        elif isinstance(ax, cifti2_axes.BrainModelAxis):
            info["n_grayordinates"] = int(len(ax))
            info["n_vertices"] = int(ax.surface_mask.sum())
            info["n_voxels"] = int(ax.volume_mask.sum())
            info["structures"] = len(list(ax.iter_structures()))
            info["space"] = _SPACES.get(len(ax), "custom")
        elif isinstance(ax, (cifti2_axes.ScalarAxis, cifti2_axes.LabelAxis)):
            info["n_maps"] = int(len(ax))
        elif isinstance(ax, cifti2_axes.ParcelsAxis):
            info["n_parcels"] = int(len(ax))
    return info


def _nifti(path) -> dict:
    import nibabel as nib

    from vlmbrain.brain.loaders import check_proxy_size

    try:
        img = nib.load(path)
    except Exception as err:
        raise InputFileError(f"{path}: not a readable NIfTI file ({type(err).__name__}: {err})") from err
    if isinstance(img, nib.Cifti2Image):
        return _cifti(path)
    check_proxy_size(img, path)
    shape = tuple(int(s) for s in img.shape)
    if path.endswith(".gz"):  # compressed: the only way to find truncation is to read to the end
        try:
            np.asarray(img.dataobj[..., -1] if len(shape) == 4 else img.dataobj)
        except Exception as err:
            raise InputFileError(f"{path}: compressed data cannot be read to the end ({type(err).__name__}: {err}); "
                                 "the file is truncated or corrupt") from err
    info = {"kind": "nifti", "shape": shape, "voxel_size": tuple(float(z) for z in img.header.get_zooms()[:3])}
    if len(shape) == 4:
        tr = float(img.header.get_zooms()[3])
        unit = img.header.get_xyzt_units()[1]
        tr = tr / 1000.0 if unit == "msec" else tr
        info.update(n_trs=shape[3], tr=tr, duration=shape[3] * tr, n_voxels=int(np.prod(shape[:3])))
    else:
        info.update(n_voxels=int(np.prod(shape[:3])), n_nonzero=int(np.count_nonzero(np.asarray(img.dataobj))))
    return info


def _npy(path) -> dict:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:
        raise InputFileError(f"{path}: not a readable .npy array ({type(err).__name__}: {err}); "
                             "it may be truncated") from err
    check_npy_array(path, arr.shape, arr.dtype)
    info = {"kind": "npy", "shape": tuple(int(s) for s in arr.shape), "dtype": str(arr.dtype)}
    info.update(n_trs=int(arr.shape[0]), n_grayordinates=int(arr.shape[1]))
    return info


def check_npy_array(path, shape, dtype) -> None:
    """An fMRI ``.npy`` run is a 2-D numeric (n_timepoints, n_columns) array; say what else it is."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2:
        hint = (" (one volume per TR? vlmbrain reads volumes as 4-D NIfTI with fmri.mask; flatten a (T, x, y, z) "
                "array to (T, x*y*z) with data.reshape(len(data), -1))" if len(shape) >= 3 else "")
        raise InputFileError(f"{path}: a {len(shape)}-D array of shape {shape}; an fMRI run must be a 2-D "
                             f"(n_timepoints, n_columns) array{hint}")
    if np.dtype(dtype).kind not in "fiub":
        raise InputFileError(f"{path}: array of dtype {np.dtype(dtype)}; an fMRI run must hold numbers (float32)")
    if 0 in shape:
        raise InputFileError(f"{path}: an empty array of shape {shape}; an fMRI run needs time points and columns")
    if shape[0] in _SPACES and shape[1] not in _SPACES:
        raise InputFileError(f"{path}: shape {shape} looks transposed ({shape[0]} is a grayordinate count); an fMRI "
                             "run is (n_timepoints, n_grayordinates): save data.T")


_HEADERS: dict[tuple, dict] = {}


def fmri_header(path) -> dict:
    """Header facts of one fMRI run, without reading its data: ``kind`` (cifti, nifti, npy),
    ``n_trs``, ``n_columns`` (None for NIfTI: the mask decides), ``tr`` (None if the file has
    none), ``shape``.

    Raises
    ------
    InputFileError
        Missing, a folder, an unsupported type, an unreadable or truncated header, or not a
        time series (a 3-D NIfTI, a dscalar, a 3-D array); the one-line message says which.
    """
    from vlmbrain.brain.loaders import check_proxy_size, detect_kind, open_cifti

    path = str(path)
    if not os.path.exists(path):
        raise InputFileError(f"{path}: file not found")
    if os.path.isdir(path):
        raise InputFileError(f"{path}: is a folder, expected an fMRI file")
    st = os.stat(path)
    memo_key = (os.path.abspath(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if memo_key in _HEADERS:
        return dict(_HEADERS[memo_key])
    kind = detect_kind(path)
    if kind == "npy":
        info = _npy(path)
        out = {"kind": "npy", "n_trs": info["n_trs"], "n_columns": info["n_grayordinates"], "tr": None,
               "shape": info["shape"]}
    elif kind == "cifti":
        from nibabel.cifti2 import cifti2_axes

        img = open_cifti(path)
        try:
            axes = [img.header.get_axis(i) for i in range(len(img.shape))]
        except Exception as err:
            raise InputFileError(f"{path}: CIFTI header cannot be read ({type(err).__name__}: {err})") from err
        if len(axes) != 2 or not isinstance(axes[0], cifti2_axes.SeriesAxis):
            what = type(axes[0]).__name__.replace("Axis", "").lower() if axes else "no"
            raise InputFileError(f"{path}: a CIFTI file with a {what} axis, not a time series; an fMRI run is a "
                                 "dense time series (*.dtseries.nii)")
        unit = str(axes[0].unit).upper()
        if unit != "SECOND":
            raise InputFileError(f"{path}: the series axis unit is {unit}, expected SECOND (a time series)")
        out = {"kind": "cifti", "n_trs": int(img.shape[0]), "n_columns": int(img.shape[1]),
               "tr": float(axes[0].step), "shape": tuple(int(s) for s in img.shape)}
    else:
        import nibabel as nib

        try:
            img = nib.load(path)
        except Exception as err:
            raise InputFileError(f"{path}: not a readable NIfTI file ({type(err).__name__}: {err})") from err
        if isinstance(img, nib.Cifti2Image) or not hasattr(img, "affine"):
            raise InputFileError(f"{path}: not a NIfTI volume series (nibabel reads it as {type(img).__name__})")
        shape = tuple(int(s) for s in img.shape)
        if len(shape) != 4:
            raise InputFileError(f"{path}: a {len(shape)}-D NIfTI image of shape {shape}; an fMRI run is a 4-D "
                                 "volume series (x, y, z, time)")
        check_proxy_size(img, path)
        zooms = img.header.get_zooms()
        tr = float(zooms[3]) if len(zooms) > 3 and zooms[3] > 0 else None
        if tr is not None:
            unit = img.header.get_xyzt_units()[1]
            tr = tr / 1000.0 if unit == "msec" else tr / 1e6 if unit == "usec" else tr
        out = {"kind": "nifti", "n_trs": shape[3], "n_columns": None, "tr": tr, "shape": shape,
               "affine": np.asarray(img.affine, dtype=float).round(4).tolist()}
    _HEADERS[memo_key] = out
    return dict(out)


def _video(path) -> dict:
    from vlmbrain.stimulus.video import probe_video

    p = probe_video(path)
    return {"kind": "video", **p, "frames": p["n_frames"]}


def _captions(path) -> dict:
    from vlmbrain.stimulus.captions import read_captions

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        cues = read_captions(path)
    info = {"kind": f"captions-{os.path.splitext(path)[1].lstrip('.').lower()}", "cues": len(cues),
            "n_empty": sum(not c.text for c in cues)}
    if cues:
        info["start"] = float(min(c.onset for c in cues))
        info["duration"] = float(max(c.offset for c in cues))
        ordered = sorted(cues, key=lambda c: c.onset)
        info["n_overlapping"] = sum(b.onset < a.offset for a, b in zip(ordered[:-1], ordered[1:], strict=False))
    if rec:
        info["warnings"] = [str(w.message) for w in rec]
    return info


def _wordnet(path) -> dict:
    from vlmbrain.stimulus.captions import read_wordnet_labels

    labels = read_wordnet_labels(path)
    if not labels:
        raise InputFileError(f"{path}: no '<second>:{{...}}' lines; not a WordNet label file")
    return {"kind": "wordnet-labels", "seconds": len(labels), "duration": float(max(labels) + 1),
            "labelled_seconds": sum(bool(v) for v in labels.values()),
            "n_synsets": len({s for v in labels.values() for s in v})}


def _folder(path) -> dict:
    from vlmbrain.stimulus.frames import IMAGE_EXTENSIONS

    n = sum(f.lower().endswith(IMAGE_EXTENSIONS) for f in os.listdir(path))
    if not n:
        raise InputFileError(f"{path}: folder without images; vlmbrain reads folders of frames only")
    return {"kind": "frame-folder", "frames": n}


def inspect_path(path) -> dict:
    """Facts about an input file (fMRI, video, captions, frames folder).

    Returns
    -------
    dict
        Always ``path``, ``kind`` and ``bytes``; then what applies: ``n_trs``, ``tr``,
        ``duration`` (s), ``n_grayordinates``, ``n_vertices``, ``n_voxels``, ``space``,
        ``cues``, ``frames``, ``fps``, ``width``, ``height`` ...

    Raises
    ------
    InputFileError
        Missing, unreadable, truncated or unsupported file (one-line message).
    """
    path = str(path)
    if not os.path.exists(path):
        raise InputFileError(f"{path}: file not found")
    name = os.path.basename(path.rstrip(os.sep)).lower()
    try:
        if os.path.isdir(path):
            info = _folder(path)
        elif any(name.endswith(k) for k in _CIFTI_KINDS):
            info = _cifti(path)
        elif name.endswith((".nii", ".nii.gz")):
            info = _nifti(path)
        elif name.endswith(".npy"):
            info = _npy(path)
        elif name.endswith(VIDEO_EXT):
            info = _video(path)
        elif name.endswith((".srt", ".vtt", ".tsv")):
            info = _captions(path)
        elif name.endswith(".txt"):
            info = _wordnet(path)
        else:
            raise InputFileError(
                f"{path}: unsupported file type; vlmbrain reads .dtseries.nii/.dscalar.nii (CIFTI-2), .nii/.nii.gz, "
                f".npy, videos ({', '.join(VIDEO_EXT)}), captions (.srt, .vtt, .tsv), WordNet .txt, frame folders"
            )
    except VlmbrainError as err:
        if isinstance(err, InputFileError):
            raise
        raise InputFileError(str(err)) from err
    info = {"path": path, **info}
    info["bytes"] = os.path.getsize(path) if os.path.isfile(path) else None
    return info


def _fmt_duration(sec):
    if sec is None:
        return None
    m, s = divmod(float(sec), 60)
    return f"{int(m)}:{s:04.1f} min" if m else f"{s:.1f} s"


def describe(path) -> str:
    """One line describing ``path`` (see :func:`inspect_path`)."""
    i = inspect_path(path)
    k = i["kind"]
    name = os.path.basename(str(path).rstrip(os.sep))
    parts = []
    if k.startswith("cifti"):
        label = {"cifti-dtseries": "CIFTI-2 dense time series", "cifti-dscalar": "CIFTI-2 dense scalars",
                 "cifti-dlabel": "CIFTI-2 dense labels"}.get(k, f"CIFTI-2 {k[6:]}")
        parts.append(label)
        if "n_trs" in i:
            parts.append(f"{i['n_trs']} TRs x {i.get('n_grayordinates', i.get('n_parcels'))} "
                         f"{'grayordinates' if 'n_grayordinates' in i else 'parcels'}")
            parts.append(f"TR {i['tr']:g} s ({_fmt_duration(i['duration'])})")
        elif "n_maps" in i:
            parts.append(f"{i['n_maps']} maps x {i.get('n_grayordinates')} grayordinates")
        if "space" in i:
            parts.append(f"{i['space']} ({i['n_vertices']} vertices, {i['n_voxels']} voxels)")
    elif k == "nifti":
        if "n_trs" in i:
            parts += ["NIfTI 4-D", f"{i['n_trs']} volumes of {'x'.join(map(str, i['shape'][:3]))}",
                      f"TR {i['tr']:g} s ({_fmt_duration(i['duration'])})"]
        else:
            parts += ["NIfTI 3-D", f"{'x'.join(map(str, i['shape']))}, {i['n_nonzero']} non-zero voxels"]
    elif k == "npy":
        parts += ["array", f"shape {i['shape']} {i['dtype']}"]
        if "n_trs" in i:
            parts.append(f"{i['n_trs']} TRs x {i['n_grayordinates']} columns (no TR in file)")
    elif k == "video":
        parts += [f"video ({i['codec']})", f"{i['width']}x{i['height']}"]
        if i["fps"]:
            parts.append(f"{i['fps']:.3g} fps")
        if i["frames"]:
            parts.append(f"{i['frames']} frames")
        if i["duration"] is not None:
            parts.append(_fmt_duration(i["duration"]))
    elif k.startswith("captions"):
        parts += [f"captions ({k.split('-')[1]})", f"{i['cues']} cues"]
        if i["cues"]:
            parts.append(f"{i['start']:.1f}-{i['duration']:.1f} s")
        if i.get("n_overlapping"):
            parts.append(f"{i['n_overlapping']} overlapping")
        if i.get("n_empty"):
            parts.append(f"{i['n_empty']} empty")
    elif k == "wordnet-labels":
        parts += ["WordNet labels", f"{i['seconds']} seconds ({i['labelled_seconds']} labelled)",
                  f"{i['n_synsets']} synsets"]
    elif k == "frame-folder":
        parts += ["folder of frames", f"{i['frames']} images"]
    return f"{name}: " + ", ".join(parts)
