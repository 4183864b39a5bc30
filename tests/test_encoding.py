"""VoxelwiseEncoder and shift_null against numpy lstsq, nilearn run_glm, scikit-learn RidgeCV
and brute-force shifting + refitting."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import KFold, cross_val_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from vlmbrain.encoding import VoxelwiseEncoder, check_runs, shift_null
from vlmbrain.errors import ConfigError, DimensionError


def _data(rng, T=240, K=4, V=30, lens=(80, 90, 70), ar=0.0, offset=3.0):
    runs = np.repeat(np.arange(len(lens)), lens)
    X = rng.standard_normal((T, K))
    E = rng.standard_normal((T, V))
    for t in range(1, T):
        E[t] += ar * E[t - 1]
    W = rng.standard_normal((K, V)) * 0.4
    Y = X @ W + E + offset + runs[:, None] * 0.5
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


# ------------------------------------------------------------------------------ OLS
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ols_matches_lstsq_with_run_intercepts(rng, dtype):
    X, Y, runs = _data(rng)
    K, R = X.shape[1], 3
    enc = VoxelwiseEncoder("ols", chunk_size=7, dtype=dtype).fit(X, Y, runs=runs)
    Z = np.hstack([X, _dummies(runs)])
    B = np.linalg.lstsq(Z, Y.astype(np.float64), rcond=None)[0]
    resid = Y - Z @ B
    s2 = (resid**2).sum(0) / (X.shape[0] - K - R)
    t = B[:K] / np.sqrt(np.outer(np.diag(np.linalg.inv(Z.T @ Z))[:K], s2))
    tol = 1e-5 if dtype == "float32" else 1e-6   # outputs are stored as float32
    np.testing.assert_allclose(enc.coef_, B[:K], rtol=0, atol=tol * np.abs(B[:K]).max() * 10)
    np.testing.assert_allclose(enc.intercepts_, B[K:], atol=1e-4)
    np.testing.assert_allclose(enc.tvalues_, t, rtol=1e-4, atol=1e-4)
    assert enc.coef_.shape == (K, Y.shape[1]) and enc.intercepts_.shape == (R, Y.shape[1])
    assert enc.dof_ == X.shape[0] - K - R
    # in-sample R² of the atoms after removing run means
    Yc = _centre_runs(Y, runs)
    r2 = 1 - ((Yc - _centre_runs(X, runs) @ B[:K]) ** 2).sum(0) / (Yc**2).sum(0)
    np.testing.assert_allclose(enc.r2_, r2, atol=1e-5)


def test_ols_large_mean_columns_stay_precise(rng):
    X, Y, runs = _data(rng, offset=0.0)
    Y = Y + np.float32(5000.0)    # raw-BOLD-like offset: cancellation-prone in float32
    enc = VoxelwiseEncoder("ols").fit(X, Y, runs=runs)
    Z = np.hstack([X, _dummies(runs)])
    B = np.linalg.lstsq(Z, Y.astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(enc.coef_, B[:4], atol=2e-5)


def test_loro_cv_matches_refits(rng):
    X, Y, runs = _data(rng)
    enc = VoxelwiseEncoder("ols").fit(X, Y, runs=runs)
    K = X.shape[1]
    r_ref = np.empty((3, Y.shape[1]))
    r2_ref = np.empty((3, Y.shape[1]))
    for f in range(3):
        tr = runs != f
        Ztr = np.hstack([X[tr], _dummies(runs[tr])[:, [r for r in range(3) if r != f]]])
        B = np.linalg.lstsq(Ztr, Y[tr].astype(np.float64), rcond=None)[0][:K]
        pred = _centre_runs(X[~tr] @ B, runs[~tr])
        y = _centre_runs(Y[~tr], runs[~tr])
        r_ref[f] = [np.corrcoef(pred[:, v], y[:, v])[0, 1] for v in range(Y.shape[1])]
        r2_ref[f] = 1 - ((y - pred) ** 2).sum(0) / (y**2).sum(0)
    np.testing.assert_allclose(enc.cv_r_folds_, r_ref, atol=1e-5)
    np.testing.assert_allclose(enc.cv_r_, r_ref.mean(0), atol=1e-5)
    np.testing.assert_allclose(enc.cv_r2_, r2_ref.mean(0), atol=1e-5)


def test_predict_uses_run_intercepts(rng):
    X, Y, runs = _data(rng)
    enc = VoxelwiseEncoder().fit(X, Y, runs=runs)
    Z = np.hstack([X, _dummies(runs)])
    B = np.linalg.lstsq(Z, Y.astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(enc.predict(X, runs), Z @ B, atol=1e-3)
    np.testing.assert_allclose(enc.predict(X), X @ B[:4] + B[4:].mean(0), atol=1e-3)


def test_single_run_cv_skipped_or_error(rng):
    X, Y, _ = _data(rng)
    enc = VoxelwiseEncoder().fit(X, Y)
    assert enc.cv_r_ is None and enc.n_runs_ == 1
    with pytest.raises(DimensionError, match="at least 2 runs"):
        VoxelwiseEncoder(compute_cv=True).fit(X, Y)


def test_input_errors(rng):
    X, Y, runs = _data(rng)
    with pytest.raises(DimensionError, match="X has 240 timepoints but Y has 239"):
        VoxelwiseEncoder().fit(X, Y[:-1], runs=runs)
    Yn = Y.copy()
    Yn[5, 3] = np.nan
    with pytest.raises(DimensionError, match=r"contains NaN or inf values in 1 column.*first: \[3\]"):
        VoxelwiseEncoder().fit(X, Yn, runs=runs)
    with pytest.raises(DimensionError, match="NaN or inf"):
        VoxelwiseEncoder("ar1").fit(X, Yn, runs=runs)
    with pytest.raises(ConfigError, match="method='gls'"):
        VoxelwiseEncoder("gls").fit(X, Y, runs=runs)
    with pytest.raises(DimensionError, match="contiguous blocks"):
        VoxelwiseEncoder().fit(X, Y, runs=np.tile([0, 1], 120))
    with pytest.raises(DimensionError, match="runs has shape"):
        VoxelwiseEncoder().fit(X, Y, runs=runs[:-1])
    with pytest.raises(DimensionError, match="no residual degrees of freedom"):
        VoxelwiseEncoder().fit(X[:5], Y[:5])
    with pytest.raises(ConfigError, match="chunk_size=0"):
        VoxelwiseEncoder(chunk_size=0).fit(X, Y)
    with pytest.raises(ConfigError, match="cv=1"):
        VoxelwiseEncoder("ridge", cv=1).fit(X, Y)


def test_check_runs_bounds():
    lab, bounds = check_runs(np.array([3, 3, 1, 1, 1, 7]), 6)
    assert bounds == [(0, 2), (2, 5), (5, 6)]
    np.testing.assert_array_equal(lab, [0, 0, 1, 1, 1, 2])


# ----------------------------------------------------------------------------- AR(1)
def _nilearn_ar1(Y, Z, K):
    from nilearn.glm.first_level import run_glm

    labels, results = run_glm(Y.astype(np.float64), Z, noise_model="ar1")
    beta = np.empty((K, Y.shape[1]))
    t = np.empty((K, Y.shape[1]))
    for lab, res in results.items():
        idx = labels == lab
        beta[:, idx] = res.theta[:K]
        t[:, idx] = np.array([res.t(column=k) for k in range(K)])
    return np.array([float(v) for v in labels]), beta, t


def test_ar1_matches_nilearn_run_glm(rng):
    X, Y, runs = _data(rng, V=60, ar=0.5)
    K = X.shape[1]
    rho, beta, t = _nilearn_ar1(Y, np.hstack([X, _dummies(runs)]), K)
    enc = VoxelwiseEncoder("ar1").fit(X, Y, runs=runs)
    same = np.isclose(rho, enc.ar1_rho_, atol=1e-9)
    assert same.mean() >= 0.95          # a ρ exactly on a bin edge may fall either way
    assert np.ptp(rho) > 0.1             # the data really have different ρ bins
    np.testing.assert_allclose(enc.coef_[:, same], beta[:, same], atol=1e-5)
    np.testing.assert_allclose(enc.tvalues_[:, same], t[:, same], rtol=1e-4, atol=1e-4)


def test_ar1_run_scope_matches_explicit_whitening(rng):
    X, Y, runs = _data(rng, V=12, ar=0.4)
    K = X.shape[1]
    enc = VoxelwiseEncoder("ar1", ar1_scope="run").fit(X, Y, runs=runs)
    Z = np.hstack([X, _dummies(runs)])
    starts = {np.flatnonzero(runs == r)[0] for r in range(3)}
    for v in range(Y.shape[1]):
        rho = float(enc.ar1_rho_[v])
        W = np.eye(X.shape[0])
        for i in range(1, X.shape[0]):
            if i not in starts:
                W[i, i - 1] = -rho
        Zw, yw = W @ Z, W @ Y[:, v].astype(np.float64)
        b = np.linalg.lstsq(Zw, yw, rcond=None)[0]
        s2 = ((yw - Zw @ b) ** 2).sum() / (X.shape[0] - Z.shape[1])
        tt = b[:K] / np.sqrt(np.diag(np.linalg.inv(Zw.T @ Zw))[:K] * s2)
        np.testing.assert_allclose(enc.coef_[:, v], b[:K], atol=1e-5)
        np.testing.assert_allclose(enc.tvalues_[:, v], tt, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- ridge
def test_ridge_matches_sklearn_ridgecv_per_target(rng):
    T, K, V = 150, 6, 8
    X = rng.standard_normal((T, K))
    Y = (X @ rng.standard_normal((K, V)) * rng.uniform(0, 1, V) + 3 * rng.standard_normal((T, V))
         + 2).astype(np.float32)
    alphas = np.logspace(-1, 4, 6)
    enc = VoxelwiseEncoder("ridge", alphas=alphas, cv=5).fit(X, Y)
    for v in range(V):
        y = Y[:, v].astype(np.float64)
        ref = RidgeCV(alphas=alphas, cv=KFold(5)).fit(X, y)
        assert enc.alphas_[v] == ref.alpha_
        scores = [cross_val_score(Ridge(alpha=a), X, y, cv=KFold(5)).mean() for a in alphas]
        np.testing.assert_allclose(enc.cv_scores_[:, v], scores, atol=1e-6)
        np.testing.assert_allclose(enc.coef_[:, v], ref.coef_, atol=1e-5)
        np.testing.assert_allclose(enc.intercepts_[0, v], ref.intercept_, atol=1e-4)
    assert enc.tvalues_ is None


def test_ridge_leave_one_run_out_inner_cv_matches_brute_force(rng):
    X, Y, runs = _data(rng, V=6, lens=(60, 70, 50, 60))
    alphas = np.array([0.1, 10.0, 1000.0])
    enc = VoxelwiseEncoder("ridge", alphas=alphas, cv="runs", scoring="r2").fit(X, Y, runs=runs)
    Xc_all, Yc_all = _centre_runs(X, runs), _centre_runs(Y, runs)
    sc = np.zeros((3, Y.shape[1]))
    for h in range(4):
        tr = runs != h
        Xt = _centre_runs(X[tr], runs[tr])
        Yt = _centre_runs(Y[tr], runs[tr])
        for ia, a in enumerate(alphas):
            B = np.linalg.solve(Xt.T @ Xt + a * np.eye(4), Xt.T @ Yt)
            y = Yc_all[~tr]
            sc[ia] += 1 - ((y - Xc_all[~tr] @ B) ** 2).sum(0) / (y**2).sum(0)
    sc /= 4
    np.testing.assert_allclose(enc.cv_scores_, sc, atol=1e-6)
    np.testing.assert_array_equal(enc.alphas_, alphas[sc.argmax(0)])
    B = np.stack([np.linalg.solve(Xc_all.T @ Xc_all + a * np.eye(4), Xc_all.T @ Yc_all[:, v])
                  for v, a in enumerate(enc.alphas_)], axis=1)
    np.testing.assert_allclose(enc.coef_, B, atol=1e-5)
    assert enc.cv_r_.shape == (Y.shape[1],) and np.all(np.abs(enc.cv_r_) <= 1)


# ----------------------------------------------------------------------- torch backend
def test_torch_backend_matches_numpy(rng):
    pytest.importorskip("torch")
    X, Y, runs = _data(rng, V=20)
    a = VoxelwiseEncoder("ols").fit(X, Y, runs=runs)
    b = VoxelwiseEncoder("ols", backend="torch", device="cpu", chunk_size=8).fit(X, Y, runs=runs)
    np.testing.assert_allclose(b.coef_, a.coef_, atol=1e-5)
    np.testing.assert_allclose(b.tvalues_, a.tvalues_, atol=1e-3)
    np.testing.assert_allclose(b.cv_r_, a.cv_r_, atol=1e-5)
    c = VoxelwiseEncoder("ar1", backend="torch", device="cpu").fit(X, Y, runs=runs)
    d = VoxelwiseEncoder("ar1").fit(X, Y, runs=runs)
    np.testing.assert_allclose(c.tvalues_, d.tvalues_, atol=1e-3)
    with pytest.raises(ConfigError, match="backend='jax'"):
        VoxelwiseEncoder(backend="jax").fit(X, Y)


# ------------------------------------------------------------------------ shift null
def test_shift_null_betas_match_brute_force_refits(rng):
    X, Y, runs = _data(rng, T=240, V=9, lens=(80, 80, 80))
    # the earlier null: shifted run-centred atoms refitted alone (the default refits them with
    # the run intercepts in place: tests/test_shift_null_calibrated.py)
    res = shift_null(X, Y, runs, n_shifts=40, random_state=3, return_null=True, chunk_size=4,
                     exact_nuisance=False)
    Xc, Yc = _centre_runs(X, runs), _centre_runs(Y, runs)
    assert len(set(res.shifts.tolist())) == 40
    assert res.shifts.min() >= 20 and res.shifts.max() <= 220
    for i in (0, 17, 39):
        B = np.linalg.lstsq(np.roll(Xc, res.shifts[i], axis=0), Yc, rcond=None)[0]
        np.testing.assert_allclose(res.beta_null[i], B, atol=1e-5)
    enc = VoxelwiseEncoder().fit(X, Y, runs=runs)
    np.testing.assert_allclose(res.beta, enc.coef_, atol=1e-5)
    np.testing.assert_allclose(res.tvalues, enc.tvalues_, atol=1e-4)
    # p-values = (1 + #{|t_null| >= |t_obs|}) / (1 + S), with each shift's own residual
    # variance (studentized), from brute-force refits
    df = X.shape[0] - X.shape[1] - 3
    ginv = np.diag(np.linalg.inv(Xc.T @ Xc))
    t_null = []
    for s in res.shifts:
        Xs = np.roll(Xc, s, axis=0)
        B = np.linalg.lstsq(Xs, Yc, rcond=None)[0]
        sigma = np.sqrt(((Yc - Xs @ B) ** 2).sum(0) / df)
        t_null.append(B / (np.sqrt(ginv)[:, None] * sigma[None]))
    t_null = np.array(t_null)
    cnt = (np.abs(t_null) >= np.abs(res.tvalues)[None] - 1e-4).sum(0)
    np.testing.assert_allclose(res.p_beta, (1 + cnt) / 41, atol=1.5 / 41)
    np.testing.assert_allclose(res.null_max_z, np.abs(t_null).max(2), rtol=1e-3)
    r2_null = []
    for s in res.shifts:
        B = np.linalg.lstsq(np.roll(Xc, s, axis=0), Yc, rcond=None)[0]
        r2_null.append(((np.roll(Xc, s, axis=0) @ B) ** 2).sum(0) / (Yc**2).sum(0))
    r2_null = np.array(r2_null)
    np.testing.assert_allclose(res.null_max_r2, r2_null.max(1), rtol=1e-4)
    np.testing.assert_allclose(res.p_r2, (1 + (r2_null >= res.r2[None] - 1e-7).sum(0)) / 41,
                               atol=1.5 / 41)
    # reproducible from the seed
    again = shift_null(X, Y, runs, n_shifts=40, random_state=3, chunk_size=5, n_jobs=1, exact_nuisance=False)
    np.testing.assert_array_equal(again.shifts, res.shifts)
    np.testing.assert_allclose(again.p_beta, res.p_beta)


def test_shift_null_detects_planted_effect_and_is_calibrated(rng):
    T, K, V = 300, 3, 200
    runs = np.repeat(np.arange(3), 100)
    X = rng.standard_normal((T, K))
    Y = rng.standard_normal((T, V))
    Y[:, :20] += 0.8 * X[:, [0]]                    # atom 0 drives 20 grayordinates
    res = shift_null(X, Y.astype(np.float32), runs, n_shifts=99, random_state=0)
    assert np.all(res.p_beta[0, :20] <= 0.01)
    assert np.all(res.p_r2[:20] <= 0.01)
    null_p = res.p_beta[1:, 20:].ravel()
    assert 0.02 < (null_p <= 0.05).mean() < 0.09    # ~5% false positives at p <= .05
    reject, p = res.fwer_t(0.05)
    assert reject[0, :20].all() and reject[1:, 20:].mean() < 0.01
    assert res.p_r is res.p_r2 and res.p_t is res.p_beta


def test_shift_null_uses_all_admissible_shifts_when_fewer_than_asked(rng, caplog):
    X, Y, runs = _data(rng)
    with caplog.at_level("WARNING", logger="vlmbrain"):
        res = shift_null(X, Y, runs, n_shifts=5000)
    T = X.shape[0]
    assert res.n_shifts == T - 2 * 20 + 1 and res.n_shifts_requested == 5000
    assert len(set(res.shifts.tolist())) == res.n_shifts
    assert "5000 shifts asked for, but only 201" in caplog.text


def test_shift_null_errors(rng):
    X, Y, runs = _data(rng)
    with pytest.raises(DimensionError, match="NaN"):
        Yn = Y.copy()
        Yn[0, 0] = np.nan
        shift_null(X, Yn, runs, n_shifts=10)


# ------------------------------------------------------------------ scikit-learn contract
def _expected_failures(est):
    if est.method == "ols":
        # fits 10 regressors on 11 samples: OLS t-values need T > K + n_runs (raises
        # DimensionError "no residual degrees of freedom"), ridge passes this check
        return {"check_regressor_multioutput": "OLS needs T > n_atoms + n_runs"}
    return {}


@parametrize_with_checks([VoxelwiseEncoder(), VoxelwiseEncoder("ridge", cv=2)],
                         expected_failed_checks=_expected_failures)
def test_sklearn_contract(estimator, check):
    check(estimator)


def test_math_core_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, vlmbrain.encoding, vlmbrain.dictionary, vlmbrain.stats; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "assert 'vlmbrain.backends.torch_encoding' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shift_null_torch_backend_matches_numpy(rng):
    pytest.importorskip("torch")
    X, Y, runs = _data(rng, T=240, V=40, lens=(80, 80, 80))
    a = shift_null(X, Y, runs, n_shifts=60, random_state=1)
    b = shift_null(X, Y, runs, n_shifts=60, random_state=1, backend="torch", device="cpu",
                   chunk_size=16)
    np.testing.assert_array_equal(a.shifts, b.shifts)
    assert np.abs(a.p_beta - b.p_beta).max() <= 1.5 / 61     # float32 ties may differ by one
    assert np.abs(a.p_r2 - b.p_r2).max() <= 1.5 / 61
    np.testing.assert_allclose(a.null_max_z, b.null_max_z, rtol=1e-4)
    np.testing.assert_allclose(a.null_max_r2, b.null_max_r2, rtol=1e-4)
