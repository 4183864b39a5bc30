"""Stimulus × model → per-TR activations ``(n_timepoints, n_neurons)`` and neuron tables.

:func:`extract_activations` walks the stimulus timeline in batches of TRs, feeds each batch's
frames and/or captions to a :class:`~vlmbrain.models.base.Readout`, and writes per branch
``<branch>.npy`` ``(n_timepoints, n_neurons)`` float32 and ``<branch>.neurons.tsv``.

Caching and resume. Results are cached under ``cache_dir`` (the pipeline passes
``$VLMBRAIN_CACHE`` if set, else ``<run directory>/cache``) in ``activations/<key>/``, ``key`` =
hash of (model name, weights hash, site, pooling, neuron table, branches, stimulus content
hash). Every finished batch is saved atomically as ``partial/rows_<start>_<stop>.npz`` before
the next one starts, so a killed extraction resumes from its last finished batch: only the TRs
no partial file covers are run again. Once every TR is covered the branch arrays are assembled
(memory-mapped, file by file) and the partial files removed; a later call with the same key
reads the cache without running the model.

Concurrency. Several processes may share one cache: an entry is only written, resumed or read
while holding its lock (``activations/<key>.lock``, ``fcntl``); a second process asking for
the same entry waits for the first and then reads the finished arrays. Temporaries that a
killed process left inside the entry are removed under the same lock.

Memory: frames are fetched from the stimulus one batch at a time; at most one batch of model
inputs and one batch of activations are held.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vlmbrain._io import atomic_path, hash_obj, hold_lock, remove_temporaries, save_json, save_tsv
from vlmbrain.errors import ConfigError, DimensionError

logger = logging.getLogger("vlmbrain")

_PARTIAL = re.compile(r"^rows_(\d+)_(\d+)\.npz$")
_FORMAT = 1


@dataclass(frozen=True)
class ExtractedBranch:
    """One branch's extracted activations.

    Attributes
    ----------
    path : Path
        ``<out_dir>/<branch>.npy``, float32 of shape (n_timepoints, n_neurons).
    neurons_path : Path
        ``<out_dir>/<branch>.neurons.tsv``, the neuron table (one row per column of the array).
    n_neurons : int
    """

    path: Path
    neurons_path: Path
    n_neurons: int


def default_cache_dir(run_dir=None) -> Path:
    """``$VLMBRAIN_CACHE`` if set, else ``<run_dir>/cache`` (given a run directory), else ``~/.cache/vlmbrain``."""
    env = os.environ.get("VLMBRAIN_CACHE")
    if env:
        return Path(env).expanduser()
    if run_dir is not None:
        return Path(run_dir) / "cache"
    return Path("~/.cache/vlmbrain").expanduser()


def _select_branches(stimulus, readout) -> list[str]:
    available = set()
    if getattr(stimulus, "has_frames", False):
        available.add("image")
    if getattr(stimulus, "has_captions", False):
        available.add("text")
    kept, skipped = [], []
    for branch in readout.branches:
        modality = readout.modalities.get(branch)
        if modality is None:
            raise ConfigError(f"readout {readout.name!r} gives no modality for branch {branch!r}")
        needs = set(modality.split("+"))
        (kept if needs <= available else skipped).append((branch, modality))
    have = " and ".join(sorted(available)) or "nothing"
    for branch, modality in skipped:
        if kept:
            logger.warning(
                "skipping branch %r of %s: it needs %s input but the stimulus has %s", branch, readout.name, modality, have
            )
    if not kept:
        wanted = ", ".join(f"{b} ({m})" for b, m in skipped)
        raise ConfigError(
            f"model {readout.name!r} cannot read this stimulus: its branches need {wanted} but the stimulus has "
            f"{have} (has_frames={bool(getattr(stimulus, 'has_frames', False))}, "
            f"has_captions={bool(getattr(stimulus, 'has_captions', False))}). Provide the video frames (or captions), "
            "or choose a model for the stimulus's modality"
        )
    return [b for b, _ in kept]


def _cache_key(stimulus, readout, branches, table) -> str:
    h = hashlib.sha256(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
    h.update(",".join(map(str, table.columns)).encode())
    h = h.hexdigest()[:16]
    return hash_obj(
        {
            "format": _FORMAT,
            "model": readout.name,
            "weights": readout.weights_hash(),
            "site": getattr(readout, "site", None),
            "pooling": getattr(readout, "pooling", None),
            "neurons": h,
            "branches": branches,
            "stimulus": stimulus.content_hash(),
        }
    )


def _finished_rows(partial: Path, n_timepoints: int) -> tuple[np.ndarray, list[tuple[int, int, Path]]]:
    done = np.zeros(n_timepoints, bool)
    files = []
    if partial.is_dir():
        for f in sorted(partial.iterdir()):
            m = _PARTIAL.match(f.name)
            if m:
                start, stop = int(m.group(1)), int(m.group(2))
                if 0 <= start < stop <= n_timepoints:
                    done[start:stop] = True
                    files.append((start, stop, f))
    return done, files


def _batches(todo: np.ndarray, batch_size: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) ranges of at most batch_size rows covering the True entries of todo."""
    out = []
    idx = np.flatnonzero(todo)
    if idx.size == 0:
        return out
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    stops = np.concatenate([idx[breaks] + 1, [idx[-1] + 1]])
    for a, b in zip(starts, stops):
        for s in range(int(a), int(b), batch_size):
            out.append((s, min(s + batch_size, int(b))))
    return out


def _run_batch(stimulus, readout, branches, needs_images, needs_text, start, stop, n_neurons) -> dict[str, np.ndarray]:
    rows = list(range(start, stop))
    images = stimulus.frames(rows) if needs_images else None
    captions = stimulus.captions(rows) if needs_text else None
    out = readout.readout(images, captions)
    del images
    result = {}
    for b in branches:
        if b not in out:
            raise DimensionError(f"readout {readout.name!r} returned branches {sorted(out)} but not {b!r}")
        arr = np.asarray(out[b], dtype=np.float32)
        if arr.shape != (len(rows), n_neurons[b]):
            raise DimensionError(
                f"readout {readout.name!r} branch {b!r} returned shape {arr.shape} for {len(rows)} TRs; expected "
                f"({len(rows)}, {n_neurons[b]}) (n_timepoints in the batch, rows of its neuron table)"
            )
        result[b] = arr
    return result


def extract_activations(stimulus, readout, out_dir, batch_size: int = 16, progress: bool = False, cache_dir=None):
    """Run a model readout over every TR of a stimulus.

    Parameters
    ----------
    stimulus : Stimulus
        Anything with ``timeline`` (``timeline.table``: one row per TR), ``frames(tr_indices)``,
        ``captions(tr_indices)``, ``has_frames``, ``has_captions`` and ``content_hash()``.
    readout : vlmbrain.models.base.Readout
    out_dir : str or Path
        Receives ``<branch>.npy`` (n_timepoints, n_neurons) float32 and ``<branch>.neurons.tsv``.
    batch_size : int, default=16
        TRs per readout call (each TR brings ``n_frames_per_tr`` frames); trades memory for speed.
    progress : bool, default=False
        Show a tqdm progress bar with ETA.
    cache_dir : str or Path, optional
        Activation cache; default :func:`default_cache_dir` (``$VLMBRAIN_CACHE`` or ``~/.cache/vlmbrain``).

    Returns
    -------
    dict of str to ExtractedBranch
        Per extracted branch (branches whose modality the stimulus lacks are skipped with a warning).

    Raises
    ------
    ConfigError
        The stimulus has none of the modalities the model reads, or ``batch_size`` < 1.
    DimensionError
        The readout returns arrays that disagree with its neuron table.
    """
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size={batch_size!r} must be a positive integer (TRs per readout call)")
    batch_size = int(batch_size)
    n_timepoints = int(len(stimulus.timeline.table))
    if n_timepoints == 0:
        raise DimensionError("the stimulus timeline has 0 TRs; nothing to extract")
    branches = _select_branches(stimulus, readout)
    modal = {b: set(readout.modalities[b].split("+")) for b in branches}
    needs_images = any("image" in m for m in modal.values())
    needs_text = any("text" in m for m in modal.values())
    table = readout.neuron_table()
    tables = {b: table[table["branch"] == b].reset_index(drop=True) for b in branches}
    n_neurons = {b: len(t) for b, t in tables.items()}
    for b, n in n_neurons.items():
        if n == 0:
            raise DimensionError(f"the neuron table of {readout.name!r} has no rows for branch {b!r}")

    key = _cache_key(stimulus, readout, branches, table)
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    entry = root / "activations" / key
    logger.info(
        "extracting %s (%s) over %d TRs: branches %s, (n_timepoints, n_neurons) = %s; cache %s",
        readout.name, getattr(readout, "site", "?"), n_timepoints, branches,
        {b: (n_timepoints, n) for b, n in n_neurons.items()}, entry,
    )
    with hold_lock(root / "activations" / f"{key}.lock", f"activation cache entry {entry}", wait=True):
        remove_temporaries(entry)
        _fill_entry(entry, key, stimulus, readout, branches, tables, n_neurons, n_timepoints, batch_size,
                    needs_images, needs_text, progress)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        result = {}
        for b in branches:
            path = out_dir / f"{b}.npy"
            with atomic_path(path, suffix=".npy") as tmp:
                shutil.copyfile(entry / f"{b}.npy", tmp)
            neurons = save_tsv(tables[b], out_dir / f"{b}.neurons.tsv")
            result[b] = ExtractedBranch(path=path, neurons_path=neurons, n_neurons=n_neurons[b])
    return result


def _fill_entry(entry, key, stimulus, readout, branches, tables, n_neurons, n_timepoints, batch_size,
                needs_images, needs_text, progress) -> None:
    """Make the cache entry complete: run the batches no partial file covers, then assemble.

    Called with the entry's lock held.
    """
    partial = entry / "partial"
    complete = entry / "complete.json"
    if _cache_complete(complete, entry, branches, n_timepoints, n_neurons):
        logger.info("activations of %s found in the cache %s", readout.name, entry)
        return
    complete.unlink(missing_ok=True)
    partial.mkdir(parents=True, exist_ok=True)
    done, _ = _finished_rows(partial, n_timepoints)
    todo = _batches(~done, batch_size)
    if done.any():
        logger.info("resuming %s: %d of %d TRs already extracted", readout.name, int(done.sum()), n_timepoints)
    from tqdm.auto import tqdm

    with tqdm(total=n_timepoints, initial=int(done.sum()), unit="TR", desc=f"extract {readout.name}",
              disable=not progress) as bar:
        for start, stop in todo:
            result = _run_batch(stimulus, readout, branches, needs_images, needs_text, start, stop, n_neurons)
            with atomic_path(partial / f"rows_{start:08d}_{stop:08d}.npz", suffix=".npz") as tmp:
                np.savez(tmp, **result)
            del result
            bar.update(stop - start)
    _assemble(entry, partial, branches, n_timepoints, n_neurons)
    save_json({"key": key, "model": readout.name, "branches": branches, "n_timepoints": n_timepoints,
               "n_neurons": n_neurons}, complete)
    shutil.rmtree(partial, ignore_errors=True)


def _cache_complete(complete: Path, entry: Path, branches, n_timepoints, n_neurons) -> bool:
    if not complete.is_file():
        return False
    try:
        meta = json.loads(complete.read_text())
        for b in branches:
            arr = np.load(entry / f"{b}.npy", mmap_mode="r")
            if arr.shape != (n_timepoints, n_neurons[b]) or meta["n_neurons"][b] != n_neurons[b]:
                return False
    except (OSError, ValueError, KeyError):
        return False
    return True


def _assemble(entry: Path, partial: Path, branches, n_timepoints, n_neurons) -> None:
    done, files = _finished_rows(partial, n_timepoints)
    if not done.all():  # pragma: no cover - the entry's lock keeps other writers out
        raise RuntimeError(f"extraction incomplete: {int((~done).sum())} TRs missing in {partial}")
    for b in branches:
        with atomic_path(entry / f"{b}.npy", suffix=".npy") as tmp:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_timepoints, n_neurons[b]))
            for start, stop, f in files:
                with np.load(f) as z:
                    arr[start:stop] = z[b]
            arr.flush()
            n_bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
            del arr
        if n_bad:
            logger.warning("branch %r has %d non-finite activation values (overflow in a low-precision dtype?)", b, n_bad)
