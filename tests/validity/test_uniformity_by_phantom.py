"""The phantom-level uniformity test: nominal on independent uniform groups, calibrated on
dependent ones where a pooled KS test is not, and sensitive to a real departure."""

import numpy as np
import pytest
from scipy import stats as sps

from vlmbrain.validate import uniformity_by_phantom


def _groups(rng, n_groups, size, shared_sd):
    """p-values of Gaussian z with a shared per-group offset (dependence within a group), the
    offset's sign random: marginally uniform over groups, dependent within one."""
    out = []
    for _ in range(n_groups):
        z = rng.standard_normal(size) * np.sqrt(1 - shared_sd**2) + shared_sd * rng.standard_normal()
        out.append(sps.norm.cdf(z))
    return out


def test_calibrated_where_pooled_ks_is_not():
    rng = np.random.default_rng(0)
    n_sim = 200
    ours = np.empty(n_sim)
    ks = np.empty(n_sim)
    for i in range(n_sim):
        groups = _groups(rng, 20, 500, shared_sd=0.2)
        ours[i] = uniformity_by_phantom(groups)[0]
        ks[i] = sps.kstest(np.concatenate(groups), "uniform").pvalue
    # the pooled KS treats 10,000 dependent p-values as independent: it rejects far too often
    assert np.mean(ks < 0.05) > 0.5
    # the group-level test (Bonferroni over the grid: conservative, never liberal)
    assert np.mean(ours < 0.05) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / n_sim)


def test_nominal_on_independent_groups_and_sensitive_to_a_shift():
    rng = np.random.default_rng(1)
    null = [uniformity_by_phantom([rng.random(300) for _ in range(15)])[0] for _ in range(200)]
    assert np.mean(np.array(null) < 0.05) <= 0.08
    # p-values whose z are shifted by 0.15 everywhere: more small p-values in every phantom
    shifted = [sps.norm.sf(rng.standard_normal(2000) + 0.15) for _ in range(15)]
    p, u, dev = uniformity_by_phantom(shifted)
    assert p < 1e-3 and dev > 0 and 0.05 <= u <= 0.5


def test_needs_two_groups_and_enough_p_values():
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="at least two"):
        uniformity_by_phantom([rng.random(10)])
    # the smallest group (8) expects fewer than 5 p-values below 0.001 and 0.01
    with pytest.raises(ValueError, match=r"8 p-values in a group are too few"):
        uniformity_by_phantom([rng.random(8), rng.random(40)], grid=(0.001, 0.01))
