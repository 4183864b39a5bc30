"""Sparse dictionary learning of temporal atoms (METHOD.md §3).

Solves ::

    min_{D, A}  ½ ‖X − D A‖²_F + λ ‖A‖₁    s.t. ‖d_k‖₂ ≤ 1

for ``X`` (n_timepoints, n_neurons) (columns centred, unit ℓ2 norm), atoms ``D``
(n_timepoints, n_atoms) and signed sparse codes ``A`` (n_atoms, n_neurons) — the
same objective as scikit-learn's ``DictionaryLearning`` on ``X.T`` (samples = ANs).

Solver (pure functions under the estimator):

* :func:`sparse_encode_gram` — the lasso for *all* columns at once by cyclic
  coordinate descent in Gram form: only ``G = DᵀD`` (K × K) and ``B = DᵀX`` (K × n) are
  needed, each coordinate update is one vectorised rank-1 update over all columns.
* :func:`update_dictionary` — block-coordinate descent on the atoms from the
  sufficient statistics ``AAᵀ`` (K × K) and ``XAᵀ`` (T × K) (Mairal et al. 2010), with
  projection onto the unit ball and re-seeding of unused atoms.
* :func:`sparse_encode_fista` — approximate batch lasso (one GEMM per iteration) for the
  online phase.
* :class:`TemporalDictionary` — online mini-batch epochs (shuffled batches, FISTA codes,
  decayed sufficient statistics as in Mairal et al. 2010 / scikit-learn) followed by
  full-batch alternating refinement (exact CD codes) until the objective stops decreasing.
* :func:`atom_stability` — Hungarian matching of atoms across seeds on |correlation|.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.extmath import randomized_svd
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from threadpoolctl import ThreadpoolController

from vlmbrain.errors import ConfigError, DimensionError

logger = logging.getLogger("vlmbrain")

__all__ = ["TemporalDictionary", "sparse_encode_gram", "update_dictionary", "objective",
           "prepare_columns", "atom_stability", "match_atoms", "AtomStability"]


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


def sparse_encode_fista(G, B, alpha, A0=None, n_iter=50):
    """Approximate lasso codes for a mini-batch by accelerated proximal gradient (FISTA).

    Same problem as :func:`sparse_encode_gram`; every iteration is one ``G @ A`` GEMM and a
    soft threshold, so small batches cost no Python loop over atoms. Used for the online
    phase, where exact codes are not needed (the refinement uses coordinate descent).

    Returns
    -------
    A : ndarray of shape (n_atoms, n_columns)
    """
    G = np.asarray(G, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    L = max(float(np.linalg.eigvalsh(G)[-1]), 1e-12)
    A = np.zeros_like(B) if A0 is None else np.array(A0, dtype=np.float64)
    Z = A.copy()
    t = 1.0
    thr = alpha / L
    for _ in range(int(n_iter)):
        U = Z - (G @ Z - B) / L
        A_new = U - np.clip(U, -thr, thr)
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        Z = A_new + ((t - 1.0) / t_new) * (A_new - A)
        A, t = A_new, t_new
    return A


def update_dictionary(D, AAt, XAt, n_passes=1, rng=None, X=None):
    """Block-coordinate update of the atoms from sufficient statistics.

    For each atom ``k``: ``d_k ← d_k + (XAᵀ_k − D AAᵀ_k) / AAᵀ_kk``, then
    ``d_k ← d_k / max(1, ‖d_k‖)``. An atom that no code uses (``AAᵀ_kk ≈ 0``) is re-seeded
    with a random (normalised) column of ``X`` when ``X`` is given.

    Parameters
    ----------
    D : ndarray of shape (n_timepoints, n_atoms), updated in place (float64)
    AAt : ndarray of shape (n_atoms, n_atoms)
    XAt : ndarray of shape (n_timepoints, n_atoms)

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
                    col = col + 1e-3 * rng.standard_normal(col.shape) / np.sqrt(col.size)
                    D[:, k] = col / max(np.linalg.norm(col), 1e-300)
                    n_re += 1
                continue
            dk = D[:, k] + (XAt[:, k] - D @ AAt[:, k]) / akk
            D[:, k] = dk / max(1.0, np.linalg.norm(dk))
    return D, n_re


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
    batch_size : int, default=256
        Columns (ANs) per online mini-batch.
    n_epochs : int, default=2
        Online mini-batch passes over the shuffled columns (0 = skip the online phase).
    max_iter : int, default=30
        Maximum full-batch refinement iterations (codes for all columns, then atoms).
    tol : float, default=1e-3
        Refinement stops when the relative objective decrease of one iteration is below
        ``tol`` (1e-4 or smaller: a further ~0.5 % lower objective for ~3x the time).
    normalize : bool, default=True
        Centre each column of X and scale it to unit ℓ2 norm inside ``fit`` (METHOD.md
        §3); constant columns raise. ``False``: X is used as given.
    lasso_max_iter : int, default=100
        Coordinate-descent sweeps per lasso solve.
    fista_iter : int, default=50
        FISTA iterations per mini-batch lasso in the online phase (warm-started).
    dict_passes : int, default=3
        Block-coordinate passes over the atoms per refinement iteration (cheap: they use
        only ``AAᵀ`` and ``XAᵀ``).
    random_state : int, RandomState or None, default=None
        Seeds the initialisation (randomized SVD) and the batch order.

    Attributes
    ----------
    atoms_ : ndarray of shape (n_timepoints, n_atoms), float32
        Unit-norm (≤ 1) temporal atoms D.
    codes_ : ndarray of shape (n_atoms, n_neurons), float32
        Signed sparse codes A of the training columns.
    objective_ : float
        Final ``½‖X − DA‖²_F + λ‖A‖₁`` (on the normalised X).
    objective_history_ : list of float
        Objective after the online phase and after every refinement iteration.
    n_iter_ : int
        Online epochs + refinement iterations run.
    n_reseeded_ : int
        Unused atoms re-seeded from data columns.
    """

    def __init__(self, n_atoms=64, alpha=0.1, *, batch_size=256, n_epochs=2, max_iter=30,
                 tol=1e-3, normalize=True, lasso_max_iter=100, fista_iter=50, dict_passes=3,
                 random_state=None):
        self.n_atoms = n_atoms
        self.alpha = alpha
        self.batch_size = batch_size
        self.n_epochs = n_epochs
        self.max_iter = max_iter
        self.tol = tol
        self.normalize = normalize
        self.lasso_max_iter = lasso_max_iter
        self.dict_passes = dict_passes
        self.fista_iter = fista_iter
        self.random_state = random_state

    def _check_params(self):
        for name in ("n_atoms", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"TemporalDictionary: {name}={v!r} must be a positive int.")
        for name in ("n_epochs", "max_iter"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 0:
                raise ConfigError(f"TemporalDictionary: {name}={v!r} must be an int >= 0.")
        if not (isinstance(self.alpha, (int, float, np.floating)) and self.alpha >= 0):
            raise ConfigError(f"TemporalDictionary: alpha={self.alpha!r} must be a float >= 0.")

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
        rng = check_random_state(self.random_state)
        gen = np.random.default_rng(rng.randint(2**31 - 1))
        D = self._init_atoms(Xn, K, rng, gen)
        A = np.zeros((K, N))
        n_re = 0
        # ---- online mini-batch phase (small problems: single-threaded BLAS is faster)
        ctl = ThreadpoolController()
        with ctl.limit(limits=1, user_api="blas"):
            bs = min(int(self.batch_size), N)
            AAt = np.zeros((K, K))
            XAt = np.zeros((T, K))
            step = 0
            for _ in range(int(self.n_epochs)):
                order = gen.permutation(N)
                for b0 in range(0, N, bs):
                    idx = order[b0:b0 + bs]
                    Xb = Xn[:, idx]
                    Db = D.astype(np.float32)
                    Bb = (Db.T @ Xb).astype(np.float64)
                    Ab = sparse_encode_fista(D.T @ D, Bb, lam, A0=A[:, idx],
                                             n_iter=self.fista_iter)
                    A[:, idx] = Ab
                    # decayed sufficient statistics (scikit-learn's MiniBatchDictionaryLearning)
                    step += 1
                    nb = idx.size
                    theta = nb * step if step < bs - 1 else bs**2 + step - bs
                    beta = (theta + 1 - nb) / (theta + 1)
                    AAt = beta * AAt + Ab @ Ab.T / nb
                    XAt = beta * XAt + (Xb @ Ab.T.astype(np.float32)).astype(np.float64) / nb
                    D, r = update_dictionary(D, AAt, XAt, rng=gen, X=Xn)
                    n_re += r
        # ---- full-batch refinement
        xx = float(np.einsum("ij,ij->", Xn, Xn, dtype=np.float64))
        history = []
        n_ref = 0
        prev = np.inf
        for it in range(int(self.max_iter) + 1):
            G = D.T @ D
            Bf = (D.astype(np.float32).T @ Xn).astype(np.float64)
            with ctl.limit(limits=1, user_api="blas"):
                A, _ = sparse_encode_gram(G, Bf, lam, A0=A, max_iter=self.lasso_max_iter)
            obj = _objective_stats(xx, G, Bf, A, lam)
            history.append(obj)
            if it == int(self.max_iter) or (np.isfinite(prev) and prev - obj <= self.tol * abs(prev)):
                break
            prev = obj
            AAt = A @ A.T
            XAt = (Xn @ A.T.astype(np.float32)).astype(np.float64)
            D_old = D.copy()
            with ctl.limit(limits=1, user_api="blas"):
                D, r = update_dictionary(D, AAt, XAt, n_passes=self.dict_passes, rng=gen, X=Xn)
            n_re += r
            n_ref += 1
            if r == 0 and np.allclose(D, D_old, atol=1e-9):
                break
        if len(history) > 1 and history[-1] > history[-2]:   # never return a worse iterate
            logger.debug("TemporalDictionary: last refinement step did not decrease the objective")
        self.atoms_ = D.astype(np.float32)
        self.codes_ = A.astype(np.float32)
        self.objective_ = float(history[-1])
        self.objective_history_ = history
        self.n_iter_ = int(self.n_epochs) + n_ref
        self.n_reseeded_ = n_re
        self.n_timepoints_ = T
        logger.info("TemporalDictionary: X (%d timepoints, %d neurons) -> %d atoms, objective %.6g",
                    T, N, K, self.objective_)
        return self

    def _init_atoms(self, Xn, K, rng, gen):
        T, N = Xn.shape
        r = min(K, T, N)
        # leading left singular vectors of (a random subset of) the columns
        sub = Xn if N <= 8192 else Xn[:, np.sort(gen.choice(N, 8192, replace=False))]
        U, S, _ = randomized_svd(np.ascontiguousarray(sub), r, n_iter=3, random_state=rng)
        D = np.empty((T, K))
        D[:, :r] = U
        if K > r:   # more atoms than the data rank: random data columns
            cols = Xn[:, gen.integers(N, size=K - r)].astype(np.float64)
            cols += 1e-2 * gen.standard_normal(cols.shape) / np.sqrt(T)
            D[:, r:] = cols / np.linalg.norm(cols, axis=0)
        return D

    def encode(self, X):
        """Codes of new AN time courses on the learned atoms.

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
        A, _ = sparse_encode_gram(D.T @ D, D.T @ Xn.astype(np.float64), float(self.alpha),
                                  max_iter=self.lasso_max_iter)
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
