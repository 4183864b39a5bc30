"""TemporalDictionary against scikit-learn (objective) and planted sparse atoms."""

import numpy as np
import pytest
from sklearn.datasets import make_sparse_coded_signal
from sklearn.decomposition import MiniBatchDictionaryLearning, sparse_encode
from sklearn.utils.estimator_checks import parametrize_with_checks

from vlmbrain.dictionary import (TemporalDictionary, atom_stability, match_atoms, objective,
                                 prepare_columns, sparse_encode_gram, update_dictionary)
from vlmbrain.errors import ConfigError, DimensionError


def _planted(n_neurons=600, n_atoms=8, T=120, seed=0):
    Y, D, C = make_sparse_coded_signal(n_samples=n_neurons, n_components=n_atoms, n_features=T,
                                       n_nonzero_coefs=2, random_state=seed)
    return Y.T, D.T, C.T     # X (T, N), atoms (T, K), codes (K, N)


def test_sparse_encode_gram_matches_sklearn_lasso(rng):
    D = rng.standard_normal((60, 10))
    D /= np.linalg.norm(D, axis=0)
    X = prepare_columns(rng.standard_normal((60, 40))).astype(np.float64)
    A, _ = sparse_encode_gram(D.T @ D, D.T @ X, 0.1, max_iter=2000, tol=1e-12)
    U = sparse_encode(X.T, D.T, algorithm="lasso_cd", alpha=0.1, max_iter=10000)
    assert objective(X, D, A, 0.1) <= objective(X, D, U.T, 0.1) + 1e-9
    np.testing.assert_allclose(A, U.T, atol=1e-4)


def test_update_dictionary_decreases_objective(rng):
    X = prepare_columns(rng.standard_normal((50, 80))).astype(np.float64)
    D = rng.standard_normal((50, 6))
    D /= np.linalg.norm(D, axis=0)
    A, _ = sparse_encode_gram(D.T @ D, D.T @ X, 0.05)
    before = objective(X, D, A, 0.05)
    D2, _ = update_dictionary(D.copy(), A @ A.T, X @ A.T, n_passes=3)
    assert objective(X, D2, A, 0.05) < before
    assert np.all(np.linalg.norm(D2, axis=0) <= 1 + 1e-12)


def test_planted_atoms_recovered():
    X, D_true, _ = _planted()
    td = TemporalDictionary(n_atoms=8, alpha=0.05, random_state=0).fit(X)
    _, corr = match_atoms(D_true, td.atoms_)
    assert corr.min() > 0.95
    assert td.atoms_.shape == (120, 8) and td.codes_.shape == (8, 600)
    assert np.all(np.linalg.norm(td.atoms_, axis=0) <= 1 + 1e-5)
    assert (td.codes_ < 0).any() and (td.codes_ > 0).any()    # signed codes
    assert (td.codes_ == 0).mean() > 0.5                          # sparse
    hist = np.array(td.objective_history_)
    assert np.all(np.diff(hist) <= 1e-6 * hist[0]) and td.objective_ == pytest.approx(hist[-1])
    Xn = prepare_columns(X)
    assert td.objective_ == pytest.approx(objective(Xn, td.atoms_, td.codes_, 0.05), rel=1e-4)


def test_objective_not_worse_than_sklearn():
    X, _, _ = _planted(n_neurons=500, n_atoms=10, T=60, seed=1)
    Xn = prepare_columns(X)
    td = TemporalDictionary(n_atoms=10, alpha=0.1, random_state=0).fit(X)
    sk = MiniBatchDictionaryLearning(n_components=10, alpha=0.1, batch_size=256, max_iter=5,
                                     random_state=0).fit(Xn.T)
    Dsk = sk.components_.T.astype(np.float64)
    Ask = sparse_encode(Xn.T.astype(np.float64), Dsk.T, algorithm="lasso_cd", alpha=0.1,
                        max_iter=5000).T
    assert td.objective_ <= objective(Xn, Dsk, Ask, 0.1) * (1 + 1e-6)


def test_stability_across_seeds_and_encode():
    X, _, _ = _planted(n_neurons=400, n_atoms=6, T=100, seed=2)
    fits = [TemporalDictionary(n_atoms=6, alpha=0.05, random_state=s).fit(X) for s in (0, 1)]
    st = atom_stability([f.atoms_ for f in fits])
    assert st.pairwise.shape == (2, 2) and st.mean > 0.95 and st.per_atom.shape == (6,)
    same = TemporalDictionary(n_atoms=6, alpha=0.05, random_state=0).fit(X)
    np.testing.assert_allclose(same.atoms_, fits[0].atoms_)        # reproducible from the seed
    codes = fits[0].encode(X[:, :20])
    np.testing.assert_allclose(codes, fits[0].codes_[:, :20], atol=2e-3)
    perm, corr = match_atoms(fits[0].atoms_, fits[0].atoms_[:, ::-1])
    np.testing.assert_array_equal(perm, np.arange(6)[::-1])
    np.testing.assert_allclose(corr, 1.0, atol=1e-6)


def test_errors(rng):
    X = rng.standard_normal((30, 10))
    X[:, 4] = 2.0
    with pytest.raises(DimensionError, match=r"1 constant column\(s\) \(n_neurons index \[4\]"):
        TemporalDictionary(n_atoms=3).fit(X)
    with pytest.raises(ConfigError, match="n_atoms=0"):
        TemporalDictionary(n_atoms=0).fit(rng.standard_normal((30, 10)))
    with pytest.raises(DimensionError, match="NaN or inf"):
        TemporalDictionary(n_atoms=2).fit(np.full((5, 5), np.nan))
    with pytest.raises(ConfigError, match="at least 2 dictionaries"):
        atom_stability([np.eye(3)])
    with pytest.raises(DimensionError, match="differ in shape"):
        match_atoms(np.eye(3), np.eye(4))


@parametrize_with_checks([TemporalDictionary(n_atoms=3, max_iter=5, random_state=0)])
def test_sklearn_contract(estimator, check):
    check(estimator)
