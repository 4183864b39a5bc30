"""Sufficient statistics of the voxel-wise linear model, per run (or per block of rows).

For a block of rows ``b`` (a run, or a run ∩ cross-validation segment) with atoms
``X_b`` (n_b, K) and data ``Y_b`` (n_b, V), everything the solvers need is

- ``n_b``, the atom means ``x̄_b`` and the centred Gram ``G_b = Xc_bᵀ Xc_b`` (K, K),
- the centred cross products ``C_b = Xc_bᵀ Y_b`` (K, V) — the only O(T·K·V) work, one
  float32 GEMM ``[Xc_b, 1]ᵀ Y_b`` that also yields the column sums,
- the data means ``ȳ_b`` and the centred sums of squares ``yy_b = Σ (y − ȳ_b)²`` (V,),
- for AR(1), the lag-1 cross products within the block (``Cp``, ``Cm``, ``yl``) and the
  first / last centred samples.

Centring within a block is what one free intercept per block does (Frisch–Waugh–Lovell),
so the full fit uses the sums over runs, a leave-one-run-out fold the sums over the other
runs, and statistics of several blocks are pooled around their common mean
(:func:`pool`; Chan et al.'s parallel update). Accumulation is in float64; the cross
products are stored as float32 between the GEMM and the (K × K) algebra of a column chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from vlmbrain.encoding._checks import _nonfinite_error, check_runs

__all__ = ["ChunkStats", "Design", "column_slice", "numpy_raw_moments", "centred_moments",
           "solve_sym", "fold_r", "r2_from_totals", "run_intercepts", "pool", "pool_y", "loro_conditions",
           "LORO_CONDITION_WARN"]


@dataclass
class ChunkStats:
    """Per-block sufficient statistics for a set of columns (float64 in a column chunk).

    The leading axis indexes the blocks (the runs for the OLS / AR(1) fits and for any
    registered solver; run ∩ CV segment for ridge), the last axis the columns.
    """

    n: np.ndarray            # (R,) samples per block
    xbar: np.ndarray         # (R, K) atom means
    G: np.ndarray            # (R, K, K) centred Gram
    C: np.ndarray            # (R, K, c) Xc_rᵀ Y_r
    ybar: np.ndarray         # (R, c) data means
    yy: np.ndarray           # (R, c) centred sum of squares
    # AR(1) only (z = [Xc_r, 1], y centred):
    Cp: np.ndarray | None = None    # (R, K+1, c) sum_t z_{t-1} y_t (within the block)
    Cm: np.ndarray | None = None    # (R, K+1, c) sum_t z_t y_{t-1}
    yl: np.ndarray | None = None    # (R, c) sum_t y_t y_{t-1}
    yfirst: np.ndarray | None = None  # (R, c)
    ylast: np.ndarray | None = None   # (R, c)

    @property
    def n_blocks(self):
        return int(self.n.shape[0])

    @property
    def n_columns(self):
        return int(self.C.shape[-1])

    def totals(self):
        """``(G, C, yy)`` summed over the blocks: the statistics of the model with one
        intercept per block, fitted on all of them."""
        return self.G.sum(0), self.C.sum(0), self.yy.sum(0)

    def select(self, blocks):
        """The statistics of a subset of blocks (e.g. the training runs of a fold)."""
        idx = np.asarray(blocks, dtype=np.intp)
        pick = {}
        for name in ("n", "xbar", "G", "C", "ybar", "yy", "Cp", "Cm", "yl", "yfirst", "ylast"):
            val = getattr(self, name)
            pick[name] = None if val is None else val[idx]
        return replace(self, **pick)


def numpy_raw_moments(Z, Yr, lag):
    """Raw moments of one row block: ``Zᵀ Y``, ``Σ y²`` (+ lag-1 terms). ``Z = [Xc_r, 1]``."""
    out = {"CZ": Z.T @ Yr, "ss": np.einsum("ij,ij->j", Yr, Yr)}
    if lag:
        out["P"] = Z[:-1].T @ Yr[1:]           # Σ z_{t-1} y_t
        out["M"] = Z[1:].T @ Yr[:-1]           # Σ z_t y_{t-1}
        out["yl"] = np.einsum("ij,ij->j", Yr[1:], Yr[:-1])
    return out


def centred_moments(raw, Xc, Yr, lag):
    """Block-centred statistics from raw moments (float64); exact recomputation for columns
    whose mean is large compared with their spread (cancellation in float32)."""
    n, K = Xc.shape
    CZ = raw["CZ"].astype(np.float64)
    ybar = CZ[K] / n
    ss = raw["ss"].astype(np.float64)
    yy = ss - n * ybar * ybar
    d = dict(C=CZ[:K].astype(np.float32), ybar=ybar, yy=yy)
    if lag:
        y0 = Yr[0].astype(np.float64)
        yL = Yr[-1].astype(np.float64)
        head = np.append(-Xc[-1], n - 1.0)     # Σ_{t<n-1} z_t  (Σ xc = 0)
        tail = np.append(-Xc[0], n - 1.0)      # Σ_{t>=1} z_t
        d["Cp"] = (raw["P"] - np.outer(head, ybar)).astype(np.float32)
        d["Cm"] = (raw["M"] - np.outer(tail, ybar)).astype(np.float32)
        d["yl"] = raw["yl"].astype(np.float64) - ybar * (2 * CZ[K] - y0 - yL) + (n - 1) * ybar**2
        d["yfirst"] = y0 - ybar
        d["ylast"] = yL - ybar
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero((yy * 16.0 <= ss) & np.isfinite(ss))
    if bad.size:
        Yb = Yr[:, bad].astype(np.float64)
        mb = Yb.mean(axis=0)
        Yb -= mb
        d["ybar"][bad] = mb
        d["C"][:, bad] = Xc.T @ Yb
        d["yy"][bad] = np.einsum("ij,ij->j", Yb, Yb)
        if lag:
            Zb = np.concatenate([Xc, np.ones((n, 1))], axis=1)
            d["Cp"][:, bad] = Zb[:-1].T @ Yb[1:]
            d["Cm"][:, bad] = Zb[1:].T @ Yb[:-1]
            d["yl"][bad] = np.einsum("ij,ij->j", Yb[1:], Yb[:-1])
            d["yfirst"][bad] = Yb[0]
            d["ylast"][bad] = Yb[-1]
    return d


class Design:
    """Block-centred design and its per-block Gram matrices (float64).

    Parameters
    ----------
    X : ndarray of shape (n_timepoints, n_atoms), float64
    bounds : list of (start, stop)
        Contiguous row blocks (the runs, or finer blocks for ridge's inner CV).
    """

    def __init__(self, X, bounds):
        self.bounds = bounds
        self.n = np.array([b - a for a, b in bounds], dtype=np.float64)
        self.xbar = np.stack([X[a:b].mean(axis=0) for a, b in bounds])
        self.Xc = [X[a:b] - m for (a, b), m in zip(bounds, self.xbar)]
        self.G = np.stack([x.T @ x for x in self.Xc])
        self.K = X.shape[1]

    def all_stats(self, Y, lag, backend, col_block=32768):
        """Per-block statistics for every column of ``Y`` (row blocks read contiguously).

        ``backend`` computes the raw moments (``None``: numpy; else an object with
        ``raw_moments(Z, Yr, lag)``, e.g. ``vlmbrain.backends.torch_encoding.TorchStats``).
        Cross products are kept as float32, means and sums of squares as float64.
        """
        R, V = len(self.bounds), Y.shape[1]
        K = self.K
        C = np.empty((R, K, V), np.float32)
        ybar = np.empty((R, V))
        yy = np.empty((R, V))
        if lag:
            Cp = np.empty((R, K + 1, V), np.float32)
            Cm = np.empty((R, K + 1, V), np.float32)
            yl, yf, ylast = np.empty((R, V)), np.empty((R, V)), np.empty((R, V))
        for r, (a, b) in enumerate(self.bounds):
            Z = np.empty((b - a, K + 1), Y.dtype)
            Z[:, :K] = self.Xc[r]
            Z[:, K] = 1.0
            for c0 in range(0, V, col_block):
                sl = slice(c0, min(V, c0 + col_block))
                Yr = Y[a:b, sl]
                with np.errstate(invalid="ignore", over="ignore"):   # non-finite: checked below
                    raw = (numpy_raw_moments(Z, Yr, lag) if backend is None
                           else backend.raw_moments(Z, Yr, lag))
                    d = centred_moments(raw, self.Xc[r], Yr, lag)
                C[r, :, sl], ybar[r, sl], yy[r, sl] = d["C"], d["ybar"], d["yy"]
                if lag:
                    Cp[r, :, sl], Cm[r, :, sl] = d["Cp"], d["Cm"]
                    yl[r, sl], yf[r, sl], ylast[r, sl] = d["yl"], d["yfirst"], d["ylast"]
        bad = ~np.all(np.isfinite(yy), axis=0)
        if lag:
            bad |= ~np.all(np.isfinite(yl), axis=0)
        if bad.any():
            raise _nonfinite_error(np.flatnonzero(bad))
        st = ChunkStats(n=self.n, xbar=self.xbar, G=self.G, C=C, ybar=ybar, yy=yy)
        if lag:
            st.Cp, st.Cm, st.yl, st.yfirst, st.ylast = Cp, Cm, yl, yf, ylast
        return st


#: A leave-one-run-out fold whose training design has a condition number (largest over smallest
#: eigenvalue of the run-centred atoms' Gram) above this is flagged: its held-out r then moves
#: by 0.007–1 when the inputs move by float32 rounding (measured on the fast demo's 2 × 60-TR
#: folds, condition numbers 1.2e6–2e12, between two numpy/OpenBLAS builds).
LORO_CONDITION_WARN = 1e6


def loro_conditions(X, runs) -> list[float]:
    """Condition number of the training design of every leave-one-run-out fold.

    For held-out run ``f``: the Gram of the run-centred atoms of all other runs (what the
    fold's fit inverts), largest over smallest eigenvalue; ``inf`` when singular. One entry
    per run, in run order; empty with one run.
    """
    X = np.asarray(X, dtype=np.float64)
    _, bounds = check_runs(runs, X.shape[0])
    if len(bounds) < 2:
        return []
    G = Design(X, bounds).G
    out = []
    for f in range(len(bounds)):
        w = np.linalg.eigvalsh(G.sum(0) - G[f])
        out.append(float(w[-1] / w[0]) if w[0] > w[-1] * 1e-15 else float("inf"))
    return out


def column_slice(st, sl):
    """Column slice of all-column statistics, cross products as float64."""
    out = ChunkStats(n=st.n, xbar=st.xbar, G=st.G, C=st.C[:, :, sl].astype(np.float64),
                     ybar=st.ybar[:, sl], yy=st.yy[:, sl])
    if st.Cp is not None:
        out.Cp = st.Cp[:, :, sl].astype(np.float64)
        out.Cm = st.Cm[:, :, sl].astype(np.float64)
        out.yl, out.yfirst, out.ylast = st.yl[:, sl], st.yfirst[:, sl], st.ylast[:, sl]
    return out


def solve_sym(G, C):
    """Solve ``G B = C`` for symmetric positive (semi)definite ``G`` → ``(B, G⁻¹)``;
    pseudo-inverse when the Cholesky factorisation fails."""
    try:
        cho = np.linalg.cholesky(G)
    except np.linalg.LinAlgError:
        Ginv = np.linalg.pinv(G, hermitian=True)
        return Ginv @ C, Ginv
    Linv = np.linalg.inv(cho)
    Ginv = Linv.T @ Linv
    return Ginv @ C, Ginv


def fold_r(beta, C_f, G_f, yy_f):
    """Pearson r and R² of the prediction ``Xc_f β`` on a held-out block, from its centred
    statistics (the held-out block's own mean is removed: its intercept is unknown)."""
    cov = np.einsum("kc,kc->c", beta, C_f)
    varp = np.einsum("kc,kc->c", beta, G_f @ beta)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(varp * yy_f)
        r2 = 1.0 - (yy_f - 2 * cov + varp) / yy_f
    return r, r2


def r2_from_totals(beta, G, C, yy):
    """In-sample R² of ``Xc β`` from pooled centred statistics (after removing block means)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - (yy - 2 * np.einsum("kc,kc->c", beta, C)
                      + np.einsum("kc,kc->c", beta, G @ beta)) / yy


def run_intercepts(st, beta):
    """Per-block intercepts ``ȳ_r − x̄_r β`` (n_blocks, c)."""
    return st.ybar - st.xbar @ beta


def pool(n, xbar, ybar, G, C, yy, idx):
    """Pool centred statistics of blocks ``idx`` around their common mean (Chan et al.)."""
    nn = n[idx]
    N = nn.sum()
    xm = (nn[:, None] * xbar[idx]).sum(0) / N
    ym = (nn[:, None] * ybar[idx]).sum(0) / N
    dx = xbar[idx] - xm
    dy = ybar[idx] - ym
    Gp = G[idx].sum(0) + np.einsum("b,bk,bj->kj", nn, dx, dx)
    Cp = C[idx].sum(0) + np.einsum("b,bk,bc->kc", nn, dx, dy)
    yyp = yy[idx].sum(0) + np.einsum("b,bc->c", nn, dy * dy)
    return N, xm, ym, Gp, Cp, yyp


def pool_y(n, ybar, C, yy, xbar, idx, xm):
    """Y-side pooled centred statistics of blocks ``idx`` (x mean ``xm`` given)."""
    nn = n[idx]
    ym = (nn[:, None] * ybar[idx]).sum(0) / nn.sum()
    dx = xbar[idx] - xm
    dy = ybar[idx] - ym
    Cp = C[idx].sum(0) + np.einsum("b,bk,bc->kc", nn, dx, dy)
    yyp = yy[idx].sum(0) + np.einsum("b,bc->c", nn, dy * dy)
    return ym, Cp, yyp
