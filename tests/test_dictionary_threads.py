"""The batched active-set lasso: exact on a planted problem, and the same for any thread count."""

import numpy as np
import pytest

from vlmbrain.dictionary import TemporalDictionary, sparse_encode_active_set, sparse_encode_gram


def _problem(T=80, K=12, n=1200, seed=0):
    """Correlated smooth atoms and columns of 1-4 planted atoms: supports of several sizes."""
    rng = np.random.default_rng(seed)
    kern = np.exp(-0.5 * (np.arange(-6, 7) / 2.5) ** 2)
    D = np.apply_along_axis(lambda x: np.convolve(x, kern, mode="same"), 0, rng.standard_normal((T, K)))
    D /= np.linalg.norm(D, axis=0)
    A = np.zeros((K, n))
    for j in range(n):
        s = rng.integers(1, 5)
        A[rng.choice(K, s, replace=False), j] = rng.standard_normal(s) * 2
    X = D @ A + 0.05 * rng.standard_normal((T, n))
    return D.T @ D, D.T @ X


def _kkt_violation(G, B, A, lam):
    grad = G @ A - B
    on = A != 0
    v_on = np.abs(grad + lam * np.sign(A))[on]
    v_off = np.maximum(np.abs(grad) - lam, 0.0)[~on]
    return max(v_on.max(initial=0.0), v_off.max(initial=0.0))


def test_active_set_matches_coordinate_descent_and_threads():
    G, B = _problem()
    lam = 0.1
    A1, steps = sparse_encode_active_set(G, B, lam, n_threads=1)
    assert _kkt_violation(G, B, A1, lam) < 1e-9          # the lasso's optimality conditions hold
    sizes = np.count_nonzero(A1, axis=0)
    assert len(np.unique(sizes)) >= 4 and steps > 1       # several support sizes, several steps
    Acd, _ = sparse_encode_gram(G, B, lam, max_iter=20000, tol=1e-14)
    np.testing.assert_allclose(A1, Acd, atol=1e-8)        # the same minimiser as coordinate descent
    for nt in (2, 3):
        At, _ = sparse_encode_active_set(G, B, lam, n_threads=nt)
        np.testing.assert_array_equal(At, A1)             # column chunks: bitwise the same codes


@pytest.mark.parametrize("n_threads", [2, 3])
def test_warm_started_steps_do_not_depend_on_threads(n_threads):
    G, B = _problem(seed=1)
    rng = np.random.default_rng(2)
    A0 = np.where(rng.random(B.shape) < 0.15, rng.standard_normal(B.shape), 0.0)   # a rough warm start
    A1, _ = sparse_encode_active_set(G, B, 0.1, A0=A0, max_iter=2, eager=True, n_threads=1)
    At, _ = sparse_encode_active_set(G, B, 0.1, A0=A0, max_iter=2, eager=True, n_threads=n_threads)
    np.testing.assert_array_equal(At, A1)
    # two steps from a rough start are approximate, yet lower the objective from the start
    def obj(A):
        return -np.einsum("kn,kn->", A, B) + 0.5 * np.einsum("kn,kn->", A, G @ A) + 0.1 * np.abs(A).sum()
    assert obj(A1) < obj(A0)


def test_fit_same_for_any_n_jobs():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((60, 8)) @ rng.standard_normal((8, 700)) + 0.1 * rng.standard_normal((60, 700))
    fits = [TemporalDictionary(n_atoms=8, alpha=0.1, batch_size=512, random_state=0, n_jobs=nj).fit(X)
            for nj in (1, 2)]
    np.testing.assert_array_equal(fits[0].atoms_, fits[1].atoms_)
    np.testing.assert_array_equal(fits[0].codes_, fits[1].codes_)
    assert fits[0].objective_history_ == fits[1].objective_history_
