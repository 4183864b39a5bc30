"""Fixtures of the analysis tests: a tiny block atlas with known networks."""

import numpy as np
import pytest

from vlmbrain.networks import Atlas


def make_block_atlas():
    """net1 = grayordinates 0..99, net2 = 100..199, net3 = 200..299, unassigned = 300..349."""
    labels = np.concatenate([np.full(100, 1), np.full(100, 2), np.full(100, 3), np.zeros(50, int)])
    names = {1: "net1", 2: "net2", 3: "net3"}
    colors = {1: (1.0, 0.0, 0.0, 1.0), 2: (0.0, 1.0, 0.0, 1.0), 3: (0.0, 0.0, 1.0, 1.0)}
    return Atlas("block", labels, names, colors, labels.size)


@pytest.fixture
def block_atlas():
    return make_block_atlas()
