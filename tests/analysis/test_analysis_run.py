"""run_analyses: every table from planted per-branch results; input errors."""

import numpy as np
import pandas as pd
import pytest

from vlmbrain.analysis import TABLES, AnalysisInputs, AnalysisOptions, BranchResult, run_analyses
from vlmbrain.errors import ConfigError, DimensionError


def _branch(model, branch, region, rng, T=40, K=3, L=4, per=5):
    V = 350
    N = L * per
    atoms = rng.standard_normal((T, K))
    codes = np.zeros((K, N))
    codes[0, :per] = 1.0                   # atom 0: layer 0
    codes[1, -per:] = -1.0                 # atom 1: last layer
    codes[2, ::3] = 0.5
    neurons = pd.DataFrame({"model": model, "branch": branch, "layer": np.repeat(np.arange(L), per),
                            "module": "self_attn", "head": 0, "unit": np.arange(N), "group": "g"})
    beta = np.zeros((K, V))
    q = np.ones((K, V))
    beta[0, region], q[0, region] = 1.0, 0.001
    beta[1, region], q[1, region] = -1.0, 0.001
    r = np.zeros(V)
    qr = np.ones(V)
    r[region], qr[region] = 0.3, 0.01
    acts = rng.standard_normal((T, N))
    stream = "text" if branch == "text" else "image"
    return BranchResult(model, branch, atoms, codes, neurons, beta, q, r, qr, activations=acts, stream=stream)


@pytest.fixture
def inputs(block_atlas, rng):
    branches = [
        _branch("clip", "vision", slice(0, 100), rng),       # net1
        _branch("clip", "text", slice(100, 200), rng),       # net2: segregated from vision
        _branch("meter", "image", slice(0, 150), rng),
        _branch("meter", "text", slice(50, 150), rng),
    ]
    brain = rng.standard_normal((40, 350))
    opts = AnalysisOptions(null="permutation", n_perm=49)
    return AnalysisInputs(branches, block_atlas, brain=brain, options=opts)


def test_run_analyses_tables(inputs):
    tables = run_analyses(inputs)
    assert set(TABLES) <= set(tables)
    assert {"polarity_profiles", "polarity_bn"} <= set(tables)
    for name in TABLES:
        if name != "crossmodal":
            assert {"model", "branch"} <= set(tables[name].columns), name
            assert set(zip(tables[name]["model"], tables[name]["branch"])) == {
                ("clip", "vision"), ("clip", "text"), ("meter", "image"), ("meter", "text")}
    aff = tables["affiliation"]
    assert len(aff) == 4 * 3 * 2 * 3
    hit = aff[aff["affiliated"]].set_index(["model", "branch", "atom", "sign"])["network"]
    assert hit[("clip", "vision", 0, "+")] == "net1"
    assert hit[("clip", "vision", 1, "-")] == "net1"
    assert hit[("clip", "text", 0, "+")] == "net2"
    cm = tables["crossmodal"].set_index(["model_a", "network"])
    assert cm.loc[("clip", "all"), "dice"] == 0.0
    assert cm.loc[("meter", "all"), "dice"] == pytest.approx(2 * 100 / (150 + 100))
    assert len(tables["crossmodal"]) == 2 * 4
    h = tables["hierarchy"].set_index(["model", "branch", "atom", "sign"])
    assert h.loc[("clip", "vision", 0, "+"), "depth"] == 0.0
    assert h.loc[("clip", "vision", 1, "-"), "depth"] == 1.0
    pred = tables["prediction"].set_index(["model", "branch", "network"])
    assert pred.loc[("clip", "text", "net2"), "fraction_significant"] == 1.0
    assert pred.loc[("clip", "text", "net1"), "fraction_significant"] == 0.0
    pol = tables["polarity"].set_index(["model", "branch", "atom"])
    assert pol.loc[("clip", "vision", 0), "n_bn_pos"] == 100


def test_run_analyses_pairs_and_no_brain(inputs):
    inputs.brain = None
    inputs.options.crossmodal_pairs = [(("clip", "vision"), ("meter", "image"))]
    tables = run_analyses(inputs)
    assert "polarity_bn" not in tables
    row = tables["crossmodal"].set_index("network").loc["all"]
    assert row["model_b"] == "meter" and row["dice"] == pytest.approx(2 * 100 / 250)


def test_run_analyses_errors(inputs):
    bad = inputs.branches[0]
    inputs.branches[0] = BranchResult(bad.model, bad.branch, bad.atoms, bad.codes, bad.neurons,
                                      bad.beta[:, :10], bad.q_beta, bad.r_cv, bad.q_r)
    with pytest.raises(DimensionError, match=r"clip/vision beta has shape \(3, 10\); expected \(3, 350\)"):
        run_analyses(inputs)
    inputs.branches[0] = bad
    inputs.options.crossmodal_pairs = [(("clip", "vision"), ("vit", "vision"))]
    with pytest.raises(ConfigError, match=r"crossmodal pair names \('vit', 'vision'\)"):
        run_analyses(inputs)
    inputs.options.crossmodal_pairs = None
    inputs.brain = inputs.brain[:30]
    with pytest.raises(DimensionError, match="brain data have 30 TRs but clip/vision activations have 40"):
        run_analyses(inputs)
    with pytest.raises(ConfigError, match="duplicate"):
        run_analyses(AnalysisInputs([bad, bad], inputs.atlas))
    with pytest.raises(ConfigError, match="no branches"):
        run_analyses(AnalysisInputs([], inputs.atlas))
