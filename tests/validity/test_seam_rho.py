"""The bias correction of the lag-1 autocorrelation behind the seam correction of the shift nulls.

The seam factors weigh the null directions' lag products with an AR(1) autocovariance whose ρ
is read off the grayordinate's projected runs; in short runs that sample value is biased low.
``_lag1_bias_inverse`` maps it back through its expectation g(ρ) under the design's runs and
nuisance basis.
"""

import numpy as np
from scipy.signal import lfilter

from vlmbrain.encoding.null import _lag1_autocorrelation, _lag1_bias_inverse, _nuisance_basis


def _ar1_runs(rng, bounds, rho, c):
    """Stationary AR(1) noise (unit innovations), restarted in every run → (T, c)."""
    T = bounds[-1][1]
    e = rng.standard_normal((T, c))
    Y = np.empty_like(e)
    for a, b in bounds:
        e[a] /= np.sqrt(1.0 - rho ** 2)
        Y[a:b] = lfilter([1.0], [1.0, -rho], e[a:b], axis=0)
    return Y


def _sample_r1(rng, bounds, Nb, rho, c):
    Y = _ar1_runs(rng, bounds, rho, c)
    return _lag1_autocorrelation(Y - Nb @ (Nb.T @ Y), bounds)


def _drift_basis(bounds, n_cos):
    T = bounds[-1][1]
    D = np.zeros((T, len(bounds) * n_cos))
    for r, (a, b) in enumerate(bounds):
        t = np.arange(b - a)
        for j in range(n_cos):
            D[a:b, r * n_cos + j] = np.cos(np.pi * (j + 1) * (t + 0.5) / (b - a))
    return D


def test_expected_lag1_matches_monte_carlo():
    """g(ρ) against the mean of the sample lag-1 autocorrelation of simulated AR(1) runs, for a
    small design (3 runs of 40 TRs, intercepts and two cosines per run)."""
    rng = np.random.default_rng(0)
    bounds = [(0, 40), (40, 80), (80, 120)]
    Nb = _nuisance_basis(bounds, _drift_basis(bounds, 2), 120)
    inv = _lag1_bias_inverse(bounds, Nb)
    c = 40000
    for rho in (0.0, 0.5, 0.8):
        r1 = _sample_r1(rng, bounds, Nb, rho, c)
        se = r1.std() / np.sqrt(c)
        g = np.interp(rho, inv.grid, inv.g)
        assert abs(r1.mean() - g) < 3 * se, (rho, r1.mean(), g, se)
        assert rho - r1.mean() > 0.05          # the bias the inverse removes is large here


def test_corrected_rho_unbiased_on_runs_of_50():
    """On 6 runs of 50 TRs (run means removed) the sample value is low by ≈ (1 + 3ρ)/50; the
    inverted one is unbiased to within its standard error."""
    rng = np.random.default_rng(1)
    bounds = [(50 * i, 50 * (i + 1)) for i in range(6)]
    Nb = _nuisance_basis(bounds, None, 300)
    inv = _lag1_bias_inverse(bounds, Nb)
    c = 8000
    for rho in (0.2, 0.5, 0.8):
        r1 = _sample_r1(rng, bounds, Nb, rho, c)
        rc = inv(r1)
        se = rc.std() / np.sqrt(c)
        assert abs(rc.mean() - rho) < 3 * se, (rho, rc.mean(), se)
        assert rho - r1.mean() > 10 * se


def test_inverse_is_monotone_and_clipped():
    bounds = [(0, 50), (50, 100)]
    Nb = _nuisance_basis(bounds, None, 100)
    inv = _lag1_bias_inverse(bounds, Nb)
    assert np.all(np.diff(inv.g) >= 0) and inv.g[-1] > inv.g[0]
    out = inv(np.array([-2.0, 0.0, 0.5, 2.0]))
    assert out[0] == inv.grid[0] and out[-1] == inv.grid[-1]
    assert 0.0 < out[1] < out[2] < out[3]
