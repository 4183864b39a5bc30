"""Nuisance regressors (drift basis, confounds) and the pooled tails of the shift null."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from vlmbrain.config import EncodingConfig
from vlmbrain.encoding import fit_and_infer, shift_null
from vlmbrain.encoding.nuisance import drift_basis, load_confounds, nuisance_matrix, residualize
from vlmbrain.encoding.tails import PooledNull, gpd_fit_pwm, gpd_sf
from vlmbrain.errors import ConfigError, InputFileError


def test_drift_basis_is_nilearns_cosines_per_run():
    from nilearn.signal import create_cosine_drift

    B = drift_basis([200, 100], 1.5, 0.01)
    first = create_cosine_drift(0.01, np.arange(200) * 1.5)[:, :-1]
    second = create_cosine_drift(0.01, np.arange(100) * 1.5)[:, :-1]
    assert B.shape == (300, first.shape[1] + second.shape[1])
    np.testing.assert_allclose(B[:200, :first.shape[1]], first)
    np.testing.assert_allclose(B[200:, first.shape[1]:], second)
    assert not B[200:, :first.shape[1]].any() and not B[:200, first.shape[1]:].any()
    assert drift_basis([50], 1.0, None).shape == (50, 0)


def test_confounds_first_row_nan_and_demeaning_as_nilearn(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for r, n in enumerate((20, 30)):
        df = pd.DataFrame({"trans_x": rng.normal(size=n), "csf": rng.normal(size=n) + 5})
        df["trans_x_derivative1"] = df["trans_x"].diff()           # NaN in the first row
        df.to_csv(tmp_path / f"run{r}.tsv", sep="\t", index=False)
        paths.append(tmp_path / f"run{r}.tsv")
    C = load_confounds(paths, ["csf", "trans_x_derivative1"], [20, 30])
    assert C.shape == (50, 4) and np.all(np.isfinite(C))
    np.testing.assert_allclose(C[:20].mean(0)[:2], 0, atol=1e-12)
    assert not C[20:, :2].any()
    with pytest.raises(ConfigError, match="not found"):
        load_confounds(paths, ["nope"], [20, 30])
    with pytest.raises(ConfigError, match="one confounds TSV per run"):
        load_confounds(paths[:1], ["csf"], [20, 30])
    with pytest.raises(InputFileError):
        load_confounds([tmp_path / "x.tsv", paths[1]], ["csf"], [20, 30])


def test_residualize_projects_out_intercepts_and_nuisance(rng):
    runs = np.repeat([0, 1], 40)
    N = nuisance_matrix([40, 40], 2.0, 0.01)
    A = rng.standard_normal((80, 5))
    R, rank = residualize(A, runs, N)
    assert rank == N.shape[1]
    F = np.concatenate([np.stack([runs == 0, runs == 1], 1).astype(float), N], axis=1)
    np.testing.assert_allclose(F.T @ R, 0, atol=1e-10)


def test_drift_is_removed_from_atoms_and_data_and_counted_in_dof(rng):
    runs = np.repeat([0, 1], 100)
    X = rng.standard_normal((200, 3))
    Y = rng.standard_normal((200, 50)).astype(np.float32)
    N = nuisance_matrix([100, 100], 1.0, 0.02)
    res = fit_and_infer(X, Y, runs, n_shifts=0, nuisance=N)
    assert res.info["dof"] == 200 - 3 - 2 - N.shape[1] and res.info["n_nuisance"] == N.shape[1]
    Xr, _ = residualize(X, runs, N)
    Yr, _ = residualize(Y, runs, N)
    ref = fit_and_infer(Xr, Yr, runs, n_shifts=0)
    np.testing.assert_allclose(res.arrays["beta"], ref.arrays["beta"], atol=1e-5)


def test_gpd_pwm_fit_recovers_the_shape_and_scale():
    y = sps.genpareto.rvs(0.2, scale=0.5, size=20000, random_state=1)
    xi, sigma = gpd_fit_pwm(y)
    assert xi == pytest.approx(0.2, abs=0.05) and sigma == pytest.approx(0.5, rel=0.05)
    np.testing.assert_allclose(gpd_sf(np.array([1.0, 3.0]), 0.2, 0.5), sps.genpareto.sf([1.0, 3.0], 0.2, scale=0.5))
    xi0, s0 = gpd_fit_pwm(sps.uniform.rvs(size=5000, random_state=2))     # bounded tail -> exponential
    assert xi0 == 0.0 and s0 == pytest.approx(0.5, rel=0.05)


def test_pooled_tail_p_is_the_pooled_rank_and_extends_below_it(rng):
    pool = PooledNull(1)
    draws = np.abs(rng.standard_normal((50, 1, 4000))).astype(np.float32)
    pool.add(draws)
    tail = pool.tails()[0]
    flat = np.sort(draws.ravel().astype(np.float64))
    for w in (0.5, 1.5, 2.2, 3.0):
        want = (1 + (flat >= w).sum()) / (1 + flat.size)
        assert tail.sf(np.array([w]))[0] == pytest.approx(want, rel=0.05, abs=2e-5)
    far = tail.sf(np.array([6.0, 8.0]))
    assert 0 < far[1] < far[0] < 1 / (1 + flat.size)


def test_summary_info_names_the_pvalues_and_the_null(rng):
    runs = np.repeat([0, 1], 100)
    X = rng.standard_normal((200, 2))
    Y = rng.standard_normal((200, 300)).astype(np.float32)
    res = fit_and_infer(X, Y, runs, n_shifts=500)
    info = res.info
    assert info["null_pvalues"] == "pooled" and "Pareto" in info["null_pvalues_method"]
    assert info["n_shifts_requested"] == 500 and info["n_shifts"] == 200 - 40 + 1
    assert info["null_model"].startswith("OLS") and len(info["pooled_tails"]["atoms"]) == 2
    assert "p_empirical" in res.arrays


def test_encoding_config_high_pass_and_null_pvalues():
    assert EncodingConfig().high_pass == 0.01 and EncodingConfig().null_pvalues == "pooled"
    assert EncodingConfig(high_pass="none").high_pass_hz is None
    assert EncodingConfig(high_pass=None).high_pass == "none"
    assert EncodingConfig(high_pass="0.008").high_pass_hz == 0.008
    with pytest.raises(ValueError):
        EncodingConfig(high_pass=-1)
    with pytest.raises(ValueError):
        EncodingConfig(high_pass="fast")
    assert EncodingConfig(null_pvalues="calibrated").null_pvalues == "calibrated"


def test_shift_null_nuisance_needs_matching_rows(rng):
    X = rng.standard_normal((100, 2))
    Y = rng.standard_normal((100, 5)).astype(np.float32)
    from vlmbrain.errors import DimensionError

    with pytest.raises(DimensionError, match="nuisance"):
        shift_null(X, Y, n_shifts=10, nuisance=np.zeros((90, 2)))


def test_seam_factors_are_the_exact_null_second_moments_under_ar1(rng):
    # the seam correction's lag products reproduce v'Cv of the refit's unit t-directions and
    # tr(H C) of its hat matrix (shifted design projected off the nuisance) under AR(1) noise
    from vlmbrain.encoding.null import _seam_factors, _seam_lag_products

    lens, rho, K = (40, 30, 50), 0.7, 3
    T = sum(lens)
    runs = np.repeat(np.arange(3), lens)
    N = nuisance_matrix(list(lens), 2.0, 0.01)
    X, _ = residualize(rng.standard_normal((T, K)).cumsum(0), runs, N)
    D = np.zeros((T, 3))
    D[np.arange(T), runs] = 1
    U, sv, _ = np.linalg.svd(np.concatenate([D, N], 1), full_matrices=False)
    Nb = U[:, sv > sv[0] * 1e-10]
    C = np.zeros((T, T))
    for r in range(3):
        i = np.flatnonzero(runs == r)
        C[np.ix_(i, i)] = rho ** np.abs(i[:, None] - i[None, :])
    lags = np.array([0, 17, 33, 50, 61, 80, 95])
    bounds = [(0, 40), (40, 70), (70, 120)]
    lp = _seam_lag_products(X, Nb, bounds, lags, max_lag=T)
    E_t, E_r = [], []
    for s in lags:
        Xs = np.roll(X, s, 0)
        Xs = Xs - Nb @ (Nb.T @ Xs)
        Gi = np.linalg.inv(Xs.T @ Xs)
        V = Xs @ Gi / np.sqrt(np.diag(Gi))
        E_t.append(np.einsum("tk,tu,uk->k", V, C, V))
        E_r.append(np.trace(Xs @ Gi @ Xs.T @ C))
    E = np.concatenate([np.array(E_t), np.array(E_r)[:, None]], axis=1)        # (lags, K + 1)
    R = rho ** np.arange(lp.shape[-1])
    # (lags beyond T // 4 are dropped: ρ^30 ≈ 2e-5)
    np.testing.assert_allclose(lp @ R, E, rtol=1e-4)
    # the factors: lag 0 against the mean over the other lags; every other lag against the
    # mean over the rest (hb = 0: a window of the lag itself)
    k_obs, k_null = _seam_factors(lp, np.array([rho]), 0)
    np.testing.assert_allclose(k_obs[:, 0], E[0] / E[1:].mean(0), rtol=1e-4)
    rest = (E[1:].sum(0)[None] - E[1:]) / (len(lags) - 2)
    np.testing.assert_allclose(k_null[:, :, 0], E[1:] / rest, rtol=1e-4)
    assert np.all(k_obs > 1.0)           # lag 0 sees more of this smooth noise than the shifts
