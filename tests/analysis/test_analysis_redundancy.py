"""Redundancy (docs/method.md §6.2): exact counts and Jaccards on constructed maps and codes."""

import numpy as np
import pytest

from vlmbrain.analysis import atoms_per_grayordinate, code_l0, fault_tolerance, redundancy
from vlmbrain.errors import DimensionError
from vlmbrain.networks import affiliate, significant_maps


@pytest.fixture
def planted(block_atlas):
    V = block_atlas.space_size
    K, N = 4, 10
    beta = np.zeros((K, V))
    q = np.ones((K, V))
    beta[0, 0:80], q[0, 0:80] = 1.0, 0.001      # atom0 +: net1[0:80]
    beta[1, 40:100], q[1, 40:100] = 2.0, 0.001  # atom1 +: net1[40:100]  (Jaccard with atom0: 40/100)
    beta[2, 100:160], q[2, 100:160] = -1.0, 0.001  # atom2 -: net2[0:60]
    beta[3, 200:210] = 5.0                      # atom3: large but not significant
    codes = np.zeros((K, N))
    codes[0, [0, 1, 2, 3]] = 1.0
    codes[1, [2, 3, 4, 5]] = -0.5
    codes[2, [5, 6]] = 0.3
    codes[3, [9]] = 1.0
    pos, neg = significant_maps(beta, q)
    aff = affiliate(pos, neg, block_atlas, null=None)
    return beta, q, codes, aff


def _get(table, measure, network="all", sign="", level=None):
    sel = (table["measure"] == measure) & (table["network"] == network) & (table["sign"] == sign)
    if level is not None:
        sel &= table["level"] == level
    rows = table[sel]
    assert len(rows) == 1, (measure, network, sign, level)
    return rows.iloc[0]


def test_atoms_per_grayordinate(planted):
    _, q, _, _ = planted
    count = atoms_per_grayordinate(q, 0.05)
    assert count.shape == (350,)
    np.testing.assert_array_equal(count[[0, 39, 40, 79, 80, 99, 100, 159, 160, 200]], [1, 1, 2, 2, 1, 1, 1, 1, 0, 0])
    with pytest.raises(DimensionError, match="q_beta has shape"):
        atoms_per_grayordinate(q[0])


def test_redundancy_bn_side_exact(planted, block_atlas):
    beta, q, codes, aff = planted
    t = redundancy(beta, q, codes, aff, block_atlas, model="clip", branch="text")
    assert list(t.columns) == ["model", "branch", "side", "measure", "network_id", "network", "sign", "level", "value", "n"]
    assert (t["model"] == "clip").all()
    assert _get(t, "atoms_per_gray", "net1")["value"] == pytest.approx((40 * 1 + 40 * 2 + 20 * 1) / 100)
    assert _get(t, "atoms_per_gray", "net2")["value"] == pytest.approx(60 / 100)
    assert _get(t, "atoms_per_gray_hist", level=2)["value"] == 40
    assert _get(t, "atoms_per_gray_hist", level=1)["value"] == 120
    assert _get(t, "atoms_per_gray_hist", level=0)["value"] == 190
    assert _get(t, "affiliated_atoms", "net1", "+")["value"] == 2
    assert _get(t, "affiliated_atoms", "net1", "-")["value"] == 0
    assert _get(t, "affiliated_atoms", "net2", "-")["value"] == 1
    assert _get(t, "affiliated_atoms", "net2", "any")["value"] == 1
    assert _get(t, "affiliated_atoms", "net3", "any")["value"] == 0
    assert _get(t, "affiliated_atoms", "all", "any")["value"] == 3
    w = _get(t, "map_jaccard_within", "net1")
    assert w["value"] == pytest.approx(0.4) and w["n"] == 1
    b = _get(t, "map_jaccard_between", "net1")
    assert b["value"] == 0.0 and b["n"] == 2
    assert _get(t, "map_jaccard_within", "all")["value"] == pytest.approx(0.4)
    assert _get(t, "map_jaccard_between", "all")["n"] == 2
    assert np.isnan(_get(t, "map_jaccard_within", "net2")["value"])  # a single map: no pair


def test_redundancy_an_side_exact(planted, block_atlas):
    beta, q, codes, aff = planted
    np.testing.assert_array_equal(code_l0(codes), [1, 1, 2, 2, 1, 2, 1, 0, 0, 1])
    t = redundancy(beta, q, codes, aff, block_atlas)
    assert [_get(t, "l0_hist", level=j)["value"] for j in range(5)] == [2, 5, 3, 0, 0]
    assert _get(t, "l0_mean")["value"] == pytest.approx(1.1)
    w = _get(t, "subgroup_jaccard_within", "net1")
    assert w["value"] == pytest.approx(2 / 6) and w["n"] == 1
    b = _get(t, "subgroup_jaccard_between", "net1")
    assert b["value"] == pytest.approx((0 + 1 / 5) / 2) and b["n"] == 2
    # ANs 0-4 inherit net1, AN5 net1+net2, AN6 net2, AN9 belongs to an unaffiliated atom
    assert [_get(t, "inherited_networks", level=j)["value"] for j in range(4)] == [3, 6, 1, 0]


def test_fault_tolerance_with_exact_refit(block_atlas):
    rng = np.random.default_rng(0)
    T, V = 60, block_atlas.space_size
    X = rng.standard_normal((T, 3))
    atoms, _ = np.linalg.qr(X - X.mean(axis=0))  # orthonormal columns, each with zero mean
    Y = np.zeros((T, V))
    Y[:, :100] = (atoms[:, 0] + 0.5 * atoms[:, 2])[:, None]   # net1 needs atom 0
    Y[:, 100:200] = (atoms[:, 1] + 0.5 * atoms[:, 2])[:, None]  # net2 needs atom 1
    Y[:, 200:] = atoms[:, 2][:, None]

    def refit(X):
        coef, *_ = np.linalg.lstsq(X, Y, rcond=None)
        pred = X @ coef
        pc, yc = pred - pred.mean(0), Y - Y.mean(0)
        return (pc * yc).sum(0) / np.sqrt((pc**2).sum(0) * (yc**2).sum(0))

    table = fault_tolerance(atoms, refit, block_atlas, model="m", branch="b")
    t = table.set_index(["dropped_atom", "network"])
    corr = 0.5 / np.sqrt(1.25)  # corr(0.5 a2, a0 + 0.5 a2) for orthogonal unit atoms
    assert t.loc[(0, "net1"), "mean_r_full"] == pytest.approx(1.0)
    assert t.loc[(0, "net1"), "delta_r"] == pytest.approx(corr - 1.0)
    assert t.loc[(0, "net2"), "delta_r"] == pytest.approx(0.0, abs=1e-9)
    assert t.loc[(1, "net2"), "delta_r"] == pytest.approx(corr - 1.0)
    assert len(table) == 3 * 4
    with pytest.raises(DimensionError, match="refit without atom 0 has shape"):
        fault_tolerance(atoms, lambda X: np.zeros(5), block_atlas, r_full=np.ones(V), drop=[0])
