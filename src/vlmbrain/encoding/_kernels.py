"""Compiled kernels of the shift null (numba), used when numba is installed.

:func:`cross_spectra` sums the polyphase products of the data's and the atoms' spectra for a block
of columns in one pass per output line (numpy: a product and a sum per phase, each over the whole
block). After the per-shift GEMM, numpy needs six passes over a slab of null t-values (shift, column,
atom): the studentisation, the block sums of t², |t|, the comparison with the observed |t|, the
counts and the maximum over columns. :func:`slab_stats` does all of them in one pass while the
slab is in the core's cache. The numpy passes in :func:`vlmbrain.encoding.null.shift_null` stay
the reference and the fallback; the two agree to float32 rounding (tests: counts and maxima
identical on the same null values; spectra within float32 rounding).
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["available", "cross_spectra", "slab_stats"]

#: numba, once :func:`available` has loaded it (imported on first use: ~0.3 s at start-up)
numba = None
_tried = False
_compiled = {}


def available():
    """Whether the compiled kernels can be used: numba importable and not disabled by
    ``VLMBRAIN_NUMBA=0`` (read at the first call)."""
    global numba, _tried
    if not _tried:
        _tried = True
        if os.environ.get("VLMBRAIN_NUMBA", "1").strip().lower() not in ("0", "false", "no", "off"):
            try:
                import numba as nb
            except ImportError:          # numba is optional at run time: the numpy passes stand in
                nb = None
            numba = nb
    return numba is not None


def _kernel(fn):
    """``fn`` compiled by numba (cached on disk), on first use."""
    if fn not in _compiled:
        if not available():
            raise RuntimeError("vlmbrain.encoding._kernels: numba is not available")
        _compiled[fn] = numba.njit(cache=True, nogil=True)(fn)
    return _compiled[fn]


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


def _cross_spectra(Yr, Yi, Qr, Qi, c0, out):
    """``out[j, k] = Σ_p Y[p, c0 + j] · Q[p, k]`` over the ``d`` phases, complex, per frequency.

    ``Yr``/``Yi`` (d, c, F) and ``Qr``/``Qi`` (d, K, F) are the real and imaginary planes
    (float32) of the data's and the (conjugated) atoms' polyphase spectra; ``out`` is the
    float32 view (n, K, F, 2) of a complex64 block (what the inverse FFT reads).
    """
    n, K, F, _ = out.shape
    d = Qr.shape[0]
    ar = np.empty(F, np.float32)
    ai = np.empty(F, np.float32)
    for j in range(n):
        for k in range(K):
            yr = Yr[0, c0 + j]
            yi = Yi[0, c0 + j]
            qr = Qr[0, k]
            qi = Qi[0, k]
            for f in range(F):
                ar[f] = yr[f] * qr[f] - yi[f] * qi[f]
                ai[f] = yr[f] * qi[f] + yi[f] * qr[f]
            for p in range(1, d):
                yr = Yr[p, c0 + j]
                yi = Yi[p, c0 + j]
                qr = Qr[p, k]
                qi = Qi[p, k]
                for f in range(F):
                    ar[f] += yr[f] * qr[f] - yi[f] * qi[f]
                    ai[f] += yr[f] * qi[f] + yi[f] * qr[f]
            o = out[j, k]
            for f in range(F):
                o[f, 0] = ar[f]
                o[f, 1] = ai[f]


def slab_stats(Z, f, t0a, blocks, centres, bz, cz, mz, czc):
    """Compiled :func:`_slab_stats`."""
    return _kernel(_slab_stats)(Z, f, t0a, blocks, centres, bz, cz, mz, czc)


def cross_spectra(Yr, Yi, Qr, Qi, c0, out):
    """Compiled :func:`_cross_spectra`."""
    return _kernel(_cross_spectra)(Yr, Yi, Qr, Qi, c0, out)
