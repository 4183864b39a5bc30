"""Layer hierarchy (docs/method.md §6.4): centroid depth with hand-computed answers."""

import numpy as np
import pandas as pd
import pytest

from vlmbrain.analysis import centroid_depth, depth_by_network, hierarchy
from vlmbrain.networks import affiliate, significant_maps


def neurons_for(layers):
    layers = np.asarray(layers)
    return pd.DataFrame({"model": "m", "branch": "vision", "layer": layers, "module": "self_attn",
                         "head": 0, "unit": np.arange(layers.size), "group": "g"})


def test_centroid_depth_exact():
    neurons = neurons_for(np.repeat(np.arange(5), 2))     # layers 0..4, two ANs each
    codes = np.zeros((4, 10))
    codes[0, [8, 9]] = [1.0, -1.0]                         # only the last layer -> depth 1
    codes[1, [0, 4]] = [2.0, -2.0]                         # layers 0 and 2 equally -> centroid 1
    codes[2, [0, 1, 2]] = [1.0, 1.0, 2.0]                  # P(0) = 1, P(1) = 1 -> centroid 0.5
    t = centroid_depth(codes, neurons)
    np.testing.assert_allclose(t["centroid_layer"][:3], [4.0, 1.0, 0.5])
    np.testing.assert_allclose(t["depth"][:3], [1.0, 0.25, 0.125])
    assert np.isnan(t.loc[3, "depth"])                    # atom without codes


def test_centroid_normalises_by_layer_size():
    # layer 1 has 4 ANs, layer 3 one: equal summed |A| gives P(1) = 1/4, P(3) = 1
    neurons = neurons_for([1, 1, 1, 1, 3])
    codes = np.array([[0.25, 0.25, 0.25, 0.25, 1.0]])
    t = centroid_depth(codes, neurons)
    expected = (1 * 0.25 + 3 * 1.0) / 1.25
    assert t.loc[0, "centroid_layer"] == pytest.approx(expected)
    assert t.loc[0, "depth"] == pytest.approx((expected - 1) / 2)


def test_hierarchy_joins_networks(block_atlas):
    V = block_atlas.space_size
    beta = np.zeros((2, V))
    q = np.ones((2, V))
    beta[0, :100], q[0, :100] = 1.0, 0.0    # atom 0 + -> net1
    beta[1, 100:200], q[1, 100:200] = -1.0, 0.0  # atom 1 - -> net2
    neurons = neurons_for([0, 1, 2])
    codes = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    pos, neg = significant_maps(beta, q)
    t = hierarchy(codes, neurons, affiliate(pos, neg, block_atlas, null=None), "clip", "vision")
    idx = t.set_index(["atom", "sign"])
    assert idx.loc[(0, "+"), "network"] == "net1" and idx.loc[(0, "+"), "depth"] == 0.0
    assert idx.loc[(1, "-"), "network"] == "net2" and idx.loc[(1, "-"), "depth"] == 1.0
    assert idx.loc[(0, "-"), "network"] == ""
    assert (t["model"] == "clip").all() and len(t) == 4
    s = depth_by_network(t).set_index("network")
    assert s.loc["net1", "mean_depth"] == 0.0 and s.loc["net2", "mean_depth"] == 1.0
    assert list(s.index) == ["net1", "net2"]
