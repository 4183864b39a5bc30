"""Atomic artifact writing, content hashing, input fingerprints and file locks.

Every artifact is written to a temporary file in the destination folder and moved into place
with :func:`os.replace`, so a killed run never leaves a half-written file under the final name;
the temporaries a killed process leaves behind are named ``.<name>.<random>.tmp<suffix>`` and
:func:`remove_temporaries` deletes them. :func:`hold_lock` takes an exclusive ``fcntl`` lock on
a file that records who holds it (pid, host, start time), for the run directory and for each
entry of the activation cache.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vlmbrain.errors import VlmbrainError

logger = logging.getLogger("vlmbrain")


@contextlib.contextmanager
def atomic_path(path, suffix: str | None = None):
    """Yield a temporary path next to ``path``; on success it is renamed to ``path``.

    ``suffix`` keeps an extension some writers need (nibabel picks the format from it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_npy(array, path) -> Path:
    """Save an array atomically as ``.npy``."""
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, np.asarray(array))
    return Path(path)


def save_json(obj, path) -> Path:
    """Save JSON atomically (numpy scalars and arrays are converted; NaN and ±inf become ``null``).

    JSON has no NaN: Python's ``json`` would write a bare ``NaN`` that other readers reject.
    """
    text = json.dumps(json_safe(obj), indent=2, default=_json_default, sort_keys=False, allow_nan=False)
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(text)
    return Path(path)


def json_safe(obj):
    """``obj`` with numpy values as Python values and every non-finite float as ``None``."""
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    elif isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def save_text(text: str, path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def save_tsv(frame, path) -> Path:
    """Save a pandas DataFrame atomically as a tab-separated file without the index."""
    with atomic_path(path, suffix=".tsv") as tmp:
        frame.to_csv(tmp, sep="\t", index=False)
    return Path(path)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def hash_file(path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (first 16 hex digits)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()[:16]


def hash_array(array) -> str:
    a = np.ascontiguousarray(array)
    h = hashlib.sha256()
    h.update(str(a.dtype).encode())
    h.update(str(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


def hash_obj(obj) -> str:
    """Hash of a JSON-serialisable object (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_json_default).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- input fingerprints
#: Content hashes already computed, by (path, size, mtime_ns, ctime_ns, inode): a file replaced
#: at the same path gets a new inode or ctime even when its size and mtime were kept
#: (``cp -p``, ``rsync -t``, ``touch -r``), so its content is hashed again.
_FINGERPRINTS: dict[tuple, str] = {}


def _fingerprint_cache_file() -> Path:
    env = os.environ.get("VLMBRAIN_CACHE")
    root = Path(env).expanduser() if env else Path("~/.cache/vlmbrain").expanduser()
    return root / "fingerprints.json"


def _load_fingerprint_cache() -> None:
    if getattr(_load_fingerprint_cache, "done", False):
        return
    _load_fingerprint_cache.done = True  # type: ignore[attr-defined]
    try:
        for item in json.loads(_fingerprint_cache_file().read_text()):
            if len(item) == 6:
                _FINGERPRINTS[(item[0], *(int(v) for v in item[1:5]))] = str(item[5])
    except (OSError, ValueError, TypeError, IndexError):
        pass


def _save_fingerprint_cache() -> None:
    items = [[*key, h] for key, h in _FINGERPRINTS.items()][-5000:]
    with contextlib.suppress(OSError):
        save_json(items, _fingerprint_cache_file())


def file_fingerprint(path) -> dict:
    """``{path, size, mtime_ns, sha256}`` of a file; the content hash is cached by its stat.

    An unchanged large file (a 1 GB dtseries) is hashed once, then recognised by its size,
    modification and change times and inode; a file replaced at the same path gets a new hash,
    also when the replacement kept the old modification time.
    """
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), int(st.st_size), int(st.st_mtime_ns), int(st.st_ctime_ns), int(st.st_ino))
    digest = _FINGERPRINTS.get(key)
    if digest is None:
        digest = hash_file(p)
        _FINGERPRINTS[key] = digest
    return {"path": str(p), "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns), "sha256": digest}


def fingerprint_files(paths) -> list[dict]:
    """Fingerprints of files and of every file inside folders (sorted); a missing path is recorded as such.

    Only the content enters what a step key should depend on: the size and the hash (the
    modification time serves the cache alone, so touching a file does not recompute).
    """
    _load_fingerprint_cache()
    n_before = len(_FINGERPRINTS)
    out = []
    for path in paths:
        p = Path(path).expanduser()
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file())
            digest = hashlib.sha256()
            for f in files:
                fp = file_fingerprint(f)
                digest.update(f"{f.relative_to(p).as_posix()}:{fp['size']}:{fp['sha256']}\n".encode())
            out.append({"path": str(p.resolve()), "files": len(files), "sha256": digest.hexdigest()[:16]})
        elif p.is_file():
            fp = file_fingerprint(p)
            out.append({"path": fp["path"], "size": fp["size"], "sha256": fp["sha256"]})
        else:
            out.append({"path": str(p), "missing": True})
    if len(_FINGERPRINTS) != n_before:
        _save_fingerprint_cache()
    return out


# ----------------------------------------------------------------------------- temporaries
_TEMPORARY = re.compile(r"^\..+\.tmp(\..*)?$")


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`atomic_path`'s temporaries (``.<name>.<random>.tmp<suffix>``)."""
    return bool(_TEMPORARY.match(name))


def remove_temporaries(folder, skip: tuple[str, ...] = ()) -> list[Path]:
    """Delete the temporaries killed processes left under ``folder`` (not under the ``skip`` subfolders).

    Only call this while holding the lock that guards ``folder``: a live writer's temporary
    looks the same.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for root, dirs, files in os.walk(folder):
        if Path(root) == folder:
            dirs[:] = [d for d in dirs if d not in skip]
        for name in files:
            if is_temporary(name):
                path = Path(root) / name
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    return removed


# ----------------------------------------------------------------------------- locks
class LockBusyError(VlmbrainError, RuntimeError):
    """Another live process holds the lock (the message says which)."""


def lock_holder() -> dict:
    """Who takes a lock: this process's pid, host, start time and command line."""
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else ""}


def describe_holder(info: dict) -> str:
    """``pid 123 on host h (started 2024-05-01T12:00:03+00:00)`` from a lock file's record."""
    if not info:
        return "an unknown process"
    return f"pid {info.get('pid', '?')} on host {info.get('host', '?')} (started {info.get('started', '?')})"


def _read_holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 65536)
        info = json.loads(raw.decode() or "{}")
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def pid_alive(pid) -> bool:
    """Whether a process with this pid runs on this host (a zombie counts as ended)."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited; only its parent has not collected it yet
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _open_locked(path: Path, blocking: bool) -> tuple[int, dict] | tuple[None, dict]:
    """Open ``path`` and ``flock`` it; ``(fd, previous record)``, or ``(None, holder)`` when busy.

    The lock file is removed on release, so after locking we check that the path still names
    the file we locked; if another process replaced it meanwhile, we start again.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as err:
            if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                # a file system without locks: only the record (a live pid on this host) guards
                logger.info("%s: the file system offers no locks; relying on the record in the file", path)
                return fd, _read_holder(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise
            holder = _read_holder(fd)
            os.close(fd)
            return None, holder
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd, _read_holder(fd)
        os.close(fd)


@contextlib.contextmanager
def hold_lock(path, what: str, *, wait: bool = False, busy_hint: str = "") -> Iterator[dict]:
    """Hold an exclusive lock on the file ``path`` while the block runs.

    The file records the holder (:func:`lock_holder`); it is removed on release. The kernel
    drops the lock of a process that dies, so a lock file left by a killed process is taken
    over, with a warning naming that process. A record naming a live process on this host is
    honoured even if its lock is gone (a lock file on a file system without ``flock``).

    Parameters
    ----------
    path : path-like
        The lock file.
    what : str
        What the lock guards, for messages (``"run directory runs/x"``).
    wait : bool, default=False
        Wait for the holder to finish (logged) instead of raising :class:`LockBusyError`.
    busy_hint : str
        Appended to the busy message (what the user can do).

    Yields
    ------
    dict
        The record of the previous holder if it was taken over, else ``{}``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, previous = _open_locked(path, blocking=False)
    if fd is None:
        if not wait:
            raise LockBusyError(f"{what} is in use by {describe_holder(previous)}, which holds {path}"
                                f"{'; ' + busy_hint if busy_hint else ''}")
        logger.info("waiting for %s, which holds %s (%s)", describe_holder(previous), what, path)
        fd, previous = _open_locked(path, blocking=True)
    me = lock_holder()
    taken_over = {}
    if previous and previous.get("pid") != me["pid"]:
        if previous.get("host") == me["host"] and pid_alive(previous.get("pid")) and not wait:
            os.close(fd)  # not ours: leave the file as it is
            raise LockBusyError(
                f"{what} is in use by {describe_holder(previous)}, recorded in {path}; if that process is not "
                f"a vlmbrain run, delete {path}{'; ' + busy_hint if busy_hint else ''}")
        if previous.get("host") == me["host"] and pid_alive(previous.get("pid")):
            logger.info("%s: %s is recorded in %s but holds no lock; continuing", what, describe_holder(previous), path)
        else:
            taken_over = previous
            logger.warning("%s: took over the lock of %s, which is no longer running", what,
                           describe_holder(previous))
    try:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(me).encode())
        yield taken_over
    finally:
        with contextlib.suppress(FileNotFoundError):
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                path.unlink()
        os.close(fd)  # releases the flock
