"""Atomic artifact writing and content hashing.

Every artifact is written to a temporary file in the destination folder and moved into place
with :func:`os.replace`, so a killed run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np


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
    """Save JSON atomically (numpy scalars and arrays are converted)."""
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=_json_default, sort_keys=False))
    return Path(path)


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
#: Content hashes already computed in this process, by (path, size, mtime_ns).
_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


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
            _FINGERPRINTS[(item[0], int(item[1]), int(item[2]))] = str(item[3])
    except (OSError, ValueError, TypeError, IndexError):
        pass


def _save_fingerprint_cache() -> None:
    items = [[p, s, m, h] for (p, s, m), h in _FINGERPRINTS.items()][-5000:]
    with contextlib.suppress(OSError):
        save_json(items, _fingerprint_cache_file())


def file_fingerprint(path) -> dict:
    """``{path, size, mtime_ns, sha256}`` of a file; the content hash is cached by size and mtime.

    An unchanged large file (a 1 GB dtseries) is hashed once, then recognised by its size and
    modification time; a file replaced at the same path gets a new hash.
    """
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), int(st.st_size), int(st.st_mtime_ns))
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
