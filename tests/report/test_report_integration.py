"""The report draws every figure from the tables vlmbrain.analysis really writes (no column drift)."""

import numpy as np
import pandas as pd
import pytest

from vlmbrain.artifacts import BranchInfo, ModelInfo, RunLayout, write_model_json, write_table
from vlmbrain.report import build_report

V = 91282


@pytest.fixture(scope="module")
def analysed_run(tmp_path_factory):
    from vlmbrain.analysis.run import AnalysisInputs, AnalysisOptions, BranchResult, run_analyses
    from vlmbrain.networks import load_atlas

    rng = np.random.default_rng(0)
    atlas = load_atlas("cabnp")
    run = tmp_path_factory.mktemp("integ") / "run"
    layout = RunLayout(run)
    T, K, n_layers, width = 40, 3, 4, 6
    neurons_base = pd.DataFrame({"layer": np.repeat(np.arange(n_layers), width), "module": "self_attn",
                                 "head": -1, "unit": np.tile(np.arange(width), n_layers)})
    branches = []
    planted = {"vision": (1, 8), "text": (6, 8)}
    streams = {"vision": "image", "text": "text"}  # atom 0 on Visual1/Language, atom 1 (negative) on Auditory
    for branch, (net0, net1) in planted.items():
        beta = rng.normal(0, 0.1, (K, V)).astype(np.float32)
        q = np.ones((K, V), np.float32)
        beta[0, atlas.labels == net0] = 1.0
        q[0, atlas.labels == net0] = 0.001
        beta[1, atlas.labels == net1] = -1.0
        q[1, atlas.labels == net1] = 0.001
        sig = (atlas.labels == net0) | (atlas.labels == net1)
        r = np.where(sig, 0.4, 0.02).astype(np.float32)
        q_r = np.where(sig, 0.001, 0.9).astype(np.float32)
        codes = rng.normal(0, 1, (K, n_layers * width)) * (rng.random((K, n_layers * width)) < 0.5)
        neurons = neurons_base.assign(model="toy-clip", branch=branch,
                                      group=lambda d: branch + "/L" + d["layer"].astype(str) + "/self_attn")
        branches.append(BranchResult("toy-clip", branch, rng.standard_normal((T, K)), codes, neurons,
                                     beta, q, r, q_r, activations=rng.standard_normal((T, n_layers * width)),
                                     stream=streams[branch]))
        d = layout.encoding_dir("toy-clip", branch)
        d.mkdir(parents=True)
        for name, arr in (("beta", beta), ("q", q), ("r_cv", r), ("q_r", q_r)):
            np.save(d / f"{name}.npy", arr)
    brain = rng.standard_normal((T, V)).astype(np.float32)
    tables = run_analyses(AnalysisInputs(branches, atlas, brain=brain,
                                         options=AnalysisOptions(null="none", n_perm=0)))
    write_model_json(ModelInfo(name="toy-clip", folder="toy-clip", weights_hash="0" * 16, trained=True,
                               branches=[BranchInfo(name=b, modality=s, stream=s, n_neurons=n_layers * width)
                                         for b, s in streams.items()]), layout.model_json("toy-clip"))
    for name, df in tables.items():
        write_table(df, name, layout)
    out = build_report(run, figures="fast")
    return run, out.read_text(encoding="utf-8"), tables


def test_every_figure_is_drawn_from_real_tables(analysed_run):
    run, html, tables = analysed_run
    assert "could not be drawn" not in html
    figs = {p.stem for p in (run / "report" / "figures").glob("*.svg")}
    expected = {"prediction_network_bars", "prediction_frac_significant", "affiliation_counts",
                "polarity_profiles", "model_comparison_mean_r", "hierarchy",
                "overlap_composition_toy-clip_vision_vs_toy-clip_text"}
    assert expected <= figs, expected - figs
    assert any(f.startswith("redundancy_") for f in figs)
    for name in ("prediction", "affiliation", "redundancy", "polarity", "crossmodal", "hierarchy"):
        assert f"analysis/{name}.tsv" in html
    for name in tables:
        assert f"analysis/{name}.tsv is not in this run directory" not in html
    assert "the section failed" not in html


def test_planted_affiliation_and_overlap_reach_the_report(analysed_run):
    _, html, tables = analysed_run
    aff = tables["affiliation"]
    hits = aff[aff["affiliated"].astype(bool)][["branch", "atom", "sign", "network"]]
    got = {tuple(r) for r in hits.itertuples(index=False)}
    assert ("vision", 0, "+", "Visual1") in got and ("vision", 1, "-", "Auditory") in got
    # vision significant on Visual1 + Auditory, text on Language + Auditory: Auditory is shared
    from vlmbrain.networks import load_atlas

    atlas = load_atlas("cabnp")
    n_vis1, n_aud, n_lang = (int((atlas.labels == i).sum()) for i in (1, 8, 6))
    assert f"{n_vis1} vision-only, {n_aud} shared, {n_lang} text-only" in html
