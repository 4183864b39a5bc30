"""Null-calibrated p-values of the circular-shift null (resolution beyond 1/(n_shifts+1))."""

import numpy as np
from scipy import signal as sps_signal
from scipy import stats as sps

from vlmbrain.encoding import VoxelwiseEncoder, shift_null


def _ar1(rng, T, V, rho):
    e = rng.standard_normal((T, V))
    return sps_signal.lfilter([1.0], [1.0, -rho], e, axis=0)


def _brute_force_null(X, Y, F, shifts, K):
    """Refit every shift: data on [nuisance F, shifted residualised atoms] (the nuisance fixed)."""
    T = X.shape[0]
    Mf = np.eye(T) - F @ np.linalg.pinv(F)
    Xc, Yc = Mf @ X, Mf @ Y.astype(np.float64)
    df = T - K - np.linalg.matrix_rank(F)
    t_null, r2_null = [], []
    for s in shifts:
        Z = np.hstack([F, np.roll(Xc, s, axis=0)])
        B = np.linalg.lstsq(Z, Yc, rcond=None)[0]
        res = Yc - Z @ B
        sigma = np.sqrt((res ** 2).sum(0) / df)
        se = np.sqrt(np.diag(np.linalg.inv(Z.T @ Z))[-K:])
        t_null.append(B[-K:] / (se[:, None] * sigma[None]))
        r2_null.append(1 - (res ** 2).sum(0) / (Yc ** 2).sum(0))
    return np.array(t_null), np.array(r2_null)


def test_null_moments_equal_the_brute_force_null(rng):
    T, K, V = 120, 3, 40
    runs = np.repeat([0, 1], 60)
    X = rng.standard_normal((T, K))
    Y = rng.standard_normal((T, V)).astype(np.float32)
    D = np.stack([runs == 0, runs == 1], axis=1).astype(float)
    res = shift_null(X, Y, runs=runs, n_shifts=30, random_state=1)
    t_null, r2_null = _brute_force_null(X, Y, D, res.shifts, K)
    np.testing.assert_allclose(res.null_z_var, (t_null ** 2).mean(0), rtol=1e-4)
    np.testing.assert_allclose(res.null_r2_mean, r2_null.mean(0), rtol=1e-4)
    assert res.null_r2_mean.shape == (V,) and np.all(res.null_r2_var > 0)


def test_null_with_drift_refits_every_shift_with_the_nuisance_in_place(rng):
    T, K, V = 120, 3, 30
    runs = np.repeat([0, 1], 60)
    X = rng.standard_normal((T, K))
    Y = rng.standard_normal((T, V)).astype(np.float32)
    D = np.stack([runs == 0, runs == 1], axis=1).astype(float)
    N = np.zeros((T, 2))
    N[:60, 0] = np.cos(np.linspace(0, np.pi, 60))
    N[60:, 1] = np.cos(np.linspace(0, np.pi, 60))
    res = shift_null(X, Y, runs=runs, n_shifts=30, random_state=1, nuisance=N)
    t_null, r2_null = _brute_force_null(X, Y, np.hstack([D, N]), res.shifts, K)
    np.testing.assert_allclose(res.null_z_var, (t_null ** 2).mean(0), rtol=1e-4)
    np.testing.assert_allclose(res.null_r2_mean, r2_null.mean(0), rtol=1e-4)
    assert res.dof == T - K - 4


def test_the_earlier_null_refits_the_shifted_atoms_alone(rng):
    T, K, V = 120, 3, 40
    runs = np.repeat([0, 1], 60)
    X = rng.standard_normal((T, K))
    Y = rng.standard_normal((T, V)).astype(np.float32)
    res = shift_null(X, Y, runs=runs, n_shifts=30, random_state=1, return_null=True, exact_nuisance=False)
    Xc = X - np.vstack([X[runs == r].mean(0) for r in runs])
    Yc = Y - np.vstack([Y[runs == r].mean(0) for r in runs])
    ginv = np.diag(np.linalg.inv(Xc.T @ Xc))
    t_null = []
    for s in res.shifts:                              # brute force: refit every shift
        Xs = np.roll(Xc, s, axis=0)
        B = np.linalg.lstsq(Xs, Yc, rcond=None)[0]
        sigma = np.sqrt(((Yc - Xs @ B) ** 2).sum(0) / (T - K - 2))
        t_null.append(B / (np.sqrt(ginv)[:, None] * sigma[None]))
    np.testing.assert_allclose(res.null_z_var, (np.array(t_null) ** 2).mean(0), rtol=1e-3)


def test_calibrated_p_is_finer_than_empirical_and_uniform_under_h0(rng):
    T, K, V = 300, 2, 3000
    runs = np.repeat([0, 1], 150)
    X = rng.standard_normal((T, K))
    Y = rng.standard_normal((T, V)).astype(np.float32)
    res = shift_null(X, Y, runs=runs, n_shifts=100, random_state=0)
    p = res.p_t_calibrated
    assert p.min() < 1 / 101                          # below the empirical floor
    assert abs((p < 0.05).mean() - 0.05) < 0.015      # calibrated under H0
    pr = res.p_r2_calibrated
    assert abs((pr < 0.05).mean() - 0.05) < 0.02


def test_calibration_corrects_autocorrelation_where_the_t_test_fails():
    rng = np.random.default_rng(0)
    T, V = 400, 2000
    runs = np.zeros(T, int)
    X = _ar1(rng, T, 1, 0.9)                          # slow regressor
    Y = _ar1(rng, T, V, 0.9).astype(np.float32)       # slow noise, no effect
    enc = VoxelwiseEncoder().fit(X, Y, runs=runs)
    p_param = 2 * sps.t.sf(np.abs(enc.tvalues_[0]), enc.dof_)
    res = shift_null(X, Y, runs=runs, n_shifts=200, random_state=0, min_shift=20)
    p_cal = res.p_t_calibrated[0]
    fpr_param, fpr_cal = (p_param < 0.05).mean(), (p_cal < 0.05).mean()
    assert fpr_param > 0.2                            # the naive t-test is badly anti-conservative
    assert fpr_cal < 0.1                              # the shift-calibrated test is not
