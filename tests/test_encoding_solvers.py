"""The solver registry: a method added from outside the package, fitted by the estimator."""

import numpy as np
import pytest

from vlmbrain.encoding import (
    SOLVERS,
    Solver,
    SolverResult,
    VoxelwiseEncoder,
    fit_and_infer,
    get_solver,
    register_solver,
    shift_null,
)
from vlmbrain.errors import ConfigError


def _data(rng, T=240, K=4, V=25, lens=(80, 90, 70)):
    runs = np.repeat(np.arange(len(lens)), lens)
    X = rng.standard_normal((T, K))
    Y = X @ (rng.standard_normal((K, V)) * 0.5) + rng.standard_normal((T, V)) + 2.0 + runs[:, None]
    return X, Y.astype(np.float32), runs


def _dummies(runs):
    D = np.zeros((runs.size, runs.max() + 1))
    D[np.arange(runs.size), runs] = 1.0
    return D


def _centre_runs(A, runs):
    A = np.array(A, dtype=np.float64)
    for r in np.unique(runs):
        A[runs == r] -= A[runs == r].mean(axis=0)
    return A


@pytest.fixture
def registered():
    """Names registered by a test, removed again afterwards."""
    names = []

    def register(name, solver):
        names.append(name)
        return register_solver(name, solver)

    yield register
    for name in names:
        SOLVERS.pop(name, None)


def test_builtin_registry_and_unknown_method():
    assert {"ols", "ar1", "ridge"} <= set(SOLVERS)
    assert get_solver("ols") is SOLVERS["ols"]
    with pytest.raises(ConfigError, match=r"method='gls' is not a registered.*'ols', 'ar1', 'ridge'"):
        get_solver("gls")
    with pytest.raises(ConfigError, match=r"VoxelwiseEncoder: method='gls'.*'ols', 'ar1', 'ridge'"):
        VoxelwiseEncoder("gls").fit(np.zeros((10, 2)), np.zeros((10, 3)))
    with pytest.raises(ConfigError, match="neither a Solver nor a function"):
        register_solver("bad", 3)


def test_function_solver_half_ols_through_the_estimator(rng, registered):
    def half_ols(stats):
        G, C, _ = stats.totals()
        return 0.5 * np.linalg.solve(G, C)

    register_solver_result = registered("half-ols", half_ols)
    assert SOLVERS["half-ols"] is register_solver_result
    X, Y, runs = _data(rng)
    K, R = X.shape[1], 3
    enc = VoxelwiseEncoder(method="half-ols", chunk_size=7).fit(X, Y, runs=runs)

    # numpy reference: OLS with one intercept per run, coefficients halved
    Y64 = Y.astype(np.float64)
    B = np.linalg.lstsq(np.hstack([X, _dummies(runs)]), Y64, rcond=None)[0][:K]
    beta = 0.5 * B
    np.testing.assert_allclose(enc.coef_, beta, atol=1e-5)
    icpt = np.vstack([Y64[runs == r].mean(0) - X[runs == r].mean(0) @ beta for r in range(R)])
    np.testing.assert_allclose(enc.intercepts_, icpt, atol=1e-4)
    Xc, Yc = _centre_runs(X, runs), _centre_runs(Y, runs)
    r2 = 1 - ((Yc - Xc @ beta) ** 2).sum(0) / (Yc**2).sum(0)
    np.testing.assert_allclose(enc.r2_, r2, atol=1e-5)
    # leave-one-run-out: the same method refitted on the other runs
    r_ref = np.empty((R, Y.shape[1]))
    r2_ref = np.empty((R, Y.shape[1]))
    for f in range(R):
        tr = runs != f
        Bf = 0.5 * np.linalg.lstsq(np.hstack([X[tr], _dummies(runs[tr])[:, [r for r in range(R) if r != f]]]),
                                   Y64[tr], rcond=None)[0][:K]
        pred = X[~tr] @ Bf
        pred -= pred.mean(0)
        yo = Y64[~tr] - Y64[~tr].mean(0)
        r_ref[f] = (pred * yo).sum(0) / np.sqrt((pred**2).sum(0) * (yo**2).sum(0))
        r2_ref[f] = 1 - ((yo - pred) ** 2).sum(0) / (yo**2).sum(0)
    np.testing.assert_allclose(enc.cv_r_folds_, r_ref, atol=1e-5)
    np.testing.assert_allclose(enc.cv_r2_folds_, r2_ref, atol=1e-5)
    np.testing.assert_allclose(enc.cv_r_, r_ref.mean(0), atol=1e-5)
    assert enc.tvalues_ is None and enc.dof_ is None
    np.testing.assert_allclose(enc.predict(X, runs), X @ enc.coef_ + enc.intercepts_[runs], atol=1e-4)
    # a 1-D y and a single run (no CV) go through the same path
    one = VoxelwiseEncoder(method="half-ols").fit(X, Y[:, 0])
    assert one.coef_.shape == (K,) and one.cv_r_ is None


class MeanAtom(Solver):
    """One slope on the mean atom: ``β = (b / K) 1``, with its t-value for every atom."""

    tvalues = True

    def prepare(self, problem):
        return np.full(problem.n_atoms, 1.0 / problem.n_atoms)     # the mean-atom weights

    def solve(self, stats, problem, w):
        G, C, yy = stats.totals()
        g = w @ G @ w                                   # Σ s_c², s = X w centred per run
        b = (w @ C) / g
        rss = yy - b * (w @ C)
        dof = stats.n.sum() - 1 - stats.n_blocks
        t = b / np.sqrt(rss / dof / g)
        return SolverResult(coef=np.outer(w, b), tvalues=np.tile(t, (w.size, 1)), extra={"slope": b})


def test_solver_subclass_with_state_tvalues_and_extras(rng, registered):
    registered("mean-atom", MeanAtom())
    X, Y, runs = _data(rng)
    K, R = X.shape[1], 3
    enc = VoxelwiseEncoder(method="mean-atom").fit(X, Y, runs=runs)
    s = X.mean(1, keepdims=True)
    Z = np.hstack([s, _dummies(runs)])
    Bz, rss = np.linalg.lstsq(Z, Y.astype(np.float64), rcond=None)[:2]
    dof = X.shape[0] - 1 - R
    t = Bz[0] / np.sqrt(rss / dof * np.linalg.inv(Z.T @ Z)[0, 0])
    np.testing.assert_allclose(enc.slope_, Bz[0], atol=1e-5)
    np.testing.assert_allclose(enc.coef_, np.tile(Bz[0] / K, (K, 1)), atol=1e-5)
    np.testing.assert_allclose(enc.tvalues_, np.tile(t, (K, 1)), rtol=1e-4)
    np.testing.assert_allclose(enc.intercepts_, Bz[1:], atol=1e-4)
    assert enc.dof_ == X.shape[0] - K - R and enc.cv_r_.shape == (Y.shape[1],)
    # the registered method reaches the inference entry point too
    res = fit_and_infer(X, Y, runs, method="mean-atom", n_shifts=0, q=0.05)
    assert res.info["null"] == "parametric" and res.arrays["p"].shape == (K, Y.shape[1])
    np.testing.assert_array_equal(res.arrays["beta"], enc.coef_)


def test_registered_method_in_fit_and_infer_with_the_shift_null(rng, registered):
    registered("half-ols", lambda stats: 0.5 * np.linalg.solve(stats.totals()[0], stats.totals()[1]))
    X, Y, runs = _data(rng, V=30)
    res = fit_and_infer(X, Y, runs, method="half-ols", n_shifts=40, random_state=2)
    ols = VoxelwiseEncoder("ols").fit(X, Y, runs=runs)
    np.testing.assert_allclose(res.arrays["beta"], 0.5 * ols.coef_, atol=1e-6)
    assert np.all(np.isnan(res.arrays["t"]))
    null = shift_null(X, Y, runs, n_shifts=40, random_state=2, chunk_size=512)
    np.testing.assert_array_equal(res.arrays["p"], null.p_t_pooled)            # default: pooled
    assert "half-ols fit" in res.info["note"]
    with pytest.raises(ConfigError, match="needs t-values; method 'half-ols'"):
        fit_and_infer(X, Y, runs, method="half-ols", n_shifts=0)


def test_inconsistent_solver_output_is_reported(rng, registered):
    calls = []

    def flaky(stats):
        calls.append(1)
        G, C, _ = stats.totals()
        beta = np.linalg.solve(G, C)
        return SolverResult(coef=beta, tvalues=beta if len(calls) == 1 else None)

    registered("flaky", flaky)
    X, Y, runs = _data(rng, V=20)
    with pytest.raises(ValueError, match="returned fields"):
        VoxelwiseEncoder("flaky", chunk_size=10, compute_cv=False).fit(X, Y, runs=runs)
