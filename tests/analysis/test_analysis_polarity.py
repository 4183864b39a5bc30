"""Polarity (docs/method.md §6.3): signed layer profiles, mirror test, BN± and the BN-correlation view."""

import numpy as np
import pandas as pd
import pytest

from vlmbrain.analysis import bn_mean_timeseries, layer_bn_correlation, layer_profiles, mirrored_fraction, polarity
from vlmbrain.errors import ConfigError, DimensionError
from vlmbrain.networks import affiliate, affiliation_summary, significant_maps


def neuron_table(layers):
    layers = np.asarray(layers)
    return pd.DataFrame({
        "model": "m", "branch": "text", "layer": layers, "module": "self_attn", "head": 0,
        "unit": np.arange(layers.size), "group": [f"text/L{x}/self_attn" for x in layers],
    })


def test_layer_profiles_exact():
    neurons = neuron_table([0, 0, 1, 1, 1, 2])  # layer sizes 2, 3, 1
    codes = np.array([[1.0, -2.0, 0.5, 0.5, -3.0, 4.0]])
    t = layer_profiles(codes, neurons).set_index(["side", "layer"])["value"]
    np.testing.assert_allclose([t[("AN+", 0)], t[("AN+", 1)], t[("AN+", 2)]], [1 / 2, 1 / 3, 4])
    np.testing.assert_allclose([t[("AN-", 0)], t[("AN-", 1)], t[("AN-", 2)]], [1.0, 1.0, 0.0])


def test_mirrored_profiles_detected():
    L, per = 6, 10
    neurons = neuron_table(np.repeat(np.arange(L), per))
    N = L * per
    codes = np.zeros((3, N))
    rng = np.random.default_rng(0)
    for layer in range(L):
        cols = np.arange(layer * per, (layer + 1) * per)
        codes[0, cols[:5]] = (L - layer) * rng.uniform(0.9, 1.1, 5)     # AN+ early
        codes[0, cols[5:]] = -(layer + 1) * rng.uniform(0.9, 1.1, 5)    # AN- late: mirrored
        codes[1, cols[:5]] = (layer + 1)                                # both rising: not mirrored
        codes[1, cols[5:]] = -(layer + 1) * 0.5
        codes[2, cols[:3]] = 1.0                                        # no negative codes
    K, V = 3, 20
    beta = np.zeros((K, V))
    q = np.ones((K, V))
    t = polarity(beta, q, codes, neurons)
    assert t.loc[0, "r_mirror"] < -0.9 and t.loc[0, "p_mirror"] < 0.05 and t.loc[0, "mirrored"]
    assert t.loc[1, "r_mirror"] == pytest.approx(1.0) and not t.loc[1, "mirrored"]
    assert np.isnan(t.loc[2, "r_mirror"]) and not t.loc[2, "mirrored"]
    assert t.loc[0, "n_an_pos"] == 30 and t.loc[0, "n_an_neg"] == 30 and t.loc[2, "n_an_neg"] == 0
    assert mirrored_fraction(t) == pytest.approx(0.5)
    assert t.attrs["fraction_mirrored"] == pytest.approx(0.5)
    from scipy.stats import pearsonr

    layers = np.arange(L)
    P = layer_profiles(codes, neurons).set_index(["atom", "side", "layer"])["value"]
    ref = pearsonr([P[(0, "AN+", x)] for x in layers], [P[(0, "AN-", x)] for x in layers])
    assert t.loc[0, "r_mirror"] == pytest.approx(ref.statistic)
    assert t.loc[0, "p_mirror"] == pytest.approx(ref.pvalue)


def test_opposite_sign_maps_found(block_atlas):
    V = block_atlas.space_size
    beta = np.zeros((2, V))
    q = np.full((2, V), 0.5)
    beta[0, :100], beta[0, 100:200] = 1.0, -1.0     # atom 0: + net1, - net2
    beta[1, :100], beta[1, 100:200] = -1.0, 1.0     # atom 1: the opposite
    q[:, :200] = 0.001
    codes = np.array([[1.0, -1.0, 1.0], [-1.0, 1.0, 0.0]])
    neurons = neuron_table([0, 1, 2])
    t = polarity(beta, q, codes, neurons).set_index("atom")
    assert t.loc[0, "n_bn_pos"] == 100 and t.loc[0, "n_bn_neg"] == 100
    assert t.loc[1, "n_bn_pos"] == 100 and t.loc[1, "n_bn_neg"] == 100
    pos, neg = significant_maps(beta, q)
    s = affiliation_summary(affiliate(pos, neg, block_atlas, null="permutation", n_perm=99)).set_index(["atom", "sign"])
    assert s.loc[(0, "+"), "network"] == "net1" and s.loc[(0, "-"), "network"] == "net2"
    assert s.loc[(1, "+"), "network"] == "net2" and s.loc[(1, "-"), "network"] == "net1"


def test_bn_mean_timeseries_matches_numpy(rng):
    Y = rng.standard_normal((15, 40))
    Y[3, 5] = np.nan
    masks = rng.random((4, 40)) < 0.3
    masks[3] = False
    ts = bn_mean_timeseries(Y, masks, chunk_size=7)
    for k in range(3):
        np.testing.assert_allclose(ts[:, k], np.nanmean(Y[:, masks[k]], axis=1))
    assert np.isnan(ts[:, 3]).all()
    with pytest.raises(DimensionError, match=r"brain data have shape \(15, 40\) but the maps have 39"):
        bn_mean_timeseries(Y, masks[:, :39])


def test_layer_bn_correlation_planted(rng):
    T, L, per = 200, 3, 8
    neurons = neuron_table(np.repeat(np.arange(L), per))
    N = L * per
    s = rng.standard_normal(T)
    X = rng.standard_normal((T, N)) * 0.1
    codes = np.zeros((1, N))
    # layer 0: AN+ follow s, AN- follow -s; layers 1, 2: noise
    X[:, 0:4] += s[:, None]
    X[:, 4:8] -= s[:, None]
    codes[0, 0:4], codes[0, 4:8] = 1.0, -1.0
    codes[0, 8:10] = 0.5
    bn_pos, bn_neg = s[:, None], -s[:, None]
    t = layer_bn_correlation(X, neurons, codes, bn_pos, bn_neg).set_index(["layer", "an_sign", "side"])
    assert t.loc[(0, "+", "BN+"), "value"] > 0.95
    assert t.loc[(0, "+", "BN-"), "value"] < -0.95
    assert t.loc[(0, "-", "BN+"), "value"] < -0.95
    assert t.loc[(0, "all", "BN+"), "value"] == pytest.approx(0.0, abs=0.05)
    assert abs(t.loc[(1, "+", "BN+"), "value"]) < 0.3 and t.loc[(1, "+", "BN+"), "n_neurons"] == 2
    assert np.isnan(t.loc[(2, "+", "BN+"), "value"]) and t.loc[(2, "+", "BN+"), "n_neurons"] == 0
    ref = np.mean([np.corrcoef(X[:, j], s)[0, 1] for j in range(4)])
    assert t.loc[(0, "+", "BN+"), "value"] == pytest.approx(ref)


def test_polarity_input_errors():
    neurons = neuron_table([0, 1])
    with pytest.raises(DimensionError, match="neurons has 2 rows but the codes have 3 columns"):
        layer_profiles(np.zeros((1, 3)), neurons)
    with pytest.raises(ConfigError, match="no 'layer' column"):
        layer_profiles(np.zeros((1, 2)), neurons.drop(columns="layer"))
    with pytest.raises(DimensionError, match=r"codes has shape \(2, 2\); expected \(1, \*\)"):
        polarity(np.zeros((1, 5)), np.ones((1, 5)), np.zeros((2, 2)), neurons)
