"""Cross-modal mapping (docs/method.md §6.4): Dice and composition on constructed branch maps."""

import numpy as np
import pytest

from vlmbrain.analysis import crossmodal_overlap, default_pairs


def _map(V, idx):
    m = np.zeros(V, bool)
    m[idx] = True
    return m


def test_segregated_identical_and_half(block_atlas):
    V = block_atlas.space_size
    seg = crossmodal_overlap(_map(V, range(0, 100)), _map(V, range(100, 200)), block_atlas, "clip")
    row = seg.set_index("network").loc["all"]
    assert row["dice"] == 0 and row["n_shared"] == 0 and row["n_a_only"] == 100 and row["n_b_only"] == 100
    same = crossmodal_overlap(_map(V, range(0, 150)), _map(V, range(0, 150)), block_atlas, "meter", "image")
    assert same.set_index("network").loc["all", "dice"] == 1.0
    assert same.set_index("network").loc["all", "jaccard"] == 1.0

    half = crossmodal_overlap(_map(V, range(0, 100)), _map(V, range(50, 150)), block_atlas, "m").set_index("network")
    assert half.loc["all", "dice"] == pytest.approx(0.5)
    assert half.loc["all", "jaccard"] == pytest.approx(50 / 150)
    assert half.loc["net1", "n_shared"] == 50
    assert half.loc["net1", "dice"] == pytest.approx(2 * 50 / (100 + 50))
    assert np.isnan(half.loc["net3", "dice"])  # neither branch there
    # composition: shared and a-only lie in net1, b-only in net2
    assert half.loc["net1", "composition_shared"] == 1.0
    assert half.loc["net1", "composition_a_only"] == 1.0
    assert half.loc["net2", "composition_b_only"] == 1.0
    assert half.loc["net2", "composition_shared"] == 0.0
    assert half.loc["all", "composition_b_only"] == 1.0
    assert (half["model_a"] == "m").all() and (half["model_b"] == "m").all()
    assert list(half.columns[:4]) == ["model_a", "branch_a", "model_b", "branch_b"]


def test_default_pairs_follow_streams_not_names():
    streams = {("clip", "vision"): "image", ("clip", "text"): "text", ("meter", "image"): "image",
               ("meter", "text"): "text", ("vit", "vision"): "image", ("joint", "image+text"): "image+text",
               # names that say nothing: the stream decides
               ("odd", "tower_a"): "text", ("odd", "tower_b"): "image"}
    assert default_pairs(streams) == [
        (("clip", "vision"), ("clip", "text")),
        (("meter", "image"), ("meter", "text")),
        (("odd", "tower_b"), ("odd", "tower_a")),
    ]
