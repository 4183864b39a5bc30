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
