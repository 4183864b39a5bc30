"""Per-subject work as independent, resumable tasks (local processes, threads, or Dask).

:func:`run_per_subject` calls ``func(subject, spec, workdir)`` once per subject. ``func`` writes
its outputs into ``workdir`` (a fresh temporary folder next to the final one); when it returns,
its return value goes into ``_done.json`` and the folder is renamed to ``out_dir/<subject>`` in
one step. A subject whose ``out_dir/<subject>/_done.json`` exists is skipped, so a killed or
failed run resumes where it stopped and never leaves half-written subject folders behind
(leftover temporary folders are removed on the next call).

Schedulers
----------
- ``None`` or ``"serial"``: in this process, one subject after another;
- ``"processes"`` / ``"threads"``: a local ``concurrent.futures`` pool of ``n_jobs`` workers
  (``func`` must be picklable — a module-level function — for processes);
- ``"dask-local"``: a ``dask.distributed.LocalCluster(processes=False)`` with ``n_jobs`` threads;
- ``"tcp://host:port"``: an existing Dask scheduler (``dask.distributed.Client(address)``); the
  workers must see ``out_dir`` and the input files (shared file system);
- a ``dask.distributed.Client`` object.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

from vlmbrain.errors import ConfigError, VlmbrainError

logger = logging.getLogger("vlmbrain")

__all__ = ["SubjectTaskError", "run_per_subject", "subject_done"]

DONE = "_done.json"


class SubjectTaskError(VlmbrainError, RuntimeError):
    """One or more subjects failed; the message lists them, ``.results`` holds the table."""

    def __init__(self, message, results=None):
        super().__init__(message)
        self.results = results


def subject_done(out_dir, subject) -> bool:
    """Whether ``out_dir/<subject>`` holds a completed result."""
    return (Path(out_dir) / str(subject) / DONE).is_file()


def _run_one(func, subject, spec, out_dir):
    """Run one subject into a temporary folder, then move it into place. Never raises."""
    out_dir = Path(out_dir)
    final = out_dir / str(subject)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{subject}.", suffix=".tmp", dir=out_dir))
    try:
        value = func(subject, spec, tmp)
        seconds = time.perf_counter() - t0
        with open(tmp / DONE, "w") as fh:
            json.dump({"subject": str(subject), "seconds": seconds, "result": value}, fh, default=str)
        if final.exists():  # an incomplete folder from elsewhere (no _done.json): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        return {"subject": str(subject), "status": "done", "seconds": seconds, "error": "", "result": value}
    except Exception as err:  # reported in the results table, raised together at the end
        shutil.rmtree(tmp, ignore_errors=True)
        tb = traceback.format_exc(limit=3)
        return {"subject": str(subject), "status": "failed", "seconds": time.perf_counter() - t0,
                "error": f"{type(err).__name__}: {err}", "traceback": tb, "result": None}


def _clean_tmp(out_dir):
    for p in Path(out_dir).glob(".*.tmp"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def run_per_subject(
    func: Callable,
    subjects,
    out_dir,
    scheduler=None,
    *,
    n_jobs: int = 1,
    overwrite: bool = False,
    raise_on_error: bool = True,
) -> pd.DataFrame:
    """Run ``func`` for every subject as an independent, resumable task.

    Parameters
    ----------
    func : callable ``func(subject: str, spec, workdir: Path) -> JSON-able``
        Writes the subject's outputs into ``workdir``.
    subjects : mapping subject id -> spec, or sequence of subject ids (spec = id)
    out_dir : str or Path
        Results go to ``out_dir/<subject>/``.
    scheduler : None, "serial", "processes", "threads", "dask-local", "tcp://...", or a Dask Client
        See the module docstring.
    n_jobs : int, default=1
        Workers of a local pool / local Dask cluster.
    overwrite : bool, default=False
        Recompute subjects that are already done.
    raise_on_error : bool, default=True
        Raise :class:`SubjectTaskError` listing the failed subjects (after all ran).

    Returns
    -------
    pandas.DataFrame
        One row per subject: ``subject, status ("done" | "skipped" | "failed"), seconds, error``.
    """
    if isinstance(subjects, Mapping):
        items = [(str(k), v) for k, v in subjects.items()]
    else:
        items = [(str(s), s) for s in subjects]
    ids = [k for k, _ in items]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"subject ids must be unique, got duplicates in {ids}")
    bad = [k for k in ids if not k or os.sep in k or k.startswith(".")]
    if bad:
        raise ConfigError(f"subject ids must be plain folder names, got {bad}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clean_tmp(out_dir)
    rows, todo = [], []
    for k, spec in items:
        if subject_done(out_dir, k) and not overwrite:
            rows.append({"subject": k, "status": "skipped", "seconds": 0.0, "error": ""})
        else:
            todo.append((k, spec))
    if rows:
        logger.info("run_per_subject: %d of %d subjects already done (skipped)", len(rows), len(items))
    results = _dispatch(func, todo, out_dir, scheduler, int(n_jobs))
    for r in results:
        if r["status"] == "failed":
            logger.error("subject %s failed: %s\n%s", r["subject"], r["error"], r.get("traceback", ""))
        rows.append({k: r[k] for k in ("subject", "status", "seconds", "error")})
    table = pd.DataFrame(rows, columns=["subject", "status", "seconds", "error"])
    table = table.set_index("subject").loc[ids].reset_index()
    failed = table[table["status"] == "failed"]
    if raise_on_error and len(failed):
        lines = "; ".join(f"{s}: {e}" for s, e in zip(failed["subject"], failed["error"], strict=True))
        raise SubjectTaskError(f"{len(failed)} of {len(items)} subjects failed ({lines}); rerun to retry them "
                               "(completed subjects are kept)", table)
    return table


def _dispatch(func, todo, out_dir, scheduler, n_jobs):
    if not todo:
        return []
    if scheduler in (None, "serial"):
        return [_run_one(func, k, spec, out_dir) for k, spec in todo]
    if scheduler in ("processes", "threads"):
        from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

        pool_cls = ProcessPoolExecutor if scheduler == "processes" else ThreadPoolExecutor
        with pool_cls(max_workers=max(n_jobs, 1)) as pool:
            futures = [pool.submit(_run_one, func, k, spec, out_dir) for k, spec in todo]
            return [f.result() for f in futures]
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as err:  # pragma: no cover - dask is a dependency
        from vlmbrain.errors import MissingDependencyError

        raise MissingDependencyError("Dask scheduling needs dask[distributed]: pip install 'dask[distributed]'") from err
    if isinstance(scheduler, Client):
        return _dask_run(scheduler, func, todo, out_dir)
    if scheduler == "dask-local":
        with LocalCluster(processes=False, n_workers=1, threads_per_worker=max(n_jobs, 1),
                          dashboard_address=None) as cluster, Client(cluster) as client:
            return _dask_run(client, func, todo, out_dir)
    if isinstance(scheduler, str) and scheduler.startswith(("tcp://", "tls://", "inproc://")):
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as err:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler!r} ({err}); is it running?") from err
        with client:
            return _dask_run(client, func, todo, out_dir)
    raise ConfigError(
        f"scheduler {scheduler!r} is unknown; allowed: None, 'serial', 'processes', 'threads', 'dask-local', "
        "'tcp://host:port' or a dask.distributed.Client"
    )


def _dask_run(client, func, todo, out_dir):
    futures = [client.submit(_run_one, func, k, spec, str(out_dir), key=f"vlmbrain-subject-{k}-{time.time_ns()}",
                             pure=False) for k, spec in todo]
    return client.gather(futures)
