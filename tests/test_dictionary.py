"""TemporalDictionary against scikit-learn (objective) and planted sparse atoms."""

import numpy as np
import pytest
from sklearn.datasets import make_sparse_coded_signal
from sklearn.decomposition import MiniBatchDictionaryLearning, sparse_encode
from sklearn.utils.estimator_checks import parametrize_with_checks

from vlmbrain.dictionary import (CONDITION_WARN, VIF_WARN, TemporalDictionary, atom_collinearity,
                                 atom_stability, match_atoms, objective, prepare_columns,
                                 sparse_encode_active_set, sparse_encode_gram, update_dictionary)
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


def _correlated_atoms(rng, T=150, K=12, shared=0.97):
    """Unit-norm atoms that share most of one smooth component (as real model activations do)."""
    common = np.cumsum(rng.standard_normal(T))
    D = shared * common[:, None] / np.linalg.norm(common) + (1 - shared) * rng.standard_normal((T, K)) / np.sqrt(T)
    return D / np.linalg.norm(D, axis=0)


@pytest.mark.parametrize("shared", [0.0, 0.97])
def test_active_set_is_the_exact_lasso(rng, shared):
    D = _correlated_atoms(rng, shared=shared)
    X = prepare_columns(D @ (rng.standard_normal((12, 300)) * (rng.random((12, 300)) < 0.3))
                        + 0.05 * rng.standard_normal((150, 300))).astype(np.float64)
    G, B = D.T @ D, D.T @ X
    A, steps = sparse_encode_active_set(G, B, 0.05)
    # optimality conditions of the lasso, column by column
    grad = G @ A - B
    on = A != 0
    np.testing.assert_allclose(grad[on], -0.05 * np.sign(A[on]), atol=1e-9)
    assert np.abs(grad[~on]).max() <= 0.05 * (1 + 1e-8)
    U = sparse_encode(X.T, D.T, algorithm="lasso_cd", alpha=0.05, max_iter=100000)
    assert objective(X, D, A, 0.05) <= objective(X, D, U.T, 0.05) + 1e-9
    # warm starts from perturbed codes (or any signs) reach the same solution in fewer steps
    A2, steps2 = sparse_encode_active_set(G, B, 0.05, A0=A * 1.1 + 0.01 * (A != 0))
    np.testing.assert_allclose(A2, A, atol=1e-10)
    assert steps2 < steps
    A3, _ = sparse_encode_active_set(G, B, 0.05, A0=-A)
    np.testing.assert_allclose(A3, A, atol=1e-10)
    # a step budget gives codes whose objective still does not exceed the start's
    A4, _ = sparse_encode_active_set(G, B, 0.05, A0=np.zeros_like(A), max_iter=2, eager=True)
    assert objective(X, D, A4, 0.05) <= objective(X, D, np.zeros_like(A), 0.05)


def test_active_set_with_duplicate_atoms(rng):
    D = rng.standard_normal((40, 5))
    D[:, 3] = D[:, 1]                                    # two identical atoms
    D /= np.linalg.norm(D, axis=0)
    X = prepare_columns(rng.standard_normal((40, 30))).astype(np.float64)
    A, _ = sparse_encode_active_set(D.T @ D, D.T @ X, 0.1)
    ref, _ = sparse_encode_gram(D.T @ D, D.T @ X, 0.1, max_iter=5000, tol=1e-12)
    assert objective(X, D, A, 0.1) <= objective(X, D, ref, 0.1) + 1e-8


def test_fit_on_collinear_atoms(rng):
    # real activations: atoms sharing one dominant component; the estimator must reach a lower
    # objective than scikit-learn's online learner and keep its contract on such data
    D = _correlated_atoms(rng, T=120, K=10, shared=0.9)
    X = D @ (rng.standard_normal((10, 800)) * (rng.random((10, 800)) < 0.3)) + 0.05 * rng.standard_normal((120, 800))
    Xn = prepare_columns(X)
    td = TemporalDictionary(n_atoms=10, alpha=0.1, random_state=0).fit(X)
    hist = np.array(td.objective_history_)
    assert np.all(np.diff(hist) <= 1e-9 * hist[0])
    assert td.objective_ == pytest.approx(objective(Xn, td.atoms_, td.codes_, 0.1), rel=1e-5)
    sk = MiniBatchDictionaryLearning(n_components=10, alpha=0.1, batch_size=256, max_iter=20,
                                     random_state=0).fit(Xn.T)
    Dsk = sk.components_.T.astype(np.float64)
    Ask, _ = sparse_encode_active_set(Dsk.T @ Dsk, Dsk.T @ Xn.astype(np.float64), 0.1)
    assert td.objective_ <= objective(Xn, Dsk, Ask, 0.1) * (1 + 1e-6)
    # the codes are the exact lasso solution for the returned atoms
    Dm = td.atoms_.astype(np.float64)
    Aex, _ = sparse_encode_active_set(Dm.T @ Dm, Dm.T @ Xn.astype(np.float64), 0.1)
    np.testing.assert_allclose(td.codes_, Aex, atol=1e-5)


@pytest.mark.parametrize("kw", [{"momentum": 0.0}, {"init": "columns"}, {"n_epochs": 0}, {"lasso_max_iter": 1},
                                {"subset_size": 32}, {"subset_size": 32, "init": "columns"}])
def test_options_keep_the_planted_atoms(kw):
    X, D_true, _ = _planted(seed=3)
    td = TemporalDictionary(n_atoms=8, alpha=0.05, random_state=0, **kw).fit(X)
    _, corr = match_atoms(D_true, td.atoms_)
    assert corr.min() > 0.95
    hist = np.array(td.objective_history_)
    assert np.all(np.diff(hist) <= 1e-6 * hist[0])


def test_subset_stages():
    td = TemporalDictionary()
    assert td._subset_sizes(9216) == [512, 2048]            # 4x each, while at most a third of the columns
    assert td._subset_sizes(55296) == [512, 2048, 8192]
    assert td._subset_sizes(4096) == [512] and td._subset_sizes(4095) == []   # first subset at most 1/8
    assert TemporalDictionary(schedule="online")._subset_sizes(9216) == []
    assert TemporalDictionary(n_epochs=0)._subset_sizes(9216) == []


def test_subsets_fall_back_to_the_epochs_on_few_columns():
    X, _, _ = _planted(n_neurons=300, n_atoms=6, T=80, seed=3)
    a = TemporalDictionary(n_atoms=6, alpha=0.05, random_state=0).fit(X)             # 300 < 8 x 512 columns
    b = TemporalDictionary(n_atoms=6, alpha=0.05, random_state=0, schedule="online").fit(X)
    np.testing.assert_array_equal(a.atoms_, b.atoms_)
    np.testing.assert_array_equal(a.codes_, b.codes_)


def test_subset_schedule_matches_the_epochs_on_planted_atoms():
    """Subsets of 50, 200 columns, then all 800: the planted atoms, and the objective of the
    mini-batch epochs within 0.1 %."""
    X, D_true, _ = _planted(n_neurons=800, n_atoms=8, T=100, seed=5)
    sub = TemporalDictionary(n_atoms=8, alpha=0.05, subset_size=50, random_state=0).fit(X)
    online = TemporalDictionary(n_atoms=8, alpha=0.05, schedule="online", random_state=0).fit(X)
    _, corr = match_atoms(D_true, sub.atoms_)
    assert corr.min() > 0.95
    assert sub.objective_ <= online.objective_ * (1 + 1e-3)
    assert sub.objective_ == pytest.approx(objective(prepare_columns(X), sub.atoms_, sub.codes_, 0.05), rel=1e-4)
    hist = np.array(sub.objective_history_)
    assert np.all(np.diff(hist) <= 1e-6 * hist[0])
    assert sub.n_iter_ > len(hist) - 1                    # subset iterations are counted


def test_option_errors():
    X = np.random.default_rng(0).standard_normal((30, 20))
    with pytest.raises(ConfigError, match="schedule='batch'"):
        TemporalDictionary(n_atoms=3, schedule="batch").fit(X)
    with pytest.raises(ConfigError, match="subset_size=0"):
        TemporalDictionary(n_atoms=3, subset_size=0).fit(X)
    with pytest.raises(ConfigError, match="momentum=1.0"):
        TemporalDictionary(n_atoms=3, momentum=1.0).fit(X)
    with pytest.raises(ConfigError, match="init='pca'"):
        TemporalDictionary(n_atoms=3, init="pca").fit(X)


def test_atom_collinearity(rng):
    T = 300
    indep = rng.standard_normal((T, 6))
    c = atom_collinearity(indep)
    assert len(c["vif"]) == 6 and max(c["vif"]) < 1.2 and not c["collinear"]
    assert c["condition_number"] < 2 and c["vif_threshold"] == VIF_WARN and c["condition_threshold"] == CONDITION_WARN
    # VIF_k = 1 / (1 - R²_k) against an explicit regression of atom k on the others
    mixed = indep.copy()
    mixed[:, 5] = indep[:, :5] @ np.array([1.0, 0.5, 0.0, 0.0, 0.2]) + 0.1 * rng.standard_normal(T)
    c = atom_collinearity(mixed)
    Z = (mixed - mixed.mean(0)) / mixed.std(0)
    others = np.c_[np.ones(T), Z[:, :5]]
    resid = Z[:, 5] - others @ np.linalg.lstsq(others, Z[:, 5], rcond=None)[0]
    r2 = 1 - resid @ resid / (Z[:, 5] @ Z[:, 5])
    assert c["vif"][5] == pytest.approx(1 / (1 - r2), rel=1e-8)
    assert c["collinear"] and c["n_high_vif"] >= 1 and c["max_vif"] > VIF_WARN
    assert c["median_vif"] == pytest.approx(float(np.median(c["vif"])))
    # scale and offset of an atom do not matter; a constant or duplicated atom is infinitely collinear
    scaled = mixed * np.arange(1, 7) + 5.0
    assert atom_collinearity(scaled)["vif"] == pytest.approx(c["vif"], rel=1e-8)
    dup = np.c_[indep, indep[:, 0]]
    cd = atom_collinearity(dup)
    assert cd["condition_number"] is None and cd["vif"][0] is None and cd["collinear"]
    const = np.c_[indep, np.ones(T)]
    cc = atom_collinearity(const)
    assert cc["vif"][-1] is None and cc["vif"][0] == pytest.approx(atom_collinearity(indep)["vif"][0])
    import json
    json.dumps(cc, allow_nan=False)                       # strict JSON: no inf/NaN


@parametrize_with_checks([TemporalDictionary(n_atoms=3, max_iter=5, random_state=0)])
def test_sklearn_contract(estimator, check):
    check(estimator)
