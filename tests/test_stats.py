"""BH-FDR against scipy, max-statistic FWER against a brute-force count."""

import numpy as np
import pytest
from scipy.stats import false_discovery_control

from vlmbrain.errors import ConfigError, DimensionError
from vlmbrain.stats import fdr_bh, fwer_maxstat, pearson_r, permutation_pvalue


def test_fdr_bh_matches_scipy(rng):
    p = np.concatenate([rng.uniform(0, 1e-3, 30), rng.uniform(0, 1, 470)])
    reject, q = fdr_bh(p, 0.05)
    np.testing.assert_allclose(q, false_discovery_control(p, method="bh"), rtol=1e-12)
    np.testing.assert_array_equal(reject, q <= 0.05)
    assert reject[:30].sum() >= 25


def test_fdr_bh_2d_and_nan(rng):
    p = rng.uniform(0, 0.2, (4, 25))
    p[1, 3] = np.nan
    reject, q = fdr_bh(p, 0.1)
    assert q.shape == p.shape and np.isnan(q[1, 3]) and not reject[1, 3]
    finite = ~np.isnan(p)
    np.testing.assert_allclose(q[finite], false_discovery_control(p[finite]), rtol=1e-12)


def test_fdr_bh_errors():
    with pytest.raises(ConfigError, match="alpha=1.5"):
        fdr_bh([0.1], 1.5)
    with pytest.raises(ConfigError, match="must lie in"):
        fdr_bh([0.1, 1.2])


def test_fwer_maxstat_matches_brute_force(rng):
    null_max = rng.standard_normal(199)
    obs = rng.standard_normal(50) * 2
    reject, p = fwer_maxstat(obs, null_max, alpha=0.05)
    brute = (1 + (null_max[None, :] >= obs[:, None]).sum(1)) / 200
    np.testing.assert_allclose(p, brute)
    np.testing.assert_array_equal(reject, brute <= 0.05)
    # per-row families: observed (K, V), null (n_null, K)
    obs2 = rng.standard_normal((3, 10))
    nm2 = rng.standard_normal((99, 3))
    _, p2 = fwer_maxstat(obs2, nm2, tail="abs")
    for k in range(3):
        np.testing.assert_allclose(p2[k], (1 + (nm2[:, k][None] >= np.abs(obs2[k])[:, None]).sum(1)) / 100)
    with pytest.raises(DimensionError, match="null_max has shape"):
        fwer_maxstat(obs2, rng.standard_normal((99, 4)))
    with pytest.raises(ConfigError, match="tail='two'"):
        fwer_maxstat(obs, null_max, tail="two")


def test_pearson_and_permutation_p(rng):
    a = rng.standard_normal((50, 4))
    b = a + rng.standard_normal((50, 4))
    b[:, 3] = 1.0
    r = pearson_r(a, b)
    for j in range(3):
        assert r[j] == pytest.approx(np.corrcoef(a[:, j], b[:, j])[0, 1])
    assert np.isnan(r[3])
    assert permutation_pvalue(0, 999) == pytest.approx(0.001)
