"""Prediction across networks (docs/method.md §6.1): per-network summaries with hand-computed answers."""

import numpy as np
import pytest

from vlmbrain.analysis import prediction_by_network, significant_prediction
from vlmbrain.errors import DimensionError


def test_prediction_by_network_exact(block_atlas):
    V = block_atlas.space_size
    r = np.zeros(V)
    q = np.ones(V)
    r[:100] = 0.5
    q[:25] = 0.01                                # 25 of net1 significant
    r[100:200] = np.tile([0.2, 0.4], 50)         # net2 mean 0.3
    r[200:250] = -0.3
    q[200:250] = 0.001                           # significant but negative: not a prediction
    r[250:300] = np.nan                          # net3 half not fitted
    r[300:] = 0.1
    table = prediction_by_network(r, q, block_atlas, alpha=0.05, model="clip", branch="vision").set_index("network")
    assert list(table.index) == ["net1", "net2", "net3", "all"]
    assert table.loc["net1", "mean_r"] == pytest.approx(0.5)
    assert table.loc["net1", "fraction_significant"] == pytest.approx(0.25)
    assert table.loc["net2", "mean_r"] == pytest.approx(0.3)
    assert table.loc["net2", "median_r"] == pytest.approx(0.3)
    assert table.loc["net2", "n_significant"] == 0
    assert table.loc["net3", "n_grayordinates"] == 100
    assert table.loc["net3", "n_valid"] == 50
    assert table.loc["net3", "mean_r"] == pytest.approx(-0.3)
    assert table.loc["net3", "fraction_significant"] == 0.0
    assert table.loc["all", "network_id"] == -1
    assert table.loc["all", "n_valid"] == 300
    expected_all = (100 * 0.5 + 100 * 0.3 - 50 * 0.3 + 50 * 0.1) / 300
    assert table.loc["all", "mean_r"] == pytest.approx(expected_all)
    assert table.loc["all", "fraction_significant"] == pytest.approx(25 / 300)
    assert (table["model"] == "clip").all() and (table["branch"] == "vision").all()


def test_significant_prediction_handles_nan():
    sig = significant_prediction(np.array([0.2, 0.2, -0.2, np.nan]), np.array([0.01, np.nan, 0.01, 0.01]))
    np.testing.assert_array_equal(sig, [True, False, False, False])


def test_prediction_shape_errors(block_atlas):
    with pytest.raises(DimensionError, match=r"r_cv has shape \(10,\); expected \(350\)"):
        prediction_by_network(np.zeros(10), np.zeros(10), block_atlas)
    with pytest.raises(DimensionError, match="r_cv has shape .* but q_r has shape"):
        significant_prediction(np.zeros(3), np.zeros(4))
