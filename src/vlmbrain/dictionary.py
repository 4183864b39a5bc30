"""Sparse dictionary learning of temporal atoms (docs/method.md §3).

Solves ::

    min_{D, A}  ½ ‖X − D A‖²_F + λ ‖A‖₁    s.t. ‖d_k‖₂ ≤ 1

for ``X`` (n_timepoints, n_neurons) (columns centred, unit ℓ2 norm), atoms ``D``
(n_timepoints, n_atoms) and signed sparse codes ``A`` (n_atoms, n_neurons) — the
same objective as scikit-learn's ``DictionaryLearning`` on ``X.T`` (samples = ANs).

Solver (pure functions under the estimator):

* :func:`sparse_encode_active_set` — the exact lasso for *all* columns at once by a batched
  primal active-set method (one ``A G`` GEMM and batched small solves per step, with
  ``G = DᵀD`` (K × K) and ``B = DᵀX`` (K × n)); warm-started from nearby codes it needs one
  or two steps. Real model activations give strongly correlated atoms, on which coordinate
  descent (:func:`sparse_encode_gram`, kept as a reference solver) needs hundreds of sweeps.
* :func:`update_dictionary` — block-coordinate descent on the atoms from the sufficient
  statistics ``AAᵀ`` (K × K) and ``XAᵀ`` (T × K) (Mairal et al. 2010), with projection onto
  the unit ball and re-seeding of unused atoms.
* :class:`TemporalDictionary` — online mini-batch epochs (shuffled batches, warm-started
  active-set codes, sufficient statistics over about the last two epochs, as in Mairal et
  al. 2010 / SPAMS), then full-batch alternating refinement with extrapolated (momentum)
  atoms and a monotone fallback, then exact codes for the final atoms.
* :func:`atom_stability` — Hungarian matching of atoms across seeds on |correlation|.
* :func:`atom_collinearity` — variance inflation factors and condition number of the atoms
  as encoding regressors.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.extmath import randomized_svd
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from vlmbrain.errors import ConfigError, DimensionError

logger = logging.getLogger("vlmbrain")

__all__ = ["TemporalDictionary", "sparse_encode_active_set", "sparse_encode_gram", "update_dictionary",
           "objective", "prepare_columns", "atom_stability", "match_atoms", "AtomStability",
           "atom_collinearity", "VIF_WARN", "CONDITION_WARN"]


def prepare_columns(X):
    """Centre every column and scale it to unit ℓ2 norm.

    Parameters
    ----------
    X : array-like of shape (n_timepoints, n_neurons)

    Returns
    -------
    Xn : ndarray of shape (n_timepoints, n_neurons), float32, column-major

    Raises
    ------
    DimensionError
        If a column is constant (it has no direction); drop such ANs first.
    """
    X = np.asarray(X)
    mean = X.mean(axis=0, dtype=np.float64)
    Xn = np.empty(X.shape, dtype=np.float32, order="F")   # column-major: ANs contiguous
    np.subtract(X, mean.astype(X.dtype), out=Xn, casting="unsafe")
    norms = np.sqrt(np.einsum("ij,ij->j", Xn, Xn, dtype=np.float64))
    scale = np.abs(X).max(axis=0).astype(np.float64) * np.sqrt(X.shape[0])
    bad = np.flatnonzero(~(norms > 1e-6 * np.maximum(scale, 1e-300)))
    if bad.size:
        raise DimensionError(
            f"X has {bad.size} constant column(s) (n_neurons index {bad[:5].tolist()}...), "
            "which cannot be scaled to unit norm; drop near-constant ANs first "
            "(the signal stage does this) or pass normalize=False.")
    Xn /= norms.astype(np.float32)
    return Xn


def sparse_encode_gram(G, B, alpha, A0=None, max_iter=200, tol=1e-6):
    """Lasso codes for many columns by coordinate descent in Gram form.

    Minimises ``½‖x − D a‖² + alpha ‖a‖₁`` for every column, given only
    ``G = DᵀD`` and ``B = DᵀX``.

    Parameters
    ----------
    G : ndarray of shape (n_atoms, n_atoms)
    B : ndarray of shape (n_atoms, n_columns)
    alpha : float
    A0 : ndarray of shape (n_atoms, n_columns), default=None
        Warm start.
    max_iter : int, default=200
        Maximum sweeps over the atoms.
    tol : float, default=1e-6
        Stop when the largest coefficient change in a sweep is below
        ``tol × max(1, max |A|)``.

    Returns
    -------
    A : ndarray of shape (n_atoms, n_columns), float64
    n_sweeps : int
    """
    G = np.asarray(G, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    K = G.shape[0]
    A = np.zeros_like(B) if A0 is None else np.array(A0, dtype=np.float64)
    R = B - G @ A                     # R = Dᵀ(x − D a): correlations with the residual
    diag = np.diag(G).copy()
    n = B.shape[1]
    active = np.arange(n)             # columns are independent problems: drop converged ones
    it = 0
    for it in range(1, max_iter + 1):
        full = active.size == n
        Ra = R if full else R[:, active]
        Aa = A if full else A[:, active]
        colmax = np.zeros(active.size)
        u = np.empty(active.size)
        a_new = np.empty(active.size)
        for k in range(K):
            gk = diag[k]
            if gk <= 0:
                continue
            a_old = Aa[k]
            np.multiply(a_old, gk, out=u)
            u += Ra[k]
            np.maximum(u, -alpha, out=a_new)         # soft threshold: u - clip(u, -λ, λ)
            np.minimum(a_new, alpha, out=a_new)
            np.subtract(u, a_new, out=a_new)
            a_new /= gk
            delta = a_new - a_old
            nz = delta.nonzero()[0]
            if nz.size:
                dz = delta[nz]
                if nz.size * 4 > delta.size:
                    Ra -= np.outer(G[:, k], delta)
                else:                     # sparse codes: update only the columns that moved
                    Ra[:, nz] -= G[:, k:k + 1] * dz
                Aa[k] = a_new
                np.maximum.at(colmax, nz, np.abs(dz)) if nz.size < 64 else \
                    np.maximum(colmax, np.abs(delta), out=colmax)
        if not full:
            R[:, active] = Ra
            A[:, active] = Aa
        thr = tol * max(1.0, np.abs(A).max() if A.size else 0.0)
        keep = colmax > thr
        if not keep.any():
            break
        active = active[keep]
    return A, it


def _active_set_rows(Gj, BT, AT, lam, max_iter, tol, eager):
    """Active-set steps for the columns held as rows of ``BT``, ``AT`` (n, K); ``AT`` is updated.

    Row layout keeps each column's K entries contiguous (the per-column reductions run along
    the fast axis), and the face problems are solved grouped by support size, so no column
    pays for the largest support of the batch.
    """
    n = BT.shape[0]
    cols = np.arange(n)
    Ac, Bc = AT, BT
    face = np.zeros(n, dtype=bool)             # warm-start supports are checked first
    it = 0
    for it in range(1, max_iter + 1):
        grad = Ac @ Gj
        grad -= Bc
        act = Ac != 0
        size = np.count_nonzero(act, axis=1)
        fo = face | (size == 0)                # an empty support is optimal on its face
        viol = np.abs(grad)
        viol[act] = 0.0
        kmax = viol.argmax(axis=1)
        vmax = viol[np.arange(cols.size), kmax]
        done = fo & (vmax <= lam * (1.0 + tol))
        if done.any():
            AT[cols[done]] = Ac[done]
            keep = ~done
            cols, Ac, Bc, grad, act, kmax, vmax, fo, size = (
                cols[keep], Ac[keep], Bc[keep], grad[keep], act[keep], kmax[keep], vmax[keep], fo[keep],
                size[keep])
            if cols.size == 0:
                return AT, it
        if eager and it == 1:
            fo = fo | (vmax > lam * (1.0 + tol))
        ja = np.flatnonzero(fo)
        kj = kmax[ja]
        theta = np.sign(Ac)
        theta[ja, kj] = -np.sign(grad[ja, kj])  # an added atom starts with the sign of −∇
        act[ja, kj] = True
        size[ja] += 1
        hit = np.zeros(cols.size, dtype=bool)
        A_next = np.zeros_like(Ac)
        for s in np.unique(size):
            js = np.flatnonzero(size == s)
            jj = js[:, None]
            idx = np.nonzero(act[js])[1].reshape(js.size, s)   # each column's atoms, ascending
            a = Ac[jj, idx]
            th = theta[jj, idx]
            z = np.linalg.solve(Gj[idx[:, :, None], idx[:, None, :]], (Bc[jj, idx] - lam * th)[..., None])[..., 0]
            with np.errstate(divide="ignore", invalid="ignore"):
                tk = np.where(z * th < 0, a / (a - z), np.inf)  # where a coefficient reaches 0
            r = np.arange(js.size)
            kmin = tk.argmin(axis=1)
            tstar = np.minimum(tk[r, kmin], 1.0)
            new = a + tstar[:, None] * (z - a)
            h = tstar < 1.0
            new[r[h], kmin[h]] = 0.0
            A_next[jj, idx] = new
            hit[js] = h
        Ac = A_next
        face = ~hit
    AT[cols] = Ac                              # step budget spent: approximate codes
    return AT, it


def _n_threads(n_threads):
    """Threads for column chunks: ``None`` = the BLAS threads currently allowed (so that
    ``threadpoolctl.threadpool_limits(1)`` around a call also makes it single-threaded)."""
    if n_threads is not None:
        return max(1, int(n_threads))
    from threadpoolctl import ThreadpoolController

    info = ThreadpoolController().select(user_api="blas").info()
    return max([int(i.get("num_threads") or 1) for i in info] or [1])


#: Fewest columns per thread chunk: below this, the per-step Python overhead outweighs a thread.
MIN_CHUNK = 256


def sparse_encode_active_set(G, B, alpha, A0=None, max_iter=None, tol=1e-9, eager=False, n_threads=1):
    """Exact lasso codes for many columns by a batched primal active-set method.

    Minimises ``½‖x − D a‖² + alpha ‖a‖₁`` for every column, given ``G = DᵀD`` and
    ``B = DᵀX``. Each column keeps a support ``S`` and signs ``θ``; one step, for all columns
    at once:

    1. a column whose current point is optimal on its face (``a_S`` minimises the quadratic
       with the signs fixed) adds the inactive atom with the largest ``|∇_k|``, if it exceeds
       ``alpha`` (else the column is done: the lasso's optimality conditions hold);
    2. the face's minimiser ``z = G_SS⁻¹ (B_S − alpha θ)`` is computed by batched solves, one
       batch per support size;
    3. the point moves from ``a`` towards ``z`` until the first coefficient would change sign;
       that coefficient leaves the support.

    On its face the objective is the convex quadratic with fixed signs, so every step lowers
    it; a newly added atom starts with the right sign (its gradient exceeds ``alpha``), so no
    step is empty, and the method ends after finitely many steps with the exact solution
    (a homotopy/LARS relative: supports of a few atoms cost a few steps; a warm start from
    nearby codes, as in dictionary learning, one or two). Work per step: one ``A G`` GEMM and
    a batched ``|S| × |S|`` solve per column. Columns that meet the optimality conditions
    leave the working set, so later steps touch only the columns still moving.

    The columns are independent problems: with ``n_threads > 1`` contiguous column chunks run
    on threads (NumPy and LAPACK release the GIL; BLAS is held to one thread meanwhile). Every
    column follows the same arithmetic whatever the chunking, so the codes do not depend on
    the thread count.

    Parameters
    ----------
    G : ndarray of shape (n_atoms, n_atoms)
    B : ndarray of shape (n_atoms, n_columns)
    alpha : float
    A0 : ndarray of shape (n_atoms, n_columns), default=None
        Warm start (any codes; their signs give the first faces).
    max_iter : int, default=None
        Maximum steps (default ``4 × n_atoms + 20``); fewer give approximate codes that
        still lower the objective from ``A0``.
    tol : float, default=1e-9
        A column is optimal when no inactive ``|∇_k|`` exceeds ``alpha × (1 + tol)``.
    eager : bool, default=False
        In the first step, also add the most violating atom to warm-started columns that
        are not yet optimal on their face (the step still lowers the objective; a wrong
        sign just drops the atom again). With a small ``max_iter`` this lets supports grow
        while the warm start's coefficients are re-solved, for approximate codes in one step.
    n_threads : int or None, default=1
        Threads over column chunks (at least :data:`MIN_CHUNK` columns each); ``None`` = as
        many as BLAS may use now.

    Returns
    -------
    A : ndarray of shape (n_atoms, n_columns), float64
    n_steps : int
        Steps of the chunk that needed the most.
    """
    G = np.asarray(G, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    K, n = B.shape
    BT = np.ascontiguousarray(B.T)
    AT = np.zeros((n, K)) if A0 is None else np.array(np.asarray(A0, dtype=np.float64).T, order="C")
    max_iter = 4 * K + 20 if max_iter is None else int(max_iter)
    lam = float(alpha)
    # a tiny ridge keeps G_SS solvable when two atoms coincide
    Gj = G + np.diag(np.full(K, 1e-12 * max(float(np.trace(G)) / max(K, 1), 1e-300)))
    nt = min(_n_threads(n_threads), max(1, n // MIN_CHUNK))
    if nt <= 1:
        AT, it = _active_set_rows(Gj, BT, AT, lam, max_iter, tol, eager)
        return AT.T, it
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    bounds = np.linspace(0, n, nt + 1).astype(int)

    def chunk(i):
        sl = slice(bounds[i], bounds[i + 1])
        return _active_set_rows(Gj, BT[sl], AT[sl], lam, max_iter, tol, eager)[1]

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=nt) as pool:
        its = list(pool.map(chunk, range(nt)))
    return AT.T, max(its)


def update_dictionary(D, AAt, XAt, n_passes=1, rng=None, X=None, incoherence=0.0):
    """Block-coordinate update of the atoms from sufficient statistics.

    For each atom ``k``: ``d_k ← d_k + (XAᵀ_k − D AAᵀ_k) / AAᵀ_kk``, then
    ``d_k ← d_k / max(1, ‖d_k‖)``. An atom that no code uses (``AAᵀ_kk ≈ 0``) is re-seeded
    with a random (normalised) column of ``X`` when ``X`` is given.

    With ``incoherence = η > 0`` the atoms minimise ``½‖X − DA‖² + η Σ_{j<k} (d_jᵀd_k)²`` on the
    unit sphere instead: each block step is the exact minimiser of
    :func:`sphere_block_minimum` (the penalty would otherwise be escaped by shrinking atoms).

    Parameters
    ----------
    D : ndarray of shape (n_timepoints, n_atoms), updated in place (float64)
    AAt : ndarray of shape (n_atoms, n_atoms)
    XAt : ndarray of shape (n_timepoints, n_atoms)
    incoherence : float, default=0.0
        η, in the units of ``AAᵀ`` (absolute; :class:`TemporalDictionary` scales its relative
        ``incoherence`` by the mean ``AAᵀ_kk``).

    Returns
    -------
    D : ndarray of shape (n_timepoints, n_atoms)
    n_reseeded : int
    """
    K = D.shape[1]
    n_re = 0
    scale = max(np.trace(AAt) / max(K, 1), 1e-300)
    for _ in range(n_passes):
        for k in range(K):
            akk = AAt[k, k]
            if akk <= 1e-10 * scale:
                if X is not None and rng is not None:
                    col = X[:, rng.integers(X.shape[1])].astype(np.float64)
                    if incoherence > 0 and K > 1:
                        # what the other atoms leave of a column: a new atom that is incoherent
                        others = np.delete(D, k, axis=1)
                        col = col - others @ np.linalg.lstsq(others, col, rcond=None)[0]
                    col = col + 1e-3 * rng.standard_normal(col.shape) / np.sqrt(col.size)
                    D[:, k] = col / max(np.linalg.norm(col), 1e-300)
                    n_re += 1
                continue
            if incoherence > 0 and K > 1:
                others = np.delete(D, k, axis=1)
                c = XAt[:, k] - others @ np.delete(AAt[:, k], k)
                D[:, k] = sphere_block_minimum(akk, c, others, incoherence)
                continue
            dk = D[:, k] + (XAt[:, k] - D @ AAt[:, k]) / akk
            D[:, k] = dk / max(1.0, np.linalg.norm(dk))
    return D, n_re


def coherence_penalty(D, eta) -> float:
    """``η Σ_{j<k} (d_jᵀd_k)²``: the incoherence penalty of the atoms ``D``."""
    D = np.asarray(D, dtype=np.float64)
    G = D.T @ D
    off = G - np.diag(np.diag(G))
    return 0.5 * float(eta) * float(np.einsum("ij,ij->", off, off))


def sphere_block_minimum(a, c, others, eta, n_iter=100):
    """``argmin_{‖d‖=1} ½ a‖d‖² − dᵀc + η Σ_j (o_jᵀd)²`` over unit vectors ``d``.

    The Hessian is ``aI + 2η OOᵀ``; with ``OᵀO = WΛWᵀ`` its eigenvectors are ``U = OWΛ^{-1/2}``
    (eigenvalues ``a + 2ηλ``) and the complement (eigenvalue ``a``). The minimiser is
    ``d(μ) = (aI + 2ηOOᵀ + μI)⁻¹ c`` with the Lagrange multiplier ``μ > −a`` for which
    ``‖d(μ)‖ = 1`` (``‖d(μ)‖`` decreases in ``μ``): found by bisection, an exact step of block
    coordinate descent for every ``c`` with a part outside the span of the others.

    Parameters
    ----------
    a : float
        ``AAᵀ_kk`` (> 0).
    c : ndarray (n_timepoints,)
        ``XAᵀ_k − Σ_{j≠k} d_j AAᵀ_jk``.
    others : ndarray (n_timepoints, n_atoms − 1)
        The other atoms.
    eta : float
        The penalty η (≥ 0).
    """
    c = np.asarray(c, dtype=np.float64)
    lam, W = np.linalg.eigh(others.T @ others)
    keep = lam > 1e-12 * max(float(lam.max(initial=0.0)), 1e-300)
    U = others @ (W[:, keep] / np.sqrt(lam[keep]))
    s = 2.0 * float(eta) * lam[keep]
    uc = U.T @ c
    rest = c - U @ uc
    rr = float(rest @ rest)

    def norm2(mu):
        return float(np.sum((uc / (a + mu + s)) ** 2) + rr / (a + mu) ** 2)

    lo, hi = -a * (1.0 - 1e-12), 0.0
    if norm2(0.0) > 1.0:
        lo, hi = 0.0, max(float(np.linalg.norm(c)), a)
        while norm2(hi) > 1.0:
            hi *= 2.0
    for _ in range(n_iter):
        mid = 0.5 * (lo + hi)
        if norm2(mid) > 1.0:
            lo = mid
        else:
            hi = mid
    mu = 0.5 * (lo + hi)
    d = U @ (uc / (a + mu + s)) + rest / (a + mu)
    return d / max(np.linalg.norm(d), 1e-300)


def objective(X, D, A, alpha):
    """``½‖X − D A‖²_F + alpha ‖A‖₁`` (float64 accumulation).

    Parameters
    ----------
    X : ndarray of shape (n_timepoints, n_neurons)
    D : ndarray of shape (n_timepoints, n_atoms)
    A : ndarray of shape (n_atoms, n_neurons)
    alpha : float
    """
    X = np.asarray(X, dtype=np.float64)
    R = X - np.asarray(D, dtype=np.float64) @ np.asarray(A, dtype=np.float64)
    return 0.5 * float(np.einsum("ij,ij->", R, R)) + alpha * float(np.abs(A).sum())


def _objective_stats(xx, G, B, A, alpha):
    """Objective from ``‖X‖²``, ``G = DᵀD``, ``B = DᵀX`` — no T × N residual needed."""
    return 0.5 * xx - float(np.einsum("kn,kn->", A, B)) \
        + 0.5 * float(np.einsum("kn,kn->", A, G @ A)) + alpha * float(np.abs(A).sum())


class TemporalDictionary(BaseEstimator):
    """Sparse dictionary of temporal atoms for AN time courses.

    Parameters
    ----------
    n_atoms : int, default=64
        Number of atoms K.
    alpha : float, default=0.1
        λ, the ℓ1 penalty on the codes (for unit-norm columns).
    schedule : {"subsets", "online"}, default="subsets"
        The first phase, before the full-batch refinement on all columns: ``"subsets"`` =
        the same refinement on nested random column subsets (``subset_size`` columns, then 4×
        as many, … while a subset holds at most a third of the columns), each started from the
        atoms of the previous one; with fewer than ``8 × subset_size`` columns, and with
        ``"online"``, ``n_epochs`` online mini-batch epochs instead (Mairal et al. 2010).
    subset_size : int, default=512
        Columns in the first subset of ``schedule="subsets"``.
    subset_tol : float, default=1e-3
        A subset stage ends when its relative objective decrease per iteration falls below
        this (or after ``max_iter`` iterations).
    batch_size : int, default=256
        Columns (ANs) per online mini-batch (mini-batch epochs only).
    n_epochs : int, default=2
        Online mini-batch passes over the shuffled columns, when these run (0 = no first
        phase at all, with either schedule).
    max_iter : int, default=30
        Maximum full-batch refinement iterations (codes for all columns, then atoms).
    tol : float, default=3e-4
        Refinement stops when the relative objective decrease of one iteration is below
        ``tol`` (the knee of the measured objective-vs-time curve on real model
        activations: 1e-3 stops ~0.1–0.3 % higher for about half the time, 1e-4 gains
        < 0.1 % for about twice the time; benchmarks/RESULTS.md).
    normalize : bool, default=True
        Centre each column of X and scale it to unit ℓ2 norm inside ``fit`` (docs/method.md
        §3); constant columns raise. ``False``: X is used as given.
    lasso_max_iter : int, default=3
        Active-set steps per lasso solve while learning (warm-started from the previous
        codes, so a few steps follow the moving atoms); the codes returned are solved to
        optimality for the final atoms whatever this value.
    dict_passes : int, default=3
        Block-coordinate passes over the atoms per refinement iteration (cheap: they use
        only ``AAᵀ`` and ``XAᵀ``).
    momentum : float, default=0.9
        Extrapolation of the atoms between refinement iterations,
        ``D ← D_new + momentum (D_new − D_old)`` (projected onto the unit ball); an iteration
        whose objective would rise falls back to the plain update, so the objective never
        increases. 0 = plain alternating minimisation.
    init : {"svd", "columns"}, default="svd"
        Initial atoms: the leading left singular vectors of X (randomised SVD on at most
        8,192 columns; on the first subset with ``schedule="subsets"``), or K distinct random
        (normalised) columns of X (of the first subset).
    incoherence : float, default=0.0
        Penalty ``η Σ_{j<k} (d_jᵀd_k)²`` on the atoms' pairwise correlations, with η this value
        times the mean code energy ``mean_k (AAᵀ)_kk`` (fixed after the online phase), and the
        atoms kept at unit norm (docs/method.md §3.8). Collinear atoms make their encoding maps
        unidentifiable (each atom's β is estimated against its near-copies); ~1 brings the
        median variance inflation factor near 1 at a small cost in reconstruction. 0: plain
        sparse coding.
    random_state : int, RandomState or None, default=None
        Seeds the initialisation and the batch order.
    progress : bool, default=False
        A progress bar (tqdm, with ETA, on stderr) over the online mini-batches of every epoch
        and the refinement iterations (the bar ends early when the refinement converges).
    desc : str, default="dictionary"
        The bar's label.
    n_jobs : int or None, default=None
        Threads for the lasso over column chunks (:func:`sparse_encode_active_set`); ``None``
        = as many as BLAS may use when ``fit`` starts (all cores unless limited, e.g. by
        ``threadpoolctl.threadpool_limits``). The result does not depend on it.

    Attributes
    ----------
    atoms_ : ndarray of shape (n_timepoints, n_atoms), float32
        Unit-norm (≤ 1) temporal atoms D.
    codes_ : ndarray of shape (n_atoms, n_neurons), float32
        Signed sparse codes A of the training columns: the exact lasso solution for
        ``atoms_``.
    objective_ : float
        Final ``½‖X − DA‖²_F + λ‖A‖₁`` (on the normalised X), plus the incoherence penalty
        when ``incoherence > 0``.
    objective_history_ : list of float
        Objective on all columns at every iteration of the full-batch refinement, the first
        one after the first phase (non-increasing; the last entry is ``objective_``).
    n_iter_ : int
        Online epochs or subset iterations, plus refinement iterations run.
    n_reseeded_ : int
        Unused atoms re-seeded from data columns.
    """

    def __init__(self, n_atoms=64, alpha=0.1, *, schedule="subsets", subset_size=512, subset_tol=1e-3,
                 batch_size=256, n_epochs=2, max_iter=30, tol=3e-4, normalize=True, lasso_max_iter=3,
                 dict_passes=3, momentum=0.9, init="svd", incoherence=0.0, random_state=None, progress=False,
                 desc="dictionary", n_jobs=None):
        self.n_atoms = n_atoms
        self.alpha = alpha
        self.schedule = schedule
        self.subset_size = subset_size
        self.subset_tol = subset_tol
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.max_iter = max_iter
        self.tol = tol
        self.normalize = normalize
        self.lasso_max_iter = lasso_max_iter
        self.dict_passes = dict_passes
        self.momentum = momentum
        self.init = init
        self.incoherence = incoherence
        self.random_state = random_state
        self.progress = progress
        self.desc = desc
        self.n_jobs = n_jobs

    def _check_params(self):
        for name in ("n_atoms", "batch_size", "lasso_max_iter", "subset_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"TemporalDictionary: {name}={v!r} must be a positive int.")
        for name in ("n_epochs", "max_iter", "dict_passes"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 0:
                raise ConfigError(f"TemporalDictionary: {name}={v!r} must be an int >= 0.")
        if not (isinstance(self.alpha, (int, float, np.floating)) and self.alpha >= 0):
            raise ConfigError(f"TemporalDictionary: alpha={self.alpha!r} must be a float >= 0.")
        if not (isinstance(self.incoherence, (int, float, np.floating)) and self.incoherence >= 0):
            raise ConfigError(f"TemporalDictionary: incoherence={self.incoherence!r} must be a float >= 0.")
        if not (isinstance(self.momentum, (int, float, np.floating)) and 0 <= self.momentum < 1):
            raise ConfigError(f"TemporalDictionary: momentum={self.momentum!r} must be in [0, 1).")
        if self.n_jobs is not None and not (isinstance(self.n_jobs, (int, np.integer)) and self.n_jobs >= 1):
            raise ConfigError(f"TemporalDictionary: n_jobs={self.n_jobs!r} must be None or a positive int.")
        if self.schedule not in ("subsets", "online"):
            raise ConfigError(f"TemporalDictionary: schedule={self.schedule!r} must be 'subsets' or 'online'.")
        if not (isinstance(self.subset_tol, (int, float, np.floating)) and self.subset_tol >= 0):
            raise ConfigError(f"TemporalDictionary: subset_tol={self.subset_tol!r} must be a float >= 0.")
        if self.init not in ("columns", "svd"):
            raise ConfigError(f"TemporalDictionary: init={self.init!r} must be 'columns' or 'svd'.")

    def _prep(self, X, reset=None):
        if reset is None:
            X = check_array(X, dtype=[np.float64, np.float32], ensure_all_finite=False,
                            ensure_min_samples=2)
        else:
            X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32],
                              ensure_all_finite=False, ensure_min_samples=2)
        if not np.all(np.isfinite(X)):
            raise DimensionError("X contains NaN or inf; AN time courses must be finite.")
        if X.shape[0] < 2:
            raise DimensionError(f"X has {X.shape[0]} timepoint(s); need at least 2.")
        return prepare_columns(X) if self.normalize else np.asfortranarray(X, dtype=np.float32)

    def fit(self, X, y=None):
        """Learn atoms and codes.

        Three phases: (1) a first fit on part of the columns — with ``schedule="subsets"``
        (when there are at least ``8 × subset_size`` columns) full-batch refinement (below) on
        nested random column subsets of ``subset_size``, 4× as many, … (up to a third of the
        columns), each stage until its relative objective decrease falls below ``subset_tol``;
        otherwise online mini-batch epochs — codes of a batch by a few warm-started active-set
        steps, running sufficient statistics ``AAᵀ``, ``XAᵀ`` over the last epoch's batches,
        one block-coordinate pass over the atoms per batch; (2) full-batch refinement on all
        columns — codes of all columns (warm-started active set), block-coordinate atom update,
        and an extrapolation of the atoms (``momentum``) that is dropped whenever it would raise
        the objective; (3) exact lasso codes for the final atoms.

        Parameters
        ----------
        X : array-like of shape (n_timepoints, n_neurons)
            AN time courses as columns.
        y : ignored

        Returns
        -------
        self
        """
        self._check_params()
        # column-major: the columns (ANs) of a mini-batch are then contiguous to gather
        Xn = np.asfortranarray(self._prep(X, reset=True))
        T, N = Xn.shape
        K = int(self.n_atoms)
        lam = float(self.alpha)
        inner = int(self.lasso_max_iter)
        nt = _n_threads(self.n_jobs)
        rng = check_random_state(self.random_state)
        gen = np.random.default_rng(rng.randint(2**31 - 1))
        sizes = self._subset_sizes(N)
        if sizes:
            order = gen.permutation(N)
            stages = [np.sort(order[:s]) for s in sizes]
            D = self._init_atoms(np.asfortranarray(Xn[:, stages[0]]), K, rng, gen)
        else:
            D = self._init_atoms(Xn, K, rng, gen)
        A = np.zeros((K, N))
        n_re = 0
        history = []
        inc = float(self.incoherence)
        max_iter = int(self.max_iter)
        n_epochs = 0 if sizes else int(self.n_epochs)

        def codes(Xs, xx, D, A0, max_iter, eta):
            G = D.T @ D
            B = (D.astype(np.float32).T @ Xs).astype(np.float64)
            A1, _ = sparse_encode_active_set(G, B, lam, A0=A0, max_iter=max_iter, eager=max_iter is not None,
                                             n_threads=nt)
            return A1, _objective_stats(xx, G, B, A1, lam) + (coherence_penalty(D, eta) if eta > 0 else 0.0)

        from tqdm.auto import tqdm

        bs = min(int(self.batch_size), N)
        n_batches = -(-N // bs)
        bar = tqdm(total=n_epochs * n_batches + (len(sizes) + 1) * (max_iter + 1), desc=str(self.desc), unit="step",
                   disable=not self.progress, leave=False)

        def refine(Xs, D, A, max_iter, tol, probe, label, history=None):
            """Alternating full-batch iterations on the columns ``Xs``; returns D, A, iterations, re-seeded."""
            xx = float(np.einsum("ij,ij->", Xs, Xs, dtype=np.float64))
            eta = 0.0      # the absolute penalty, fixed for these columns
            if inc > 0:
                A_probe = A if (np.any(A) and not probe) else codes(Xs, xx, D, A, inner, 0.0)[0]
                eta = inc * float(np.einsum("kn,kn->", A_probe, A_probe)) / K
            beta = float(self.momentum)
            prev = np.inf
            D_base = None
            n_ref = n_re = 0
            for it in range(max_iter + 1):
                A_new, obj = codes(Xs, xx, D, A, inner, eta)
                restarted = False
                if D_base is not None and obj > prev:
                    # the extrapolation overshot: take the plain block-coordinate update instead,
                    # whose objective (from the previous codes) cannot exceed the previous one
                    D = D_base
                    A_new, obj = codes(Xs, xx, D, A, inner, eta)
                    restarted = True
                A = A_new
                if history is not None:
                    history.append(obj)
                bar.set_postfix_str(f"{label}, objective {obj:.6g}", refresh=False)
                bar.update(1)
                if it == max_iter or (not restarted and np.isfinite(prev) and prev - obj <= tol * abs(prev)):
                    break
                prev = obj
                AAt = A @ A.T
                XAt = (Xs @ A.T.astype(np.float32)).astype(np.float64)
                D_base, r = update_dictionary(D.copy(), AAt, XAt, n_passes=self.dict_passes, rng=gen, X=Xs,
                                              incoherence=eta)
                n_re += r
                n_ref += 1
                if beta > 0 and not restarted:
                    E = D_base + beta * (D_base - D)
                    norms = np.linalg.norm(E, axis=0)
                    # incoherent atoms live on the unit sphere, plain ones in the unit ball
                    D = E / (np.maximum(norms, 1e-300) if eta > 0 else np.maximum(1.0, norms))
                else:
                    D = D_base
            bar.total -= max_iter - it      # a stage that converged early ends its part of the bar
            return D, A, n_ref, n_re, eta

        # ---- first phase (a): full-batch refinement on nested column subsets
        n_first = 0
        for i, cols in enumerate(stages if sizes else []):
            D, A[:, cols], n, r, _ = refine(np.asfortranarray(Xn[:, cols]), D, A[:, cols], max_iter,
                                            float(self.subset_tol), probe=True,
                                            label=f"subset {i + 1}/{len(sizes)} ({cols.size} columns)")
            n_first += n
            n_re += r
        # ---- first phase (b): online mini-batch epochs
        AAt = np.zeros((K, K))
        XAt = np.zeros((T, K))
        step = 0
        for epoch in range(n_epochs):
            bar.set_postfix_str(f"epoch {epoch + 1}/{n_epochs}", refresh=False)
            order = gen.permutation(N)
            for b0 in range(0, N, bs):
                idx = order[b0:b0 + bs]
                Xb = Xn[:, idx]
                Bb = (D.astype(np.float32).T @ Xb).astype(np.float64)
                Ab, _ = sparse_encode_active_set(D.T @ D, Bb, lam, A0=A[:, idx], max_iter=inner, eager=True,
                                                 n_threads=nt)
                A[:, idx] = Ab
                # running means over (about) the last epoch: statistics of atoms long since
                # changed are forgotten at the pace the atoms move
                step += 1
                w = 1.0 / min(step, 2 * n_batches)
                nb = idx.size
                AAt = (1.0 - w) * AAt + (w / nb) * (Ab @ Ab.T)
                XAt = (1.0 - w) * XAt + (w / nb) * (Xb @ Ab.T.astype(np.float32)).astype(np.float64)
                D, r = update_dictionary(D, AAt, XAt, rng=gen, X=Xn,
                                         incoherence=inc * np.trace(AAt) / K if inc > 0 else 0.0)
                n_re += r
                bar.update(1)
        n_first += n_epochs
        # ---- full-batch refinement on all columns, with extrapolated atoms
        D, A, n_ref, r, eta = refine(Xn, D, A, max_iter, float(self.tol), probe=bool(sizes), label="refinement",
                                     history=history)
        n_re += r
        bar.total = bar.n  # converged: the bar ends here
        bar.close()
        # ---- exact codes for the returned atoms (continues from the warm start: lower or equal)
        xx = float(np.einsum("ij,ij->", Xn, Xn, dtype=np.float64))
        A, obj = codes(Xn, xx, D, A, None, eta)
        history[-1] = min(history[-1], obj)
        self.atoms_ = D.astype(np.float32)
        self.codes_ = A.astype(np.float32)
        self.objective_ = float(history[-1])
        self.objective_history_ = history
        self.n_iter_ = n_first + n_ref
        self.n_reseeded_ = n_re
        self.n_timepoints_ = T
        logger.info("TemporalDictionary: X (%d timepoints, %d neurons) -> %d atoms, objective %.6g",
                    T, N, K, self.objective_)
        return self

    def _subset_sizes(self, N):
        """Column counts of the nested subsets of ``schedule="subsets"`` (empty: mini-batch epochs)."""
        if self.schedule != "subsets" or int(self.n_epochs) == 0:
            return []
        sizes = []
        s = int(self.subset_size)
        if 8 * s <= N:      # a smaller first subset saves too little over the mini-batch epochs
            while 3 * s <= N:
                sizes.append(s)
                s *= 4
        return sizes

    def _init_atoms(self, Xn, K, rng, gen):
        T, N = Xn.shape
        if self.init == "columns":
            # distinct data columns: sparse coding starts from actual AN time courses
            cols = Xn[:, np.sort(gen.choice(N, min(K, N), replace=False))].astype(np.float64)
            if K > N:
                extra = Xn[:, gen.integers(N, size=K - N)].astype(np.float64)
                extra += 1e-2 * gen.standard_normal(extra.shape) / np.sqrt(T)
                cols = np.hstack([cols, extra])
            return cols / np.maximum(np.linalg.norm(cols, axis=0), 1e-300)
        r = min(K, T, N)
        # leading left singular vectors of (a random subset of) the columns
        sub = Xn if N <= 8192 else Xn[:, np.sort(gen.choice(N, 8192, replace=False))]
        U, S, _ = randomized_svd(sub, r, n_iter=3, random_state=rng)
        D = np.empty((T, K))
        D[:, :r] = U
        if K > r:   # more atoms than the data rank: random data columns
            cols = Xn[:, gen.integers(N, size=K - r)].astype(np.float64)
            cols += 1e-2 * gen.standard_normal(cols.shape) / np.sqrt(T)
            D[:, r:] = cols / np.linalg.norm(cols, axis=0)
        return D

    def encode(self, X):
        """Codes of new AN time courses on the learned atoms (exact lasso solutions).

        Parameters
        ----------
        X : array-like of shape (n_timepoints, n_columns)
            Normalised like the training data when ``normalize=True``.

        Returns
        -------
        codes : ndarray of shape (n_atoms, n_columns), float32
        """
        check_is_fitted(self, "atoms_")
        Xn = self._prep(X)
        if Xn.shape[0] != self.atoms_.shape[0]:
            raise DimensionError(
                f"X has {Xn.shape[0]} timepoints; the atoms have {self.atoms_.shape[0]}.")
        D = self.atoms_.astype(np.float64)
        A, _ = sparse_encode_active_set(D.T @ D, D.T @ Xn.astype(np.float64), float(self.alpha),
                                        n_threads=_n_threads(self.n_jobs))
        return A.astype(np.float32)


# ---------------------------------------------------------------------------- stability
def _abs_corr(D1, D2):
    a = np.asarray(D1, dtype=np.float64)
    b = np.asarray(D2, dtype=np.float64)
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    na = np.linalg.norm(a, axis=0)
    nb = np.linalg.norm(b, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        C = (a.T @ b) / np.outer(na, nb)
    return np.abs(np.nan_to_num(C))


def match_atoms(D1, D2):
    """Hungarian matching of the atoms of ``D2`` to those of ``D1`` on |correlation|.

    Parameters
    ----------
    D1, D2 : ndarray of shape (n_timepoints, n_atoms)

    Returns
    -------
    perm : ndarray of int, shape (n_atoms,)
        ``D2[:, perm[k]]`` is matched to ``D1[:, k]``.
    corr : ndarray of shape (n_atoms,)
        |Pearson r| of each matched pair.
    """
    D1 = np.asarray(D1)
    D2 = np.asarray(D2)
    if D1.shape != D2.shape:
        raise DimensionError(f"match_atoms: atom arrays differ in shape: {D1.shape} vs {D2.shape}.")
    C = _abs_corr(D1, D2)
    rows, cols = linear_sum_assignment(-C)
    perm = np.empty(D1.shape[1], dtype=np.int64)
    perm[rows] = cols
    return perm, C[rows, cols][np.argsort(rows)]


class AtomStability:
    """Result of :func:`atom_stability`.

    Attributes
    ----------
    pairwise : ndarray of shape (n_runs, n_runs)
        Mean matched |r| between every pair of dictionaries (1 on the diagonal).
    per_atom : ndarray of shape (n_atoms,)
        For each atom of the first dictionary, the mean over the other dictionaries of
        its matched |r|.
    mean : float
        Mean of the off-diagonal ``pairwise`` entries.
    """

    def __init__(self, pairwise, per_atom):
        self.pairwise = pairwise
        self.per_atom = per_atom
        n = pairwise.shape[0]
        off = pairwise[~np.eye(n, dtype=bool)]
        self.mean = float(off.mean()) if off.size else 1.0

    def __repr__(self):
        return f"AtomStability(mean={self.mean:.3f}, n_runs={self.pairwise.shape[0]})"


def atom_stability(list_of_atoms):
    """Stability of learned atoms across seeds (Hungarian matching on |correlation|).

    Parameters
    ----------
    list_of_atoms : list of ndarray of shape (n_timepoints, n_atoms)
        E.g. ``[TemporalDictionary(random_state=s).fit(X).atoms_ for s in seeds]``.

    Returns
    -------
    AtomStability
    """
    mats = [np.asarray(D) for D in list_of_atoms]
    if len(mats) < 2:
        raise ConfigError("atom_stability needs at least 2 dictionaries (e.g. 2 seeds).")
    n = len(mats)
    pw = np.eye(n)
    per_atom = np.zeros(mats[0].shape[1])
    for i in range(n):
        for j in range(i + 1, n):
            _, corr = match_atoms(mats[i], mats[j])
            pw[i, j] = pw[j, i] = corr.mean()
            if i == 0:
                per_atom += corr
    return AtomStability(pw, per_atom / (n - 1))


# ---------------------------------------------------------------------------- collinearity
#: An atom whose variance inflation factor exceeds this is flagged: more than 90 % of its
#: variance is explained by the other atoms, so its β has at least 10× the variance it would
#: have alone (the usual rule of thumb; Kutner et al., *Applied Linear Statistical Models*).
VIF_WARN = 10.0
#: Condition number of the z-scored atoms above which the design is flagged as strongly
#: collinear (Belsley, Kuh & Welsch, *Regression Diagnostics*, 1980: condition indices > 30).
CONDITION_WARN = 30.0


def atom_collinearity(atoms) -> dict:
    """How collinear the atoms are as regressors of the voxel-wise encoding (§4).

    The atoms are z-scored over time (as the encoding uses them); for atom ``k``
    ``VIF_k = 1 / (1 − R²_k)``, ``R²_k`` from regressing it on the others — the diagonal of
    the inverse correlation matrix. The variance of atom ``k``'s β is ``VIF_k`` times what it
    would be with uncorrelated atoms, so with large VIFs the per-atom maps have few
    significant grayordinates even when the atoms together predict well.

    Parameters
    ----------
    atoms : ndarray of shape (n_timepoints, n_atoms)

    Returns
    -------
    dict
        ``vif`` (list per atom; ``None`` for an atom that is constant or an exact linear
        combination of the others), ``median_vif``, ``max_vif``, ``condition_number``
        (largest over smallest singular value of the z-scored atoms; ``None`` if singular),
        ``n_high_vif`` (atoms above :data:`VIF_WARN`), the two thresholds, and ``collinear``
        (max VIF > :data:`VIF_WARN` or condition number > :data:`CONDITION_WARN`).
    """
    D = np.asarray(atoms, dtype=np.float64)
    if D.ndim != 2:
        raise DimensionError(f"atoms must be 2-D (n_timepoints, n_atoms), got shape {D.shape}")
    T, K = D.shape
    Z = D - D.mean(axis=0)
    sd = np.sqrt(np.einsum("tk,tk->k", Z, Z) / max(T, 1))
    ok = sd > 1e-12 * max(float(np.abs(D).max(initial=0.0)), 1e-300)
    Z = Z / np.where(ok, sd, 1.0)
    vif = np.full(K, np.inf)
    cond = np.inf
    if ok.all() and K > 0:
        s = np.linalg.svd(Z, compute_uv=False)
        cond = float(s[0] / s[-1]) if s[-1] > s[0] * 1e-13 else np.inf
        if np.isfinite(cond):
            R = (Z.T @ Z) / T
            vif = np.diag(np.linalg.inv(R)).copy()
    elif ok.any():
        R = (Z[:, ok].T @ Z[:, ok]) / T
        with np.errstate(all="ignore"):
            try:
                vif[ok] = np.diag(np.linalg.inv(R))
            except np.linalg.LinAlgError:
                pass
    vif = np.where(np.isfinite(vif) & (vif > 0), np.maximum(vif, 1.0), np.inf)
    finite = lambda v: float(v) if np.isfinite(v) else None   # noqa: E731  (JSON has no inf)
    out = {
        "vif": [finite(v) for v in vif],
        "median_vif": finite(np.median(vif)) if K else None,
        "max_vif": finite(vif.max()) if K else None,
        "condition_number": finite(cond),
        "n_high_vif": int((vif > VIF_WARN).sum()),
        "vif_threshold": VIF_WARN,
        "condition_threshold": CONDITION_WARN,
    }
    out["collinear"] = bool(K > 1 and ((vif > VIF_WARN).any() or not cond <= CONDITION_WARN))
    return out
