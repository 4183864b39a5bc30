"""Compiled kernels of the shift null (numba), used when numba is installed.

After the per-shift GEMM, numpy needs six passes over a slab of null t-values (shift, column,
atom): the studentisation, the block sums of t², |t|, the comparison with the observed |t|, the
counts and the maximum over columns. :func:`slab_stats` does all of them in one pass while the
slab is in the core's cache. The numpy passes in :func:`vlmbrain.encoding.null.shift_null` stay
the reference and the fallback: both give the same counts and maxima, and block sums equal to
float32 rounding (tests).
"""

from __future__ import annotations

import os

try:
    if os.environ.get("VLMBRAIN_NUMBA", "1").strip().lower() in ("0", "false", "no", "off"):
        raise ImportError("disabled by VLMBRAIN_NUMBA")
    import numba
except ImportError:          # numba is optional: the numpy passes are used instead
    numba = None

__all__ = ["available", "slab_stats"]


def available():
    """Whether the compiled kernels can be used (numba importable and not disabled by
    ``VLMBRAIN_NUMBA=0``)."""
    return numba is not None


def _slab_stats(Z, f, t0a, blocks, centres, bz, cz, mz, czc):
    """One pass over a slab of null values ``Z`` (n, c, K) float32 (before studentisation).

    For every shift row ``s``, column ``j`` and atom ``k``: ``t = Z[s, j, k] * f[s, j]``;
    ``bz[blocks[s], j, k] += t²`` (float64); ``cz[j, k] += |t| >= t0a[j, k]``;
    ``mz[s, k] = max_j |t|`` and, where ``centres[s] >= 0``, ``czc[centres[s], j, k] = |t|``.
    """
    n, c, K = Z.shape
    for s in range(n):
        b = blocks[s]
        cen = centres[s]
        m = mz[s]
        for k in range(K):
            m[k] = 0.0
        for j in range(c):
            fs = f[s, j]
            zr = Z[s, j]
            br = bz[b, j]
            cr = cz[j]
            tr = t0a[j]
            for k in range(K):
                t = zr[k] * fs
                a = abs(t)
                br[k] += t * t
                cr[k] += a >= tr[k]
                m[k] = max(m[k], a)
            if cen >= 0:
                out = czc[cen, j]
                for k in range(K):
                    out[k] = abs(zr[k] * fs)


if numba is not None:
    slab_stats = numba.njit(cache=True, nogil=True)(_slab_stats)
else:
    slab_stats = None
