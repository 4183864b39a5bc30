"""Incoherent atoms (``dictionary.incoherence``): the exact atom update, a non-increasing objective,
identifiable atoms on collinear data, and the encoding's per-atom maps kept apart."""

import numpy as np
import pytest
from scipy.optimize import minimize

from vlmbrain.dictionary import (
    TemporalDictionary,
    atom_collinearity,
    coherence_penalty,
    sphere_block_minimum,
    update_dictionary,
)


def _collinear(seed=0, T=300, K=12, N=1500, noise=0.1):
    """Columns coded sparsely on K atoms that all lie near a 4-dimensional subspace."""
    rng = np.random.default_rng(seed)
    base = np.cumsum(rng.standard_normal((T, 4)), axis=0)
    D = base @ rng.standard_normal((4, K)) + 0.1 * rng.standard_normal((T, K))
    D /= np.linalg.norm(D, axis=0)
    A = rng.standard_normal((K, N)) * (rng.random((K, N)) < 0.25)
    return D, A, D @ A + noise * rng.standard_normal((T, N))


def _smooth(seed=0, T=240, N=600, sigma=6, n_sources=6, noise=0.3):
    """HRF-like smooth time courses mixing a few sources: a plain dictionary's atoms are collinear (VIF ~1e4)."""
    from scipy.ndimage import gaussian_filter1d

    rng = np.random.default_rng(seed)
    S = gaussian_filter1d(rng.standard_normal((T, n_sources)), sigma, axis=0)
    X = S @ rng.standard_normal((n_sources, N))
    return X + noise * S.std() * gaussian_filter1d(rng.standard_normal((T, N)), sigma, axis=0)


def test_block_update_is_the_exact_minimiser_on_the_sphere():
    """argmin over ‖d‖ = 1 of ½a‖d‖² − dᵀc + η Σ_j (d_jᵀd)², against a generic constrained solver."""
    D, A, X = _collinear(1, T=60, K=6, N=300)
    AAt, XAt = A @ A.T, X @ A.T
    eta = np.trace(AAt) / 6
    k = 2
    others = np.delete(D, k, axis=1)
    c = XAt[:, k] - others @ np.delete(AAt[:, k], k)
    a = AAt[k, k]

    def f(d):
        return 0.5 * a * d @ d - d @ c + eta * np.sum((others.T @ d) ** 2)

    d = sphere_block_minimum(a, c, others, eta)
    assert np.linalg.norm(d) == pytest.approx(1.0, abs=1e-12)
    best = min((minimize(f, x0, constraints=[{"type": "eq", "fun": lambda v: 1 - v @ v}], method="SLSQP",
                         options={"maxiter": 1000, "ftol": 1e-14}) for x0 in (D[:, k], c / np.linalg.norm(c))),
               key=lambda r: r.fun)
    assert f(d) <= best.fun + 1e-8 * abs(best.fun)


def test_penalised_updates_never_raise_the_penalised_objective():
    D, A, X = _collinear(2)
    AAt, XAt = A @ A.T, X @ A.T
    eta = np.trace(AAt) / D.shape[1]

    def total(Dk):
        return 0.5 * np.sum((X - Dk @ A) ** 2) + coherence_penalty(Dk, eta)

    Dk, prev = D.copy(), total(D)
    for _ in range(4):
        Dk, _ = update_dictionary(Dk, AAt, XAt, incoherence=eta)
        now = total(Dk)
        assert now <= prev + 1e-9 * abs(prev)
        prev = now
    np.testing.assert_allclose(np.linalg.norm(Dk, axis=0), 1.0, atol=1e-12)


def test_incoherence_makes_collinear_atoms_identifiable():
    """Median VIF from ~1e4 to about 1; the reconstruction residual grows by at most a third."""
    X = _smooth(0)
    plain = TemporalDictionary(n_atoms=12, alpha=0.05, random_state=0).fit(X)
    incoherent = TemporalDictionary(n_atoms=12, alpha=0.05, random_state=0, incoherence=1.0).fit(X)
    vif_plain = atom_collinearity(plain.atoms_)["median_vif"]
    vif_inc = atom_collinearity(incoherent.atoms_)["median_vif"]
    assert vif_plain > 1000
    assert vif_inc < 2
    Xn = X - X.mean(0)
    Xn /= np.linalg.norm(Xn, axis=0)

    def resid(td):
        return np.linalg.norm(Xn - td.atoms_.astype(float) @ td.codes_.astype(float))

    assert resid(incoherent) <= 1.35 * resid(plain)
    np.testing.assert_allclose(np.linalg.norm(incoherent.atoms_, axis=0), 1.0, atol=1e-5)


def test_zero_incoherence_is_the_plain_update():
    D, A, X = _collinear(4, T=80, K=5, N=200)
    AAt, XAt = A @ A.T, X @ A.T
    a, _ = update_dictionary(D.copy(), AAt, XAt)
    b, _ = update_dictionary(D.copy(), AAt, XAt, incoherence=0.0)
    np.testing.assert_array_equal(a, b)


def test_per_atom_maps_are_recovered_only_with_incoherent_atoms():
    """Grayordinates each driven by one (used) atom plus noise: with the plain, collinear atoms the
    joint OLS cannot tell the driver from its near-copies (|t| < 2, driver found at chance); with
    incoherent atoms every driver is found with a large t."""
    from vlmbrain.encoding import VoxelwiseEncoder

    X = _smooth(0)
    out = {}
    for inc in (0.0, 1.0):
        td = TemporalDictionary(n_atoms=12, alpha=0.05, random_state=0, incoherence=inc).fit(X)
        D = td.atoms_.astype(float)
        used = np.flatnonzero(np.any(td.codes_ != 0, axis=1))
        V = 240
        drivers = used[np.arange(V) % used.size]
        Y = D[:, drivers] + 0.05 * np.random.default_rng(9).standard_normal((D.shape[0], V))
        enc = VoxelwiseEncoder("ols").fit(D.astype(np.float32), Y.astype(np.float32), runs=np.repeat([0, 1], 120))
        found = np.argmax(np.abs(enc.tvalues_), axis=0) == drivers
        out[inc] = (found.mean(), np.median(np.abs(enc.tvalues_[drivers, np.arange(V)])))
    assert out[0.0][0] < 0.5 and out[0.0][1] < 2
    assert out[1.0][0] >= 0.95 and out[1.0][1] > 5


def test_a_negative_incoherence_is_refused():
    from vlmbrain.errors import ConfigError

    with pytest.raises(ConfigError, match=r"incoherence=-1\.0 must be a float >= 0"):
        TemporalDictionary(n_atoms=2, incoherence=-1.0).fit(np.random.default_rng(0).normal(size=(20, 10)))


def test_incoherence_with_the_subset_schedule():
    """The penalty also holds when the first phase runs on column subsets (16, 64, then 600)."""
    X = _smooth(0)
    td = TemporalDictionary(n_atoms=12, alpha=0.05, random_state=0, incoherence=1.0, subset_size=16).fit(X)
    assert td._subset_sizes(X.shape[1]) == [16, 64]
    assert atom_collinearity(td.atoms_)["median_vif"] < 2
    np.testing.assert_allclose(np.linalg.norm(td.atoms_, axis=0), 1.0, atol=1e-5)
